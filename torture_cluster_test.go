package stream_test

// The torture suite's cluster mode: three nodes in one process over a
// seeded MemNetwork, each with its topics on its own MemFS (meta.db in a
// temporary directory), under testing/synctest so that raft ticks,
// leases, long polls and timeouts run on the bubble's fake clock. A
// producer on every node sends unique values with AcksAll (idempotent)
// to a topic of two partitions, three replicas and MinInSyncReplicas 2,
// while a nemesis drawn from the seed works through steps: the leader
// isolated; a minority cut off from the majority; a bridge (two nodes
// cut from each other, both still linked to the third); a node killed
// (its power cut: what it had not fsynced is gone) and restarted;
// messages dropped, delayed, duplicated and reordered; one node's disk
// made slow. One node at most is down or cut off at a time: a minority
// of three. Then the network heals, the replicas catch up, and every
// replica is read to its high watermark.
//
// What the package doc promises with replication and AcksAll, and so
// what is checked: a record acknowledged survives any minority failing
// (lost, unseen); the logs of the replicas agree below the high
// watermark (inconsistent, across replicas); idempotence keeps a batch
// retried, forwarded or duplicated by the network from being written
// twice (duplicate). A failed send is ambiguous: ErrNotEnoughReplicas
// and ErrTimeout may come after the records reached the log.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/instream/stream"
)

const tortureSession = 900 * time.Millisecond

type tortureNode struct {
	id   stream.NodeID
	fs   *stream.MemFS
	s    *stream.Stream
	stop chan struct{} // stops this incarnation's writer
	done chan struct{} // closed when the writer is gone
}

type tortureCl struct {
	t     *testing.T
	h     *tortureHistory
	net   *stream.MemNetwork
	dir   string
	peers []stream.NodeID
	nodes map[stream.NodeID]*tortureNode
	tag   string
	// segmentBytes: 16 KiB segments roll every few hundred records, so
	// rolls, retention of old segments and idempotent retries across
	// rolls are in every run (they found bug 3 of RELIABILITY.md,
	// TestIdempotentRetryAfterRolls).
	segmentBytes stream.ByteSize
	pace         time.Duration // between a writer's sends: slower in the short pass
	sent         int           // values sent so far, for unique names
	mu           sync.Mutex
}

func tortureCluster(t *testing.T, seed uint64, long bool) (cycles int, r tortureResult) {
	synctest.Test(t, func(t *testing.T) {
		cycles, r = tortureClusterRun(t, seed, long)
	})
	return cycles, r
}

func tortureClusterRun(t *testing.T, seed uint64, long bool) (int, tortureResult) {
	rng := rand.New(rand.NewPCG(seed, 16))
	c := &tortureCl{t: t, h: newTortureHistory(), net: stream.NewMemNetwork(int64(seed)), dir: t.TempDir(),
		peers: []stream.NodeID{1, 2, 3}, nodes: map[stream.NodeID]*tortureNode{}, tag: fmt.Sprintf("c%d", seed),
		segmentBytes: 16 * stream.KiB, pace: 5 * time.Millisecond}
	if !long {
		c.pace = 25 * time.Millisecond
	}
	for _, id := range c.peers {
		c.nodes[id] = &tortureNode{id: id, fs: stream.NewMemFS()}
		c.nodes[id].fs.MkdirAllDurable(c.nodeDir(id))
	}
	for _, id := range c.peers {
		c.open(id)
	}
	defer func() {
		for _, id := range c.peers {
			c.kill(id, false, 0)
		}
	}()
	if !c.waitFor("three live nodes and a controller", time.Minute, func() bool {
		n := c.nodes[1].s
		alive := 0
		for _, ns := range n.Cluster().Nodes() {
			if ns.Alive {
				alive++
			}
		}
		return alive == 3 && n.Cluster().Controller() != 0
	}) {
		return 0, c.h.Check()
	}
	for {
		_, err := c.nodes[1].s.CreateTopic(tortureTopic, stream.TopicConfig{Partitions: 2, ReplicationFactor: 3, MinInSyncReplicas: 2, Retention: -1})
		if err == nil || errors.Is(err, stream.ErrTopicExists) {
			break
		}
		if !errors.Is(err, stream.ErrTimeout) {
			c.h.anomaly("cluster-error", "CreateTopic: %v", err)
			return 0, c.h.Check()
		}
	}
	if !c.waitConverged(2 * time.Minute) {
		return 0, c.h.Check()
	}
	for _, id := range c.peers {
		c.startWriter(id)
	}

	steps := 1 // the short pass: go test ./... (under -race too) stays fast
	if long {
		steps = 6 + rng.IntN(7)
	}
	for step := range steps {
		desc := c.nemesis(rng)
		t.Logf("step %d: %s", step, desc)
	}
	c.net.Heal()
	c.net.SetFaults(stream.MemFaults{})
	for _, n := range c.nodes {
		n.fs.Hook(nil)
	}
	time.Sleep(2 * time.Second) // writers go on a while without faults
	for _, id := range c.peers {
		c.stopWriter(id)
	}
	if !c.waitConverged(2 * time.Minute) {
		return steps, c.h.Check()
	}
	for _, id := range c.peers {
		top, err := c.nodes[id].s.Topic(tortureTopic)
		if err != nil {
			c.h.anomaly("cluster-error", "node %d: %v", id, err)
			continue
		}
		for i := range top.NumPartitions() {
			p, _ := top.Partition(int32(i))
			c.h.final(readReplica(c.h, p, fmt.Sprint("node", id), false))
		}
	}
	return steps, c.h.Check()
}

