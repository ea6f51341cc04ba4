package stream_test

// Damage tests: a log is written and closed, then its files are cut,
// extended with garbage, bit-flipped or deleted, and the directory is
// reopened. Recovery must repair what is repairable (a torn or garbage
// tail of the last segment, any index) and report, never skip, what is
// not (a damaged batch in a sealed segment).

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/instream/stream"
)

const damageTopic = "damage"

// damageOptions make small segments and dense indexes, so a small log has
// many of both. SyncNever keeps the many reopens fast; Close syncs, and
// recovery does not depend on the policy.
func damageOptions() *stream.Options {
	return &stream.Options{
		Sync:               stream.SyncNever,
		SegmentBytes:       4 * stream.KiB,
		IndexIntervalBytes: 200,
		DefaultTopic:       stream.TopicConfig{Retention: -1},
	}
}

// damageT0 is the timestamp of record 0; record i is at damageT0 + 3i ms,
// so OffsetForTime has a simple right answer.
var damageT0 = time.UnixMilli(1_700_000_000_000)

func damageTime(offset int64) time.Time {
	return damageT0.Add(time.Duration(3*offset) * time.Millisecond)
}

// writeDamageLog writes batches of 1 to 5 records (by Append and by
// AppendBatch) until the partition has at least segments segments, closes
// the stream and returns the records, indexed by offset.
func writeDamageLog(t *testing.T, dir string, segments int, seed uint64) []*stream.Record {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 1))
	s, err := stream.Open(dir, damageOptions())
	if err != nil {
		t.Fatal(err)
	}
	top, err := s.CreateTopic(damageTopic, stream.TopicConfig{Retention: -1})
	if err != nil {
		t.Fatal(err)
	}
	p, _ := top.Partition(0)
	var all []*stream.Record
	var b stream.Batch
	// At least segments segments, the last one with some batches in it.
	for extra := 0; extra < 12; {
		if len(logFiles(t, dir)) >= segments {
			extra++
		}
		n := 1 + rng.IntN(5)
		recs := make([]*stream.Record, n)
		for i := range recs {
			off := int64(len(all) + i)
			r := &stream.Record{Value: make([]byte, 10+rng.IntN(60)), Timestamp: damageTime(off)}
			for j := range r.Value {
				r.Value[j] = byte(rng.Uint32())
			}
			if rng.IntN(2) == 0 {
				r.Key = fmt.Appendf(nil, "key-%d", off)
			}
			if rng.IntN(5) == 0 {
				r.Headers = []stream.Header{{Key: "h", Value: []byte("v")}}
			}
			recs[i] = r
		}
		var base int64
		if rng.IntN(2) == 0 {
			base, err = p.Append(recs...)
		} else {
			b.Reset()
			for _, r := range recs {
				b.AddRecord(r)
			}
			base, err = p.AppendBatch(&b)
		}
		if err != nil {
			t.Fatal(err)
		}
		if base != int64(len(all)) {
			t.Fatalf("append at %d, want %d", base, len(all))
		}
		all = append(all, recs...)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	return all
}

func partitionDir(dir string) string { return filepath.Join(dir, "topics", damageTopic+"-0") }

// logFiles returns the partition's .log files, oldest first.
func logFiles(t *testing.T, dir string) []string {
	t.Helper()
	logs, err := filepath.Glob(filepath.Join(partitionDir(dir), "*.log"))
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(logs)
	return logs
}

// batchInfo locates one batch in a .log file, read straight from the
// bytes (RecordBatch v2: baseOffset int64, batchLength int32, ...,
// lastOffsetDelta int32 at byte 23).
type batchInfo struct {
	pos, size  int64
	base, last int64
}

func (b batchInfo) end() int64 { return b.pos + b.size }

