package stream_test

// FuzzAPIModel drives the public API with a sequence of operations read
// from the fuzzer's bytes — create and delete topics, Append, AppendBatch,
// Read, Scan, ForEach, OffsetForTime, Sync, Close and reopen — against a
// plain in-memory model (a slice of records per partition), comparing the
// two after each step, in the manner of Pebble's metamorphic tests and
// bbolt's simulation test. TestAPIModel runs it on seeded random
// operations in every `go test`.
//
// Invariants:
//
//  1. Nothing panics; every call returns what the model says: records,
//     offsets, or an error matching the model's sentinel.
//  2. After each step, Topics and every partition's HighWatermark and
//     StartOffset match the model (retention is off).
//  3. A read returns records exactly at the offsets asked, equal to the
//     model's (key, value, headers, timestamp), at least one below the
//     high watermark, and no more than maxBytes allows.
//  4. After Close and Open, every partition reads back whole.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/instream/stream"
)

// modelTopics are the names the operations use: few, so that creates,
// deletes and appends meet.
var modelTopics = []string{"a", "b", "c"}

// modelMaxRecordBytes is small enough that an operation can exceed it.
const modelMaxRecordBytes = 2 * stream.KiB

func modelOptions() *stream.Options {
	return &stream.Options{
		Sync:               stream.SyncNever,
		SegmentBytes:       stream.KiB, // rolls every few appends
		IndexIntervalBytes: 100,        // sparse index entries a few batches apart
		MaxRecordBytes:     modelMaxRecordBytes,
	}
}

// apiModel is the model and the engine side by side.
type apiModel struct {
	t      testing.TB
	dir    string
	s      *stream.Stream
	topics map[string][][]*stream.Record // the model: records per partition
	clock  int64                         // ms; record timestamps never go back
	ops    []string                      // the operations so far, for failures
}

// byteSource hands out the fuzzer's bytes as small numbers; zeros once
// they run out.
type byteSource struct{ b []byte }

func (s *byteSource) next() byte {
	if len(s.b) == 0 {
		return 0
	}
	c := s.b[0]
	s.b = s.b[1:]
	return c
}

func (s *byteSource) intn(n int) int { return int(s.next()) % n }

func (m *apiModel) fatalf(format string, args ...any) {
	m.t.Helper()
	m.t.Fatalf("after %d operations (last: %s):\n%s\n%s", len(m.ops), m.ops[len(m.ops)-1],
		fmt.Sprintf(format, args...), opsTail(m.ops))
}

func opsTail(ops []string) string {
	return fmt.Sprint(ops[max(0, len(ops)-20):])
}

func (m *apiModel) open() {
	s, err := stream.Open(m.dir, modelOptions())
	if err != nil {
		m.fatalf("Open: %v", err)
	}
	m.s = s
}

