package stream

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"go.etcd.io/bbolt"
	"go.etcd.io/raft/v3/raftpb"
)

// testNet is the tests' transport: a map of handlers, called directly,
// with seeded faults. A delayed request is delivered later by its own
// goroutine, so requests from one sender overtake each other.
type testNet struct {
	mu       sync.Mutex // guards everything below
	handlers map[NodeID]func(context.Context, []byte) []byte
	cut      map[NodeID]bool
	rng      *rand.Rand
	drop     float64 // share of requests lost
	delay    float64 // share of requests delivered late (reordered)
	dup      float64 // share of requests delivered twice

	late sync.WaitGroup // requests still to be delivered
}

func newTestNet(seed uint64) *testNet {
	return &testNet{
		handlers: map[NodeID]func(context.Context, []byte) []byte{},
		cut:      map[NodeID]bool{},
		rng:      rand.New(rand.NewPCG(seed, seed)),
	}
}

func (n *testNet) setFaults(drop, delay, dup float64) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.drop, n.delay, n.dup = drop, delay, dup
}

// isolate cuts id off from every other node.
func (n *testNet) isolate(id NodeID) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.cut[id] = true
}

func (n *testNet) transport(id NodeID) Transport { return &testTransport{net: n, id: id} }

type testTransport struct {
	net *testNet
	id  NodeID
}

var errTestUnreachable = errors.New("test transport: unreachable")

func (t *testTransport) Call(ctx context.Context, to NodeID, req []byte) ([]byte, error) {
	n := t.net
	n.mu.Lock()
	h := n.handlers[to]
	lost := h == nil || n.cut[to] || n.cut[t.id] || n.rng.Float64() < n.drop
	var late time.Duration
	if n.rng.Float64() < n.delay {
		late = time.Duration(1+n.rng.IntN(300)) * time.Millisecond
	}
	twice := n.rng.Float64() < n.dup
	n.mu.Unlock()
	if lost {
		return nil, errTestUnreachable
	}
	req = slices.Clone(req)
	if twice {
		n.late.Go(func() { h(context.Background(), req) })
	}
	if late > 0 {
		n.late.Go(func() {
			time.Sleep(late)
			h(context.Background(), req)
		})
		// The caller hears success now, as over a network that delivers
		// late (the handler's own reply is lost).
		return appendReply(nil, protoVersion, statusOK, protoVersion, nil), nil
	}
	return h(ctx, req), nil
}

func (t *testTransport) Serve(h func(context.Context, []byte) []byte) error {
	t.net.mu.Lock()
	defer t.net.mu.Unlock()
	t.net.handlers[t.id] = h
	return nil
}

func (t *testTransport) Close() error {
	t.net.mu.Lock()
	defer t.net.mu.Unlock()
	delete(t.net.handlers, t.id)
	return nil
}

// testCluster runs nodes 1..3 over a testNet inside a synctest bubble.
type testCluster struct {
	t        *testing.T
	net      *testNet
	dir      string
	peers    []NodeID
	snapshot uint64 // SnapshotEntries
	nodes    map[NodeID]*Cluster
	dbs      map[NodeID]*bbolt.DB
	msgs     map[NodeID]*messenger

	effectsMu sync.Mutex // guards effects
	effects   map[NodeID][]effect
}

// effectsOf returns what OnApply has told node id so far.
func (tc *testCluster) effectsOf(id NodeID) []effect {
	tc.effectsMu.Lock()
	defer tc.effectsMu.Unlock()
	return slices.Clone(tc.effects[id])
}

func newTestCluster(t *testing.T, seed uint64, snapshotEntries uint64) *testCluster {
	tc := &testCluster{t: t, net: newTestNet(seed), dir: t.TempDir(), peers: []NodeID{1, 2, 3},
		snapshot: snapshotEntries, nodes: map[NodeID]*Cluster{}, dbs: map[NodeID]*bbolt.DB{}, msgs: map[NodeID]*messenger{}, effects: map[NodeID][]effect{}}
	for _, id := range tc.peers {
		tc.start(id)
	}
	t.Cleanup(func() {
		for id := range tc.nodes {
			tc.stop(id)
		}
		tc.net.late.Wait()
	})
	return tc
}

