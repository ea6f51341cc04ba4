package stream

import (
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"
)

// Clustered Streams end to end: three nodes in one process over a seeded
// MemNetwork, each with its meta.db in a temp dir and its topics on a
// MemFS, under testing/synctest (raft ticks, leases, long polls and lag
// timers run on the bubble's fake clock).

const e2eSession = 900 * time.Millisecond

type e2eCluster struct {
	t     *testing.T
	net   *MemNetwork
	dir   string
	fs    map[NodeID]*MemFS
	nodes map[NodeID]*Stream
	peers []NodeID
}

func newE2ECluster(t *testing.T, seed int64) *e2eCluster {
	t.Logf("MemNetwork seed %d", seed)
	c := &e2eCluster{t: t, net: NewMemNetwork(seed), dir: t.TempDir(), fs: map[NodeID]*MemFS{},
		nodes: map[NodeID]*Stream{}, peers: []NodeID{1, 2, 3}}
	for _, id := range c.peers {
		c.fs[id] = NewMemFS()
		c.open(id)
	}
	t.Cleanup(func() {
		for _, id := range c.peers {
			if s := c.nodes[id]; s != nil {
				if err := s.Close(); err != nil {
					t.Errorf("node %d: close: %v", id, err)
				}
			}
		}
	})
	return c
}

func (c *e2eCluster) open(id NodeID) *Stream {
	c.t.Helper()
	s, err := openFS(c.fs[id], filepath.Join(c.dir, fmt.Sprint("node", id)), &Options{
		Cluster: &ClusterConfig{NodeID: id, Peers: c.peers, Transport: c.net.Transport(id),
			SessionTimeout: e2eSession, ReplicaLagTime: 2 * time.Second, RequestTimeout: 20 * time.Second},
	})
	if err != nil {
		c.t.Fatalf("open node %d: %v", id, err)
	}
	c.nodes[id] = s
	return s
}

func (c *e2eCluster) close(id NodeID) {
	c.t.Helper()
	if err := c.nodes[id].Close(); err != nil {
		c.t.Fatalf("close node %d: %v", id, err)
	}
	c.nodes[id] = nil
}

