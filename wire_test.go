package stream_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"testing"
	"time"

	"github.com/instream/stream"
)

func openWirePartition(t *testing.T, opts *stream.Options) (*stream.Stream, *stream.Partition) {
	t.Helper()
	s, err := stream.Open(t.TempDir(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	tp, err := s.CreateTopic("t", stream.TopicConfig{})
	if err != nil {
		t.Fatal(err)
	}
	p, _ := tp.Partition(0)
	return s, p
}

// rawBatch returns the RecordBatch v2 of n records (values "prefix-i"),
// stamped with producer id, epoch and first sequence seq when id >= 0.
func rawBatch(t *testing.T, n int, prefix string, id int64, epoch int16, seq int32) []byte {
	t.Helper()
	_, p := openWirePartition(t, &stream.Options{Sync: stream.SyncNever})
	recs := make([]*stream.Record, n)
	for i := range recs {
		recs[i] = &stream.Record{Key: []byte("k"), Value: fmt.Appendf(nil, "%s-%d", prefix, i),
			Headers: []stream.Header{{Key: "h", Value: []byte("v")}}, Timestamp: time.UnixMilli(1_700_000_000_000 + int64(i))}
	}
	if _, err := p.Append(recs...); err != nil {
		t.Fatal(err)
	}
	b, _, err := p.ReadRaw(0, 1<<20, nil)
	if err != nil {
		t.Fatal(err)
	}
	if id >= 0 {
		binary.BigEndian.PutUint64(b[43:], uint64(id))
		binary.BigEndian.PutUint16(b[51:], uint16(epoch))
		binary.BigEndian.PutUint32(b[53:], uint32(seq))
		reCRC(b)
	}
	binary.BigEndian.PutUint64(b, 0)
	binary.BigEndian.PutUint32(b[12:], 0xffffffff) // a producer's partition leader epoch: -1
	return b
}

func reCRC(b []byte) {
	binary.BigEndian.PutUint32(b[17:], crc32.Checksum(b[21:], crc32.MakeTable(crc32.Castagnoli)))
}

// TestAppendRawReadRaw: a client's batch is stored as sent, with the
// offsets the partition assigned; ReadRaw gives back whole batches, from
// the one holding the offset asked for, at least one whatever maxBytes.
func TestAppendRawReadRaw(t *testing.T) {
	_, p := openWirePartition(t, &stream.Options{SegmentBytes: stream.KiB})
	var sent [][]byte
	for i := range 30 {
		b := rawBatch(t, 3, fmt.Sprint(i), -1, -1, -1)
		base, err := p.AppendRaw(b)
		if err != nil {
			t.Fatal(err)
		}
		if base != int64(i*3) {
			t.Fatalf("batch %d at offset %d, want %d", i, base, i*3)
		}
		sent = append(sent, b)
	}
	recs, err := p.Read(4, 1)
	if err != nil || len(recs) != 1 || string(recs[0].Value) != "1-1" || recs[0].Timestamp.UnixMilli() != 1_700_000_000_001 {
		t.Fatalf("Read(4): %v %v", recs, err)
	}
	// Offset 4 is inside the second batch: it comes whole, and only it
	// with a small maxBytes.
	got, next, err := p.ReadRaw(4, 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	if next != 6 {
		t.Fatalf("next %d, want 6", next)
	}
	want := bytes.Clone(sent[1])
	binary.BigEndian.PutUint64(want, 3)
	binary.BigEndian.PutUint32(want[12:], 0)
	if !bytes.Equal(got, want) {
		t.Fatalf("ReadRaw(4) is not the batch as sent, with its offset")
	}
	// All of it, across segments (SegmentBytes 1 KiB rolls often).
	all, next, err := p.ReadRaw(0, 1<<20, nil)
	if err != nil || next != 90 {
		t.Fatalf("ReadRaw(0): next %d, %v", next, err)
	}
	var total int
	for _, b := range sent {
		total += len(b)
	}
	if n := len(all); n != total {
		t.Fatalf("ReadRaw(0) returned %d bytes, want %d", n, total)
	}
	if got, next, err := p.ReadRaw(90, 100, nil); len(got) != 0 || next != 90 || err != nil {
		t.Fatalf("ReadRaw at the end: %d bytes, %d, %v", len(got), next, err)
	}
	if _, _, err := p.ReadRaw(91, 100, nil); !errors.Is(err, stream.ErrOffsetOutOfRange) {
		t.Fatalf("ReadRaw past the end: %v", err)
	}
}

// TestAppendRawRefuses: damaged, transactional and oversized batches
// are refused with their typed errors and write nothing.
func TestAppendRawRefuses(t *testing.T) {
	_, p := openWirePartition(t, &stream.Options{MaxRecordBytes: 1 << 10})
	good := rawBatch(t, 2, "x", -1, -1, -1)
	flip := func(at int) []byte { b := bytes.Clone(good); b[at] ^= 0x40; return b }
	txn := bytes.Clone(good)
	txn[22] |= 0x10
	reCRC(txn)
	badRecord := bytes.Clone(good)
	badRecord[61] = 0x7e // the first record's length: 63 bytes, past the end
	reCRC(badRecord)
	for name, c := range map[string]struct {
		b    []byte
		want error
	}{
		"crc":           {flip(len(good) - 2), stream.ErrCorrupt},
		"magic":         {flip(16), stream.ErrCorrupt},
		"length":        {good[:len(good)-1], stream.ErrCorrupt},
		"short":         {good[:30], stream.ErrCorrupt},
		"record":        {badRecord, stream.ErrCorrupt},
		"transactional": {txn, stream.ErrInvalidConfig},
		"too large":     {rawBatch(t, 100, "big", -1, -1, -1), stream.ErrRecordTooLarge},
	} {
		if _, err := p.AppendRaw(c.b); !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", name, err, c.want)
		}
	}
	if hw := p.HighWatermark(); hw != 0 {
		t.Fatalf("refused batches wrote %d records", hw)
	}
}

// TestAppendRawFixesMaxTimestamp: a batch whose header's max timestamp
// is not its newest record's (KafkaJS sends the newest of the
// timestamps its caller gave, so older ones when others are stamped
// with the time of sending) is appended with the records' newest and a
// CRC to match, as Kafka's broker does, and found by time.
func TestAppendRawFixesMaxTimestamp(t *testing.T) {
	_, p := openWirePartition(t, nil)
	good := rawBatch(t, 3, "x", -1, -1, -1) // records at 1_700_000_000_000 + 0..2
	for i, maxTime := range []int64{1 << 62, 1_700_000_000_000} {
		b := bytes.Clone(good)
		binary.BigEndian.PutUint64(b[35:], uint64(maxTime))
		reCRC(b)
		base, err := p.AppendRaw(b)
		if err != nil || base != int64(3*i) {
			t.Fatalf("max timestamp %d: AppendRaw: %d, %v", maxTime, base, err)
		}
	}
	stored, _, err := p.ReadRaw(0, 1<<20, nil) // CRC-checked
	if err != nil {
		t.Fatal(err)
	}
	if len(stored) != 2*len(good) {
		t.Fatalf("read %d bytes, want %d", len(stored), 2*len(good))
	}
	for i := range 2 {
		b := stored[i*len(good):]
		if got := int64(binary.BigEndian.Uint64(b[35:])); got != 1_700_000_000_002 {
			t.Errorf("batch %d stored with max timestamp %d, want its newest record's", i, got)
		}
	}
	if off, err := p.OffsetForTime(time.UnixMilli(1_700_000_000_002)); err != nil || off != 2 {
		t.Fatalf("OffsetForTime: %d, %v; want 2", off, err)
	}
}

// TestAppendRawIdempotent: a retried idempotent batch is answered with
// its first offset and not written twice; a gap and an old epoch are
// refused.
func TestAppendRawIdempotent(t *testing.T) {
	s, p := openWirePartition(t, nil)
	id, err := s.NewProducerID()
	if err != nil {
		t.Fatal(err)
	}
	if id2, _ := s.NewProducerID(); id2 == id {
		t.Fatal("NewProducerID repeated an ID")
	}
	first := rawBatch(t, 3, "a", id, 0, 0)
	second := rawBatch(t, 2, "b", id, 0, 3)
	for _, b := range [][]byte{first, second} {
		if _, err := p.AppendRaw(b); err != nil {
			t.Fatal(err)
		}
	}
	if base, err := p.AppendRaw(first); err != nil || base != 0 {
		t.Fatalf("retry of the first batch: %d, %v; want 0, nil", base, err)
	}
	if _, err := p.AppendRaw(rawBatch(t, 1, "gap", id, 0, 9)); !errors.Is(err, stream.ErrOutOfOrderSequence) {
		t.Fatalf("a gap: %v", err)
	}
	if _, err := p.AppendRaw(rawBatch(t, 1, "new", id, 1, 0)); err != nil {
		t.Fatalf("a new epoch: %v", err)
	}
	if _, err := p.AppendRaw(rawBatch(t, 1, "old", id, 0, 5)); !errors.Is(err, stream.ErrFenced) {
		t.Fatalf("an old epoch: %v", err)
	}
	if hw := p.HighWatermark(); hw != 6 {
		t.Fatalf("%d records, want 6", hw)
	}
}

// TestStoreOffsets: offsets stored by a wire-protocol coordinator are the
// group's committed offsets; refused while Go API members are in.
func TestStoreOffsets(t *testing.T) {
	s, _ := openWirePartition(t, nil)
	ctx := context.Background()
	g, err := s.ConsumerGroup("g", stream.GroupConfig{})
	if err != nil {
		t.Fatal(err)
	}
	tp := stream.TopicPartition{Topic: "t", Partition: 0}
	if err := g.StoreOffsets(ctx, map[stream.TopicPartition]stream.OffsetAndMetadata{tp: {Offset: 42, Metadata: "m"}}); err != nil {
		t.Fatal(err)
	}
	got, err := g.CommittedWithMetadata(ctx)
	if err != nil || got[tp].Offset != 42 || got[tp].Metadata != "m" {
		t.Fatalf("committed %v, %v", got, err)
	}
	g2, err := s.ConsumerGroup("g2", stream.GroupConfig{Topics: []string{"t"}})
	if err != nil {
		t.Fatal(err)
	}
	c, err := g2.Join(ctx, stream.ConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if !g2.HasMembers() {
		t.Fatal("HasMembers is false with a member")
	}
	if err := g2.StoreOffsets(ctx, map[stream.TopicPartition]stream.OffsetAndMetadata{tp: {Offset: 1}}); !errors.Is(err, stream.ErrGroupNotEmpty) {
		t.Fatalf("StoreOffsets with a Go API member: %v", err)
	}
}