func (c *tortureCl) nodeDir(id stream.NodeID) string {
	return filepath.Join(c.dir, fmt.Sprint("node", id))
}

func (c *tortureCl) open(id stream.NodeID) {
	n := c.nodes[id]
	s, err := stream.OpenOnFS(n.fs, c.nodeDir(id), &stream.Options{
		Logger: slog.New(slog.DiscardHandler),
		Cluster: &stream.ClusterConfig{NodeID: id, Peers: c.peers, Transport: c.net.Transport(id),
			SessionTimeout: tortureSession, ReplicaLagTime: 2 * time.Second, RequestTimeout: 20 * time.Second},
		SegmentBytes:       c.segmentBytes,
		IndexIntervalBytes: 1024,
		DefaultTopic:       stream.TopicConfig{Retention: -1},
	})
	if err != nil {
		c.t.Fatalf("open node %d: %v", id, err)
	}
	n.s = s
}

// kill closes node id's Stream; with power, after cutting its power (what
// it had not fsynced is gone), and restarts its file system.
func (c *tortureCl) kill(id stream.NodeID, power bool, seed uint64) {
	n := c.nodes[id]
	if n.s == nil {
		return
	}
	c.stopWriter(id)
	if power {
		n.fs.CutPower()
	}
	n.s.Close() // fails after a power cut; it must release everything
	n.s = nil
	if power {
		n.fs = n.fs.Restart(seed)
	}
}

