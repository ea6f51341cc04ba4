package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/instream/stream"
)

// kafkajs runs kafkajs/getting_started.js (KafkaJS's getting-started
// code, npm package kafkajs, installed by .ci/run with npm ci) against b
// and returns its stdout. Outside CI the test is skipped when node or
// the package is missing; in CI (CI set) that fails it.
func kafkajs(t *testing.T, b *broker, args ...string) string {
	t.Helper()
	skip := t.Skip
	if os.Getenv("CI") != "" {
		skip = t.Fatal
	}
	node, err := exec.LookPath("node")
	if err != nil {
		skip("node is not installed")
	}
	if _, err := os.Stat(filepath.Join("kafkajs", "node_modules", "kafkajs")); err != nil {
		skip("kafkajs is not installed (cd kafkaproto/e2e/kafkajs && npm ci)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, append([]string{"getting_started.js"}, args...)...)
	cmd.Dir = "kafkajs"
	cmd.Env = append(os.Environ(), "BROKER="+b.addr, "KAFKAJS_NO_PARTITIONER_WARNING=1")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("node getting_started.js %v: %v\nstdout:\n%s\nstderr:\n%s", args, err, stdout.String(), stderr.String())
	}
	if stderr.Len() > 0 {
		t.Logf("node getting_started.js %v logged:\n%s", args, stderr.String())
	}
	return stdout.String()
}

// TestKafkaJS: KafkaJS's getting-started producer creates test-topic
// (auto-creation, as against Kafka) and sends; the Go API reads its
// keys, headers and timestamps intact; KafkaJS's getting-started group
// consumer then reads everything once, the Go API's record included,
// and commits where the Go API sees it.
func TestKafkaJS(t *testing.T) {
	b := startBroker(t, &stream.Options{AutoCreateTopics: true, DefaultTopic: stream.TopicConfig{Partitions: 1}})
	kafkajs(t, b, "produce")

	tp, err := b.s.Topic("test-topic")
	if err != nil {
		t.Fatalf("KafkaJS's producer did not create test-topic: %v", err)
	}
	p, err := tp.Partition(0)
	if err != nil {
		t.Fatal(err)
	}
	recs, err := p.Read(0, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range recs {
		var hs []string
		for _, h := range r.Headers {
			hs = append(hs, h.Key+"="+string(h.Value))
		}
		got = append(got, string(r.Key)+"|"+string(r.Value)+"|"+strings.Join(hs, ","))
	}
	want := []string{"|Hello KafkaJS user!|", "key1|hello world|correlation-id=abc", "key2|hey hey!|"}
	if !slices.Equal(got, want) {
		t.Fatalf("the Go API read %q, want %q", got, want)
	}
	if ts := recs[2].Timestamp.UnixMilli(); ts != 1700000000000 {
		t.Errorf("key2's timestamp is %d, want the 1700000000000 KafkaJS sent", ts)
	}
	if age := time.Since(recs[0].Timestamp); age < 0 || age > time.Hour {
		t.Errorf("the first record's timestamp %v is not the time it was sent", recs[0].Timestamp)
	}

	goTime := time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)
	if _, err := p.Append(&stream.Record{Key: []byte("go"), Value: []byte("from the Go API"), Timestamp: goTime,
		Headers: []stream.Header{{Key: "h", Value: []byte("v")}}}); err != nil {
		t.Fatal(err)
	}

	out := kafkajs(t, b, "consume", "4")
	type message struct {
		Topic     string            `json:"topic"`
		Partition int32             `json:"partition"`
		Offset    string            `json:"offset"`
		Key       *string           `json:"key"`
		Value     string            `json:"value"`
		Timestamp string            `json:"timestamp"`
		Headers   map[string]string `json:"headers"`
	}
	var msgs []message
	for line := range strings.Lines(out) {
		var m message
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("consumer printed %q: %v", line, err)
		}
		msgs = append(msgs, m)
	}
	if len(msgs) != 4 {
		t.Fatalf("KafkaJS's consumer read %d messages, want 4:\n%s", len(msgs), out)
	}
	for i, m := range msgs {
		if m.Topic != "test-topic" || m.Partition != 0 || m.Offset != string(rune('0'+i)) {
			t.Errorf("message %d: %s-%d@%s", i, m.Topic, m.Partition, m.Offset)
		}
	}
	if m := msgs[0]; m.Key != nil || m.Value != "Hello KafkaJS user!" {
		t.Errorf("first message: key %v value %q", m.Key, m.Value)
	}
	if m := msgs[1]; m.Key == nil || *m.Key != "key1" || m.Headers["correlation-id"] != "abc" {
		t.Errorf("second message: %+v", m)
	}
	if m := msgs[3]; m.Key == nil || *m.Key != "go" || m.Value != "from the Go API" || m.Headers["h"] != "v" ||
		m.Timestamp != "1714979289000" {
		t.Errorf("the Go API's record read as %+v", m)
	}

	cg, err := b.s.ConsumerGroup("test-group", stream.GroupConfig{})
	if err != nil {
		t.Fatal(err)
	}
	committed, err := cg.Committed(testContext(t))
	if err != nil {
		t.Fatal(err)
	}
	if off := committed[stream.TopicPartition{Topic: "test-topic", Partition: 0}]; off != 4 {
		t.Fatalf("test-group committed %d, want 4 (%v)", off, committed)
	}
}