// waitFor polls cond on the fake clock, failing after a fake minute.
func (c *e2eCluster) waitFor(what string, cond func() bool) time.Duration {
	c.t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > time.Minute {
			c.t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return time.Since(start)
}

func (c *e2eCluster) allAlive(on NodeID, n int) bool {
	alive := 0
	for _, ns := range c.nodes[on].Cluster().Nodes() {
		if ns.Alive {
			alive++
		}
	}
	return alive == n
}

func (c *e2eCluster) partition(id NodeID, topic string) *Partition {
	c.t.Helper()
	tp, err := c.nodes[id].Topic(topic)
	if err != nil {
		c.t.Fatalf("node %d: %v", id, err)
	}
	p, err := tp.Partition(0)
	if err != nil {
		c.t.Fatal(err)
	}
	return p
}

// leaderReady: the metadata names a leader and that node's replica has
// taken the lead with an ISR of want.
func (c *e2eCluster) leaderReady(on NodeID, topic string, want int) (NodeID, bool) {
	ps, err := c.nodes[on].Cluster().PartitionState(topic, 0)
	if err != nil || ps.Leader == 0 || len(ps.ISR) < want || c.nodes[ps.Leader] == nil {
		return 0, false
	}
	if _, err := c.nodes[ps.Leader].Topic(topic); err != nil {
		return 0, false // the leader has not applied the topic yet
	}
	g := c.partition(ps.Leader, topic).gate.Load()
	return ps.Leader, g != nil && g.leader == g.self && g.epoch == ps.LeaderEpoch && g.isr >= want
}

func values(t *testing.T, p *Partition, upto int64) []string {
	t.Helper()
	var out []string
	for off := int64(0); off < upto; {
		recs, err := p.Read(off, 1<<20)
		if err != nil {
			t.Fatalf("read %s-%d at %d: %v", p.topic, p.id, off, err)
		}
		if len(recs) == 0 {
			break
		}
		for _, r := range recs {
			if r.Offset < upto {
				out = append(out, string(r.Value))
			}
			off = r.Offset + 1
		}
	}
	return out
}

func TestClusterEndToEnd(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newE2ECluster(t, 1)
		c.waitFor("three live nodes", func() bool { return c.allAlive(1, 3) && c.nodes[1].Cluster().Controller() != 0 })

		// Created from a node that is not the controller.
		from := NodeID(1)
		if c.nodes[1].Cluster().Controller() == 1 {
			from = 2
		}
		if _, err := c.nodes[from].CreateTopic("big", TopicConfig{ReplicationFactor: 4}); !errors.Is(err, ErrNotEnoughReplicas) {
			t.Fatalf("CreateTopic with RF 4 on 3 nodes: %v, want ErrNotEnoughReplicas", err)
		}
		if _, err := c.nodes[from].CreateTopic("orders", TopicConfig{Partitions: 1, ReplicationFactor: 3, MinInSyncReplicas: 2}); err != nil {
			t.Fatal(err)
		}
		if _, err := c.nodes[from].CreateTopic("orders", TopicConfig{ReplicationFactor: 3}); !errors.Is(err, ErrTopicExists) {
			t.Fatalf("CreateTopic twice: %v, want ErrTopicExists", err)
		}
		// Every node answers.
		for _, id := range c.peers {
			c.waitFor("topic on every node", func() bool { return slices.Contains(c.nodes[id].Topics(), "orders") })
			ps, err := c.nodes[id].Cluster().PartitionState("orders", 0)
			if err != nil || ps.Leader == 0 || len(ps.Replicas) != 3 {
				t.Fatalf("node %d: PartitionState = %+v, %v", id, ps, err)
			}
		}
		var leader NodeID
		c.waitFor("leader with full ISR", func() (ok bool) { leader, ok = c.leaderReady(from, "orders", 3); return ok })

		// A follower refuses appends, naming the leader.
		follower := c.peers[(slices.Index(c.peers, leader)+1)%3]
		_, err := c.partition(follower, "orders").Append(&Record{Value: []byte("x")})
		if !errors.Is(err, ErrNotLeader) {
			t.Fatalf("append on follower %d: %v, want ErrNotLeader", follower, err)
		}
		if want := fmt.Sprintf("node %d", leader); !strings.Contains(err.Error(), want) {
			t.Fatalf("ErrNotLeader %q does not name the leader (%s)", err, want)
		}

		// Appends on the leader return once every in-sync replica has them.
		var acked []string
		for i := range 20 {
			v := fmt.Sprint("a", i)
			if _, err := c.partition(leader, "orders").Append(&Record{Value: []byte(v)}); err != nil {
				t.Fatalf("append %d on leader %d: %v", i, leader, err)
			}
			acked = append(acked, v)
		}
		ps, _ := c.nodes[leader].Cluster().PartitionState("orders", 0)
		if ps.HighWatermark != 20 {
			t.Fatalf("leader's PartitionState.HighWatermark = %d, want 20", ps.HighWatermark)
		}
		for _, id := range c.peers {
			p := c.partition(id, "orders")
			c.waitFor("replica's high watermark", func() bool { return p.HighWatermark() == 20 })
			if got := values(t, p, 20); !slices.Equal(got, acked) {
				t.Fatalf("node %d holds %v, want %v", id, got, acked)
			}
		}

		// The leader goes: an in-sync replica takes over.
		old := leader
		c.close(old)
		on := c.peers[(slices.Index(c.peers, old)+1)%3]
		took := c.waitFor("new leader", func() (ok bool) { leader, ok = c.leaderReady(on, "orders", 2); return ok && leader != old })
		t.Logf("node %d took over from node %d after %v (%.2f SessionTimeouts)", leader, old, took, float64(took)/float64(e2eSession))
		if took > 2*e2eSession {
			t.Errorf("failover took %v, more than 2 × SessionTimeout", took)
		}
		for i := range 10 {
			v := fmt.Sprint("b", i)
			if _, err := c.partition(leader, "orders").Append(&Record{Value: []byte(v)}); err != nil {
				t.Fatalf("append %d on new leader %d: %v", i, leader, err)
			}
			acked = append(acked, v)
		}

		// The old leader comes back as a follower, catches up, rejoins
		// the ISR, and holds every acknowledged record.
		// Its directory is a node's: opened without Options.Cluster it is
		// refused (appends there would fork its replicas).
		if s, err := openFS(c.fs[old], filepath.Join(c.dir, fmt.Sprint("node", old)), nil); !errors.Is(err, ErrInvalidConfig) {
			if s != nil {
				s.Close()
			}
			t.Fatalf("single-node Open of a node's directory: %v, want ErrInvalidConfig", err)
		}
		c.open(old)
		c.waitFor("old leader back in the ISR", func() bool {
			ps, err := c.nodes[on].Cluster().PartitionState("orders", 0)
			return err == nil && len(ps.ISR) == 3
		})
		n := int64(len(acked))
		for _, id := range c.peers {
			p := c.partition(id, "orders")
			c.waitFor("replica caught up", func() bool { return p.HighWatermark() >= n })
			if got := values(t, p, n); !slices.Equal(got, acked) {
				t.Fatalf("node %d holds %v, want %v", id, got, acked)
			}
		}
		if _, err := c.partition(old, "orders").Append(&Record{Value: []byte("x")}); !errors.Is(err, ErrNotLeader) {
			t.Fatalf("append on the old leader, now a follower: %v, want ErrNotLeader", err)
		}

		// DeleteTopic from any node removes it everywhere.
		if err := c.nodes[old].DeleteTopic("orders"); err != nil {
			t.Fatal(err)
		}
		for _, id := range c.peers {
			c.waitFor("topic gone on every node", func() bool { return len(c.nodes[id].Topics()) == 0 })
		}
	})
}

