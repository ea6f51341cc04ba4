package stream

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"iter"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Offline inspection of a stream's files, for tools: SegmentFile decodes
// a .log batch by batch, as Kafka's kafka-dump-log does, and Verify checks
// a whole directory. Neither changes a byte.

// SegmentBatch describes one record batch of a segment file.
type SegmentBatch struct {
	Position      int64 // byte position in the .log file
	Size          int64 // bytes, header included
	BaseOffset    int64
	LastOffset    int64
	Count         int // records
	BaseTimestamp time.Time
	MaxTimestamp  time.Time
	Compression   Compression
	ProducerID    int64 // -1: not idempotent
	ProducerEpoch int16
	BaseSequence  int32
	LeaderEpoch   int32
	CRC           uint32
	// Err is nil for a whole batch whose CRC matches; otherwise a
	// *CorruptError saying what is wrong, and the batch is the last one
	// yielded.
	Err error
}

// SegmentFile is a .log file opened for reading batch by batch.
type SegmentFile struct {
	path string
	f    *os.File
	size int64
}

// OpenSegmentFile opens a segment's .log file read-only.
func OpenSegmentFile(path string) (*SegmentFile, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, errorf("stream: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, errorf("stream: %w", err)
	}
	return &SegmentFile{path: path, f: f, size: fi.Size()}, nil
}

// Close closes the file.
func (sf *SegmentFile) Close() error { return sf.f.Close() }

// Batches iterates over the file's batches in order. It ends at the end of
// the file, at an all-zero tail (preallocated space of an active segment
// that was not closed), or after a damaged batch, yielded with Err set. The
// second value is an I/O error, which also ends the iteration.
func (sf *SegmentFile) Batches() iter.Seq2[SegmentBatch, error] {
	return func(yield func(SegmentBatch, error) bool) {
		var hdr [batchHeaderSize]byte
		var buf []byte
		for pos := int64(0); pos < sf.size; {
			n := min(int64(batchHeaderSize), sf.size-pos)
			if _, err := sf.f.ReadAt(hdr[:n], pos); err != nil {
				yield(SegmentBatch{}, errorf("stream: read %s: %w", sf.path, err))
				return
			}
			if allZero(hdr[:n]) {
				return
			}
			b := SegmentBatch{Position: pos}
			if n < batchHeaderSize {
				b.Err = corruptError(sf.path, pos, fmt.Errorf("torn batch header: %d bytes before end of file", n))
				yield(b, nil)
				return
			}
			h, err := parseBatchHeader(hdr[:])
			b = batchInfo(pos, &h)
			if err == nil && pos+h.Size() > sf.size {
				err = fmt.Errorf("torn batch: %d bytes, %d left in file", h.Size(), sf.size-pos)
			}
			if err == nil {
				buf = slices.Grow(buf[:0], int(h.Size()))[:h.Size()]
				if _, rerr := sf.f.ReadAt(buf, pos); rerr != nil {
					yield(b, errorf("stream: read %s: %w", sf.path, rerr))
					return
				}
				err = checkBatch(buf, &h)
			}
			if err != nil {
				b.Err = corruptError(sf.path, pos, err)
				yield(b, nil)
				return
			}
			if !yield(b, nil) {
				return
			}
			pos += h.Size()
		}
	}
}

func batchInfo(pos int64, h *batchHeader) SegmentBatch {
	return SegmentBatch{
		Position: pos, Size: h.Size(), BaseOffset: h.BaseOffset, LastOffset: h.LastOffset(),
		Count: int(h.Count), BaseTimestamp: time.UnixMilli(h.BaseTimestamp), MaxTimestamp: time.UnixMilli(h.MaxTimestamp),
		Compression: h.Compression(), ProducerID: h.ProducerID, ProducerEpoch: h.ProducerEpoch,
		BaseSequence: h.BaseSequence, LeaderEpoch: h.LeaderEpoch, CRC: h.CRC,
	}
}

