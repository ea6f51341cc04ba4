package stream

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"sync"
)

// A segment is one file of a partition's log, named by the offset of its
// first record, with its two sparse indexes:
//
//	00000000000000000000.log        RecordBatch v2 batches, back to back
//	00000000000000000000.index      (relativeOffset uint32, position uint32) every IndexIntervalBytes
//	00000000000000000000.timeindex  (timestamp int64, relativeOffset uint32) when the max timestamp grows
//
// All integers are big-endian, as Kafka's. The active segment (the last
// one) is preallocated to its full size with fallocate — so a full disk is
// an error at roll time, never a SIGBUS on a write — and memory-mapped, so
// an append is a copy into memory, not a system call. An all-zero header
// marks the end of an active segment's data. Sealing trims the file to its
// batches, syncs it and unmaps it; sealed segments are read with pread.
//
// The active segment keeps its offset index in memory (bounded by one
// segment's size); sealed segments search their index files, so memory
// stays flat as the log grows.
type segment struct {
	base int64      // offset of the first record; the file name
	path string     // of the .log file; indexes share its stem
	fs   fileSystem // where the files are

	// mu guards f, idx, tidx, m and closed against sealing and deletion:
	// readers hold it shared while they touch the files or the mapping.
	mu   sync.RWMutex
	f    vfsFile
	idx  vfsFile
	tidx vfsFile
	m    []byte // the writable mapping of an active segment; nil when sealed
	// mapper is the file that made m: m outlives the descriptor (the
	// file cache may close f), and Unmap works on a closed file.
	mapper vfsFile
	closed bool

	// Read-only mappings of a finalized segment's index files, made on
	// first lookup; a small index is a copy on the heap instead.
	idxMap, tidxMap       []byte
	idxMapped             bool
	idxOnHeap, tidxOnHeap bool

	// A segment's files (and a finalized one's index maps) are open
	// only while the Stream's file cache keeps them (file_cache.go): nil
	// f, idx and tidx mean closed, and each use of them pins the segment
	// to open them.
	cacheState

	// Batches of a finalized segment a Read checked (read_point.go).
	points pointCache

	allocated int64 // bytes of the .log reserved on disk (its size while active)
	limit     int64 // reserve no further than this ahead of the data: SegmentBytes
	// dirtyAhead populates reserved pages writable (SyncPeriodic,
	// SyncNever); see populate.
	dirtyAhead bool
	synced     int64 // bytes of the .log a successful fsync covered; guarded by the partition's mu

	// The fields below are guarded by the owning partition's mu.
	size       int64  // bytes of whole batches in the .log
	visible    int64  // bytes of batches below the high watermark; == size once sealed
	next       int64  // offset after the last record
	maxTime    int64  // largest record timestamp (ms); -1 when empty
	maxTimeRel uint32 // relative offset of the batch holding maxTime
	firstTime  int64  // when the first batch was appended (ms; after recovery, its timestamp), for SegmentAge; -1 when empty
	sealed     bool   // no more appends
	finalized  bool   // sealed, trimmed, synced, indexes complete on disk

	// In-memory index of the active segment, and how much of it is on disk.
	index      []indexEntry
	tindex     []timeEntry
	idxDone    int   // entries of index written to the .index file
	tidxDone   int   // entries of tindex written to the .timeindex file
	sinceIndex int64 // bytes appended since the last index entry
	indexEvery int64 // IndexIntervalBytes
}

var errSegmentClosed = errors.New("segment closed")

func segmentPath(dir string, base int64, ext string) string {
	return filepath.Join(dir, fmt.Sprintf("%020d%s", base, ext))
}

// corruptError builds an ErrCorrupt naming the file and byte position.
func corruptError(file string, pos int64, err error) error {
	return &CorruptError{File: file, Position: pos, Err: err}
}

// CorruptError reports damaged data on disk: which file, at which byte
// position, and what is wrong. It matches ErrCorrupt with errors.Is.
type CorruptError struct {
	File     string
	Position int64
	Err      error
}

func (e *CorruptError) Error() string {
	return onePrefix(fmt.Sprintf("stream: corrupt data in %s at byte %d: %v", e.File, e.Position, e.Err))
}

// Is makes errors.Is(err, ErrCorrupt) true.
func (e *CorruptError) Is(target error) bool { return target == ErrCorrupt }