// fileBatches walks the batches of a .log file by their length fields and
// fails the test unless they end exactly at the end of the file.
func fileBatches(t *testing.T, path string) []batchInfo {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var bs []batchInfo
	for pos := int64(0); pos < int64(len(data)); {
		if int64(len(data))-pos < 61 {
			t.Fatalf("%s: %d stray bytes at %d", path, int64(len(data))-pos, pos)
		}
		b := batchInfo{
			pos:  pos,
			size: int64(binary.BigEndian.Uint32(data[pos+8:])) + 12,
			base: int64(binary.BigEndian.Uint64(data[pos:])),
		}
		b.last = b.base + int64(binary.BigEndian.Uint32(data[pos+23:]))
		if b.size < 61 || pos+b.size > int64(len(data)) {
			t.Fatalf("%s: batch at %d of %d bytes does not fit the file (%d bytes)", path, pos, b.size, len(data))
		}
		bs = append(bs, b)
		pos += b.size
	}
	return bs
}

// copyDir copies a stream directory (flat files and two levels of
// directories are all a stream has).
func copyDir(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		to := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(to, 0o755)
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(to, data, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
}

func sameRecord(got, want *stream.Record) bool {
	return bytes.Equal(got.Key, want.Key) && (got.Key == nil) == (want.Key == nil) &&
		bytes.Equal(got.Value, want.Value) &&
		slices.EqualFunc(got.Headers, want.Headers, func(a, b stream.Header) bool {
			return a.Key == b.Key && bytes.Equal(a.Value, b.Value)
		}) &&
		got.Timestamp.Equal(want.Timestamp)
}

func openDamaged(t *testing.T, dir string) (*stream.Stream, *stream.Partition) {
	t.Helper()
	s, err := stream.Open(dir, damageOptions())
	if err != nil {
		t.Fatalf("open after damage: %v", err)
	}
	top, err := s.Topic(damageTopic)
	if err != nil {
		s.Close()
		t.Fatal(err)
	}
	p, _ := top.Partition(0)
	return s, p
}

// readRange reads [from, to) with Read and compares with want (indexed by
// offset); it returns the first error, which the caller judges.
func readRange(t *testing.T, p *stream.Partition, from, to int64, want []*stream.Record) error {
	t.Helper()
	for off := from; off < to; {
		recs, err := p.Read(off, 1+int(off%3)*300)
		if err != nil {
			return err
		}
		if len(recs) == 0 {
			t.Fatalf("Read(%d) returned no records and no error below the high watermark %d", off, p.HighWatermark())
		}
		for _, r := range recs {
			if off >= to {
				break
			}
			if r.Offset != off {
				t.Fatalf("Read: offset %d, want %d", r.Offset, off)
			}
			if !sameRecord(r, want[off]) {
				t.Fatalf("record %d: got key %q value %x ts %v, want key %q value %x ts %v",
					off, r.Key, r.Value, r.Timestamp, want[off].Key, want[off].Value, want[off].Timestamp)
			}
			off++
		}
	}
	return nil
}

// checkRecovered checks a reopened, repaired log: the high watermark is
// wantHW, records [0, wantHW) read back exactly (with Read and with Scan),
// OffsetForTime is right, the next append lands at wantHW, and after Close
// the last .log holds exactly its batches, ending with that append.
func checkRecovered(t *testing.T, dir string, want []*stream.Record, wantHW int64) {
	t.Helper()
	s, p := openDamaged(t, dir)
	closed := false
	defer func() {
		if !closed {
			s.Close()
		}
	}()
	if hw := p.HighWatermark(); hw != wantHW {
		t.Fatalf("HighWatermark = %d, want %d", hw, wantHW)
	}
	if err := readRange(t, p, 0, wantHW, want); err != nil {
		t.Fatalf("read: %v", err)
	}
	checkScan(t, p, want, wantHW, nil)
	checkOffsetForTime(t, p, wantHW)
	base, err := p.Append(&stream.Record{Value: []byte("after recovery"), Timestamp: damageTime(wantHW)})
	if err != nil {
		t.Fatalf("append after recovery: %v", err)
	}
	if base != wantHW {
		t.Fatalf("append after recovery at %d, want %d", base, wantHW)
	}
	closed = true
	if err := s.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	logs := logFiles(t, dir)
	bs := fileBatches(t, logs[len(logs)-1])
	if len(bs) == 0 || bs[len(bs)-1].base != wantHW {
		t.Fatalf("after close, %s does not end with the batch appended at %d: %+v", logs[len(logs)-1], wantHW, bs)
	}
	checkIndexFiles(t, dir)
}

// checkScan scans from 0 and expects records [0, hw) in order, then, when
// wantErr is set, an error it accepts.
func checkScan(t *testing.T, p *stream.Partition, want []*stream.Record, hw int64, wantErr func(error)) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	next := int64(0)
	for r, err := range p.Scan(ctx, 0) {
		if err != nil {
			if wantErr == nil || errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("scan at %d: %v", next, err)
			}
			wantErr(err)
			return
		}
		if r.Offset != next {
			t.Fatalf("scan: offset %d, want %d", r.Offset, next)
		}
		if !sameRecord(r, want[next]) {
			t.Fatalf("scan: record %d differs", next)
		}
		next++
		if next == hw && wantErr == nil {
			return
		}
	}
	t.Fatalf("scan ended at %d without an error", next)
}