// Records decodes the records of a batch that Batches yielded without
// error.
func (sf *SegmentFile) Records(b SegmentBatch) ([]*Record, error) {
	if b.Position < 0 || b.Size < batchHeaderSize || b.Size > sf.size-b.Position {
		return nil, corruptError(sf.path, b.Position, fmt.Errorf("no batch of %d bytes at %d in a file of %d", b.Size, b.Position, sf.size))
	}
	buf := make([]byte, b.Size)
	if _, err := sf.f.ReadAt(buf, b.Position); err != nil {
		return nil, errorf("stream: read %s: %w", sf.path, err)
	}
	h, err := parseBatchHeader(buf)
	if err == nil && h.Size() != b.Size {
		err = fmt.Errorf("batch of %d bytes, not %d", h.Size(), b.Size)
	}
	if err == nil {
		err = checkBatch(buf, &h)
	}
	if err != nil {
		return nil, corruptError(sf.path, b.Position, err)
	}
	p := &Partition{} // decodeBatch needs no partition state
	recs, _, _, err := p.decodeBatch(buf, &h, h.BaseOffset, h.LastOffset()+1, math.MaxInt, nil)
	if err != nil {
		return nil, corruptError(sf.path, b.Position, err)
	}
	return recs, nil
}

// Verify checks every segment and index under dir, a Stream's directory,
// without changing anything: each batch's length, magic and CRC; offsets
// contiguous within and across the segments of a partition; each offset
// index entry pointing at the batch it names; time index entries in order
// and naming batches that exist. It returns the problems found, each a
// *CorruptError naming a file and byte position (damaged indexes are
// problems too, though Open rebuilds them). The error is for a directory
// that cannot be checked: one in use by an open Stream, or unreadable.
func Verify(dir string) ([]*CorruptError, error) {
	if dir == "" {
		return nil, argError("verify", "empty directory name")
	}
	lock, err := shareLock(dir)
	if err != nil {
		return nil, err
	}
	if lock != nil {
		defer lock.Close()
	}
	parts, err := os.ReadDir(filepath.Join(dir, "topics"))
	if err != nil {
		return nil, errorf("stream: verify %s: %w", dir, err)
	}
	var problems []*CorruptError
	for _, e := range parts {
		if !e.IsDir() {
			continue
		}
		ps, err := verifyPartition(filepath.Join(dir, "topics", e.Name()))
		if err != nil {
			return problems, err
		}
		problems = append(problems, ps...)
	}
	return problems, nil
}

// shareLock takes a shared, non-blocking flock on DIR/LOCK, opened
// read-only: it fails while a Stream holds the directory (Open's lock is
// exclusive), and keeps one from opening it during the check, without
// writing anything. A directory without a LOCK file has never been opened
// by a Stream; it gets no lock (nil), rather than a LOCK file created by a
// check that promises to change nothing.
func shareLock(dir string) (*os.File, error) {
	path := filepath.Join(dir, "LOCK")
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		if _, err := os.Stat(dir); err != nil {
			return nil, errorf("stream: verify %s: %w", dir, err)
		}
		return nil, nil
	}
	if err != nil {
		return nil, errorf("stream: verify %s: %w", dir, err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_SH|unix.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, errorf("stream: verify %s: the directory is in use by a Stream, which holds %s", dir, path)
		}
		return nil, errorf("stream: verify %s: lock %s: %w", dir, path, err)
	}
	return f, nil
}

