package stream_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/instream/stream"
)

// diskBatch is the header of a batch as found in a .log file.
type diskBatch struct {
	base       int64
	attrs      int16
	count      int32
	producerID int64
	epoch      int16
	seq        int32
}

// batchesOnDisk parses the batch headers of every .log file of p, reading
// the files themselves, as Kafka's tools would.
func batchesOnDisk(t *testing.T, p *stream.Partition) []diskBatch {
	t.Helper()
	logs, err := filepath.Glob(filepath.Join(p.Dir(), "*.log"))
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(logs)
	be := binary.BigEndian
	var out []diskBatch
	for _, name := range logs {
		b, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		for len(b) >= 61 {
			length := int(be.Uint32(b[8:]))
			if length == 0 { // the zero tail of a preallocated segment
				break
			}
			if b[16] != 2 || 12+length > len(b) {
				t.Fatalf("%s: bad batch header % x", name, b[:61])
			}
			out = append(out, diskBatch{
				base:       int64(be.Uint64(b)),
				attrs:      int16(be.Uint16(b[21:])),
				producerID: int64(be.Uint64(b[43:])),
				epoch:      int16(be.Uint16(b[51:])),
				seq:        int32(be.Uint32(b[53:])),
				count:      int32(be.Uint32(b[57:])),
			})
			b = b[12+length:]
		}
	}
	return out
}

