package stream

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// The replication data plane against a fake metadata source: three
// replicas of one partition over a seeded MemNetwork, each on its own
// MemFS, under testing/synctest (the lag timer, long polls and backoffs
// run on its fake clock).

const rtTopic = "t"

// fakeMeta is the metadata source and ISR sink a controller will be: it
// holds the partition's assignment, applies fenced ISR changes, and
// pushes every change to every node.
type fakeMeta struct {
	c *replCluster

	mu      sync.Mutex
	a       replicaAssignment
	changes []isrChange     // accepted ones
	cutOff  map[NodeID]bool // nodes that cannot reach the controller
}

func (f *fakeMeta) alterISR(_ context.Context, c isrChange) error {
	f.mu.Lock()
	if f.cutOff[c.Leader] {
		f.mu.Unlock()
		return fmt.Errorf("alter ISR from node %d: %w", c.Leader, ErrUnreachable)
	}
	if c.Leader != f.a.Leader || c.LeaderEpoch != f.a.LeaderEpoch || c.PartitionEpoch != f.a.PartitionEpoch {
		f.mu.Unlock()
		return fmt.Errorf("alter ISR: stale request %+v, current %+v: %w", c, f.a, ErrFenced)
	}
	f.a.ISR = slices.Clone(c.ISR)
	slices.Sort(f.a.ISR)
	f.a.PartitionEpoch++
	f.changes = append(f.changes, c)
	a := f.a
	f.mu.Unlock()
	f.c.push(a)
	return nil
}

func (f *fakeMeta) set(a replicaAssignment) {
	f.mu.Lock()
	f.a = a
	f.mu.Unlock()
	f.c.push(a)
}

func (f *fakeMeta) isr() []NodeID {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.a.ISR)
}

type replNode struct {
	id      NodeID
	crashed bool
	fs      fileSystem
	p       *Partition
	m       *replicaManager
	t       Transport
}

type replCluster struct {
	t    testing.TB
	net  *MemNetwork
	meta *fakeMeta
	ids  []NodeID
	// mu guards nodes (restart replaces a node while the replicas'
	// goroutines push metadata) and each node's crashed.
	mu    sync.Mutex
	nodes map[NodeID]*replNode

	// hw: the highest high watermark each node showed; checkHW fails
	// the test when one goes down.
	hw map[NodeID]int64
}

var replTestConfig = partitionConfig{
	sync: SyncAlways, segmentBytes: 4 << 10, segmentAge: time.Hour,
	indexEvery: 256, maxRecordBytes: 1 << 20,
}

func newReplCluster(t testing.TB, seed int64, n, minISR int, cfg replicaConfig) *replCluster {
	return newReplClusterOn(t, seed, n, minISR, cfg, replTestConfig, func(NodeID) fileSystem {
		fs := NewMemFS()
		fs.MkdirAllDurable("/data")
		return fs
	}, func(NodeID) string { return "/data/t-0" })
}

// newReplClusterOn is newReplCluster with each node's partition
// configured by pcfg, on fsFor(id), in dirFor(id).
func newReplClusterOn(t testing.TB, seed int64, n, minISR int, cfg replicaConfig, pcfg partitionConfig, fsFor func(NodeID) fileSystem, dirFor func(NodeID) string) *replCluster {
	t.Logf("MemNetwork seed %d", seed)
	c := &replCluster{t: t, net: NewMemNetwork(seed), nodes: map[NodeID]*replNode{}, hw: map[NodeID]int64{}}
	c.meta = &fakeMeta{c: c}
	for i := 1; i <= n; i++ {
		id := NodeID(i)
		c.startNode(id, fsFor(id), dirFor(id), minISR, cfg, pcfg)
		c.ids = append(c.ids, id)
	}
	t.Cleanup(c.close)
	return c
}

