package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/instream/stream"
)

// kcat runs kcat (librdkafka's command-line client, Debian package
// kcat) against b with args and stdin, and returns its stdout. The test
// is skipped where kcat is not installed; .ci/run installs it.
func kcat(t *testing.T, b *broker, stdin string, args ...string) string {
	t.Helper()
	path, err := exec.LookPath("kcat")
	if err != nil {
		t.Skip("kcat is not installed (apt-get install kcat)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, path, append([]string{"-b", b.addr}, args...)...)
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("kcat %v: %v\n%s", args, err, stderr.String())
	}
	if strings.Contains(stderr.String(), "PROTOERR") {
		t.Fatalf("kcat %v reported a protocol error:\n%s", args, stderr.String())
	}
	return stdout.String()
}

// TestKcat: kcat produces keyed records with headers that the Go API
// reads intact; kcat reads what the Go API wrote; kcat's group consumer
// reads everything once and commits where the Go API sees it.
func TestKcat(t *testing.T) {
	b := startBroker(t, nil)
	b.createTopic(t, "lines", 1)
	kcat(t, b, "k1:one\nk2:two\nk3:three\n", "-P", "-t", "lines", "-K:", "-H", "source=kcat")
	tp, _ := b.s.Topic("lines")
	p, _ := tp.Partition(0)
	recs, err := p.Read(0, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range recs {
		if len(r.Headers) != 1 || r.Headers[0].Key != "source" || string(r.Headers[0].Value) != "kcat" {
			t.Errorf("offset %d: headers %v", r.Offset, r.Headers)
		}
		if time.Since(r.Timestamp) > time.Minute {
			t.Errorf("offset %d: timestamp %v", r.Offset, r.Timestamp)
		}
		got = append(got, string(r.Key)+"="+string(r.Value))
	}
	if want := []string{"k1=one", "k2=two", "k3=three"}; !slices.Equal(got, want) {
		t.Fatalf("the Go API read %v, want %v", got, want)
	}

	ts := time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)
	if _, err := p.Append(&stream.Record{Key: []byte("go"), Value: []byte("api"), Timestamp: ts,
		Headers: []stream.Header{{Key: "h", Value: []byte("v")}}}); err != nil {
		t.Fatal(err)
	}
	out := kcat(t, b, "", "-C", "-t", "lines", "-e", "-f", "%o %k=%s %T %h\n")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 4 {
		t.Fatalf("kcat read %d records:\n%s", len(lines), out)
	}
	if want := fmt.Sprintf("3 go=api %d h=v", ts.UnixMilli()); lines[3] != want {
		t.Fatalf("kcat read %q, want %q", lines[3], want)
	}

	// A balanced consumer in group "g": everything once, then a commit.
	out = kcat(t, b, "", "-G", "g", "-o", "beginning", "-e", "-f", "%o %s\n", "lines")
	if n := strings.Count(out, "\n"); n != 4 {
		t.Fatalf("kcat's group consumer read %d records:\n%s", n, out)
	}
	cg, err := b.s.ConsumerGroup("g", stream.GroupConfig{})
	if err != nil {
		t.Fatal(err)
	}
	committed, err := cg.Committed(testContext(t))
	if err != nil {
		t.Fatal(err)
	}
	if off := committed[stream.TopicPartition{Topic: "lines", Partition: 0}]; off != 4 {
		t.Fatalf("group g committed %d, want 4 (%v)", off, committed)
	}
}
