package stream_test

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/instream/stream"
)

// The baseline every figure is compared with: a plain bufio.Writer
// writing [len uint32][crc32c uint32][payload] frames to one file, and a
// bufio.Reader reading them back and checking each CRC. Run the pairs in
// one session and compare ns/record:
//
//	go test -run '^$' -bench 'Baseline|Append|Scan' -benchmem

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

var recordSizes = []int{100, 1000}

func payload(size int) []byte {
	b := make([]byte, size)
	for i := range b {
		b[i] = byte('a' + i%26)
	}
	return b
}

// mallocs returns the heap allocations made so far, for allocs/record:
// allocs/op rounds a fraction of an allocation per record to 0.
func mallocs() uint64 {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.Mallocs
}

func reportAllocsPerRecord(b *testing.B, since uint64, records int) {
	b.ReportMetric(float64(mallocs()-since)/float64(records), "allocs/record")
}

func reportPerRecord(b *testing.B, records int) {
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(records), "ns/record")
	b.ReportMetric(float64(processCPU()-cpuAtReset)/float64(records), "cpu-ns/record")
}

// cpuAtReset is the process's CPU time at the last resetTimer. On a
// shared machine wall time swings with whatever else runs (±30% and
// worse); the CPU time the process spends per record, the garbage
// collector's included, swings much less: compare cpu-ns/record.
// Benchmarks run one at a time, so one variable serves them all.
var cpuAtReset int64

// resetTimer is b.ResetTimer, starting the CPU clock of cpu-ns/record.
func resetTimer(b *testing.B) {
	b.ResetTimer()
	cpuAtReset = processCPU()
}

// baselineWriter writes frames through a bufio.Writer; flushEvery > 0
// flushes and fdatasyncs every flushEvery frames (the SyncAlways baseline).
// prealloc reserves the file's blocks first, as stream does for its
// active segment, so that an fdatasync need not grow the file.
func baselineWrite(b *testing.B, size, flushEvery int, prealloc bool) {
	f, err := os.Create(filepath.Join(b.TempDir(), "baseline.log"))
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	if prealloc {
		if err := stream.Fallocate(f, int64(b.N)*int64(size+8)+64<<10); err != nil {
			b.Fatal(err)
		}
	}
	w := bufio.NewWriterSize(f, 64<<10)
	val := payload(size)
	var hdr [8]byte
	b.SetBytes(int64(size))
	b.ReportAllocs()
	resetTimer(b)
	for i := range b.N {
		binary.BigEndian.PutUint32(hdr[:], uint32(len(val)))
		binary.BigEndian.PutUint32(hdr[4:], crc32.Checksum(val, castagnoli))
		w.Write(hdr[:])
		w.Write(val)
		if flushEvery > 0 && (i+1)%flushEvery == 0 {
			if err := w.Flush(); err != nil {
				b.Fatal(err)
			}
			if err := stream.Fdatasync(f); err != nil {
				b.Fatal(err)
			}
		}
	}
	if err := w.Flush(); err != nil {
		b.Fatal(err)
	}
	reportPerRecord(b, b.N)
}

func BenchmarkBaselineWrite(b *testing.B) {
	for _, size := range recordSizes {
		b.Run(fmt.Sprintf("%dB", size), func(b *testing.B) { baselineWrite(b, size, 0, false) })
	}
}

// BenchmarkBaselineWriteSync fdatasyncs after every 100 frames: the
// yardstick for SyncAlways appends of batches of 100 (BenchmarkAppendSync).
// The fair one is prealloc=true: stream fdatasyncs a preallocated segment,
// so its fsyncs never carry a file-size update; a growing file's do.
func BenchmarkBaselineWriteSync(b *testing.B) {
	for _, prealloc := range []bool{false, true} {
		b.Run(fmt.Sprintf("prealloc=%v", prealloc), func(b *testing.B) { baselineWrite(b, 100, 100, prealloc) })
	}
}