func (tc *testCluster) start(id NodeID) {
	tc.t.Helper()
	db, err := bbolt.Open(filepath.Join(tc.dir, fmt.Sprint(id, ".db")), 0o644, &bbolt.Options{NoSync: true})
	if err != nil {
		tc.t.Fatal(err)
	}
	var lg *slog.Logger
	if os.Getenv("CLUSTER_DEBUG") != "" {
		lg = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	tr := tc.net.transport(id)
	msg := newMessenger(id, tr, lg)
	c, err := newCluster(ClusterConfig{NodeID: id, Peers: tc.peers, Transport: tr}, db, msg, lg, func(_ uint64, effects []effect) {
		tc.effectsMu.Lock()
		defer tc.effectsMu.Unlock()
		tc.effects[id] = append(tc.effects[id], effects...)
	}, tc.snapshot)
	if err != nil {
		tc.t.Fatal(err)
	}
	if err := msg.serve(); err != nil {
		tc.t.Fatal(err)
	}
	tc.nodes[id], tc.dbs[id], tc.msgs[id] = c, db, msg
}

func (tc *testCluster) stop(id NodeID) {
	tc.t.Helper()
	if err := tc.nodes[id].close(); err != nil {
		tc.t.Errorf("close node %d: %v", id, err)
	}
	tc.forget(id)
}

// forget closes what node id's Cluster leaves to its owner.
func (tc *testCluster) forget(id NodeID) {
	tc.t.Helper()
	if err := tc.msgs[id].t.Close(); err != nil {
		tc.t.Error(err)
	}
	if err := tc.dbs[id].Close(); err != nil {
		tc.t.Error(err)
	}
	delete(tc.nodes, id)
	delete(tc.dbs, id)
	delete(tc.msgs, id)
}

// waitFor advances fake time until cond holds, for at most a minute.
func (tc *testCluster) waitFor(what string, cond func() bool) {
	tc.t.Helper()
	for range 600 {
		synctest.Wait()
		if cond() {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	tc.t.Fatalf("after a minute: %s", what)
}

// controller returns the raft leader every running node agrees on, or 0.
func (tc *testCluster) controller() NodeID {
	var leader NodeID
	for _, c := range tc.nodes {
		l := c.Controller()
		if l == 0 || leader != 0 && l != leader {
			return 0
		}
		leader = l
	}
	if tc.nodes[leader] == nil {
		return 0
	}
	return leader
}

func (tc *testCluster) allAlive(ids ...NodeID) bool {
	for _, c := range tc.nodes {
		alive := 0
		for _, n := range c.Nodes() {
			if n.Alive && slices.Contains(ids, n.ID) {
				alive++
			}
		}
		if alive != len(ids) {
			return false
		}
	}
	return true
}

// converged waits until every running node has applied the same index,
// then checks their states are byte-identical.
func (tc *testCluster) converged() {
	tc.t.Helper()
	var index uint64
	var states [][]byte
	tc.waitFor("nodes apply the same index", func() bool {
		states = states[:0]
		var indexes []uint64
		for _, c := range tc.nodes {
			c.node.read(func(sm *controller, applied uint64) {
				b, err := sm.snapshot()
				if err != nil {
					tc.t.Fatal(err)
				}
				states = append(states, b)
				indexes = append(indexes, applied)
			})
		}
		index = indexes[0]
		return slices.Min(indexes) == slices.Max(indexes)
	})
	for _, s := range states[1:] {
		if !bytes.Equal(s, states[0]) {
			tc.t.Fatalf("at index %d two nodes hold different state:\n%s\n%s", index, states[0], s)
		}
	}
}

func (tc *testCluster) follower() NodeID {
	for _, id := range tc.peers {
		if tc.nodes[id] != nil && id != tc.controller() {
			return id
		}
	}
	return 0
}

func TestClusterReplicatesMetadata(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tc := newTestCluster(t, 1, 0)
		tc.waitFor("a controller and three live nodes", func() bool { return tc.controller() != 0 && tc.allAlive(1, 2, 3) })
		via := tc.nodes[tc.follower()] // proposals forwarded to the leader
		if err := via.createTopic(t.Context(), "orders", TopicConfig{Partitions: 3, ReplicationFactor: 3, MinInSyncReplicas: 2}); err != nil {
			t.Fatal(err)
		}
		if err := via.createTopic(t.Context(), "orders", TopicConfig{Partitions: 1, ReplicationFactor: 1}); !errors.Is(err, ErrTopicExists) {
			t.Fatalf("second create: %v, want ErrTopicExists", err)
		}
		if err := via.createTopic(t.Context(), "big", TopicConfig{Partitions: 1, ReplicationFactor: 4}); !errors.Is(err, ErrNotEnoughReplicas) {
			t.Fatalf("RF 4 on 3 nodes: %v, want ErrNotEnoughReplicas", err)
		}
		tc.converged()
		leaders := map[NodeID]bool{}
		for _, c := range tc.nodes {
			if got := c.Topics(); !slices.Equal(got, []string{"orders"}) {
				t.Fatalf("node %d topics %v", c.NodeID(), got)
			}
			for p := range int32(3) {
				ps, err := c.PartitionState("orders", p)
				if err != nil || len(ps.Replicas) != 3 || len(ps.ISR) != 3 || ps.Leader != ps.Replicas[0] {
					t.Fatalf("node %d: orders-%d = %+v, %v", c.NodeID(), p, ps, err)
				}
				leaders[ps.Leader] = true
			}
			if _, err := c.PartitionState("orders", 3); !errors.Is(err, ErrUnknownTopic) {
				t.Fatalf("orders-3: %v", err)
			}
		}
		if len(leaders) != 3 {
			t.Fatalf("partition leaders %v: not spread over the nodes", leaders)
		}
		// After a barrier, a node's reads see every change committed
		// before it: a delete made through another node.
		if err := tc.nodes[tc.controller()].deleteTopic(t.Context(), "orders"); err != nil {
			t.Fatal(err)
		}
		for _, c := range tc.nodes {
			if err := c.node.barrier(t.Context()); err != nil {
				t.Fatal(err)
			}
			if got := c.Topics(); len(got) != 0 {
				t.Fatalf("node %d still lists %v after the delete and a barrier", c.NodeID(), got)
			}
		}
		if err := via.deleteTopic(t.Context(), "orders"); !errors.Is(err, ErrUnknownTopic) {
			t.Fatalf("second delete: %v", err)
		}
	})
}

func TestClusterFailover(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tc := newTestCluster(t, 2, 0)
		tc.waitFor("a controller and three live nodes", func() bool { return tc.controller() != 0 && tc.allAlive(1, 2, 3) })
		if err := tc.nodes[1].createTopic(t.Context(), "t", TopicConfig{Partitions: 3, ReplicationFactor: 3}); err != nil {
			t.Fatal(err)
		}
		// The controller crashes: cut off first, so it cannot say goodbye.
		old := tc.controller()
		tc.net.isolate(old)
		tc.stop(old)
		tc.waitFor("a new controller", func() bool { c := tc.controller(); return c != 0 && c != old })
		tc.waitFor("partitions led by the stopped node to fail over", func() bool {
			for _, c := range tc.nodes {
				for p := range int32(3) {
					ps, err := c.PartitionState("t", p)
					if err != nil {
						t.Fatal(err)
					}
					if ps.Leader == old || ps.Leader == 0 || slices.Contains(ps.ISR, old) {
						return false
					}
				}
			}
			return true
		})
		for _, c := range tc.nodes {
			for _, n := range c.Nodes() {
				if n.ID == old && n.Alive {
					t.Fatalf("node %d sees the stopped node %d alive", c.NodeID(), old)
				}
			}
		}
		// Two nodes of three still decide.
		if err := tc.nodes[tc.follower()].createTopic(t.Context(), "u", TopicConfig{Partitions: 1, ReplicationFactor: 2}); err != nil {
			t.Fatal(err)
		}
		if err := tc.nodes[tc.follower()].createTopic(t.Context(), "v", TopicConfig{Partitions: 1, ReplicationFactor: 3}); !errors.Is(err, ErrNotEnoughReplicas) {
			t.Fatalf("RF 3 with 2 live nodes: %v", err)
		}
		tc.converged()
	})
}

