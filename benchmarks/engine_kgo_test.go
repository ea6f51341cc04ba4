package benchmarks_test

// franz-go's Kafka client (kgo) against kfake, its in-process fake Kafka
// cluster: one broker, topic "bench" with one partition, records kept in
// memory (nothing is written to disk, so there is no sync mode). The
// client speaks the Kafka protocol to the broker over a loopback TCP
// connection. Client options are the defaults: acks=all, idempotent,
// linger 10ms, no compression.

import (
	"context"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

func startKfake() (*kfake.Cluster, error) {
	return kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "bench"))
}

func kgoClient(c *kfake.Cluster, opts ...kgo.Opt) (*kgo.Client, error) {
	return kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(c.ListenAddrs()...), kgo.DefaultProduceTopic("bench")}, opts...)...)
}

func benchKgo(b *testing.B) *kgo.Client {
	c, err := startKfake()
	check(b, err)
	b.Cleanup(c.Close)
	cl, err := kgoClient(c)
	check(b, err)
	b.Cleanup(cl.Close)
	return cl
}

// kgoProduceBatches produces n records with ProduceSync, batchSize at a
// time, reusing the records once they are acknowledged.
func kgoProduceBatches(cl *kgo.Client, n int) error {
	ctx := context.Background()
	recs := make([]*kgo.Record, batchSize)
	for i := range recs {
		recs[i] = new(kgo.Record)
	}
	for done := 0; done < n; {
		k := min(batchSize, n-done)
		for _, r := range recs[:k] {
			*r = kgo.Record{Value: value}
		}
		if err := cl.ProduceSync(ctx, recs[:k]...).FirstErr(); err != nil {
			return err
		}
		done += k
	}
	return nil
}

func kgoProduceBatch(b *testing.B) {
	cl := benchKgo(b)
	m := start(b)
	check(b, kgoProduceBatches(cl, b.N))
	done(b, m)
}

func kgoProduceSingle(b *testing.B) {
	cl := benchKgo(b)
	ctx := context.Background()
	r := new(kgo.Record)
	m := start(b)
	for range b.N {
		*r = kgo.Record{Value: value}
		if err := cl.ProduceSync(ctx, r).FirstErr(); err != nil {
			b.Fatal(err)
		}
	}
	done(b, m)
}

// kgoProduceAsync produces with Produce and one shared promise, then
// Flushes; records come from a ring reused once acknowledged.
func kgoProduceAsync(b *testing.B) {
	cl := benchKgo(b)
	ctx := context.Background()
	const ring = 1 << 18
	recs := make([]kgo.Record, min(b.N, ring))
	var delivered atomic.Int64
	var failed sync.Once
	promise := func(_ *kgo.Record, err error) {
		if err != nil {
			failed.Do(func() { b.Error(err) })
		}
		delivered.Add(1)
	}
	m := start(b)
	for i := range b.N {
		if i >= ring {
			for delivered.Load() <= int64(i-ring) {
				runtime.Gosched()
			}
		}
		r := &recs[i%ring]
		*r = kgo.Record{Value: value}
		cl.Produce(ctx, r, promise)
	}
	check(b, cl.Flush(ctx))
	done(b, m)
}

// kgoConsume reads the partition from the start with a new consumer per
// pass over the records.
func kgoConsume(b *testing.B) {
	c := fixture(b, "kfake", func() (*kfake.Cluster, func(), error) {
		c, err := startKfake()
		if err != nil {
			return nil, nil, err
		}
		cl, err := kgoClient(c)
		if err != nil {
			c.Close()
			return nil, nil, err
		}
		defer cl.Close()
		if err := kgoProduceBatches(cl, readRecords); err != nil {
			c.Close()
			return nil, nil, err
		}
		return c, c.Close, nil
	})
	ctx := context.Background()
	m := start(b)
	for read := 0; read < b.N; {
		cl, err := kgoClient(c, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{
			"bench": {0: kgo.NewOffset().AtStart()},
		}))
		check(b, err)
		for pass := 0; pass < readRecords && read < b.N; {
			fs := cl.PollFetches(ctx)
			if err := fs.Err(); err != nil {
				b.Fatal(err)
			}
			fs.EachRecord(func(r *kgo.Record) {
				if len(r.Value) != valueSize {
					b.Fatalf("offset %d: %d bytes", r.Offset, len(r.Value))
				}
				pass++
				read++
			})
		}
		cl.Close()
	}
	done(b, m)
}