func TestClusterOptionsValidation(t *testing.T) {
	net := NewMemNetwork(1)
	dir := t.TempDir()
	for _, cc := range []ClusterConfig{
		{NodeID: 0, Peers: []NodeID{1}, Transport: net.Transport(1)},
		{NodeID: 1, Peers: []NodeID{2, 3}, Transport: net.Transport(1)},
		{NodeID: 1, Peers: []NodeID{1, 1}, Transport: net.Transport(1)},
		{NodeID: 1, Peers: []NodeID{1}},
		{NodeID: 1, Peers: []NodeID{1}, Transport: net.Transport(1), SessionTimeout: time.Millisecond},
	} {
		if s, err := Open(dir, &Options{Cluster: &cc}); !errors.Is(err, ErrInvalidConfig) {
			if s != nil {
				s.Close()
			}
			t.Errorf("Open with %+v: %v, want ErrInvalidConfig", cc, err)
		}
	}
}

// The leader cut off from every other node (as a crash looks to them):
// its lease runs out and an in-sync replica leads within about two
// SessionTimeouts; once healed, the old leader follows, truncates what
// it alone held, catches up and rejoins the ISR.
func TestClusterLeaderIsolated(t *testing.T) {
	for seed := int64(1); seed <= 4; seed++ {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) { testClusterLeaderIsolated(t, seed) })
	}
}

func testClusterLeaderIsolated(t *testing.T, seed int64) {
	synctest.Test(t, func(t *testing.T) {
		c := newE2ECluster(t, seed)
		c.waitFor("three live nodes", func() bool { return c.allAlive(1, 3) && c.nodes[1].Cluster().Controller() != 0 })
		if _, err := c.nodes[3].CreateTopic("t", TopicConfig{ReplicationFactor: 3, MinInSyncReplicas: 2}); err != nil {
			t.Fatal(err)
		}
		var leader NodeID
		c.waitFor("leader with full ISR", func() (ok bool) { leader, ok = c.leaderReady(3, "t", 3); return ok })
		var acked []string
		for i := range 10 {
			v := fmt.Sprint("a", i)
			if _, err := c.partition(leader, "t").Append(&Record{Value: []byte(v)}); err != nil {
				t.Fatal(err)
			}
			acked = append(acked, v)
		}
		old := leader
		on := c.peers[(slices.Index(c.peers, old)+1)%3]
		c.net.Isolate(old)
		took := c.waitFor("new leader", func() (ok bool) { leader, ok = c.leaderReady(on, "t", 2); return ok && leader != old })
		t.Logf("node %d took over from isolated node %d after %v (%.2f SessionTimeouts)", leader, old, took, float64(took)/float64(e2eSession))
		if took > 3*e2eSession {
			t.Errorf("failover took %v, more than 3 × SessionTimeout", took)
		}
		for i := range 10 {
			v := fmt.Sprint("b", i)
			if _, err := c.partition(leader, "t").Append(&Record{Value: []byte(v)}); err != nil {
				t.Fatal(err)
			}
			acked = append(acked, v)
		}
		c.net.Heal()
		c.waitFor("old leader back in the ISR", func() bool {
			ps, err := c.nodes[on].Cluster().PartitionState("t", 0)
			return err == nil && len(ps.ISR) == 3
		})
		n := int64(len(acked))
		for _, id := range c.peers {
			p := c.partition(id, "t")
			c.waitFor("replica caught up", func() bool { return p.HighWatermark() >= n })
			if got := values(t, p, n); !slices.Equal(got, acked) {
				t.Fatalf("node %d holds %v, want %v", id, got, acked)
			}
		}
	})
}