// Unwrap returns the underlying problem.
func (e *CorruptError) Unwrap() error { return e.Err }

// createSegment creates the files of a new, empty active segment with room
// for capacity bytes, maps it, and syncs the directory.
func createSegment(fsys fileSystem, dir string, base, capacity, limit, indexEvery int64, dirtyAhead bool) (_ *segment, err error) {
	s := newSegment(fsys, dir, base, indexEvery)
	defer func() {
		if err != nil {
			// Unmap too: a failed reserve (a full disk) would leave the
			// mapping of the removed file behind, one per failed roll.
			s.unmapLocked()
			s.closeFiles()
			fsys.Remove(s.path)
			fsys.Remove(s.indexPath())
			fsys.Remove(s.timeIndexPath())
		}
	}()
	if s.f, err = fsys.OpenFile(s.path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644); err != nil {
		return nil, err
	}
	if s.idx, err = fsys.OpenFile(s.indexPath(), os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644); err != nil {
		return nil, err
	}
	if s.tidx, err = fsys.OpenFile(s.timeIndexPath(), os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644); err != nil {
		return nil, err
	}
	if err = s.activate(capacity, limit, dirtyAhead); err != nil {
		return nil, err
	}
	if _, err = s.reserve(min(int64(minAllocation), limit, int64(len(s.m)))); err != nil {
		return nil, err
	}
	if err = fsys.SyncDir(dir); err != nil {
		return nil, err
	}
	return s, nil
}

// activate maps capacity bytes of the log for writing. The mapping is
// virtual: disk space is reserved as appends reach it (reserve), so a
// topic with many partitions does not claim SegmentBytes of disk for each.
//
// Space is reserved no further than limit (SegmentBytes), except for a
// batch that does not fit below it on its own.
func (s *segment) activate(capacity, limit int64, dirtyAhead bool) error {
	s.limit, s.dirtyAhead = limit, dirtyAhead
	size, err := s.f.Size()
	if err != nil {
		return err
	}
	capacity = roundUpPage(max(capacity, size, 1))
	m, err := s.f.Map(capacity, true)
	if err != nil {
		return fmt.Errorf("mmap %s: %w", s.path, err)
	}
	s.m, s.mapper = m, s.f
	s.allocated = size
	return nil
}

// minAllocation and maxAllocationStep bound how the active segment's file
// grows: doubling from 64 KiB, at most 4 MiB at a time, since populating
// the new pages happens under the partition's lock.
const (
	minAllocation     = 64 * KiB
	maxAllocationStep = 4 * MiB
)

// reserve makes sure the bytes up to end are allocated on disk, so writes
// through the mapping cannot fail for want of space. It reports false when
// end is past the mapping (the caller rolls). The partition's mu is held.
func (s *segment) reserve(end int64) (bool, error) {
	if end > int64(len(s.m)) {
		return false, nil
	}
	if end <= s.allocated {
		return true, nil
	}
	c, err := s.pin()
	if err != nil {
		return false, err
	}
	defer c.unpin(s)
	grow := min(max(s.allocated, int64(minAllocation)), int64(maxAllocationStep))
	want := min(max(end, s.allocated+grow), max(end, s.limit), int64(len(s.m)))
	err = s.f.Allocate(want)
	if err != nil && want > end {
		// A nearly full disk may still hold what this append needs.
		want = end
		err = s.f.Allocate(want)
	}
	if err != nil {
		return false, fmt.Errorf("preallocate %s (%d bytes): %w", s.path, want, err)
	}
	populate(s.m[s.allocated:want], s.dirtyAhead)
	s.allocated = want
	return true, nil
}

func roundUpPage(n int64) int64 {
	const page = 4096
	return (n + page - 1) &^ (page - 1)
}

func (s *segment) indexPath() string     { return s.path[:len(s.path)-len(".log")] + ".index" }
func (s *segment) timeIndexPath() string { return s.path[:len(s.path)-len(".log")] + ".timeindex" }

func newSegment(fsys fileSystem, dir string, base, indexEvery int64) *segment {
	return &segment{
		base: base, path: segmentPath(dir, base, ".log"), fs: fsys,
		maxTime: -1, firstTime: -1, indexEvery: indexEvery,
	}
}

