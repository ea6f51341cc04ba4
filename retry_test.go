package stream_test

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"github.com/instream/stream"
)

// Run's retry policy: a record that fails is retried with a doubling
// backoff; one that fails on every attempt goes to the dead-letter topic
// (or OnGiveUp) and Run goes on, committing past it.
func TestRunRetryPolicy(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, _ := open(t, nil)
		tp := topic(t, s, "jobs", 1)
		fill(t, tp, 5)
		dlt := topic(t, s, "jobs.dlt", 1)
		g := group(t, s, "g", stream.GroupConfig{Topics: []string{"jobs"}, StartAt: stream.StartEarliest})
		c := join(t, g, stream.ConsumerConfig{Retry: stream.RetryPolicy{Attempts: 3, Backoff: time.Second, DeadLetterTopic: "jobs.dlt"}})
		defer c.Close()
		ctx, cancel := context.WithCancel(context.Background())
		attempts := map[int64][]time.Time{}
		poison := errors.New("poison")
		err := c.Run(ctx, func(ctx context.Context, r *stream.Record) error {
			attempts[r.Offset] = append(attempts[r.Offset], time.Now())
			switch {
			case r.Offset == 2:
				return poison // every time
			case r.Offset == 3 && len(attempts[3]) < 3:
				return errors.New("transient")
			case r.Offset == 4:
				cancel()
			}
			return nil
		})
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Run: %v", err)
		}
		if n := len(attempts[2]); n != 3 {
			t.Errorf("poison record tried %d times, want 3", n)
		}
		if a := attempts[3]; len(a) != 3 || a[1].Sub(a[0]) != time.Second || a[2].Sub(a[1]) != 2*time.Second {
			t.Errorf("transient failure attempts at %v: want backoffs of 1s then 2s", a)
		}
		if got := committedOf(t, g, tpOf("jobs", 0)); got != 5 {
			t.Errorf("committed %d, want 5: the dead-lettered record counts as handled", got)
		}
		recs := readAll(t, part(t, dlt, 0), 0)
		if len(recs) != 1 || string(recs[0].Value) != "p0-2" {
			t.Fatalf("dead-letter topic holds %v", recs)
		}
		hdr := map[string]string{}
		for _, h := range recs[0].Headers {
			hdr[h.Key] = string(h.Value)
		}
		if hdr["stream.dlt.topic"] != "jobs" || hdr["stream.dlt.partition"] != "0" || hdr["stream.dlt.offset"] != "2" || hdr["stream.dlt.error"] != "poison" {
			t.Errorf("dead-letter headers %v", hdr)
		}
	})
}

// OnGiveUp decides: nil goes on, an error stops Run with it; without a
// dead-letter topic or OnGiveUp, Run returns the last error after the
// attempts.
func TestRunRetryGiveUp(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, _ := open(t, nil)
		tp := topic(t, s, "jobs", 1)
		fill(t, tp, 3)
		stop := errors.New("stop")
		var gaveUp []int64
		cfg := stream.ConsumerConfig{Retry: stream.RetryPolicy{Attempts: 2, OnGiveUp: func(_ context.Context, r *stream.Record, err error) error {
			gaveUp = append(gaveUp, r.Offset)
			if r.Offset == 2 {
				return stop
			}
			return nil
		}}}
		g := group(t, s, "g", stream.GroupConfig{Topics: []string{"jobs"}, StartAt: stream.StartEarliest})
		c := join(t, g, cfg)
		err := c.Run(context.Background(), func(context.Context, *stream.Record) error { return errors.New("fail") })
		if !errors.Is(err, stop) || len(gaveUp) != 3 {
			t.Errorf("Run: %v after giving up on %v", err, gaveUp)
		}
		if got := committedOf(t, g, tpOf("jobs", 0)); got != 2 {
			t.Errorf("committed %d, want 2", got)
		}
		c.Close()

		g2 := group(t, s, "g2", stream.GroupConfig{Topics: []string{"jobs"}, StartAt: stream.StartEarliest})
		c2 := join(t, g2, stream.ConsumerConfig{Retry: stream.RetryPolicy{Attempts: 3}})
		defer c2.Close()
		tries := 0
		fail := errors.New("fail")
		if err := c2.Run(context.Background(), func(context.Context, *stream.Record) error { tries++; return fail }); !errors.Is(err, fail) || tries != 3 {
			t.Errorf("Run without a give-up: %v after %d tries, want fail after 3", err, tries)
		}
		if _, err := s.ConsumerGroup("g3", stream.GroupConfig{Topics: []string{"jobs"}}); err != nil {
			t.Fatal(err)
		}
		if _, err := g2.Join(context.Background(), stream.ConsumerConfig{Retry: stream.RetryPolicy{Attempts: -1}}); !errors.Is(err, stream.ErrInvalidConfig) {
			t.Errorf("Attempts -1: %v, want ErrInvalidConfig", err)
		}
	})
}
