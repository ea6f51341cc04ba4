package stream

import (
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

var (
	simSeeds = flag.Int("sim.seeds", 0, "seeds TestReplicaSimulation runs (0: 12, 4 with -short); CI runs 200")
	simSeed  = flag.Int64("sim.seed", -1, "replay this one seed of TestReplicaSimulation")
)

// TestReplicaSimulation runs three replicas over a MemNetwork that drops,
// duplicates, delays and reorders messages (old-epoch fetches arrive
// late), while a writer appends with AcksAll to whichever node leads and
// the test, as a controller would and drawing from the seed: cuts the
// leader or a follower off and heals (a follower lags and catches up),
// moves leadership to an in-sync replica, crashes the leader (power cut)
// and restarts it, and fails over twice in a row (KIP-101's scenarios:
// a crashed leader back at once while its successor dies, and two
// leadership moves while appends are in flight). After every step
// (checkStep): no acknowledged record is missing below a live node's
// high watermark, no offset ever showed two values, no high watermark
// nor leader epoch went down, batch epochs never go down along a log,
// and the live replicas' logs are identical below their high watermarks.
// At the end, healed: every replica holds every acknowledged record.
//
// Each seed prints itself; -sim.seed=N replays one exactly (the fake
// clock and the seeded network make a run deterministic up to goroutine
// scheduling); -sim.seeds=N runs N seeds (CI runs more than go test).
func TestReplicaSimulation(t *testing.T) {
	seeds := int64(12) // go test -race ./... stays short; CI runs 200 more
	if testing.Short() {
		seeds = 4
	}
	if *simSeeds > 0 {
		seeds = int64(*simSeeds)
	}
	first := int64(0)
	if *simSeed >= 0 {
		first, seeds = *simSeed, 1
	}
	for seed := first; seed < first+seeds; seed++ {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			t.Logf("seed %d (replay: go test -run 'TestReplicaSimulation/seed%d$' -sim.seed=%d)", seed, seed, seed)
			synctest.Test(t, func(t *testing.T) { simulateReplicas(t, seed) })
		})
	}
}

// simState is what the checks remember across steps.
type simState struct {
	mu     sync.Mutex
	acks   map[int64]string // acknowledged: offset → value
	seen   map[int64]string // every value a live node showed below its high watermark
	epochs map[NodeID]int32 // the newest leader epoch each node applied
}