// openSegment opens the files of an existing segment; loadSealed or
// recoverActive then reads what they hold.
func openSegment(fsys fileSystem, dir string, base, indexEvery int64) (_ *segment, err error) {
	s := newSegment(fsys, dir, base, indexEvery)
	defer func() {
		if err != nil {
			s.closeFiles()
		}
	}()
	if s.f, err = fsys.OpenFile(s.path, os.O_RDWR, 0); err != nil {
		return nil, err
	}
	if s.idx, err = fsys.OpenFile(s.indexPath(), os.O_RDWR|os.O_CREATE, 0o644); err != nil {
		return nil, err
	}
	if s.tidx, err = fsys.OpenFile(s.timeIndexPath(), os.O_RDWR|os.O_CREATE, 0o644); err != nil {
		return nil, err
	}
	if s.size, err = s.f.Size(); err != nil {
		return nil, err
	}
	s.visible = s.size
	return s, nil
}

// loadSealed prepares a finalized segment that a later segment follows:
// its end offset is next, its newest timestamp comes from the last entry
// of its time index. Damaged or missing indexes are rebuilt from the log.
func (s *segment) loadSealed(next int64) error {
	s.next, s.sealed, s.finalized = next, true, true
	ok, err := s.indexesLookSane()
	if err != nil {
		return err
	}
	if !ok {
		if _, err := s.rebuildIndexes(nil); err != nil {
			return err
		}
	}
	var b [timeEntrySize]byte
	tsize, err := s.tidx.Size()
	if err != nil {
		return err
	}
	if tsize >= timeEntrySize {
		if _, err := s.tidx.ReadAt(b[:], tsize-timeEntrySize); err != nil {
			return err
		}
		ts, rel := int64(binary.BigEndian.Uint64(b[:])), binary.BigEndian.Uint32(b[8:])
		// The last time entry is the segment's newest timestamp, which
		// OffsetForTime uses to pick a segment and retention to expire
		// it. Check it against the log: its batch must have that max
		// timestamp, and the last batch (a genuine but earlier entry,
		// from a cut or reordered file, passes the first test) none
		// newer. When the headers themselves do not chain, the log is
		// damaged, not the index: keep the index, and let reads report
		// the damage.
		find := func(target int64) (h batchHeader, found, indexBad bool) {
			if pos, base, err := s.lookupLocked(target); err == nil {
				if h, ok := s.headerFor(pos, base, s.size, target); ok {
					return h, true, false
				}
			}
			h, ok := s.headerFor(0, s.base, s.size, target)
			return h, ok, ok // found from the start but not from the index: the index is wrong
		}
		target := s.base + int64(rel)
		indexBad := target >= s.next
		var last batchHeader
		if !indexBad {
			entry, okEntry, badEntry := find(target)
			l, okLast, badLast := find(s.next - 1)
			last = l
			indexBad = badEntry || badLast ||
				okEntry && (entry.BaseOffset != target || entry.MaxTimestamp != ts) ||
				okLast && (last.LastOffset() != s.next-1 || last.MaxTimestamp > ts)
		}
		if indexBad {
			bad, err := s.rebuildIndexes(nil)
			if err != nil {
				return err
			}
			if bad != nil {
				// The rebuilt index stops at damage in the log, and so
				// does its maxTime; keep the segment findable for the
				// times past it, where reads report the damage.
				s.maxTime = max(s.maxTime, ts, last.MaxTimestamp)
			}
			return nil // rebuildIndexes set maxTime
		}
		s.maxTime, s.maxTimeRel = ts, rel
	}
	return nil
}

// scanResult is what a scan of a log file found.
type scanResult struct {
	end       int64 // position after the last valid batch
	next      int64 // offset after the last valid batch
	bad       error // why the scan stopped before the end of the data, if it did
	zeroTail  bool  // the scan stopped at an all-zero header (preallocated space)
	lastBatch batchHeader
}

