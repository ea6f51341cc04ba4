package stream_test

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"

	"github.com/instream/stream"
)

// Close called from inside Run's handler, without the handler's context,
// does not wait for the handler (itself): it closes, Run returns
// ErrClosed, and the records accepted before the one in hand are
// committed.
func TestCloseFromRunHandler(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, _ := open(t, nil)
		tp := topic(t, s, "t", 1)
		fill(t, tp, 10)
		g := group(t, s, "g", stream.GroupConfig{Topics: []string{"t"}, StartAt: stream.StartEarliest})
		c := join(t, g, stream.ConsumerConfig{})
		var closeErr error
		runErr := make(chan error, 1)
		go func() {
			runErr <- c.Run(context.Background(), func(_ context.Context, r *stream.Record) error {
				if r.Offset == 4 {
					closeErr = c.Close()
				}
				return nil
			})
		}()
		if err := <-runErr; !errors.Is(err, stream.ErrClosed) {
			t.Errorf("Run: %v, want ErrClosed", err)
		}
		if closeErr != nil {
			t.Errorf("Close from the handler: %v", closeErr)
		}
		if got := committedOf(t, g, tpOf("t", 0)); got != 4 && got != 5 {
			t.Errorf("committed %d, want 4 (or 5, with the record in hand accepted)", got)
		}
		if m := g.Members(); len(m) != 0 {
			t.Errorf("members after Close: %v", m)
		}
	})
}

// Close called from a rebalance callback, which runs inside Poll, fails
// at once with ErrInCallback instead of waiting for Poll; the consumer
// stays usable and closes normally afterwards.
func TestCloseFromRebalanceCallback(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, _ := open(t, nil)
		tp := topic(t, s, "t", 1)
		fill(t, tp, 3)
		g := group(t, s, "g", stream.GroupConfig{Topics: []string{"t"}, StartAt: stream.StartEarliest})
		var c *stream.Consumer
		var closeErr error
		called := false
		c = join(t, g, stream.ConsumerConfig{OnAssigned: func(context.Context, []stream.TopicPartition) {
			called = true
			closeErr = c.Close()
		}})
		if _, err := c.Poll(context.Background()); err != nil {
			t.Fatalf("Poll: %v", err)
		}
		if !called {
			t.Fatal("OnAssigned was not called")
		}
		if !errors.Is(closeErr, stream.ErrInCallback) {
			t.Errorf("Close from OnAssigned: %v, want ErrInCallback", closeErr)
		}
		if err := c.Close(); err != nil {
			t.Errorf("Close after Poll: %v", err)
		}
	})
}
