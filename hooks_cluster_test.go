package stream

import (
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// isrRecorder keeps the ISR-change events of one node.
type isrRecorder struct {
	mu     sync.Mutex
	events []ISRChangeEvent
}

func (r *isrRecorder) OnISRChange(e ISRChangeEvent) {
	r.mu.Lock()
	r.events = append(r.events, e)
	r.mu.Unlock()
}

func (r *isrRecorder) list() []ISRChangeEvent {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.events)
}

// TestReplicationMetricsAndISRHook: on three nodes, the leader's Metrics
// show the partition's replication (ISR, followers' lag), and when a
// follower is cut off the ISR shrinks: the partition shows as
// under-replicated and the leader's ISR-change hook hears of it.
func TestReplicationMetricsAndISRHook(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := &e2eCluster{t: t, net: NewMemNetwork(7), dir: t.TempDir(), fs: map[NodeID]*MemFS{},
			nodes: map[NodeID]*Stream{}, peers: []NodeID{1, 2, 3}}
		hooks := map[NodeID]*isrRecorder{}
		for _, id := range c.peers {
			c.fs[id], hooks[id] = NewMemFS(), &isrRecorder{}
			s, err := openFS(c.fs[id], filepath.Join(c.dir, fmt.Sprint("node", id)), &Options{
				Hooks: []Hook{hooks[id]},
				Cluster: &ClusterConfig{NodeID: id, Peers: c.peers, Transport: c.net.Transport(id),
					SessionTimeout: e2eSession, ReplicaLagTime: 2 * time.Second, RequestTimeout: 20 * time.Second},
			})
			if err != nil {
				t.Fatal(err)
			}
			c.nodes[id] = s
		}
		t.Cleanup(func() {
			c.net.Heal()
			for _, id := range c.peers {
				if err := c.nodes[id].Close(); err != nil {
					t.Errorf("node %d: close: %v", id, err)
				}
			}
		})
		c.waitFor("three live nodes", func() bool { return c.allAlive(1, 3) && c.nodes[1].Cluster().Controller() != 0 })
		if _, err := c.nodes[1].CreateTopic("orders", TopicConfig{ReplicationFactor: 3, MinInSyncReplicas: 1}); err != nil {
			t.Fatal(err)
		}
		var leader NodeID
		c.waitFor("leader with full ISR", func() (ok bool) { leader, ok = c.leaderReady(1, "orders", 3); return ok })
		p := c.partition(leader, "orders")
		for i := range 5 {
			if _, err := p.Append(&Record{Value: fmt.Append(nil, i)}); err != nil {
				t.Fatal(err)
			}
		}
		rep := func() *ReplicationMetrics {
			m := c.nodes[leader].Metrics()
			if len(m.Partitions) != 1 {
				t.Fatalf("leader's Metrics: %d partitions", len(m.Partitions))
			}
			return m.Partitions[0].Replication
		}
		c.waitFor("followers caught up", func() bool {
			r := rep()
			return len(r.Followers) == 2 && r.Followers[0].Lag == 0 && r.Followers[1].Lag == 0
		})
		r := rep()
		if !r.Leading || r.Leader != leader || len(r.ISR) != 3 || len(r.Replicas) != 3 || r.UnderReplicated {
			t.Fatalf("leader's replication metrics %+v, want leading with ISR of 3", r)
		}
		for _, f := range r.Followers {
			if f.EndOffset != 5 || !f.InSync {
				t.Errorf("follower %+v, want in sync at 5", f)
			}
		}

		follower := c.peers[(slices.Index(c.peers, leader)+1)%3]
		c.net.Isolate(follower)
		c.waitFor("ISR without the cut-off follower", func() bool { return len(rep().ISR) == 2 })
		if r := rep(); !r.UnderReplicated || slices.Contains(r.ISR, follower) {
			t.Errorf("after the ISR shrank: %+v, want under-replicated without %d", r, follower)
		}
		if n := c.nodes[leader].Metrics().Totals.UnderReplicated; n != 1 {
			t.Errorf("Totals.UnderReplicated = %d, want 1", n)
		}
		var shrink *ISRChangeEvent
		c.waitFor("the ISR hook's event", func() bool {
			for _, e := range hooks[leader].list() {
				if len(e.PreviousISR) == 3 && len(e.ISR) == 2 && !slices.Contains(e.ISR, follower) {
					shrink = &e
					return true
				}
			}
			return false
		})
		if shrink.Topic != "orders" || shrink.Partition != 0 || shrink.Leader != leader || shrink.LeaderChanged {
			t.Errorf("ISR shrink event %+v, want orders-0 led by %d, same leader", shrink, leader)
		}
	})
}