func newProducer(t *testing.T, s *stream.Stream, cfg stream.ProducerConfig) *stream.Producer {
	t.Helper()
	p, err := s.NewProducer(cfg)
	if err != nil {
		t.Fatalf("NewProducer: %v", err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

func topic(t *testing.T, s *stream.Stream, name string, partitions int) *stream.Topic {
	t.Helper()
	tp, err := s.CreateTopic(name, stream.TopicConfig{Partitions: partitions})
	if err != nil {
		t.Fatal(err)
	}
	return tp
}

// results collects the callbacks of SendAsync.
type results struct {
	mu   sync.Mutex
	recs []*stream.Record
	errs []error
	wg   sync.WaitGroup
}

func (rs *results) done() func(*stream.Record, error) {
	rs.wg.Add(1)
	return func(r *stream.Record, err error) {
		rs.mu.Lock()
		rs.recs = append(rs.recs, r)
		rs.errs = append(rs.errs, err)
		rs.mu.Unlock()
		rs.wg.Done()
	}
}

func (rs *results) len() int {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	return len(rs.recs)
}

func flush(t *testing.T, p *stream.Producer) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := p.Flush(ctx); err != nil {
		t.Fatalf("Flush: %v", err)
	}
}

func TestProducerConfigValidation(t *testing.T) {
	s, _ := open(t, nil)
	tests := []struct {
		cfg   stream.ProducerConfig
		field string
	}{
		{stream.ProducerConfig{Acks: 3}, "ProducerConfig.Acks"},
		{stream.ProducerConfig{BatchBytes: -1}, "ProducerConfig.BatchBytes"},
		{stream.ProducerConfig{BufferBytes: -1}, "ProducerConfig.BufferBytes"},
		{stream.ProducerConfig{DeliveryTimeout: -1}, "ProducerConfig.DeliveryTimeout"},
		{stream.ProducerConfig{DeliveryTimeout: time.Millisecond, Linger: time.Second}, "ProducerConfig.DeliveryTimeout"},
		{stream.ProducerConfig{RetryBackoff: -1}, "ProducerConfig.RetryBackoff"},
		{stream.ProducerConfig{Compression: 5}, "ProducerConfig.Compression"},
	}
	for _, tt := range tests {
		t.Run(tt.field, func(t *testing.T) {
			cfg := tt.cfg
			_, err := s.NewProducer(cfg)
			if !errors.Is(err, stream.ErrInvalidConfig) || !strings.Contains(err.Error(), tt.field) {
				t.Fatalf("NewProducer: %v, want ErrInvalidConfig naming %s", err, tt.field)
			}
			if cfg != tt.cfg {
				t.Errorf("NewProducer wrote to the caller's ProducerConfig")
			}
		})
	}
	cfg := stream.ProducerConfig{Linger: stream.NoLinger}
	p := newProducer(t, s, cfg)
	if cfg != (stream.ProducerConfig{Linger: stream.NoLinger}) {
		t.Errorf("NewProducer wrote to the caller's ProducerConfig")
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
}

// Keyed records land on the partition Kafka's Java client picks (the
// vectors of TestHashPartitionerKafkaPartitions, worked out by hand from
// Kafka's murmur2), through the whole producer and onto disk.
func TestProducerKafkaKeyPartitions(t *testing.T) {
	s, _ := open(t, nil)
	topic(t, s, "keys", 12)
	p := newProducer(t, s, stream.ProducerConfig{})
	want := map[string]int32{
		"21": 0, "foobar": 6, "a-little-bit-long-string": 8,
		"a-little-bit-longer-string": 11, "abc": 3,
	}
	for key, part := range want {
		r := &stream.Record{Topic: "keys", Key: []byte(key), Value: []byte("v-" + key)}
		if err := p.Send(context.Background(), r); err != nil {
			t.Fatalf("Send %q: %v", key, err)
		}
		if r.Partition != part || r.Offset != 0 || r.Timestamp.IsZero() {
			t.Fatalf("key %q: partition %d offset %d timestamp %v, want partition %d offset 0 and a timestamp", key, r.Partition, r.Offset, r.Timestamp, part)
		}
		recs, err := existing(t, s, "keys", part).Read(0, 1<<20)
		if err != nil || len(recs) != 1 || string(recs[0].Key) != key {
			t.Fatalf("partition %d holds %v, %v; want the record of key %q", part, recs, err, key)
		}
	}
}

// Records of one key keep their order, and callbacks come in offset order
// per partition, with 16 goroutines sending at once.
func TestProducerPerKeyOrderConcurrent(t *testing.T) {
	checkNoLeaks(t)
	s, _ := open(t, &stream.Options{Sync: stream.SyncNever})
	const parts, senders, perSender, keys = 4, 16, 400, 5
	topic(t, s, "order", parts)
	p := newProducer(t, s, stream.ProducerConfig{BatchBytes: 2 * stream.KiB})

	var mu sync.Mutex
	lastOffset := make([]int64, parts) // per partition, in callback order
	for i := range lastOffset {
		lastOffset[i] = -1
	}
	where := map[string][2]int64{} // value -> partition, offset
	var failed atomic.Int64
	var wg sync.WaitGroup
	for g := range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perSender {
				r := &stream.Record{
					Topic: "order",
					Key:   fmt.Appendf(nil, "g%02d-k%d", g, i%keys),
					Value: fmt.Appendf(nil, "g%02d-k%d-%06d", g, i%keys, i),
				}
				p.SendAsync(r, func(r *stream.Record, err error) {
					mu.Lock()
					defer mu.Unlock()
					if err != nil {
						failed.Add(1)
						return
					}
					if r.Offset <= lastOffset[r.Partition] {
						t.Errorf("partition %d: callback for offset %d after %d", r.Partition, r.Offset, lastOffset[r.Partition])
					}
					lastOffset[r.Partition] = r.Offset
					where[string(r.Value)] = [2]int64{int64(r.Partition), r.Offset}
				})
			}
		}()
	}
	wg.Wait()
	flush(t, p)
	if failed.Load() != 0 {
		t.Fatalf("%d sends failed", failed.Load())
	}
	mu.Lock()
	defer mu.Unlock()
	if len(where) != senders*perSender {
		t.Fatalf("%d callbacks, want %d", len(where), senders*perSender)
	}
	total := 0
	for i := range int32(parts) {
		seen := map[string]int{} // key -> last sequence number
		for _, r := range readAll(t, existing(t, s, "order", i), 0) {
			total++
			if got := where[string(r.Value)]; got != [2]int64{int64(i), r.Offset} {
				t.Fatalf("record %s is at %d/%d, its callback said %v", r.Value, i, r.Offset, got)
			}
			var n int
			fmt.Sscanf(string(r.Value[len(r.Value)-6:]), "%d", &n)
			if last, ok := seen[string(r.Key)]; ok && n <= last {
				t.Fatalf("key %s: %s after sequence %d", r.Key, r.Value, last)
			}
			seen[string(r.Key)] = n
		}
	}
	if total != senders*perSender {
		t.Fatalf("%d records on disk, want %d", total, senders*perSender)
	}
}

// Records are written in batches, not one by one, each stamped with the
// producer's ID and consecutive sequence numbers.
func TestProducerBatchesOnDisk(t *testing.T) {
	s, _ := open(t, &stream.Options{Sync: stream.SyncNever})
	topic(t, s, "batched", 1)
	p := newProducer(t, s, stream.ProducerConfig{Linger: time.Minute, BatchBytes: 4 * stream.KiB})
	const n = 2000
	var rs results
	for i := range n {
		p.SendAsync(&stream.Record{Topic: "batched", Value: bytes.Repeat([]byte{'x'}, 100)}, rs.done())
		_ = i
	}
	flush(t, p)
	if rs.len() != n {
		t.Fatalf("%d callbacks after Flush, want %d", rs.len(), n)
	}
	for i, r := range rs.recs {
		if rs.errs[i] != nil || r.Offset != int64(i) {
			t.Fatalf("callback %d: offset %d, %v", i, r.Offset, rs.errs[i])
		}
	}
	batches := batchesOnDisk(t, existing(t, s, "batched", 0))
	if len(batches) > n/20 {
		t.Fatalf("%d records written as %d batches; want far fewer batches", n, len(batches))
	}
	var records int32
	for _, b := range batches {
		if b.producerID <= 0 || b.epoch != 0 || b.seq != records || int64(records) != b.base {
			t.Fatalf("batch %+v after %d records: want producer ID > 0, epoch 0, sequence and base %d", b, records, records)
		}
		records += b.count
	}
	if records != n {
		t.Fatalf("%d records on disk, want %d", records, n)
	}
}

// With a small buffer and a partition that does not take writes, SendAsync
// blocks instead of dropping, and every record arrives once it moves.
func TestProducerBackpressure(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, _ := open(t, &stream.Options{Sync: stream.SyncNever})
		part, _ := topic(t, s, "slow", 1).Partition(0)
		gate := make(chan struct{})
		stream.SetAppendFault(part, func() error { <-gate; return nil })
		const limit = 2 * stream.KiB
		p := newProducer(t, s, stream.ProducerConfig{BufferBytes: limit, BatchBytes: 512})
		const n = 200
		var rs results
		var sent atomic.Int64
		go func() {
			for i := range n {
				p.SendAsync(&stream.Record{Topic: "slow", Value: value(i)}, rs.done())
				sent.Add(1)
			}
		}()
		synctest.Wait() // the sender waits for room, the partition for the gate
		if got := sent.Load(); got == n || got == 0 {
			t.Fatalf("%d of %d sends returned with the partition stuck; want the sender blocked part way", got, n)
		}
		if b := stream.ProducerBuffered(p); b > int64(limit) {
			t.Fatalf("buffer holds %d bytes, over its %d", b, limit)
		}
		if rs.len() != 0 {
			t.Fatalf("%d callbacks with the partition stuck", rs.len())
		}
		close(gate)
		flushDone := make(chan error)
		go func() { flushDone <- p.Flush(context.Background()) }()
		synctest.Wait()
		if sent.Load() != n {
			t.Fatalf("%d of %d sends returned", sent.Load(), n)
		}
		if err := <-flushDone; err != nil {
			t.Fatal(err)
		}
		rs.wg.Wait()
		for i, err := range rs.errs {
			if err != nil {
				t.Fatalf("record %d: %v", i, err)
			}
		}
		checkValues(t, readAll(t, part, 0), 0)
		if hw := part.HighWatermark(); hw != n {
			t.Fatalf("high watermark %d, want %d", hw, n)
		}
		if b := stream.ProducerBuffered(p); b != 0 {
			t.Fatalf("buffer holds %d bytes after everything was delivered", b)
		}
	})
}