// startNode opens node id's partition on fs and starts its data plane.
func (c *replCluster) startNode(id NodeID, fs fileSystem, dir string, minISR int, cfg replicaConfig, pcfg partitionConfig) *replNode {
	c.t.Helper()
	p, err := openPartition(fs, dir, rtTopic, 0, pcfg, slog.New(slog.DiscardHandler))
	if err != nil {
		c.t.Fatal(err)
	}
	tr := c.net.Transport(id)
	msg := newMessenger(id, tr, nil)
	m := newReplicaManager(id, msg, c.meta, cfg, nil)
	if _, err := m.add(p, minISR); err != nil {
		c.t.Fatal(err)
	}
	if err := msg.serve(); err != nil {
		c.t.Fatal(err)
	}
	n := &replNode{id: id, fs: fs, p: p, m: m, t: tr}
	c.mu.Lock()
	c.nodes[id] = n
	c.mu.Unlock()
	return n
}

// crash kills node id: its data plane stops, its transport closes, and
// the power goes on its MemFS (what no fsync covered is lost).
func (c *replCluster) crash(id NodeID) {
	c.mu.Lock()
	n := c.nodes[id]
	n.crashed = true // from now on: its failures are the crash's
	c.mu.Unlock()
	n.m.close()
	n.t.Close()
	n.fs.(*MemFS).CutPower()
	n.p.close() // fails: the power is out
}

// node returns node id as it is now (a restart replaces it).
func (c *replCluster) node(id NodeID) *replNode {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nodes[id]
}

// restart brings a crashed node back on what its disk kept, and hands
// it the current metadata.
func (c *replCluster) restart(id NodeID, seed uint64, minISR int, cfg replicaConfig) {
	fs := c.nodes[id].fs.(*MemFS).Restart(seed)
	c.hw[id] = 0 // a new process: its high watermark starts again
	c.startNode(id, fs, "/data/t-0", minISR, cfg, replTestConfig)
	c.meta.mu.Lock()
	a := c.meta.a
	c.meta.mu.Unlock()
	if err := c.nodes[id].m.update(rtTopic, 0, a); err != nil {
		c.t.Fatal(err)
	}
}

func (c *replCluster) push(a replicaAssignment) {
	for _, id := range c.ids {
		c.mu.Lock()
		n, crashed := c.nodes[id], c.nodes[id].crashed
		c.mu.Unlock()
		if crashed {
			continue
		}
		if err := n.m.update(rtTopic, 0, a); err != nil && !errors.Is(err, ErrUnknownTopic) {
			c.t.Error(err)
		}
	}
}

func (c *replCluster) close() {
	for _, id := range c.ids {
		n := c.nodes[id]
		if n.crashed {
			continue
		}
		n.m.close()
		n.t.Close()
		if err := n.p.close(); err != nil {
			c.t.Errorf("node %d: close: %v", id, err)
		}
	}
}