// modelDir returns a temporary directory in memory (/dev/shm) when there
// is one: the model checks behaviour, not the disk, and a run closes and
// reopens the stream often, which fsyncs.
func modelDir(t testing.TB) string {
	if fi, err := os.Stat("/dev/shm"); err != nil || !fi.IsDir() {
		return t.TempDir()
	}
	dir, err := os.MkdirTemp("/dev/shm", "stream-model-")
	if err != nil {
		return t.TempDir()
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// runAPIModel runs the operations encoded in data.
func runAPIModel(t testing.TB, data []byte) {
	m := &apiModel{t: t, dir: modelDir(t), topics: map[string][][]*stream.Record{}, clock: 1_700_000_000_000}
	m.ops = append(m.ops, "open")
	m.open()
	defer func() { m.s.Close() }()
	src := &byteSource{b: data}
	for step := 0; len(src.b) > 0 && step < 2000; step++ {
		m.step(src)
		m.check()
	}
	m.ops = append(m.ops, "final close and reopen")
	m.reopen()
}

func (m *apiModel) step(src *byteSource) {
	name := modelTopics[src.intn(len(modelTopics))]
	switch op := src.intn(20); {
	case op == 0:
		m.create(name, 1+src.intn(3))
	case op == 1 && src.intn(8) == 0: // rarely: topics live long enough to grow
		m.ops = append(m.ops, "delete "+name)
		err := m.s.DeleteTopic(name)
		m.wantErr("DeleteTopic", err, m.topicErr(name))
		delete(m.topics, name)
	case op <= 9:
		if _, ok := m.topics[name]; !ok && src.intn(4) != 0 {
			m.create(name, 1+src.intn(3)) // mostly, appends find their topic
		}
		m.append(name, src, op <= 5)
	case op <= 12:
		m.read(name, src)
	case op == 13:
		m.scan(name, src)
	case op == 14:
		m.forEach(name, src)
	case op == 15, op == 16:
		m.offsetForTime(name, src)
	case op == 17:
		m.ops = append(m.ops, "sync")
		if err := m.s.Sync(); err != nil {
			m.fatalf("Sync: %v", err)
		}
	case op == 18:
		m.ops = append(m.ops, "close and reopen")
		m.reopen()
	}
}

func (m *apiModel) topicErr(name string) error {
	if _, ok := m.topics[name]; !ok {
		return stream.ErrUnknownTopic
	}
	return nil
}

// wantErr checks err against the model's: nil or a sentinel.
func (m *apiModel) wantErr(call string, err, want error) {
	m.t.Helper()
	if want == nil && err != nil || want != nil && !errors.Is(err, want) {
		m.fatalf("%s: %v, want %v", call, err, want)
	}
}

func (m *apiModel) create(name string, partitions int) {
	m.ops = append(m.ops, fmt.Sprintf("create %s/%d", name, partitions))
	_, err := m.s.CreateTopic(name, stream.TopicConfig{Partitions: partitions, Retention: -1})
	if _, ok := m.topics[name]; ok {
		m.wantErr("CreateTopic", err, stream.ErrTopicExists)
		return
	}
	m.wantErr("CreateTopic", err, nil)
	m.topics[name] = make([][]*stream.Record, partitions)
}

// partition returns the engine's partition i of name, and the model's
// records of it; nil when the model has no such topic (after checking the
// engine agrees).
func (m *apiModel) partition(name string, src *byteSource) (*stream.Partition, int, []*stream.Record) {
	m.t.Helper()
	tp, err := m.s.Topic(name)
	parts, ok := m.topics[name]
	if !ok {
		m.wantErr("Topic", err, stream.ErrUnknownTopic)
		return nil, 0, nil
	}
	m.wantErr("Topic", err, nil)
	i := src.intn(len(parts))
	p, err := tp.Partition(int32(i))
	if err != nil {
		m.fatalf("Partition(%d): %v", i, err)
	}
	return p, i, parts[i]
}

// newRecord makes a record from the source: key nil or short, a value of
// 0 to 63 bytes, sometimes a header, and a timestamp that does not go
// back.
func (m *apiModel) newRecord(src *byteSource) *stream.Record {
	r := &stream.Record{}
	shape := src.next()
	if shape&1 != 0 {
		r.Key = []byte{'k', src.next()}
	}
	r.Value = bytes.Repeat([]byte{src.next()}, int(shape>>2)) // 0..63 bytes
	if shape&2 != 0 {
		r.Headers = []stream.Header{{Key: "h", Value: []byte{src.next()}}}
	}
	m.clock += int64(src.intn(3))
	r.Timestamp = time.UnixMilli(m.clock)
	return r
}

func (m *apiModel) append(name string, src *byteSource, asBatch bool) {
	n := src.intn(6)
	recs := make([]*stream.Record, n)
	for i := range recs {
		recs[i] = m.newRecord(src)
	}
	want := error(nil)
	switch src.intn(8) {
	case 0:
		if n > 0 {
			recs[src.intn(n)] = nil // a hostile argument: nothing is written
			want = stream.ErrInvalidConfig
		}
	case 1:
		recs = append(recs, &stream.Record{Value: make([]byte, modelMaxRecordBytes), Timestamp: time.UnixMilli(m.clock)})
		want = stream.ErrRecordTooLarge
	}
	m.ops = append(m.ops, fmt.Sprintf("append %s %d records (batch %v, want %v)", name, len(recs), asBatch, want))
	p, i, model := m.partition(name, src)
	if p == nil {
		return
	}
	var base int64
	var err error
	if asBatch {
		var b stream.Batch
		for _, r := range recs {
			b.AddRecord(r)
		}
		base, err = p.AppendBatch(&b)
	} else {
		base, err = p.Append(recs...)
	}
	m.wantErr("append", err, want)
	if err != nil {
		return
	}
	if base != int64(len(model)) {
		m.fatalf("append at %d, want %d", base, len(model))
	}
	for _, r := range recs {
		c := *r
		c.Topic, c.Partition, c.Offset = name, int32(i), int64(len(model))
		model = append(model, &c)
	}
	m.topics[name][i] = model
}

// offsetArg picks an offset around [0, hw]: inside, at the ends, past
// them.
func offsetArg(src *byteSource, hw int) int64 {
	switch src.intn(8) {
	case 0:
		return -1
	case 1:
		return int64(hw) + 1
	case 2:
		return math.MaxInt64
	case 3:
		return int64(hw)
	}
	return int64(src.intn(hw + 1))
}

var maxBytesArgs = []int{-1, 0, 1, 30, 200, 5000, math.MaxInt}

func (m *apiModel) read(name string, src *byteSource) {
	p, i, model := m.partition(name, src)
	if p == nil {
		m.ops = append(m.ops, "read of missing "+name)
		return
	}
	off := offsetArg(src, len(model))
	maxBytes := maxBytesArgs[src.intn(len(maxBytesArgs))]
	m.ops = append(m.ops, fmt.Sprintf("read %s-%d at %d, %d bytes", name, i, off, maxBytes))
	recs, err := p.Read(off, maxBytes)
	switch {
	case maxBytes < 0:
		m.wantErr("Read", err, stream.ErrInvalidConfig)
		return
	case off < 0 || off > int64(len(model)):
		m.wantErr("Read", err, stream.ErrOffsetOutOfRange)
		return
	}
	m.wantErr("Read", err, nil)
	if off < int64(len(model)) && len(recs) == 0 {
		m.fatalf("Read(%d) below the high watermark %d returned nothing", off, len(model))
	}
	m.compare("Read", recs, model, off)
	// Every record but the last one returned fits in maxBytes.
	size := 0
	for _, r := range recs[:max(len(recs)-1, 0)] {
		size += len(r.Key) + len(r.Value)
	}
	if size > maxBytes {
		m.fatalf("Read(%d, %d) returned %d records holding %d bytes before the last", off, maxBytes, len(recs), size)
	}
}

// compare checks recs against the model's records from offset from on.
func (m *apiModel) compare(call string, recs, model []*stream.Record, from int64) {
	m.t.Helper()
	if from+int64(len(recs)) > int64(len(model)) {
		m.fatalf("%s from %d: %d records, the model has %d", call, from, len(recs), len(model))
	}
	for j, r := range recs {
		w := model[from+int64(j)]
		if r.Offset != w.Offset || r.Topic != w.Topic || r.Partition != w.Partition ||
			!bytes.Equal(r.Key, w.Key) || (r.Key == nil) != (w.Key == nil) || !bytes.Equal(r.Value, w.Value) ||
			!r.Timestamp.Equal(w.Timestamp) || !slices.EqualFunc(r.Headers, w.Headers, func(a, b stream.Header) bool {
			return a.Key == b.Key && bytes.Equal(a.Value, b.Value)
		}) {
			m.fatalf("%s from %d: record %d is %+v, want %+v", call, from, j, r, w)
		}
	}
}

func (m *apiModel) scan(name string, src *byteSource) {
	p, i, model := m.partition(name, src)
	if p == nil || len(model) == 0 {
		m.ops = append(m.ops, "scan of empty or missing "+name)
		return
	}
	from := int64(src.intn(len(model)))
	m.ops = append(m.ops, fmt.Sprintf("scan %s-%d from %d", name, i, from))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var got []*stream.Record
	for r, err := range p.Scan(ctx, from) {
		if err != nil {
			m.fatalf("Scan(%d): %v", from, err)
		}
		got = append(got, r)
		if r.Offset == int64(len(model))-1 {
			break // at the high watermark Scan would wait for more
		}
	}
	if len(got) != len(model)-int(from) {
		m.fatalf("Scan(%d): %d records, want %d", from, len(got), len(model)-int(from))
	}
	m.compare("Scan", got, model, from)
}

func (m *apiModel) forEach(name string, src *byteSource) {
	p, i, model := m.partition(name, src)
	if p == nil {
		m.ops = append(m.ops, "ForEach of missing "+name)
		return
	}
	from, to := offsetArg(src, len(model)), offsetArg(src, len(model))
	if src.intn(3) == 0 {
		to = -1
	}
	m.ops = append(m.ops, fmt.Sprintf("ForEach %s-%d [%d, %d)", name, i, from, to))
	var got []*stream.Record
	err := p.ForEach(from, to, func(r *stream.Record) error {
		c := *r
		c.Key, c.Value = bytes.Clone(r.Key), bytes.Clone(r.Value)
		c.Headers = slices.Clone(r.Headers)
		for i := range c.Headers {
			c.Headers[i].Value = bytes.Clone(c.Headers[i].Value)
		}
		got = append(got, &c)
		return nil
	})
	end := to
	if to < 0 {
		end = int64(len(model))
	}
	switch {
	case from < 0 || from > int64(len(model)) || from > end:
		m.wantErr("ForEach", err, stream.ErrOffsetOutOfRange)
		return
	}
	m.wantErr("ForEach", err, nil)
	end = min(end, int64(len(model)))
	if int64(len(got)) != end-from {
		m.fatalf("ForEach [%d, %d): %d records, want %d", from, to, len(got), end-from)
	}
	m.compare("ForEach", got, model, from)
}

func (m *apiModel) offsetForTime(name string, src *byteSource) {
	p, i, model := m.partition(name, src)
	if p == nil {
		m.ops = append(m.ops, "OffsetForTime of missing "+name)
		return
	}
	ts := m.clock - int64(src.intn(40))
	m.ops = append(m.ops, fmt.Sprintf("OffsetForTime %s-%d %d", name, i, ts))
	want := int64(len(model))
	for _, r := range model {
		if r.Timestamp.UnixMilli() >= ts {
			want = r.Offset
			break
		}
	}
	got, err := p.OffsetForTime(time.UnixMilli(ts))
	m.wantErr("OffsetForTime", err, nil)
	if got != want {
		m.fatalf("OffsetForTime(%d) = %d, want %d", ts, got, want)
	}
}

func (m *apiModel) reopen() {
	if err := m.s.Close(); err != nil {
		m.fatalf("Close: %v", err)
	}
	m.open()
	m.check()
	for name, parts := range m.topics {
		tp, err := m.s.Topic(name)
		if err != nil {
			m.fatalf("Topic(%s) after reopen: %v", name, err)
		}
		for i, model := range parts {
			p, _ := tp.Partition(int32(i))
			var got []*stream.Record
			for off := int64(0); off < int64(len(model)); {
				recs, err := p.Read(off, 1000)
				if err != nil || len(recs) == 0 {
					m.fatalf("Read(%d) of %s-%d after reopen: %d records, %v", off, name, i, len(recs), err)
				}
				got = append(got, recs...)
				off += int64(len(recs))
			}
			m.compare("Read after reopen", got, model, 0)
		}
	}
}

// check compares the topics and every partition's offsets.
func (m *apiModel) check() {
	m.t.Helper()
	names := slices.Sorted(func(yield func(string) bool) {
		for n := range m.topics {
			if !yield(n) {
				return
			}
		}
	})
	got := m.s.Topics()
	slices.Sort(got)
	if !slices.Equal(got, names) && (len(got) > 0 || len(names) > 0) {
		m.fatalf("Topics() = %v, want %v", got, names)
	}
	for name, parts := range m.topics {
		tp, err := m.s.Topic(name)
		if err != nil {
			m.fatalf("Topic(%s): %v", name, err)
		}
		if tp.NumPartitions() != len(parts) {
			m.fatalf("%s has %d partitions, want %d", name, tp.NumPartitions(), len(parts))
		}
		for i, model := range parts {
			p, _ := tp.Partition(int32(i))
			if hw, start := p.HighWatermark(), p.StartOffset(); hw != int64(len(model)) || start != 0 {
				m.fatalf("%s-%d: offsets [%d, %d), want [0, %d)", name, i, start, hw, len(model))
			}
		}
	}
}

func FuzzAPIModel(f *testing.F) {
	for seed := range uint64(8) {
		f.Add(modelSeed(seed, 200))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		runAPIModel(t, data)
	})
}

// modelSeed returns n pseudo-random operation bytes, weighted so that a
// topic gets created early.
func modelSeed(seed uint64, n int) []byte {
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	// Start with "create topic b with 2 partitions".
	return append([]byte{1, 0, 1}, b...)
}

// TestAPIModel is FuzzAPIModel on seeded random operations, for every
// go test run; the seed is in the failure's name.
func TestAPIModel(t *testing.T) {
	seeds := 12
	if testing.Short() {
		seeds = 2
	}
	for seed := range uint64(seeds) {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			runAPIModel(t, modelSeed(seed, 4000))
		})
	}
}
