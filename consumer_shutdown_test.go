package stream_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/instream/stream"
)

// committedOf returns the group's committed offset of tp, -1 if none.
func committedOf(t *testing.T, g *stream.ConsumerGroup, tp stream.TopicPartition) int64 {
	t.Helper()
	c, err := g.Committed(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if off, ok := c[tp]; ok {
		return off
	}
	return -1
}

// blockingHandler blocks on the record at offset at until released, and
// records every offset it accepted.
type blockingHandler struct {
	at       int64
	entered  chan struct{}
	release  chan error
	accepted []int64
}

func newBlockingHandler(at int64) *blockingHandler {
	return &blockingHandler{at: at, entered: make(chan struct{}), release: make(chan error)}
}

func (h *blockingHandler) handle(ctx context.Context, r *stream.Record) error {
	if r.Offset == h.at {
		close(h.entered)
		select {
		case err := <-h.release:
			if err != nil {
				return err
			}
		case <-ctx.Done():
			return context.Cause(ctx)
		}
	}
	h.accepted = append(h.accepted, r.Offset)
	return nil
}

// Close from another goroutine while Run's handler works on a record
// waits for that record, then commits exactly what the handler accepted:
// nothing of the polled batch after it.
func TestCloseDuringRunWaitsAndCommitsOnlyAccepted(t *testing.T) {
	for _, via := range []string{"Consumer.Close", "Stream.Close"} {
		t.Run(via, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				dir := t.TempDir()
				s, err := stream.Open(dir, nil)
				if err != nil {
					t.Fatal(err)
				}
				tp := topic(t, s, "t", 1)
				fill(t, tp, 10)
				gcfg := stream.GroupConfig{Topics: []string{"t"}, StartAt: stream.StartEarliest}
				g := group(t, s, "g", gcfg)
				c := join(t, g, stream.ConsumerConfig{})
				h := newBlockingHandler(3)
				runErr := make(chan error, 1)
				go func() { runErr <- c.Run(context.Background(), h.handle) }()
				<-h.entered
				closed := make(chan error, 1)
				go func() {
					if via == "Stream.Close" {
						closed <- s.Close()
					} else {
						closed <- c.Close()
					}
				}()
				synctest.Wait()
				select {
				case err := <-closed:
					t.Fatalf("%s returned (%v) while the handler was still working", via, err)
				default:
				}
				h.release <- nil // record 3 accepted
				if err := <-closed; err != nil {
					t.Fatalf("%s: %v", via, err)
				}
				if err := <-runErr; !errors.Is(err, stream.ErrClosed) {
					t.Errorf("Run after Close: %v, want ErrClosed", err)
				}
				if len(h.accepted) != 4 {
					t.Errorf("handler accepted %v, want offsets 0-3 (Run must stop after the record in flight)", h.accepted)
				}
				if via == "Stream.Close" {
					s = reopen(t, dir, nil)
					g = group(t, s, "g", gcfg)
				} else {
					defer s.Close()
				}
				if got := committedOf(t, g, tpOf("t", 0)); got != 4 {
					t.Errorf("committed %d after Close, want 4: the records the handler accepted", got)
				}
			})
		})
	}
}

// CloseContext bounds the wait: when its context ends first, the
// handler's context is cancelled, the commit covers only the records
// accepted before the one in flight, and the consumer is closed anyway.
func TestCloseContextBoundsTheWait(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, _ := open(t, nil)
		tp := topic(t, s, "t", 1)
		fill(t, tp, 10)
		g := group(t, s, "g", stream.GroupConfig{Topics: []string{"t"}, StartAt: stream.StartEarliest})
		c := join(t, g, stream.ConsumerConfig{})
		h := newBlockingHandler(3)
		runErr := make(chan error, 1)
		go func() { runErr <- c.Run(context.Background(), h.handle) }()
		<-h.entered
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		start := time.Now()
		err := c.CloseContext(ctx)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("CloseContext with a stuck handler: %v, want DeadlineExceeded", err)
		}
		if d := time.Since(start); d != 5*time.Second {
			t.Errorf("CloseContext waited %v, want the context's 5s", d)
		}
		if err := <-runErr; !errors.Is(err, stream.ErrClosed) {
			t.Errorf("Run: %v, want ErrClosed", err)
		}
		if got := committedOf(t, g, tpOf("t", 0)); got != 3 {
			t.Errorf("committed %d, want 3: the record in flight was never accepted", got)
		}
		if m := g.Members(); len(m) != 0 {
			t.Errorf("members after CloseContext: %v", m)
		}
		if err := c.Close(); !errors.Is(err, stream.ErrClosed) {
			t.Errorf("second Close: %v, want ErrClosed", err)
		}
	})
}

