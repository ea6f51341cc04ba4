package stream_test

import (
	"errors"
	"math"
	"path/filepath"
	"testing"

	"github.com/instream/stream"
)

// TestReadReturnsOnlyWhatWasAsked: Read's maxBytes bounds the records
// returned, not the batches they were appended in, and a read from the
// middle of a batch starts exactly at its offset.
func TestReadReturnsOnlyWhatWasAsked(t *testing.T) {
	s, _ := open(t, &stream.Options{Sync: stream.SyncNever})
	p := partition(t, s, "t", stream.TopicConfig{})
	var b stream.Batch
	for i := range 100 {
		b.Add(nil, value(i))
	}
	if _, err := p.AppendBatch(&b); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		offset   int64
		maxBytes int
		want     int
	}{
		{0, 0, 1},
		{0, 1, 1},
		{50, 1, 1},
		{99, 1, 1},
		// Records 50 to 63 take 19 bytes each: length, attributes, two
		// deltas, null key, value length and 12-byte value, header count.
		{50, 19, 1},
		{50, 20, 2},
		{50, 3 * 19, 3},
		{50, 3*19 + 1, 4},
		{90, 1 << 20, 10},
		{0, math.MaxInt, 100},
	} {
		recs, err := p.Read(c.offset, c.maxBytes)
		if err != nil {
			t.Fatalf("Read(%d, %d): %v", c.offset, c.maxBytes, err)
		}
		if len(recs) != c.want {
			t.Errorf("Read(%d, %d): %d records, want %d", c.offset, c.maxBytes, len(recs), c.want)
		}
		checkValues(t, recs, int(c.offset))
		for i, r := range recs {
			if r.Offset != c.offset+int64(i) {
				t.Fatalf("Read(%d, %d): record %d at offset %d", c.offset, c.maxBytes, i, r.Offset)
			}
		}
	}
}

// sealedSegmentBatches writes 40 single-record batches into segments of
// 1 KiB, closes the stream, and returns the directory, the partition's
// directory and the batches of its first (sealed) segment.
func sealedSegmentBatches(t *testing.T) (dir, pdir string, batches []stream.SegmentBatch) {
	t.Helper()
	s, dir := open(t, &stream.Options{Sync: stream.SyncNever, SegmentBytes: stream.KiB})
	p := partition(t, s, "t", stream.TopicConfig{})
	appendN(t, p, 0, 40)
	pdir = p.Dir()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	sf, err := stream.OpenSegmentFile(filepath.Join(pdir, "00000000000000000000.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer sf.Close()
	for b, err := range sf.Batches() {
		if err != nil || b.Err != nil {
			t.Fatal(err, b.Err)
		}
		batches = append(batches, b)
	}
	if len(batches) < 8 {
		t.Fatalf("%d batches in the first segment, want 8 or more", len(batches))
	}
	return dir, pdir, batches
}

// TestReadPastDamagedSkippedHeader: a read skips the batches before its
// offset on their headers alone; damage to a skipped header's length
// must still be reported, as an ErrCorrupt naming that batch, not
// the one after it, and never as records at the wrong offsets.
func TestReadPastDamagedSkippedHeader(t *testing.T) {
	dir, pdir, batches := sealedSegmentBatches(t)
	log := filepath.Join(pdir, "00000000000000000000.log")
	const damaged = 3
	flipByte(t, log, batches[damaged].Position+8+3) // the length's low byte
	s := reopen(t, dir, &stream.Options{Sync: stream.SyncNever, SegmentBytes: stream.KiB})
	p := existing(t, s, "t", 0)
	for off := int64(damaged); off < int64(len(batches)); off++ {
		recs, err := p.Read(off, 1)
		var ce *stream.CorruptError
		if !errors.As(err, &ce) {
			t.Fatalf("Read(%d) past a damaged header: %d records, %v; want a *CorruptError", off, len(recs), err)
		}
		if ce.Position != batches[damaged].Position {
			t.Errorf("Read(%d): damage reported at %d, want %d (the damaged batch)", off, ce.Position, batches[damaged].Position)
		}
	}
	recs, err := p.Read(damaged-1, 1)
	if err != nil || len(recs) != 1 || recs[0].Offset != damaged-1 {
		t.Errorf("Read(%d) before the damage: %d records, %v", damaged-1, len(recs), err)
	}
}

// TestReadPastDamagedSkippedRecord: damage inside a skipped batch's
// records does not mislead the skip (its header is intact), so records
// after it read back; the damaged record itself is an ErrCorrupt.
func TestReadPastDamagedSkippedRecord(t *testing.T) {
	dir, pdir, batches := sealedSegmentBatches(t)
	log := filepath.Join(pdir, "00000000000000000000.log")
	const damaged = 3
	flipByte(t, log, batches[damaged].Position+batches[damaged].Size-2) // in the value
	s := reopen(t, dir, &stream.Options{Sync: stream.SyncNever, SegmentBytes: stream.KiB})
	p := existing(t, s, "t", 0)
	if recs, err := p.Read(damaged, 1); !errors.Is(err, stream.ErrCorrupt) {
		t.Errorf("Read(%d) of the damaged record: %d records, %v; want ErrCorrupt", damaged, len(recs), err)
	}
	for off := int64(damaged + 1); off < int64(len(batches)); off++ {
		recs, err := p.Read(off, 1)
		if err != nil || len(recs) != 1 || recs[0].Offset != off {
			t.Fatalf("Read(%d) after the damaged batch: %d records, %v", off, len(recs), err)
		}
		checkValues(t, recs, int(off))
	}
}

// TestReadSkipsBatchesPastTheFirstChunk: with a sparse index, a read
// skips several large batches on their headers to reach its offset, and
// reads past the chunk it fetched first. (A damaged index entry takes a
// read further: TestDamagedIndexes.)
func TestReadSkipsBatchesPastTheFirstChunk(t *testing.T) {
	s, _ := open(t, &stream.Options{Sync: stream.SyncNever, IndexIntervalBytes: 64 * stream.KiB})
	p := partition(t, s, "t", stream.TopicConfig{})
	big := make([]byte, 10*stream.KiB)
	for i := range 30 {
		big[0] = byte(i)
		if _, err := p.Append(&stream.Record{Value: big}); err != nil {
			t.Fatal(err)
		}
	}
	for off := range int64(30) {
		recs, err := p.Read(off, 1)
		if err != nil || len(recs) != 1 || recs[0].Offset != off || recs[0].Value[0] != byte(off) {
			t.Fatalf("Read(%d, 1): %d records, %v", off, len(recs), err)
		}
	}
}