// scan validates batches from pos (where a batch with base offset
// nextOffset starts) to the end of the file, calling fn for each valid
// one. It stops at the first batch that is torn, out of sequence or fails
// its CRC, and reports why.
func (s *segment) scan(pos, nextOffset int64, fn func(h *batchHeader, pos int64)) (scanResult, error) {
	fileSize, err := s.f.Size()
	if err != nil {
		return scanResult{}, err
	}
	r := scanResult{end: pos, next: nextOffset}
	var hdr [batchHeaderSize]byte
	var buf []byte
	for r.end < fileSize {
		if fileSize-r.end < batchHeaderSize {
			if n, _ := s.f.ReadAt(hdr[:fileSize-r.end], r.end); allZero(hdr[:n]) {
				r.zeroTail = true
				return r, nil
			}
			r.bad = fmt.Errorf("torn batch header: %d bytes before end of file", fileSize-r.end)
			return r, nil
		}
		if _, err := s.f.ReadAt(hdr[:], r.end); err != nil {
			return r, err
		}
		if isZeroHeader(hdr[:]) {
			r.zeroTail = true
			return r, nil
		}
		h, err := parseBatchHeader(hdr[:])
		if err != nil {
			r.bad = err
			return r, nil
		}
		if r.end+h.Size() > fileSize {
			r.bad = fmt.Errorf("torn batch: %d bytes, %d left in file", h.Size(), fileSize-r.end)
			return r, nil
		}
		if h.BaseOffset != r.next {
			r.bad = fmt.Errorf("batch base offset %d, want %d", h.BaseOffset, r.next)
			return r, nil
		}
		if cap(buf) < int(h.Size()) {
			buf = make([]byte, h.Size())
		}
		buf = buf[:h.Size()]
		if _, err := s.f.ReadAt(buf, r.end); err != nil {
			return r, err
		}
		if err := checkBatch(buf, &h); err != nil {
			r.bad = err
			return r, nil
		}
		if fn != nil {
			fn(&h, r.end)
		}
		r.lastBatch = h
		r.end += h.Size()
		r.next = h.LastOffset() + 1
	}
	return r, nil
}

// zeroFrom reports whether the log file holds only zeros from pos to its
// end: the untrimmed preallocated tail of a segment.
func (s *segment) zeroFrom(pos int64) bool {
	size, err := s.f.Size()
	if err != nil {
		return false
	}
	buf := make([]byte, 64<<10)
	for pos < size {
		n := min(int64(len(buf)), size-pos)
		if _, err := s.f.ReadAt(buf[:n], pos); err != nil || !allZero(buf[:n]) {
			return false
		}
		pos += n
	}
	return true
}