// checkOffsetForTime asks for every record's time, the times between, and
// times before the first and after the last record.
func checkOffsetForTime(t *testing.T, p *stream.Partition, hw int64) {
	t.Helper()
	check := func(at time.Time, want int64) {
		t.Helper()
		got, err := p.OffsetForTime(at)
		if err != nil {
			t.Fatalf("OffsetForTime(%v): %v", at.Sub(damageT0), err)
		}
		if got != want {
			t.Fatalf("OffsetForTime(T0+%v) = %d, want %d", at.Sub(damageT0), got, want)
		}
	}
	check(damageT0.Add(-time.Hour), 0)
	for off := int64(0); off < hw; off++ {
		check(damageTime(off), off)
		check(damageTime(off).Add(-time.Millisecond), off)
		check(damageTime(off).Add(time.Millisecond), off+1)
	}
	check(damageTime(hw+10), hw)
}

// checkIndexFiles checks, after Close, that every .index entry points at
// the batch it names and every .timeindex entry holds the newest
// timestamp up to the batch it names.
func checkIndexFiles(t *testing.T, dir string) {
	t.Helper()
	for _, log := range logFiles(t, dir) {
		stem := log[:len(log)-len(".log")]
		var segBase int64
		fmt.Sscanf(filepath.Base(stem), "%d", &segBase)
		bs := fileBatches(t, log)
		at := map[int64]batchInfo{}
		for _, b := range bs {
			at[b.pos] = b
		}
		idx, err := os.ReadFile(stem + ".index")
		if err != nil {
			t.Fatal(err)
		}
		if len(idx)%8 != 0 {
			t.Fatalf("%s.index: %d bytes", stem, len(idx))
		}
		for i := 0; i < len(idx); i += 8 {
			rel, pos := binary.BigEndian.Uint32(idx[i:]), binary.BigEndian.Uint32(idx[i+4:])
			if b, ok := at[int64(pos)]; !ok || b.base != segBase+int64(rel) {
				t.Fatalf("%s.index entry %d (%d, %d) points at no batch with that offset", stem, i/8, rel, pos)
			}
		}
	}
}