func BenchmarkBaselineRead(b *testing.B) {
	for _, size := range recordSizes {
		b.Run(fmt.Sprintf("%dB", size), func(b *testing.B) {
			path := filepath.Join(b.TempDir(), "baseline.log")
			f, err := os.Create(path)
			if err != nil {
				b.Fatal(err)
			}
			w := bufio.NewWriter(f)
			val := payload(size)
			const n = 200_000
			var hdr [8]byte
			for range n {
				binary.BigEndian.PutUint32(hdr[:], uint32(len(val)))
				binary.BigEndian.PutUint32(hdr[4:], crc32.Checksum(val, castagnoli))
				w.Write(hdr[:])
				w.Write(val)
			}
			w.Flush()
			f.Close()
			b.SetBytes(int64(size))
			b.ReportAllocs()
			resetTimer(b)
			read := 0
			for read < b.N {
				f, err := os.Open(path)
				if err != nil {
					b.Fatal(err)
				}
				r := bufio.NewReaderSize(f, 64<<10)
				buf := make([]byte, size)
				for read < b.N {
					if _, err := io.ReadFull(r, hdr[:]); err == io.EOF {
						break
					} else if err != nil {
						b.Fatal(err)
					}
					n := binary.BigEndian.Uint32(hdr[:])
					if _, err := io.ReadFull(r, buf[:n]); err != nil {
						b.Fatal(err)
					}
					if crc32.Checksum(buf[:n], castagnoli) != binary.BigEndian.Uint32(hdr[4:]) {
						b.Fatal("crc")
					}
					read++
				}
				f.Close()
			}
			reportPerRecord(b, b.N)
		})
	}
}

func openBench(b *testing.B, opts *stream.Options, partitions int) (*stream.Stream, *stream.Topic) {
	b.Helper()
	s, err := stream.Open(b.TempDir(), opts)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	t, err := s.CreateTopic("bench", stream.TopicConfig{Partitions: partitions})
	if err != nil {
		b.Fatal(err)
	}
	return s, t
}

// appendBatches appends n records of value val in batches of 100.
func appendBatches(b *testing.B, p *stream.Partition, n int, val []byte) {
	b.Helper()
	var batch stream.Batch
	for done := 0; done < n; {
		batch.Reset()
		k := min(100, n-done)
		for range k {
			batch.Add(nil, val)
		}
		if _, err := p.AppendBatch(&batch); err != nil {
			b.Fatal(err)
		}
		done += k
	}
}

// BenchmarkAppendBatch appends batches of 100 records with SyncNever: the
// embedded-log fast path, against BenchmarkBaselineWrite.
func BenchmarkAppendBatch(b *testing.B) {
	for _, size := range recordSizes {
		b.Run(fmt.Sprintf("%dB", size), func(b *testing.B) {
			_, t := openBench(b, &stream.Options{Sync: stream.SyncNever}, 1)
			p, _ := t.Partition(0)
			val := payload(size)
			b.SetBytes(int64(size))
			b.ReportAllocs()
			resetTimer(b)
			appendBatches(b, p, b.N, val)
			reportPerRecord(b, b.N)
		})
	}
}

// BenchmarkAppend appends one record at a time with SyncNever.
func BenchmarkAppend(b *testing.B) {
	for _, size := range recordSizes {
		b.Run(fmt.Sprintf("%dB", size), func(b *testing.B) {
			_, t := openBench(b, &stream.Options{Sync: stream.SyncNever}, 1)
			p, _ := t.Partition(0)
			rec := &stream.Record{Value: payload(size)}
			b.SetBytes(int64(size))
			b.ReportAllocs()
			resetTimer(b)
			for range b.N {
				rec.Timestamp = time.Time{}
				if _, err := p.Append(rec); err != nil {
					b.Fatal(err)
				}
			}
			reportPerRecord(b, b.N)
		})
	}
}

// BenchmarkScan reads a partition from the page cache with Scan, against
// BenchmarkBaselineRead.
func BenchmarkScan(b *testing.B) {
	for _, size := range recordSizes {
		b.Run(fmt.Sprintf("%dB", size), func(b *testing.B) {
			_, t := openBench(b, &stream.Options{Sync: stream.SyncNever}, 1)
			p, _ := t.Partition(0)
			const n = 200_000
			appendBatches(b, p, n, payload(size))
			b.SetBytes(int64(size))
			b.ReportAllocs()
			resetTimer(b)
			startMallocs := mallocs()
			for read := 0; read < b.N; {
				ctx, cancel := context.WithCancel(context.Background())
				for r, err := range p.Scan(ctx, 0) {
					if err != nil {
						b.Fatal(err)
					}
					read++
					if read == b.N || r.Offset == n-1 {
						break
					}
				}
				cancel()
			}
			reportAllocsPerRecord(b, startMallocs, b.N)
			reportPerRecord(b, b.N)
		})
	}
}