// dataEnd returns the position after the last non-zero byte of the log
// between from and size (from when all are zero): how much data a cut at
// from drops, preallocated zeros aside.
func (s *segment) dataEnd(from, size int64) int64 {
	buf := make([]byte, 64<<10)
	for end := size; end > from; {
		start := max(from, end-int64(len(buf)))
		b := buf[:end-start]
		if _, err := s.f.ReadAt(b, start); err != nil {
			return size
		}
		for i := len(b) - 1; i >= 0; i-- {
			if b[i] != 0 {
				return start + int64(i) + 1
			}
		}
		end = start
	}
	return from
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// noteBatch updates the in-memory indexes and stats for a batch appended
// (or recovered) at pos. Guarded by the partition's mu.
func (s *segment) noteBatch(h *batchHeader, pos int64) {
	if s.firstTime < 0 {
		s.firstTime = h.MaxTimestamp
	}
	rel := uint32(h.BaseOffset - s.base)
	if h.MaxTimestamp > s.maxTime {
		s.maxTime = h.MaxTimestamp
		s.maxTimeRel = rel
	}
	if s.sinceIndex >= s.indexEvery && pos > 0 {
		s.index = append(s.index, indexEntry{rel: rel, pos: uint32(pos)})
		if n := len(s.tindex); n == 0 || s.tindex[n-1].ts < s.maxTime {
			s.tindex = append(s.tindex, timeEntry{ts: s.maxTime, rel: s.maxTimeRel})
		}
		s.sinceIndex = 0
	}
	s.sinceIndex += h.Size()
	s.size = pos + h.Size()
	s.next = h.LastOffset() + 1
}

// recoverActive validates the last segment of a partition: it scans from
// the last index entry that checks out (or from the start), truncates a
// torn or corrupt tail, and rebuilds the in-memory indexes. fromStart
// forces a scan of the whole file (a segment whose sync was not recorded).
// It returns what it truncated, if anything.
func (s *segment) recoverActive(fromStart bool) (events []RecoveryEvent, err error) {
	s.index, s.tindex = nil, nil
	pos, next := int64(0), s.base
	if !fromStart {
		pos, next, err = s.loadIndexForRecovery()
		if err != nil {
			return nil, err
		}
	}
	s.size = pos
	if pos == 0 {
		s.index, s.tindex, s.sinceIndex = s.index[:0], s.tindex[:0], 0
		s.maxTime, s.firstTime = -1, -1
	}
	note := func(h *batchHeader, at int64) { s.noteBatch(h, at) }
	r, err := s.scan(pos, next, note)
	if err != nil {
		return nil, err
	}
	// A batch that fails its check with valid batches chained after it
	// is damage (a flipped byte), not a torn tail: a tail torn by a
	// power cut ends the data the fsyncs covered, and a batch after it
	// would have had to reach the disk without the pages before it. Keep
	// it and the batches after it; reads of it report ErrCorrupt.
	for r.bad != nil {
		h, after, ok := s.chainAfterDamage(r.end, r.next)
		if !ok {
			break
		}
		events = append(events, RecoveryEvent{File: s.path, Position: r.end, Offset: r.next, Err: r.bad})
		s.noteBatch(&h, r.end)
		if r, err = s.scan(after, h.LastOffset()+1, note); err != nil {
			return nil, err
		}
	}
	s.size, s.next, s.visible = r.end, r.next, r.end
	fsize, err := s.f.Size()
	if err != nil {
		return nil, err
	}
	if r.bad != nil {
		events = append(events, RecoveryEvent{
			File: s.path, Position: r.end, Offset: r.next, Truncated: true,
			DroppedBytes: s.dataEnd(r.end, fsize) - r.end, Err: r.bad,
		})
	}
	if fsize != r.end {
		// Cut everything after the last valid batch, so the space
		// preallocated again reads as zeros.
		if err := s.f.Truncate(r.end); err != nil {
			return nil, err
		}
	}
	// Rewrite the index files to match what is in memory.
	if err := s.idx.Truncate(0); err != nil {
		return nil, err
	}
	if err := s.tidx.Truncate(0); err != nil {
		return nil, err
	}
	s.idxDone, s.tidxDone = 0, 0
	if err := s.flushIndexes(s.size); err != nil {
		return nil, err
	}
	if s.firstTime < 0 && s.size > 0 {
		s.firstTime = s.maxTime
	}
	return events, nil
}

// chainAfterDamage looks past a batch at pos that failed its check: when
// its header is whole (the offset expected, magic 2, a length inside the
// file), no page of it reads as zeros, and a valid batch with the next
// offset follows it, it returns the header and the position after the
// batch.
func (s *segment) chainAfterDamage(pos, base int64) (batchHeader, int64, bool) {
	var hdr [batchHeaderSize]byte
	if _, err := s.f.ReadAt(hdr[:], pos); err != nil {
		return batchHeader{}, 0, false
	}
	h, err := parseBatchHeader(hdr[:])
	if err != nil || h.BaseOffset != base {
		return batchHeader{}, 0, false
	}
	// A power cut during an fsync can persist a later page before an
	// earlier one: the batch is then torn, with pages (or their parts
	// inside it) reading as zeros, since preallocated space never
	// written reads as zeros. That is a torn tail, however valid the
	// batches after it: cut it.
	if size, err := s.f.Size(); err != nil || pos+h.Size() > size {
		return batchHeader{}, 0, false
	}
	buf := make([]byte, h.Size())
	if _, err := s.f.ReadAt(buf, pos); err != nil {
		return batchHeader{}, 0, false
	}
	const page = 4096
	for start := int64(0); start < int64(len(buf)); {
		end := min(int64(len(buf)), (pos+start)/page*page+page-pos)
		if allZero(buf[start:end]) {
			return batchHeader{}, 0, false
		}
		start = end
	}
	after := pos + h.Size()
	r, err := s.scan(after, h.LastOffset()+1, nil)
	if err != nil || r.end == after {
		return batchHeader{}, 0, false
	}
	return h, after, true
}

// loadIndexForRecovery reads the active segment's index files into memory
// and returns the position and offset of the last entry whose batch header
// is valid, dropping entries after it. With no usable entry it returns the
// start of the segment.
func (s *segment) loadIndexForRecovery() (pos, next int64, err error) {
	raw, err := io.ReadAll(io.NewSectionReader(s.idx, 0, 1<<31))
	if err != nil {
		return 0, s.base, err
	}
	traw, err := io.ReadAll(io.NewSectionReader(s.tidx, 0, 1<<31))
	if err != nil {
		return 0, s.base, err
	}
	var entries []indexEntry
	for i := 0; i+indexEntrySize <= len(raw); i += indexEntrySize {
		e := indexEntry{rel: binary.BigEndian.Uint32(raw[i:]), pos: binary.BigEndian.Uint32(raw[i+4:])}
		if n := len(entries); n > 0 && (e.rel <= entries[n-1].rel || e.pos <= entries[n-1].pos) || e.pos == 0 {
			break
		}
		// The entries before the last serve reads of the active
		// segment, whose in-memory index cannot be rebuilt: check each
		// points at a batch header with its offset (a header read, no
		// CRC); the scan from the last good entry re-adds the rest.
		if !s.headerAtMatches(int64(e.pos), s.base+int64(e.rel)) {
			break
		}
		entries = append(entries, e)
	}
	// Walk back to the last entry pointing at a batch that checks out.
	for len(entries) > 0 {
		e := entries[len(entries)-1]
		if s.batchAtMatches(int64(e.pos), s.base+int64(e.rel)) {
			break
		}
		entries = entries[:len(entries)-1]
	}
	if len(entries) == 0 {
		return 0, s.base, nil
	}
	last := entries[len(entries)-1]
	var tentries []timeEntry
	for i := 0; i+timeEntrySize <= len(traw); i += timeEntrySize {
		e := timeEntry{ts: int64(binary.BigEndian.Uint64(traw[i:])), rel: binary.BigEndian.Uint32(traw[i+8:])}
		if e.rel >= last.rel {
			break
		}
		if n := len(tentries); n > 0 && e.ts < tentries[n-1].ts {
			break
		}
		tentries = append(tentries, e)
	}
	// The newest time entry gives the segment's maxTime: check it
	// against its batch, and scan the whole segment when it is wrong.
	if n := len(tentries); n > 0 {
		e := tentries[n-1]
		pos, base := int64(0), s.base
		for _, ie := range entries {
			if ie.rel <= e.rel {
				pos, base = int64(ie.pos), s.base+int64(ie.rel)
			}
		}
		if !s.batchMaxTimeIs(pos, base, math.MaxInt64, s.base+int64(e.rel), e.ts) {
			return 0, s.base, nil
		}
	}
	// The batches before the last entry are not scanned: take their
	// first and newest timestamps from the indexes (the time index holds
	// the running maximum); the scan from the entry adds the rest.
	s.index, s.tindex = entries[:len(entries)-1], tentries
	s.maxTime = -1
	if n := len(tentries); n > 0 {
		s.maxTime, s.maxTimeRel = tentries[n-1].ts, tentries[n-1].rel
	}
	s.firstTime = s.firstBatchTime()
	// The scan re-adds the entry for the batch at last.pos.
	s.sinceIndex = s.indexEvery
	return int64(last.pos), s.base + int64(last.rel), nil
}

// headerAtMatches reports whether a batch header with the given base
// offset starts at pos (the CRC is not checked).
func (s *segment) headerAtMatches(pos, base int64) bool {
	var hdr [batchHeaderSize]byte
	if _, err := s.f.ReadAt(hdr[:], pos); err != nil {
		return false
	}
	h, err := parseBatchHeader(hdr[:])
	return err == nil && h.BaseOffset == base
}

// batchAtMatches reports whether a valid batch with the given base offset
// starts at pos.
func (s *segment) batchAtMatches(pos, base int64) bool {
	var hdr [batchHeaderSize]byte
	if _, err := s.f.ReadAt(hdr[:], pos); err != nil {
		return false
	}
	h, err := parseBatchHeader(hdr[:])
	if err != nil || h.BaseOffset != base {
		return false
	}
	if size, err := s.f.Size(); err != nil || pos+h.Size() > size {
		return false // a length past the file: no allocation for it
	}
	buf := make([]byte, h.Size())
	if _, err := s.f.ReadAt(buf, pos); err != nil {
		return false
	}
	return checkBatch(buf, &h) == nil
}

// firstBatchTime returns the max timestamp of the first batch, or -1.
func (s *segment) firstBatchTime() int64 {
	var hdr [batchHeaderSize]byte
	if _, err := s.f.ReadAt(hdr[:], 0); err != nil {
		return -1
	}
	h, err := parseBatchHeader(hdr[:])
	if err != nil {
		return -1
	}
	return h.MaxTimestamp
}

// sealLocked stops appends to the segment and completes its time index
// with the newest timestamp, as Kafka does on roll. The partition's mu is
// held. The in-memory indexes are immutable from here on.
func (s *segment) sealLocked() {
	s.sealed = true
	if n := len(s.tindex); s.maxTime >= 0 && (n == 0 || s.tindex[n-1].ts < s.maxTime) {
		s.tindex = append(s.tindex, timeEntry{ts: s.maxTime, rel: s.maxTimeRel})
	}
}

// finalizeFiles completes a sealed segment on disk: it syncs the log,
// writes the indexes in full, unmaps the log and trims it to its batches.
// It needs no lock: a sealed segment's batches and in-memory indexes no
// longer change, and only one goroutine finalizes a segment. The caller
// then marks it finalized under the partition's mu (markFinalizedLocked).
func (s *segment) finalizeFiles() error {
	// The descriptor is open before the mapping goes: the fsync below
	// then reports any write-back error since the last one (file_cache.go).
	c, err := s.pin()
	if err != nil {
		return err
	}
	defer c.unpin(s)
	// Unmap first: writing back pages that are still mapped makes the
	// kernel write-protect each one, with a TLB shootdown per page.
	s.mu.Lock()
	err = s.unmapLocked()
	s.mu.Unlock()
	if err != nil {
		return err
	}
	if err := s.f.Truncate(s.size); err != nil {
		return err
	}
	s.allocated = s.size
	if err := s.f.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", s.path, err)
	}
	// Index entries reach the disk only after the data they point to.
	if err := s.flushIndexes(s.size + 1); err != nil {
		return err
	}
	if err := s.idx.Sync(); err != nil {
		return err
	}
	return s.tidx.Sync()
}