// waitFor polls cond on the fake clock until it holds, failing after a
// (fake) minute.
func (c *replCluster) waitFor(what string, cond func() bool) {
	c.t.Helper()
	for deadline := time.Now().Add(time.Minute); !cond(); {
		if time.Now().After(deadline) {
			c.t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// checkHW fails the test when a node's high watermark went down.
func (c *replCluster) checkHW() {
	c.t.Helper()
	for _, id := range c.ids {
		hw := c.nodes[id].p.HighWatermark()
		if hw < c.hw[id] {
			c.t.Errorf("node %d: high watermark went from %d down to %d", id, c.hw[id], hw)
		}
		c.hw[id] = hw
	}
}

// logBytes returns the raw batches of p's log below upto.
func logBytes(t testing.TB, p *Partition, upto int64) []byte {
	t.Helper()
	var out []byte
	for off := int64(0); off < upto; {
		b, err := p.readRaw(off, 64*1024)
		if err != nil {
			t.Fatalf("read raw at %d: %v", off, err)
		}
		if len(b) == 0 {
			t.Fatalf("log ends at %d, before %d", off, upto)
		}
		for pos := 0; pos < len(b); {
			h, err := parseBatchHeader(b[pos:])
			if err != nil {
				t.Fatal(err)
			}
			if h.BaseOffset >= upto {
				return out
			}
			out = append(out, b[pos:pos+int(h.Size())]...)
			pos += int(h.Size())
			off = h.LastOffset() + 1
		}
	}
	return out
}

// checkIdentical fails the test unless every replica in ids holds the
// same bytes below the smallest of their high watermarks.
func (c *replCluster) checkIdentical(ids ...NodeID) {
	c.t.Helper()
	hw := int64(1 << 62)
	for _, id := range ids {
		hw = min(hw, c.nodes[id].p.HighWatermark())
	}
	want := logBytes(c.t, c.nodes[ids[0]].p, hw)
	for _, id := range ids[1:] {
		if got := logBytes(c.t, c.nodes[id].p, hw); !bytes.Equal(got, want) {
			c.t.Errorf("node %d's log below %d differs from node %d's (%d and %d bytes)", id, hw, ids[0], len(got), len(want))
		}
	}
}

// acked is a record acknowledged to a producer.
type acked struct {
	offset int64
	value  string
}

// checkAcked fails the test unless every replica in ids holds every
// acknowledged record at its offset, below its high watermark.
func (c *replCluster) checkAcked(recs []acked, ids ...NodeID) {
	c.t.Helper()
	for _, id := range ids {
		p := c.nodes[id].p
		for _, a := range recs {
			got, err := p.Read(a.offset, 1)
			if err != nil || len(got) != 1 || string(got[0].Value) != a.value {
				c.t.Fatalf("node %d: acknowledged record %q at offset %d: got %v, %v", id, a.value, a.offset, got, err)
			}
		}
	}
}

func appendValue(t testing.TB, p *Partition, v string) (int64, error) {
	t.Helper()
	return p.Append(&Record{Value: []byte(v)})
}

func all3() replicaAssignment {
	return replicaAssignment{Leader: 1, LeaderEpoch: 0, Replicas: []NodeID{1, 2, 3}, ISR: []NodeID{1, 2, 3}}
}

func TestReplicaAcksAllWaitsForISR(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newReplCluster(t, 1, 3, 2, replicaConfig{lagTime: time.Second})
		c.meta.set(all3())
		leader := c.nodes[1].p
		var recs []acked
		for i := range 200 {
			v := fmt.Sprintf("record %d %s", i, bytes.Repeat([]byte{'x'}, i%50))
			off, err := appendValue(t, leader, v)
			if err != nil {
				t.Fatalf("append %d: %v", i, err)
			}
			recs = append(recs, acked{off, v})
			// Acknowledged: every in-sync replica holds it on disk.
			for _, id := range c.ids {
				if _, durable := c.nodes[id].p.logEnds(); durable <= off {
					t.Fatalf("record at %d acknowledged while node %d's durable end is %d", off, id, durable)
				}
			}
			c.checkHW()
		}
		end := recs[len(recs)-1].offset + 1
		c.waitFor("followers' high watermarks", func() bool {
			return c.nodes[2].p.HighWatermark() == end && c.nodes[3].p.HighWatermark() == end
		})
		c.checkHW()
		c.checkIdentical(1, 2, 3)
		c.checkAcked(recs, 1, 2, 3)

		// A follower refuses appends, naming the leader.
		_, err := appendValue(t, c.nodes[2].p, "on a follower")
		if !errors.Is(err, ErrNotLeader) || !bytes.Contains([]byte(err.Error()), []byte("node 1")) {
			t.Fatalf("append on a follower: %v, want ErrNotLeader naming node 1", err)
		}
		if leo, _ := c.nodes[2].p.logEnds(); leo != end {
			t.Fatalf("follower's log end %d after a refused append, want %d", leo, end)
		}
	})
}

func TestReplicaLaggingFollowerLeavesAndRejoinsISR(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newReplCluster(t, 2, 3, 2, replicaConfig{lagTime: time.Second})
		c.meta.set(all3())
		leader := c.nodes[1].p
		var recs []acked
		add := func(v string) {
			t.Helper()
			off, err := appendValue(t, leader, v)
			if err != nil {
				t.Fatalf("append %q: %v", v, err)
			}
			recs = append(recs, acked{off, v})
			c.checkHW()
		}
		for i := range 20 {
			add(fmt.Sprint("before ", i))
		}

		c.net.Isolate(3)
		start := time.Now()
		add("while 3 is cut off") // waits for the shrink
		if waited := time.Since(start); waited < time.Second {
			t.Errorf("acknowledged after %v with node 3 cut off, before ReplicaLagTime", waited)
		}
		if isr := c.meta.isr(); !slices.Equal(isr, []NodeID{1, 2}) {
			t.Fatalf("ISR %v after node 3 lagged, want [1 2]", isr)
		}
		for i := range 50 {
			add(fmt.Sprint("without 3 ", i))
		}
		if _, durable := c.nodes[3].p.logEnds(); durable > recs[20].offset {
			t.Fatalf("node 3 cut off holds offset %d", durable)
		}

		c.net.Heal()
		c.waitFor("node 3 back in the ISR", func() bool { return slices.Contains(c.meta.isr(), 3) })
		for i := range 20 {
			add(fmt.Sprint("after ", i))
		}
		end := recs[len(recs)-1].offset + 1
		c.waitFor("replicas caught up", func() bool {
			return c.nodes[2].p.HighWatermark() == end && c.nodes[3].p.HighWatermark() == end
		})
		c.checkHW()
		c.checkIdentical(1, 2, 3)
		c.checkAcked(recs, 1, 2, 3)
	})
}