// TestTornTail cuts the last segment at every byte of its last two
// batches and at a sample of earlier points, with the closed segment's
// full index (entries past the cut) left in place.
func TestTornTail(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 2))
	pristine := t.TempDir()
	want := writeDamageLog(t, pristine, 3, seed)
	logs := logFiles(t, pristine)
	last := logs[len(logs)-1]
	bs := fileBatches(t, last)
	if len(bs) < 4 {
		t.Fatalf("last segment has %d batches; want more to cut", len(bs))
	}
	idx, _ := os.ReadFile(last[:len(last)-4] + ".index")
	segBase := bs[0].base
	end := bs[len(bs)-1].end()
	// Every byte of the last batch, every third of the one before.
	var cuts []int64
	for c := bs[len(bs)-2].pos; c < end; c++ {
		if c >= bs[len(bs)-1].pos || c%3 == 0 {
			cuts = append(cuts, c)
		}
	}
	cuts = append(cuts, 0, 1, bs[1].pos)
	// Just before indexed batches, leaving index entries past the cut.
	for i := 0; i+8 <= len(idx); i += 8 {
		pos := int64(binary.BigEndian.Uint32(idx[i+4:]))
		cuts = append(cuts, pos-1, pos-30)
	}
	for range 20 {
		cuts = append(cuts, rng.Int64N(bs[len(bs)-2].pos))
	}
	if testing.Short() {
		// A random 40, half of them stale-index cuts (a plain sample
		// held fewer than 10 of those one run in six).
		rng.Shuffle(len(cuts), func(i, j int) { cuts[i], cuts[j] = cuts[j], cuts[i] })
		isStale := func(cut int64) bool {
			return len(idx) >= 8 && int64(binary.BigEndian.Uint32(idx[len(idx)-4:])) >= cut
		}
		var picked, rest []int64
		for _, c := range cuts {
			if isStale(c) && len(picked) < 20 {
				picked = append(picked, c)
			} else {
				rest = append(rest, c)
			}
		}
		cuts = append(picked, rest[:40-len(picked)]...)
	}
	// The stale-index case: cuts with index entries at or past them.
	stale := 0
	for _, cut := range cuts {
		for i := 0; i+8 <= len(idx); i += 8 {
			if int64(binary.BigEndian.Uint32(idx[i+4:])) >= cut {
				stale++
				break
			}
		}
	}
	if stale < 10 {
		t.Fatalf("only %d of %d cuts leave index entries past the cut; the stale-index case is barely exercised", stale, len(cuts))
	}
	t.Logf("%d cuts, %d with stale index entries past the cut", len(cuts), stale)
	for _, cut := range cuts {
		t.Run(fmt.Sprintf("cut%d", cut), func(t *testing.T) {
			dir := t.TempDir()
			copyDir(t, pristine, dir)
			if err := os.Truncate(filepath.Join(partitionDir(dir), filepath.Base(last)), cut); err != nil {
				t.Fatal(err)
			}
			wantHW := segBase
			for _, b := range bs {
				if b.end() <= cut {
					wantHW = b.last + 1
				}
			}
			checkRecovered(t, dir, want, wantHW)
		})
		if t.Failed() {
			break
		}
	}
}

// TestGarbageTail appends random bytes or zeros after the last batch of
// the last segment: recovery drops them and nothing else.
func TestGarbageTail(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 3))
	pristine := t.TempDir()
	want := writeDamageLog(t, pristine, 2, seed)
	logs := logFiles(t, pristine)
	last := filepath.Base(logs[len(logs)-1])
	hw := int64(len(want))
	for i := range 24 {
		var tail []byte
		switch i % 3 {
		case 0: // random garbage
			tail = make([]byte, 1+rng.IntN(300))
			for j := range tail {
				tail[j] = byte(rng.Uint32())
			}
		case 1: // zeros, as preallocated space
			tail = make([]byte, 1+rng.IntN(9000))
		case 2: // a plausible header: the next base offset, a length, magic 2, then garbage
			tail = make([]byte, 61+rng.IntN(200))
			for j := range tail {
				tail[j] = byte(rng.Uint32())
			}
			binary.BigEndian.PutUint64(tail, uint64(hw))
			binary.BigEndian.PutUint32(tail[8:], uint32(len(tail)-12))
			tail[16] = 2
		}
		t.Run(fmt.Sprintf("%d-%dbytes", i, len(tail)), func(t *testing.T) {
			dir := t.TempDir()
			copyDir(t, pristine, dir)
			f, err := os.OpenFile(filepath.Join(partitionDir(dir), last), os.O_WRONLY|os.O_APPEND, 0)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := f.Write(tail); err != nil {
				t.Fatal(err)
			}
			f.Close()
			checkRecovered(t, dir, want, hw)
		})
	}
}

