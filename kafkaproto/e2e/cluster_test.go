package e2e

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/instream/stream"
	"github.com/instream/stream/kafkaproto"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// A three-node cluster in one process: Streams clustered over a
// MemNetwork, each served by its own listener on a loopback port, the
// listeners told of each other's addresses (Config.Brokers).

type clusterNode struct {
	s      *stream.Stream
	addr   string
	cancel context.CancelFunc
	done   chan error
}

type kafkaCluster struct {
	t     *testing.T
	nodes map[stream.NodeID]*clusterNode
}

func startKafkaCluster(t *testing.T) *kafkaCluster {
	t.Helper()
	net3 := stream.NewMemNetwork(1)
	peers := []stream.NodeID{1, 2, 3}
	lns := map[stream.NodeID]net.Listener{}
	addrs := map[stream.NodeID]string{}
	dirs := map[stream.NodeID]string{}
	for _, id := range peers {
		dirs[id] = t.TempDir() // before the Cleanup below, so removed after it
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns[id], addrs[id] = ln, ln.Addr().String()
	}
	c := &kafkaCluster{t: t, nodes: map[stream.NodeID]*clusterNode{}}
	t.Cleanup(func() {
		for _, id := range peers {
			if c.nodes[id] != nil {
				c.stop(id)
			}
		}
	})
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	for _, id := range peers {
		s, err := stream.Open(dirs[id], &stream.Options{
			Logger: logger,
			Cluster: &stream.ClusterConfig{NodeID: id, Peers: peers, Transport: net3.Transport(id),
				SessionTimeout: 3 * time.Second, ReplicaLagTime: 5 * time.Second},
		})
		if err != nil {
			lns[id].Close()
			t.Fatalf("node %d: %v", id, err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		n := &clusterNode{s: s, addr: addrs[id], cancel: cancel, done: make(chan error, 1)}
		go func() {
			n.done <- kafkaproto.Serve(ctx, lns[id], s, kafkaproto.Config{Brokers: addrs, Logger: logger})
		}()
		c.nodes[id] = n
	}
	return c
}

// stop closes node id's listener, then its Stream (which tells the
// controller, so its partitions fail over at once).
func (c *kafkaCluster) stop(id stream.NodeID) {
	c.t.Helper()
	n := c.nodes[id]
	c.nodes[id] = nil
	n.cancel()
	if err := <-n.done; err != nil {
		c.t.Errorf("node %d: Serve: %v", id, err)
	}
	if err := n.s.Close(); err != nil {
		c.t.Errorf("node %d: Close: %v", id, err)
	}
}

func (c *kafkaCluster) seeds() []string {
	var out []string
	for _, n := range c.nodes {
		if n != nil {
			out = append(out, n.addr)
		}
	}
	return out
}

func newKgo(t *testing.T, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// eventually polls cond every 20ms until it holds or a minute passed.
func eventually(t *testing.T, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestClusterMetadataAndFailover: each node's listener is one broker.
// Metadata lists the three with their addresses and the partition's
// leader, replicas and ISR; a produce or fetch sent to a follower gets
// NOT_LEADER_OR_FOLLOWER; and a franz-go producer with acks=all keeps
// producing while the leader is closed, following the new leader,
// losing and duplicating nothing.
func TestClusterMetadataAndFailover(t *testing.T) {
	c := startKafkaCluster(t)
	ctx := testContext(t)
	adm := kadm.NewClient(newKgo(t, kgo.SeedBrokers(c.seeds()...)))
	var created kadm.CreateTopicResponse
	eventually(t, "CreateTopic", func() error {
		var err error
		created, err = adm.CreateTopic(ctx, 1, 3, nil, "replicated")
		if errors := created.Err; err == nil && errors != nil && !kerr.IsRetriable(errors) {
			return nil // reported below
		}
		if err != nil {
			return err
		}
		return created.Err
	})
	if created.Err != nil {
		t.Fatalf("CreateTopic: %v", created.Err)
	}

	var leader int32
	eventually(t, "metadata with three brokers and a full ISR", func() error {
		md, err := adm.Metadata(ctx, "replicated")
		if err != nil {
			return err
		}
		if len(md.Brokers) != 3 {
			return fmt.Errorf("brokers %v", md.Brokers)
		}
		for _, b := range md.Brokers {
			if want := c.nodes[stream.NodeID(b.NodeID)].addr; net.JoinHostPort(b.Host, strconv.Itoa(int(b.Port))) != want {
				return fmt.Errorf("broker %d at %s:%d, want %s", b.NodeID, b.Host, b.Port, want)
			}
		}
		p := md.Topics["replicated"].Partitions[0]
		if p.Err != nil || p.Leader < 1 || len(p.Replicas) != 3 || len(p.ISR) != 3 {
			return fmt.Errorf("partition %+v", p)
		}
		leader = p.Leader
		return nil
	})
	t.Logf("node %d leads", leader)

	// A follower refuses produces and fetches, naming no data of its own.
	follower := leader%3 + 1
	fcl := newKgo(t, kgo.SeedBrokers(c.nodes[stream.NodeID(follower)].addr))
	produce := kmsg.NewPtrProduceRequest()
	produce.Acks, produce.TimeoutMillis = -1, 5000
	pt := kmsg.NewProduceRequestTopic()
	pt.Topic = "replicated"
	pp := kmsg.NewProduceRequestTopicPartition()
	pp.Records = oneBatch(t)
	pt.Partitions = append(pt.Partitions, pp)
	produce.Topics = append(produce.Topics, pt)
	presp, err := produce.RequestWith(ctx, fcl.Broker(int(follower)))
	if err != nil {
		t.Fatal(err)
	}
	if code := presp.Topics[0].Partitions[0].ErrorCode; code != kerr.NotLeaderForPartition.Code {
		t.Fatalf("produce to follower %d: error code %d, want NOT_LEADER_OR_FOLLOWER", follower, code)
	}
	fetch := kmsg.NewPtrFetchRequest()
	fetch.MaxBytes, fetch.MaxWaitMillis = 1<<20, 10
	ft := kmsg.NewFetchRequestTopic()
	ft.Topic = "replicated"
	fp := kmsg.NewFetchRequestTopicPartition()
	fp.PartitionMaxBytes = 1 << 20
	ft.Partitions = append(ft.Partitions, fp)
	fetch.Topics = append(fetch.Topics, ft)
	fresp, err := fetch.RequestWith(ctx, fcl.Broker(int(follower)))
	if err != nil {
		t.Fatal(err)
	}
	if code := fresp.Topics[0].Partitions[0].ErrorCode; code != kerr.NotLeaderForPartition.Code {
		t.Fatalf("fetch from follower %d: error code %d, want NOT_LEADER_OR_FOLLOWER", follower, code)
	}

	// One node coordinates the groups: the live one with the smallest
	// ID; the others send group requests there.
	fc := kmsg.NewPtrFindCoordinatorRequest()
	fc.CoordinatorKey = "g"
	fcresp, err := fc.RequestWith(ctx, fcl.Broker(int(follower)))
	if err != nil || fcresp.ErrorCode != 0 || fcresp.NodeID != 1 || net.JoinHostPort(fcresp.Host, strconv.Itoa(int(fcresp.Port))) != c.nodes[1].addr {
		t.Fatalf("FindCoordinator on node %d: %+v, %v; want node 1", follower, fcresp, err)
	}
	hb := kmsg.NewPtrHeartbeatRequest()
	hb.Group, hb.MemberID, hb.Generation = "g", "m", 1
	hbresp, err := hb.RequestWith(ctx, fcl.Broker(int(follower)))
	wantCode := kerr.NotCoordinator.Code
	if follower == 1 {
		wantCode = kerr.UnknownMemberID.Code // the coordinator, not knowing m
	}
	if err != nil || hbresp.ErrorCode != wantCode {
		t.Fatalf("Heartbeat on node %d: %+v, %v; want code %d", follower, hbresp, err, wantCode)
	}

	// Produce 200 records, acks=all (kgo's default, idempotent), and
	// close the leader once half are acknowledged.
	const total = 200
	pcl := newKgo(t, kgo.SeedBrokers(c.seeds()...), kgo.DefaultProduceTopic("replicated"),
		kgo.RecordDeliveryTimeout(time.Minute), kgo.MaxBufferedRecords(10))
	var mu sync.Mutex
	var failed []error
	acked := make(chan struct{}, total)
	var wg sync.WaitGroup
	for i := range total {
		wg.Add(1)
		pcl.Produce(ctx, &kgo.Record{Value: []byte(strconv.Itoa(i))}, func(_ *kgo.Record, err error) {
			defer wg.Done()
			if err != nil {
				mu.Lock()
				failed = append(failed, err)
				mu.Unlock()
			}
			acked <- struct{}{}
		})
		if i == total/2 {
			for range total / 4 {
				<-acked // a quarter acknowledged before the leader goes
			}
			c.stop(stream.NodeID(leader))
		}
	}
	wg.Wait()
	if len(failed) > 0 {
		t.Fatalf("%d of %d records failed, the first: %v", len(failed), total, failed[0])
	}

	var newLeader int32
	eventually(t, "metadata without the closed node", func() error {
		md, err := adm.Metadata(ctx, "replicated")
		if err != nil {
			return err
		}
		if len(md.Brokers) != 2 || slices.Contains(md.Brokers.NodeIDs(), leader) {
			return fmt.Errorf("brokers %v after node %d closed", md.Brokers.NodeIDs(), leader)
		}
		p := md.Topics["replicated"].Partitions[0]
		if p.Err != nil || p.Leader == leader || p.Leader < 1 || slices.Contains(p.ISR, leader) {
			return fmt.Errorf("partition %+v after node %d closed", p, leader)
		}
		newLeader = p.Leader
		return nil
	})
	t.Logf("node %d leads after node %d closed", newLeader, leader)

	// A group consumer on what is left reads every record once.
	ccl := newKgo(t, kgo.SeedBrokers(c.seeds()...), kgo.ConsumeTopics("replicated"), kgo.ConsumerGroup("g"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	var got []int
	for len(got) < total {
		fs := ccl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("consumed %d of %d records: %v", len(got), total, err)
		}
		fs.EachError(func(topic string, p int32, err error) { t.Logf("fetch %s-%d: %v", topic, p, err) })
		fs.EachRecord(func(r *kgo.Record) {
			n, _ := strconv.Atoi(string(r.Value))
			got = append(got, n)
		})
	}
	slices.Sort(got)
	for i, n := range got {
		if n != i {
			t.Fatalf("consumed %d records, the %dth is %d: lost or duplicated across the failover", len(got), i, n)
		}
	}
	if len(got) != total {
		t.Fatalf("consumed %d records, want %d", len(got), total)
	}
}

// oneBatch is a valid RecordBatch v2 of one record, made by a Stream of
// its own.
func oneBatch(t *testing.T) []byte {
	t.Helper()
	b := startBroker(t, nil)
	b.createTopic(t, "one", 1)
	tp, _ := b.s.Topic("one")
	p, _ := tp.Partition(0)
	if _, err := p.Append(&stream.Record{Value: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	batch, _, err := p.ReadRaw(0, 1<<20, nil)
	if err != nil {
		t.Fatal(err)
	}
	return batch
}
