package stream

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// TestReplicaSimulation runs three replicas over a MemNetwork that drops,
// duplicates, delays and reorders messages (old-epoch fetches arrive
// late), while a writer appends with AcksAll to whichever node leads and
// the test cuts nodes off, heals, and moves leadership to an in-sync
// replica as a controller would. After every step: no high watermark
// went down. At the end: every acknowledged record is on every replica
// at its offset, no offset was acknowledged with two values, and the
// logs are identical below the high watermark.
func TestReplicaSimulation(t *testing.T) {
	seeds := 24
	if testing.Short() {
		seeds = 6
	}
	for seed := range int64(seeds) {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) { simulateReplicas(t, seed) })
		})
	}
}

func simulateReplicas(t *testing.T, seed int64) {
	rng := rand.New(rand.NewPCG(uint64(seed), 7))
	c := newReplCluster(t, seed, 3, 2, replicaConfig{lagTime: time.Second, fetchMaxWait: 200 * time.Millisecond})
	c.meta.cutOff = map[NodeID]bool{}
	c.net.SetFaults(MemFaults{Drop: 0.02, Duplicate: 0.05, Delay: 5 * time.Millisecond, Reorder: 0.05})
	c.meta.set(all3())

	var (
		mu    sync.Mutex
		acks  = map[int64]string{}
		stop  = make(chan struct{})
		wdone = make(chan struct{})
	)
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
			v := fmt.Sprintf("seed %d record %d", seed, i)
			off, err := c.nodes[leader].p.Append(&Record{Value: []byte(v)})
			switch {
			case err == nil:
				mu.Lock()
				if old, ok := acks[off]; ok {
					t.Errorf("offset %d acknowledged twice: %q and %q", off, old, v)
				}
				acks[off] = v
				mu.Unlock()
			case errors.Is(err, ErrNotLeader), errors.Is(err, ErrNotEnoughReplicas):
				time.Sleep(20 * time.Millisecond)
			default:
				t.Errorf("append: %v", err)
				return
			}
		}
	}()

	isolated := NodeID(0)
	for step := range 25 {
		switch rng.IntN(4) {
		case 0:
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
		case 2:
			c.meta.mu.Lock()
			a := c.meta.a
			c.meta.mu.Unlock()
			var candidates []NodeID
			for _, id := range a.ISR {
				if id != a.Leader && id != isolated {
					candidates = append(candidates, id)
				}
			}
			if len(candidates) > 0 {
				a.Leader = candidates[rng.IntN(len(candidates))]
				a.LeaderEpoch++
				a.PartitionEpoch++
				a.ISR = slices.Clone(a.ISR)
				t.Logf("step %d: node %d leads in epoch %d, ISR %v", step, a.Leader, a.LeaderEpoch, a.ISR)
				c.meta.set(a)
			}
		}
		time.Sleep(time.Duration(rng.IntN(3000)) * time.Millisecond)
		c.checkHW()
	}
	close(stop)
	c.net.Heal()
	c.net.SetFaults(MemFaults{})
	c.meta.mu.Lock()
	clear(c.meta.cutOff)
	c.meta.mu.Unlock()
	<-wdone
	c.meta.mu.Lock()
	leader := c.nodes[c.meta.a.Leader].p
	c.meta.mu.Unlock()
	c.waitFor("every replica in sync", func() bool {
		leo, _ := leader.logEnds()
		if len(c.meta.isr()) != 3 {
			return false
		}
		for _, id := range c.ids {
			if c.nodes[id].p.HighWatermark() != leo {
				return false
			}
		}
		return true
	})
	c.checkHW()
	c.checkIdentical(1, 2, 3)
	var recs []acked
	for off, v := range acks {
		recs = append(recs, acked{off, v})
	}
	slices.SortFunc(recs, func(a, b acked) int { return int(a.offset - b.offset) })
	if len(recs) == 0 {
		t.Fatal("nothing acknowledged")
	}
	c.checkAcked(recs, c.ids...)
	t.Logf("%d records acknowledged, log end %d", len(recs), leader.HighWatermark())
}
