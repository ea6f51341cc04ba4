package stream_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/instream/stream"
)

// Run lends its handler records decoded into buffers it reuses; Poll's
// records are the caller's. A consumer that mixes the two, seeks back and
// reads everything again must never change a record Poll returned, and
// must hand Run's handler each record with its own bytes.
func TestPollRecordsSurviveRunReusingBuffers(t *testing.T) {
	s, _ := open(t, &stream.Options{Sync: stream.SyncNever})
	p := partition(t, s, "t", stream.TopicConfig{Partitions: 1})
	const n = 6000
	value := func(off int64) string { return fmt.Sprintf("value-%06d-%s", off, "padding-to-make-it-longer") }
	var b stream.Batch
	for off := int64(0); off < n; {
		b.Reset()
		for range 100 {
			b.Add([]byte(fmt.Sprint(off)), []byte(value(off)))
			off++
		}
		if _, err := p.AppendBatch(&b); err != nil {
			t.Fatal(err)
		}
	}
	c, err := s.NewConsumer(stream.ConsumerConfig{MaxPollRecords: 300})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	tp := stream.TopicPartition{Topic: "t", Partition: 0}
	if err := c.Assign(tp); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	var kept []*stream.Record
	var offsets []int64 // of kept, as Poll returned them
	poll := func(until int64) {
		t.Helper()
		for {
			pos, _ := c.Position(tp)
			if pos >= until {
				return
			}
			recs, err := c.Poll(ctx)
			if err != nil {
				t.Fatal(err)
			}
			kept = append(kept, recs...)
			for _, r := range recs {
				offsets = append(offsets, r.Offset)
			}
		}
	}
	run := func(until int64) {
		t.Helper()
		rctx, stop := context.WithCancel(ctx)
		defer stop()
		want, _ := c.Position(tp)
		err := c.Run(rctx, func(_ context.Context, r *stream.Record) error {
			if r.Offset != want || string(r.Value) != value(r.Offset) || string(r.Key) != fmt.Sprint(r.Offset) {
				return fmt.Errorf("Run handed offset %d (want %d): key %q, value %q", r.Offset, want, r.Key, r.Value)
			}
			if want++; want >= until {
				stop()
			}
			return nil
		})
		if !errors.Is(err, context.Canceled) {
			t.Fatal(err)
		}
	}
	check := func() {
		t.Helper()
		for i, r := range kept {
			if r.Offset != offsets[i] || string(r.Value) != value(r.Offset) || string(r.Key) != fmt.Sprint(r.Offset) {
				t.Fatalf("a record Poll returned changed: offset %d, key %q, value %q", r.Offset, r.Key, r.Value)
			}
		}
	}
	poll(700)
	run(3000)
	check()
	poll(4000)
	run(n)
	check()
	if err := c.Seek(tp, 100); err != nil {
		t.Fatal(err)
	}
	run(2500)
	poll(n)
	check()
	if len(kept) < 3000 {
		t.Fatalf("kept %d records", len(kept))
	}
}

// A Poll from inside Run's handler reads ahead while records of Run's
// batch are still lent: it must not reuse their buffers.
func TestPollInsideRunKeepsLentRecords(t *testing.T) {
	s, _ := open(t, &stream.Options{Sync: stream.SyncNever})
	p := partition(t, s, "t", stream.TopicConfig{Partitions: 1})
	const n = 20000
	value := func(off int64) string { return fmt.Sprintf("value-%06d-%s", off, "padding-to-make-it-longer") }
	var b stream.Batch
	for off := int64(0); off < n; {
		b.Reset()
		for range 100 {
			b.Add(nil, []byte(value(off)))
			off++
		}
		if _, err := p.AppendBatch(&b); err != nil {
			t.Fatal(err)
		}
	}
	c, err := s.NewConsumer(stream.ConsumerConfig{MaxPollRecords: 2000, FetchMaxWait: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Assign(stream.TopicPartition{Topic: "t", Partition: 0}); err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	handled := 0
	err = c.Run(ctx, func(_ context.Context, r *stream.Record) error {
		if string(r.Value) != value(r.Offset) {
			return fmt.Errorf("Run handed offset %d with value %q", r.Offset, r.Value)
		}
		if handled++; handled%100 == 1 {
			off := r.Offset
			if _, err := c.Poll(ctx); err != nil {
				return err
			}
			if r.Offset != off || string(r.Value) != value(off) {
				return fmt.Errorf("a Poll from the handler changed the lent record %d: offset %d, %q", off, r.Offset, r.Value)
			}
		}
		if pos, _ := c.Position(stream.TopicPartition{Topic: "t", Partition: 0}); pos >= n {
			stop()
		}
		return nil
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatal(err)
	}
}

// Compressed batches with headers: Run decompresses into a reused buffer
// and carves records from the slab; Poll's records stay intact.
func TestRunLendsCompressedRecordsWithHeaders(t *testing.T) {
	s, _ := open(t, &stream.Options{Sync: stream.SyncNever})
	partition(t, s, "t", stream.TopicConfig{Partitions: 1})
	pr, err := s.NewProducer(stream.ProducerConfig{Compression: stream.CompressZstd})
	if err != nil {
		t.Fatal(err)
	}
	const n = 5000
	value := func(off int64) string { return fmt.Sprintf("value-%06d", off) }
	for i := range int64(n) {
		pr.SendAsync(&stream.Record{Topic: "t", Value: []byte(value(i)), Headers: []stream.Header{{Key: "h", Value: []byte(value(i))}}}, nil)
	}
	if err := pr.Close(); err != nil {
		t.Fatal(err)
	}
	c, err := s.NewConsumer(stream.ConsumerConfig{MaxPollRecords: 300})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	tp := stream.TopicPartition{Topic: "t", Partition: 0}
	if err := c.Assign(tp); err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	recs, err := c.Poll(ctx)
	if err != nil || len(recs) == 0 {
		t.Fatalf("Poll: %d records, %v", len(recs), err)
	}
	want := recs[len(recs)-1].Offset + 1
	err = c.Run(ctx, func(_ context.Context, r *stream.Record) error {
		if r.Offset != want || string(r.Value) != value(r.Offset) || len(r.Headers) != 1 || string(r.Headers[0].Value) != value(r.Offset) {
			return fmt.Errorf("Run handed offset %d (want %d): %q %v", r.Offset, want, r.Value, r.Headers)
		}
		if want++; want == n {
			stop()
		}
		return nil
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatal(err)
	}
	for i, r := range recs {
		if r.Offset != int64(i) || string(r.Value) != value(r.Offset) || string(r.Headers[0].Value) != value(r.Offset) {
			t.Fatalf("a record Poll returned changed: %d at %d: %q", r.Offset, i, r.Value)
		}
	}
}
