package stream

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sort"
	"sync"
)

// A segment's two sparse indexes. The .index file maps offsets to byte
// positions in the .log: an 8-byte entry (relative offset uint32,
// position uint32) for the first batch after every IndexIntervalBytes.
// The .timeindex maps times to offsets: a 12-byte entry (timestamp int64,
// relative offset uint32) whenever the running maximum timestamp grows at
// an index entry, and one for the segment's newest timestamp when it is
// sealed, as Kafka writes them. The active segment keeps both in memory;
// a finalized one maps its files read-only on first use. Both are
// rebuildable from the log, and every entry is checked against the log
// before it is trusted.

type indexEntry struct {
	rel uint32 // offset - base
	pos uint32 // byte position in .log
}

type timeEntry struct {
	ts  int64  // max timestamp so far (ms)
	rel uint32 // relative offset of the batch where it was reached
}

const (
	indexEntrySize = 8
	timeEntrySize  = 12
)

// indexesLookSane checks what a sealed segment's indexes can show cheaply:
// whole entries, a time index when there is data, and a last index entry
// inside the log. Entries are checked again when a read uses them.
func (s *segment) indexesLookSane() (bool, error) {
	isize, err := s.idx.Size()
	if err != nil {
		return false, err
	}
	tsize, err := s.tidx.Size()
	if err != nil {
		return false, err
	}
	if isize%indexEntrySize != 0 || tsize%timeEntrySize != 0 {
		return false, nil
	}
	if s.size > 0 && tsize == 0 {
		return false, nil
	}
	if n := isize / indexEntrySize; n > 0 {
		e, err := readIndexEntry(s.idx, n-1)
		if err != nil {
			return false, err
		}
		if int64(e.pos) >= s.size || s.base+int64(e.rel) >= s.next {
			return false, nil
		}
	}
	return true, nil
}

func readIndexEntry(f vfsFile, i int64) (indexEntry, error) {
	var b [indexEntrySize]byte
	if _, err := f.ReadAt(b[:], i*indexEntrySize); err != nil {
		return indexEntry{}, err
	}
	return indexEntry{rel: binary.BigEndian.Uint32(b[:]), pos: binary.BigEndian.Uint32(b[4:])}, nil
}

// flushIndexes writes the in-memory index entries that point below upto
// (a position whose data is on disk) to the index files. Writing entries
// only for synced data keeps every entry on disk trustworthy after a power
// loss. Guarded by the partition's mu.
func (s *segment) flushIndexes(upto int64) error {
	n := s.idxDone
	for n < len(s.index) && int64(s.index[n].pos) < upto {
		n++
	}
	// A time entry's batch is at or before the offset entry written with
	// it, so entries up to the last written offset entry are covered.
	var limit uint32
	if n > 0 {
		limit = s.index[n-1].rel
	}
	t := s.tidxDone
	for t < len(s.tindex) && (s.tindex[t].rel <= limit || upto >= s.size) {
		t++
	}
	if n == s.idxDone && t == s.tidxDone {
		return nil
	}
	c, err := s.pin()
	if err != nil {
		return err
	}
	defer c.unpin(s)
	if n > s.idxDone {
		if _, err := s.idx.WriteAt(encodeIndex(s.index[s.idxDone:n]), int64(s.idxDone)*indexEntrySize); err != nil {
			return err
		}
		s.idxDone = n
	}
	if t > s.tidxDone {
		if _, err := s.tidx.WriteAt(encodeTimeIndex(s.tindex[s.tidxDone:t]), int64(s.tidxDone)*timeEntrySize); err != nil {
			return err
		}
		s.tidxDone = t
	}
	return nil
}

// encodeIndex and encodeTimeIndex give the file bytes of index entries.
func encodeIndex(entries []indexEntry) []byte {
	b := make([]byte, 0, len(entries)*indexEntrySize)
	for _, e := range entries {
		b = binary.BigEndian.AppendUint32(b, e.rel)
		b = binary.BigEndian.AppendUint32(b, e.pos)
	}
	return b
}

func encodeTimeIndex(entries []timeEntry) []byte {
	b := make([]byte, 0, len(entries)*timeEntrySize)
	for _, e := range entries {
		b = binary.BigEndian.AppendUint64(b, uint64(e.ts))
		b = binary.BigEndian.AppendUint32(b, e.rel)
	}
	return b
}

