package stream_test

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"github.com/instream/stream"
)

// A member's liveness is its heartbeat, not its Poll: a handler slower
// than SessionTimeout keeps the member; only MaxPollInterval without a
// Poll evicts it, and its next Poll reports the loss (OnLost) and rejoins.
func TestSlowHandlerKeepsTheMemberUntilMaxPollInterval(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, _ := open(t, nil)
		tp := topic(t, s, "t", 2)
		fill(t, tp, 5)
		g := group(t, s, "g", stream.GroupConfig{Topics: []string{"t"}, StartAt: stream.StartEarliest, SessionTimeout: 10 * time.Second})
		var la lostLog
		cc := stream.ConsumerConfig{FetchMaxWait: time.Second, MaxPollInterval: time.Minute}
		a := join(t, g, la.config(cc))
		b := join(t, g, stream.ConsumerConfig{FetchMaxWait: time.Second, MaxPollInterval: time.Hour})
		defer a.Close()
		defer b.Close()
		for range 2 {
			poll(t, a)
			poll(t, b)
		}
		gen := g.Generation()
		time.Sleep(50 * time.Second) // a's handler: five session timeouts without a Poll
		synctest.Wait()
		if m := g.Members(); len(m) != 2 || g.Generation() != gen {
			t.Fatalf("members %v generation %d (was %d): a member whose handler outlasts SessionTimeout was evicted", m, g.Generation(), gen)
		}
		poll(t, a)
		time.Sleep(time.Minute + time.Second) // past MaxPollInterval
		synctest.Wait()
		if m := g.Members(); len(m) != 1 {
			t.Fatalf("members %v: a member without a Poll for MaxPollInterval must be evicted", m)
		}
		if err := a.Commit(context.Background()); !errors.Is(err, stream.ErrFenced) {
			t.Errorf("commit after eviction: %v, want ErrFenced", err)
		}
		poll(t, a)
		if n := la.lostOf("t"); n != 1 {
			t.Errorf("OnLost reported %d partitions after the eviction, want 1 (revoked: %v)", n, la.revoked)
		}
		if len(g.Members()) != 2 {
			t.Errorf("a did not rejoin: %v", g.Members())
		}
	})
}

// A member stuck in a rebalance callback does not block the group
// forever: past its MaxPollInterval (the rebalance timeout) it is evicted
// and the others take its partitions.
func TestRebalanceTimeoutEvictsAStuckMember(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, _ := open(t, nil)
		topic(t, s, "t", 2)
		g := group(t, s, "g", stream.GroupConfig{Topics: []string{"t"}})
		stuck, release := make(chan struct{}), make(chan struct{})
		a := join(t, g, stream.ConsumerConfig{
			FetchMaxWait: time.Second, MaxPollInterval: time.Minute,
			OnRevoked: func(context.Context, []stream.TopicPartition) {
				select {
				case <-stuck: // Close's revocation
				default:
					close(stuck)
					<-release
				}
			},
		})
		poll(t, a)
		b := join(t, g, stream.ConsumerConfig{FetchMaxWait: time.Second})
		defer b.Close()
		aPolled := make(chan error, 1)
		go func() {
			_, err := a.Poll(context.Background())
			aPolled <- err
		}()
		<-stuck
		for range 70 {
			poll(t, b)
		}
		if got := b.Assignment(); len(got) != 2 {
			t.Errorf("b holds %v while a is stuck in OnRevoked past its rebalance timeout", got)
		}
		close(release)
		<-aPolled
		a.Close()
	})
}