// TestClusterCloseHandsOver: a node that closes tells the controller, so
// its partitions fail over at once, not a SessionTimeout later.
func TestClusterCloseHandsOver(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tc := newTestCluster(t, 6, 0)
		tc.waitFor("a controller and three live nodes", func() bool { return tc.controller() != 0 && tc.allAlive(1, 2, 3) })
		if err := tc.nodes[1].createTopic(t.Context(), "t", TopicConfig{Partitions: 3, ReplicationFactor: 2}); err != nil {
			t.Fatal(err)
		}
		gone := tc.follower()
		start := time.Now()
		tc.stop(gone)
		tc.waitFor("the closed node's partitions to fail over", func() bool {
			for p := range int32(3) {
				ps, _ := tc.nodes[tc.follower()].PartitionState("t", p)
				if ps.Leader == gone || slices.Contains(ps.ISR, gone) {
					return false
				}
			}
			return true
		})
		if took := time.Since(start); took >= 9*time.Second/2 {
			t.Fatalf("failover after a clean close took %v (fake time), not much less than the 9s session", took)
		}
	})
}

func TestClusterRestartCatchesUp(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tc := newTestCluster(t, 3, 20) // snapshots every 20 entries: the log is compacted while node 3 is away
		tc.waitFor("a controller and three live nodes", func() bool { return tc.controller() != 0 && tc.allAlive(1, 2, 3) })
		tc.stop(3)
		for i := range 10 {
			if err := tc.nodes[1].createTopic(t.Context(), fmt.Sprint("t", i), TopicConfig{Partitions: 2, ReplicationFactor: 2}); err != nil {
				t.Fatal(err)
			}
			time.Sleep(5 * time.Second)
		}
		var first uint64
		tc.nodes[1].node.read(func(*controller, uint64) {})
		first, _ = tc.nodes[1].node.storage.FirstIndex()
		tc.start(3)
		tc.waitFor("node 3 back alive", func() bool { return tc.allAlive(1, 2, 3) })
		tc.converged()
		if got := tc.nodes[3].Topics(); len(got) != 10 {
			t.Fatalf("node 3 has %d topics after restart, want 10", len(got))
		}
		if snap, _ := tc.nodes[3].node.storage.Snapshot(); snap.Metadata.Index < first-1 {
			t.Fatalf("node 3's snapshot at %d: it caught up without the leader's (log starts at %d)", snap.Metadata.Index, first)
		}
		if first < 20 {
			t.Fatalf("leader's log starts at %d: never compacted, the test proves nothing", first)
		}
		// And it takes part again: its proposal applies everywhere.
		if err := tc.nodes[3].createTopic(t.Context(), "after", TopicConfig{Partitions: 1, ReplicationFactor: 3}); err != nil {
			t.Fatal(err)
		}
		tc.converged()
	})
}

