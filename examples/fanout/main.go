// Command fanout shows several consumer groups reading one topic, each on
// its own and at its own pace, with the lag of each group per partition.
//
// A shop writes orders to the topic "orders" (3 partitions, keyed by
// customer) while two consumer groups read all of them:
//
//   - "emails", two members, sends a confirmation per order as it comes
//     (Consumer.Run: one record at a time, committed after each poll);
//   - "analytics", one member, loads orders into a warehouse in batches
//     of up to 50 that take 200ms each, committing by hand after each
//     batch (CommitInterval < 0: no auto-commit), so it falls behind
//     while orders pour in and catches up after.
//
// Each group has its own committed offsets, so neither slows the other
// down, and ConsumerGroup.Lag shows how far behind each one is, per
// partition. The program prints that table as it goes, stops once both
// groups have read everything, and checks that each saw every order.
//
//	go run ./examples/fanout
//	go run ./examples/fanout -orders 2000 -dir /tmp/shop
//
// With -dir the groups keep their offsets across runs: a second run
// writes new orders, and each group goes on from where it stopped.
//
// With -check it runs the same scenario on a temporary directory, the way
// CI runs it, and exits with status 0 only if each group saw every order
// written and ended with no lag.
//
//	go run ./examples/fanout -check
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/instream/stream"
)

// Order is the value of a record on "orders"; its key is the customer.
type Order struct {
	ID       int    `json:"id"`
	Customer string `json:"customer"`
	Cents    int64  `json:"cents"`
}

const (
	topic      = "orders"
	partitions = 3
)

func main() {
	dir := flag.String("dir", "", "stream directory (default: a temporary one, removed at exit)")
	orders := flag.Int("orders", 600, "orders to write")
	interval := flag.Duration("interval", 2*time.Millisecond, "pause between two orders")
	check := flag.Bool("check", false, "self-test: on a temporary directory, exit 1 unless each group saw every order")
	flag.Parse()
	if *check {
		*dir = ""
	}
	if err := run(*dir, *orders, *interval); err != nil {
		fmt.Fprintln(os.Stderr, "fanout:", err)
		os.Exit(1)
	}
}

// seen records the (partition, offset) of every record a group handled.
type seen struct {
	name string
	mu   sync.Mutex // guards n
	n    map[stream.TopicPartition]map[int64]int
}

func newSeen(name string) *seen {
	return &seen{name: name, n: map[stream.TopicPartition]map[int64]int{}}
}

func (s *seen) add(r *stream.Record) {
	tp := stream.TopicPartition{Topic: r.Topic, Partition: r.Partition}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.n[tp] == nil {
		s.n[tp] = map[int64]int{}
	}
	s.n[tp][r.Offset]++
}

// missing returns how many of the offsets in written the group never
// handled, and how many it handled more than once.
func (s *seen) missing(written map[stream.TopicPartition][]int64) (missing, twice int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for tp, offs := range written {
		for _, off := range offs {
			switch n := s.n[tp][off]; {
			case n == 0:
				missing++
			case n > 1:
				twice++
			}
		}
	}
	return missing, twice
}

func run(dir string, orders int, interval time.Duration) (err error) {
	if dir == "" {
		tmp, err := os.MkdirTemp("", "fanout-")
		if err != nil {
			return err
		}
		defer func() { err = errors.Join(err, os.RemoveAll(tmp)) }()
		dir = tmp
	}
	s, err := stream.Open(dir, nil)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, s.Close()) }()
	if _, err := s.CreateTopic(topic, stream.TopicConfig{Partitions: partitions}); err != nil && !errors.Is(err, stream.ErrTopicExists) {
		return err
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var (
		wg    sync.WaitGroup
		errMu sync.Mutex
		errs  error // of the goroutines below
	)
	fail := func(err error) {
		errMu.Lock()
		errs = errors.Join(errs, err)
		errMu.Unlock()
		cancel()
	}

	// The groups start before the orders: StartEarliest makes a new
	// group read the topic from its start, an existing one goes on from
	// its committed offsets.
	emails, err := s.ConsumerGroup("emails", stream.GroupConfig{Topics: []string{topic}, StartAt: stream.StartEarliest})
	if err != nil {
		return err
	}
	analytics, err := s.ConsumerGroup("analytics", stream.GroupConfig{Topics: []string{topic}, StartAt: stream.StartEarliest, CommitInterval: -1})
	if err != nil {
		return err
	}
	emailed, loaded := newSeen("emails"), newSeen("analytics")
	for i := range 2 {
		c, err := emails.Join(ctx, stream.ConsumerConfig{FetchMaxWait: 100 * time.Millisecond})
		if err != nil {
			fail(err)
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := sendEmails(ctx, c, emailed); err != nil {
				fail(fmt.Errorf("emails member %d: %w", i, err))
			}
		}()
	}
	if c, err := analytics.Join(ctx, stream.ConsumerConfig{MaxPollRecords: 50, FetchMaxWait: 100 * time.Millisecond}); err != nil {
		fail(err)
	} else {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := loadWarehouse(ctx, c, loaded); err != nil {
				fail(fmt.Errorf("analytics: %w", err))
			}
		}()
	}

	// The shop writes orders; written collects where they went.
	written, writeErr := writeOrders(ctx, s, orders, interval, func(produced int) error {
		_, err := report(ctx, produced, emails, analytics)
		return err
	})
	if writeErr != nil {
		fail(writeErr)
	}

	// Wait for both groups to catch up, reporting the lag as they do.
	deadline := time.Now().Add(30 * time.Second)
	for ctx.Err() == nil {
		select {
		case <-ctx.Done():
		case <-time.After(250 * time.Millisecond):
		}
		lag, err := report(ctx, orders, emails, analytics)
		if err != nil {
			if ctx.Err() == nil {
				fail(err)
			}
			break
		}
		if lag == 0 {
			break
		}
		if time.Now().After(deadline) {
			fail(fmt.Errorf("the groups still lag %d records behind after 30s", lag))
		}
	}
	cancel()
	wg.Wait()
	errMu.Lock()
	defer errMu.Unlock()
	if errs != nil {
		return errs
	}

	// The check: each group handled every order written.
	var failed []string
	for _, g := range []*seen{emailed, loaded} {
		missing, twice := g.missing(written)
		fmt.Printf("%-9s handled all but %d of the %d orders written; %d more than once\n", g.name, missing, orders, twice)
		if missing > 0 {
			failed = append(failed, fmt.Sprintf("group %s missed %d orders", g.name, missing))
		}
	}
	if len(failed) > 0 {
		return fmt.Errorf("check failed: %s", strings.Join(failed, "; "))
	}
	fmt.Println("check passed: each group read every order, at its own pace")
	return nil
}

