package stream

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"testing"
	"testing/synctest"
	"time"
)

// Consumer groups spanning nodes (cluster_group.go), end to end over a
// seeded MemNetwork under testing/synctest.

// groupWorker is a member that commits after every Poll and counts a
// record as done only once its commit succeeded.
type groupWorker struct {
	t    *testing.T
	node NodeID
	c    *Consumer
}

// poll polls once and commits; it returns the records done.
func (w *groupWorker) poll(ctx context.Context) []*Record {
	w.t.Helper()
	recs, err := w.c.Poll(ctx)
	if err != nil {
		w.t.Fatalf("node %d: poll: %v", w.node, err)
	}
	if len(recs) == 0 {
		return nil
	}
	if err := w.c.Commit(ctx); err != nil {
		if errors.Is(err, ErrFenced) {
			return nil // rebalanced away: the next owner reads them again
		}
		w.t.Fatalf("node %d: commit: %v", w.node, err)
	}
	return recs
}

func newGroupWorker(t *testing.T, s *Stream, node NodeID, group string) *groupWorker {
	t.Helper()
	g, err := s.ConsumerGroup(group, GroupConfig{Topics: []string{"t"}, StartAt: StartEarliest, CommitInterval: -1})
	if err != nil {
		t.Fatalf("node %d: %v", node, err)
	}
	c, err := g.Join(t.Context(), ConsumerConfig{FetchMaxWait: 100 * time.Millisecond})
	if err != nil {
		t.Fatalf("node %d: join: %v", node, err)
	}
	return &groupWorker{t: t, node: node, c: c}
}

// produce sends n records round robin over the topic's partitions from
// node on and returns their values.
func (c *e2eCluster) produce(on NodeID, prefix string, n, partitions int) []string {
	c.t.Helper()
	pr, err := c.nodes[on].NewProducer(ProducerConfig{DeliveryTimeout: 20 * time.Second, RetryBackoff: 50 * time.Millisecond, Partitioner: ManualPartitioner})
	if err != nil {
		c.t.Fatal(err)
	}
	defer pr.Close()
	var sent []string
	for i := range n {
		v := fmt.Sprint(prefix, i)
		if err := pr.Send(c.t.Context(), &Record{Topic: "t", Partition: int32(i % partitions), Value: []byte(v)}); err != nil {
			c.t.Fatalf("send %s from node %d: %v", v, on, err)
		}
		sent = append(sent, v)
	}
	return sent
}

func TestClusterGroupSpansNodes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newE2ECluster(t, 11)
		c.waitFor("three live nodes", func() bool { return c.allAlive(1, 3) && c.nodes[1].Cluster().Controller() != 0 })
		const parts = 4
		if _, err := c.nodes[1].CreateTopic("t", TopicConfig{Partitions: parts, ReplicationFactor: 3, MinInSyncReplicas: 2}); err != nil {
			t.Fatal(err)
		}
		sent := c.produce(1, "a", 40, parts)

		w2, w3 := newGroupWorker(t, c.nodes[2], 2, "g"), newGroupWorker(t, c.nodes[3], 3, "g")
		done := map[string]NodeID{}
		take := func(w *groupWorker) {
			for _, r := range w.poll(t.Context()) {
				if by, ok := done[string(r.Value)]; ok {
					t.Fatalf("record %s done by node %d and again by node %d", r.Value, by, w.node)
				}
				done[string(r.Value)] = w.node
			}
		}
		c.waitFor("both members done with every record", func() bool {
			take(w2)
			take(w3)
			return len(done) == len(sent)
		})
		a2, a3 := w2.c.Assignment(), w3.c.Assignment()
		if len(a2) == 0 || len(a3) == 0 || len(a2)+len(a3) != parts {
			t.Fatalf("assignments %v and %v: want the %d partitions split between the members", a2, a3, parts)
		}
		for _, tp := range a2 {
			if slices.Contains(a3, tp) {
				t.Fatalf("%v assigned to both members", tp)
			}
		}
		// Every node answers the group's committed offsets, node 1 (no
		// member there) included.
		want := map[TopicPartition]int64{}
		for p := range int32(parts) {
			want[TopicPartition{Topic: "t", Partition: p}] = int64(len(sent) / parts)
		}
		g1, err := c.nodes[1].ConsumerGroup("g", GroupConfig{})
		if err != nil {
			t.Fatal(err)
		}
		c.waitFor("node 1 sees the commits", func() bool {
			got, err := g1.Committed(t.Context())
			return err == nil && maps.Equal(got, want)
		})
		if m := g1.Members(); len(m) != 2 {
			t.Fatalf("node 1 sees members %v", m)
		}

		// Node 3 dies (cut off; its lease runs out): node 2's member takes
		// its partitions from their committed offsets.
		c.net.Isolate(3)
		more := c.produce(1, "b", 40, parts)
		c.waitFor("node 2 done with every record", func() bool {
			take(w2)
			return len(done) == len(sent)+len(more)
		})
		if a := w2.c.Assignment(); len(a) != parts {
			t.Fatalf("node 2's member holds %v after node 3 died", a)
		}
		for _, v := range more {
			if done[v] != 2 {
				t.Fatalf("record %s done by node %d", v, done[v])
			}
		}
		// Node 3's member, cut off, reads none of its old partitions now
		// that node 2's member holds them: it counts them lost and cannot
		// rejoin without a quorum.
		recs, err := w3.c.Poll(t.Context())
		if len(recs) != 0 || !errors.Is(err, ErrTimeout) {
			t.Fatalf("cut-off member's poll: %d records, %v; want none and ErrTimeout", len(recs), err)
		}
		if a := w3.c.Assignment(); len(a) != 0 {
			t.Fatalf("cut-off member still holds %v", a)
		}
		if err := w2.c.Close(); err != nil {
			t.Fatal(err)
		}
		c.net.Heal()
		w3.c.Close()
	})
}

