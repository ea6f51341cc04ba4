package benchmarks_test

// stream's Kafka listener (package kafkaproto): franz-go's kgo producing
// to and consuming from a Stream served over Kafka's protocol, next to
// the same work through the Go API and kgo against kfake, each as in
// BenchmarkWriteBatch and BenchmarkRead (one partition, 100-byte values,
// batches of 100, no fsync: kfake keeps everything in memory).

import (
	"context"
	"net"
	"testing"

	"github.com/instream/stream"
	"github.com/instream/stream/kafkaproto"
	"github.com/twmb/franz-go/pkg/kgo"
)

// BenchmarkKafkaListener compares, per record: producing batches of 100
// with the Go API (Partition.AppendBatch), with kgo's ProduceSync through
// the listener, and with kgo to kfake; and reading 100,000 records with
// a Go API Consumer, with a kgo consumer through the listener, and with
// a kgo consumer of kfake.
func BenchmarkKafkaListener(b *testing.B) {
	b.Run("produce/stream-goapi", func(b *testing.B) { streamWriteBatch(b, false) })
	b.Run("produce/kgo-listener", listenerProduceBatch)
	b.Run("produce/kgo-kfake", kgoProduceBatch)
	b.Run("consume/stream-poll", streamPoll)
	b.Run("consume/kgo-listener", listenerConsume)
	b.Run("consume/kgo-kfake", kgoConsume)
}

// serveKafka serves s on a loopback port until the returned stop.
func serveKafka(s *stream.Stream) (addr string, stop func(), err error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- kafkaproto.Serve(ctx, ln, s, kafkaproto.Config{}) }()
	return ln.Addr().String(), func() { cancel(); <-served }, nil
}

func listenerProduceBatch(b *testing.B) {
	s, _ := benchStream(b, false)
	addr, stop, err := serveKafka(s)
	check(b, err)
	b.Cleanup(stop)
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.DefaultProduceTopic("bench"))
	check(b, err)
	b.Cleanup(cl.Close)
	m := start(b)
	check(b, kgoProduceBatches(cl, b.N))
	done(b, m)
}

// listenerConsume reads the Go API's read fixture through the listener,
// with a new consumer per pass over the records, as kgoConsume does.
func listenerConsume(b *testing.B) {
	s := streamFixture(b)
	addr := fixture(b, "stream-kafka", func() (string, func(), error) { return serveKafka(s) })
	ctx := context.Background()
	m := start(b)
	for read := 0; read < b.N; {
		cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{
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