// A record too large for a batch fails at once, alone; the records sent
// before and after it are delivered.
func TestProducerOversizedRecordFailsAlone(t *testing.T) {
	s, _ := open(t, &stream.Options{MaxRecordBytes: 4 * stream.KiB})
	part, _ := topic(t, s, "big", 1).Partition(0)
	p := newProducer(t, s, stream.ProducerConfig{Linger: time.Minute})
	var rs results
	for i := range 50 {
		p.SendAsync(&stream.Record{Topic: "big", Value: value(i)}, rs.done())
	}
	var bigErr error
	called := false
	p.SendAsync(&stream.Record{Topic: "big", Value: make([]byte, 8<<10)}, func(r *stream.Record, err error) {
		called, bigErr = true, err
	})
	if !called || !errors.Is(bigErr, stream.ErrRecordTooLarge) {
		t.Fatalf("oversized record: callback called %v with %v before SendAsync returned; want ErrRecordTooLarge", called, bigErr)
	}
	if rs.len() != 0 {
		t.Fatalf("%d records delivered already; they should be lingering", rs.len())
	}
	for i := 50; i < 100; i++ {
		p.SendAsync(&stream.Record{Topic: "big", Value: value(i)}, rs.done())
	}
	flush(t, p)
	for i, err := range rs.errs {
		if err != nil || rs.recs[i].Offset != int64(i) {
			t.Fatalf("record %d: offset %d, %v", i, rs.recs[i].Offset, err)
		}
	}
	checkValues(t, readAll(t, part, 0), 0)
	if hw := part.HighWatermark(); hw != 100 {
		t.Fatalf("high watermark %d, want 100", hw)
	}
	// Send reports the same.
	if err := p.Send(context.Background(), &stream.Record{Topic: "big", Value: make([]byte, 8<<10)}); !errors.Is(err, stream.ErrRecordTooLarge) {
		t.Fatalf("Send of an oversized record: %v", err)
	}
}