// lookupLocked returns the byte position of the last indexed batch whose
// base offset is at most offset (0 when none). The partition's mu must be
// held; a sealed segment searches its mapped index file.
func (s *segment) lookupLocked(offset int64) (pos, base int64, err error) {
	rel := uint32(offset - s.base)
	if !s.finalized {
		i := sort.Search(len(s.index), func(i int) bool { return s.index[i].rel > rel })
		if i == 0 {
			return 0, s.base, nil
		}
		return int64(s.index[i-1].pos), s.base + int64(s.index[i-1].rel), nil
	}
	if err := s.rlockIndexes(); err != nil {
		return 0, 0, err
	}
	defer s.mu.RUnlock()
	m := s.idxMap
	i := sort.Search(len(m)/indexEntrySize, func(i int) bool {
		return binary.BigEndian.Uint32(m[i*indexEntrySize:]) > rel
	})
	if i == 0 {
		return 0, s.base, nil
	}
	e := m[(i-1)*indexEntrySize:]
	pos, erel := int64(binary.BigEndian.Uint32(e[4:])), binary.BigEndian.Uint32(e)
	if pos >= s.size || erel > rel {
		// A damaged entry: past the data (a read there would size
		// its buffer negative) or after the offset sought.
		return 0, 0, errIndexMismatch
	}
	return pos, s.base + int64(erel), nil
}

// nextEntryLocked returns the position of the first indexed batch whose
// base offset is above offset, or -1 when there is none: the batch
// holding offset ends there at the latest, so a read of one record needs
// no more. The partition's mu must be held.
func (s *segment) nextEntryLocked(offset int64) int64 {
	rel := uint32(offset - s.base)
	if !s.finalized {
		i := sort.Search(len(s.index), func(i int) bool { return s.index[i].rel > rel })
		if i == len(s.index) {
			return -1
		}
		return int64(s.index[i].pos)
	}
	if s.rlockIndexes() != nil {
		return -1
	}
	defer s.mu.RUnlock()
	m := s.idxMap
	n := len(m) / indexEntrySize
	i := sort.Search(n, func(i int) bool {
		return binary.BigEndian.Uint32(m[i*indexEntrySize:]) > rel
	})
	if i == n {
		return -1
	}
	return int64(binary.BigEndian.Uint32(m[i*indexEntrySize+4:]))
}

// timeLookupLocked returns the offset to start searching for the first
// record at or after ts: the batch of the last time entry below ts, that
// entry's timestamp, and whether there is one (when not, search from the
// segment's start). The caller checks the entry against the log with
// batchMaxTimeIs before trusting it. An entry's time may be negative
// (records from before 1970, or a flipped sign bit), so no time serves
// as "no entry".
func (s *segment) timeLookupLocked(ts int64) (start, entryTS int64, entry bool, err error) {
	if !s.finalized {
		i := sort.Search(len(s.tindex), func(i int) bool { return s.tindex[i].ts >= ts })
		if i == 0 {
			return s.base, 0, false, nil
		}
		return s.base + int64(s.tindex[i-1].rel), s.tindex[i-1].ts, true, nil
	}
	if err := s.rlockIndexes(); err != nil {
		return 0, 0, false, err
	}
	defer s.mu.RUnlock()
	m := s.tidxMap
	i := sort.Search(len(m)/timeEntrySize, func(i int) bool {
		return int64(binary.BigEndian.Uint64(m[i*timeEntrySize:])) >= ts
	})
	if i == 0 {
		return s.base, 0, false, nil
	}
	e := m[(i-1)*timeEntrySize:]
	start, entryTS = s.base+int64(binary.BigEndian.Uint32(e[8:])), int64(binary.BigEndian.Uint64(e))
	if start >= s.next {
		return 0, 0, false, errIndexMismatch
	}
	return start, entryTS, true, nil
}

// batchMaxTimeIs reports whether the batch with base offset target has
// max timestamp ts, walking batch headers from pos, where a batch with
// base offset base starts, no further than limit. A time index entry
// (ts, rel) names the batch where the running maximum ts was reached, so
// this checks an entry against the log: a damaged entry would otherwise
// make OffsetForTime start its search too late and silently return a
// later offset than the right one.
func (s *segment) batchMaxTimeIs(pos, base, limit, target, ts int64) bool {
	h, ok := s.headerFor(pos, base, limit, target)
	return ok && h.BaseOffset == target && h.MaxTimestamp == ts
}

// headerFor returns the header of the batch holding offset target,
// walking batch headers (without CRC) from pos, where a batch with base
// offset base starts, no further than limit. It reports false when the
// walk meets anything but a chain of headers.
func (s *segment) headerFor(pos, base, limit, target int64) (batchHeader, bool) {
	var hdr [batchHeaderSize]byte
	for pos+batchHeaderSize <= limit && base <= target {
		if err := s.readAt(hdr[:], pos); err != nil {
			return batchHeader{}, false
		}
		h, err := parseBatchHeader(hdr[:])
		if err != nil || h.BaseOffset != base {
			return batchHeader{}, false
		}
		if h.LastOffset() >= target {
			return h, true
		}
		pos += h.Size()
		base = h.LastOffset() + 1
	}
	return batchHeader{}, false
}

