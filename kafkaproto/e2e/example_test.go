package e2e

import (
	"context"
	"fmt"
	"net"
	"os"

	"github.com/instream/stream"
	"github.com/instream/stream/kafkaproto"
	"github.com/twmb/franz-go/pkg/kgo"
)

// A Go service embedding a Stream serves it to Kafka clients; here
// franz-go produces and consumes through the listener.
func Example() {
	dir, _ := os.MkdirTemp("", "example")
	defer os.RemoveAll(dir)
	s, err := stream.Open(dir, nil)
	if err != nil {
		panic(err)
	}
	defer s.Close()
	if _, err := s.CreateTopic("events", stream.TopicConfig{Partitions: 3}); err != nil {
		panic(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0") // 127.0.0.1:9092 for a fixed port
	if err != nil {
		panic(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- kafkaproto.Serve(ctx, ln, s, kafkaproto.Config{}) }()

	cl, err := kgo.NewClient(
		kgo.SeedBrokers(ln.Addr().String()),
		kgo.ConsumeTopics("events"),
		kgo.ConsumerGroup("billing"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
	)
	if err != nil {
		panic(err)
	}
	rec := &kgo.Record{Topic: "events", Key: []byte("user-1"), Value: []byte("paid"),
		Headers: []kgo.RecordHeader{{Key: "source", Value: []byte("kgo")}}}
	if err := cl.ProduceSync(ctx, rec).FirstErr(); err != nil {
		panic(err)
	}
	for got := 0; got == 0; {
		fetches := cl.PollFetches(ctx)
		fetches.EachRecord(func(r *kgo.Record) {
			fmt.Printf("%s %s=%s %s=%s\n", r.Topic, r.Key, r.Value, r.Headers[0].Key, r.Headers[0].Value)
			got++
		})
	}
	if err := cl.CommitUncommittedOffsets(ctx); err != nil {
		panic(err)
	}
	cl.Close()

	// The group's commit is the Stream's: the Go API reads it.
	g, _ := s.ConsumerGroup("billing", stream.GroupConfig{})
	lag, _ := g.Lag(ctx)
	fmt.Println("lag:", lag[stream.TopicPartition{Topic: "events", Partition: rec.Partition}])

	stop()
	fmt.Println("Serve:", <-served)
	// Output:
	// events user-1=paid source=kgo
	// lag: 0
	// Serve: <nil>
}