// TestClusterLossyNetwork proposes through a network that drops, delays
// (reorders) and duplicates requests, then heals it: every node ends with
// the same state, holding every topic.
func TestClusterLossyNetwork(t *testing.T) {
	for seed := range uint64(3) {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			t.Logf("seed %d", seed)
			synctest.Test(t, func(t *testing.T) {
				tc := newTestCluster(t, seed, 30)
				tc.net.setFaults(0.2, 0.3, 0.1)
				rng := rand.New(rand.NewPCG(seed, 7))
				for i := range 8 {
					name := fmt.Sprint("t", i)
					for attempt := 0; ; attempt++ {
						via := tc.nodes[tc.peers[rng.IntN(3)]]
						ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
						err := via.createTopic(ctx, name, TopicConfig{Partitions: 2, ReplicationFactor: 2})
						cancel()
						if err == nil || attempt > 0 && errors.Is(err, ErrTopicExists) {
							break // an earlier attempt that timed out may have applied
						}
						if !errors.Is(err, ErrTimeout) && !errors.Is(err, ErrNotEnoughReplicas) || attempt == 30 {
							t.Fatalf("create %s, attempt %d: %v", name, attempt, err)
						}
					}
				}
				tc.net.setFaults(0, 0, 0)
				tc.converged()
				for _, c := range tc.nodes {
					if got := c.Topics(); len(got) != 8 {
						t.Fatalf("node %d has topics %v", c.NodeID(), got)
					}
				}
			})
		})
	}
}