func TestReplicaMinInSyncReplicas(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newReplCluster(t, 3, 3, 3, replicaConfig{lagTime: time.Second})
		c.meta.set(all3())
		leader := c.nodes[1].p
		if _, err := appendValue(t, leader, "all three"); err != nil {
			t.Fatal(err)
		}
		c.net.Isolate(3)
		// Written, but the ISR shrinks below 3 before the high
		// watermark passes it: NOT_ENOUGH_REPLICAS_AFTER_APPEND.
		off, err := appendValue(t, leader, "left below min ISR")
		if !errors.Is(err, ErrNotEnoughReplicas) {
			t.Fatalf("append while the ISR shrinks below MinInSyncReplicas: %v, want ErrNotEnoughReplicas", err)
		}
		if off != 1 {
			t.Fatalf("offset %d, want 1 (written)", off)
		}
		// Now refused before appending: nothing written.
		leo, _ := leader.logEnds()
		if _, err := appendValue(t, leader, "refused"); !errors.Is(err, ErrNotEnoughReplicas) {
			t.Fatalf("append with an ISR below MinInSyncReplicas: %v, want ErrNotEnoughReplicas", err)
		}
		var b Batch
		b.Add(nil, []byte("refused too"))
		if _, err := leader.AppendBatch(&b); !errors.Is(err, ErrNotEnoughReplicas) {
			t.Fatalf("AppendBatch with an ISR below MinInSyncReplicas: %v, want ErrNotEnoughReplicas", err)
		}
		if leo2, _ := leader.logEnds(); leo2 != leo {
			t.Fatalf("log end moved from %d to %d on refused appends", leo, leo2)
		}
		c.net.Heal()
		c.waitFor("node 3 back in the ISR", func() bool { return len(c.meta.isr()) == 3 })
		if _, err := appendValue(t, leader, "all three again"); err != nil {
			t.Fatal(err)
		}
		c.checkHW()
	})
}

