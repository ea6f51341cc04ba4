// Command cluster runs a three-node cluster over TCP on 127.0.0.1 in one
// process, writes to it from every node, stops the leader of a partition
// under that load, and checks that nothing acknowledged was lost.
//
// Each node is a Stream opened with Options.Cluster over its own
// TCPTransport, exactly as three processes (or machines) would open it;
// only the addresses would differ. The program:
//
//  1. opens nodes 1, 2 and 3 and creates "orders" (3 partitions,
//     ReplicationFactor 3, MinInSyncReplicas 2) on node 1;
//
//  2. runs a producer on each node (AcksAll: a record is acknowledged
//     once every in-sync replica has it on disk), each sending to the
//     partitions' leaders wherever they are;
//
//  3. closes the node leading partition 0 halfway through: its
//     partitions move to in-sync replicas, the producers follow them;
//
//  4. prints what stream cluster would show (stream.QueryNode), and
//     checks that every acknowledged record is on both surviving
//     replicas, once, at its offset.
//
//     go run ./examples/cluster
//     go run ./examples/cluster -records 5000 -dir /tmp/cluster
//
// With -check it runs the same scenario on a temporary directory, the
// way CI runs it, and exits with status 0 only if every acknowledged
// record survived.
//
//	go run ./examples/cluster -check
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/instream/stream"
)

const topic = "orders"

func main() {
	dir := flag.String("dir", "", "directory of the three nodes (default: a temporary one, removed at exit)")
	records := flag.Int("records", 1500, "records each node's producer sends")
	check := flag.Bool("check", false, "self-test: on a temporary directory, exit 1 unless every acknowledged record survived")
	flag.Parse()
	if *check {
		*dir = ""
	}
	if err := run(*dir, *records); err != nil {
		fmt.Fprintln(os.Stderr, "cluster:", err)
		os.Exit(1)
	}
}

// acked is a record acknowledged to a producer.
type acked struct {
	partition int32
	offset    int64
	value     string
}