// writeOrders sends orders, one every interval, calling progress every
// 100; it returns the partition and offset of each.
func writeOrders(ctx context.Context, s *stream.Stream, orders int, interval time.Duration, progress func(int) error) (written map[stream.TopicPartition][]int64, err error) {
	p, err := s.NewProducer(stream.ProducerConfig{})
	if err != nil {
		return nil, err
	}
	defer func() { err = errors.Join(err, p.Close()) }()
	out := stream.NewTypedProducer(p, stream.String, stream.JSON[Order]())
	var mu sync.Mutex // guards written and sendErr: callbacks of different partitions run concurrently
	written = map[stream.TopicPartition][]int64{}
	var sendErr error
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range orders {
		o := Order{ID: i, Customer: fmt.Sprintf("customer-%03d", rng.IntN(200)), Cents: 500 + rng.Int64N(20000)}
		out.SendAsync(topic, o.Customer, o, func(r *stream.Record, err error) {
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				sendErr = errors.Join(sendErr, fmt.Errorf("order %d: %w", o.ID, err))
				return
			}
			tp := stream.TopicPartition{Topic: r.Topic, Partition: r.Partition}
			written[tp] = append(written[tp], r.Offset)
		})
		if i%100 == 99 {
			if err := progress(i + 1); err != nil {
				return nil, err
			}
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(interval):
		}
	}
	if err := p.Flush(ctx); err != nil {
		return nil, err
	}
	mu.Lock()
	defer mu.Unlock()
	return written, sendErr
}

// sendEmails is a member of "emails": it confirms each order as it comes.
func sendEmails(ctx context.Context, c *stream.Consumer, seen *seen) error {
	err := c.Run(ctx, func(ctx context.Context, r *stream.Record) error {
		_, o, err := stream.Decode(r, stream.String, stream.JSON[Order]())
		if err != nil {
			return err
		}
		// A real member sends "thank you for order o.ID" to o.Customer here.
		if o.Customer == "" {
			return fmt.Errorf("order %d at %s-%d offset %d has no customer", o.ID, r.Topic, r.Partition, r.Offset)
		}
		seen.add(r)
		return nil
	})
	if errors.Is(err, context.Canceled) {
		err = nil
	}
	return errors.Join(err, c.Close())
}

// loadWarehouse is the member of "analytics": it loads orders in batches
// that take a while, and commits after each batch is loaded.
func loadWarehouse(ctx context.Context, c *stream.Consumer, seen *seen) error {
	err := func() error {
		revenue := map[string]int64{}
		for {
			recs, err := c.Poll(ctx)
			if err != nil {
				return err
			}
			if len(recs) == 0 {
				continue
			}
			for _, r := range recs {
				_, o, err := stream.Decode(r, stream.String, stream.JSON[Order]())
				if err != nil {
					return err
				}
				revenue[o.Customer] += o.Cents
				seen.add(r)
			}
			time.Sleep(200 * time.Millisecond) // a warehouse loads the batch
			// The batch is loaded: commit it even if ctx ended meanwhile.
			if err := c.Commit(context.WithoutCancel(ctx)); err != nil {
				return err
			}
		}
	}()
	if errors.Is(err, context.Canceled) {
		err = nil
	}
	return errors.Join(err, c.Close())
}

// report prints the lag of each group per partition, and returns their
// total.
func report(ctx context.Context, produced int, groups ...*stream.ConsumerGroup) (int64, error) {
	var b strings.Builder
	fmt.Fprintf(&b, "orders written %5d", produced)
	total := int64(0)
	for _, g := range groups {
		lag, err := g.Lag(ctx)
		if err != nil {
			return 0, err
		}
		fmt.Fprintf(&b, "   %s lag", g.ID())
		for i := range int32(partitions) {
			fmt.Fprintf(&b, " %4d", lag[stream.TopicPartition{Topic: topic, Partition: i}])
		}
		for _, n := range lag {
			total += n
		}
	}
	fmt.Println(b.String())
	return total, nil
}