// TestReplicaLeaderChangeTruncatesDivergentSuffix is KIP-101's case: the
// old leader, cut off, wrote records no follower has; a follower takes
// over in a new epoch and writes other records at those offsets. Back,
// the old leader truncates its suffix and follows; nothing acknowledged
// is lost and the logs agree.
func TestReplicaLeaderChangeTruncatesDivergentSuffix(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newReplCluster(t, 4, 3, 2, replicaConfig{lagTime: time.Second})
		c.meta.set(all3())
		old := c.nodes[1].p
		var recs []acked
		for i := range 30 {
			v := fmt.Sprint("epoch 0 ", i)
			off, err := appendValue(t, old, v)
			if err != nil {
				t.Fatal(err)
			}
			recs = append(recs, acked{off, v})
		}
		c.waitFor("followers' high watermarks", func() bool {
			return c.nodes[2].p.HighWatermark() == 30 && c.nodes[3].p.HighWatermark() == 30
		})
		c.checkHW()

		// The leader is cut off; appends to it are written, never
		// acknowledged.
		c.net.Isolate(1)
		errs := make(chan error, 5)
		for i := range 5 {
			go func() {
				_, err := appendValue(t, old, fmt.Sprint("divergent ", i))
				errs <- err
			}()
		}
		c.waitFor("the divergent suffix", func() bool { leo, _ := old.logEnds(); return leo == 35 })

		// The controller moves leadership to node 2, from the ISR.
		c.meta.set(replicaAssignment{Leader: 2, LeaderEpoch: 1, PartitionEpoch: 0, Replicas: []NodeID{1, 2, 3}, ISR: []NodeID{2, 3}})
		for range 5 {
			if err := <-errs; !errors.Is(err, ErrNotLeader) {
				t.Fatalf("unacknowledged append on the deposed leader: %v, want ErrNotLeader", err)
			}
		}
		if _, err := appendValue(t, old, "to the old leader"); !errors.Is(err, ErrNotLeader) || !bytes.Contains([]byte(err.Error()), []byte("node 2")) {
			t.Fatalf("append on the deposed leader: %v, want ErrNotLeader naming node 2", err)
		}
		leader := c.nodes[2].p
		for i := range 10 {
			v := fmt.Sprint("epoch 1 ", i)
			off, err := appendValue(t, leader, v)
			if err != nil {
				t.Fatal(err)
			}
			recs = append(recs, acked{off, v})
			c.checkHW()
		}
		if recs[30].offset != 30 {
			t.Fatalf("new leader's first record at %d, want 30", recs[30].offset)
		}

		c.net.Heal()
		c.waitFor("node 1 back in the ISR", func() bool { return slices.Contains(c.meta.isr(), 1) })
		for i := range 10 {
			v := fmt.Sprint("epoch 1, all back ", i)
			off, err := appendValue(t, leader, v)
			if err != nil {
				t.Fatal(err)
			}
			recs = append(recs, acked{off, v})
		}
		end := recs[len(recs)-1].offset + 1
		c.waitFor("replicas caught up", func() bool {
			return c.nodes[1].p.HighWatermark() == end && c.nodes[3].p.HighWatermark() == end
		})
		c.checkHW()
		c.checkIdentical(1, 2, 3)
		c.checkAcked(recs, 1, 2, 3)
		// Every batch carries the epoch of the leader that wrote it, on
		// every replica.
		for _, id := range c.ids {
			b := logBytes(t, c.nodes[id].p, end)
			for pos := 0; pos < len(b); {
				h, _ := parseBatchHeader(b[pos:])
				if want := int32(min(h.BaseOffset/30, 1)); h.LeaderEpoch != want {
					t.Fatalf("node %d: batch at offset %d has leader epoch %d, want %d", id, h.BaseOffset, h.LeaderEpoch, want)
				}
				pos += int(h.Size())
			}
		}
		// The divergent records are gone from the old leader.
		got, err := old.Read(30, 1)
		if err != nil || len(got) != 1 || string(got[0].Value) != "epoch 1 0" {
			t.Fatalf("old leader at offset 30: %v, %v; want the new leader's record", got, err)
		}
		// Its epoch cache agrees with the new leader's.
		_, e0, end0, _ := old.endOffsetForEpoch(0)
		_, e1, end1, _ := leader.endOffsetForEpoch(0)
		if e0 != e1 || end0 != end1 || end0 != 30 {
			t.Fatalf("epoch 0 ends at %d (epoch %d) on the old leader, %d (epoch %d) on the new, want 30", end0, e0, end1, e1)
		}
	})
}