// Records wait Linger for company, then go.
func TestProducerLinger(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, _ := open(t, nil)
		part, _ := topic(t, s, "linger", 1).Partition(0)
		p := newProducer(t, s, stream.ProducerConfig{Linger: time.Second})
		start := time.Now()
		var rs results
		p.SendAsync(&stream.Record{Topic: "linger", Value: value(0)}, rs.done())
		time.Sleep(999 * time.Millisecond)
		synctest.Wait()
		p.SendAsync(&stream.Record{Topic: "linger", Value: value(1)}, rs.done())
		synctest.Wait()
		if rs.len() != 0 || part.HighWatermark() != 0 {
			t.Fatalf("records delivered before Linger passed")
		}
		time.Sleep(time.Millisecond)
		synctest.Wait()
		if rs.len() != 2 {
			t.Fatalf("%d records delivered after Linger, want 2", rs.len())
		}
		if got := time.Since(start); got != time.Second {
			t.Fatalf("delivered after %v, want 1s", got)
		}
		if bs := batchesOnDisk(t, part); len(bs) != 1 || bs[0].count != 2 {
			t.Fatalf("batches on disk %+v, want one of 2 records", bs)
		}
		for i, r := range rs.recs {
			if !r.Timestamp.Equal(start.Truncate(time.Millisecond)) {
				t.Fatalf("record %d: timestamp %v, want the batch's %v", i, r.Timestamp, start)
			}
		}
	})
}

// A failure that persists is retried every RetryBackoff until
// DeliveryTimeout, then reported as ErrTimeout wrapping the last error.
func TestProducerDeliveryTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, _ := open(t, nil)
		part, _ := topic(t, s, "failing", 1).Partition(0)
		injected := errors.New("injected fsync failure")
		stream.SetSyncFault(part, func() error { return injected })
		p := newProducer(t, s, stream.ProducerConfig{
			Linger: stream.NoLinger, DeliveryTimeout: 10 * time.Second, RetryBackoff: time.Second,
		})
		start := time.Now()
		var rs results
		p.SendAsync(&stream.Record{Topic: "failing", Value: value(0)}, rs.done())
		time.Sleep(9999 * time.Millisecond)
		synctest.Wait()
		if rs.len() != 0 {
			t.Fatalf("record failed after %v, before DeliveryTimeout: %v", time.Since(start), rs.errs[0])
		}
		rs.wg.Wait()
		if got := time.Since(start); got != 10*time.Second {
			t.Fatalf("failed after %v, want 10s", got)
		}
		err := rs.errs[0]
		if !errors.Is(err, stream.ErrTimeout) || !errors.Is(err, injected) || !strings.Contains(err.Error(), "10 attempts") {
			t.Fatalf("error %v; want ErrTimeout wrapping the injected error after 10 attempts", err)
		}
		if r := rs.recs[0]; r.Offset != -1 || r.Partition != 0 || r.Timestamp.IsZero() {
			t.Fatalf("failed record %+v: want offset -1, partition 0, a timestamp", r)
		}
	})
}