func TestClusterProposeTimesOutWithoutQuorum(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tc := newTestCluster(t, 4, 0)
		tc.waitFor("a controller and three live nodes", func() bool { return tc.controller() != 0 && tc.allAlive(1, 2, 3) })
		tc.stop(2)
		tc.stop(3)
		ctx, cancel := context.WithTimeout(t.Context(), 3*time.Second)
		defer cancel()
		if err := tc.nodes[1].createTopic(ctx, "t", TopicConfig{Partitions: 1, ReplicationFactor: 1}); !errors.Is(err, ErrTimeout) {
			t.Fatalf("create without a quorum: %v, want ErrTimeout", err)
		}
		cctx, ccancel := context.WithCancel(t.Context())
		ccancel()
		if err := tc.nodes[1].createTopic(cctx, "t", TopicConfig{Partitions: 1, ReplicationFactor: 1}); !errors.Is(err, context.Canceled) {
			t.Fatalf("create with a cancelled ctx: %v, want context.Canceled", err)
		}
		c := tc.nodes[1]
		tc.stop(1)
		if err := c.createTopic(t.Context(), "t", TopicConfig{Partitions: 1, ReplicationFactor: 1}); !errors.Is(err, ErrClosed) {
			t.Fatalf("create on a closed node: %v, want ErrClosed", err)
		}
	})
}

// TestClusterBadRequests: garbage on the transport gets an error reply,
// never a panic, and the node keeps working.
func TestClusterBadRequests(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tc := newTestCluster(t, 5, 0)
		tc.waitFor("a controller and three live nodes", func() bool { return tc.controller() != 0 && tc.allAlive(1, 2, 3) })
		raftRequest := func(from NodeID, payload []byte) []byte {
			return appendEnvelope(nil, envelope{Version: protoVersion, Kind: kindRaft, From: from, Payload: payload})
		}
		good, err := encodeRaftMessages([]raftpb.Message{{Type: raftpb.MsgHeartbeat, From: 2, To: 1, Term: 1}})
		if err != nil {
			t.Fatal(err)
		}
		misaddressed, _ := encodeRaftMessages([]raftpb.Message{{Type: raftpb.MsgHeartbeat, From: 3, To: 1}})
		for _, req := range [][]byte{
			nil, {0}, []byte("hello"), {protoVersion, byte(kindRaft)},
			raftRequest(2, good[:len(good)-1]), raftRequest(2, []byte{0xff, 0xff, 0xff}),
			raftRequest(2, []byte{3, 0xff, 0xff, 0xff}), raftRequest(2, misaddressed),
		} {
			reply := tc.msgs[1].dispatch(t.Context(), req)
			if _, _, err := decodeReply(reply, 1, protoVersion); !errors.Is(err, ErrBadRequest) {
				t.Errorf("request %q: reply %v, want ErrBadRequest", req, err)
			}
		}
		if _, _, err := decodeReply(tc.msgs[1].dispatch(t.Context(), raftRequest(2, good)), 1, protoVersion); err != nil {
			t.Fatalf("a good request refused: %v", err)
		}
		if err := tc.nodes[1].createTopic(t.Context(), "t", TopicConfig{Partitions: 1, ReplicationFactor: 3}); err != nil {
			t.Fatal(err)
		}
		// A well-formed message that contradicts the node's log (a commit
		// index far past its end, claimed by the current leader) makes raft
		// panic: the node stops with ErrCorrupt; the process goes on.
		leader := tc.controller()
		victim := tc.follower()
		hs, _, _ := tc.nodes[victim].node.storage.InitialState()
		lie, _ := encodeRaftMessages([]raftpb.Message{{Type: raftpb.MsgHeartbeat, From: uint64(leader), To: uint64(victim), Term: hs.Term, Commit: 1 << 40}})
		tc.msgs[victim].dispatch(t.Context(), raftRequest(leader, lie))
		c := tc.nodes[victim]
		tc.waitFor("the node to stop", func() bool {
			select {
			case <-c.node.donec:
				return true
			default:
				return false
			}
		})
		if err := c.close(); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("close after a contradicting message: %v, want ErrCorrupt", err)
		}
		tc.forget(victim)
	})
}

