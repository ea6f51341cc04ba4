package benchmarks_test

// stream's side of the comparison, through its public API only.

import (
	"context"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/instream/stream"
)

func syncPolicy(fsync bool) stream.SyncPolicy {
	if fsync {
		return stream.SyncAlways
	}
	return stream.SyncNever
}

// openStream opens a Stream in a fresh directory with a one-partition
// topic "bench".
func openStream(b *testing.B, dir string, fsync bool) (*stream.Stream, *stream.Partition, error) {
	s, err := stream.Open(dir, &stream.Options{Sync: syncPolicy(fsync)})
	if err != nil {
		return nil, nil, err
	}
	t, err := s.CreateTopic("bench", stream.TopicConfig{Partitions: 1})
	if err != nil {
		s.Close()
		return nil, nil, err
	}
	p, err := t.Partition(0)
	if err != nil {
		s.Close()
		return nil, nil, err
	}
	return s, p, nil
}

func benchStream(b *testing.B, fsync bool) (*stream.Stream, *stream.Partition) {
	s, p, err := openStream(b, b.TempDir(), fsync)
	check(b, err)
	b.Cleanup(func() { s.Close() })
	return s, p
}

func streamAppendBatches(p *stream.Partition, n int) error {
	var batch stream.Batch
	for done := 0; done < n; {
		batch.Reset()
		k := min(batchSize, n-done)
		for range k {
			batch.Add(nil, value)
		}
		if _, err := p.AppendBatch(&batch); err != nil {
			return err
		}
		done += k
	}
	return nil
}

func streamWriteBatch(b *testing.B, fsync bool) {
	_, p := benchStream(b, fsync)
	m := start(b)
	check(b, streamAppendBatches(p, b.N))
	done(b, m)
}

func streamWriteSingle(b *testing.B, fsync bool) {
	_, p := benchStream(b, fsync)
	rec := &stream.Record{Value: value}
	m := start(b)
	for range b.N {
		rec.Timestamp = time.Time{} // Append sets it: now
		if _, err := p.Append(rec); err != nil {
			b.Fatal(err)
		}
	}
	done(b, m)
}

func streamWriteConcurrent(b *testing.B) {
	_, p := benchStream(b, true)
	m := start(b)
	inParallel(b, func(n int) error {
		rec := &stream.Record{Value: value}
		for range n {
			rec.Timestamp = time.Time{}
			if _, err := p.Append(rec); err != nil {
				return err
			}
		}
		return nil
	})
	done(b, m)
}

// streamProduceAsync sends with SendAsync and one shared callback, then
// Flushes. The records come from a ring reused once a record's callback
// has run, as an application recycles its records.
func streamProduceAsync(b *testing.B, fsync bool) {
	s, _ := benchStream(b, fsync)
	pr, err := s.NewProducer(stream.ProducerConfig{})
	check(b, err)
	defer pr.Close()
	const ring = 1 << 18
	recs := make([]stream.Record, min(b.N, ring))
	var delivered atomic.Int64
	var failed sync.Once
	callback := func(r *stream.Record, err error) {
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
		*r = stream.Record{Topic: "bench", Value: value}
		pr.SendAsync(r, callback)
	}
	check(b, pr.Flush(context.Background()))
	done(b, m)
}

// streamFixture is a partition of readRecords records, shared by the
// read benchmarks.
func streamFixture(b *testing.B) *stream.Stream {
	return fixture(b, "stream", func() (*stream.Stream, func(), error) {
		dir, rm, err := tempDir()
		if err != nil {
			return nil, nil, err
		}
		s, p, err := openStream(b, dir, false)
		if err != nil {
			rm()
			return nil, nil, err
		}
		closer := func() { s.Close(); rm() }
		if err := streamAppendBatches(p, readRecords); err != nil {
			closer()
			return nil, nil, err
		}
		if err := s.Sync(); err != nil {
			closer()
			return nil, nil, err
		}
		return s, closer, nil
	})
}

func streamScan(b *testing.B) {
	s := streamFixture(b)
	t, err := s.Topic("bench")
	check(b, err)
	p, err := t.Partition(0)
	check(b, err)
	m := start(b)
	for read := 0; read < b.N; {
		ctx, cancel := context.WithCancel(context.Background())
		for r, err := range p.Scan(ctx, 0) {
			if err != nil {
				b.Fatal(err)
			}
			if len(r.Value) != valueSize {
				b.Fatalf("offset %d: %d bytes", r.Offset, len(r.Value))
			}
			read++
			if read == b.N || r.Offset == readRecords-1 {
				break
			}
		}
		cancel()
	}
	done(b, m)
}

func streamPoll(b *testing.B) {
	s := streamFixture(b)
	c, err := s.NewConsumer(stream.ConsumerConfig{})
	check(b, err)
	defer c.Close()
	tp := stream.TopicPartition{Topic: "bench", Partition: 0}
	check(b, c.Assign(tp))
	check(b, c.Seek(tp, 0))
	ctx := context.Background()
	m := start(b)
	for read := 0; read < b.N; {
		recs, err := c.Poll(ctx)
		if err != nil {
			b.Fatal(err)
		}
		read += len(recs)
		if len(recs) > 0 && recs[len(recs)-1].Offset == readRecords-1 {
			check(b, c.Seek(tp, 0))
		}
	}
	done(b, m)
}
