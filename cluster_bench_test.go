package stream

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"
)

// BenchmarkClusterAcksAll measures batched AcksAll appends through the
// whole stack: a topic of ReplicationFactor 3 on three clustered Streams
// against a single-node Stream, in the same run, every log on the
// operating system's file system under SyncAlways (the three nodes share
// its disk). Reports the ratio of throughputs (replicated/single; 1 means
// replication costs nothing). Same load as BenchmarkReplicatedAcksAll:
// 16 appenders, each AppendBatch 16 records of 100 bytes.
func BenchmarkClusterAcksAll(b *testing.B) {
	for _, over := range []string{"mem", "tcp"} {
		b.Run(over, func(b *testing.B) {
			root := b.TempDir()
			single, err := Open(filepath.Join(root, "single"), &Options{SegmentBytes: 64 * MiB})
			if err != nil {
				b.Fatal(err)
			}
			defer single.Close()
			st, err := single.CreateTopic("t", TopicConfig{})
			if err != nil {
				b.Fatal(err)
			}
			sp, _ := st.Partition(0)

			peers := []NodeID{1, 2, 3}
			transports := map[NodeID]Transport{}
			switch over {
			case "mem":
				net := NewMemNetwork(1)
				for _, id := range peers {
					transports[id] = net.Transport(id)
				}
			case "tcp":
				tcp := map[NodeID]*TCPTransport{}
				for _, id := range peers {
					t, err := NewTCPTransport(TCPConfig{Listen: "127.0.0.1:0"})
					if err != nil {
						b.Fatal(err)
					}
					tcp[id], transports[id] = t, t
				}
				for _, id := range peers {
					for _, p := range peers {
						if p != id {
							tcp[id].SetPeer(p, tcp[p].Addr().String())
						}
					}
				}
			}
			nodes := map[NodeID]*Stream{}
			for _, id := range peers {
				s, err := Open(filepath.Join(root, fmt.Sprint("node", id)), &Options{SegmentBytes: 64 * MiB,
					Cluster: &ClusterConfig{NodeID: id, Peers: peers, Transport: transports[id]}})
				if err != nil {
					b.Fatal(err)
				}
				defer s.Close()
				nodes[id] = s
			}
			if _, err := nodes[1].CreateTopic("t", TopicConfig{ReplicationFactor: 3, MinInSyncReplicas: 2}); err != nil {
				b.Fatal(err)
			}
			var leader *Partition
			for deadline := time.Now().Add(30 * time.Second); leader == nil; time.Sleep(10 * time.Millisecond) {
				if time.Now().After(deadline) {
					b.Fatal("no leader")
				}
				ps, _ := nodes[1].Cluster().PartitionState("t", 0)
				if ps.Leader == 0 || len(ps.ISR) < 3 {
					continue
				}
				t, _ := nodes[ps.Leader].Topic("t")
				p, _ := t.Partition(0)
				if g := p.gate.Load(); g != nil && g.leader == g.self && g.isr == 3 {
					leader = p
				}
			}

			b.SetBytes(16 * 100)
			b.ResetTimer()
			tSingle := appendConcurrently(b, sp, b.N)
			tRepl := appendConcurrently(b, leader, b.N)
			b.StopTimer()
			b.ReportMetric(float64(tSingle.Nanoseconds())/float64(b.N), "ns/batch-single")
			b.ReportMetric(float64(tRepl.Nanoseconds())/float64(b.N), "ns/batch-3nodes")
			b.ReportMetric(tSingle.Seconds()/tRepl.Seconds(), "ratio")
		})
	}
}