// Run returns within one record of its context's cancellation and
// commits what was handled; Poll with a cancelled context returns its
// error even with records waiting.
func TestCancellationIsPrompt(t *testing.T) {
	s, _ := open(t, nil)
	tp := topic(t, s, "t", 1)
	fill(t, tp, 2000)
	g := group(t, s, "g", stream.GroupConfig{Topics: []string{"t"}, StartAt: stream.StartEarliest})
	c := join(t, g, stream.ConsumerConfig{})
	defer c.Close()
	ctx, cancel := context.WithCancel(context.Background())
	handled := 0
	err := c.Run(ctx, func(ctx context.Context, r *stream.Record) error {
		handled++
		if handled == 10 {
			cancel()
		}
		return nil
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Run after cancel: %v", err)
	}
	if handled != 10 {
		t.Errorf("handled %d records, want 10: Run must stop at the record after cancellation", handled)
	}
	if got := committedOf(t, g, tpOf("t", 0)); got != 10 {
		t.Errorf("committed %d, want 10", got)
	}
	if recs, err := c.Poll(ctx); !errors.Is(err, context.Canceled) || len(recs) != 0 {
		t.Errorf("Poll with a cancelled context: %d records, %v; want context.Canceled", len(recs), err)
	}
	// The next Run resumes at the first record not handled.
	ctx2, cancel2 := context.WithTimeout(context.Background(), time.Minute)
	defer cancel2()
	c.Run(ctx2, func(ctx context.Context, r *stream.Record) error {
		if r.Offset != 10 {
			t.Errorf("resumed at %d, want 10", r.Offset)
		}
		cancel2()
		return nil
	})

	// A group-less consumer too.
	free, err := s.NewConsumer(stream.ConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer free.Close()
	free.Assign(tpOf("t", 0))
	if recs, err := free.Poll(ctx); !errors.Is(err, context.Canceled) || len(recs) != 0 {
		t.Errorf("group-less Poll with a cancelled context: %d records, %v", len(recs), err)
	}
}

// levelCounter counts log records at ERROR and checks every message and
// attribute is on one line.
type levelCounter struct {
	t      *testing.T
	mu     *sync.Mutex
	errors *[]string
}

func (h levelCounter) Enabled(context.Context, slog.Level) bool { return true }
func (h levelCounter) Handle(_ context.Context, r slog.Record) error {
	line := r.Message
	r.Attrs(func(a slog.Attr) bool { line += " " + a.String(); return true })
	if strings.Contains(line, "\n") {
		h.t.Errorf("log line with a newline: %q", line)
	}
	if r.Level >= slog.LevelError {
		h.mu.Lock()
		*h.errors = append(*h.errors, line)
		h.mu.Unlock()
	}
	return nil
}
func (h levelCounter) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h levelCounter) WithGroup(string) slog.Handler      { return h }

// A clean shutdown — cancel Run's context, Close the consumer, Close the
// Stream — logs no ERROR (an auto-commit used to fail with "context
// canceled").
func TestCleanShutdownLogsNoError(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var (
			mu   sync.Mutex
			errs []string
		)
		log := slog.New(levelCounter{t, &mu, &errs})
		s, err := stream.Open(t.TempDir(), &stream.Options{Logger: log})
		if err != nil {
			t.Fatal(err)
		}
		tp := topic(t, s, "t", 2)
		fill(t, tp, 100)
		g := group(t, s, "g", stream.GroupConfig{Topics: []string{"t"}, StartAt: stream.StartEarliest, CommitInterval: time.Millisecond})
		c := join(t, g, stream.ConsumerConfig{MaxPollRecords: 10})
		ctx, cancel := context.WithCancel(context.Background())
		n := 0
		c.Run(ctx, func(ctx context.Context, r *stream.Record) error {
			time.Sleep(time.Millisecond)
			if n++; n == 25 {
				cancel()
			}
			return nil
		})
		// A caller's loop polls once more with the cancelled context.
		c.Poll(ctx)
		if err := c.Close(); err != nil {
			t.Error(err)
		}
		if err := s.Close(); err != nil {
			t.Error(err)
		}
		if len(errs) > 0 {
			t.Errorf("a clean shutdown logged errors: %q", errs)
		}
	})
}