// markFinalizedLocked switches reads of a finalized segment to its index
// files. The partition's mu is held.
func (s *segment) markFinalizedLocked() {
	s.index, s.tindex = nil, nil
	s.visible = s.size
	s.synced = s.size
	s.finalized = true
}

func (s *segment) unmapLocked() error {
	if s.m == nil {
		return nil
	}
	err := s.mapper.Unmap(s.m)
	s.m, s.mapper = nil, nil
	return err
}

// syncData makes the log's first n bytes durable (fdatasync).
func (s *segment) syncData(n int64) error {
	c, err := s.pin()
	if err != nil {
		return err
	}
	defer c.unpin(s)
	return s.f.SyncData(n)
}

// readAt reads len(p) bytes at pos from the mapping or the file.
func (s *segment) readAt(p []byte, pos int64) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return errSegmentClosed
	}
	if s.m != nil {
		if pos+int64(len(p)) > int64(len(s.m)) {
			return io.ErrUnexpectedEOF
		}
		copy(p, s.m[pos:])
		return nil
	}
	if s.f == nil {
		return errSegmentClosed
	}
	_, err := s.f.ReadAt(p, pos)
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return err
}

// close releases the files and the mapping. The partition must not use
// the segment afterwards; readers that still do get errSegmentClosed.
func (s *segment) close() error {
	s.forget()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	err := s.unmapLocked()
	return errors.Join(err, s.unmapIndexesLocked(), s.closeFiles())
}

func (s *segment) closeFiles() error {
	var errs []error
	for _, f := range []vfsFile{s.f, s.idx, s.tidx} {
		if f != nil {
			errs = append(errs, f.Close())
		}
	}
	return errors.Join(errs...)
}

// remove closes the segment and deletes its files: the log first, so a
// crash in between leaves only index files, which Open removes.
func (s *segment) remove() error {
	cerr := s.close()
	var errs []error
	for _, p := range []string{s.path, s.indexPath(), s.timeIndexPath()} {
		if err := s.fs.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(cerr, errors.Join(errs...))
}
