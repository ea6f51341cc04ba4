package stream

import (
	"errors"
	"fmt"
	"slices"
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

// TestReplicaLeaderRestartKeepsItsEpoch: a leader whose power is cut and
// which comes back before the controller notices (within
// SessionTimeout) must not lead again in the same leader epoch, or the
// replicas diverge and an acknowledged record is lost (RELIABILITY.md,
// "Bugs the suite found", item 4, cause 1).
//
// The followers fetch a batch from the leader before the leader fsyncs
// it (fetches read past the durable end, as Kafka's do); the power goes
// before that fsync, so the restarted leader's log ends before the
// batch. Leading again in the same epoch, its next append took that
// offset, the followers' next fetch started past the batch they hold
// (the leader epochs agree), the high watermark passed it, and the
// leader acknowledged a record that the two followers did not hold.
// Kafka avoids it with the broker epoch (KIP-380), and so does the
// controller here: the restarted node's heartbeat carries a new Boot, it
// leaves every ISR, and its leaderships move to a new leader epoch; the
// node acts on the metadata only once it holds that Boot. The metadata
// here is what the real controller makes of the restart.
func TestReplicaLeaderRestartKeepsItsEpoch(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctl := newController()
		for id := range NodeID(3) {
			if out := ctl.apply(&command{Heartbeat: &cmdHeartbeat{Node: id + 1, Session: 100, Boot: 1}}); out.err != nil {
				t.Fatal(out.err)
			}
		}
		if out := ctl.apply(mkTopic(rtTopic, 1, 3)); out.err != nil {
			t.Fatal(out.err)
		}
		metadata := func() replicaAssignment {
			t.Helper()
			_, p, err := ctl.partition(rtTopic, 0)
			if err != nil {
				t.Fatal(err)
			}
			return replicaAssignment{Leader: p.Leader, LeaderEpoch: p.LeaderEpoch, PartitionEpoch: p.PartitionEpoch,
				Replicas: slices.Clone(p.Replicas), ISR: slices.Clone(p.ISR)}
		}
		cfg := replicaConfig{lagTime: time.Hour}
		c := newReplCluster(t, 1, 3, 2, cfg)
		c.meta.set(metadata())
		if a := metadata(); a.Leader != 1 {
			t.Fatalf("metadata %+v: the test needs node 1 leading", a)
		}
		var recs []acked
		for i := range 10 {
			v := fmt.Sprint("acknowledged ", i)
			off, err := appendValue(t, c.nodes[1].p, v)
			if err != nil {
				t.Fatal(err)
			}
			recs = append(recs, acked{off, v})
		}
		// The power goes as the leader is about to fsync the next batch,
		// once both followers hold it.
		fs1 := c.nodes[1].fs.(*MemFS)
		fs1.Hook(func(op, path string) {
			if op != "syncdata" && op != "sync" {
				return
			}
			for {
				l2, _ := c.nodes[2].p.logEnds()
				l3, _ := c.nodes[3].p.logEnds()
				if l2 == 11 && l3 == 11 {
					break
				}
				time.Sleep(time.Millisecond)
			}
			fs1.CutPower()
		})
		if _, err := appendValue(t, c.nodes[1].p, "first attempt"); err == nil {
			t.Fatal("append acknowledged though the leader's fsync failed")
		}
		c.crash(1)
		fs1.Hook(nil)
		// Node 1 comes back within its session: the controller hears its
		// second incarnation before node 1 acts on the metadata.
		if out := ctl.apply(&command{Heartbeat: &cmdHeartbeat{Node: 1, Session: 100, Boot: 2}}); out.err != nil {
			t.Fatal(out.err)
		}
		c.meta.set(metadata())
		c.restart(1, 0, 2, cfg)
		leader := c.nodes[metadata().Leader]
		v := "after the restart"
		off, err := appendValue(t, leader.p, v)
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, acked{off, v})
		c.waitFor("high watermarks", func() bool {
			for _, id := range []NodeID{1, 2, 3} {
				if c.nodes[id].p.HighWatermark() != off+1 {
					return false
				}
			}
			return true
		})
		for _, id := range []NodeID{1, 2, 3} {
			got, err := c.nodes[id].p.Read(off, 1)
			if err != nil || len(got) != 1 || string(got[0].Value) != v {
				var held string
				if len(got) == 1 {
					held = string(got[0].Value)
				}
				t.Errorf("node %d holds %q (%v) at offset %d, below its high watermark; acknowledged there: %q", id, held, err, off, v)
			}
		}
		c.checkAcked(recs, 1, 2, 3)
		c.checkIdentical(1, 2, 3)
	})
}
