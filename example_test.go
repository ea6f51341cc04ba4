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

// Open a directory, create a topic, append records to a partition and read
// them back. This is the README's quickstart.
func Example() {
	dir, err := os.MkdirTemp("", "stream-example-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	s, err := stream.Open(filepath.Join(dir, "data"), nil) // nil: defaults, SyncAlways
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()

	t, err := s.CreateTopic("events", stream.TopicConfig{Partitions: 4})
	if err != nil {
		log.Fatal(err)
	}
	p, err := t.Partition(0)
	if err != nil {
		log.Fatal(err)
	}

	// Append assigns consecutive offsets and returns the first; under
	// SyncAlways it returns once the records are fsynced.
	first, err := p.Append(
		&stream.Record{Key: []byte("user-1"), Value: []byte("signed up")},
		&stream.Record{Key: []byte("user-1"), Value: []byte("logged in")},
	)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("first offset:", first, "high watermark:", p.HighWatermark())

	recs, err := p.Read(first, 1<<20) // up to about 1 MiB, at least one record
	if err != nil {
		log.Fatal(err)
	}
	for _, r := range recs {
		fmt.Printf("%d %s %s\n", r.Offset, r.Key, r.Value)
	}
	// Output:
	// first offset: 0 high watermark: 2
	// 0 user-1 signed up
	// 1 user-1 logged in
}

// The fast path: a reusable Batch encodes records straight into Kafka's
// RecordBatch format, and AppendBatch writes it as one batch. A warm Batch
// allocates nothing per record.
func ExampleBatch() {
	dir, err := os.MkdirTemp("", "stream-example-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	// SyncNever leaves flushing to the OS; Sync or Close make it durable.
	s, err := stream.Open(dir, &stream.Options{Sync: stream.SyncNever})
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()
	t, err := s.CreateTopic("metrics", stream.TopicConfig{})
	if err != nil {
		log.Fatal(err)
	}
	p, _ := t.Partition(0)

	var b stream.Batch
	for round := range 3 {
		b.Reset()
		for i := range 100 {
			b.Add(nil, fmt.Appendf(nil, "sample %d.%d", round, i))
		}
		base, err := p.AppendBatch(&b)
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("batch %d: offsets %d to %d\n", round, base, base+int64(b.Len())-1)
	}
	if err := s.Sync(); err != nil { // a durable point
		log.Fatal(err)
	}

	recs, err := p.Read(250, 1) // maxBytes 1: still at least one record
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%d: %s\n", recs[0].Offset, recs[0].Value)
	// Output:
	// batch 0: offsets 0 to 99
	// batch 1: offsets 100 to 199
	// batch 2: offsets 200 to 299
	// 250: sample 2.50
}

// Scan is a Go iterator over a partition that follows its tail: at the
// high watermark it waits for more records, until the context ends.
func ExamplePartition_Scan() {
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
	t, err := s.CreateTopic("jobs", stream.TopicConfig{})
	if err != nil {
		log.Fatal(err)
	}
	p, _ := t.Partition(0)
	for _, job := range []string{"resize", "encode"} {
		if _, err := p.Append(&stream.Record{Value: []byte(job)}); err != nil {
			log.Fatal(err)
		}
	}

	// A record appended while the scan waits at the tail.
	go func() {
		time.Sleep(10 * time.Millisecond)
		p.Append(&stream.Record{Value: []byte("upload")})
	}()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for r, err := range p.Scan(ctx, 0) {
		if err != nil { // ctx.Err() when the context ends, or a read error
			log.Fatal(err)
		}
		fmt.Println(r.Offset, string(r.Value))
		if r.Offset == 2 {
			cancel() // or break; the next iteration would yield ctx.Err()
			break
		}
	}
	// Output:
	// 0 resize
	// 1 encode
	// 2 upload
}

// Replay from a point in time: OffsetForTime finds the first record at or
// after a time through the time index, and reading goes on from there.
func ExamplePartition_OffsetForTime() {
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
	// Retention < 0 keeps records forever: these timestamps are in the past.
	t, err := s.CreateTopic("orders", stream.TopicConfig{Retention: -1})
	if err != nil {
		log.Fatal(err)
	}
	p, _ := t.Partition(0)

	morning := time.Date(2025, 3, 1, 9, 0, 0, 0, time.UTC)
	for i, event := range []string{"created", "paid", "packed", "shipped"} {
		r := &stream.Record{Key: []byte("order-7"), Value: []byte(event), Timestamp: morning.Add(time.Duration(i) * time.Hour)}
		if _, err := p.Append(r); err != nil {
			log.Fatal(err)
		}
	}

	from, err := p.OffsetForTime(morning.Add(90 * time.Minute)) // 10:30
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("replay from offset", from)
	recs, err := p.Read(from, 1<<20)
	if err != nil {
		log.Fatal(err)
	}
	for _, r := range recs {
		fmt.Println(r.Offset, r.Timestamp.UTC().Format(time.Kitchen), string(r.Value))
	}
	// Output:
	// replay from offset 2
	// 2 11:00AM packed
	// 3 12:00PM shipped
}

// Send records through a Producer: batched per partition, routed by key,
// each acknowledged once durable.
func ExampleProducer() {
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
	if _, err := s.CreateTopic("orders", stream.TopicConfig{Partitions: 3}); err != nil {
		log.Fatal(err)
	}

	p, err := s.NewProducer(stream.ProducerConfig{Compression: stream.CompressZstd})
	if err != nil {
		log.Fatal(err)
	}
	defer p.Close()

	// Send waits for the acknowledgement and fills in where the record went.
	r := &stream.Record{Topic: "orders", Key: []byte("customer-42"), Value: []byte("order 1")}
	if err := p.Send(context.Background(), r); err != nil {
		log.Fatal(err)
	}
	fmt.Println("partition", r.Partition, "offset", r.Offset)

	// SendAsync batches; the callback runs once per record, in order
	// within a partition. Flush waits for all of them.
	for i := 2; i <= 3; i++ {
		p.SendAsync(&stream.Record{Topic: "orders", Key: []byte("customer-42"), Value: fmt.Appendf(nil, "order %d", i)},
			func(r *stream.Record, err error) {
				if err != nil {
					log.Print(err)
					return
				}
				fmt.Printf("%s at partition %d offset %d\n", r.Value, r.Partition, r.Offset)
			})
	}
	if err := p.Flush(context.Background()); err != nil {
		log.Fatal(err)
	}
	// Output:
	// partition 0 offset 0
	// order 2 at partition 0 offset 1
	// order 3 at partition 0 offset 2
}

// A consumer group shares a topic's partitions among its members and
// keeps their committed offsets: a durable in-app job queue. Run calls
// the handler for each record and commits what it accepted; a restart
// resumes after the last commit.
func ExampleConsumerGroup() {
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
	if _, err := s.CreateTopic("jobs", stream.TopicConfig{Partitions: 2}); err != nil {
		log.Fatal(err)
	}

	// Enqueue three jobs, keyed so each customer's jobs stay in order.
	p, err := s.NewProducer(stream.ProducerConfig{})
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	for _, job := range []string{"resize photo 1", "send invoice 7", "resize photo 2"} {
		if err := p.Send(ctx, &stream.Record{Topic: "jobs", Key: []byte("customer-42"), Value: []byte(job)}); err != nil {
			log.Fatal(err)
		}
	}
	p.Close()

	// A worker joins the group and processes what is there.
	g, err := s.ConsumerGroup("workers", stream.GroupConfig{Topics: []string{"jobs"}, StartAt: stream.StartEarliest})
	if err != nil {
		log.Fatal(err)
	}
	worker, err := g.Join(ctx, stream.ConsumerConfig{FetchMaxWait: 100 * time.Millisecond})
	if err != nil {
		log.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := 0
	err = worker.Run(runCtx, func(_ context.Context, r *stream.Record) error {
		fmt.Printf("done: %s\n", r.Value)
		if done++; done == 3 {
			stop() // a real worker runs until shutdown
		}
		return nil
	})
	if err != nil && !errors.Is(err, context.Canceled) {
		log.Fatal(err)
	}
	worker.Close()

	lag, err := g.Lag(ctx)
	if err != nil {
		log.Fatal(err)
	}
	total := int64(0)
	for _, n := range lag {
		total += n
	}
	fmt.Println("lag after the worker:", total)
	// Output:
	// done: resize photo 1
	// done: send invoice 7
	// done: resize photo 2
	// lag after the worker: 0
}

// Send Go values instead of bytes: a TypedProducer encodes keys and values
// with codecs (here the key as a string and the value as JSON), and
// Decode reads them back from any record, as Kafka's serializers and
// deserializers do.
func ExampleTypedProducer() {
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
	t, err := s.CreateTopic("orders", stream.TopicConfig{})
	if err != nil {
		log.Fatal(err)
	}

	type Order struct {
		ID    int      `json:"id"`
		Items []string `json:"items"`
		Cents int64    `json:"cents"`
	}
	p, err := s.NewProducer(stream.ProducerConfig{})
	if err != nil {
		log.Fatal(err)
	}
	defer p.Close()
	orders := stream.NewTypedProducer(p, stream.String, stream.JSON[Order]())

	ctx := context.Background()
	r, err := orders.Send(ctx, "orders", "customer-42", Order{ID: 1, Items: []string{"tea", "cups"}, Cents: 1250})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("sent to partition %d offset %d: %s\n", r.Partition, r.Offset, r.Value)
	if _, err := orders.Send(ctx, "orders", "customer-7", Order{ID: 2, Items: []string{"kettle"}, Cents: 3900}); err != nil {
		log.Fatal(err)
	}

	part, err := t.Partition(0)
	if err != nil {
		log.Fatal(err)
	}
	recs, err := part.Read(0, 1<<20)
	if err != nil {
		log.Fatal(err)
	}
	for _, r := range recs {
		customer, order, err := stream.Decode(r, stream.String, stream.JSON[Order]())
		if err != nil { // a value that is not an Order names topic, partition and offset
			log.Fatal(err)
		}
		fmt.Printf("%s: order %d, %d items, %.2f\n", customer, order.ID, len(order.Items), float64(order.Cents)/100)
	}
	// Output:
	// sent to partition 0 offset 0: {"id":1,"items":["tea","cups"],"cents":1250}
	// customer-42: order 1, 2 items, 12.50
	// customer-7: order 2, 1 items, 39.00
}

// Fan-out: two consumer groups read the same topic independently, each
// with its own committed offsets, so each has its own lag. Here "emails"
// has handled every order and "analytics" only its first batch.
func ExampleConsumerGroup_Lag() {
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
	if _, err := s.CreateTopic("orders", stream.TopicConfig{Partitions: 2}); err != nil {
		log.Fatal(err)
	}

	// Six orders; ManualPartitioner puts three in each partition.
	p, err := s.NewProducer(stream.ProducerConfig{Partitioner: stream.ManualPartitioner})
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	for i := range 6 {
		r := &stream.Record{Topic: "orders", Partition: int32(i % 2), Value: fmt.Appendf(nil, "order %d", i)}
		if err := p.Send(ctx, r); err != nil {
			log.Fatal(err)
		}
	}
	if err := p.Close(); err != nil {
		log.Fatal(err)
	}

	// consume has a group's only member poll up to n records, commit
	// and leave.
	consume := func(group string, maxRecords, n int) *stream.ConsumerGroup {
		g, err := s.ConsumerGroup(group, stream.GroupConfig{Topics: []string{"orders"}, StartAt: stream.StartEarliest})
		if err != nil {
			log.Fatal(err)
		}
		c, err := g.Join(ctx, stream.ConsumerConfig{MaxPollRecords: maxRecords, FetchMaxWait: 100 * time.Millisecond})
		if err != nil {
			log.Fatal(err)
		}
		for seen := 0; seen < n; {
			recs, err := c.Poll(ctx)
			if err != nil {
				log.Fatal(err)
			}
			seen += len(recs)
		}
		if err := c.Commit(ctx); err != nil {
			log.Fatal(err)
		}
		if err := c.Close(); err != nil {
			log.Fatal(err)
		}
		return g
	}
	emails := consume("emails", 500, 6)
	analytics := consume("analytics", 2, 2) // one poll: a record from each partition

	for _, g := range []*stream.ConsumerGroup{emails, analytics} {
		lag, err := g.Lag(ctx)
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("%-9s lag: orders-0 %d, orders-1 %d\n", g.ID(),
			lag[stream.TopicPartition{Topic: "orders", Partition: 0}],
			lag[stream.TopicPartition{Topic: "orders", Partition: 1}])
	}
	// Output:
	// emails    lag: orders-0 0, orders-1 0
	// analytics lag: orders-0 2, orders-1 2
}

// Replay a range of offsets with a group-less consumer: Assign the
// partition, Seek to the first offset, and Poll until past the last. No
// group, no commits: nothing another reader sees changes.
func ExampleConsumer_Seek() {
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
	t, err := s.CreateTopic("audit", stream.TopicConfig{})
	if err != nil {
		log.Fatal(err)
	}
	part, err := t.Partition(0)
	if err != nil {
		log.Fatal(err)
	}
	for _, e := range []string{"login", "view", "edit", "delete", "logout", "login"} {
		if _, err := part.Append(&stream.Record{Key: []byte("user-1"), Value: []byte(e)}); err != nil {
			log.Fatal(err)
		}
	}

	c, err := s.NewConsumer(stream.ConsumerConfig{MaxPollRecords: 2})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	tp := stream.TopicPartition{Topic: "audit", Partition: 0}
	if err := c.Assign(tp); err != nil {
		log.Fatal(err)
	}
	// Replay offsets 2 to 4.
	if err := c.Seek(tp, 2); err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	for done := false; !done; {
		recs, err := c.Poll(ctx)
		if err != nil {
			log.Fatal(err)
		}
		for _, r := range recs {
			if r.Offset > 4 {
				done = true
				break
			}
			fmt.Println(r.Offset, string(r.Value))
		}
	}
	// Output:
	// 2 edit
	// 3 delete
	// 4 logout
}

// The nightly loader: a group's only member reads everything that came
// in since its last run with ReadToEnd, which stops at the end instead
// of waiting for more, then commits how far it got. The next night starts
// from there.
func ExampleConsumer_ReadToEnd() {
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
	if _, err := s.CreateTopic("clicks", stream.TopicConfig{Partitions: 2}); err != nil {
		log.Fatal(err)
	}
	p, err := s.NewProducer(stream.ProducerConfig{Partitioner: stream.ManualPartitioner})
	if err != nil {
		log.Fatal(err)
	}
	defer p.Close()
	ctx := context.Background()
	click := func(partition int32, page string) {
		if err := p.Send(ctx, &stream.Record{Topic: "clicks", Partition: partition, Value: []byte(page)}); err != nil {
			log.Fatal(err)
		}
	}

	g, err := s.ConsumerGroup("nightly-load", stream.GroupConfig{Topics: []string{"clicks"}, StartAt: stream.StartEarliest})
	if err != nil {
		log.Fatal(err)
	}
	load := func(night int) {
		c, err := g.Join(ctx, stream.ConsumerConfig{})
		if err != nil {
			log.Fatal(err)
		}
		defer c.Close()
		var rows []string // a real loader writes these to a database in batches
		for r, err := range c.ReadToEnd(ctx) {
			if err != nil {
				log.Fatal(err)
			}
			rows = append(rows, fmt.Sprintf("%d/%d:%s", r.Partition, r.Offset, r.Value))
		}
		if err := c.Commit(ctx); err != nil { // only once the load succeeded
			log.Fatal(err)
		}
		fmt.Printf("night %d: loaded %d rows %v\n", night, len(rows), rows)
	}

	click(0, "/home")
	click(1, "/pricing")
	click(0, "/signup")
	load(1)
	click(1, "/docs")
	load(2)
	load(3)
	// Output:
	// night 1: loaded 3 rows [0/0:/home 0/1:/signup 1/0:/pricing]
	// night 2: loaded 1 rows [1/1:/docs]
	// night 3: loaded 0 rows []
}