func simulateReplicas(t *testing.T, seed int64) {
	rng := rand.New(rand.NewPCG(uint64(seed), 7))
	cfg := replicaConfig{lagTime: time.Second, fetchMaxWait: 200 * time.Millisecond, ackTimeout: 10 * time.Second}
	c := newReplCluster(t, seed, 3, 2, cfg)
	c.meta.cutOff = map[NodeID]bool{}
	c.net.SetFaults(MemFaults{Drop: 0.02, Duplicate: 0.05, Delay: 5 * time.Millisecond, Reorder: 0.05})
	c.meta.set(all3())

	st := &simState{acks: map[int64]string{}, seen: map[int64]string{}, epochs: map[NodeID]int32{}}
	stop, wdone := make(chan struct{}), make(chan struct{})
	go func() { // the writer
		defer close(wdone)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			c.meta.mu.Lock()
			leader := c.meta.a.Leader
			c.meta.mu.Unlock()
			n := c.node(leader)
			if n == nil {
				time.Sleep(20 * time.Millisecond)
				continue
			}
			v := fmt.Sprintf("seed %d record %d", seed, i)
			off, err := n.p.Append(&Record{Value: []byte(v)})
			switch {
			case err == nil:
				st.mu.Lock()
				if old, ok := st.acks[off]; ok {
					t.Errorf("offset %d acknowledged twice: %q and %q", off, old, v)
				}
				st.acks[off] = v
				st.mu.Unlock()
			case errors.Is(err, ErrNotLeader), errors.Is(err, ErrNotEnoughReplicas), errors.Is(err, ErrTimeout), errors.Is(err, ErrClosed):
				time.Sleep(20 * time.Millisecond)
			default:
				c.mu.Lock()
				crashing := n.crashed
				c.mu.Unlock()
				if crashing { // the power went during the append
					continue
				}
				t.Errorf("append: %v", err)
				return
			}
		}
	}()

	// assignment returns the controller's view; setAssignment moves it.
	assignment := func() replicaAssignment {
		c.meta.mu.Lock()
		defer c.meta.mu.Unlock()
		a := c.meta.a
		a.Replicas, a.ISR = slices.Clone(a.Replicas), slices.Clone(a.ISR)
		return a
	}
	crashed := map[NodeID]bool{}
	isolated := NodeID(0)
	// elect makes an in-sync, live, reachable node other than not lead,
	// dropping the crashed ones from the ISR (a dead node leaves every
	// ISR); it reports false when there is none (the partition then
	// waits, as with unclean election off).
	// dropCrashed is the ISR without the crashed nodes, as a controller
	// shrinks it, except that the last member stays (Kafka's ISR never
	// empties: it waits for that replica, the only one known to hold
	// every acknowledged record).
	dropCrashed := func(isr []NodeID) []NodeID {
		if kept := slices.DeleteFunc(slices.Clone(isr), func(id NodeID) bool { return crashed[id] }); len(kept) > 0 {
			return kept
		}
		return isr
	}
	elect := func(step int, not NodeID) bool {
		a := assignment()
		a.ISR = dropCrashed(a.ISR)
		var candidates []NodeID
		for _, id := range a.ISR {
			if id != not && id != isolated && !crashed[id] {
				candidates = append(candidates, id)
			}
		}
		if len(candidates) == 0 {
			if crashed[a.Leader] { // leaderless until an in-sync replica returns
				a.Leader = 0
				a.LeaderEpoch++
				a.PartitionEpoch++
				t.Logf("step %d: no leader in epoch %d, ISR %v", step, a.LeaderEpoch, a.ISR)
				c.meta.set(a)
			} else if len(a.ISR) != len(c.meta.isr()) {
				a.PartitionEpoch++
				c.meta.set(a)
			}
			return false
		}
		a.Leader = candidates[rng.IntN(len(candidates))]
		a.LeaderEpoch++
		a.PartitionEpoch++
		t.Logf("step %d: node %d leads in epoch %d, ISR %v", step, a.Leader, a.LeaderEpoch, a.ISR)
		c.meta.set(a)
		return true
	}
	crash := func(step int, id NodeID) {
		t.Logf("step %d: crash node %d", step, id)
		c.crash(id)
		crashed[id] = true
		if assignment().Leader == id {
			elect(step, id)
		} else {
			a := assignment()
			a.ISR = dropCrashed(a.ISR)
			a.PartitionEpoch++
			c.meta.set(a)
		}
	}
	restart := func(step int, id NodeID) {
		t.Logf("step %d: restart node %d", step, id)
		c.restart(id, uint64(seed)+uint64(step), 2, cfg)
		crashed[id] = false
		delete(st.epochs, id) // a new process
	}

	for step := range 30 {
		switch rng.IntN(8) {
		case 0: // the leader or a follower cut off, reachable by the writer
			if isolated == 0 {
				isolated = NodeID(1 + rng.IntN(3))
				c.net.Isolate(isolated)
				c.meta.mu.Lock()
				c.meta.cutOff[isolated] = true
				c.meta.mu.Unlock()
				t.Logf("step %d: isolate %d", step, isolated)
			}
		case 1:
			c.net.Heal()
			c.meta.mu.Lock()
			clear(c.meta.cutOff)
			c.meta.mu.Unlock()
			isolated = 0
			t.Logf("step %d: heal", step)
		case 2: // a leadership move (a cut-off leader is deposed)
			elect(step, assignment().Leader)
		case 3, 4: // the leader crashes; it comes back later
			if l := assignment().Leader; l != 0 && !crashed[l] && len(crashed) == 0 {
				crash(step, l)
			}
		case 5: // crashed nodes come back
			for _, id := range c.ids {
				if crashed[id] {
					restart(step, id)
				}
			}
			clear(crashed)
		case 6: // KIP-101 scenario 2: the leader crashes, its successor
			// too right after it, and the first is back at once
			if l := assignment().Leader; l != 0 && len(crashed) == 0 {
				crash(step, l)
				if l2 := assignment().Leader; l2 != l && l2 != 0 {
					time.Sleep(time.Duration(rng.IntN(50)) * time.Millisecond)
					crash(step, l2)
				}
				restart(step, l)
				delete(crashed, l)
			}
		case 7: // two leadership moves in a row, appends in flight
			if elect(step, assignment().Leader) {
				time.Sleep(time.Duration(rng.IntN(20)) * time.Millisecond)
				elect(step, assignment().Leader)
			}
		}
		time.Sleep(time.Duration(rng.IntN(3000)) * time.Millisecond)
		if assignment().Leader == 0 || crashed[assignment().Leader] {
			elect(step, 0)
		}
		checkStep(c, st, crashed)
	}
	close(stop)
	for id := range crashed {
		if crashed[id] {
			restart(30, id)
		}
	}
	c.net.Heal()
	isolated = 0
	c.net.SetFaults(MemFaults{})
	c.meta.mu.Lock()
	clear(c.meta.cutOff)
	c.meta.mu.Unlock()
	<-wdone
	c.waitFor("a leader", func() bool {
		if l := assignment().Leader; l != 0 {
			return true
		}
		elect(31, 0)
		return false
	})
	leader := c.node(assignment().Leader).p
	defer func() {
		if t.Failed() {
			t.Logf("end: assignment %+v", assignment())
			for _, id := range c.ids {
				leo, durable := c.node(id).p.logEnds()
				t.Logf("node %d: log end %d, durable %d, high watermark %d", id, leo, durable, c.node(id).p.HighWatermark())
			}
		}
	}()
	for i := range 5 { // healed, the partition takes appends again
		v := fmt.Sprintf("seed %d after healing %d", seed, i)
		var off int64
		var err error
		c.waitFor("an append after healing", func() bool { // until the ISR is back to MinInSyncReplicas
			off, err = leader.Append(&Record{Value: []byte(v)})
			return !errors.Is(err, ErrNotEnoughReplicas)
		})
		if err != nil {
			t.Fatalf("append after healing: %v", err)
		}
		st.acks[off] = v
	}
	c.waitFor("every replica in sync", func() bool {
		leo, _ := leader.logEnds()
		if len(c.meta.isr()) != 3 {
			return false
		}
		for _, id := range c.ids {
			if c.node(id).p.HighWatermark() != leo {
				return false
			}
		}
		return true
	})
	checkStep(c, st, nil)
	c.checkIdentical(1, 2, 3)
	var recs []acked
	for off, v := range st.acks {
		recs = append(recs, acked{off, v})
	}
	slices.SortFunc(recs, func(a, b acked) int { return int(a.offset - b.offset) })
	if len(recs) == 0 {
		t.Fatal("nothing acknowledged")
	}
	c.checkAcked(recs, c.ids...)
	t.Logf("%d records acknowledged, log end %d", len(recs), leader.HighWatermark())
}

