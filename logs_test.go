package stream_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/instream/stream"
)

// capture is a slog.Handler keeping every record at Warn and above, with
// its attributes (those of With included) flattened.
type capture struct {
	mu      *sync.Mutex
	records *[]captured
	attrs   []slog.Attr
}

type captured struct {
	level slog.Level
	msg   string
	attrs map[string]string
}

func newCapture() *capture { return &capture{mu: new(sync.Mutex), records: new([]captured)} }

func (c *capture) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelWarn }
func (c *capture) WithGroup(string) slog.Handler                { return c }
func (c *capture) WithAttrs(as []slog.Attr) slog.Handler {
	return &capture{mu: c.mu, records: c.records, attrs: append(append([]slog.Attr{}, c.attrs...), as...)}
}
func (c *capture) Handle(_ context.Context, r slog.Record) error {
	rec := captured{level: r.Level, msg: r.Message, attrs: map[string]string{}}
	for _, a := range c.attrs {
		rec.attrs[a.Key] = a.Value.String()
	}
	r.Attrs(func(a slog.Attr) bool { rec.attrs[a.Key] = a.Value.String(); return true })
	c.mu.Lock()
	*c.records = append(*c.records, rec)
	c.mu.Unlock()
	return nil
}

func (c *capture) all() []captured {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]captured(nil), *c.records...)
}

// only checks that the log holds exactly one record at Warn or above,
// with msg and the attributes want (a value "*" matches any non-empty
// one).
func (c *capture) only(t *testing.T, msg string, want map[string]string) {
	t.Helper()
	recs := c.all()
	if len(recs) != 1 {
		t.Fatalf("%d log records, want one %q: %+v", len(recs), msg, recs)
	}
	r := recs[0]
	if r.msg != msg {
		t.Errorf("logged %q, want %q", r.msg, msg)
	}
	for k, v := range want {
		if got := r.attrs[k]; got == "" || v != "*" && got != v {
			t.Errorf("%q: attribute %s = %q, want %q (all: %v)", r.msg, k, got, v, r.attrs)
		}
	}
}

// TestLogFsyncFailureOnce: a partition whose periodic fsync fails logs
// it once, naming the partition and the cause, then refuses writes
// without logging again, whatever the flusher and the appenders do.
func TestLogFsyncFailureOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		logs := newCapture()
		fsys := stream.NewMemFS()
		s, err := stream.OpenOnFS(fsys, t.TempDir(), &stream.Options{Sync: stream.SyncPeriodic, SyncInterval: 10 * time.Millisecond, Logger: slog.New(logs)})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		p := partition(t, s, "orders", stream.TopicConfig{Partitions: 2})
		if _, err := p.Append(&stream.Record{Value: []byte("x")}); err != nil {
			t.Fatal(err)
		}
		fsys.SetFault(func(op, path string) error {
			if (op == "syncdata" || op == "sync") && strings.Contains(path, "orders-0") {
				return syscall.EIO
			}
			return nil
		})
		time.Sleep(100 * time.Millisecond) // ten periodic syncs
		synctest.Wait()
		for range 50 {
			if _, err := p.Append(&stream.Record{Value: []byte("x")}); err == nil {
				t.Fatal("a failed partition accepted an append")
			}
		}
		time.Sleep(100 * time.Millisecond)
		synctest.Wait()
		logs.only(t, "partition failed", map[string]string{"topic": "orders", "partition": "0", "error": "*"})
		if r := logs.all(); len(r) == 1 && !strings.Contains(r[0].attrs["error"], syscall.EIO.Error()) {
			t.Errorf("the log's cause %q does not say %v", r[0].attrs["error"], syscall.EIO)
		}
	})
}

// TestLogProducerRetriesOnce: a producer whose batch a failed partition
// refuses logs once for the batch, not once per retry.
func TestLogProducerRetriesOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		logs := newCapture()
		s, err := stream.Open(t.TempDir(), &stream.Options{Logger: slog.New(logs)})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		p := partition(t, s, "orders", stream.TopicConfig{})
		boom := errors.New("disk on fire")
		stream.SetSyncFault(p, func() error { return boom })
		pr, err := s.NewProducer(stream.ProducerConfig{DeliveryTimeout: time.Second, RetryBackoff: 10 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		defer pr.Close()
		if err := pr.Send(context.Background(), &stream.Record{Topic: "orders", Value: []byte("x")}); !errors.Is(err, stream.ErrTimeout) {
			t.Fatalf("Send to a failed partition: %v, want ErrTimeout after retries", err)
		}
		var retries int
		for _, r := range logs.all() {
			if strings.HasPrefix(r.msg, "producer:") {
				retries++
			}
		}
		if retries != 1 {
			t.Errorf("%d producer log records for one batch retried for a second, want 1: %+v", retries, logs.all())
		}
		if m := s.Metrics(); len(m.Producers) != 1 || m.Producers[0].Errors != 1 || m.Producers[0].Retries < 10 {
			t.Errorf("producer metrics %+v, want 1 error after 10 or more retries", m.Producers)
		}
	})
}

// TestLogRetentionFailureOnce: segments retention fails to remove are
// logged once, naming the partition and the cause, not at every later
// retention pass.
func TestLogRetentionFailureOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		logs := newCapture()
		fsys := stream.NewMemFS()
		s, err := stream.OpenOnFS(fsys, t.TempDir(), &stream.Options{SegmentBytes: 2 << 10, RetentionCheckInterval: time.Minute, Logger: slog.New(logs)})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		p := partition(t, s, "orders", stream.TopicConfig{RetentionBytes: 4 << 10})
		appendN(t, p, 0, 200)
		fsys.SetFault(func(op, path string) error {
			if op == "remove" && strings.HasSuffix(path, ".log") {
				return syscall.EIO
			}
			return nil
		})
		time.Sleep(5*time.Minute + time.Second) // five retention passes
		synctest.Wait()
		if p.StartOffset() == 0 {
			t.Fatal("retention deleted nothing")
		}
		logs.only(t, "retention", map[string]string{"topic": "orders", "partition": "0", "error": "*"})
	})
}

// TestLogEvictedMemberOnce: a member that stops heartbeating is evicted
// with one log record naming the group, the member and why.
func TestLogEvictedMemberOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		logs := newCapture()
		s, err := stream.Open(t.TempDir(), &stream.Options{Logger: slog.New(logs)})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		partition(t, s, "orders", stream.TopicConfig{})
		g, err := s.ConsumerGroup("billing", stream.GroupConfig{Topics: []string{"orders"}, SessionTimeout: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		c, err := g.Join(context.Background(), stream.ConsumerConfig{})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		stream.StopHeartbeats(c)
		time.Sleep(10 * time.Second)
		synctest.Wait()
		if len(g.Members()) != 0 {
			t.Fatalf("members %v, want the silent one evicted", g.Members())
		}
		logs.only(t, "evicted member", map[string]string{"group": "billing", "member": c.MemberID(), "reason": "*"})
	})
}