// The controller's node goes away: the group's committed offsets are in
// raft, so the new controller has them, and a member joining on another
// node starts from them.
func TestClusterGroupOffsetsSurviveControllerFailover(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newE2ECluster(t, 12)
		c.waitFor("three live nodes", func() bool { return c.allAlive(1, 3) && c.nodes[1].Cluster().Controller() != 0 })
		if _, err := c.nodes[1].CreateTopic("t", TopicConfig{Partitions: 1, ReplicationFactor: 3, MinInSyncReplicas: 1}); err != nil {
			t.Fatal(err)
		}
		sent := c.produce(1, "a", 10, 1)
		ctrl := c.nodes[1].Cluster().Controller()
		on := c.peers[(slices.Index(c.peers, ctrl)+1)%3]
		w := newGroupWorker(t, c.nodes[on], on, "g")
		var got []string
		c.waitFor("the first 10 records", func() bool {
			for _, r := range w.poll(t.Context()) {
				got = append(got, string(r.Value))
			}
			return len(got) == 10
		})
		if err := w.c.Close(); err != nil {
			t.Fatal(err)
		}
		c.close(ctrl)
		other := c.peers[(slices.Index(c.peers, ctrl)+2)%3]
		c.waitFor("a new controller", func() bool {
			n := c.nodes[on].Cluster().Controller()
			return n != 0 && n != ctrl
		})
		sent = append(sent, c.produce(on, "b", 5, 1)...)
		g, err := c.nodes[other].ConsumerGroup("g", GroupConfig{})
		if err != nil {
			t.Fatal(err)
		}
		if off, err := g.Committed(t.Context()); err != nil || off[TopicPartition{Topic: "t"}] != 10 {
			t.Fatalf("committed offsets on node %d after the controller left: %v, %v", other, off, err)
		}
		w = newGroupWorker(t, c.nodes[other], other, "g")
		c.waitFor("the 5 new records", func() bool {
			for _, r := range w.poll(t.Context()) {
				got = append(got, string(r.Value))
			}
			return len(got) == 15
		})
		if !slices.Equal(got, sent) {
			t.Fatalf("read %v, want %v, each once", got, sent)
		}
		w.c.Close()
	})
}