// flip flips bit of the byte at pos in path.
func flip(t *testing.T, path string, pos int64, bit uint) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var b [1]byte
	if _, err := f.ReadAt(b[:], pos); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 1 << bit
	if _, err := f.WriteAt(b[:], pos); err != nil {
		t.Fatal(err)
	}
}

// TestFlippedBitSealedSegment flips one bit inside a batch of a sealed
// segment. The partitionLeaderEpoch field (bytes 12-15) is left alone:
// Kafka's CRC does not cover it, so no reader can notice a flip there.
func TestFlippedBitSealedSegment(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 4))
	pristine := t.TempDir()
	want := writeDamageLog(t, pristine, 4, seed)
	hw := int64(len(want))
	logs := logFiles(t, pristine)
	sealed := logs[1] // neither the first nor the last
	bs := fileBatches(t, sealed)
	type damage struct {
		batch int
		at    int64 // byte within the batch
		bit   int   // -1: random
	}
	var cases []damage
	// Every header field, then record bytes, in the first, a middle and
	// the last batch of the segment. Some bits are fixed: the low bit of
	// lastOffsetDelta (byte 26) and of the length (byte 11) move the
	// batch's end, which a reader skipping the batch must not trust.
	for _, bi := range []int{0, len(bs) / 2, len(bs) - 1} {
		for _, at := range []int64{0, 7, 8, 11, 16, 17, 20, 21, 22, 23, 26, 27, 34, 35, 42, 43, 51, 53, 57, 60} {
			cases = append(cases, damage{bi, at, -1})
		}
		cases = append(cases, damage{bi, 26, 0}, damage{bi, 26, 1}, damage{bi, 11, 2}, damage{bi, 42, 7}, damage{bi, 41, 3})
		for range 6 {
			cases = append(cases, damage{bi, 61 + rng.Int64N(bs[bi].size-61), -1})
		}
	}
	if testing.Short() {
		rng.Shuffle(len(cases), func(i, j int) { cases[i], cases[j] = cases[j], cases[i] })
		cases = cases[:15]
	}
	for _, c := range cases {
		b := bs[c.batch]
		bit := uint(c.bit)
		if c.bit < 0 {
			bit = uint(rng.IntN(8))
		}
		t.Run(fmt.Sprintf("batch%d-byte%d-bit%d", c.batch, c.at, bit), func(t *testing.T) {
			dir := t.TempDir()
			copyDir(t, pristine, dir)
			path := filepath.Join(partitionDir(dir), filepath.Base(sealed))
			flip(t, path, b.pos+c.at, bit)
			s, p := openDamaged(t, dir)
			defer s.Close()
			if got := p.HighWatermark(); got != hw {
				t.Fatalf("HighWatermark = %d after damage to a sealed segment, want %d", got, hw)
			}
			isOurs := func(err error, what string) {
				t.Helper()
				var ce *stream.CorruptError
				if !errors.Is(err, stream.ErrCorrupt) || !errors.As(err, &ce) {
					t.Fatalf("%s: error %v, want a *CorruptError", what, err)
				}
				if ce.File != path || ce.Position != b.pos {
					t.Fatalf("%s: corrupt error names %s at %d, want %s at %d (%v)", what, ce.File, ce.Position, path, b.pos, err)
				}
			}
			// OffsetForTime of the damaged batch's times: the right
			// offset (found before reaching the damage) or the error,
			// never a wrong offset.
			for off := b.base; off <= b.last; off++ {
				got, err := p.OffsetForTime(damageTime(off))
				if err != nil {
					isOurs(err, fmt.Sprintf("OffsetForTime(time of %d)", off))
				} else if got != off {
					t.Fatalf("OffsetForTime(time of %d) = %d with the batch [%d, %d] damaged", off, got, b.base, b.last)
				}
			}
			// Every offset of the damaged batch: an error naming it.
			for off := b.base; off <= b.last; off++ {
				recs, err := p.Read(off, 1)
				if err == nil {
					t.Fatalf("Read(%d) in the damaged batch [%d, %d] at %s:%d: %d records, no error",
						off, b.base, b.last, path, b.pos, len(recs))
				}
				isOurs(err, fmt.Sprintf("Read(%d)", off))
			}
			// Every other segment still reads, and so does the damaged
			// segment before the damaged batch.
			segs := fileBatches(t, logs[0])
			if err := readRange(t, p, 0, segs[len(segs)-1].last+1, want); err != nil {
				t.Fatalf("read first segment: %v", err)
			}
			if err := readRange(t, p, bs[0].base, b.base, want); err != nil {
				t.Fatalf("read before the damaged batch: %v", err)
			}
			if err := readRange(t, p, bs[len(bs)-1].last+1, hw, want); err != nil {
				t.Fatalf("read after the damaged segment: %v", err)
			}
			// Later batches of the damaged segment: right records, or
			// the same error.
			if err := readRange(t, p, b.last+1, bs[len(bs)-1].last+1, want); err != nil {
				isOurs(err, "read after the damaged batch")
			}
			// A full scan stops at the damage with the error.
			checkScan(t, p, want, hw, func(err error) { isOurs(err, "Scan") })
			// Appends still work, at the high watermark.
			if base, err := p.Append(&stream.Record{Value: []byte("x"), Timestamp: damageTime(hw)}); err != nil || base != hw {
				t.Fatalf("append after damage: %d, %v; want %d", base, err, hw)
			}
		})
	}
}