// An acknowledgement lost after the batch was appended is retried after
// RetryBackoff; idempotence makes the partition answer the retry with the
// original offset instead of appending the batch again. Without
// idempotence the same failure duplicates the batch, which shows the test
// can tell.
func TestProducerRetryAfterLostAckNoDuplicate(t *testing.T) {
	for _, idempotent := range []bool{true, false} {
		t.Run(fmt.Sprintf("idempotent=%v", idempotent), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				s, _ := open(t, nil)
				part, _ := topic(t, s, "lost", 1).Partition(0)
				var faults atomic.Int32
				stream.SetAppendFault(part, func() error {
					if faults.Add(1) == 1 {
						return errors.New("injected: acknowledgement lost")
					}
					return nil
				})
				p := newProducer(t, s, stream.ProducerConfig{
					Linger: 10 * time.Millisecond, RetryBackoff: time.Second, DisableIdempotence: !idempotent,
				})
				start := time.Now()
				var rs results
				for i := range 3 {
					p.SendAsync(&stream.Record{Topic: "lost", Value: value(i)}, rs.done())
				}
				rs.wg.Wait()
				if got := time.Since(start); got != time.Second+10*time.Millisecond {
					t.Fatalf("delivered after %v, want Linger + RetryBackoff", got)
				}
				base := int64(0)
				if !idempotent {
					base = 3 // the retry's copy
				}
				for i, err := range rs.errs {
					if err != nil || rs.recs[i].Offset != base+int64(i) {
						t.Fatalf("record %d: offset %d, %v; want %d", i, rs.recs[i].Offset, err, base+int64(i))
					}
				}
				recs := readAll(t, part, 0)
				if idempotent {
					if len(recs) != 3 {
						t.Fatalf("%d records in the log, want 3: the retry was appended again", len(recs))
					}
					checkValues(t, recs, 0)
				} else if len(recs) != 6 {
					t.Fatalf("%d records in the log without idempotence, want the batch twice", len(recs))
				}
			})
		})
	}
}

// A batch that fails in a way that leaves its fate unknown (here: written,
// then a non-retriable error) must not wedge the partition's sequence
// numbers, nor make the next batch look like its duplicate.
func TestProducerContinuesAfterFailedBatch(t *testing.T) {
	s, _ := open(t, nil)
	part, _ := topic(t, s, "wedge", 1).Partition(0)
	var faults atomic.Int32
	stream.SetAppendFault(part, func() error {
		if faults.Add(1) == 1 {
			return fmt.Errorf("injected: %w", stream.ErrInvalidConfig)
		}
		return nil
	})
	p := newProducer(t, s, stream.ProducerConfig{Linger: stream.NoLinger})
	ctx := context.Background()
	if err := p.Send(ctx, &stream.Record{Topic: "wedge", Value: value(0)}); !errors.Is(err, stream.ErrInvalidConfig) {
		t.Fatalf("first Send: %v, want the injected error", err)
	}
	r := &stream.Record{Topic: "wedge", Value: value(1)}
	if err := p.Send(ctx, r); err != nil || r.Offset != 1 {
		t.Fatalf("second Send: offset %d, %v; want offset 1", r.Offset, err)
	}
	checkValues(t, readAll(t, part, 0), 0)
	bs := batchesOnDisk(t, part)
	if len(bs) != 2 || bs[1].epoch != bs[0].epoch+1 || bs[1].seq != 0 {
		t.Fatalf("batches %+v: want the second under the next epoch from sequence 0", bs)
	}
}

