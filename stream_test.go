package stream_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/instream/stream"
)

// checkNoLeaks fails the test if goroutines started during it are still
// running once it ends (after its other cleanups, such as Close).
func checkNoLeaks(t *testing.T) {
	t.Helper()
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(5 * time.Second)
		for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
			runtime.Gosched()
			time.Sleep(time.Millisecond)
		}
		if n := runtime.NumGoroutine(); n > before {
			buf := make([]byte, 1<<20)
			t.Errorf("%d goroutines leaked:\n%s", n-before, buf[:runtime.Stack(buf, true)])
		}
	})
}

// open opens a Stream in a fresh directory and closes it when the test
// ends.
func open(t *testing.T, opts *stream.Options) (*stream.Stream, string) {
	t.Helper()
	dir := t.TempDir()
	return reopen(t, dir, opts), dir
}

func reopen(t *testing.T, dir string, opts *stream.Options) *stream.Stream {
	t.Helper()
	s, err := stream.Open(dir, opts)
	if err != nil {
		t.Fatalf("Open(%s): %v", dir, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func partition(t *testing.T, s *stream.Stream, topic string, cfg stream.TopicConfig) *stream.Partition {
	t.Helper()
	tp, err := s.CreateTopic(topic, cfg)
	if err != nil {
		t.Fatalf("CreateTopic(%s): %v", topic, err)
	}
	p, err := tp.Partition(0)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func existing(t *testing.T, s *stream.Stream, topic string, i int32) *stream.Partition {
	t.Helper()
	tp, err := s.Topic(topic)
	if err != nil {
		t.Fatal(err)
	}
	p, err := tp.Partition(i)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func value(i int) []byte { return []byte(fmt.Sprintf("value-%06d", i)) }

// appendN appends n single-record batches with values value(first..).
func appendN(t *testing.T, p *stream.Partition, first, n int) {
	t.Helper()
	for i := first; i < first+n; i++ {
		off, err := p.Append(&stream.Record{Key: []byte("k"), Value: value(i)})
		if err != nil {
			t.Fatalf("Append %d: %v", i, err)
		}
		if off != int64(i) {
			t.Fatalf("Append %d got offset %d", i, off)
		}
	}
}

// readAll reads [from, HighWatermark) and checks offsets are contiguous.
func readAll(t *testing.T, p *stream.Partition, from int64) []*stream.Record {
	t.Helper()
	var out []*stream.Record
	for next := from; next < p.HighWatermark(); {
		recs, err := p.Read(next, 64<<10)
		if err != nil {
			t.Fatalf("Read(%d): %v", next, err)
		}
		if len(recs) == 0 {
			t.Fatalf("Read(%d) below the high watermark %d returned nothing", next, p.HighWatermark())
		}
		for _, r := range recs {
			if r.Offset != next {
				t.Fatalf("got offset %d, want %d", r.Offset, next)
			}
			next++
		}
		out = append(out, recs...)
	}
	return out
}

func checkValues(t *testing.T, recs []*stream.Record, first int) {
	t.Helper()
	for i, r := range recs {
		if want := value(first + i); !bytes.Equal(r.Value, want) {
			t.Fatalf("record %d: value %q, want %q", r.Offset, r.Value, want)
		}
	}
}

func TestOpenDefaultsAndClose(t *testing.T) {
	checkNoLeaks(t)
	dir := t.TempDir()
	s, err := stream.Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"meta.db", "topics"} {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			t.Errorf("Open did not create %s: %v", name, err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); !errors.Is(err, stream.ErrClosed) {
		t.Errorf("second Close: %v, want ErrClosed", err)
	}
}

func TestCallsAfterCloseReturnErrClosed(t *testing.T) {
	s, _ := open(t, nil)
	p := partition(t, s, "t", stream.TopicConfig{})
	appendN(t, p, 0, 3)
	tp, _ := s.Topic("t")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	var b stream.Batch
	b.Add(nil, []byte("x"))
	ctx := context.Background()
	calls := map[string]error{
		"CreateTopic":    second(s.CreateTopic("u", stream.TopicConfig{})),
		"Topic":          second(s.Topic("t")),
		"DeleteTopic":    s.DeleteTopic("t"),
		"Sync":           s.Sync(),
		"Append":         second(p.Append(&stream.Record{Value: []byte("x")})),
		"AppendBatch":    second(p.AppendBatch(&b)),
		"Read":           second(p.Read(0, 100)),
		"Wait":           p.Wait(ctx, 10),
		"OffsetForTime":  second(p.OffsetForTime(time.Now())),
		"Partition.Sync": p.Sync(),
	}
	for name, err := range calls {
		if !errors.Is(err, stream.ErrClosed) {
			t.Errorf("%s after Close: %v, want ErrClosed", name, err)
		}
	}
	for _, err := range p.Scan(ctx, 0) {
		if !errors.Is(err, stream.ErrClosed) {
			t.Errorf("Scan after Close: %v, want ErrClosed", err)
		}
		break
	}
	if got := s.Topics(); got != nil {
		t.Errorf("Topics after Close = %v, want nil", got)
	}
	if tp.Name() != "t" {
		t.Errorf("Topic.Name after Close = %q", tp.Name())
	}
}

func second[T any](_ T, err error) error { return err }

func TestSecondOpenFailsAtOnce(t *testing.T) {
	s, dir := open(t, nil)
	_ = s
	done := make(chan error, 1)
	go func() {
		_, err := stream.Open(dir, nil)
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), dir) {
			t.Fatalf("second Open: %v, want an error naming %s", err, dir)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("second Open of a directory in use hangs")
	}
}

func TestOptionsValidation(t *testing.T) {
	tests := []struct {
		opts  stream.Options
		field string
	}{
		{stream.Options{Sync: 7}, "Options.Sync"},
		{stream.Options{SyncInterval: -1}, "Options.SyncInterval"},
		{stream.Options{SegmentBytes: 10}, "Options.SegmentBytes"},
		{stream.Options{SegmentBytes: 4 << 30}, "Options.SegmentBytes"},
		{stream.Options{SegmentAge: -time.Second}, "Options.SegmentAge"},
		{stream.Options{IndexIntervalBytes: -1}, "Options.IndexIntervalBytes"},
		{stream.Options{MaxRecordBytes: -5}, "Options.MaxRecordBytes"},
		{stream.Options{RetentionCheckInterval: -1}, "Options.RetentionCheckInterval"},
		{stream.Options{MaxOpenFiles: -1}, "Options.MaxOpenFiles"},
		{stream.Options{MaxOpenFiles: 2}, "Options.MaxOpenFiles"},
		{stream.Options{DefaultTopic: stream.TopicConfig{Partitions: -1}}, "Options.DefaultTopic.Partitions"},
	}
	for _, tt := range tests {
		t.Run(tt.field, func(t *testing.T) {
			opts := tt.opts
			_, err := stream.Open(t.TempDir(), &opts)
			if !errors.Is(err, stream.ErrInvalidConfig) || !strings.Contains(err.Error(), tt.field) {
				t.Fatalf("Open: %v, want ErrInvalidConfig naming %s", err, tt.field)
			}
			if !reflect.DeepEqual(opts, tt.opts) {
				t.Errorf("Open wrote to the caller's Options")
			}
		})
	}
}

func TestTopicConfigValidationAndDefaults(t *testing.T) {
	s, _ := open(t, nil)
	bad := []struct {
		cfg   stream.TopicConfig
		field string
		err   error
	}{
		{stream.TopicConfig{Partitions: -1}, "Partitions", stream.ErrInvalidConfig},
		{stream.TopicConfig{Partitions: 1 << 20}, "Partitions", stream.ErrInvalidConfig},
		{stream.TopicConfig{RetentionBytes: -1}, "RetentionBytes", stream.ErrInvalidConfig},
		{stream.TopicConfig{SegmentBytes: 1}, "SegmentBytes", stream.ErrInvalidConfig},
		{stream.TopicConfig{ReplicationFactor: -1}, "ReplicationFactor", stream.ErrInvalidConfig},
		{stream.TopicConfig{ReplicationFactor: 1, MinInSyncReplicas: 2}, "MinInSyncReplicas", stream.ErrInvalidConfig},
		{stream.TopicConfig{ReplicationFactor: 3}, "replication factor", stream.ErrNotEnoughReplicas},
	}
	for _, tt := range bad {
		_, err := s.CreateTopic("t", tt.cfg)
		if !errors.Is(err, tt.err) || !strings.Contains(err.Error(), tt.field) {
			t.Errorf("CreateTopic(%+v): %v, want %v naming %s", tt.cfg, err, tt.err, tt.field)
		}
	}
	if got := s.Topics(); len(got) != 0 {
		t.Fatalf("failed creations left topics %v", got)
	}
	tp, err := s.CreateTopic("t", stream.TopicConfig{})
	if err != nil {
		t.Fatal(err)
	}
	want := stream.TopicConfig{Partitions: 1, ReplicationFactor: 1, MinInSyncReplicas: 1, Retention: 7 * 24 * time.Hour}
	if got := tp.Config(); got != want {
		t.Errorf("defaults: %+v, want %+v", got, want)
	}
}

func TestTopicNames(t *testing.T) {
	s, _ := open(t, nil)
	valid := []string{"a", "orders", "Orders.v2", "a_b-c.d", strings.Repeat("x", 249), "..."}
	for _, name := range valid {
		if _, err := s.CreateTopic(name, stream.TopicConfig{}); err != nil {
			t.Errorf("CreateTopic(%q): %v", name, err)
		}
	}
	invalid := []string{"", ".", "..", strings.Repeat("x", 250), "a b", "a/b", "ü", "a\x00", "a:b"}
	for _, name := range invalid {
		if _, err := s.CreateTopic(name, stream.TopicConfig{}); !errors.Is(err, stream.ErrInvalidName) {
			t.Errorf("CreateTopic(%q): %v, want ErrInvalidName", name, err)
		}
	}
}

func TestTopicLifecycle(t *testing.T) {
	checkNoLeaks(t)
	dir := t.TempDir()
	s := reopen(t, dir, nil)
	tp, err := s.CreateTopic("orders", stream.TopicConfig{Partitions: 3, RetentionBytes: 1 << 30})
	if err != nil {
		t.Fatal(err)
	}
	if tp.NumPartitions() != 3 || tp.Name() != "orders" {
		t.Fatalf("topic %s with %d partitions", tp.Name(), tp.NumPartitions())
	}
	if _, err := tp.Partition(3); !errors.Is(err, stream.ErrUnknownTopic) {
		t.Errorf("Partition(3) of 3: %v", err)
	}
	if _, err := tp.Partition(-1); !errors.Is(err, stream.ErrUnknownTopic) {
		t.Errorf("Partition(-1): %v", err)
	}
	if _, err := s.CreateTopic("orders", stream.TopicConfig{}); !errors.Is(err, stream.ErrTopicExists) {
		t.Errorf("CreateTopic twice: %v, want ErrTopicExists", err)
	}
	if _, err := s.Topic("nope"); !errors.Is(err, stream.ErrUnknownTopic) {
		t.Errorf("Topic(nope): %v, want ErrUnknownTopic", err)
	}
	if err := s.DeleteTopic("nope"); !errors.Is(err, stream.ErrUnknownTopic) {
		t.Errorf("DeleteTopic(nope): %v, want ErrUnknownTopic", err)
	}
	if _, err := s.CreateTopic("audit", stream.TopicConfig{}); err != nil {
		t.Fatal(err)
	}
	for i := range int32(3) {
		appendN(t, existing(t, s, "orders", i), 0, 5)
	}
	if got := s.Topics(); !slices.Equal(got, []string{"audit", "orders"}) {
		t.Fatalf("Topics = %v", got)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	// Configs and data survive a reopen.
	s = reopen(t, dir, nil)
	tp, err = s.Topic("orders")
	if err != nil {
		t.Fatal(err)
	}
	if tp.NumPartitions() != 3 || tp.Config().RetentionBytes != 1<<30 {
		t.Fatalf("reopened config %+v", tp.Config())
	}
	for i := range int32(3) {
		p := existing(t, s, "orders", i)
		if p.HighWatermark() != 5 {
			t.Errorf("partition %d: high watermark %d after reopen, want 5", i, p.HighWatermark())
		}
	}

	// Deleting removes the files; users of its partitions get ErrClosed.
	p := existing(t, s, "orders", 0)
	if err := s.DeleteTopic("orders"); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Append(&stream.Record{Value: []byte("x")}); !errors.Is(err, stream.ErrClosed) {
		t.Errorf("Append to a deleted topic: %v, want ErrClosed", err)
	}
	matches, _ := filepath.Glob(filepath.Join(dir, "topics", "orders-*"))
	if len(matches) != 0 {
		t.Errorf("DeleteTopic left %v", matches)
	}
	if got := s.Topics(); !slices.Equal(got, []string{"audit"}) {
		t.Errorf("Topics after delete = %v", got)
	}
	// A new topic of the same name starts empty.
	tp, err = s.CreateTopic("orders", stream.TopicConfig{Partitions: 1})
	if err != nil {
		t.Fatal(err)
	}
	if p, _ := tp.Partition(0); p.HighWatermark() != 0 {
		t.Errorf("recreated topic has high watermark %d", p.HighWatermark())
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = reopen(t, dir, nil)
	if got := s.Topics(); !slices.Equal(got, []string{"audit", "orders"}) {
		t.Errorf("Topics after reopen = %v", got)
	}
}

func TestByteSize(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want stream.ByteSize
	}{
		{"4096", 4096}, {"64 KiB", 64 << 10}, {"64KiB", 64 << 10}, {"1.5 GiB", 3 << 29}, {"10 MB", 10_000_000},
	} {
		var b stream.ByteSize
		if err := b.UnmarshalText([]byte(tt.in)); err != nil || b != tt.want {
			t.Errorf("UnmarshalText(%q) = %d, %v; want %d", tt.in, b, err, tt.want)
		}
	}
	var b stream.ByteSize
	if err := b.UnmarshalText([]byte("lots")); !errors.Is(err, stream.ErrInvalidConfig) {
		t.Errorf("UnmarshalText(lots): %v, want ErrInvalidConfig", err)
	}
	if got := stream.ByteSize(128 << 20).String(); got != "128 MiB" {
		t.Errorf("String = %q", got)
	}
	text, _ := stream.ByteSize(64 << 10).MarshalText()
	if err := b.UnmarshalText(text); err != nil || b != 64<<10 {
		t.Errorf("round trip of %q = %d, %v", text, b, err)
	}
}

func TestAppendAndReadRecords(t *testing.T) {
	s, _ := open(t, nil)
	p := partition(t, s, "t", stream.TopicConfig{})
	ts := time.UnixMilli(1_700_000_000_123)
	recs := []*stream.Record{
		{Key: []byte("user-1"), Value: []byte("signed up"), Timestamp: ts,
			Headers: []stream.Header{{Key: "trace", Value: []byte("abc")}, {Key: "empty", Value: []byte{}}, {Key: "null"}}},
		{Key: nil, Value: []byte("no key")},
		{Key: []byte{}, Value: nil},
		{Value: bytes.Repeat([]byte("z"), 100_000)},
	}
	base, err := p.Append(recs...)
	if err != nil {
		t.Fatal(err)
	}
	if base != 0 {
		t.Fatalf("base offset %d", base)
	}
	for i, r := range recs {
		if r.Offset != int64(i) {
			t.Errorf("Append set Offset %d on record %d", r.Offset, i)
		}
		if r.Timestamp.IsZero() {
			t.Errorf("Append left record %d without a timestamp", i)
		}
	}
	if hw := p.HighWatermark(); hw != 4 {
		t.Fatalf("high watermark %d, want 4", hw)
	}
	got, err := p.Read(0, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 4 {
		t.Fatalf("Read returned %d records", len(got))
	}
	for i, r := range got {
		w := recs[i]
		if r.Topic != "t" || r.Partition != 0 || r.Offset != int64(i) {
			t.Errorf("record %d: topic %q partition %d offset %d", i, r.Topic, r.Partition, r.Offset)
		}
		if !bytes.Equal(r.Key, w.Key) || (r.Key == nil) != (w.Key == nil) {
			t.Errorf("record %d: key %q (nil %v), want %q (nil %v)", i, r.Key, r.Key == nil, w.Key, w.Key == nil)
		}
		if !bytes.Equal(r.Value, w.Value) || (r.Value == nil) != (w.Value == nil) {
			t.Errorf("record %d: value differs (nil %v, want nil %v)", i, r.Value == nil, w.Value == nil)
		}
		if !r.Timestamp.Equal(w.Timestamp.Truncate(time.Millisecond)) {
			t.Errorf("record %d: timestamp %v, want %v", i, r.Timestamp, w.Timestamp)
		}
		if len(r.Headers) != len(w.Headers) {
			t.Fatalf("record %d: %d headers, want %d", i, len(r.Headers), len(w.Headers))
		}
		for j, h := range r.Headers {
			if h.Key != w.Headers[j].Key || !bytes.Equal(h.Value, w.Headers[j].Value) || (h.Value == nil) != (w.Headers[j].Value == nil) {
				t.Errorf("record %d header %d: %q=%q, want %q=%q", i, j, h.Key, h.Value, w.Headers[j].Key, w.Headers[j].Value)
			}
		}
	}
	if !got[0].Timestamp.Equal(ts) {
		t.Errorf("explicit timestamp %v came back as %v", ts, got[0].Timestamp)
	}
}

func TestReadPositions(t *testing.T) {
	s, _ := open(t, &stream.Options{SegmentBytes: 4 << 10, IndexIntervalBytes: 256})
	p := partition(t, s, "t", stream.TopicConfig{})
	appendN(t, p, 0, 500)
	var b stream.Batch
	for i := 500; i < 1000; i++ {
		b.Add([]byte("k"), value(i))
		if b.Len() == 50 {
			if _, err := p.AppendBatch(&b); err != nil {
				t.Fatal(err)
			}
			b.Reset()
		}
	}
	// Every offset, read with a tiny maxBytes, starts exactly there and
	// returns at least one record.
	for off := int64(0); off < 1000; off++ {
		recs, err := p.Read(off, 1)
		if err != nil {
			t.Fatalf("Read(%d, 1): %v", off, err)
		}
		if len(recs) == 0 || recs[0].Offset != off {
			t.Fatalf("Read(%d, 1) returned %d records starting at %v", off, len(recs), recs)
		}
		if !bytes.Equal(recs[0].Value, value(int(off))) {
			t.Fatalf("Read(%d) value %q", off, recs[0].Value)
		}
	}
	checkValues(t, readAll(t, p, 0), 0)
	// A large read crosses segments.
	recs, err := p.Read(10, 1<<20)
	if err != nil || len(recs) != 990 {
		t.Fatalf("Read(10, 1MiB) = %d records, %v; want 990", len(recs), err)
	}
	if recs, err := p.Read(1000, 100); err != nil || len(recs) != 0 {
		t.Errorf("Read at the high watermark = %d records, %v; want none", len(recs), err)
	}
	for _, off := range []int64{-1, 1001, 5000} {
		if _, err := p.Read(off, 100); !errors.Is(err, stream.ErrOffsetOutOfRange) {
			t.Errorf("Read(%d): %v, want ErrOffsetOutOfRange", off, err)
		}
	}
	segs, _ := filepath.Glob(filepath.Join(p.Dir(), "*.log"))
	if len(segs) < 5 {
		t.Errorf("only %d segments with 4 KiB segments", len(segs))
	}
	for _, seg := range segs {
		if name := filepath.Base(seg); len(name) != len("00000000000000000000.log") {
			t.Errorf("segment name %s", name)
		}
	}
}

func TestRecordTooLargeWritesNothing(t *testing.T) {
	s, _ := open(t, &stream.Options{MaxRecordBytes: 1024})
	p := partition(t, s, "t", stream.TopicConfig{})
	appendN(t, p, 0, 2)
	big := bytes.Repeat([]byte("x"), 2000)
	if _, err := p.Append(&stream.Record{Value: big}); !errors.Is(err, stream.ErrRecordTooLarge) {
		t.Fatalf("Append of 2000 bytes: %v, want ErrRecordTooLarge", err)
	}
	var b stream.Batch
	for range 20 {
		b.Add(nil, big[:100])
	}
	if _, err := p.AppendBatch(&b); !errors.Is(err, stream.ErrRecordTooLarge) {
		t.Fatalf("AppendBatch of %d bytes: %v, want ErrRecordTooLarge", b.Size(), err)
	}
	if hw := p.HighWatermark(); hw != 2 {
		t.Fatalf("high watermark %d after rejected appends, want 2", hw)
	}
	appendN(t, p, 2, 1)
	checkValues(t, readAll(t, p, 0), 0)
}

func TestSegmentsRollAndReopen(t *testing.T) {
	checkNoLeaks(t)
	dir := t.TempDir()
	opts := &stream.Options{SegmentBytes: 2 << 10, IndexIntervalBytes: 128}
	s := reopen(t, dir, opts)
	p := partition(t, s, "t", stream.TopicConfig{})
	appendN(t, p, 0, 300)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// After Close each .log holds exactly its batches: no preallocated tail.
	logs, _ := filepath.Glob(filepath.Join(dir, "topics", "t-0", "*.log"))
	var total int64
	for _, l := range logs {
		fi, _ := os.Stat(l)
		total += fi.Size()
		if fi.Size() > 2<<10 {
			t.Errorf("%s is %d bytes, over SegmentBytes", l, fi.Size())
		}
	}
	if len(logs) < 10 {
		t.Fatalf("%d segments", len(logs))
	}
	s = reopen(t, dir, opts)
	p = existing(t, s, "t", 0)
	if st := s.Stats(); int64(st.Bytes) != total || st.Segments != len(logs) || st.Records != 300 {
		t.Errorf("Stats %+v, want %d bytes in %d segments, 300 records", st, total, len(logs))
	}
	appendN(t, p, 300, 100)
	checkValues(t, readAll(t, p, 0), 0)
}

func TestSegmentAgeRolls(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		s, err := stream.Open(dir, &stream.Options{SegmentAge: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		p := partition(t, s, "t", stream.TopicConfig{})
		appendN(t, p, 0, 3)
		time.Sleep(30 * time.Minute)
		appendN(t, p, 3, 1)
		if n := countLogs(t, p); n != 1 {
			t.Fatalf("%d segments after 30 minutes, want 1", n)
		}
		time.Sleep(31 * time.Minute)
		appendN(t, p, 4, 1)
		if n := countLogs(t, p); n != 2 {
			t.Fatalf("%d segments after 61 minutes, want 2", n)
		}
	})
}

func countLogs(t *testing.T, p *stream.Partition) int {
	t.Helper()
	logs, err := filepath.Glob(filepath.Join(p.Dir(), "*.log"))
	if err != nil {
		t.Fatal(err)
	}
	return len(logs)
}

func TestBatchReuseAllocatesNothing(t *testing.T) {
	var b stream.Batch
	key, val := []byte("key"), bytes.Repeat([]byte("v"), 100)
	for range 100 {
		b.Add(key, val)
	}
	b.Reset()
	allocs := testing.AllocsPerRun(100, func() {
		b.Reset()
		for range 100 {
			b.Add(key, val, stream.Header{Key: "h", Value: val[:3]})
		}
	})
	if allocs != 0 {
		t.Errorf("a warm Batch allocates %.1f times per 100 records", allocs)
	}
	if b.Len() != 100 {
		t.Errorf("Len = %d", b.Len())
	}
	b.Reset()
	if b.Len() != 0 || b.Size() != 0 {
		t.Errorf("after Reset Len = %d, Size = %d", b.Len(), b.Size())
	}
}

func TestBatchAppendedTwiceGetsNewOffsets(t *testing.T) {
	s, _ := open(t, nil)
	p := partition(t, s, "t", stream.TopicConfig{})
	var b stream.Batch
	b.Add([]byte("a"), []byte("1"))
	b.AddRecord(&stream.Record{Key: []byte("b"), Value: []byte("2"), Timestamp: time.UnixMilli(1000)})
	for want := int64(0); want < 6; want += 2 {
		off, err := p.AppendBatch(&b)
		if err != nil || off != want {
			t.Fatalf("AppendBatch = %d, %v; want %d", off, err, want)
		}
	}
	recs := readAll(t, p, 0)
	if len(recs) != 6 || string(recs[5].Value) != "2" || recs[5].Timestamp.UnixMilli() != 1000 {
		t.Fatalf("records %v", recs)
	}
	var empty stream.Batch
	if off, err := p.AppendBatch(&empty); err != nil || off != 6 {
		t.Errorf("AppendBatch(empty) = %d, %v; want the end offset 6", off, err)
	}
}

func TestScanFollowsTheTail(t *testing.T) {
	checkNoLeaks(t)
	s, _ := open(t, &stream.Options{SegmentBytes: 4 << 10})
	p := partition(t, s, "t", stream.TopicConfig{})
	appendN(t, p, 0, 100)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	got := make(chan *stream.Record, 1000)
	done := make(chan error, 1)
	go func() {
		for r, err := range p.Scan(ctx, 50) {
			if err != nil {
				done <- err
				return
			}
			got <- r
		}
		done <- nil
	}()
	for want := int64(50); want < 300; want++ {
		if want == 100 {
			go func() {
				for i := 100; i < 300; i++ {
					if _, err := p.Append(&stream.Record{Value: value(i)}); err != nil {
						t.Error(err)
						return
					}
				}
			}()
		}
		select {
		case r := <-got:
			if r.Offset != want || !bytes.Equal(r.Value, value(int(want))) {
				t.Fatalf("Scan gave offset %d %q, want %d", r.Offset, r.Value, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("Scan stalled before offset %d", want)
		}
	}
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Scan ended with %v, want context.Canceled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Scan did not end on cancel")
	}
}

func TestScanStopsWhenTheLoopBreaks(t *testing.T) {
	checkNoLeaks(t)
	s, _ := open(t, nil)
	p := partition(t, s, "t", stream.TopicConfig{})
	appendN(t, p, 0, 10)
	n := 0
	for r, err := range p.Scan(context.Background(), 0) {
		if err != nil {
			t.Fatal(err)
		}
		if n++; r.Offset == 4 {
			break
		}
	}
	if n != 5 {
		t.Fatalf("iterated %d records", n)
	}
}

func TestWaitWakesOnAppend(t *testing.T) {
	s, _ := open(t, nil)
	p := partition(t, s, "t", stream.TopicConfig{})
	woke := make(chan error, 1)
	go func() { woke <- p.Wait(context.Background(), 0) }()
	select {
	case err := <-woke:
		t.Fatalf("Wait returned %v before any append", err)
	case <-time.After(20 * time.Millisecond):
	}
	appendN(t, p, 0, 1)
	select {
	case err := <-woke:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Wait did not wake on append")
	}
	// Already available: no wait.
	if err := p.Wait(context.Background(), 0); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	if err := p.Wait(ctx, 1); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Wait past the end: %v, want DeadlineExceeded", err)
	}
}

func TestWaitEndsOnClose(t *testing.T) {
	checkNoLeaks(t)
	dir := t.TempDir()
	s, err := stream.Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	p := partition(t, s, "t", stream.TopicConfig{})
	woke := make(chan error, 1)
	go func() { woke <- p.Wait(context.Background(), 0) }()
	time.Sleep(10 * time.Millisecond) // let it block; the assertion holds either way
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-woke:
		if !errors.Is(err, stream.ErrClosed) {
			t.Fatalf("Wait on Close: %v, want ErrClosed", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Wait did not end on Close")
	}
}

func TestOffsetForTime(t *testing.T) {
	s, _ := open(t, &stream.Options{SegmentBytes: 2 << 10, IndexIntervalBytes: 100})
	p := partition(t, s, "t", stream.TopicConfig{})
	base := time.UnixMilli(1_700_000_000_000)
	// 200 records one second apart, in batches of 1 and 10.
	var b stream.Batch
	for i := 0; i < 200; i++ {
		r := &stream.Record{Value: value(i), Timestamp: base.Add(time.Duration(i) * time.Second)}
		if i < 100 {
			if _, err := p.Append(r); err != nil {
				t.Fatal(err)
			}
			continue
		}
		b.AddRecord(r)
		if b.Len() == 10 {
			if _, err := p.AppendBatch(&b); err != nil {
				t.Fatal(err)
			}
			b.Reset()
		}
	}
	check := func() {
		t.Helper()
		for _, tt := range []struct {
			at   time.Time
			want int64
		}{
			{base.Add(-time.Hour), 0},
			{base, 0},
			{base.Add(time.Millisecond), 1},
			{base.Add(57 * time.Second), 57},
			{base.Add(57*time.Second + time.Millisecond), 58},
			{base.Add(150 * time.Second), 150},
			{base.Add(155*time.Second - time.Millisecond), 155},
			{base.Add(199 * time.Second), 199},
			{base.Add(200 * time.Second), 200}, // none: the high watermark
		} {
			got, err := p.OffsetForTime(tt.at)
			if err != nil || got != tt.want {
				t.Errorf("OffsetForTime(+%v) = %d, %v; want %d", tt.at.Sub(base), got, err, tt.want)
			}
		}
	}
	check()
	if err := s.Sync(); err != nil { // finalized segments use the index files
		t.Fatal(err)
	}
	check()
}

func TestConcurrentAppenders(t *testing.T) {
	checkNoLeaks(t)
	for _, policy := range []stream.SyncPolicy{stream.SyncAlways, stream.SyncNever} {
		t.Run(policy.String(), func(t *testing.T) {
			s, _ := open(t, &stream.Options{Sync: policy, SegmentBytes: 16 << 10})
			p := partition(t, s, "t", stream.TopicConfig{})
			const writers, each = 8, 200
			var wg sync.WaitGroup
			for w := range writers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					var b stream.Batch
					for i := range each {
						v := []byte(fmt.Sprintf("%d/%d", w, i))
						if i%2 == 0 {
							if _, err := p.Append(&stream.Record{Key: []byte{byte(w)}, Value: v}); err != nil {
								t.Error(err)
								return
							}
							continue
						}
						b.Reset()
						b.Add([]byte{byte(w)}, v)
						if _, err := p.AppendBatch(&b); err != nil {
							t.Error(err)
							return
						}
					}
				}()
			}
			// A reader follows along while the writers run.
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			seen := make(chan int, 1)
			go func() {
				n := 0
				for _, err := range p.Scan(ctx, 0) {
					if err != nil {
						break
					}
					if n++; n == writers*each {
						break
					}
				}
				seen <- n
			}()
			wg.Wait()
			if hw := p.HighWatermark(); hw != writers*each {
				t.Fatalf("high watermark %d, want %d", hw, writers*each)
			}
			select {
			case n := <-seen:
				if n != writers*each {
					t.Fatalf("reader saw %d records", n)
				}
			case <-time.After(20 * time.Second):
				t.Fatal("reader did not see every record")
			}
			next := make([]int, writers)
			for _, r := range readAll(t, p, 0) {
				var w, i int
				fmt.Sscanf(string(r.Value), "%d/%d", &w, &i)
				if i != next[w] {
					t.Fatalf("writer %d: record %d at offset %d, want %d", w, i, r.Offset, next[w])
				}
				next[w]++
			}
		})
	}
}

func TestFailedSyncIsSticky(t *testing.T) {
	dir := t.TempDir()
	s := reopen(t, dir, nil)
	p := partition(t, s, "t", stream.TopicConfig{})
	appendN(t, p, 0, 3)
	boom := errors.New("injected EIO")
	stream.SetSyncFault(p, func() error { return boom })
	if _, err := p.Append(&stream.Record{Value: []byte("lost?")}); !errors.Is(err, boom) {
		t.Fatalf("Append with a failing fsync: %v, want the fsync error", err)
	}
	if hw := p.HighWatermark(); hw != 3 {
		t.Fatalf("high watermark moved to %d past a failed fsync", hw)
	}
	stream.SetSyncFault(p, nil) // the disk "recovers": the partition must not
	if _, err := p.Append(&stream.Record{Value: []byte("after")}); !errors.Is(err, boom) {
		t.Fatalf("Append after a failed fsync: %v, want the sticky error", err)
	}
	checkValues(t, readAll(t, p, 0), 0)
	if err := s.Close(); err == nil {
		t.Log("Close after a failed partition reported no error")
	}
	// Reopening recovers; the unacknowledged record may or may not be
	// there, the acknowledged ones are.
	s = reopen(t, dir, nil)
	p = existing(t, s, "t", 0)
	recs := readAll(t, p, 0)
	checkValues(t, recs[:3], 0)
	if _, err := p.Append(&stream.Record{Value: []byte("again")}); err != nil {
		t.Fatalf("Append after reopen: %v", err)
	}
}

func TestSyncPolicies(t *testing.T) {
	for _, policy := range []stream.SyncPolicy{stream.SyncAlways, stream.SyncPeriodic, stream.SyncNever} {
		t.Run(policy.String(), func(t *testing.T) {
			checkNoLeaks(t)
			dir := t.TempDir()
			opts := &stream.Options{Sync: policy, SyncInterval: time.Millisecond, SegmentBytes: 4 << 10}
			s := reopen(t, dir, opts)
			p := partition(t, s, "t", stream.TopicConfig{})
			appendN(t, p, 0, 500)
			// Every acknowledged append is visible at once.
			if hw := p.HighWatermark(); hw != 500 {
				t.Fatalf("high watermark %d", hw)
			}
			if err := s.Sync(); err != nil {
				t.Fatal(err)
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			s = reopen(t, dir, opts)
			checkValues(t, readAll(t, existing(t, s, "t", 0), 0), 0)
		})
	}
}

func TestRetentionBySize(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, err := stream.Open(t.TempDir(), &stream.Options{
			SegmentBytes: 2 << 10, RetentionCheckInterval: time.Minute,
		})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		p := partition(t, s, "t", stream.TopicConfig{RetentionBytes: 8 << 10})
		appendN(t, p, 0, 1000)
		before := countLogs(t, p)
		time.Sleep(time.Minute + time.Second)
		synctest.Wait()
		after := countLogs(t, p)
		if after >= before || s.Stats().Bytes > 8<<10+2<<10 {
			t.Fatalf("retention by size: %d segments before, %d after, %v on disk", before, after, s.Stats().Bytes)
		}
		start := p.StartOffset()
		if start == 0 {
			t.Fatal("StartOffset did not advance")
		}
		if _, err := p.Read(start-1, 10); !errors.Is(err, stream.ErrOffsetOutOfRange) {
			t.Errorf("Read below StartOffset: %v", err)
		}
		checkValues(t, readAll(t, p, start), int(start))
		if p.HighWatermark() != 1000 {
			t.Errorf("retention moved the high watermark to %d", p.HighWatermark())
		}
	})
}

func TestRetentionByAge(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		opts := &stream.Options{SegmentBytes: 2 << 10, RetentionCheckInterval: time.Minute}
		s, err := stream.Open(dir, opts)
		if err != nil {
			t.Fatal(err)
		}
		p := partition(t, s, "t", stream.TopicConfig{Retention: time.Hour})
		forever := partition(t, s, "keep", stream.TopicConfig{Retention: -1})
		appendN(t, p, 0, 200)
		appendN(t, forever, 0, 200)
		time.Sleep(30 * time.Minute)
		synctest.Wait()
		if p.StartOffset() != 0 {
			t.Fatal("retention deleted data younger than Retention")
		}
		appendN(t, p, 200, 1) // a young record in the active segment
		time.Sleep(31 * time.Minute)
		synctest.Wait()
		if n := countLogs(t, p); n != 1 {
			t.Fatalf("%d segments left, want only the active one", n)
		}
		if p.StartOffset() == 0 || p.HighWatermark() != 201 {
			t.Fatalf("start %d, high watermark %d", p.StartOffset(), p.HighWatermark())
		}
		if forever.StartOffset() != 0 {
			t.Fatal("Retention < 0 deleted data")
		}
		// The new start survives a reopen.
		start := p.StartOffset()
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		s, err = stream.Open(dir, opts)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		p = existing(t, s, "t", 0)
		if p.StartOffset() != start {
			t.Fatalf("start %d after reopen, want %d", p.StartOffset(), start)
		}
		checkValues(t, readAll(t, p, start), int(start))
	})
}

func TestStats(t *testing.T) {
	s, _ := open(t, nil)
	tp, _ := s.CreateTopic("a", stream.TopicConfig{Partitions: 2})
	s.CreateTopic("b", stream.TopicConfig{})
	p0, _ := tp.Partition(0)
	p1, _ := tp.Partition(1)
	appendN(t, p0, 0, 10)
	appendN(t, p1, 0, 5)
	st := s.Stats()
	if st.Topics != 2 || st.Partitions != 3 || st.Segments != 3 || st.Records != 15 || st.Bytes <= 0 {
		t.Fatalf("Stats = %+v", st)
	}
}

// TestMemoryStaysFlat checks that the heap does not grow with the bytes in
// the log: sealed segments keep their indexes on disk (mapped on use), so
// what a partition holds in memory grows with its segment count, by a few
// hundred bytes each, not with its data.
func TestMemoryStaysFlat(t *testing.T) {
	s, _ := open(t, &stream.Options{Sync: stream.SyncNever, SegmentBytes: 256 << 10, IndexIntervalBytes: 512})
	p := partition(t, s, "t", stream.TopicConfig{})
	val := bytes.Repeat([]byte("v"), 100)
	var b stream.Batch
	write := func(mib int) {
		for written := 0; written < mib<<20; written += b.Size() {
			b.Reset()
			for range 100 {
				b.Add(nil, val)
			}
			if _, err := p.AppendBatch(&b); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.Sync(); err != nil {
			t.Fatal(err)
		}
	}
	heap := func() uint64 {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	write(8)
	// Read everything once, so sealed segments' indexes are in use.
	readAll(t, p, 0)
	before := heap()
	write(48)
	readAll(t, p, 0)
	after := heap()
	st := s.Stats()
	t.Logf("heap %d KiB before, %d KiB after %v more in %d segments", before>>10, after>>10, st.Bytes, st.Segments)
	if grew := int64(after) - int64(before); grew > 4<<20 {
		t.Fatalf("heap grew by %d KiB while the log grew by 48 MiB", grew>>10)
	}
}

// TestRecordsInvisibleUntilSynced: under SyncAlways a record is neither
// acknowledged nor visible to readers before the fsync that makes it
// durable returns.
func TestRecordsInvisibleUntilSynced(t *testing.T) {
	s, _ := open(t, nil)
	p := partition(t, s, "t", stream.TopicConfig{})
	appendN(t, p, 0, 1)
	entered, release := make(chan struct{}), make(chan struct{})
	stream.SetSyncFault(p, func() error {
		entered <- struct{}{}
		<-release
		return nil
	})
	acked := make(chan error, 1)
	go func() {
		_, err := p.Append(&stream.Record{Value: value(1)})
		acked <- err
	}()
	<-entered // the fsync for record 1 is in flight
	select {
	case err := <-acked:
		t.Fatalf("Append acknowledged (%v) before its fsync returned", err)
	default:
	}
	if hw := p.HighWatermark(); hw != 1 {
		t.Fatalf("high watermark %d while the fsync is in flight, want 1", hw)
	}
	if recs, err := p.Read(1, 100); err != nil || len(recs) != 0 {
		t.Fatalf("Read(1) during the fsync = %d records, %v; want none", len(recs), err)
	}
	if _, err := p.Read(2, 100); !errors.Is(err, stream.ErrOffsetOutOfRange) {
		t.Fatalf("Read(2) during the fsync: %v, want ErrOffsetOutOfRange", err)
	}
	close(release)
	if err := <-acked; err != nil {
		t.Fatal(err)
	}
	if hw := p.HighWatermark(); hw != 2 {
		t.Fatalf("high watermark %d after the fsync, want 2", hw)
	}
	stream.SetSyncFault(p, nil)
	checkValues(t, readAll(t, p, 0), 0)
}

// TestGroupCommitSharesFsyncs counts fsyncs: one per acknowledged append
// for a lone appender under SyncAlways, fewer than appends for many
// concurrent ones, none per append under SyncNever.
func TestGroupCommitSharesFsyncs(t *testing.T) {
	count := func(policy stream.SyncPolicy, writers, each int) int64 {
		s, _ := open(t, &stream.Options{Sync: policy})
		p := partition(t, s, "t", stream.TopicConfig{})
		var syncs atomic.Int64
		stream.SetSyncFault(p, func() error { syncs.Add(1); return nil })
		var wg sync.WaitGroup
		for range writers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range each {
					if _, err := p.Append(&stream.Record{Value: []byte("x")}); err != nil {
						t.Error(err)
						return
					}
				}
			}()
		}
		wg.Wait()
		return syncs.Load()
	}
	if n := count(stream.SyncAlways, 1, 50); n != 50 {
		t.Errorf("one appender, SyncAlways: %d fsyncs for 50 appends, want 50", n)
	}
	if n := count(stream.SyncAlways, 32, 20); n >= 32*20 || n == 0 {
		t.Errorf("32 appenders, SyncAlways: %d fsyncs for %d appends, want fewer (and some)", n, 32*20)
	}
	if n := count(stream.SyncNever, 4, 50); n != 0 {
		t.Errorf("SyncNever: %d fsyncs on the append path, want 0", n)
	}
}

func TestEpochTimestampIsKept(t *testing.T) {
	s, _ := open(t, nil)
	p := partition(t, s, "t", stream.TopicConfig{})
	epoch := time.UnixMilli(0)
	var b stream.Batch
	b.AddRecord(&stream.Record{Value: []byte("a"), Timestamp: epoch})
	if _, err := p.AppendBatch(&b); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Append(&stream.Record{Value: []byte("b"), Timestamp: epoch}); err != nil {
		t.Fatal(err)
	}
	for _, r := range readAll(t, p, 0) {
		if !r.Timestamp.Equal(epoch) {
			t.Errorf("record %d: timestamp %v, want 1970-01-01 (a real CreateTime, not 'none')", r.Offset, r.Timestamp)
		}
	}
}

func TestForEach(t *testing.T) {
	s, _ := open(t, &stream.Options{SegmentBytes: 4 << 10})
	p := partition(t, s, "t", stream.TopicConfig{})
	appendN(t, p, 0, 300)
	if _, err := p.Append(&stream.Record{Value: value(300), Headers: []stream.Header{{Key: "h", Value: []byte("x")}}}); err != nil {
		t.Fatal(err)
	}
	var got []int64
	err := p.ForEach(10, -1, func(r *stream.Record) error {
		if !bytes.Equal(r.Value, value(int(r.Offset))) {
			t.Fatalf("offset %d: value %q", r.Offset, r.Value)
		}
		got = append(got, r.Offset)
		return nil
	})
	if err != nil || len(got) != 291 || got[0] != 10 || got[290] != 300 {
		t.Fatalf("ForEach(10, -1) visited %d records (%v...), %v", len(got), got[:min(3, len(got))], err)
	}
	for i, off := range got {
		if off != int64(10+i) {
			t.Fatalf("visit %d at offset %d", i, off)
		}
	}
	n := 0
	if err := p.ForEach(100, 150, func(*stream.Record) error { n++; return nil }); err != nil || n != 50 {
		t.Fatalf("ForEach(100, 150) = %d records, %v; want 50", n, err)
	}
	stop := errors.New("enough")
	n = 0
	if err := p.ForEach(0, -1, func(*stream.Record) error {
		if n++; n == 7 {
			return stop
		}
		return nil
	}); err != stop || n != 7 {
		t.Fatalf("ForEach stopped by fn: %v after %d, want the fn's error after 7", err, n)
	}
	if err := p.ForEach(500, -1, func(*stream.Record) error { return nil }); !errors.Is(err, stream.ErrOffsetOutOfRange) {
		t.Fatalf("ForEach past the end: %v, want ErrOffsetOutOfRange", err)
	}
	// Replaying allocates per read, not per record.
	allocs := testing.AllocsPerRun(5, func() {
		p.ForEach(0, -1, func(*stream.Record) error { return nil })
	})
	if allocs > 50 {
		t.Fatalf("ForEach over 301 records allocates %.0f times", allocs)
	}
}

func TestForEachCompressedBatches(t *testing.T) {
	s, _ := open(t, nil)
	partition(t, s, "t", stream.TopicConfig{})
	p, err := s.NewProducer(stream.ProducerConfig{Compression: stream.CompressZstd, Linger: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 200 {
		p.SendAsync(&stream.Record{Topic: "t", Value: value(i)}, nil)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	part := existing(t, s, "t", 0)
	next := int64(0)
	err = part.ForEach(0, -1, func(r *stream.Record) error {
		if r.Offset != next || !bytes.Equal(r.Value, value(int(next))) {
			return fmt.Errorf("offset %d: %q, want offset %d", r.Offset, r.Value, next)
		}
		next++
		return nil
	})
	if err != nil || next != 200 {
		t.Fatalf("ForEach over compressed batches: %d records, %v", next, err)
	}
}
