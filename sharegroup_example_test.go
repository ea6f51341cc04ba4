package stream_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"sort"
	"sync"
	"time"

	"github.com/instream/stream"
)

// A job queue on a share group: three workers over one partition (more
// workers than partitions), each job acquired by one worker at a time; a
// job that fails is released and retried, and after MaxDeliveries it is
// rejected and copied to the dead-letter topic.
func ExampleShareGroup() {
	dir, err := os.MkdirTemp("", "stream-example-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	s, err := stream.Open(dir, nil)
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()
	jobs, err := s.CreateTopic("jobs", stream.TopicConfig{})
	if err != nil {
		log.Fatal(err)
	}
	if _, err := s.CreateTopic("jobs.dead", stream.TopicConfig{}); err != nil {
		log.Fatal(err)
	}
	p, _ := jobs.Partition(0)
	for _, job := range []string{"resize a.jpg", "resize b.jpg", "poison", "resize c.jpg"} {
		if _, err := p.Append(&stream.Record{Value: []byte(job)}); err != nil {
			log.Fatal(err)
		}
	}

	g, err := s.ShareGroup("workers", stream.ShareGroupConfig{
		Topics:          []string{"jobs"},
		StartAt:         stream.StartEarliest,
		MaxDeliveries:   3,
		ReleaseBackoff:  time.Millisecond,
		DeadLetterTopic: "jobs.dead",
	})
	if err != nil {
		log.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var (
		mu       sync.Mutex
		done     []string
		finished = make(chan struct{})
	)
	var wg sync.WaitGroup
	for range 3 {
		m, err := g.Join(ctx, stream.ShareMemberConfig{MaxPollRecords: 1})
		if err != nil {
			log.Fatal(err)
		}
		wg.Go(func() {
			defer m.Close()
			m.Run(ctx, func(ctx context.Context, a *stream.Acquired) error {
				if string(a.Value) == "poison" {
					return errors.New("cannot decode")
				}
				mu.Lock()
				defer mu.Unlock()
				if done = append(done, string(a.Value)); len(done) == 3 {
					close(finished)
				}
				return nil
			})
		})
	}
	<-finished
	for { // wait for the poison job's third delivery to be rejected
		st, _ := g.Stats()
		if st[stream.TopicPartition{Topic: "jobs", Partition: 0}].Rejected == 1 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	cancel()
	wg.Wait()

	sort.Strings(done)
	fmt.Println("done:", done)
	st, _ := g.Stats()
	fmt.Printf("%+v\n", st[stream.TopicPartition{Topic: "jobs", Partition: 0}])
	dead, _ := s.Topic("jobs.dead")
	dp, _ := dead.Partition(0)
	recs, _ := dp.Read(0, 1<<20)
	for _, h := range recs[0].Headers {
		fmt.Printf("dead letter %s: %s\n", h.Key, h.Value)
	}
	// Output:
	// done: [resize a.jpg resize b.jpg resize c.jpg]
	// {StartOffset:4 EndOffset:4 HighWatermark:4 InFlight:0 Acquired:0 Backlog:0 Accepted:3 Rejected:1 DeadLettered:1}
	// dead letter stream.dlt.topic: jobs
	// dead letter stream.dlt.partition: 0
	// dead letter stream.dlt.offset: 2
	// dead letter stream.dlt.error: delivery limit 3 reached (released)
	// dead letter stream.dlt.group: workers
	// dead letter stream.dlt.deliveries: 3
}