// A producer on a node that does not lead sends to the leader over the
// transport, and follows the leadership to the next leader when the
// leader closes, without losing or duplicating an acknowledged record.
func TestClusterProducerForwards(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newE2ECluster(t, 3)
		c.waitFor("three live nodes", func() bool { return c.allAlive(1, 3) && c.nodes[1].Cluster().Controller() != 0 })
		if _, err := c.nodes[2].CreateTopic("t", TopicConfig{ReplicationFactor: 3, MinInSyncReplicas: 2}); err != nil {
			t.Fatal(err)
		}
		var leader NodeID
		c.waitFor("leader with full ISR", func() (ok bool) { leader, ok = c.leaderReady(2, "t", 3); return ok })
		// The producer lives on the replica that is not next in line.
		on := c.peers[(slices.Index(c.peers, leader)+2)%3]
		pr, err := c.nodes[on].NewProducer(ProducerConfig{DeliveryTimeout: 10 * time.Second, RetryBackoff: 50 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		defer pr.Close()
		var sent []string
		send := func(v string) {
			t.Helper()
			if err := pr.Send(t.Context(), &Record{Topic: "t", Value: []byte(v)}); err != nil {
				t.Fatalf("send %s from node %d: %v", v, on, err)
			}
			sent = append(sent, v)
		}
		for i := range 10 {
			send(fmt.Sprint("a", i))
		}
		if hw := c.partition(leader, "t").HighWatermark(); hw != 10 {
			t.Fatalf("leader's high watermark after 10 sends from node %d: %d", on, hw)
		}
		old := leader
		c.close(old)
		for i := range 10 {
			send(fmt.Sprint("b", i))
		}
		for _, id := range c.peers {
			if id == old {
				continue
			}
			p := c.partition(id, "t")
			c.waitFor("replica caught up", func() bool { return p.HighWatermark() >= int64(len(sent)) })
			if got := values(t, p, p.HighWatermark()); !slices.Equal(got, sent) {
				t.Fatalf("node %d holds %v, want %v (each once)", id, got, sent)
			}
		}
	})
}

// Malformed forwarded batches get ErrBadRequest (or the topic's error),
// are never written, and never panic the leader.
func TestClusterProduceBadRequests(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newE2ECluster(t, 4)
		c.waitFor("three live nodes", func() bool { return c.allAlive(1, 3) && c.nodes[1].Cluster().Controller() != 0 })
		if _, err := c.nodes[1].CreateTopic("t", TopicConfig{ReplicationFactor: 3}); err != nil {
			t.Fatal(err)
		}
		var leader NodeID
		c.waitFor("leader", func() (ok bool) { leader, ok = c.leaderReady(1, "t", 3); return ok })
		n := c.nodes[leader].cluster
		var b Batch
		b.Add([]byte("k"), []byte("v"))
		b.Add(nil, []byte("w"))
		good := produceRequest{topic: "t", producerID: -1, epoch: -1, baseSeq: -1, baseTime: b.baseTime, count: 2, records: b.buf[batchHeaderSize:]}
		enc := good.encode()
		for i := range len(enc) {
			if _, err := n.handleProduce(t.Context(), envelope{Payload: enc[:i]}); err == nil {
				t.Fatalf("truncated to %d bytes: accepted", i)
			}
		}
		bad := good
		bad.count = 3
		if _, err := n.handleProduce(t.Context(), envelope{Payload: bad.encode()}); !errors.Is(err, ErrBadRequest) {
			t.Fatalf("count 3 for 2 records: %v", err)
		}
		bad = good
		bad.topic = "nope"
		if _, err := n.handleProduce(t.Context(), envelope{Payload: bad.encode()}); !errors.Is(err, ErrUnknownTopic) {
			t.Fatalf("unknown topic: %v", err)
		}
		if hw := c.partition(leader, "t").HighWatermark(); hw != 0 {
			t.Fatalf("bad requests wrote %d records", hw)
		}
		reply, err := n.handleProduce(t.Context(), envelope{Payload: enc})
		if err != nil || len(reply) != 8 {
			t.Fatalf("good request: %v, %v", reply, err)
		}
		if got := values(t, c.partition(leader, "t"), 2); !slices.Equal(got, []string{"v", "w"}) {
			t.Fatalf("forwarded batch holds %v", got)
		}
	})
}