// TestClusterDataPlaneCommands drives what the data plane will: a
// partition leader shrinks and grows its ISR (a stale request fenced),
// every node hears of it through OnApply, and a group spanning nodes
// commits offsets that every node reads.
func TestClusterDataPlaneCommands(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tc := newTestCluster(t, 7, 0)
		tc.waitFor("a controller and three live nodes", func() bool { return tc.controller() != 0 && tc.allAlive(1, 2, 3) })
		if err := tc.nodes[1].createTopic(t.Context(), "t", TopicConfig{Partitions: 1, ReplicationFactor: 3}); err != nil {
			t.Fatal(err)
		}
		pm, _, err := tc.nodes[1].partition("t", 0)
		if err != nil {
			t.Fatal(err)
		}
		leader := tc.nodes[pm.Leader]
		follower := pm.Replicas[1]
		shrunk := without(pm.ISR, follower)
		if err := leader.alterISR(t.Context(), "t", 0, pm.LeaderEpoch, pm.PartitionEpoch, shrunk); err != nil {
			t.Fatal(err)
		}
		if err := leader.alterISR(t.Context(), "t", 0, pm.LeaderEpoch, pm.PartitionEpoch, pm.ISR); !errors.Is(err, ErrFenced) {
			t.Fatalf("alter at a stale partition epoch: %v, want ErrFenced", err)
		}
		if err := tc.nodes[follower].alterISR(t.Context(), "t", 0, pm.LeaderEpoch, pm.PartitionEpoch+1, pm.ISR); !errors.Is(err, ErrFenced) {
			t.Fatalf("alter by a follower: %v, want ErrFenced", err)
		}
		if err := leader.alterISR(t.Context(), "t", 0, pm.LeaderEpoch, pm.PartitionEpoch+1, pm.ISR); err != nil {
			t.Fatal(err)
		}
		tc.converged()
		for id := range tc.nodes {
			var isrs [][]NodeID
			effects := tc.effectsOf(id)
			if len(effects) == 0 || effects[0].Kind != effectReset {
				t.Fatalf("node %d: first effect %+v, want a reset", id, effects)
			}
			for _, e := range effects {
				if e.Kind == effectPartition && e.Topic == "t" {
					isrs = append(isrs, e.State.ISR)
				}
			}
			if len(isrs) != 3 || !slices.Equal(isrs[1], shrunk) || !slices.Equal(isrs[2], pm.ISR) {
				t.Fatalf("node %d heard ISRs %v", id, isrs)
			}
		}

		gen, err := tc.nodes[1].joinGroup(t.Context(), "g", "a", []string{"t"})
		if err != nil || gen != 1 {
			t.Fatalf("join a: generation %d, %v", gen, err)
		}
		if gen, err = tc.nodes[2].joinGroup(t.Context(), "g", "b", []string{"t"}); err != nil || gen != 2 {
			t.Fatalf("join b: generation %d, %v", gen, err)
		}
		tp := TopicPartition{Topic: "t"}
		if err := tc.nodes[1].syncGroup(t.Context(), "g", "a", 2, map[string][]TopicPartition{"b": {tp}}); err != nil {
			t.Fatal(err)
		}
		if err := tc.nodes[2].commitOffsets(t.Context(), "g", "b", 1, map[TopicPartition]OffsetAndMetadata{tp: {Offset: 5}}); !errors.Is(err, ErrFenced) {
			t.Fatalf("commit from generation 1: %v, want ErrFenced", err)
		}
		if err := tc.nodes[2].commitOffsets(t.Context(), "g", "b", 2, map[TopicPartition]OffsetAndMetadata{tp: {Offset: 42, Metadata: "m"}}); err != nil {
			t.Fatal(err)
		}
		if err := tc.nodes[3].node.barrier(t.Context()); err != nil {
			t.Fatal(err)
		}
		got, err := tc.nodes[3].committed("g")
		if err != nil || got[tp].Offset != 42 || got[tp].Metadata != "m" {
			t.Fatalf("node 3 reads %v, %v", got, err)
		}
		if err := tc.nodes[1].leaveGroup(t.Context(), "g", "a"); err != nil {
			t.Fatal(err)
		}
		if _, err := tc.nodes[3].committed("nope"); !errors.Is(err, ErrUnknownGroup) {
			t.Fatalf("committed of an unknown group: %v", err)
		}
	})
}