// A partition with no replica on the consumer's node is read from its
// leader, below the leader's high watermark: a group-less consumer and a
// group split over two nodes read a topic whose partitions have one
// replica each, spread over the three nodes.
func TestClusterConsumerReadsFromLeader(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newE2ECluster(t, 13)
		c.waitFor("three live nodes", func() bool { return c.allAlive(1, 3) && c.nodes[1].Cluster().Controller() != 0 })
		const parts = 3
		if _, err := c.nodes[1].CreateTopic("t", TopicConfig{Partitions: parts, ReplicationFactor: 1}); err != nil {
			t.Fatal(err)
		}
		sent := c.produce(1, "a", 30, parts)
		var tps []TopicPartition
		for p := range int32(parts) {
			tps = append(tps, TopicPartition{Topic: "t", Partition: p})
			ps, err := c.nodes[2].Cluster().PartitionState("t", p)
			if err != nil || len(ps.Replicas) != 1 {
				t.Fatalf("partition %d: %+v, %v", p, ps, err)
			}
		}
		for _, on := range c.peers {
			cons, err := c.nodes[on].NewConsumer(ConsumerConfig{FetchMaxWait: 100 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			if err := cons.Assign(tps...); err != nil {
				t.Fatal(err)
			}
			var got []string
			c.waitFor(fmt.Sprint("node ", on, " reads everything"), func() bool {
				recs, err := cons.Poll(t.Context())
				if err != nil {
					t.Fatalf("node %d: poll: %v", on, err)
				}
				for _, r := range recs {
					got = append(got, string(r.Value))
				}
				return len(got) >= len(sent)
			})
			slices.Sort(got)
			want := slices.Sorted(slices.Values(sent))
			if !slices.Equal(got, want) {
				t.Fatalf("node %d read %v, want %v", on, got, want)
			}
			cons.Close()
		}

		w2, w3 := newGroupWorker(t, c.nodes[2], 2, "g"), newGroupWorker(t, c.nodes[3], 3, "g")
		more := c.produce(1, "b", 30, parts)
		done := map[string]NodeID{}
		c.waitFor("the group reads everything", func() bool {
			for _, w := range []*groupWorker{w2, w3} {
				for _, r := range w.poll(t.Context()) {
					if by, ok := done[string(r.Value)]; ok {
						t.Fatalf("record %s done by node %d and again by node %d", r.Value, by, w.node)
					}
					done[string(r.Value)] = w.node
				}
			}
			return len(done) == len(sent)+len(more)
		})
		if a2, a3 := w2.c.Assignment(), w3.c.Assignment(); len(a2)+len(a3) != parts || len(a2) == 0 || len(a3) == 0 {
			t.Fatalf("assignments %v and %v", a2, a3)
		}
		w2.c.Close()
		w3.c.Close()
	})
}

// Consumer fetches the leader cannot serve get an error, never a panic:
// truncated or malformed requests, a node that does not lead, an unknown
// topic; a fetch past the high watermark gets the bounds and no records.
func TestClusterConsumerFetchBadRequests(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newE2ECluster(t, 14)
		c.waitFor("three live nodes", func() bool { return c.allAlive(1, 3) && c.nodes[1].Cluster().Controller() != 0 })
		if _, err := c.nodes[1].CreateTopic("t", TopicConfig{ReplicationFactor: 3}); err != nil {
			t.Fatal(err)
		}
		var leader NodeID
		c.waitFor("leader", func() (ok bool) { leader, ok = c.leaderReady(1, "t", 3); return ok })
		c.produce(leader, "a", 3, 1)
		n := c.nodes[leader].cluster
		good := consumerFetchRequest{topic: "t", offset: 1, maxBytes: 1 << 20}
		enc := good.encode()
		for i := range len(enc) {
			if _, err := n.handleConsumerFetch(t.Context(), envelope{Payload: enc[:i]}); !errors.Is(err, ErrBadRequest) {
				t.Fatalf("truncated to %d bytes: %v, want ErrBadRequest", i, err)
			}
		}
		if _, err := n.handleConsumerFetch(t.Context(), envelope{Payload: append(enc, 0)}); !errors.Is(err, ErrBadRequest) {
			t.Fatalf("a trailing byte: %v, want ErrBadRequest", err)
		}
		bad := good
		bad.maxBytes = -1
		if _, err := n.handleConsumerFetch(t.Context(), envelope{Payload: bad.encode()}); !errors.Is(err, ErrBadRequest) {
			t.Fatalf("negative max bytes: %v, want ErrBadRequest", err)
		}
		bad = good
		bad.topic = "nope"
		if _, err := n.handleConsumerFetch(t.Context(), envelope{Payload: bad.encode()}); !errors.Is(err, ErrUnknownTopic) {
			t.Fatalf("unknown topic: %v, want ErrUnknownTopic", err)
		}
		follower := c.peers[(slices.Index(c.peers, leader)+1)%3]
		if _, err := c.nodes[follower].cluster.handleConsumerFetch(t.Context(), envelope{Payload: enc}); !errors.Is(err, ErrNotLeader) {
			t.Fatalf("fetch from a follower: %v, want ErrNotLeader", err)
		}
		reply, err := n.handleConsumerFetch(t.Context(), envelope{Payload: enc})
		if err != nil || len(reply) <= 16 {
			t.Fatalf("good request: %d bytes, %v", len(reply), err)
		}
		past := good
		past.offset = 99
		reply, err = n.handleConsumerFetch(t.Context(), envelope{Payload: past.encode()})
		if err != nil || len(reply) != 16 {
			t.Fatalf("fetch past the high watermark: %d bytes, %v; want the bounds alone", len(reply), err)
		}
	})
}
