package stream_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/instream/stream"
)

// Three nodes of a cluster in one process, over an in-memory network (use
// NewTCPTransport for nodes in separate processes or machines). A topic
// created on any node is replicated to all three; appends go to the
// partition's leader and return once every in-sync replica has them; a
// producer on any node sends to the leader for you.
func Example_replication() {
	dir, _ := os.MkdirTemp("", "cluster")
	defer os.RemoveAll(dir)
	net := stream.NewMemNetwork(1)
	peers := []stream.NodeID{1, 2, 3}
	nodes := map[stream.NodeID]*stream.Stream{}
	for _, id := range peers {
		s, err := stream.Open(filepath.Join(dir, fmt.Sprint("node", id)), &stream.Options{
			Cluster: &stream.ClusterConfig{NodeID: id, Peers: peers, Transport: net.Transport(id),
				SessionTimeout: 300 * time.Millisecond},
		})
		if err != nil {
			fmt.Println(err)
			return
		}
		defer s.Close()
		nodes[id] = s
	}

	// CreateTopic works on any node and returns once the partition has a
	// leader (it waits for the nodes to join, up to RequestTimeout).
	if _, err := nodes[3].CreateTopic("orders", stream.TopicConfig{ReplicationFactor: 3, MinInSyncReplicas: 2}); err != nil {
		fmt.Println(err)
		return
	}
	ps, _ := nodes[3].Cluster().PartitionState("orders", 0)
	fmt.Println("replicas:", ps.Replicas)

	// A producer on node 3 sends to the leader, wherever it is.
	pr, _ := nodes[3].NewProducer(stream.ProducerConfig{})
	for _, v := range []string{"apple", "pear", "plum"} {
		if err := pr.Send(context.Background(), &stream.Record{Topic: "orders", Value: []byte(v)}); err != nil {
			fmt.Println(err)
			return
		}
	}
	pr.Close()

	// Every replica holds the acknowledged records; reads on a follower
	// see what is below its high watermark.
	for _, id := range peers {
		t, _ := nodes[id].Topic("orders")
		p, _ := t.Partition(0)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		p.Wait(ctx, 2) // until offset 2 is readable here
		cancel()
		recs, _ := p.Read(0, 1<<20)
		var vals []string
		for _, r := range recs {
			vals = append(vals, string(r.Value))
		}
		fmt.Println("node", id, vals)
	}
	// Output:
	// replicas: [1 2 3]
	// node 1 [apple pear plum]
	// node 2 [apple pear plum]
	// node 3 [apple pear plum]
}