// checkStep checks the invariants on the live nodes (see
// TestReplicaSimulation).
func checkStep(c *replCluster, st *simState, crashed map[NodeID]bool) {
	t := c.t
	t.Helper()
	c.checkHW()
	st.mu.Lock()
	defer st.mu.Unlock()
	var live []NodeID
	for _, id := range c.ids {
		if crashed[id] {
			continue
		}
		live = append(live, id)
		n := c.node(id)
		n.m.mu.Lock()
		r := n.m.parts[partKey{rtTopic, 0}]
		n.m.mu.Unlock()
		r.mu.Lock()
		epoch := r.a.LeaderEpoch
		r.mu.Unlock()
		if old, ok := st.epochs[id]; ok && epoch < old {
			t.Errorf("node %d: leader epoch went from %d down to %d", id, old, epoch)
		}
		st.epochs[id] = epoch
		// Below the high watermark: every acknowledged record, one value
		// per offset ever, batch epochs never going down.
		p := n.p
		hw := p.HighWatermark()
		b := logBytes(t, p, hw)
		prevEpoch := int32(-1)
		for pos := 0; pos < len(b); {
			h, _ := parseBatchHeader(b[pos:])
			if h.LeaderEpoch < prevEpoch {
				t.Errorf("node %d: batch at offset %d of epoch %d after one of epoch %d", id, h.BaseOffset, h.LeaderEpoch, prevEpoch)
			}
			prevEpoch = h.LeaderEpoch
			pos += int(h.Size())
		}
		for off := int64(0); off < hw; {
			recs, err := p.Read(off, 1<<20)
			if err != nil || len(recs) == 0 {
				t.Fatalf("node %d: read at %d below high watermark %d: %v", id, off, hw, err)
			}
			for _, r := range recs {
				v := string(r.Value)
				if old, ok := st.seen[r.Offset]; ok && old != v {
					t.Errorf("node %d: offset %d holds %q, %q was shown there before", id, r.Offset, v, old)
				}
				st.seen[r.Offset] = v
				if a, ok := st.acks[r.Offset]; ok && a != v {
					t.Errorf("node %d: offset %d holds %q, acknowledged %q", id, r.Offset, v, a)
				}
			}
			off = recs[len(recs)-1].Offset + 1
		}
	}
	for off, v := range st.acks {
		for _, id := range live {
			if off < c.node(id).p.HighWatermark() && st.seen[off] != v {
				t.Errorf("acknowledged record %q at offset %d missing below node %d's high watermark", v, off, id)
			}
		}
	}
	if len(live) > 1 {
		c.checkIdentical(live...)
	}
}