func TestProducerClose(t *testing.T) {
	checkNoLeaks(t)
	s, _ := open(t, nil)
	topic(t, s, "c", 2)
	p, err := s.NewProducer(stream.ProducerConfig{Linger: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	var rs results
	for i := range 100 {
		p.SendAsync(&stream.Record{Topic: "c", Key: value(i), Value: value(i)}, rs.done())
	}
	if err := p.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if rs.len() != 100 {
		t.Fatalf("%d callbacks when Close returned, want 100", rs.len())
	}
	for i, err := range rs.errs {
		if err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
	}
	var got error
	p.SendAsync(&stream.Record{Topic: "c", Value: []byte("late")}, func(_ *stream.Record, err error) { got = err })
	if !errors.Is(got, stream.ErrClosed) {
		t.Fatalf("SendAsync after Close: %v", got)
	}
	ctx := context.Background()
	for name, err := range map[string]error{
		"Send":  p.Send(ctx, &stream.Record{Topic: "c"}),
		"Flush": p.Flush(ctx),
		"Close": p.Close(),
	} {
		if !errors.Is(err, stream.ErrClosed) {
			t.Errorf("%s after Close: %v, want ErrClosed", name, err)
		}
	}
}

// Stream.Close closes the producers still open: what they hold is
// delivered first, and they refuse sends afterwards.
func TestStreamCloseClosesProducers(t *testing.T) {
	checkNoLeaks(t)
	dir := t.TempDir()
	s, err := stream.Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	topic(t, s, "c", 1)
	p, err := s.NewProducer(stream.ProducerConfig{Linger: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	var rs results
	for i := range 10 {
		p.SendAsync(&stream.Record{Topic: "c", Value: value(i)}, rs.done())
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if rs.len() != 10 {
		t.Fatalf("%d callbacks when Stream.Close returned, want 10", rs.len())
	}
	if err := p.Send(context.Background(), &stream.Record{Topic: "c"}); !errors.Is(err, stream.ErrClosed) {
		t.Fatalf("Send after Stream.Close: %v", err)
	}
	if err := p.Close(); !errors.Is(err, stream.ErrClosed) {
		t.Fatalf("Producer.Close after Stream.Close: %v", err)
	}
	s = reopen(t, dir, nil)
	checkValues(t, readAll(t, existing(t, s, "c", 0), 0), 0)
	if _, err := s.NewProducer(stream.ProducerConfig{}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if _, err := s.NewProducer(stream.ProducerConfig{}); !errors.Is(err, stream.ErrClosed) {
		t.Fatalf("NewProducer after Close: %v", err)
	}
}

// Every codec round-trips through the log: batches are stored with the
// codec in their attributes and read back transparently.
func TestProducerCompression(t *testing.T) {
	for c := stream.CompressNone; c <= stream.CompressZstd; c++ {
		t.Run(c.String(), func(t *testing.T) {
			s, dir := open(t, &stream.Options{Sync: stream.SyncNever})
			part, _ := topic(t, s, "z", 1).Partition(0)
			p := newProducer(t, s, stream.ProducerConfig{Compression: c, BatchBytes: 16 * stream.KiB, Linger: time.Minute})
			const n = 1000
			var rs results
			for i := range n {
				p.SendAsync(&stream.Record{
					Topic: "z", Key: []byte("key"), Value: value(i),
					Headers: []stream.Header{{Key: "h", Value: []byte("hv")}},
				}, rs.done())
			}
			flush(t, p)
			for i, err := range rs.errs {
				if err != nil {
					t.Fatalf("record %d: %v", i, err)
				}
			}
			recs := readAll(t, part, 0)
			checkValues(t, recs, 0)
			if len(recs) != n || string(recs[n-1].Headers[0].Value) != "hv" || string(recs[0].Key) != "key" {
				t.Fatalf("read back %d records, last %+v", len(recs), recs[len(recs)-1])
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			i := 0
			for r, err := range part.Scan(ctx, 0) {
				if err != nil {
					t.Fatal(err)
				}
				if want := value(i); !bytes.Equal(r.Value, want) {
					t.Fatalf("Scan: record %d is %q, want %q", i, r.Value, want)
				}
				if i++; i == n {
					break
				}
			}
			bs := batchesOnDisk(t, part)
			size := 0
			for _, b := range bs {
				if got := stream.Compression(b.attrs & 7); got != c {
					t.Fatalf("batch at %d stored with %v, want %v", b.base, got, c)
				}
			}
			for _, b := range bs {
				size += int(b.count)
			}
			if size != n {
				t.Fatalf("%d records in batches on disk, want %d", size, n)
			}
			// The segments pass the Kafka-format check.
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			if problems, err := stream.Verify(dir); err != nil || len(problems) != 0 {
				t.Fatalf("Verify: %v, %v", problems, err)
			}
		})
	}
}

type event struct {
	User string `json:"user"`
	N    int    `json:"n"`
}

func TestTypedProducer(t *testing.T) {
	s, _ := open(t, nil)
	part, _ := topic(t, s, "typed", 1).Partition(0)
	events := stream.NewTypedProducer(newProducer(t, s, stream.ProducerConfig{}), stream.String, stream.JSON[event]())
	ctx := context.Background()
	for i := range 3 {
		r, err := events.Send(ctx, "typed", fmt.Sprint("user-", i), event{User: fmt.Sprint("user-", i), N: i})
		if err != nil || r.Offset != int64(i) {
			t.Fatalf("Send %d: %+v, %v", i, r, err)
		}
	}
	var rs results
	events.SendAsync("typed", "user-3", event{User: "user-3", N: 3}, rs.done())
	rs.wg.Wait()
	if rs.errs[0] != nil {
		t.Fatal(rs.errs[0])
	}
	for i, r := range readAll(t, part, 0) {
		k, v, err := stream.Decode(r, stream.String, stream.JSON[event]())
		if err != nil || k != fmt.Sprint("user-", i) || v != (event{User: k, N: i}) {
			t.Fatalf("record %d decodes to %q, %+v, %v", i, k, v, err)
		}
	}
	keyless := stream.NewTypedProducer[struct{}](newProducer(t, s, stream.ProducerConfig{}), nil, stream.String)
	r, err := keyless.Send(ctx, "typed", struct{}{}, "no key")
	if err != nil || r.Key != nil {
		t.Fatalf("keyless Send: %+v, %v", r, err)
	}
	bad := stream.NewTypedProducer(newProducer(t, s, stream.ProducerConfig{}), stream.String, stream.JSON[func()]())
	if _, err := bad.Send(ctx, "typed", "k", func() {}); !errors.Is(err, stream.ErrInvalidConfig) {
		t.Fatalf("Send of a value JSON cannot encode: %v", err)
	}
}

func TestProducerAcksNone(t *testing.T) {
	s, _ := open(t, nil)
	part, _ := topic(t, s, "fire", 1).Partition(0)
	p := newProducer(t, s, stream.ProducerConfig{Acks: stream.AcksNone, Linger: time.Minute})
	var got *stream.Record
	p.SendAsync(&stream.Record{Topic: "fire", Value: value(0)}, func(r *stream.Record, err error) {
		if err != nil {
			t.Error(err)
		}
		got = r
	})
	if got == nil || got.Offset != -1 || got.Partition != 0 || got.Timestamp.IsZero() {
		t.Fatalf("AcksNone callback before SendAsync returned: %+v; want offset -1 and a timestamp", got)
	}
	if part.HighWatermark() != 0 {
		t.Fatal("record written before its linger")
	}
	flush(t, p)
	checkValues(t, readAll(t, part, 0), 0)
}

func TestProducerTopicsAndPartitions(t *testing.T) {
	s, _ := open(t, &stream.Options{AutoCreateTopics: true, DefaultTopic: stream.TopicConfig{Partitions: 3}})
	p := newProducer(t, s, stream.ProducerConfig{})
	ctx := context.Background()
	if err := p.Send(ctx, &stream.Record{Topic: "auto", Value: []byte("v")}); err != nil {
		t.Fatalf("Send to a new topic with AutoCreateTopics: %v", err)
	}
	if tp, err := s.Topic("auto"); err != nil || tp.NumPartitions() != 3 {
		t.Fatalf("auto-created topic: %v, %v; want 3 partitions", tp, err)
	}
	if err := p.Send(ctx, &stream.Record{Topic: "bad/name"}); !errors.Is(err, stream.ErrInvalidName) {
		t.Fatalf("Send to an invalid topic name: %v", err)
	}

	s2, _ := open(t, nil)
	p2 := newProducer(t, s2, stream.ProducerConfig{Partitioner: stream.ManualPartitioner})
	if err := p2.Send(ctx, &stream.Record{Topic: "missing"}); !errors.Is(err, stream.ErrUnknownTopic) {
		t.Fatalf("Send to a missing topic: %v, want ErrUnknownTopic", err)
	}
	topic(t, s2, "two", 2)
	var rs results
	p2.SendAsync(&stream.Record{Topic: "two", Partition: 1, Value: value(0)}, rs.done())
	p2.SendAsync(&stream.Record{Topic: "two", Partition: 2, Value: value(1)}, rs.done())
	p2.SendAsync(&stream.Record{Topic: "two", Partition: 1, Value: value(2)}, rs.done())
	flush(t, p2)
	if !errors.Is(rs.errs[0], stream.ErrUnknownTopic) || rs.recs[0].Partition != 2 {
		t.Fatalf("partition out of range: %v, want ErrUnknownTopic reported first, at once", rs.errs[0])
	}
	if rs.errs[1] != nil || rs.errs[2] != nil || rs.recs[2].Offset != 1 {
		t.Fatalf("the records around it: %v, %v", rs.errs[1:], rs.recs[2])
	}

	// A deleted topic fails the records sent to it, and a new topic of
	// the same name takes the next ones.
	if err := s2.DeleteTopic("two"); err != nil {
		t.Fatal(err)
	}
	if err := p2.Send(ctx, &stream.Record{Topic: "two", Partition: 0}); !errors.Is(err, stream.ErrUnknownTopic) {
		t.Fatalf("Send to a deleted topic: %v", err)
	}
	topic(t, s2, "two", 1)
	r := &stream.Record{Topic: "two", Partition: 0, Value: []byte("again")}
	if err := p2.Send(ctx, r); err != nil || r.Offset != 0 {
		t.Fatalf("Send to the recreated topic: offset %d, %v", r.Offset, err)
	}
}

// Producer IDs come from meta.db: each producer has its own, and they
// keep growing across restarts.
func TestProducerIDs(t *testing.T) {
	s, dir := open(t, nil)
	topic(t, s, "ids", 1)
	ctx := context.Background()
	send := func(s *stream.Stream) {
		p := newProducer(t, s, stream.ProducerConfig{})
		if err := p.Send(ctx, &stream.Record{Topic: "ids", Value: []byte("v")}); err != nil {
			t.Fatal(err)
		}
	}
	send(s)
	send(s)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = reopen(t, dir, nil)
	send(s)
	bs := batchesOnDisk(t, existing(t, s, "ids", 0))
	if len(bs) != 3 || !(0 < bs[0].producerID && bs[0].producerID < bs[1].producerID && bs[1].producerID < bs[2].producerID) {
		t.Fatalf("batches %+v: want three growing producer IDs", bs)
	}
	p := newProducer(t, s, stream.ProducerConfig{DisableIdempotence: true})
	if err := p.Send(ctx, &stream.Record{Topic: "ids", Value: []byte("v")}); err != nil {
		t.Fatal(err)
	}
	if bs := batchesOnDisk(t, existing(t, s, "ids", 0)); bs[3].producerID != -1 || bs[3].seq != -1 {
		t.Fatalf("batch without idempotence: %+v, want producer ID and sequence -1", bs[3])
	}
}

// Send gives up waiting when its context ends, leaving the record as it
// was.
func TestProducerSendContext(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, _ := open(t, nil)
		part, _ := topic(t, s, "ctx", 1).Partition(0)
		gate := make(chan struct{}) // the partition stalls until the end
		defer close(gate)
		stream.SetAppendFault(part, func() error { <-gate; return nil })
		p := newProducer(t, s, stream.ProducerConfig{})
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		r := &stream.Record{Topic: "ctx", Value: []byte("v")}
		if err := p.Send(ctx, r); !errors.Is(err, context.DeadlineExceeded) || r.Offset != 0 {
			t.Fatalf("Send: %v, offset %d; want DeadlineExceeded and the record untouched", err, r.Offset)
		}
		if err := p.Send(ctx, r); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Send with a done context: %v", err)
		}
	})
}