// A static member replaced by another consumer with its InstanceID is
// fenced for good: every later call fails with ErrFenced, and it never
// rejoins, not even once the replacement's slot expired.
func TestFencedStaticMemberStaysOut(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, _ := open(t, nil)
		topic(t, s, "t", 2)
		g := group(t, s, "g", stream.GroupConfig{Topics: []string{"t"}, SessionTimeout: 10 * time.Second})
		cc := stream.ConsumerConfig{InstanceID: "x", FetchMaxWait: time.Second}
		var l lostLog
		a1 := join(t, g, l.config(cc))
		poll(t, a1)
		a2 := join(t, g, cc)
		poll(t, a2)
		if _, err := a1.Poll(context.Background()); !errors.Is(err, stream.ErrFenced) {
			t.Fatalf("Poll of the replaced member: %v, want ErrFenced", err)
		}
		if n := l.lostOf("t"); n != 2 {
			t.Errorf("OnLost reported %d partitions for the fenced member, want 2", n)
		}
		a2.Close()
		time.Sleep(11 * time.Second) // a2's static slot expires
		synctest.Wait()
		for range 2 {
			if _, err := a1.Poll(context.Background()); !errors.Is(err, stream.ErrFenced) {
				t.Fatalf("Poll of a fenced member after the slot expired: %v, want ErrFenced", err)
			}
		}
		if err := a1.Commit(context.Background()); !errors.Is(err, stream.ErrFenced) {
			t.Errorf("Commit of a fenced member: %v, want ErrFenced", err)
		}
		if m := g.Members(); len(m) != 0 {
			t.Errorf("members %v: the fenced member came back", m)
		}
		if err := a1.Close(); err != nil {
			t.Errorf("Close of a fenced member: %v", err)
		}
	})
}

// A member whose heartbeats stop (a hung process, simulated) is evicted
// after SessionTimeout even though MaxPollInterval is far away.
func TestHeartbeatsStoppedEvict(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, _ := open(t, nil)
		topic(t, s, "t", 2)
		g := group(t, s, "g", stream.GroupConfig{Topics: []string{"t"}, SessionTimeout: 10 * time.Second})
		cc := stream.ConsumerConfig{FetchMaxWait: time.Second, MaxPollInterval: time.Hour}
		a := join(t, g, cc)
		b := join(t, g, cc)
		defer a.Close()
		defer b.Close()
		poll(t, a)
		poll(t, b)
		stream.StopHeartbeats(a) // a's last sign of life: its Poll ended 1s ago
		time.Sleep(8 * time.Second)
		synctest.Wait()
		if len(g.Members()) != 2 {
			t.Fatalf("evicted before the session timeout: %v", g.Members())
		}
		time.Sleep(3 * time.Second)
		synctest.Wait()
		if m := g.Members(); len(m) != 1 || m[0] != b.MemberID() {
			t.Fatalf("members %v after a's heartbeats stopped for the session timeout", m)
		}
	})
}

// With InitialRebalanceDelay, workers started together share the
// partitions from the start: nothing is handed out until the delay after
// the last join, and nobody revokes anything.
func TestInitialRebalanceDelay(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, _ := open(t, nil)
		topic(t, s, "t", 4)
		g := group(t, s, "g", stream.GroupConfig{Topics: []string{"t"}, InitialRebalanceDelay: 3 * time.Second})
		var la, lb lostLog
		cc := stream.ConsumerConfig{FetchMaxWait: time.Second}
		a := join(t, g, la.config(cc))
		defer a.Close()
		poll(t, a) // t=1s
		if got := a.Assignment(); len(got) != 0 {
			t.Fatalf("the first member got %v during the initial delay", got)
		}
		b := join(t, g, lb.config(cc)) // extends the delay to t=4s
		defer b.Close()
		poll(t, a)
		poll(t, b) // t=3s
		if len(a.Assignment())+len(b.Assignment()) != 0 {
			t.Fatalf("assigned during the extended delay: %v %v", a.Assignment(), b.Assignment())
		}
		time.Sleep(time.Second)
		synctest.Wait()
		poll(t, a)
		poll(t, b)
		if len(a.Assignment()) != 2 || len(b.Assignment()) != 2 {
			t.Errorf("after the delay: a %v, b %v; want two partitions each", a.Assignment(), b.Assignment())
		}
		if len(la.revoked)+len(lb.revoked) != 0 {
			t.Errorf("revocations %v %v: workers started together must not shuffle partitions", la.revoked, lb.revoked)
		}
	})
}
