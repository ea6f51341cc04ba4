package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/instream/stream"
	"github.com/instream/stream/debughttp"
)

// TestURL reads a running process through its debug page: topics,
// groups and consume -url print what they print from the directory once
// the process has let it go, while -dir cannot open it.
func TestURL(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	s, err := stream.Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	tp, err := s.CreateTopic("orders", stream.TopicConfig{Partitions: 2})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 7 {
		p, _ := tp.Partition(int32(i % 2))
		r := &stream.Record{Key: fmt.Appendf(nil, "k%d", i), Value: fmt.Appendf(nil, `{"n":%d}`, i), Timestamp: t0.Add(time.Duration(i) * time.Second)}
		if i == 3 {
			r.Key, r.Value = nil, []byte{0, 0xff, '\n', 'x'} // bytes that are not text
			r.Headers = []stream.Header{{Key: "h", Value: []byte("v")}}
		}
		if _, err := p.Append(r); err != nil {
			t.Fatal(err)
		}
	}
	ctx := context.Background()
	g, err := s.ConsumerGroup("billing", stream.GroupConfig{Topics: []string{"orders"}, CommitInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	if err := g.ResetOffsets(ctx, map[stream.TopicPartition]int64{{Topic: "orders", Partition: 0}: 1}); err != nil {
		t.Fatal(err)
	}
	member, err := g.Join(ctx, stream.ConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/debug/stream", debughttp.Handler(s, nil))
	srv := httptest.NewServer(mux)
	defer srv.Close()
	u := srv.URL + "/debug/stream"

	if code, _, errOut := runCmd(t, "topics", "-dir", dir); code == 0 || !strings.Contains(errOut, dir) {
		t.Errorf("topics -dir of a directory in use: exit %d, %s; want a failure naming it", code, errOut)
	}
	out := mustRun(t, "topics", "-url", u)
	for _, want := range []string{"orders", "1 topic, 2 partitions, 7 records"} {
		if !strings.Contains(out, want) {
			t.Errorf("topics -url lacks %q:\n%s", want, out)
		}
	}
	remoteTopics := mustRun(t, "topics", "-url", u, "-json")
	out = mustRun(t, "groups", "-url", u, "billing")
	for _, want := range []string{"group billing: generation 1, 1 member: " + member.MemberID() + ", lag 3", "orders"} {
		if !strings.Contains(out, want) {
			t.Errorf("groups -url lacks %q:\n%s", want, out)
		}
	}
	if code, _, errOut := runCmd(t, "groups", "-url", u, "nobody"); code == 0 || !strings.Contains(errOut, "nobody") {
		t.Errorf("groups -url of an unknown group: exit %d, %s", code, errOut)
	}
	consumed := map[string]string{}
	for _, args := range [][]string{{"-json"}, {"-json", "-partition", "1", "-from", "2"}, {"-n", "3"}, {"-from", t0.Add(4 * time.Second).Format(time.RFC3339)}} {
		consumed[strings.Join(args, " ")] = mustRun(t, append([]string{"consume", "-url", u, "orders"}, args...)...)
	}
	if code, _, errOut := runCmd(t, "consume", "-url", u, "-group", "g", "orders"); code != 2 || !strings.Contains(errOut, "read-only") {
		t.Errorf("consume -url -group: exit %d, %s; want a usage error", code, errOut)
	}

	if err := member.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// The directory, now free, says the same.
	var fromURL, fromDir struct{ Topics []*topicInfo }
	if err := json.Unmarshal([]byte(remoteTopics), &fromURL); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(mustRun(t, "topics", "-dir", dir, "-json")), &fromDir); err != nil {
		t.Fatal(err)
	}
	if len(fromURL.Topics) != 1 || len(fromDir.Topics) != 1 || len(fromURL.Topics[0].Partitions) != 2 {
		t.Fatalf("topics: %+v from -url, %+v from -dir", fromURL.Topics, fromDir.Topics)
	}
	for i, p := range fromURL.Topics[0].Partitions {
		d := fromDir.Topics[0].Partitions[i]
		if p.Partition != d.Partition || p.StartOffset != d.StartOffset || p.HighWatermark != d.HighWatermark || p.Records != d.Records || p.Segments != d.Segments {
			t.Errorf("partition %d: %+v from -url, %+v from -dir", i, p, d)
		}
	}
	for args, got := range consumed {
		want := mustRun(t, append([]string{"consume", "-dir", dir, "orders"}, strings.Fields(args)...)...)
		if got != want || got == "" {
			t.Errorf("consume %s: -url printed\n%s\n-dir prints\n%s", args, got, want)
		}
	}
}
