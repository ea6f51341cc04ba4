package stream

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"
)

// BenchmarkClusterGroupCommit measures group offset commits, each waited
// for, by one member: on a single-node Stream (a meta.db transaction)
// against a three-node cluster over MemNetwork (a metadata raft commit:
// the member's node proposes, a quorum persists it in bbolt, the member's
// node applies it), in the same run, interleaved in rounds of 16 so that
// both see the same machine. Reports commits/s of each and their ratio
// (cluster/single).
//
//	go test -run '^$' -bench ClusterGroupCommit -benchtime 400x
func BenchmarkClusterGroupCommit(b *testing.B) {
	root := b.TempDir()
	single, err := Open(filepath.Join(root, "single"), nil)
	if err != nil {
		b.Fatal(err)
	}
	defer single.Close()
	if _, err := single.CreateTopic("t", TopicConfig{}); err != nil {
		b.Fatal(err)
	}

	peers := []NodeID{1, 2, 3}
	net := NewMemNetwork(1)
	nodes := map[NodeID]*Stream{}
	for _, id := range peers {
		s, err := Open(filepath.Join(root, fmt.Sprint("node", id)), &Options{
			Cluster: &ClusterConfig{NodeID: id, Peers: peers, Transport: net.Transport(id)}})
		if err != nil {
			b.Fatal(err)
		}
		defer s.Close()
		nodes[id] = s
	}
	if _, err := nodes[1].CreateTopic("t", TopicConfig{ReplicationFactor: 3}); err != nil {
		b.Fatal(err)
	}
	member := func(s *Stream) *Consumer {
		g, err := s.ConsumerGroup("g", GroupConfig{Topics: []string{"t"}, CommitInterval: -1})
		if err != nil {
			b.Fatal(err)
		}
		c, err := g.Join(context.Background(), ConsumerConfig{FetchMaxWait: 10 * time.Millisecond})
		if err != nil {
			b.Fatal(err)
		}
		for deadline := time.Now().Add(30 * time.Second); len(c.Assignment()) == 0; {
			if time.Now().After(deadline) {
				b.Fatal("no assignment")
			}
			if _, err := c.Poll(context.Background()); err != nil {
				b.Fatal(err)
			}
		}
		return c
	}
	sc, cc := member(single), member(nodes[2])
	defer sc.Close()
	defer cc.Close()
	tp := TopicPartition{Topic: "t"}
	commit := func(c *Consumer, off int64) {
		if err := c.CommitOffsets(context.Background(), map[TopicPartition]int64{tp: off}); err != nil {
			b.Fatal(err)
		}
	}
	var singleTime, clusterTime time.Duration
	b.ResetTimer()
	for done := 0; done < b.N; {
		n := min(16, b.N-done)
		start := time.Now()
		for i := range n {
			commit(sc, int64(done+i))
		}
		singleTime += time.Since(start)
		start = time.Now()
		for i := range n {
			commit(cc, int64(done+i))
		}
		clusterTime += time.Since(start)
		done += n
	}
	b.StopTimer()
	single1, cluster1 := float64(b.N)/singleTime.Seconds(), float64(b.N)/clusterTime.Seconds()
	b.ReportMetric(single1, "single-commits/s")
	b.ReportMetric(cluster1, "cluster-commits/s")
	b.ReportMetric(cluster1/single1, "cluster/single")
}
