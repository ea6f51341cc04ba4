package stream_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"time"

	"github.com/instream/stream"
)

// A job queue whose worker retries a failing job, then parks it in a
// dead-letter topic and goes on, and shuts down with a bounded
// CloseContext.
func ExampleRetryPolicy() {
	dir, err := os.MkdirTemp("", "stream-example-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	s, err := stream.Open(filepath.Join(dir, "data"), nil)
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()
	for _, name := range []string{"jobs", "jobs.dead"} {
		if _, err := s.CreateTopic(name, stream.TopicConfig{Partitions: 1}); err != nil {
			log.Fatal(err)
		}
	}
	jobs, _ := s.Topic("jobs")
	p, _ := jobs.Partition(0)
	for _, job := range []string{"resize photo 1", "corrupt photo", "resize photo 2"} {
		if _, err := p.Append(&stream.Record{Value: []byte(job)}); err != nil {
			log.Fatal(err)
		}
	}

	g, err := s.ConsumerGroup("workers", stream.GroupConfig{Topics: []string{"jobs"}, StartAt: stream.StartEarliest})
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	worker, err := g.Join(ctx, stream.ConsumerConfig{
		FetchMaxWait: 100 * time.Millisecond,
		Retry:        stream.RetryPolicy{Attempts: 3, Backoff: time.Millisecond, DeadLetterTopic: "jobs.dead"},
	})
	if err != nil {
		log.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	err = worker.Run(runCtx, func(_ context.Context, r *stream.Record) error {
		if string(r.Value) == "corrupt photo" {
			fmt.Println("failed:", string(r.Value))
			return errors.New("cannot decode")
		}
		fmt.Println("done:", string(r.Value))
		if r.Offset == 2 {
			stop() // a real worker runs until shutdown (SIGTERM)
		}
		return nil
	})
	if err != nil && !errors.Is(err, context.Canceled) {
		log.Fatal(err)
	}
	closeCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := worker.CloseContext(closeCtx); err != nil {
		log.Fatal(err)
	}

	dead, _ := s.Topic("jobs.dead")
	dp, _ := dead.Partition(0)
	recs, err := dp.Read(0, 1<<20)
	if err != nil {
		log.Fatal(err)
	}
	for _, r := range recs {
		for _, h := range r.Headers {
			if h.Key == "stream.dlt.error" {
				fmt.Printf("dead letter: %s (%s)\n", r.Value, h.Value)
			}
		}
	}
	committed, _ := g.Committed(ctx)
	fmt.Println("committed:", committed[stream.TopicPartition{Topic: "jobs", Partition: 0}])
	// Output:
	// done: resize photo 1
	// failed: corrupt photo
	// failed: corrupt photo
	// failed: corrupt photo
	// done: resize photo 2
	// dead letter: corrupt photo (cannot decode)
	// committed: 3
}