// BenchmarkAppendSync appends batches of 100 records under SyncAlways from
// one goroutine: one fdatasync per batch, against
// BenchmarkBaselineWriteSync.
func BenchmarkAppendSync(b *testing.B) {
	_, t := openBench(b, nil, 1)
	p, _ := t.Partition(0)
	b.SetBytes(100)
	b.ReportAllocs()
	resetTimer(b)
	appendBatches(b, p, b.N, payload(100))
	reportPerRecord(b, b.N)
}

// inParallel splits b.N operations among workers goroutines, each running
// work(n) for its share, and waits for them.
func inParallel(b *testing.B, workers int, work func(n int) error) {
	var wg sync.WaitGroup
	per := (b.N + workers - 1) / workers
	for w := range workers {
		n := min(per, b.N-w*per)
		if n <= 0 {
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := work(n); err != nil {
				b.Error(err)
			}
		}()
	}
	wg.Wait()
}

// BenchmarkGroupCommit appends single 100-byte records under SyncAlways
// from 1 and from 64 goroutines: group commit shares each fsync among the
// appenders waiting for it.
func BenchmarkGroupCommit(b *testing.B) {
	for _, writers := range []int{1, 64} {
		b.Run(fmt.Sprintf("writers=%d", writers), func(b *testing.B) {
			_, t := openBench(b, nil, 1)
			p, _ := t.Partition(0)
			val := payload(100)
			b.SetBytes(100)
			b.ReportAllocs()
			resetTimer(b)
			inParallel(b, writers, func(n int) error {
				rec := &stream.Record{Value: val}
				for range n {
					if _, err := p.Append(rec); err != nil {
						return err
					}
				}
				return nil
			})
			reportPerRecord(b, b.N)
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
		})
	}
}

// BenchmarkProducerSendAsync sends 100-byte records with SendAsync under
// SyncNever, one shared callback: the producer's batching path, against
// BenchmarkBaselineWrite/100B. The time includes delivering every record
// (Flush).
func BenchmarkProducerSendAsync(b *testing.B) {
	s, _ := openBench(b, &stream.Options{Sync: stream.SyncNever}, 1)
	p, err := s.NewProducer(stream.ProducerConfig{})
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	val := payload(100)
	// The caller's records: a ring reused once a record's callback has
	// run, as an application recycles its records. It is larger than the
	// producer's buffer holds, so the sender rarely waits for a slot.
	const ring = 1 << 19
	recs := make([]stream.Record, min(b.N, ring))
	var delivered atomic.Int64 // callbacks run; one partition: in send order
	var failed sync.Once
	done := func(r *stream.Record, err error) {
		if err != nil {
			failed.Do(func() { b.Error(err) })
		}
		delivered.Add(1)
	}
	b.SetBytes(100)
	b.ReportAllocs()
	resetTimer(b)
	for i := range b.N {
		if i >= ring {
			for delivered.Load() <= int64(i-ring) {
				runtime.Gosched()
			}
		}
		r := &recs[i%ring]
		*r = stream.Record{Topic: "bench", Value: val}
		p.SendAsync(r, done)
	}
	if err := p.Flush(context.Background()); err != nil {
		b.Fatal(err)
	}
	reportPerRecord(b, b.N)
}

