package stream_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/instream/stream"
)

// Join racing Stream.Close: the consumer either fails to join with
// ErrClosed or joins and is closed; no member is left in the group, and
// -race finds nothing (Join used to write the member ID without the lock
// Close reads it under, and add a consumer Close had already closed).
func TestJoinRacesStreamClose(t *testing.T) {
	checkNoLeaks(t)
	for i := range 50 {
		s, err := stream.Open(t.TempDir(), nil)
		if err != nil {
			t.Fatal(err)
		}
		topic(t, s, "t", 2)
		g := group(t, s, "g", stream.GroupConfig{Topics: []string{"t"}})
		joined := make(chan *stream.Consumer, 1)
		go func() {
			c, err := g.Join(context.Background(), stream.ConsumerConfig{})
			if err != nil && !errors.Is(err, stream.ErrClosed) {
				t.Errorf("Join during Close: %v", err)
			}
			joined <- c
		}()
		if i%2 == 0 {
			time.Sleep(time.Duration(i) * time.Microsecond)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		c := <-joined
		if c != nil {
			if _, err := c.Poll(context.Background()); !errors.Is(err, stream.ErrClosed) {
				t.Fatalf("iteration %d: Poll of a consumer joined during Stream.Close: %v, want ErrClosed", i, err)
			}
		}
		if m := g.Members(); len(m) != 0 {
			t.Fatalf("iteration %d: members after Stream.Close: %v", i, m)
		}
	}
}

// A commit's meta.db transaction (and its fsync) runs outside the group's
// lock: another member's Poll, and the group's accessors, go on while a
// commit is stuck in its transaction.
func TestSlowCommitDoesNotBlockTheGroup(t *testing.T) {
	s, _ := open(t, nil)
	tp := topic(t, s, "t", 2)
	fill(t, tp, 4)
	g := group(t, s, "g", stream.GroupConfig{Topics: []string{"t"}, StartAt: stream.StartEarliest, CommitInterval: -1})
	cc := stream.ConsumerConfig{FetchMaxWait: time.Millisecond}
	a := join(t, g, cc)
	b := join(t, g, cc)
	defer a.Close()
	defer b.Close()
	for range 2 {
		poll(t, a)
		poll(t, b)
	}
	if len(a.Assignment()) != 1 || len(b.Assignment()) != 1 {
		t.Fatalf("assignments %v %v", a.Assignment(), b.Assignment())
	}
	entered, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	stream.SetCommitFault(g, func() { // the first commit blocks until released
		once.Do(func() {
			close(entered)
			<-release
		})
	})
	committed := make(chan error, 1)
	go func() { committed <- a.Commit(context.Background()) }()
	<-entered
	polled := make(chan error, 1)
	go func() {
		_, err := b.Poll(context.Background())
		g.Generation()
		g.Members()
		polled <- err
	}()
	select {
	case err := <-polled:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Error("another member's Poll waited for a commit's transaction")
	}
	close(release)
	if err := <-committed; err != nil {
		t.Fatal(err)
	}
	if got := committedOf(t, g, a.Assignment()[0]); got != 4 {
		t.Errorf("committed %d, want 4", got)
	}
}