func run(dir string, records int) error {
	if dir == "" {
		tmp, err := os.MkdirTemp("", "cluster")
		if err != nil {
			return err
		}
		defer os.RemoveAll(tmp)
		dir = tmp
	}
	addrs, err := freeAddrs(3)
	if err != nil {
		return err
	}
	peers := []stream.NodeID{1, 2, 3}
	nodes := map[stream.NodeID]*stream.Stream{}
	defer func() {
		for _, s := range nodes {
			s.Close()
		}
	}()
	for _, id := range peers {
		tr, err := stream.NewTCPTransport(stream.TCPConfig{Listen: addrs[id], Peers: addrs})
		if err != nil {
			return err
		}
		s, err := stream.Open(filepath.Join(dir, fmt.Sprint("node", id)), &stream.Options{Cluster: &stream.ClusterConfig{
			NodeID: id, Peers: peers, Transport: tr,
			SessionTimeout: 2 * time.Second, ReplicaLagTime: 2 * time.Second,
		}})
		if err != nil {
			tr.Close()
			return err
		}
		nodes[id] = s
	}
	fmt.Printf("three nodes on %s, %s, %s\n", addrs[1], addrs[2], addrs[3])
	if _, err := nodes[1].CreateTopic(topic, stream.TopicConfig{Partitions: 3, ReplicationFactor: 3, MinInSyncReplicas: 2}); err != nil && !errors.Is(err, stream.ErrTopicExists) {
		return err
	}
	ps, err := nodes[1].Cluster().PartitionState(topic, 0)
	if err != nil {
		return err
	}
	victim := ps.Leader
	fmt.Printf("created %s; partition 0 is led by node %d, which stops halfway\n", topic, victim)

	var (
		mu   sync.Mutex
		acks []acked
		wg   sync.WaitGroup
		errs = make(chan error, len(peers))
		half = make(chan struct{}, len(peers))
	)
	for _, id := range peers {
		if id == victim {
			continue // its producer would stop with it
		}
		p, err := nodes[id].NewProducer(stream.ProducerConfig{Partitioner: stream.RoundRobinPartitioner, DeliveryTimeout: time.Minute})
		if err != nil {
			return err
		}
		wg.Go(func() {
			defer p.Close()
			for i := range records {
				if i == records/2 {
					half <- struct{}{}
				}
				r := &stream.Record{Topic: topic, Value: fmt.Appendf(nil, "node %d order %d", id, i)}
				if err := p.Send(context.Background(), r); err != nil {
					errs <- fmt.Errorf("node %d: send %d: %w", id, i, err)
					return
				}
				mu.Lock()
				acks = append(acks, acked{r.Partition, r.Offset, string(r.Value)})
				mu.Unlock()
			}
		})
	}
	<-half
	start := time.Now()
	if err := nodes[victim].Close(); err != nil {
		return fmt.Errorf("close node %d: %w", victim, err)
	}
	delete(nodes, victim)
	fmt.Printf("closed node %d\n", victim)
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return err
	}
	var survivors []stream.NodeID
	for _, id := range peers {
		if id != victim {
			survivors = append(survivors, id)
		}
	}
	ps, _ = nodes[survivors[0]].Cluster().PartitionState(topic, 0)
	fmt.Printf("partition 0 moved to node %d (epoch %d, ISR %v); %d records acknowledged, the last %v after the close\n",
		ps.Leader, ps.LeaderEpoch, ps.ISR, len(acks), time.Since(start).Round(time.Millisecond))

	// What `stream cluster -peers ...` shows, asked over TCP.
	q, err := stream.NewTCPTransport(stream.TCPConfig{Peers: addrs})
	if err != nil {
		return err
	}
	defer q.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := stream.QueryNode(ctx, q, survivors[0])
	if err != nil {
		return err
	}
	fmt.Printf("node %d's view: controller %d\n", st.Node, st.Controller)
	for _, r := range st.Replicas {
		fmt.Printf("  %s-%d leader %d epoch %d ISR %v high watermark %d\n", r.Topic, r.Partition, r.Leader, r.LeaderEpoch, r.ISR, r.HighWatermark)
	}

	// Every acknowledged record, on both survivors, at its offset, once.
	seen := map[[2]int64]string{}
	for _, a := range acks {
		k := [2]int64{int64(a.partition), a.offset}
		if old, ok := seen[k]; ok {
			return fmt.Errorf("partition %d offset %d acknowledged twice: %q and %q", a.partition, a.offset, old, a.value)
		}
		seen[k] = a.value
	}
	for _, id := range survivors {
		t, err := nodes[id].Topic(topic)
		if err != nil {
			return err
		}
		for i := range int32(3) {
			p, _ := t.Partition(i)
			var want []acked
			for _, a := range acks {
				if a.partition == i {
					want = append(want, a)
				}
			}
			if len(want) == 0 {
				continue
			}
			last := slices.MaxFunc(want, func(a, b acked) int { return int(a.offset - b.offset) }).offset
			wctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			err := p.Wait(wctx, last)
			cancel()
			if err != nil {
				return fmt.Errorf("node %d: partition %d: offset %d never readable: %w", id, i, last, err)
			}
			values := map[int64]string{}
			for off := int64(0); off <= last; {
				recs, err := p.Read(off, 1<<20)
				if err != nil {
					return fmt.Errorf("node %d: partition %d: read at %d: %w", id, i, off, err)
				}
				if len(recs) == 0 {
					return fmt.Errorf("node %d: partition %d: nothing to read at %d, below offset %d", id, i, off, last)
				}
				for _, r := range recs {
					values[r.Offset] = string(r.Value)
				}
				off = recs[len(recs)-1].Offset + 1
			}
			for _, a := range want {
				if values[a.offset] != a.value {
					return fmt.Errorf("node %d: partition %d offset %d holds %q, acknowledged %q", id, i, a.offset, values[a.offset], a.value)
				}
			}
		}
	}
	fmt.Printf("check passed: all %d acknowledged records on nodes %v\n", len(acks), survivors)
	return nil
}

// freeAddrs returns n loopback addresses for nodes 1..n, free a moment
// ago (three processes would be given fixed ones).
func freeAddrs(n int) (map[stream.NodeID]string, error) {
	addrs := map[stream.NodeID]string{}
	for i := 1; i <= n; i++ {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		defer ln.Close()
		addrs[stream.NodeID(i)] = ln.Addr().String()
	}
	return addrs, nil
}