// BenchmarkProducerOverhead measures what the producer adds to the
// append it makes: 100-byte records to one partition under SyncNever, in
// rounds of 64 Ki records, alternately through Partition.AppendBatch
// (batches of 100, the caller batching by hand) and through SendAsync
// with one shared callback, each round ending when every record is
// delivered (Flush). Alternating rounds in one run keeps a noisy machine
// from favouring either side. It reports appendbatch-ns/record,
// sendasync-ns/record, their ratio (x-appendbatch) and the allocations
// per SendAsync record (the caller's records are allocated before).
func BenchmarkProducerOverhead(b *testing.B) {
	s, t := openBench(b, &stream.Options{Sync: stream.SyncNever}, 2)
	part, _ := t.Partition(1)
	p, err := s.NewProducer(stream.ProducerConfig{Partitioner: stream.ManualPartitioner})
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	val := payload(100)
	const round = 64 << 10
	recs := make([]stream.Record, round)
	var failed sync.Once
	done := func(r *stream.Record, err error) {
		if err != nil {
			failed.Do(func() { b.Error(err) })
		}
	}
	var batch stream.Batch
	var appendNs, sendNs, sendAllocs, sendRecs int64
	var ms runtime.MemStats
	b.SetBytes(100)
	b.ReportAllocs()
	resetTimer(b)
	for left := b.N; left > 0; {
		n := min(round, left)
		left -= n
		start := time.Now()
		for k := 0; k < n; k += 100 {
			batch.Reset()
			for range min(100, n-k) {
				batch.Add(nil, val)
			}
			if _, err := part.AppendBatch(&batch); err != nil {
				b.Fatal(err)
			}
		}
		appendNs += time.Since(start).Nanoseconds()
		for i := range recs[:n] {
			recs[i] = stream.Record{Topic: "bench", Value: val}
		}
		runtime.ReadMemStats(&ms)
		mallocs := ms.Mallocs
		start = time.Now()
		for i := range recs[:n] {
			p.SendAsync(&recs[i], done)
		}
		if err := p.Flush(context.Background()); err != nil {
			b.Fatal(err)
		}
		sendNs += time.Since(start).Nanoseconds()
		runtime.ReadMemStats(&ms)
		sendAllocs += int64(ms.Mallocs - mallocs)
		sendRecs += int64(n)
	}
	b.ReportMetric(float64(appendNs)/float64(b.N), "appendbatch-ns/record")
	b.ReportMetric(float64(sendNs)/float64(b.N), "sendasync-ns/record")
	b.ReportMetric(float64(sendNs)/float64(appendNs), "x-appendbatch")
	b.ReportMetric(float64(sendAllocs)/float64(sendRecs), "sendasync-allocs/record")
}

// BenchmarkProducerSendAcksAll64 sends 100-byte records with Send
// (AcksAll, SyncAlways: each Send waits for its fsync) from 1 and from 64
// goroutines, with the default ProducerConfig and with NoLinger: records
// sent while a batch is being written and fsynced share the next batch
// and its fsync.
func BenchmarkProducerSendAcksAll64(b *testing.B) {
	for _, c := range []struct {
		name   string
		linger time.Duration
	}{{"default", 0}, {"NoLinger", stream.NoLinger}} {
		for _, senders := range []int{1, 64} {
			b.Run(fmt.Sprintf("linger=%s/senders=%d", c.name, senders), func(b *testing.B) {
				sendAcksAll(b, c.linger, senders)
			})
		}
	}
}

func sendAcksAll(b *testing.B, linger time.Duration, senders int) {
	s, _ := openBench(b, nil, 1)
	p, err := s.NewProducer(stream.ProducerConfig{Linger: linger})
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	val := payload(100)
	b.SetBytes(100)
	b.ReportAllocs()
	resetTimer(b)
	inParallel(b, senders, func(n int) error {
		rec := &stream.Record{Topic: "bench", Value: val}
		for range n {
			if err := p.Send(context.Background(), rec); err != nil {
				return err
			}
		}
		return nil
	})
	reportPerRecord(b, b.N)
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
}

// BenchmarkProducerLatency measures produce-to-acknowledge latency of Send
// with NoLinger (linger.ms=0), one record at a time, under each sync
// policy; p50-ns and p99-ns are the percentiles.
func BenchmarkProducerLatency(b *testing.B) {
	for _, sync := range []stream.SyncPolicy{stream.SyncAlways, stream.SyncNever} {
		b.Run("sync="+sync.String(), func(b *testing.B) {
			s, _ := openBench(b, &stream.Options{Sync: sync}, 1)
			p, err := s.NewProducer(stream.ProducerConfig{Linger: stream.NoLinger})
			if err != nil {
				b.Fatal(err)
			}
			defer p.Close()
			rec := &stream.Record{Topic: "bench", Value: payload(100)}
			lat := make([]time.Duration, 0, b.N)
			b.ReportAllocs()
			resetTimer(b)
			for range b.N {
				start := time.Now()
				if err := p.Send(context.Background(), rec); err != nil {
					b.Fatal(err)
				}
				lat = append(lat, time.Since(start))
			}
			b.StopTimer()
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2].Nanoseconds()), "p50-ns")
			b.ReportMetric(float64(lat[len(lat)*99/100].Nanoseconds()), "p99-ns")
		})
	}
}