// rlockIndexes read-locks s.mu with the index files of a finalized
// segment mapped (read-only, on first use: the page cache holds them, not
// the heap). On success the caller must RUnlock.
func (s *segment) rlockIndexes() error {
	s.mu.RLock()
	if s.closed || s.idx == nil {
		s.mu.RUnlock()
		return errSegmentClosed
	}
	if s.idxMapped {
		return nil
	}
	s.mu.RUnlock()
	s.mu.Lock()
	if !s.closed && s.idx != nil && !s.idxMapped {
		var err error
		if s.idxMap, s.idxOnHeap, err = mapReadOnly(s.idx, indexEntrySize); err == nil {
			s.tidxMap, s.tidxOnHeap, err = mapReadOnly(s.tidx, timeEntrySize)
		}
		if err != nil {
			s.unmapIndexesLocked()
			s.mu.Unlock()
			return fmt.Errorf("map indexes of %s: %w", s.path, err)
		}
		s.idxMapped = true
	}
	s.mu.Unlock()
	return s.rlockIndexes()
}

// mapReadOnly maps the whole entries of an index file. An index of one
// page or less is read into the heap instead (onHeap): a mapping would
// cost two system calls and a TLB shootdown at unmap for a few entries,
// and a read across many small segments opens and closes thousands.
func mapReadOnly(f vfsFile, entry int64) (_ []byte, onHeap bool, _ error) {
	size, err := f.Size()
	if err != nil {
		return nil, false, err
	}
	n := size / entry * entry
	if n == 0 {
		return nil, false, nil
	}
	if n <= smallIndex {
		b := make([]byte, n)
		if _, err := f.ReadAt(b, 0); err != nil {
			return nil, false, err
		}
		return b, true, nil
	}
	m, err := f.Map(n, false)
	return m, false, err
}

// smallIndex is the size up to which an index is read, not mapped.
const smallIndex = 4096

// unmapIndexesLocked drops the index mappings; s.mu is held for writing.
func (s *segment) unmapIndexesLocked() error {
	var errs []error
	for _, m := range []struct {
		f      vfsFile
		m      *[]byte
		onHeap bool
	}{{s.idx, &s.idxMap, s.idxOnHeap}, {s.tidx, &s.tidxMap, s.tidxOnHeap}} {
		if *m.m != nil && !m.onHeap {
			errs = append(errs, m.f.Unmap(*m.m))
		}
		*m.m = nil
	}
	s.idxOnHeap, s.tidxOnHeap = false, false
	s.idxMapped = false
	return errors.Join(errs...)
}

// rebuildIndexes rewrites a finalized segment's index files from its log.
// It returns the corruption that stopped the scan, if any; the indexes then
// cover the batches before it.
//
// The scan and the encoding run without the partition's lock: a
// finalized segment's batches and bookkeeping no longer change. The scan
// holds the segment's own lock shared, so that retention cannot close
// its files under it (TestFileCacheRace found that); a segment closed
// before it gets errSegmentClosed. The files are rewritten
// under s.mu, which holds off the readers of this segment only; a segment
// closed meanwhile (retention) is left alone. pmu, the partition's mu when
// the partition is published (nil during Open), is taken only to install
// the rebuilt maxTime: appends and reads of other segments go on
// throughout.
func (s *segment) rebuildIndexes(pmu sync.Locker) (error, error) {
	// Index the batches as appends do, into a scratch segment, so a
	// rebuilt index has exactly the entries the original had.
	fresh := newSegment(nil, "", s.base, s.indexEvery)
	// s.mu shared holds off only what would close the files under the
	// scan: retention, or the file cache when the caller's pin is gone.
	s.mu.RLock()
	if s.closed || s.f == nil {
		s.mu.RUnlock()
		return nil, errSegmentClosed
	}
	r, err := s.scan(0, s.base, fresh.noteBatch)
	s.mu.RUnlock()
	if err != nil {
		return nil, err
	}
	fresh.sealLocked()
	idx, tidx := encodeIndex(fresh.index), encodeTimeIndex(fresh.tindex)
	if err := s.writeIndexes(idx, tidx); err != nil {
		return nil, err
	}
	if pmu != nil {
		pmu.Lock()
	}
	s.maxTime, s.maxTimeRel = fresh.maxTime, fresh.maxTimeRel
	if pmu != nil {
		pmu.Unlock()
	}
	if r.bad != nil || (r.end < s.size && !r.zeroTail) {
		bad := r.bad
		if bad == nil {
			bad = errors.New("unreadable data")
		}
		return corruptError(s.path, r.end, bad), nil
	}
	if s.sealed && r.next != s.next {
		return corruptError(s.path, r.end, fmt.Errorf("segment ends at offset %d, the next segment starts at %d", r.next, s.next)), nil
	}
	return nil, nil
}

// writeIndexes replaces the contents of the index files, durably, unless
// the segment is closed.
func (s *segment) writeIndexes(idx, tidx []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || s.idx == nil {
		return errSegmentClosed
	}
	if err := s.unmapIndexesLocked(); err != nil {
		return err
	}
	for _, w := range []struct {
		f vfsFile
		b []byte
	}{{s.idx, idx}, {s.tidx, tidx}} {
		if err := w.f.Truncate(0); err != nil {
			return err
		}
		if _, err := w.f.WriteAt(w.b, 0); err != nil {
			return err
		}
		if err := w.f.Sync(); err != nil {
			return err
		}
	}
	return nil
}
