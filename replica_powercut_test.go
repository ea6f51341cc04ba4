package stream

import (
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

// TestReplicaRestartKeepsAcknowledgedRecords: a replica restarted after
// a power cut must not truncate acknowledged records when it asks the
// leader where their logs diverge (RELIABILITY.md, "Bugs the suite
// found", item 4).
//
// The follower's newest epoch (2, which it led without writing) is
// unknown to the leader, and the epoch the leader answers with (1, whose
// batches the follower never got) is unknown to the follower. Such a
// follower truncated to its high watermark; and a restarted replica's
// high watermark is its log start (there is no high-watermark
// checkpoint), so it cut its whole log, acknowledged records included,
// while the controller, which had not noticed the restart, kept it in
// the ISR. Elected leader before it fetched them back, it lost them,
// and the other replicas truncated to its log. Kafka truncates there to
// the follower's own end of the epoch the leader answered with and asks
// again (KIP-279), never to the high watermark.
func TestReplicaRestartKeepsAcknowledgedRecords(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := replicaConfig{lagTime: time.Hour} // the ISR changes only as the test says
		c := newReplCluster(t, 1, 3, 2, cfg)
		replicas := []NodeID{1, 2, 3}
		c.meta.set(replicaAssignment{Leader: 1, LeaderEpoch: 0, Replicas: replicas, ISR: replicas})
		var recs []acked
		for i := range 10 {
			v := fmt.Sprint("acknowledged ", i)
			off, err := appendValue(t, c.nodes[1].p, v)
			if err != nil {
				t.Fatal(err)
			}
			recs = append(recs, acked{off, v})
		}

		// Epoch 1: node 2 leads and writes batches that only node 1
		// fetches (node 3 is cut off), so they are not acknowledged.
		c.net.Isolate(3)
		c.meta.set(replicaAssignment{Leader: 2, LeaderEpoch: 1, Replicas: replicas, ISR: replicas})
		errs := make(chan error, 5)
		for i := range 5 {
			go func() {
				_, err := appendValue(t, c.nodes[2].p, fmt.Sprint("epoch 1 ", i))
				errs <- err
			}()
		}
		c.waitFor("node 1 to fetch epoch 1", func() bool { leo, _ := c.nodes[1].p.logEnds(); return leo == 15 })

		// Epoch 2: node 3 leads, still cut off: it writes batches of its
		// own, fsynced there, never acknowledged. Then its power goes.
		c.meta.set(replicaAssignment{Leader: 3, LeaderEpoch: 2, Replicas: replicas, ISR: replicas})
		for range 5 {
			if err := <-errs; !errors.Is(err, ErrNotLeader) {
				t.Fatalf("append in epoch 1: %v, want ErrNotLeader", err)
			}
		}
		for i := range 3 {
			go func() {
				_, err := appendValue(t, c.nodes[3].p, fmt.Sprint("epoch 2 ", i))
				errs <- err
			}()
		}
		c.waitFor("node 3's epoch 2 batches on its disk", func() bool { _, d := c.nodes[3].p.logEnds(); return d == 13 })
		c.crash(3)
		for range 3 {
			if err := <-errs; err == nil {
				t.Fatal("append in epoch 2 acknowledged by a leader cut off from its ISR")
			}
		}

		// Epoch 3: node 2 leads again. Node 3 comes back on what its disk
		// kept before the controller noticed it was gone: still in the
		// ISR. It asks node 2 where its log diverges and truncates there;
		// then the network cuts it off, before it fetches anything back.
		c.meta.set(replicaAssignment{Leader: 2, LeaderEpoch: 3, Replicas: replicas, ISR: replicas})
		c.net.Heal()
		fs := c.nodes[3].fs.(*MemFS).Restart(0)
		n3 := c.startNode(3, fs, "/data/t-0", 2, cfg, replTestConfig)
		var cut atomic.Bool
		fs.Hook(func(op, path string) {
			if op == "truncate" && strings.HasSuffix(path, ".log") && cut.CompareAndSwap(false, true) {
				c.net.Isolate(3)
			}
		})
		c.meta.mu.Lock()
		a := c.meta.a
		c.meta.mu.Unlock()
		if err := n3.m.update(rtTopic, 0, a); err != nil {
			t.Fatal(err)
		}
		c.waitFor("node 3 to truncate its epoch 2 batches", func() bool { return cut.Load() })
		// (logEnds waits for the truncation under way.)

		// Node 2 fails; the controller elects node 3, in the ISR. The new
		// leader holds every acknowledged record.
		c.crash(2)
		c.net.Heal()
		c.meta.set(replicaAssignment{Leader: 3, LeaderEpoch: 4, Replicas: replicas, ISR: []NodeID{1, 3}})
		if leo, _ := n3.p.logEnds(); leo < 10 {
			t.Fatalf("node 3, elected from the ISR, holds %d records: it cut acknowledged records 0 to 9 from its log", leo)
		}
		v := "after the failover"
		off, err := appendValue(t, n3.p, v)
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, acked{off, v})
		c.waitFor("node 1's high watermark", func() bool { return c.nodes[1].p.HighWatermark() == off+1 })
		c.checkAcked(recs, 1, 3)
		c.checkIdentical(1, 3)
	})
}