// waitFor polls cond on the fake clock for up to d.
func (c *tortureCl) waitFor(what string, d time.Duration, cond func() bool) bool {
	start := time.Now()
	for !cond() {
		if time.Since(start) > d {
			c.h.anomaly("cluster-stuck", "timed out after %v waiting for %s", d, what)
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
	return true
}

// waitConverged waits for every partition to have a leader with all
// three replicas in its ISR, and every replica's high watermark to
// reach the leader's.
func (c *tortureCl) waitConverged(d time.Duration) bool {
	return c.waitFor("the replicas to converge", d, func() bool {
		for i := range int32(2) {
			var hw []int64
			for _, id := range c.peers {
				s := c.nodes[id].s
				ps, err := s.Cluster().PartitionState(tortureTopic, i)
				if err != nil || ps.Leader == 0 || len(ps.ISR) != 3 {
					return false
				}
				top, err := s.Topic(tortureTopic)
				if err != nil {
					return false
				}
				p, err := top.Partition(i)
				if err != nil {
					return false
				}
				hw = append(hw, p.HighWatermark())
			}
			if slices.Min(hw) != slices.Max(hw) {
				return false
			}
		}
		return true
	})
}

// startWriter starts node id's producer: idempotent, AcksAll, unique
// values, until stopWriter.
func (c *tortureCl) startWriter(id stream.NodeID) {
	n := c.nodes[id]
	n.stop, n.done = make(chan struct{}), make(chan struct{})
	prod, err := n.s.NewProducer(stream.ProducerConfig{Linger: 2 * time.Millisecond, DeliveryTimeout: 5 * time.Second, RetryBackoff: 50 * time.Millisecond})
	if err != nil {
		c.h.anomaly("cluster-error", "node %d: NewProducer: %v", id, err)
		close(n.done)
		return
	}
	go func() {
		defer close(n.done)
		for k := 0; ; k++ {
			select {
			case <-n.stop:
				ctx, cancel := context.WithTimeout(context.Background(), time.Second)
				prod.CloseContext(ctx)
				cancel()
				return
			default:
			}
			c.mu.Lock()
			c.sent++
			v := fmt.Sprintf("%s-n%d-%d", c.tag, id, c.sent)
			c.mu.Unlock()
			c.h.invoke(v, stream.TopicPartition{}, true)
			prod.SendAsync(&stream.Record{Topic: tortureTopic, Key: []byte(fmt.Sprint(k % 11)), Value: []byte(v)}, func(r *stream.Record, err error) {
				if err != nil {
					c.h.fail(v, false)
					return
				}
				c.h.ack(v, stream.TopicPartition{Topic: r.Topic, Partition: r.Partition}, r.Offset)
			})
			if k%20 == 19 {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				prod.Flush(ctx)
				cancel()
			}
			time.Sleep(c.pace)
		}
	}()
}

func (c *tortureCl) stopWriter(id stream.NodeID) {
	n := c.nodes[id]
	if n.stop == nil {
		return
	}
	close(n.stop)
	<-n.done
	n.stop = nil
}

// leader returns partition 0's leader as a live node sees it (0: none).
func (c *tortureCl) leader() stream.NodeID {
	for _, id := range c.peers {
		if s := c.nodes[id].s; s != nil {
			if ps, err := s.Cluster().PartitionState(tortureTopic, 0); err == nil && ps.Leader != 0 {
				return ps.Leader
			}
		}
	}
	return 0
}

// nemesis runs one step: a fault (with, at random, message faults on
// top), a while under it, the repair, a while to recover.
func (c *tortureCl) nemesis(rng *rand.Rand) string {
	var desc string
	if rng.IntN(2) == 0 {
		f := stream.MemFaults{Drop: 0.05 * rng.Float64(), Duplicate: 0.1 * rng.Float64(), Delay: time.Duration(rng.IntN(30)) * time.Millisecond, Reorder: 0.1 * rng.Float64()}
		c.net.SetFaults(f)
		desc = fmt.Sprintf("messages dropped %.3f, duplicated %.3f, delayed up to %v, reordered %.3f; ", f.Drop, f.Duplicate, f.Delay, f.Reorder)
	}
	other := func(not ...stream.NodeID) stream.NodeID {
		for {
			id := c.peers[rng.IntN(3)]
			if !slices.Contains(not, id) {
				return id
			}
		}
	}
	var repair func()
	under := time.Duration(500+rng.IntN(3500)) * time.Millisecond
	switch rng.IntN(5) {
	case 0:
		id := c.leader()
		if id == 0 {
			id = other()
		}
		c.net.Isolate(id)
		desc += fmt.Sprintf("leader %d isolated for %v", id, under)
		repair = c.net.Heal
	case 1:
		id := other()
		c.net.Isolate(id)
		desc += fmt.Sprintf("minority {%d} cut from the majority for %v", id, under)
		repair = c.net.Heal
	case 2:
		a := other()
		b := other(a)
		c.net.Cut(a, b)
		desc += fmt.Sprintf("bridge: %d and %d cut from each other, both linked to %d, for %v", a, b, other(a, b), under)
		repair = c.net.Heal
	case 3:
		id := c.leader()
		if id == 0 || rng.IntN(2) == 0 {
			id = other()
		}
		// A power cut loses what the node had not fsynced; half the
		// restarts are one (every one with -torture.known). It was a
		// bug's trigger (RELIABILITY.md item 4, fixed): replicas
		// diverged at an offset and an acknowledged record was lost (a
		// leader restarted within SessionTimeout led again in the same
		// epoch: TestReplicaLeaderRestartKeepsItsEpoch). Otherwise the
		// node stops with Close.
		power := rng.IntN(2) == 0 || *tortureKnown
		c.kill(id, power, rng.Uint64())
		how := "stopped (Close)"
		if power {
			how = "killed (power cut)"
		}
		desc += fmt.Sprintf("node %d %s for %v, then restarted", id, how, under)
		repair = func() {
			c.open(id)
			c.startWriter(id)
		}
	default:
		id := other()
		delay := time.Duration(5+rng.IntN(100)) * time.Millisecond
		// Data fsyncs only: they run outside the partition's lock.
		// A sleep inside it (a roll's directory fsync) would block
		// other goroutines on a mutex, which synctest does not count
		// as durably blocked: the fake clock would stop for good.
		c.nodes[id].fs.Hook(func(op, _ string) {
			if op == "syncdata" {
				time.Sleep(delay)
			}
		})
		desc += fmt.Sprintf("node %d's disk slow (%v per fsync) for %v", id, delay, under)
		repair = func() { c.nodes[id].fs.Hook(nil) }
	}
	time.Sleep(under)
	repair()
	c.net.SetFaults(stream.MemFaults{})
	time.Sleep(time.Duration(500+rng.IntN(2500)) * time.Millisecond)
	return desc
}