// TestReplicaFetchRefusals: fetches and epoch-end requests that are
// malformed, in another epoch, or sent to a follower get typed errors,
// never a panic.
func TestReplicaFetchRefusals(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newReplCluster(t, 5, 3, 1, replicaConfig{lagTime: time.Second})
		c.meta.set(replicaAssignment{Leader: 1, LeaderEpoch: 4, Replicas: []NodeID{1, 2, 3}, ISR: []NodeID{1, 2, 3}})
		m1, m2 := c.nodes[1].m, c.nodes[2].m
		ctx := context.Background()
		fetch := func(m *replicaManager, from NodeID, f fetchRequest) error {
			_, err := m.handleFetch(ctx, envelope{Version: protoVersion, Kind: kindFetch, From: from, Payload: f.encode()})
			return err
		}
		good := fetchRequest{topic: rtTopic, epoch: 4, maxBytes: 1024}
		for _, tc := range []struct {
			name string
			m    *replicaManager
			from NodeID
			f    fetchRequest
			want error
		}{
			{"old epoch", m1, 2, fetchRequest{topic: rtTopic, epoch: 3, maxBytes: 1024}, ErrFenced},
			{"newer epoch", m1, 2, fetchRequest{topic: rtTopic, epoch: 5, maxBytes: 1024}, ErrFenced},
			{"to a follower", m2, 3, good, ErrNotLeader},
			{"unknown partition", m1, 2, fetchRequest{topic: "other", epoch: 4}, ErrNotLeader},
			{"not a replica", m1, 9, good, ErrBadRequest},
			{"past the log end", m1, 2, fetchRequest{topic: rtTopic, epoch: 4, fetchOffset: 10}, ErrOffsetOutOfRange},
			{"negative offset", m1, 2, fetchRequest{topic: rtTopic, epoch: 4, fetchOffset: -1}, ErrBadRequest},
		} {
			if err := fetch(tc.m, tc.from, tc.f); !errors.Is(err, tc.want) {
				t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
			}
		}
		payload := good.encode()
		for n := range len(payload) {
			_, err := m1.handleFetch(ctx, envelope{Version: protoVersion, Kind: kindFetch, From: 2, Payload: payload[:n]})
			if !errors.Is(err, ErrBadRequest) {
				t.Fatalf("fetch request cut to %d bytes: %v, want ErrBadRequest", n, err)
			}
			_, err = m1.handleEpochEnd(ctx, envelope{Version: protoVersion, Kind: kindEpochEnd, From: 2, Payload: payload[:min(n, 9)]})
			if err == nil {
				t.Fatalf("epoch-end request of %d bytes accepted", min(n, 9))
			}
		}
		// Over the wire too: the follower's messenger gets the sentinel.
		_, err := c.nodes[3].m.msg.call(ctx, 1, kindFetch, (&fetchRequest{topic: rtTopic, epoch: 2}).encode())
		if !errors.Is(err, ErrFenced) {
			t.Fatalf("fetch in an old epoch over the network: %v, want ErrFenced", err)
		}
	})
}

