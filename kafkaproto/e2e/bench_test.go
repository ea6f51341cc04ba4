package e2e

import (
	"context"
	"testing"
	"time"

	"github.com/instream/stream"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

// The same workload — 100-byte values, keys spread over 4 partitions,
// the Stream's defaults (SyncAlways, acks all) — through the Go API and
// through the listener with franz-go, to compare the two:
//
//	cd kafkaproto/e2e && go test -run '^$' -bench . -benchtime 200000x
//
// Each reports records/s; b.N is the number of records.

const benchPartitions = 4

var benchValue = make([]byte, 100)

func benchKey(i int) []byte { return []byte{byte(i), byte(i >> 8)} }

func BenchmarkProduceGoAPI(b *testing.B) {
	br := startBroker(b, nil)
	br.createTopic(b, "bench", benchPartitions)
	p, err := br.s.NewProducer(stream.ProducerConfig{})
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	b.SetBytes(int64(len(benchValue)))
	b.ResetTimer()
	for i := range b.N {
		p.SendAsync(&stream.Record{Topic: "bench", Key: benchKey(i), Value: benchValue}, func(_ *stream.Record, err error) {
			if err != nil {
				b.Error(err)
			}
		})
	}
	if err := p.Flush(context.Background()); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
}

func BenchmarkProduceKgo(b *testing.B) {
	br := startBroker(b, nil)
	br.createTopic(b, "bench", benchPartitions)
	cl := br.client(b, kgo.DefaultProduceTopic("bench"), kgo.ProducerLinger(5*time.Millisecond))
	b.SetBytes(int64(len(benchValue)))
	b.ResetTimer()
	for i := range b.N {
		cl.Produce(context.Background(), &kgo.Record{Key: benchKey(i), Value: benchValue}, func(_ *kgo.Record, err error) {
			if err != nil {
				b.Error(err)
			}
		})
	}
	if err := cl.Flush(context.Background()); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
}

// fill writes n records to a fresh topic for the consume benchmarks.
func fill(b *testing.B, br *broker, n int) {
	br.createTopic(b, "bench", benchPartitions)
	tp, _ := br.s.Topic("bench")
	var batch stream.Batch
	for part := range int32(benchPartitions) {
		p, _ := tp.Partition(part)
		for i := 0; i < n/benchPartitions; {
			batch.Reset()
			for ; batch.Len() < 500 && i < n/benchPartitions; i++ {
				batch.Add(benchKey(i), benchValue)
			}
			if _, err := p.AppendBatch(&batch); err != nil {
				b.Fatal(err)
			}
		}
	}
}

func BenchmarkConsumeGoAPI(b *testing.B) {
	br := startBroker(b, nil)
	n := b.N / benchPartitions * benchPartitions
	fill(b, br, n)
	c, err := br.s.NewConsumer(stream.ConsumerConfig{})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	var tps []stream.TopicPartition
	for i := range int32(benchPartitions) {
		tps = append(tps, stream.TopicPartition{Topic: "bench", Partition: i})
	}
	if err := c.Assign(tps...); err != nil {
		b.Fatal(err)
	}
	for _, tp := range tps {
		c.Seek(tp, 0)
	}
	b.SetBytes(int64(len(benchValue)))
	b.ResetTimer()
	for got := 0; got < n; {
		recs, err := c.Poll(context.Background())
		if err != nil {
			b.Fatal(err)
		}
		got += len(recs)
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "records/s")
}

func BenchmarkConsumeKgo(b *testing.B) {
	br := startBroker(b, nil)
	n := b.N / benchPartitions * benchPartitions
	fill(b, br, n)
	cl := br.client(b, kgo.ConsumeTopics("bench"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	b.SetBytes(int64(len(benchValue)))
	b.ResetTimer()
	for got := 0; got < n; {
		fs := cl.PollFetches(context.Background())
		if err := fs.Err(); err != nil {
			b.Fatal(err)
		}
		got += fs.NumRecords()
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "records/s")
}

// kfakeClient starts franz-go's in-memory fake cluster (kfake, one
// broker) with the bench topic and returns a client of it: the same
// client against a broker that keeps everything in memory.
func kfakeClient(b *testing.B, opts ...kgo.Opt) (*kgo.Client, []string) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(benchPartitions, "bench"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(c.Close)
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(c.ListenAddrs()...)}, opts...)...)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(cl.Close)
	return cl, c.ListenAddrs()
}

func BenchmarkProduceKfake(b *testing.B) {
	cl, _ := kfakeClient(b, kgo.DefaultProduceTopic("bench"), kgo.ProducerLinger(5*time.Millisecond))
	b.SetBytes(int64(len(benchValue)))
	b.ResetTimer()
	for i := range b.N {
		cl.Produce(context.Background(), &kgo.Record{Key: benchKey(i), Value: benchValue}, func(_ *kgo.Record, err error) {
			if err != nil {
				b.Error(err)
			}
		})
	}
	if err := cl.Flush(context.Background()); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
}

func BenchmarkConsumeKfake(b *testing.B) {
	n := b.N / benchPartitions * benchPartitions
	prod, addrs := kfakeClient(b, kgo.DefaultProduceTopic("bench"), kgo.ProducerLinger(5*time.Millisecond), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	for i := range n {
		prod.Produce(context.Background(), &kgo.Record{Key: benchKey(i), Value: benchValue, Partition: int32(i % benchPartitions)}, nil)
	}
	if err := prod.Flush(context.Background()); err != nil {
		b.Fatal(err)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(addrs...), kgo.ConsumeTopics("bench"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	b.SetBytes(int64(len(benchValue)))
	b.ResetTimer()
	for got := 0; got < n; {
		fs := cl.PollFetches(context.Background())
		if err := fs.Err(); err != nil {
			b.Fatal(err)
		}
		got += fs.NumRecords()
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "records/s")
}
