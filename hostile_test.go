package stream_test

// Hostile arguments: every exported call, given negative, huge, nil or
// empty arguments, or called on a closed object, returns an error a
// caller can match with errors.Is — never a panic, and never an
// allocation sized by a number it was handed or read from a file.

import (
	"context"
	"encoding/binary"
	"errors"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/instream/stream"
)

// nilCtx is a nil context.Context, a hostile argument (in a variable, as
// vet and staticcheck rightly flag a literal nil).
var nilCtx context.Context

// errAny marks a case that must fail, with no particular sentinel.
var errAny = errors.New("any error")

// hostileCase is one call with hostile arguments and the error it must
// return: nil (success), errAny, or a sentinel matched with errors.Is.
type hostileCase struct {
	name string
	call func() error
	want error
}

// runHostile runs each case, turning a panic into a failure naming it.
func runHostile(t *testing.T, cases []hostileCase) {
	t.Helper()
	for _, c := range cases {
		err := func() (err error) {
			defer func() {
				if r := recover(); r != nil {
					err = nil
					t.Errorf("%s panicked: %v", c.name, r)
				}
			}()
			return c.call()
		}()
		switch {
		case c.want == nil && err != nil:
			t.Errorf("%s: %v, want success", c.name, err)
		case c.want == errAny && err == nil:
			t.Errorf("%s: success, want an error", c.name)
		case c.want != nil && c.want != errAny && !errors.Is(err, c.want):
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
	}
}

// allocatedDuring returns the bytes allocated on the heap while fn ran.
func allocatedDuring(fn func()) uint64 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	fn()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// wantRecords checks that a read returned n records at offsets from.
func wantRecords(recs []*stream.Record, from int64, n int) error {
	if len(recs) != n {
		return errors.New("wrong number of records")
	}
	for i, r := range recs {
		if r.Offset != from+int64(i) {
			return errors.New("wrong offsets")
		}
	}
	return nil
}

func TestHostilePartitionArguments(t *testing.T) {
	s, _ := open(t, &stream.Options{Sync: stream.SyncNever, MaxRecordBytes: 64 * stream.KiB})
	p := partition(t, s, "t", stream.TopicConfig{})
	appendN(t, p, 0, 10)
	ctx := context.Background()
	canceled, cancel := context.WithCancel(ctx)
	cancel()
	each := func(*stream.Record) error { return nil }
	var empty stream.Batch
	runHostile(t, []hostileCase{
		{"Read(0, MaxInt)", func() error {
			recs, err := p.Read(0, math.MaxInt)
			if err != nil {
				return err
			}
			return wantRecords(recs, 0, 10)
		}, nil},
		{"Read(0, MaxInt-1)", func() error { return second(p.Read(0, math.MaxInt-1)) }, nil},
		{"Read(3, 0)", func() error {
			recs, err := p.Read(3, 0)
			if err == nil && (len(recs) == 0 || recs[0].Offset != 3) {
				return errors.New("no record at 3")
			}
			return err
		}, nil},
		{"Read(0, -1)", func() error { return second(p.Read(0, -1)) }, stream.ErrInvalidConfig},
		{"Read(0, MinInt)", func() error { return second(p.Read(0, math.MinInt)) }, stream.ErrInvalidConfig},
		{"Read(-1, 1)", func() error { return second(p.Read(-1, 1)) }, stream.ErrOffsetOutOfRange},
		{"Read(MinInt64, 1)", func() error { return second(p.Read(math.MinInt64, 1)) }, stream.ErrOffsetOutOfRange},
		{"Read(MaxInt64, 1)", func() error { return second(p.Read(math.MaxInt64, 1)) }, stream.ErrOffsetOutOfRange},
		{"Read(MaxInt64, MaxInt)", func() error { return second(p.Read(math.MaxInt64, math.MaxInt)) }, stream.ErrOffsetOutOfRange},
		{"Read(hw+1, 1)", func() error { return second(p.Read(11, 1)) }, stream.ErrOffsetOutOfRange},
		{"Append(nil)", func() error { return second(p.Append(nil)) }, stream.ErrInvalidConfig},
		{"Append(record, nil)", func() error { return second(p.Append(&stream.Record{}, nil)) }, stream.ErrInvalidConfig},
		{"Append() (no records)", func() error { return second(p.Append()) }, nil},
		{"Append(too large)", func() error {
			return second(p.Append(&stream.Record{Value: make([]byte, 64*stream.KiB)}))
		}, stream.ErrRecordTooLarge},
		{"Append(too many headers)", func() error {
			return second(p.Append(&stream.Record{Headers: make([]stream.Header, 70000)}))
		}, stream.ErrRecordTooLarge},
		{"AppendBatch(nil)", func() error { return second(p.AppendBatch(nil)) }, stream.ErrInvalidConfig},
		{"AppendBatch(empty)", func() error { return second(p.AppendBatch(&empty)) }, nil},
		{"AppendBatch(AddRecord(nil))", func() error {
			var b stream.Batch
			b.Add(nil, []byte("x"))
			b.AddRecord(nil)
			return second(p.AppendBatch(&b))
		}, stream.ErrInvalidConfig},
		{"nothing written by the failed appends", func() error {
			if p.HighWatermark() != 10 {
				return errors.New("high watermark moved")
			}
			return nil
		}, nil},
		{"ForEach(0, -1, nil)", func() error { return p.ForEach(0, -1, nil) }, stream.ErrInvalidConfig},
		{"ForEach(-5, -1)", func() error { return p.ForEach(-5, -1, each) }, stream.ErrOffsetOutOfRange},
		{"ForEach(MinInt64, MaxInt64)", func() error { return p.ForEach(math.MinInt64, math.MaxInt64, each) }, stream.ErrOffsetOutOfRange},
		{"ForEach(0, MaxInt64)", func() error { return p.ForEach(0, math.MaxInt64, each) }, nil},
		{"ForEach(MaxInt64, -1)", func() error { return p.ForEach(math.MaxInt64, -1, each) }, stream.ErrOffsetOutOfRange},
		{"ForEach(hw+1, hw+1)", func() error { return p.ForEach(11, 11, each) }, stream.ErrOffsetOutOfRange},
		{"Wait(MinInt64)", func() error { return p.Wait(ctx, math.MinInt64) }, nil},
		{"Wait(MaxInt64) canceled", func() error { return p.Wait(canceled, math.MaxInt64) }, context.Canceled},
		{"Wait(nil ctx)", func() error { return p.Wait(nilCtx, math.MaxInt64) }, stream.ErrInvalidConfig},
		{"Scan(nil ctx)", func() error {
			for _, err := range p.Scan(nilCtx, 10) {
				return err
			}
			return nil
		}, stream.ErrInvalidConfig},
		{"Scan(MinInt64)", func() error {
			for _, err := range p.Scan(ctx, math.MinInt64) {
				return err
			}
			return nil
		}, stream.ErrOffsetOutOfRange},
		{"OffsetForTime(zero time)", func() error {
			off, err := p.OffsetForTime(time.Time{})
			if err == nil && off != 0 {
				return errors.New("not the first offset")
			}
			return err
		}, nil},
		{"OffsetForTime(far future)", func() error {
			off, err := p.OffsetForTime(time.Unix(1<<62, 0))
			if err == nil && off != p.HighWatermark() {
				return errors.New("not the high watermark")
			}
			return err
		}, nil},
		{"OffsetForTime(far past)", func() error {
			off, err := p.OffsetForTime(time.Unix(-1<<62, 0))
			if err == nil && off != 0 {
				return errors.New("not the first offset")
			}
			return err
		}, nil},
	})
}

func TestHostileBatchArguments(t *testing.T) {
	var nilBatch *stream.Batch
	runHostile(t, []hostileCase{
		{"nil Batch Len", func() error {
			if nilBatch.Len() != 0 || nilBatch.Size() != 0 {
				return errors.New("not empty")
			}
			return nil
		}, nil},
		{"nil Batch Reset", func() error { nilBatch.Reset(); return nil }, nil},
		{"AddRecord(nil) then Reset", func() error {
			var b stream.Batch
			b.AddRecord(nil)
			b.Reset()
			b.Add(nil, []byte("x"))
			if b.Len() != 1 {
				return errors.New("Reset did not clear")
			}
			return nil
		}, nil},
	})
}

func TestHostileStreamArguments(t *testing.T) {
	s, dir := open(t, nil)
	partition(t, s, "t", stream.TopicConfig{})
	runHostile(t, []hostileCase{
		{"Open(\"\")", func() error { return second(stream.Open("", nil)) }, stream.ErrInvalidConfig},
		{"Open(open dir)", func() error { return second(stream.Open(dir, nil)) }, errAny},
		{"Open(SegmentBytes -1)", func() error {
			return second(stream.Open(t.TempDir(), &stream.Options{SegmentBytes: -1}))
		}, stream.ErrInvalidConfig},
		{"Open(SegmentBytes MaxInt64)", func() error {
			return second(stream.Open(t.TempDir(), &stream.Options{SegmentBytes: math.MaxInt64}))
		}, stream.ErrInvalidConfig},
		{"Open(MaxRecordBytes MaxInt64)", func() error {
			return second(stream.Open(t.TempDir(), &stream.Options{MaxRecordBytes: math.MaxInt64}))
		}, stream.ErrInvalidConfig},
		{"Open(IndexIntervalBytes MaxInt64)", func() error {
			return second(stream.Open(t.TempDir(), &stream.Options{IndexIntervalBytes: math.MaxInt64}))
		}, stream.ErrInvalidConfig},
		{"Open(Sync 99)", func() error {
			return second(stream.Open(t.TempDir(), &stream.Options{Sync: 99}))
		}, stream.ErrInvalidConfig},
		{"CreateTopic(\"\")", func() error { return second(s.CreateTopic("", stream.TopicConfig{})) }, stream.ErrInvalidName},
		{"CreateTopic(Partitions MaxInt)", func() error {
			return second(s.CreateTopic("u", stream.TopicConfig{Partitions: math.MaxInt}))
		}, stream.ErrInvalidConfig},
		{"CreateTopic(Partitions -1)", func() error {
			return second(s.CreateTopic("u", stream.TopicConfig{Partitions: -1}))
		}, stream.ErrInvalidConfig},
		{"CreateTopic(SegmentBytes MaxInt64)", func() error {
			return second(s.CreateTopic("u", stream.TopicConfig{SegmentBytes: math.MaxInt64}))
		}, stream.ErrInvalidConfig},
		{"CreateTopic(RetentionBytes -1)", func() error {
			return second(s.CreateTopic("u", stream.TopicConfig{RetentionBytes: -1}))
		}, stream.ErrInvalidConfig},
		{"Topic(\"\")", func() error { return second(s.Topic("")) }, stream.ErrUnknownTopic},
		{"Topic(\"../x\")", func() error { return second(s.Topic("../x")) }, stream.ErrUnknownTopic},
		{"DeleteTopic(\"\")", func() error { return s.DeleteTopic("") }, stream.ErrUnknownTopic},
		{"Topic.Partition(-1)", func() error {
			tp, err := s.Topic("t")
			if err != nil {
				return err
			}
			return second(tp.Partition(-1))
		}, stream.ErrUnknownTopic},
		{"Topic.Partition(MaxInt32)", func() error {
			tp, err := s.Topic("t")
			if err != nil {
				return err
			}
			return second(tp.Partition(math.MaxInt32))
		}, stream.ErrUnknownTopic},
		{"ConsumerGroup(\"\")", func() error { return second(s.ConsumerGroup("", stream.GroupConfig{Topics: []string{"t"}})) }, stream.ErrInvalidName},
		{"ConsumerGroup(topic \"\")", func() error {
			return second(s.ConsumerGroup("g", stream.GroupConfig{Topics: []string{""}}))
		}, errAny},
		{"ConsumerGroup(SessionTimeout -1)", func() error {
			return second(s.ConsumerGroup("g", stream.GroupConfig{Topics: []string{"t"}, SessionTimeout: -1}))
		}, stream.ErrInvalidConfig},
		{"NewConsumer(MaxPollRecords -1)", func() error {
			return second(s.NewConsumer(stream.ConsumerConfig{MaxPollRecords: -1}))
		}, stream.ErrInvalidConfig},
		{"NewProducer(BatchBytes -1)", func() error {
			return second(s.NewProducer(stream.ProducerConfig{BatchBytes: -1}))
		}, stream.ErrInvalidConfig},
		{"NewProducer(Compression 99)", func() error {
			return second(s.NewProducer(stream.ProducerConfig{Compression: 99}))
		}, stream.ErrInvalidConfig},
		{"ByteSize(-1 MiB)", func() error { var b stream.ByteSize; return b.UnmarshalText([]byte("-1 MiB")) }, stream.ErrInvalidConfig},
		{"ByteSize(huge)", func() error { var b stream.ByteSize; return b.UnmarshalText([]byte("99999999 EiB")) }, stream.ErrInvalidConfig},
		{"ByteSize(\"\")", func() error { var b stream.ByteSize; return b.UnmarshalText(nil) }, stream.ErrInvalidConfig},
		{"Compression(bogus)", func() error { var c stream.Compression; return c.UnmarshalText([]byte("bogus")) }, errAny},
		{"Compression(99).MarshalText", func() error { return second(stream.Compression(99).MarshalText()) }, errAny},
		{"String of out-of-range values", func() error {
			_ = stream.Compression(99).String() + stream.Acks(99).String() + stream.SyncPolicy(99).String() +
				stream.StartOffset(99).String() + stream.ByteSize(math.MinInt64).String() + (&stream.CorruptError{}).Error()
			return nil
		}, nil},
		{"Stats and Groups after Close", func() error {
			s, err := stream.Open(t.TempDir(), nil)
			if err != nil {
				return err
			}
			s.Close()
			_ = s.Stats()
			_ = s.Groups()
			return s.DeleteGroup("g")
		}, stream.ErrClosed},
	})
}

func TestHostileConsumerArguments(t *testing.T) {
	s, _ := open(t, &stream.Options{Sync: stream.SyncNever})
	p := partition(t, s, "t", stream.TopicConfig{})
	appendN(t, p, 0, 10)
	ctx := context.Background()
	tp := stream.TopicPartition{Topic: "t"}
	// A huge FetchMaxBytes and FetchMinBytes: the read sizes derived from
	// them must not overflow.
	huge, err := s.NewConsumer(stream.ConsumerConfig{
		FetchMinBytes: math.MaxInt, FetchMaxBytes: math.MaxInt64, FetchMaxWait: time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer huge.Close()
	c, err := s.NewConsumer(stream.ConsumerConfig{FetchMaxWait: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	closed, err := s.NewConsumer(stream.ConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	closed.Close()
	runHostile(t, []hostileCase{
		{"Assign(huge)", func() error { return huge.Assign(tp) }, nil},
		{"Poll with huge fetch sizes", func() error {
			recs, err := huge.Poll(ctx)
			if err != nil {
				return err
			}
			return wantRecords(recs, 0, 10)
		}, nil},
		{"Assign(unknown topic)", func() error { return c.Assign(stream.TopicPartition{Topic: "nope"}) }, stream.ErrUnknownTopic},
		{"Assign(partition -1)", func() error { return c.Assign(stream.TopicPartition{Topic: "t", Partition: -1}) }, stream.ErrUnknownTopic},
		{"Assign(tp, tp)", func() error { return c.Assign(tp, tp) }, nil},
		{"Seek(-1)", func() error { return c.Seek(tp, -1) }, stream.ErrOffsetOutOfRange},
		{"Seek(MaxInt64)", func() error { return c.Seek(tp, math.MaxInt64) }, stream.ErrOffsetOutOfRange},
		{"Seek(unassigned)", func() error { return c.Seek(stream.TopicPartition{Topic: "t", Partition: 5}, 0) }, errAny},
		{"Position(unassigned)", func() error { return second(c.Position(stream.TopicPartition{Topic: "x"})) }, errAny},
		{"Run(nil handler)", func() error { return c.Run(ctx, nil) }, stream.ErrInvalidConfig},
		{"Poll(nil ctx)", func() error { return second(c.Poll(nilCtx)) }, stream.ErrInvalidConfig},
		{"Commit (no group)", func() error { return c.Commit(ctx) }, errAny},
		{"CommitOffsets(nil) (no group)", func() error { return c.CommitOffsets(ctx, nil) }, errAny},
		{"Poll closed", func() error { return second(closed.Poll(ctx)) }, stream.ErrClosed},
		{"Assign closed", func() error { return closed.Assign(tp) }, stream.ErrClosed},
		{"Seek closed", func() error { return closed.Seek(tp, 0) }, stream.ErrClosed},
		{"Close twice", func() error { return closed.Close() }, stream.ErrClosed},
	})
}

func TestHostileGroupArguments(t *testing.T) {
	s, _ := open(t, &stream.Options{Sync: stream.SyncNever})
	p := partition(t, s, "t", stream.TopicConfig{})
	appendN(t, p, 0, 10)
	ctx := context.Background()
	tp := stream.TopicPartition{Topic: "t"}
	g, err := s.ConsumerGroup("g", stream.GroupConfig{Topics: []string{"t"}, StartAt: stream.StartEarliest})
	if err != nil {
		t.Fatal(err)
	}
	empty, err := s.ConsumerGroup("e", stream.GroupConfig{Topics: []string{"t"}})
	if err != nil {
		t.Fatal(err)
	}
	m, err := g.Join(ctx, stream.ConsumerConfig{FetchMaxWait: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if _, err := m.Poll(ctx); err != nil {
		t.Fatal(err)
	}
	runHostile(t, []hostileCase{
		{"Join(MaxPollRecords -1)", func() error { return second(g.Join(ctx, stream.ConsumerConfig{MaxPollRecords: -1})) }, stream.ErrInvalidConfig},
		{"Join(nil ctx)", func() error { return second(g.Join(nilCtx, stream.ConsumerConfig{})) }, stream.ErrInvalidConfig},
		{"CommitOffsets(-1)", func() error { return m.CommitOffsets(ctx, map[stream.TopicPartition]int64{tp: -1}) }, stream.ErrOffsetOutOfRange},
		{"CommitOffsets(MinInt64)", func() error {
			return m.CommitOffsets(ctx, map[stream.TopicPartition]int64{tp: math.MinInt64})
		}, stream.ErrOffsetOutOfRange},
		{"CommitOffsets(nil)", func() error { return m.CommitOffsets(ctx, nil) }, nil},
		{"CommitOffsets(not owned)", func() error {
			return m.CommitOffsets(ctx, map[stream.TopicPartition]int64{{Topic: "x"}: 1})
		}, stream.ErrFenced},
		{"CommitWithMetadata(-1)", func() error {
			return m.CommitWithMetadata(ctx, map[stream.TopicPartition]stream.OffsetAndMetadata{tp: {Offset: -1}})
		}, stream.ErrOffsetOutOfRange},
		{"Commit(nil ctx)", func() error { return m.Commit(nilCtx) }, stream.ErrInvalidConfig},
		{"Lag(nil ctx)", func() error { return second(g.Lag(nilCtx)) }, stream.ErrInvalidConfig},
		{"Committed(nil ctx)", func() error { return second(g.Committed(nilCtx)) }, stream.ErrInvalidConfig},
		{"ResetOffsets(-1)", func() error { return empty.ResetOffsets(ctx, map[stream.TopicPartition]int64{tp: -1}) }, stream.ErrOffsetOutOfRange},
		{"ResetOffsets(MaxInt64)", func() error {
			return empty.ResetOffsets(ctx, map[stream.TopicPartition]int64{tp: math.MaxInt64})
		}, stream.ErrOffsetOutOfRange},
		{"ResetOffsets(unknown)", func() error {
			return empty.ResetOffsets(ctx, map[stream.TopicPartition]int64{{Topic: "x", Partition: -1}: 0})
		}, stream.ErrUnknownTopic},
		{"ResetOffsets(nil)", func() error { return empty.ResetOffsets(ctx, nil) }, nil},
		{"ResetOffsets(nil ctx)", func() error { return empty.ResetOffsets(nilCtx, nil) }, stream.ErrInvalidConfig},
		{"ResetOffsetsToTime(zero)", func() error { return empty.ResetOffsetsToTime(ctx, time.Time{}) }, nil},
		{"ResetOffsetsToTime(far future)", func() error { return empty.ResetOffsetsToTime(ctx, time.Unix(1<<62, 0)) }, nil},
		{"DeleteGroup(\"\")", func() error { return s.DeleteGroup("") }, errAny},
	})
}

func TestHostileProducerArguments(t *testing.T) {
	s, _ := open(t, &stream.Options{Sync: stream.SyncNever, MaxRecordBytes: 64 * stream.KiB})
	partition(t, s, "t", stream.TopicConfig{})
	ctx := context.Background()
	p, err := s.NewProducer(stream.ProducerConfig{Linger: stream.NoLinger})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	var nilTyped *stream.TypedProducer[string, string]
	runHostile(t, []hostileCase{
		{"Send(nil)", func() error { return p.Send(ctx, nil) }, stream.ErrInvalidConfig},
		{"Send(nil ctx)", func() error { return p.Send(nilCtx, &stream.Record{Topic: "t"}) }, stream.ErrInvalidConfig},
		{"Send(topic \"\")", func() error { return p.Send(ctx, &stream.Record{}) }, stream.ErrUnknownTopic},
		{"Send(too large)", func() error {
			return p.Send(ctx, &stream.Record{Topic: "t", Value: make([]byte, 64*stream.KiB)})
		}, stream.ErrRecordTooLarge},
		{"SendAsync(nil, nil)", func() error { p.SendAsync(nil, nil); return nil }, nil},
		{"SendAsync(nil, done)", func() error {
			var got error
			p.SendAsync(nil, func(_ *stream.Record, err error) { got = err })
			return got
		}, stream.ErrInvalidConfig},
		{"Flush(nil ctx)", func() error { return p.Flush(nilCtx) }, stream.ErrInvalidConfig},
		{"NewTypedProducer(nil producer)", func() error {
			return second(stream.NewTypedProducer(nil, stream.String, stream.String).Send(ctx, "t", "k", "v"))
		}, stream.ErrInvalidConfig},
		{"NewTypedProducer(nil codecs)", func() error {
			return second(stream.NewTypedProducer[string, string](p, nil, nil).Send(ctx, "t", "k", "v"))
		}, stream.ErrInvalidConfig},
		{"nil TypedProducer Record", func() error { return second(nilTyped.Record("t", "k", "v")) }, stream.ErrInvalidConfig},
		{"Decode(nil record)", func() error {
			_, _, err := stream.Decode(nil, stream.String, stream.String)
			return err
		}, stream.ErrInvalidConfig},
		{"Decode(nil codecs)", func() error {
			_, _, err := stream.Decode[string, string](&stream.Record{}, nil, nil)
			return err
		}, stream.ErrInvalidConfig},
		{"JSON Decode(garbage)", func() error { return second(stream.JSON[int]().Decode([]byte("{"))) }, errAny},
		{"JSON Decode(nil)", func() error { return second(stream.JSON[int]().Decode(nil)) }, nil},
		{"JSON Encode(chan)", func() error { return second(stream.JSON[chan int]().Encode(make(chan int))) }, errAny},
	})
}

// hugeHeader is a batch header whose length field claims 2 GiB, at base
// offset base: a file must not make a check allocate what it claims.
func hugeHeader(base int64) []byte {
	h := make([]byte, 61)
	binary.BigEndian.PutUint64(h[0:], uint64(base))
	binary.BigEndian.PutUint32(h[8:], math.MaxInt32)
	h[16] = 2
	binary.BigEndian.PutUint32(h[57:], 1) // one record
	return h
}

func TestHostileSegmentFiles(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "00000000000000000000.log")
	if err := os.WriteFile(path, hugeHeader(0), 0o644); err != nil {
		t.Fatal(err)
	}
	sf, err := stream.OpenSegmentFile(path)
	if err != nil {
		t.Fatal(err)
	}
	defer sf.Close()
	const bound = 16 << 20
	runHostile(t, []hostileCase{
		{"OpenSegmentFile(\"\")", func() error { return second(stream.OpenSegmentFile("")) }, errAny},
		{"OpenSegmentFile(dir) Batches", func() error {
			d, err := stream.OpenSegmentFile(dir)
			if err != nil {
				return err
			}
			defer d.Close()
			for _, err := range d.Batches() {
				return err
			}
			return nil
		}, errAny},
		{"Batches of a 2 GiB header", func() error {
			var got error
			if n := allocatedDuring(func() {
				for b, err := range sf.Batches() {
					got = errors.Join(err, b.Err)
				}
			}); n > bound {
				return errors.New("allocated what the header claims")
			}
			return got
		}, stream.ErrCorrupt},
		{"Records(Size 2 GiB)", func() error {
			var got error
			if n := allocatedDuring(func() {
				_, got = sf.Records(stream.SegmentBatch{Size: math.MaxInt32 + 12})
			}); n > bound {
				return errors.New("allocated what the batch claims")
			}
			return got
		}, errAny},
		{"Records(Size MaxInt64)", func() error { return second(sf.Records(stream.SegmentBatch{Size: math.MaxInt64})) }, errAny},
		{"Records(Size -1)", func() error { return second(sf.Records(stream.SegmentBatch{Size: -1})) }, errAny},
		{"Records(Position -1)", func() error { return second(sf.Records(stream.SegmentBatch{Position: -1, Size: 61})) }, errAny},
		{"Records(zero)", func() error { return second(sf.Records(stream.SegmentBatch{})) }, errAny},
		{"Verify(\"\")", func() error { return second(stream.Verify("")) }, errAny},
		{"Verify(missing)", func() error { return second(stream.Verify(filepath.Join(dir, "missing"))) }, errAny},
	})
}

// TestOpenDoesNotAllocateWhatAnIndexedHeaderClaims: recovery checks the
// batch an index entry of the active segment points at; a header there
// claiming 2 GiB must not make it allocate 2 GiB.
func TestOpenDoesNotAllocateWhatAnIndexedHeaderClaims(t *testing.T) {
	s, dir := open(t, &stream.Options{Sync: stream.SyncNever})
	p := partition(t, s, "t", stream.TopicConfig{})
	appendN(t, p, 0, 1)
	pdir := p.Dir()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(pdir, "00000000000000000000.log")
	fi, err := os.Stat(logPath)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(logPath, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(hugeHeader(1)); err != nil {
		t.Fatal(err)
	}
	f.Close()
	entry := make([]byte, 8)
	binary.BigEndian.PutUint32(entry[0:], 1)
	binary.BigEndian.PutUint32(entry[4:], uint32(fi.Size()))
	if err := os.WriteFile(filepath.Join(pdir, "00000000000000000000.index"), entry, 0o644); err != nil {
		t.Fatal(err)
	}
	var s2 *stream.Stream
	if n := allocatedDuring(func() {
		s2, err = stream.Open(dir, &stream.Options{Sync: stream.SyncNever})
	}); n > 64<<20 {
		t.Errorf("Open allocated %d bytes", n)
	}
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	p2 := existing(t, s2, "t", 0)
	if hw := p2.HighWatermark(); hw != 1 {
		t.Errorf("high watermark %d after recovery, want 1", hw)
	}
}