func verifyPartition(pdir string) ([]*CorruptError, error) {
	entries, err := os.ReadDir(pdir)
	if err != nil {
		return nil, errorf("stream: verify %s: %w", pdir, err)
	}
	var bases []int64
	for _, e := range entries {
		if stem, ok := strings.CutSuffix(e.Name(), ".log"); ok {
			if n, err := strconv.ParseInt(stem, 10, 64); err == nil {
				bases = append(bases, n)
			}
		}
	}
	slices.Sort(bases)
	var problems []*CorruptError
	report := func(file string, pos int64, format string, args ...any) {
		problems = append(problems, &CorruptError{File: file, Position: pos, Err: fmt.Errorf(format, args...)})
	}
	for i, base := range bases {
		logPath := segmentPath(pdir, base, ".log")
		sf, err := OpenSegmentFile(logPath)
		if err != nil {
			return problems, err
		}
		next, end := base, int64(0)
		batches := map[int64]int64{} // base offset -> position
		var maxTime int64 = -1
		for b, err := range sf.Batches() {
			if err != nil {
				sf.Close()
				return problems, err
			}
			if b.Err != nil {
				var ce *CorruptError
				errors.As(b.Err, &ce)
				problems = append(problems, ce)
				break
			}
			if b.BaseOffset != next {
				report(logPath, b.Position, "batch base offset %d, want %d", b.BaseOffset, next)
				break
			}
			batches[b.BaseOffset] = b.Position
			maxTime = max(maxTime, b.MaxTimestamp.UnixMilli())
			next, end = b.LastOffset+1, b.Position+b.Size
		}
		sf.Close()
		if i+1 < len(bases) && next != bases[i+1] && len(problems) == 0 {
			report(logPath, end, "segment ends at offset %d, the next segment starts at %d", next, bases[i+1])
		}
		problems = append(problems, verifyIndexes(segmentPath(pdir, base, ""), base, next, batches, maxTime)...)
	}
	return problems, nil
}

// verifyIndexes checks a segment's .index and .timeindex against the
// batches found in its log, which were readable up to offset readable.
// Entries past that cannot be checked and are skipped.
func verifyIndexes(stem string, base, readable int64, batches map[int64]int64, maxTime int64) []*CorruptError {
	var problems []*CorruptError
	report := func(file string, pos int64, format string, args ...any) {
		problems = append(problems, &CorruptError{File: file, Position: pos, Err: fmt.Errorf(format, args...)})
	}
	idxPath, tidxPath := stem+".index", stem+".timeindex"
	if raw, err := readWhole(idxPath); err != nil {
		report(idxPath, 0, "%v", err)
	} else {
		if len(raw)%indexEntrySize != 0 {
			report(idxPath, int64(len(raw)/indexEntrySize*indexEntrySize), "%d stray bytes after the last entry", len(raw)%indexEntrySize)
		}
		var prev indexEntry
		for i := 0; i+indexEntrySize <= len(raw); i += indexEntrySize {
			e := indexEntry{rel: binary.BigEndian.Uint32(raw[i:]), pos: binary.BigEndian.Uint32(raw[i+4:])}
			if i > 0 && (e.rel <= prev.rel || e.pos <= prev.pos) {
				report(idxPath, int64(i), "entry (offset %d, position %d) does not follow (offset %d, position %d)", base+int64(e.rel), e.pos, base+int64(prev.rel), prev.pos)
				break
			}
			if base+int64(e.rel) >= readable {
				break
			}
			if pos, ok := batches[base+int64(e.rel)]; !ok || pos != int64(e.pos) {
				report(idxPath, int64(i), "entry (offset %d, position %d) names no batch of the log", base+int64(e.rel), e.pos)
				break
			}
			prev = e
		}
	}
	if raw, err := readWhole(tidxPath); err != nil {
		report(tidxPath, 0, "%v", err)
	} else {
		if len(raw)%timeEntrySize != 0 {
			report(tidxPath, int64(len(raw)/timeEntrySize*timeEntrySize), "%d stray bytes after the last entry", len(raw)%timeEntrySize)
		}
		prev := int64(-1 << 63)
		for i := 0; i+timeEntrySize <= len(raw); i += timeEntrySize {
			ts, rel := int64(binary.BigEndian.Uint64(raw[i:])), binary.BigEndian.Uint32(raw[i+8:])
			if base+int64(rel) >= readable {
				break
			}
			if ts < prev {
				report(tidxPath, int64(i), "timestamp %d goes back from %d", ts, prev)
				break
			}
			if _, ok := batches[base+int64(rel)]; !ok {
				report(tidxPath, int64(i), "entry names offset %d, where no batch starts", base+int64(rel))
				break
			}
			if ts > maxTime {
				report(tidxPath, int64(i), "timestamp %d is newer than every record of the log (%d)", ts, maxTime)
				break
			}
			prev = ts
		}
	}
	return problems
}

func readWhole(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(f)
}