// TestReplicaLeaderCrashAndRestart: the leader loses its power; the
// controller moves leadership to an in-sync follower, which goes on
// acknowledging; the old leader comes back on what its disk kept,
// truncates to the new leader's log, catches up, and only then rejoins
// the ISR. Nothing acknowledged is lost.
func TestReplicaLeaderCrashAndRestart(t *testing.T) {
	for seed := range uint64(4) {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				cfg := replicaConfig{lagTime: time.Second}
				c := newReplCluster(t, int64(seed), 3, 2, cfg)
				c.meta.set(all3())
				var recs []acked
				write := func(p *Partition, n int, what string) {
					t.Helper()
					for i := range n {
						v := fmt.Sprint(what, " ", i)
						off, err := appendValue(t, p, v)
						if err != nil {
							t.Fatalf("append %q: %v", v, err)
						}
						recs = append(recs, acked{off, v})
						c.checkHW()
					}
				}
				write(c.nodes[1].p, 40, "first leader")
				// Unacknowledged appends in flight when the power goes.
				for i := range 3 {
					go appendValue(t, c.nodes[1].p, fmt.Sprint("in flight ", i))
				}
				c.crash(1)
				// The controller notices (SessionTimeout) and elects 2.
				c.meta.set(replicaAssignment{Leader: 2, LeaderEpoch: 1, PartitionEpoch: 0, Replicas: []NodeID{1, 2, 3}, ISR: []NodeID{2, 3}})
				write(c.nodes[2].p, 40, "second leader")

				// Node 1 comes back cut off from the leader, so it cannot
				// catch up yet: it must not rejoin the ISR. (Without the
				// cut, its fetcher may catch up before the check below
				// runs, and rejoining is then right.)
				c.net.Cut(1, 2)
				c.restart(1, seed, 2, cfg)
				// What node 1 lets readers see is acknowledged data, not
				// the suffix it wrote before the crash.
				byOffset := map[int64]string{}
				for _, r := range recs {
					byOffset[r.offset] = r.value
				}
				old := c.nodes[1].p
				for off := int64(0); off < old.HighWatermark(); off++ {
					got, err := old.Read(off, 1)
					if err != nil || len(got) != 1 || string(got[0].Value) != byOffset[off] {
						t.Fatalf("restarted node 1 shows %v, %v at offset %d, below its high watermark %d; acknowledged there: %q",
							got, err, off, old.HighWatermark(), byOffset[off])
					}
				}
				time.Sleep(3 * cfg.lagTime) // fake time: room for a wrong rejoin
				if slices.Contains(c.meta.isr(), 1) {
					t.Fatal("restarted node in the ISR before catching up")
				}
				c.net.Heal()
				c.waitFor("node 1 back in the ISR", func() bool { return slices.Contains(c.meta.isr(), 1) })
				if _, durable := c.nodes[1].p.logEnds(); durable < c.nodes[2].p.HighWatermark() {
					t.Fatalf("node 1 rejoined the ISR at %d, below the high watermark %d", durable, c.nodes[2].p.HighWatermark())
				}
				write(c.nodes[2].p, 10, "all back")
				end := recs[len(recs)-1].offset + 1
				c.waitFor("replicas caught up", func() bool {
					return c.nodes[1].p.HighWatermark() == end && c.nodes[3].p.HighWatermark() == end
				})
				c.checkIdentical(1, 2, 3)
				c.checkAcked(recs, 1, 2, 3)
			})
		})
	}
}

func TestReplicaRemove(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newReplCluster(t, 6, 3, 1, replicaConfig{lagTime: time.Second})
		c.meta.set(all3())
		if _, err := appendValue(t, c.nodes[1].p, "one"); err != nil {
			t.Fatal(err)
		}
		c.nodes[1].m.remove(rtTopic, 0)
		if _, err := appendValue(t, c.nodes[1].p, "after remove"); !errors.Is(err, ErrNotLeader) {
			t.Fatalf("append after remove: %v, want ErrNotLeader", err)
		}
		// Later metadata for it is refused, not applied.
		if err := c.nodes[1].m.update(rtTopic, 0, all3()); !errors.Is(err, ErrUnknownTopic) {
			t.Fatalf("update after remove: %v, want ErrUnknownTopic", err)
		}
		c.nodes[2].m.remove(rtTopic, 0) // stops its fetcher
		c.nodes[2].m.remove(rtTopic, 0) // twice is fine
	})
}