// TestDamagedIndexes damages the .index and .timeindex files of a sealed
// segment and of the active one, in every way we can think of: every
// record must still read back and OffsetForTime must stay right, since
// indexes are rebuildable from the log.
func TestDamagedIndexes(t *testing.T) {
	seed := damageSeed(t)
	rng := rand.New(rand.NewPCG(seed, 5))
	pristine := t.TempDir()
	want := writeDamageLog(t, pristine, 4, seed)
	hw := int64(len(want))
	logs := logFiles(t, pristine)
	damages := []struct {
		name string
		do   func(t *testing.T, path string)
	}{
		{"delete", func(t *testing.T, path string) {
			if err := os.Remove(path); err != nil {
				t.Fatal(err)
			}
		}},
		{"empty", func(t *testing.T, path string) { truncate(t, path, func(n int64) int64 { return 0 }) }},
		{"tornEntry", func(t *testing.T, path string) { truncate(t, path, func(n int64) int64 { return max(n-5, 0) }) }},
		{"half", func(t *testing.T, path string) { truncate(t, path, func(n int64) int64 { return n / 2 }) }},
		{"flipBits", func(t *testing.T, path string) {
			n := fileSize(t, path)
			for range 3 {
				if n > 0 {
					flip(t, path, rng.Int64N(n), uint(rng.IntN(8)))
				}
			}
		}},
		{"flipHighBits", func(t *testing.T, path string) {
			// High bits of every field of the last entry and of one in
			// the middle: offsets and positions far off, times far off.
			n := fileSize(t, path)
			entry := int64(8)
			if filepath.Ext(path) == ".timeindex" {
				entry = 12
			}
			for _, e := range []int64{n/entry - 1, n / entry / 2} {
				if e >= 0 && n > 0 {
					for f := int64(0); f < entry; f += 4 {
						flip(t, path, e*entry+f, uint(rng.IntN(8)))
					}
				}
			}
		}},
		{"garbage", func(t *testing.T, path string) {
			data := make([]byte, fileSize(t, path))
			for i := range data {
				data[i] = byte(rng.Uint32())
			}
			writeFile(t, path, data)
		}},
		{"zeros", func(t *testing.T, path string) { writeFile(t, path, make([]byte, fileSize(t, path))) }},
		{"extraGarbage", func(t *testing.T, path string) {
			data, _ := os.ReadFile(path)
			for range 24 {
				data = append(data, byte(rng.Uint32()))
			}
			writeFile(t, path, data)
		}},
		{"swapEntries", func(t *testing.T, path string) {
			data, _ := os.ReadFile(path)
			entry := 8
			if filepath.Ext(path) == ".timeindex" {
				entry = 12
			}
			if n := len(data) / entry; n >= 2 {
				a, b := data[:entry], data[(n-1)*entry:]
				tmp := slices.Clone(a)
				copy(a, b)
				copy(b, tmp)
			}
			writeFile(t, path, data)
		}},
	}
	targets := map[string]string{"sealed": logs[1], "active": logs[len(logs)-1]}
	for _, target := range []string{"sealed", "active"} {
		for _, files := range [][]string{{".index"}, {".timeindex"}, {".index", ".timeindex"}} {
			for _, d := range damages {
				name := fmt.Sprintf("%s%s/%s", target, files, d.name)
				t.Run(name, func(t *testing.T) {
					dir := t.TempDir()
					copyDir(t, pristine, dir)
					stem := filepath.Join(partitionDir(dir), filepath.Base(targets[target]))
					stem = stem[:len(stem)-len(".log")]
					for _, ext := range files {
						d.do(t, stem+ext)
					}
					s, p := openDamaged(t, dir)
					defer s.Close()
					if got := p.HighWatermark(); got != hw {
						t.Fatalf("HighWatermark = %d, want %d", got, hw)
					}
					if err := readRange(t, p, 0, hw, want); err != nil {
						t.Fatalf("read: %v", err)
					}
					for off := int64(0); off < hw; off++ {
						recs, err := p.Read(off, 1)
						if err != nil || len(recs) == 0 || recs[0].Offset != off || !sameRecord(recs[0], want[off]) {
							t.Fatalf("Read(%d, 1): %d records, %v", off, len(recs), err)
						}
					}
					checkOffsetForTime(t, p, hw)
				})
			}
		}
	}
}

