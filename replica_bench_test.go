package stream

import (
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// BenchmarkReplicatedAcksAll measures AcksAll appends to a partition
// replicated 3 ways over a MemNetwork against the same appends to one
// node's partition, in the same run, and reports the ratio of their
// throughputs (replicated/single; 1 means replication costs nothing).
// Batched produce: 16 appenders at once, each AppendBatch 16 records of
// 100 bytes, SyncAlways, every log on the operating system's file system
// (the three replicas share its disk). MemFS is no stand-in here: its
// emulated mappings cost more than the data plane.
func BenchmarkReplicatedAcksAll(b *testing.B) {
	for _, where := range []string{"disk"} {
		b.Run(where, func(b *testing.B) {
			root := b.TempDir()
			fsFor := func(NodeID) fileSystem { return osFS{} }
			dirFor := func(id NodeID) string { return filepath.Join(root, fmt.Sprint("node", id), "t-0") }
			single, err := openPartition(fsFor(0), dirFor(0), rtTopic, 0, replTestConfigBench, slog.New(slog.DiscardHandler))
			if err != nil {
				b.Fatal(err)
			}
			defer single.close()
			c := newReplClusterOn(b, 1, 3, 2, replicaConfig{}, replTestConfigBench, fsFor, dirFor)
			c.meta.set(all3())
			leader := c.nodes[1].p

			b.SetBytes(16 * 100)
			b.ReportAllocs()
			b.ResetTimer()
			tSingle := appendConcurrently(b, single, b.N)
			tRepl := appendConcurrently(b, leader, b.N)
			b.StopTimer()
			b.ReportMetric(float64(tSingle.Nanoseconds())/float64(b.N), "ns/batch-single")
			b.ReportMetric(float64(tRepl.Nanoseconds())/float64(b.N), "ns/batch-3replicas")
			b.ReportMetric(tSingle.Seconds()/tRepl.Seconds(), "ratio")
		})
	}
}

var replTestConfigBench = func() partitionConfig {
	c := replTestConfig
	c.segmentBytes = 64 << 20
	return c
}()

// appendConcurrently makes n AcksAll batch appends to p from 16
// goroutines and returns how long they took.
func appendConcurrently(b *testing.B, p *Partition, n int) time.Duration {
	const workers = 16
	value := make([]byte, 100)
	start := time.Now()
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			var batch Batch
			for i := w; i < n; i += workers {
				batch.Reset()
				for range 16 {
					batch.Add(nil, value)
				}
				if _, err := p.AppendBatch(&batch); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	return time.Since(start)
}