// TestReplicaIsolatedLeaderAppendTimesOut: a leader cut off from its
// followers and from the controller cannot shrink its ISR nor move its
// high watermark; an append there fails with ErrTimeout once the
// replication timeout passes (Kafka's REQUEST_TIMED_OUT), instead of
// waiting for ever, and is never acknowledged.
func TestReplicaIsolatedLeaderAppendTimesOut(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := replicaConfig{lagTime: time.Second, ackTimeout: 5 * time.Second}
		c := newReplCluster(t, 7, 3, 2, cfg)
		c.meta.cutOff = map[NodeID]bool{1: true}
		c.meta.set(all3())
		if _, err := appendValue(t, c.nodes[1].p, "before"); err != nil {
			t.Fatal(err)
		}
		c.net.Isolate(1)
		done := make(chan error, 1)
		start := time.Now()
		go func() {
			_, err := appendValue(t, c.nodes[1].p, "cut off")
			done <- err
		}()
		select {
		case err := <-done:
			if !errors.Is(err, ErrTimeout) {
				t.Fatalf("append on an isolated leader: %v, want ErrTimeout", err)
			}
			if waited := time.Since(start); waited < cfg.ackTimeout {
				t.Errorf("failed after %v, before the replication timeout %v", waited, cfg.ackTimeout)
			}
		case <-time.After(time.Minute): // fake time
			t.Fatal("append on an isolated leader still waiting after a minute")
		}
		if hw := c.nodes[1].p.HighWatermark(); hw != 1 {
			t.Fatalf("high watermark %d, want 1: the cut-off record is not acknowledged", hw)
		}
		c.net.Heal()
		c.meta.mu.Lock()
		clear(c.meta.cutOff)
		c.meta.mu.Unlock()
	})
}

// TestReplicaFollowerBelowLeaderLogStart: a follower away while
// retention deleted the leader's segments it still needs restarts its
// log at the leader's log start (Kafka's OffsetOutOfRange handling)
// instead of retrying for ever, catches up and rejoins the ISR.
func TestReplicaFollowerBelowLeaderLogStart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newReplCluster(t, 8, 3, 2, replicaConfig{lagTime: time.Second})
		c.meta.set(all3())
		leader := c.nodes[1].p
		var recs []acked
		write := func(n int, what string) {
			t.Helper()
			for i := range n {
				v := fmt.Sprintf("%s %d %s", what, i, bytes.Repeat([]byte{'x'}, 100))
				off, err := appendValue(t, leader, v)
				if err != nil {
					t.Fatalf("append %q: %v", v, err)
				}
				recs = append(recs, acked{off, v})
			}
		}
		write(10, "all three")
		c.waitFor("node 3's high watermark", func() bool { return c.nodes[3].p.HighWatermark() == 10 })
		c.net.Cut(1, 3)
		write(300, "without 3")
		if n, err := leader.enforceRetention(time.Now(), -1, 8<<10, math.MaxInt64); err != nil || n == 0 {
			t.Fatalf("retention deleted %d segments: %v", n, err)
		}
		start := leader.StartOffset()
		if leo, _ := c.nodes[3].p.logEnds(); leo >= start {
			t.Fatalf("node 3's log end %d is not below the leader's log start %d", leo, start)
		}
		c.net.Heal()
		c.waitFor("node 3 back in the ISR", func() bool { return slices.Contains(c.meta.isr(), 3) })
		write(10, "all back")
		end := recs[len(recs)-1].offset + 1
		c.waitFor("node 3 caught up", func() bool { return c.nodes[3].p.HighWatermark() == end })
		if got := c.nodes[3].p.StartOffset(); got != start {
			t.Fatalf("node 3's log starts at %d, want the leader's %d", got, start)
		}
		for _, id := range []NodeID{2, 3} {
			p := c.nodes[id].p
			for _, a := range recs {
				if a.offset < start {
					continue
				}
				got, err := p.Read(a.offset, 1)
				if err != nil || len(got) != 1 || string(got[0].Value) != a.value {
					t.Fatalf("node %d: acknowledged record at %d: %v, %v", id, a.offset, got, err)
				}
			}
		}
		c.checkHW()
	})
}