func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

func truncate(t *testing.T, path string, size func(int64) int64) {
	t.Helper()
	if err := os.Truncate(path, size(fileSize(t, path))); err != nil {
		t.Fatal(err)
	}
}

func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// damageSeed returns the seed of a damage test, logged so a failure can be
// replayed with STREAM_DAMAGE_SEED (the subtests share one generator:
// replay the whole test, not one subtest).
func damageSeed(t *testing.T) uint64 {
	t.Helper()
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("STREAM_DAMAGE_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("STREAM_DAMAGE_SEED: %v", err)
		}
		seed = v
	}
	t.Logf("seed %d (rerun with STREAM_DAMAGE_SEED=%d)", seed, seed)
	return seed
}

// TestTimeIndexNegativeEntry flips the sign bit of the first time entry
// of a sealed segment. OffsetForTime took an entry with a negative time
// for "no entry below the time sought", so it trusted it unchecked and
// started its search at the entry's batch, past the segment's first
// records: asked for a time just after the previous segment, it returned
// an offset several records too late.
func TestTimeIndexNegativeEntry(t *testing.T) {
	dir := t.TempDir()
	want := writeDamageLog(t, dir, 4, 1)
	hw := int64(len(want))
	stem := strings.TrimSuffix(logFiles(t, dir)[1], ".log")
	data, err := os.ReadFile(stem + ".timeindex")
	if err != nil {
		t.Fatal(err)
	}
	if len(data) < 12 || binary.BigEndian.Uint32(data[8:]) == 0 {
		t.Fatalf("the first time entry of %s must name a batch after the segment's first", stem)
	}
	flip(t, stem+".timeindex", 0, 7)
	s, p := openDamaged(t, dir)
	defer s.Close()
	checkOffsetForTime(t, p, hw)
}
