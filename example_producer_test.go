package stream_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"sync/atomic"
	"time"

	"github.com/instream/stream"
)

// A service's shutdown: on SIGTERM, the producer gets a bounded time to
// deliver what it holds. If the time runs out, CloseContext returns at
// once and every record not yet written fails with ErrClosed in its
// callback: the service knows exactly which records to send again after
// a restart.
func ExampleProducer_CloseContext() {
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
	if _, err := s.CreateTopic("events", stream.TopicConfig{}); err != nil {
		log.Fatal(err)
	}
	p, err := s.NewProducer(stream.ProducerConfig{})
	if err != nil {
		log.Fatal(err)
	}

	var delivered, undelivered atomic.Int64
	for i := range 100 {
		p.SendAsync(&stream.Record{Topic: "events", Value: fmt.Appendf(nil, "event %d", i)}, func(r *stream.Record, err error) {
			switch {
			case err == nil:
				delivered.Add(1)
			case errors.Is(err, stream.ErrClosed):
				undelivered.Add(1) // not written: send it again after the restart
			default:
				log.Print(err)
			}
		})
	}

	// In a service this runs once SIGTERM arrives (signal.NotifyContext),
	// with the time left before the orchestrator kills the process.
	closeCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p.CloseContext(closeCtx); err != nil {
		log.Print(err) // gave up: the undelivered records' callbacks say which
	}
	fmt.Println(delivered.Load(), "delivered,", undelivered.Load(), "undelivered")
	// Output: 100 delivered, 0 undelivered
}