// FuzzDecodeRaftMessages: arbitrary bytes never panic the decoder, and
// what decodes encodes back to bytes that decode the same.
func FuzzDecodeRaftMessages(f *testing.F) {
	good, _ := encodeRaftMessages([]raftpb.Message{{Type: raftpb.MsgApp, From: 2, To: 1, Term: 3, Entries: []raftpb.Entry{{Index: 1, Term: 3, Data: []byte("x")}}}})
	f.Add(good)
	f.Add([]byte{1, 0})
	f.Fuzz(func(t *testing.T, payload []byte) {
		msgs, err := decodeRaftMessages(payload)
		if err != nil {
			if !errors.Is(err, ErrBadRequest) {
				t.Fatalf("error %v is not ErrBadRequest", err)
			}
			return
		}
		again, err := encodeRaftMessages(msgs)
		if err != nil {
			t.Fatal(err)
		}
		msgs2, err := decodeRaftMessages(again)
		if err != nil || len(msgs2) != len(msgs) {
			t.Fatalf("round trip: %d/%d messages, %v", len(msgs), len(msgs2), err)
		}
	})
}

// BenchmarkClusterCommitOffsets measures the metadata raft group's commit
// rate for consumer group offset commits: three nodes over the in-test
// transport, real time, bbolt fsyncing every Ready; commits come from
// every node at once, each waiting for its own to apply.
//
//	go test -run '^$' -bench ClusterCommitOffsets
func BenchmarkClusterCommitOffsets(b *testing.B) {
	net := newTestNet(1)
	dir := b.TempDir()
	peers := []NodeID{1, 2, 3}
	var nodes []*Cluster
	for _, id := range peers {
		db, err := bbolt.Open(filepath.Join(dir, fmt.Sprint(id, ".db")), 0o644, nil)
		if err != nil {
			b.Fatal(err)
		}
		defer db.Close()
		tr := net.transport(id)
		defer tr.Close()
		msg := newMessenger(id, tr, nil)
		c, err := newCluster(ClusterConfig{NodeID: id, Peers: peers, Transport: tr, SessionTimeout: 900 * time.Millisecond}, db, msg, nil, nil, 0)
		if err != nil {
			b.Fatal(err)
		}
		if err := msg.serve(); err != nil {
			b.Fatal(err)
		}
		nodes = append(nodes, c)
	}
	defer func() {
		for _, c := range nodes {
			c.close()
		}
	}()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if nodes[0].Controller() != 0 && len(nodes[0].Nodes()) == 3 {
			break
		}
		if time.Now().After(deadline) {
			b.Fatal("no controller after 10s")
		}
	}
	var next atomic.Int64
	b.ResetTimer()
	b.SetParallelism(4)
	b.RunParallel(func(pb *testing.PB) {
		i := next.Add(1)
		c := nodes[i%3]
		group := fmt.Sprint("g", i)
		for off := int64(0); pb.Next(); off++ {
			tp := TopicPartition{Topic: "t", Partition: int32(off % 8)}
			if err := c.commitOffsets(context.Background(), group, "", 0, map[TopicPartition]OffsetAndMetadata{tp: {Offset: off}}); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "commits/s")
}

// checkEpochs fails if, between two resets, a node heard a partition's
// leader epoch or partition epoch go backwards.
func (tc *testCluster) checkEpochs(id NodeID) {
	tc.t.Helper()
	type key struct {
		topic uint64
		p     int32
	}
	last := map[key]partitionMeta{}
	for _, e := range tc.effectsOf(id) {
		switch e.Kind {
		case effectReset:
			clear(last)
		case effectPartition:
			k := key{e.TopicID, e.Partition}
			if prev, ok := last[k]; ok && (e.State.LeaderEpoch < prev.LeaderEpoch || e.State.PartitionEpoch <= prev.PartitionEpoch) {
				tc.t.Fatalf("node %d: %s-%d went from epochs %d/%d to %d/%d", id, e.Topic, e.Partition,
					prev.LeaderEpoch, prev.PartitionEpoch, e.State.LeaderEpoch, e.State.PartitionEpoch)
			}
			last[k] = e.State
		}
	}
}

// TestClusterChaos: nodes crash, restart and get cut off, a minority at
// a time, while topics come and go and leaders change ISRs, over a lossy
// network. Epochs never go backwards on any node; once healed, every
// node holds the same state.
func TestClusterChaos(t *testing.T) {
	for seed := range uint64(4) {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			t.Logf("seed %d", seed)
			synctest.Test(t, func(t *testing.T) {
				tc := newTestCluster(t, 100+seed, 25)
				tc.net.setFaults(0.05, 0.1, 0.05)
				rng := rand.New(rand.NewPCG(seed, 99))
				down := NodeID(0)
				for step := range 40 {
					var running []NodeID
					for _, id := range tc.peers {
						if tc.nodes[id] != nil {
							running = append(running, id)
						}
					}
					via := tc.nodes[running[rng.IntN(len(running))]]
					ctx, cancel := context.WithTimeout(t.Context(), 3*time.Second)
					switch rng.IntN(6) {
					case 0: // a crash, or a restart
						if down == 0 {
							down = running[rng.IntN(len(running))]
							if rng.IntN(2) == 0 {
								tc.net.isolate(down) // no goodbye
							}
							tc.stop(down)
						} else {
							tc.net.mu.Lock()
							delete(tc.net.cut, down)
							tc.net.mu.Unlock()
							tc.start(down)
							down = 0
						}
					case 1, 2:
						via.createTopic(ctx, fmt.Sprint("t", rng.IntN(5)), TopicConfig{Partitions: 2, ReplicationFactor: 1 + rng.IntN(2)})
					case 3:
						via.deleteTopic(ctx, fmt.Sprint("t", rng.IntN(5)))
					case 4: // a leader drops a follower from its ISR, or takes it back
						topic := fmt.Sprint("t", rng.IntN(5))
						if pm, _, err := via.partition(topic, 0); err == nil && tc.nodes[pm.Leader] != nil {
							isr := pm.Replicas
							if rng.IntN(2) == 0 {
								isr = []NodeID{pm.Leader}
							}
							tc.nodes[pm.Leader].alterISR(ctx, topic, 0, pm.LeaderEpoch, pm.PartitionEpoch, isr)
						}
					case 5:
						time.Sleep(time.Duration(rng.IntN(12)) * time.Second)
					}
					cancel()
					for id := range tc.nodes {
						tc.checkEpochs(id)
					}
					_ = step
				}
				tc.net.setFaults(0, 0, 0)
				if down != 0 {
					tc.net.mu.Lock()
					delete(tc.net.cut, down)
					tc.net.mu.Unlock()
					tc.start(down)
				}
				tc.waitFor("every node alive", func() bool { return tc.allAlive(1, 2, 3) })
				tc.converged()
				for id := range tc.nodes {
					tc.checkEpochs(id)
				}
			})
		})
	}
}