// BenchmarkReadRandom reads one record, Read(offset, 1), at a random
// offset of a partition of 200,000 records of 100 bytes in 1 MiB
// segments, from the page cache: an index lookup, one small read, the
// batch's CRC, and one record decoded. The sub-benchmarks vary the
// batches the records were appended in: one record each (many batch
// headers between two index entries), 100 (AppendBatch's usual size,
// about 11 KiB) and 600 (about 64 KiB, a full producer batch).
func BenchmarkReadRandom(b *testing.B) {
	for _, perBatch := range []int{1, 100, 600} {
		b.Run(fmt.Sprintf("batch%d", perBatch), func(b *testing.B) {
			_, t := openBench(b, &stream.Options{Sync: stream.SyncNever, SegmentBytes: 1 << 20}, 1)
			p, _ := t.Partition(0)
			const n = 200_000
			val := payload(100)
			var batch stream.Batch
			for done := 0; done < n; {
				batch.Reset()
				k := min(perBatch, n-done)
				for range k {
					batch.Add(nil, val)
				}
				if _, err := p.AppendBatch(&batch); err != nil {
					b.Fatal(err)
				}
				done += k
			}
			if err := p.Sync(); err != nil {
				b.Fatal(err)
			}
			rng := rand.New(rand.NewPCG(1, 2))
			b.ReportAllocs()
			resetTimer(b)
			for range b.N {
				off := rng.Int64N(n)
				recs, err := p.Read(off, 1)
				if err != nil || len(recs) != 1 || recs[0].Offset != off {
					b.Fatalf("Read(%d, 1): %d records, %v", off, len(recs), err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N), "ns/read")
			b.ReportMetric(float64(processCPU()-cpuAtReset)/float64(b.N), "cpu-ns/read")
		})
	}
}

// BenchmarkConsumerPoll reads 100-byte records from the page cache with a
// group-less Consumer's Poll, against BenchmarkBaselineRead/100B.
func BenchmarkConsumerPoll(b *testing.B) {
	s, t := openBench(b, &stream.Options{Sync: stream.SyncNever}, 1)
	p, _ := t.Partition(0)
	const n = 200_000
	appendBatches(b, p, n, payload(100))
	c, err := s.NewConsumer(stream.ConsumerConfig{})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	tp := stream.TopicPartition{Topic: "bench", Partition: 0}
	if err := c.Assign(tp); err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	b.SetBytes(100)
	b.ReportAllocs()
	resetTimer(b)
	startMallocs := mallocs()
	for read := 0; read < b.N; {
		recs, err := c.Poll(ctx)
		if err != nil {
			b.Fatal(err)
		}
		read += len(recs)
		if len(recs) > 0 && recs[len(recs)-1].Offset == n-1 {
			if err := c.Seek(tp, 0); err != nil {
				b.Fatal(err)
			}
		}
	}
	reportAllocsPerRecord(b, startMallocs, b.N)
	reportPerRecord(b, b.N)
}

// BenchmarkEndToEndLatency appends one record at a time with SyncNever
// while a consumer long-polls, and reports the append→Poll-return latency
// percentiles.
func BenchmarkEndToEndLatency(b *testing.B) {
	s, t := openBench(b, &stream.Options{Sync: stream.SyncNever}, 1)
	p, _ := t.Partition(0)
	c, err := s.NewConsumer(stream.ConsumerConfig{FetchMaxWait: time.Minute})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	if err := c.Assign(stream.TopicPartition{Topic: "bench", Partition: 0}); err != nil {
		b.Fatal(err)
	}
	got := make(chan time.Time)
	go func() {
		for {
			recs, err := c.Poll(context.Background())
			if err != nil {
				close(got)
				return
			}
			if len(recs) > 0 {
				got <- time.Now()
			}
		}
	}()
	rec := &stream.Record{Value: payload(100)}
	lat := make([]time.Duration, 0, b.N)
	resetTimer(b)
	for range b.N {
		rec.Timestamp = time.Time{}
		start := time.Now()
		if _, err := p.Append(rec); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, (<-got).Sub(start))
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Nanoseconds()), "p50-ns")
	b.ReportMetric(float64(lat[len(lat)*99/100].Nanoseconds()), "p99-ns")
	c.Close()
	<-got
}

