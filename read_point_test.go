package stream_test

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/instream/stream"
)

// Point reads (read_point.go): a Read of a record in a large batch of a
// sealed segment, once a Read checked that batch, reads only the records
// it returns. These tests check it returns exactly what the full read
// does, and that damage still fails with ErrCorrupt.

// pointBatches are the batch sizes of the log the tests read: large
// batches (remembered) between single records (not).
var pointBatches = []int{600, 1, 600, 300, 600, 1, 600, 600}

func pointKey(i int64) []byte { return []byte("k" + strconv.FormatInt(i, 10)) }

// pointValue is 100 bytes, so a batch of 600 takes about 70 KiB; its
// letters are random enough that a compressed batch still takes several
// KiB.
func pointValue(i int64) []byte {
	v := fmt.Appendf(nil, "value-%06d-", i)
	rng := rand.New(rand.NewPCG(uint64(i), 7))
	for len(v) < 100 {
		v = append(v, "acgt"[rng.IntN(4)])
	}
	return v
}

func pointHeaders(i int64) []stream.Header {
	if i%7 != 0 {
		return nil
	}
	return []stream.Header{{Key: "h", Value: []byte(strconv.FormatInt(i, 10))}}
}

// pointOptions make segments of about two large batches (uncompressed),
// and keep one sealed segment's files open.
func pointOptions() *stream.Options {
	return &stream.Options{Sync: stream.SyncNever, SegmentBytes: 128 * stream.KiB, MaxOpenFiles: 3}
}

// pointSegmentBytes makes segments of about one compressed batch.
const pointSegmentBytes = 16 * stream.KiB

// pointSpan is a batch of the log: its offsets and where it is.
type pointSpan struct {
	base, last int64
	file       string // its .log file
	pos, size  int64  // in the file
}

// writePointLog writes the pointBatches log (compressed with c) in a new
// directory, closes it, and returns the directory, its batches and the
// base offset of the last (active) segment.
func writePointLog(t *testing.T, c stream.Compression) (dir string, spans []pointSpan, activeBase int64) {
	t.Helper()
	dir = t.TempDir()
	opts := pointOptions()
	if c != stream.CompressNone {
		opts.SegmentBytes = pointSegmentBytes
	}
	s, err := stream.Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	p := partition(t, s, "t", stream.TopicConfig{})
	var b stream.Batch
	next := int64(0)
	for _, n := range pointBatches {
		b.Reset()
		stream.SetBatchCompressionForTest(&b, c)
		for range n {
			b.Add(pointKey(next), pointValue(next), pointHeaders(next)...)
			next++
		}
		if _, err := p.AppendBatch(&b); err != nil {
			t.Fatal(err)
		}
	}
	pdir := p.Dir()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	logs, err := filepath.Glob(filepath.Join(pdir, "*.log"))
	if err != nil || len(logs) < 3 {
		t.Fatalf("want at least 3 segments, got %v (%v)", logs, err)
	}
	slices.Sort(logs)
	for _, path := range logs {
		for _, bi := range fileBatches(t, path) {
			spans = append(spans, pointSpan{base: bi.base, last: bi.last, file: path, pos: bi.pos, size: bi.size})
		}
	}
	activeBase, _ = strconv.ParseInt(filepath.Base(logs[len(logs)-1])[:20], 10, 64)
	return dir, spans, activeBase
}

// openPointLog opens the log of writePointLog, logging to the returned
// buffer.
func openPointLog(t *testing.T, dir string, c stream.Compression) (*stream.Partition, *logBuffer) {
	t.Helper()
	opts := pointOptions()
	if c != stream.CompressNone {
		opts.SegmentBytes = pointSegmentBytes
	}
	logs := &logBuffer{}
	opts.Logger = slog.New(slog.NewTextHandler(logs, nil))
	return existing(t, reopen(t, dir, opts), "t", 0), logs
}

// pointMissLog is what a point read that fell back to the full read logs.
const pointMissLog = "a checked batch reads differently"