// A topic deleted and created again under its name is a new topic on
// every node (nothing of the old one survives), and CreatePartitions
// grows a topic on every node.
func TestClusterRecreateAndGrow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newE2ECluster(t, 5)
		c.waitFor("three live nodes", func() bool { return c.allAlive(1, 3) && c.nodes[1].Cluster().Controller() != 0 })
		if _, err := c.nodes[1].CreateTopic("t", TopicConfig{ReplicationFactor: 3}); err != nil {
			t.Fatal(err)
		}
		var leader NodeID
		c.waitFor("leader", func() (ok bool) { leader, ok = c.leaderReady(1, "t", 3); return ok })
		if _, err := c.partition(leader, "t").Append(&Record{Value: []byte("old")}); err != nil {
			t.Fatal(err)
		}
		if err := c.nodes[2].DeleteTopic("t"); err != nil {
			t.Fatal(err)
		}
		if err := c.nodes[2].DeleteTopic("t"); !errors.Is(err, ErrUnknownTopic) {
			t.Fatalf("DeleteTopic twice: %v, want ErrUnknownTopic", err)
		}
		if _, err := c.nodes[3].CreateTopic("t", TopicConfig{ReplicationFactor: 2}); err != nil {
			t.Fatal(err)
		}
		c.waitFor("leader of the new topic", func() (ok bool) { leader, ok = c.leaderReady(3, "t", 2); return ok })
		for _, id := range c.peers {
			c.waitFor("new topic everywhere", func() bool {
				tp, err := c.nodes[id].Topic("t")
				return err == nil && tp.Config().ReplicationFactor == 2
			})
			if got := values(t, c.partition(id, "t"), 10); len(got) != 0 {
				t.Fatalf("node %d: the recreated topic holds %v", id, got)
			}
		}
		if _, err := c.partition(leader, "t").Append(&Record{Value: []byte("new")}); err != nil {
			t.Fatal(err)
		}
		if err := c.nodes[1].CreatePartitions("t", 3); err != nil {
			t.Fatal(err)
		}
		for _, id := range c.peers {
			c.waitFor("grown everywhere", func() bool {
				tp, err := c.nodes[id].Topic("t")
				return err == nil && tp.NumPartitions() == 3
			})
		}
		for i := int32(0); i < 3; i++ {
			ps, err := c.nodes[2].Cluster().PartitionState("t", i)
			if err != nil || ps.Leader == 0 || len(ps.Replicas) != 2 {
				t.Fatalf("partition %d: %+v, %v", i, ps, err)
			}
		}
		if err := c.nodes[1].CreatePartitions("t", 2); !errors.Is(err, ErrInvalidConfig) {
			t.Fatalf("shrinking: %v, want ErrInvalidConfig", err)
		}
	})
}

// A single node has no Cluster, and its directory, holding topics made
// outside a cluster, cannot become a node.
func TestClusterRefusesSingleNodeDirectory(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if s.Cluster() != nil {
		t.Fatal("a single node has a Cluster")
	}
	if _, err := s.CreateTopic("t", TopicConfig{}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	net := NewMemNetwork(1)
	tr := net.Transport(1)
	defer tr.Close()
	if s, err := Open(dir, &Options{Cluster: &ClusterConfig{NodeID: 1, Peers: []NodeID{1}, Transport: tr}}); !errors.Is(err, ErrInvalidConfig) {
		if s != nil {
			s.Close()
		}
		t.Fatalf("Open of a single node's directory as a cluster node: %v, want ErrInvalidConfig", err)
	}
	// The directory is still a single node's.
	s, err = Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.Topic("t"); err != nil {
		t.Fatal(err)
	}
}