// BenchmarkRebalance measures how long a group of 8 polling members takes
// to settle when a ninth joins or leaves: from Join (or Close) until every
// partition is owned again under the new assignment.
func BenchmarkRebalance(b *testing.B) {
	for _, a := range []stream.Assignor{stream.RangeAssignor, stream.CooperativeStickyAssignor} {
		b.Run(a.Name(), func(b *testing.B) {
			s, _ := openBench(b, &stream.Options{Sync: stream.SyncNever}, 32)
			g, err := s.ConsumerGroup("g", stream.GroupConfig{Topics: []string{"bench"}, Assignor: a})
			if err != nil {
				b.Fatal(err)
			}
			var mu sync.Mutex
			owned, newcomer := 0, false
			settled := make(chan struct{}, 1)
			check := func() {
				if owned == 32 && newcomer {
					select {
					case settled <- struct{}{}:
					default:
					}
				}
			}
			cfg := func(isNew bool) stream.ConsumerConfig {
				return stream.ConsumerConfig{
					FetchMaxWait: time.Minute,
					OnAssigned: func(_ context.Context, tps []stream.TopicPartition) {
						mu.Lock()
						defer mu.Unlock()
						owned += len(tps)
						if isNew {
							newcomer = true
						}
						check()
					},
					OnRevoked: func(_ context.Context, tps []stream.TopicPartition) {
						mu.Lock()
						defer mu.Unlock()
						owned -= len(tps)
					},
				}
			}
			var wg sync.WaitGroup
			run := func(c *stream.Consumer) {
				defer wg.Done()
				for {
					if _, err := c.Poll(context.Background()); err != nil {
						return
					}
				}
			}
			var members []*stream.Consumer
			for range 8 {
				c, err := g.Join(context.Background(), cfg(false))
				if err != nil {
					b.Fatal(err)
				}
				members = append(members, c)
				wg.Add(1)
				go run(c)
			}
			wait := func() {
				select {
				case <-settled:
				case <-time.After(time.Minute):
					b.Fatal("the group did not settle")
				}
			}
			mu.Lock()
			newcomer = true
			mu.Unlock()
			wait()
			resetTimer(b)
			for range b.N {
				mu.Lock()
				newcomer = false
				mu.Unlock()
				c, err := g.Join(context.Background(), cfg(true))
				if err != nil {
					b.Fatal(err)
				}
				wg.Add(1)
				go run(c)
				wait()
				mu.Lock()
				newcomer = true
				mu.Unlock()
				c.Close()
				wait()
			}
			b.StopTimer()
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(2*b.N), "ns/rebalance")
			for _, c := range members {
				c.Close()
			}
			wg.Wait()
		})
	}
}

// BenchmarkForEach replays a partition from the page cache with ForEach:
// records decoded in place, nothing allocated per record. Against
// BenchmarkBaselineRead.
func BenchmarkForEach(b *testing.B) {
	for _, size := range recordSizes {
		b.Run(fmt.Sprintf("%dB", size), func(b *testing.B) {
			_, t := openBench(b, &stream.Options{Sync: stream.SyncNever}, 1)
			p, _ := t.Partition(0)
			const n = 200_000
			appendBatches(b, p, n, payload(size))
			b.SetBytes(int64(size))
			b.ReportAllocs()
			resetTimer(b)
			startMallocs := mallocs()
			var sum int
			for read := 0; read < b.N; {
				err := p.ForEach(0, int64(min(n, b.N-read)), func(r *stream.Record) error {
					sum += len(r.Value)
					return nil
				})
				if err != nil {
					b.Fatal(err)
				}
				read += min(n, b.N-read)
			}
			reportAllocsPerRecord(b, startMallocs, b.N)
			reportPerRecord(b, b.N)
		})
	}
}

// BenchmarkConsumerRun hands 100-byte records from the page cache to a
// group-less Consumer's Run handler, the queue worker's path, against
// BenchmarkBaselineRead/100B.
func BenchmarkConsumerRun(b *testing.B) {
	s, t := openBench(b, &stream.Options{Sync: stream.SyncNever}, 1)
	p, _ := t.Partition(0)
	const n = 200_000
	appendBatches(b, p, n, payload(100))
	c, err := s.NewConsumer(stream.ConsumerConfig{})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	tp := stream.TopicPartition{Topic: "bench", Partition: 0}
	if err := c.Assign(tp); err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	read, sum := 0, 0
	b.SetBytes(100)
	b.ReportAllocs()
	resetTimer(b)
	startMallocs := mallocs()
	err = c.Run(ctx, func(_ context.Context, r *stream.Record) error {
		sum += len(r.Value)
		if read++; read == b.N {
			cancel()
		} else if r.Offset == n-1 {
			return c.Seek(tp, 0)
		}
		return nil
	})
	if err != context.Canceled {
		b.Fatal(err)
	}
	if read != b.N {
		b.Fatalf("handled %d records, want %d", read, b.N)
	}
	reportAllocsPerRecord(b, startMallocs, b.N)
	reportPerRecord(b, b.N)
}