// checkPointRead checks that Read(off, maxBytes) returns want records
// from off on, each the one appended at its offset.
func checkPointRead(t *testing.T, p *stream.Partition, off int64, maxBytes, want int) {
	t.Helper()
	recs, err := p.Read(off, maxBytes)
	if err != nil {
		t.Fatalf("Read(%d, %d): %v", off, maxBytes, err)
	}
	if len(recs) != want {
		t.Fatalf("Read(%d, %d): %d records, want %d", off, maxBytes, len(recs), want)
	}
	for i, r := range recs {
		o := off + int64(i)
		if r.Offset != o || !bytes.Equal(r.Key, pointKey(o)) || !bytes.Equal(r.Value, pointValue(o)) ||
			r.Topic != "t" || r.Partition != 0 ||
			!slices.EqualFunc(r.Headers, pointHeaders(o), func(a, b stream.Header) bool {
				return a.Key == b.Key && bytes.Equal(a.Value, b.Value)
			}) {
			t.Fatalf("Read(%d, %d): record %d is offset %d key %q value %q headers %v, want offset %d",
				off, maxBytes, i, r.Offset, r.Key, r.Value, r.Headers, o)
		}
	}
}

// TestReadPointReturnsTheRecordAsked reads single records and short runs
// at batch boundaries and at random, twice: the first Read checks the
// batch, the second reads from the point cache, which it must be in.
func TestReadPointReturnsTheRecordAsked(t *testing.T) {
	dir, spans, activeBase := writePointLog(t, stream.CompressNone)
	p, logs := openPointLog(t, dir, stream.CompressNone)
	hw := p.HighWatermark()
	var offs []int64
	for _, s := range spans {
		offs = append(offs, s.base, s.base+1, s.last-1, s.last, (s.base+s.last)/2)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 200 {
		offs = append(offs, rng.Int64N(hw))
	}
	for pass := range 2 {
		for _, off := range offs {
			if off < 0 || off >= hw {
				continue
			}
			checkPointRead(t, p, off, 1, 1)
			// Three records' worth runs on into the next batch at a
			// batch's end.
			checkPointRead(t, p, off, 3*100, int(min(3, hw-off)))
		}
		if pass == 0 {
			continue
		}
		cached := 0
		for _, s := range spans {
			if s.base >= activeBase || s.size < 16<<10 {
				continue
			}
			// MaxOpenFiles 3 keeps one sealed segment open: read this
			// batch again, then ask.
			checkPointRead(t, p, s.base+5, 1, 1)
			if !stream.PointCachedForTest(p, s.base+5) {
				t.Errorf("batch [%d, %d] of a sealed segment is not in the point cache after two Reads", s.base, s.last)
			}
			cached++
		}
		if cached < 3 {
			t.Fatalf("only %d large batches in sealed segments: the test reads too few", cached)
		}
	}
	// A long read from a remembered batch crosses into the next ones.
	checkPointRead(t, p, spans[0].base+10, 1<<20, int(hw-(spans[0].base+10)))
	if strings.Contains(logs.String(), pointMissLog) {
		t.Fatalf("point reads fell back to full reads of undamaged batches:\n%s", logs)
	}
}

// TestReadPointCompressed: compressed batches are read whole (their
// records cannot be stepped over undecompressed) and still return just
// the record asked for.
func TestReadPointCompressed(t *testing.T) {
	dir, spans, _ := writePointLog(t, stream.CompressZstd)
	compressed := 0
	for _, s := range spans {
		data, err := os.ReadFile(s.file)
		if err != nil {
			t.Fatal(err)
		}
		if data[s.pos+22]&7 != 0 { // the codec bits of the attributes
			compressed++
		}
	}
	if compressed < 3 {
		t.Fatalf("%d compressed batches, want the large ones", compressed)
	}
	p, _ := openPointLog(t, dir, stream.CompressZstd)
	for pass := range 2 {
		for _, s := range spans {
			for _, off := range []int64{s.base, (s.base + s.last) / 2, s.last} {
				checkPointRead(t, p, off, 1, 1)
				if pass == 1 && stream.PointCachedForTest(p, off) {
					t.Fatalf("compressed batch [%d, %d] is in the point cache", s.base, s.last)
				}
			}
		}
	}
}

// bigSealedSpan returns a large batch of a sealed segment.
func bigSealedSpan(t *testing.T, spans []pointSpan, activeBase int64, nth int) pointSpan {
	t.Helper()
	for _, s := range spans {
		if s.base < activeBase && s.size >= 16<<10 {
			if nth == 0 {
				return s
			}
			nth--
		}
	}
	t.Fatal("too few large batches in sealed segments")
	return pointSpan{}
}

// TestReadPointCorruptBatch: a damaged byte in a record of a large batch
// fails every Read of the batch with ErrCorrupt, before and after Reads
// of the batches around it, and those still read.
func TestReadPointCorruptBatch(t *testing.T) {
	dir, spans, activeBase := writePointLog(t, stream.CompressNone)
	s := bigSealedSpan(t, spans, activeBase, 1)
	flip(t, s.file, s.pos+s.size/2, 3)
	p, _ := openPointLog(t, dir, stream.CompressNone)
	for range 2 {
		for _, off := range []int64{s.base, (s.base + s.last) / 2, s.last} {
			if _, err := p.Read(off, 1); !errors.Is(err, stream.ErrCorrupt) {
				t.Fatalf("Read(%d, 1) in a damaged batch: %v, want ErrCorrupt", off, err)
			}
		}
		checkPointRead(t, p, s.base-1, 1, 1)
		checkPointRead(t, p, s.last+1, 1, 1)
	}
}

// TestReadPointChecksAgainAfterReopeningFiles: the cache trusts a CRC
// checked while the segment's files were open. Once the file cache closed
// them, damage made meanwhile is found again.
func TestReadPointChecksAgainAfterReopeningFiles(t *testing.T) {
	dir, spans, activeBase := writePointLog(t, stream.CompressNone)
	a, b := bigSealedSpan(t, spans, activeBase, 0), pointSpan{}
	for _, s := range spans {
		if s.base < activeBase && s.size >= 16<<10 && s.file != a.file {
			b = s
			break
		}
	}
	if b.file == "" {
		t.Fatal("no large batch in a second sealed segment")
	}
	p, _ := openPointLog(t, dir, stream.CompressNone)
	off := a.base + 10
	checkPointRead(t, p, off, 1, 1)
	if !stream.PointCachedForTest(p, off) {
		t.Fatal("a checked batch is not in the point cache")
	}
	// MaxOpenFiles 3 keeps one sealed segment open: reading b closes a.
	checkPointRead(t, p, b.base, 1, 1)
	flip(t, a.file, a.pos+a.size-5, 0) // a value byte of a's last record
	if _, err := p.Read(off, 1); !errors.Is(err, stream.ErrCorrupt) {
		t.Fatalf("Read(%d, 1) after damage to its closed segment: %v, want ErrCorrupt", off, err)
	}
}

// TestReadPointDamageWhileOpen: bytes of a remembered batch overwritten
// under an open stream so that its records no longer step as they did
// send the Read the full way, which reports ErrCorrupt.
func TestReadPointDamageWhileOpen(t *testing.T) {
	dir, spans, activeBase := writePointLog(t, stream.CompressNone)
	s := bigSealedSpan(t, spans, activeBase, 0)
	p, logs := openPointLog(t, dir, stream.CompressNone)
	off := s.last - 1
	checkPointRead(t, p, off, 1, 1)
	if !stream.PointCachedForTest(p, off) {
		t.Fatal("a checked batch is not in the point cache")
	}
	f, err := os.OpenFile(s.file, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	junk := bytes.Repeat([]byte{0xff}, int(s.size-61))
	if _, err := f.WriteAt(junk, s.pos+61); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if _, err := p.Read(off, 1); !errors.Is(err, stream.ErrCorrupt) {
		t.Fatalf("Read(%d, 1) of an overwritten batch: %v, want ErrCorrupt", off, err)
	}
	if !strings.Contains(logs.String(), pointMissLog) {
		t.Fatalf("the point read did not notice the overwritten batch; log:\n%s", logs)
	}
}
