package stream

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"iter"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/btree"
)

// Partition is one ordered, durable log of a topic: a sequence of
// segments holding records at consecutive offsets. Appends assign offsets;
// readers see records below the high watermark, which under SyncAlways is
// the fsynced end of the log.
//
// All methods are safe for concurrent use.
type Partition struct {
	topic string
	id    int32
	dir   string
	cfg   partitionConfig
	log   *slog.Logger

	// finalizeMu serializes finalizing sealed segments on disk. It is
	// taken before mu.
	finalizeMu sync.Mutex

	// mu guards the fields below and the bookkeeping fields of every
	// segment (see segment). Appends hold it for one short critical
	// section: reserve space, copy the batch, index it.
	mu      sync.RWMutex
	segs    *btree.BTreeG[*segment] // by base offset
	active  *segment                // the last segment, taking appends
	leo     int64                   // log end offset: the next offset to assign
	durable int64                   // offsets below are durable under the sync policy
	synced  int64                   // offsets below are fsynced
	// Invariants: hw <= durable <= leo; synced <= leo; under SyncAlways
	// durable == synced.

	// The group commit in flight: while syncing, one goroutine fsyncs the
	// active segment outside mu, and syncDone is closed when it ends.
	// Appenders needing a sync wait for it, then sync whatever it missed,
	// so one fsync serves every appender that wrote before it started.
	syncing  bool
	syncDone chan struct{}

	recoveryPoint int64 // offsets below are in finalized segments, recorded on disk
	err           error // sticky write or sync failure: appends refuse until reopened
	closed        bool
	waitCh        chan struct{} // closed when the high watermark moves; nil when nobody waits

	hw    atomic.Int64 // high watermark: records below it are visible
	start atomic.Int64 // log start offset: the first record kept

	// syncFault, set only by tests (export_test.go), replaces the result
	// of the next fsyncs of the active segment. Guarded by mu.
	syncFault func() error
}

type partitionConfig struct {
	sync           SyncPolicy
	segmentBytes   int64
	segmentAge     time.Duration
	indexEvery     int64
	maxRecordBytes int64
	// finalizeLater hands a partition with sealed segments to the
	// background flusher (SyncPeriodic, SyncNever); nil finalizes inline.
	finalizeLater func(*Partition)
}

const recoveryPointFile = "recovery-point"

// openPartition opens (or creates) the partition directory and recovers
// its log.
func openPartition(dir, topic string, id int32, cfg partitionConfig, logger *slog.Logger) (_ *Partition, err error) {
	p := &Partition{
		topic: topic, id: id, dir: dir, cfg: cfg,
		log:  logger.With("topic", topic, "partition", id),
		segs: btree.NewG(8, func(a, b *segment) bool { return a.base < b.base }),
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			p.segs.Ascend(func(s *segment) bool { s.close(); return true })
		}
	}()
	bases, err := p.listSegments()
	if err != nil {
		return nil, err
	}
	p.recoveryPoint = p.readRecoveryPoint()
	if len(bases) == 0 {
		s, err := createSegment(dir, 0, p.capacity(0), cfg.indexEvery, cfg.segmentBytes)
		if err != nil {
			return nil, err
		}
		p.segs.ReplaceOrInsert(s)
		p.active = s
		if err := syncDir(filepath.Dir(dir)); err != nil {
			return nil, err
		}
	} else if err := p.recover(bases); err != nil {
		return nil, err
	}
	p.leo = p.active.next
	p.durable, p.synced = p.leo, p.leo
	p.hw.Store(p.leo)
	first, _ := p.segs.Min()
	p.start.Store(first.base)
	return p, nil
}

// capacity is the mapping size of an active segment that must take a
// first batch of n bytes.
func (p *Partition) capacity(n int64) int64 {
	return max(p.cfg.segmentBytes, p.cfg.maxRecordBytes, n) + batchHeaderSize
}

// listSegments returns the base offsets of the .log files, sorted, after
// removing what an interrupted deletion or roll left behind.
func (p *Partition) listSegments() ([]int64, error) {
	entries, err := os.ReadDir(p.dir)
	if err != nil {
		return nil, err
	}
	logs := map[int64]bool{}
	var bases []int64
	for _, e := range entries {
		if base, ok := strings.CutSuffix(e.Name(), ".log"); ok {
			if n, err := strconv.ParseInt(base, 10, 64); err == nil && len(base) == 20 {
				logs[n] = true
				bases = append(bases, n)
			}
		}
	}
	for _, e := range entries {
		name := e.Name()
		stem, ext, _ := strings.Cut(name, ".")
		n, perr := strconv.ParseInt(stem, 10, 64)
		orphan := (ext == "index" || ext == "timeindex") && perr == nil && !logs[n]
		if orphan || strings.HasSuffix(name, ".deleted") || strings.HasSuffix(name, ".tmp") {
			p.log.Info("removing leftover file", "file", name)
			if err := os.Remove(filepath.Join(p.dir, name)); err != nil {
				return nil, err
			}
		}
	}
	slices.Sort(bases)
	return bases, nil
}

// recover opens the segments found on disk. Segments wholly below the
// recovery point were finalized and are trusted (their batches are
// checked when read); a later sealed segment is validated in full, and the
// last one from its last good index entry. A torn or corrupt tail is
// truncated; an unfinalized sealed segment cut short takes every later
// segment with it, since offsets must stay contiguous.
func (p *Partition) recover(bases []int64) error {
	for i, base := range bases {
		s, err := openSegment(p.dir, base, p.cfg.indexEvery, p.cfg.segmentBytes)
		if err != nil {
			return err
		}
		p.segs.ReplaceOrInsert(s)
		if i == len(bases)-1 {
			return p.recoverActive(s)
		}
		next := bases[i+1]
		if next <= p.recoveryPoint {
			if err := s.loadSealed(next); err != nil {
				return err
			}
			continue
		}
		// Sealed after the last recorded sync: check every batch.
		r, err := s.scan(0, base, nil)
		if err != nil {
			return err
		}
		if r.next == next && (r.bad == nil || r.zeroTail) {
			if err := p.refinalize(s, r.end, next); err != nil {
				return err
			}
			continue
		}
		why := r.bad
		if why == nil {
			why = fmt.Errorf("ends at offset %d, the next segment starts at %d", r.next, next)
		}
		p.log.Warn("truncating unsynced segment; removing the segments after it",
			"file", s.path, "position", r.end, "reason", why)
		for _, later := range bases[i+1:] {
			for _, ext := range []string{".log", ".index", ".timeindex"} {
				if err := os.Remove(segmentPath(p.dir, later, ext)); err != nil && !errors.Is(err, os.ErrNotExist) {
					return err
				}
			}
		}
		return p.recoverActive(s)
	}
	return nil
}

// refinalize completes a sealed segment whose finalization a crash
// interrupted: trim, rebuild indexes, sync.
func (p *Partition) refinalize(s *segment, end, next int64) error {
	if err := s.f.Truncate(end); err != nil {
		return err
	}
	s.size, s.visible, s.next = end, end, next
	s.sealed, s.finalized = true, true
	if err := s.f.Sync(); err != nil {
		return err
	}
	bad, err := s.rebuildIndexes()
	if err != nil {
		return err
	}
	if bad != nil {
		return bad
	}
	return nil
}

// recoverActive validates the last segment and makes it the active one.
func (p *Partition) recoverActive(s *segment) error {
	truncated, err := s.recoverActive(false)
	if err != nil {
		return err
	}
	if truncated != nil {
		p.log.Warn("truncated torn tail", "error", truncated)
	}
	if err := s.sync(); err != nil {
		return err
	}
	if err := s.activate(p.capacity(s.size)); err != nil {
		return err
	}
	p.active = s
	if p.recoveryPoint != s.base {
		p.recoveryPoint = s.base
		return p.writeRecoveryPoint(s.base)
	}
	return nil
}

func (p *Partition) readRecoveryPoint() int64 {
	b, err := os.ReadFile(filepath.Join(p.dir, recoveryPointFile))
	if err != nil {
		return 0
	}
	n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		return 0
	}
	return n
}

// writeRecoveryPoint records that the segments below offset are finalized:
// a temporary file, synced, renamed into place.
func (p *Partition) writeRecoveryPoint(offset int64) error {
	path := filepath.Join(p.dir, recoveryPointFile)
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(strconv.FormatInt(offset, 10)+"\n"), 0o644); err != nil {
		return err
	}
	f, err := os.Open(tmp)
	if err != nil {
		return err
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

func (p *Partition) errorf(format string, args ...any) error {
	return fmt.Errorf("stream: partition %s-%d: "+format, append([]any{p.topic, p.id}, args...)...)
}

// Topic returns the name of the partition's topic.
func (p *Partition) Topic() string { return p.topic }

// Dir returns the partition's directory, which holds its segment files.
func (p *Partition) Dir() string { return p.dir }

// ID returns the partition's number within its topic.
func (p *Partition) ID() int32 { return p.id }

// AppendBatch appends the records of b as one batch and returns the offset
// of its first record. Under SyncAlways it returns once the batch is
// fsynced. A batch larger than Options.MaxRecordBytes gets
// ErrRecordTooLarge and nothing is written. b is not modified and can be
// Reset and reused at once.
func (p *Partition) AppendBatch(b *Batch) (baseOffset int64, err error) {
	if b.Len() == 0 {
		return p.emptyAppend()
	}
	buf := b.seal()
	n := int64(len(buf))
	if n > p.cfg.maxRecordBytes {
		return 0, p.errorf("batch of %d bytes exceeds %d: %w", n, p.cfg.maxRecordBytes, ErrRecordTooLarge)
	}
	h := batchHeader{LastOffsetDelta: int32(b.count - 1), MaxTimestamp: b.maxTime, Length: int32(n - batchOverhead)}
	p.mu.Lock()
	seg, pos, err := p.reserveLocked(n, b.baseTime)
	if err != nil {
		p.mu.Unlock()
		return 0, err
	}
	dst := seg.m[pos : pos+n]
	copy(dst, buf)
	return p.commitLocked(seg, dst, pos, &h)
}

// Append appends recs as one batch and returns the offset of the first.
// It sets each record's Offset, and its Timestamp when zero, and otherwise
// behaves as AppendBatch. The records' Topic and Partition are ignored.
func (p *Partition) Append(recs ...*Record) (baseOffset int64, err error) {
	if len(recs) == 0 {
		return p.emptyAppend()
	}
	now := time.Now().UnixMilli()
	baseTime := now
	if !recs[0].Timestamp.IsZero() {
		baseTime = recs[0].Timestamp.UnixMilli()
	}
	maxTime := int64(-1 << 63)
	n := int64(batchHeaderSize)
	for i, r := range recs {
		ts := now
		if !r.Timestamp.IsZero() {
			ts = r.Timestamp.UnixMilli()
		}
		maxTime = max(maxTime, ts)
		size := recordSize(ts-baseTime, int64(i), r.Key, r.Value, r.Headers)
		n += int64(varintLen(int64(size)) + size)
	}
	if n > p.cfg.maxRecordBytes {
		return 0, p.errorf("batch of %d bytes exceeds %d: %w", n, p.cfg.maxRecordBytes, ErrRecordTooLarge)
	}
	h := batchHeader{
		Length: int32(n - batchOverhead), Magic: batchMagic, LastOffsetDelta: int32(len(recs) - 1),
		BaseTimestamp: baseTime, MaxTimestamp: maxTime,
		ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1, Count: int32(len(recs)),
	}
	p.mu.Lock()
	seg, pos, err := p.reserveLocked(n, now)
	if err != nil {
		p.mu.Unlock()
		return 0, err
	}
	dst := seg.m[pos : pos+batchHeaderSize : pos+n]
	for i, r := range recs {
		ts := now
		if !r.Timestamp.IsZero() {
			ts = r.Timestamp.UnixMilli()
		}
		dst = appendRecord(dst, ts-baseTime, int64(i), r.Key, r.Value, r.Headers)
	}
	if int64(len(dst)) != n {
		panic(fmt.Sprintf("stream: encoded %d bytes, computed %d", len(dst), n))
	}
	putBatchHeader(dst, h)
	base := p.leo
	for i, r := range recs {
		r.Offset = base + int64(i)
		if r.Timestamp.IsZero() {
			r.Timestamp = time.UnixMilli(now)
		}
	}
	return p.commitLocked(seg, dst, pos, &h)
}

func (p *Partition) emptyAppend() (int64, error) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	if p.closed {
		return 0, p.errorf("%w", ErrClosed)
	}
	return p.leo, p.err
}

// reserveLocked returns the active segment and the position where n bytes
// go, rolling the segment first when it is full or older than SegmentAge
// at now (ms). p.mu is held; on error it stays held and nothing was
// written.
func (p *Partition) reserveLocked(n, now int64) (*segment, int64, error) {
	if p.closed {
		return nil, 0, p.errorf("%w", ErrClosed)
	}
	if p.err != nil {
		return nil, 0, p.err
	}
	s := p.active
	if s.size > 0 && (s.size+n > p.cfg.segmentBytes || now-s.firstTime > p.cfg.segmentAge.Milliseconds()) {
		if err := p.rollLocked(n); err != nil {
			return nil, 0, err
		}
		s = p.active
	}
	ok, err := s.reserve(s.size + n)
	if err != nil {
		return nil, 0, p.errorf("%w", err)
	}
	if !ok { // an empty segment mapped smaller than this batch
		if err := p.rollLocked(n); err != nil {
			return nil, 0, err
		}
		s = p.active
		if _, err := s.reserve(s.size + n); err != nil {
			return nil, 0, p.errorf("%w", err)
		}
	}
	return s, s.size, nil
}

// commitLocked completes an append whose bytes are in dst at pos of seg:
// it assigns the base offset, indexes the batch, and makes it visible
// (after the group commit under SyncAlways). It releases p.mu.
func (p *Partition) commitLocked(seg *segment, dst []byte, pos int64, h *batchHeader) (int64, error) {
	base := p.leo
	binary.BigEndian.PutUint64(dst, uint64(base))
	h.BaseOffset = base
	seg.noteBatch(h, pos)
	p.leo = seg.next
	end := p.leo
	if p.cfg.sync != SyncAlways {
		seg.visible = seg.size
		p.advanceLocked(end)
		if len(seg.index)-seg.idxDone >= 512 {
			if err := seg.flushIndexes(seg.size); err != nil {
				p.failLocked(err)
			}
		}
		p.mu.Unlock()
		return base, nil
	}
	p.mu.Unlock()
	return base, p.syncTo(end)
}

// syncTo returns once the records below end are fsynced, starting an
// fsync unless one in flight will cover them (group commit).
func (p *Partition) syncTo(end int64) error {
	p.mu.Lock()
	for {
		if p.synced >= end {
			p.mu.Unlock()
			return nil
		}
		if p.err != nil {
			err := p.err
			p.mu.Unlock()
			return err
		}
		if p.closed {
			p.mu.Unlock()
			return p.errorf("%w", ErrClosed)
		}
		if !p.syncing {
			break
		}
		done := p.syncDone
		p.mu.Unlock()
		<-done
		p.mu.Lock()
	}
	p.syncing = true
	done := make(chan struct{})
	p.syncDone = done
	seg, size, leo, fault := p.active, p.active.size, p.leo, p.syncFault
	p.mu.Unlock()

	err := seg.sync()
	if fault != nil {
		err = fault()
	}

	p.mu.Lock()
	defer p.mu.Unlock()
	p.syncing = false
	close(done)
	if err != nil {
		return p.failLocked(fmt.Errorf("fsync %s: %w", seg.path, err))
	}
	p.synced = max(p.synced, leo)
	if p.active == seg && !seg.sealed {
		if p.cfg.sync == SyncAlways {
			seg.visible = max(seg.visible, size)
		}
		if err := seg.flushIndexes(size); err != nil {
			return p.failLocked(err)
		}
	}
	if p.cfg.sync == SyncAlways {
		p.advanceLocked(leo)
	}
	return nil
}

// failLocked makes err sticky: the partition refuses appends until it is
// reopened, so nothing is acknowledged after a failed write or fsync
// (whose data the kernel may have dropped).
func (p *Partition) failLocked(err error) error {
	if p.err == nil {
		p.err = p.errorf("refusing writes after a failed write or sync (reopen to recover): %w", err)
		p.log.Error("partition failed", "error", err)
	}
	return p.err
}

// advanceLocked moves the durable end, and with it the high watermark, to
// end, waking waiters. p.mu is held.
func (p *Partition) advanceLocked(end int64) {
	if end <= p.durable {
		return
	}
	p.durable = end
	p.hw.Store(end)
	if p.waitCh != nil {
		close(p.waitCh)
		p.waitCh = nil
	}
}

// rollLocked seals the active segment and starts a new one that can hold
// a batch of n bytes. Under SyncAlways the old segment is finalized here;
// otherwise the background flusher does it. p.mu is held.
func (p *Partition) rollLocked(n int64) error {
	old := p.active
	s, err := createSegment(p.dir, p.leo, p.capacity(n), p.cfg.indexEvery, p.cfg.segmentBytes)
	if err != nil {
		return p.errorf("roll: %w", err)
	}
	old.sealLocked()
	p.segs.ReplaceOrInsert(s)
	p.active = s
	if p.cfg.sync == SyncAlways || p.cfg.finalizeLater == nil {
		if err := old.finalizeFiles(); err != nil {
			return p.failLocked(err)
		}
		old.markFinalizedLocked()
		p.synced = max(p.synced, old.next)
		p.advanceLocked(old.next)
		p.recoveryPoint = s.base
		if err := p.writeRecoveryPoint(s.base); err != nil {
			return p.failLocked(err)
		}
		return nil
	}
	p.cfg.finalizeLater(p)
	return nil
}

// finalizeSealed finalizes the sealed segments that are not yet (the
// background flusher's job under SyncPeriodic and SyncNever) and records
// the new recovery point.
func (p *Partition) finalizeSealed() error {
	p.finalizeMu.Lock()
	defer p.finalizeMu.Unlock()
	p.mu.RLock()
	if p.closed {
		p.mu.RUnlock()
		return p.errorf("%w", ErrClosed)
	}
	var todo []*segment
	p.segs.Ascend(func(s *segment) bool {
		if s.sealed && !s.finalized {
			todo = append(todo, s)
		}
		return true
	})
	p.mu.RUnlock()
	if len(todo) == 0 {
		return nil
	}
	for _, s := range todo {
		err := s.finalizeFiles()
		p.mu.Lock()
		if err != nil {
			err = p.failLocked(err)
			p.mu.Unlock()
			return err
		}
		s.markFinalizedLocked()
		p.mu.Unlock()
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	point := p.active.base
	p.segs.Ascend(func(s *segment) bool {
		if s.sealed && !s.finalized {
			point = s.base
			return false
		}
		return true
	})
	if point != p.recoveryPoint {
		p.recoveryPoint = point
		if err := p.writeRecoveryPoint(point); err != nil {
			return p.failLocked(err)
		}
	}
	return nil
}

// Sync fsyncs everything appended so far, for SyncPeriodic and SyncNever
// users who want a durable point now.
func (p *Partition) Sync() error {
	if err := p.finalizeSealed(); err != nil {
		return err
	}
	p.mu.RLock()
	leo := p.leo
	p.mu.RUnlock()
	return p.syncTo(leo)
}

// StartOffset returns the offset of the first record kept: 0 until
// retention deletes a segment.
func (p *Partition) StartOffset() int64 { return p.start.Load() }

// HighWatermark returns the offset after the last visible record: the
// next offset a reader waits for.
func (p *Partition) HighWatermark() int64 { return p.hw.Load() }

// Wait blocks until the high watermark passes offset (a record at offset
// is readable), ctx is done, or the partition closes.
func (p *Partition) Wait(ctx context.Context, offset int64) error {
	for {
		if p.hw.Load() > offset {
			return nil
		}
		ch, err := p.hwChanged()
		if err != nil {
			return err
		}
		if p.hw.Load() > offset {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// hwChanged returns a channel closed at the next move of the high
// watermark or when the partition closes.
func (p *Partition) hwChanged() (<-chan struct{}, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, p.errorf("%w", ErrClosed)
	}
	if p.waitCh == nil {
		p.waitCh = make(chan struct{})
	}
	return p.waitCh, nil
}

// Read returns records starting exactly at offset, up to about maxBytes of
// encoded batches but always at least one record when one exists below the
// high watermark. Reading at the high watermark returns no records; below
// StartOffset or above HighWatermark, ErrOffsetOutOfRange.
func (p *Partition) Read(offset int64, maxBytes int) ([]*Record, error) {
	recs, _, err := p.read(offset, maxBytes, nil)
	return recs, err
}

// errIndexMismatch reports an index entry that points at the wrong place;
// the read rebuilds the segment's indexes and tries again.
var errIndexMismatch = errors.New("index entry does not match the log")

// read appends records from offset to dst, crossing segments until about
// maxBytes are read, and returns the offset after the last one.
func (p *Partition) read(offset int64, maxBytes int, dst []*Record) ([]*Record, int64, error) {
	got := len(dst)
	for {
		var used int
		var next int64
		var err error
		dst, next, used, err = p.readOnce(offset, maxBytes, dst)
		if err != nil {
			if len(dst) > got {
				return dst, offset, nil // the next read reports it
			}
			return dst, offset, err
		}
		maxBytes -= used
		if next == offset || maxBytes <= 0 || next >= p.hw.Load() {
			return dst, next, nil
		}
		offset = next
	}
}

// readOnce reads from the segment holding offset.
func (p *Partition) readOnce(offset int64, maxBytes int, dst []*Record) (_ []*Record, next int64, used int, err error) {
	for attempt := 0; ; attempt++ {
		p.mu.RLock()
		if p.closed {
			p.mu.RUnlock()
			return dst, offset, 0, p.errorf("%w", ErrClosed)
		}
		hw, start := p.hw.Load(), p.start.Load()
		if offset < start || offset > hw {
			p.mu.RUnlock()
			return dst, offset, 0, p.errorf("offset %d outside [%d, %d]: %w", offset, start, hw, ErrOffsetOutOfRange)
		}
		if offset == hw {
			p.mu.RUnlock()
			return dst, offset, 0, nil
		}
		seg := p.floorLocked(offset)
		pos, base, err := seg.lookupLocked(offset)
		limit := seg.visible
		p.mu.RUnlock()
		if err == nil {
			dst, next, _, used, err = p.readSegment(segmentRead{
				seg: seg, offset: offset, pos: pos, base: base, limit: limit, hw: hw,
				maxBytes: maxBytes, minTime: math.MinInt64,
			}, dst)
			if err == nil {
				return dst, next, used, nil
			}
		}
		switch {
		case errors.Is(err, errSegmentClosed) && attempt < 3:
			continue // retention or close took the segment; look again
		case errors.Is(err, errIndexMismatch) && attempt == 0 && seg.finalized:
			p.mu.Lock()
			bad, rerr := seg.rebuildIndexes()
			p.mu.Unlock()
			p.log.Warn("rebuilt damaged index", "file", seg.indexPath(), "corrupt", bad, "error", rerr)
			continue
		case errors.Is(err, errIndexMismatch):
			return dst, offset, 0, corruptError(seg.path, pos, err)
		}
		return dst, offset, 0, p.errorf("read at offset %d: %w", offset, err)
	}
}

// floorLocked returns the segment holding offset.
func (p *Partition) floorLocked(offset int64) *segment {
	var found *segment
	p.segs.DescendLessOrEqual(&segment{base: offset}, func(s *segment) bool {
		found = s
		return false
	})
	return found
}

// minReadChunk is the least a read fetches from a segment at once.
const minReadChunk = 64 << 10

// segmentRead is one read of records out of a segment: from offset, at
// byte pos where a batch with base offset base starts, reading no further
// than limit bytes and returning no record at or above hw. Batches whose
// newest timestamp is below minTime are skipped undecoded.
type segmentRead struct {
	seg      *segment
	offset   int64
	pos      int64
	base     int64
	limit    int64
	hw       int64
	maxBytes int
	minTime  int64
}

// readSegment decodes the records of r into dst and returns the offset
// and byte position after the last batch it read.
func (p *Partition) readSegment(r segmentRead, dst []*Record) (_ []*Record, next, nextPos int64, used int, err error) {
	seg := r.seg
	chunk := func(pos, n int64) ([]byte, error) {
		buf := make([]byte, min(r.limit-pos, n))
		return buf, seg.readAt(buf, pos)
	}
	bufPos := r.pos // file position of buf[0]
	buf, err := chunk(bufPos, int64(max(r.maxBytes, 0))+p.cfg.indexEvery+minReadChunk)
	if err != nil {
		return dst, r.offset, r.pos, used, err
	}
	next, nextPos = r.offset, r.pos
	base := r.base
	got := 0
	for nextPos < r.limit && next < r.hw {
		off := nextPos - bufPos
		if int64(len(buf))-off < batchHeaderSize {
			if got > 0 {
				break
			}
			bufPos = nextPos
			if buf, err = chunk(bufPos, int64(2*len(buf))); err != nil {
				return dst, next, nextPos, used, err
			}
			continue
		}
		h, err := parseBatchHeader(buf[off:])
		if err == nil && h.BaseOffset != base {
			if nextPos == r.pos && r.pos != 0 {
				return dst, next, nextPos, used, errIndexMismatch
			}
			err = fmt.Errorf("batch base offset %d, want %d", h.BaseOffset, base)
		}
		if err == nil && nextPos+h.Size() > r.limit {
			err = fmt.Errorf("batch of %d bytes runs past the end of the data at %d", h.Size(), r.limit)
		}
		if err != nil {
			if nextPos == r.pos && r.pos != 0 {
				return dst, next, nextPos, used, errIndexMismatch
			}
			return dst, next, nextPos, used, corruptError(seg.path, nextPos, err)
		}
		if off+h.Size() > int64(len(buf)) {
			if got > 0 {
				break
			}
			bufPos = nextPos
			if buf, err = chunk(bufPos, max(h.Size(), int64(len(buf)))); err != nil {
				return dst, next, nextPos, used, err
			}
			continue
		}
		batch := buf[off : off+h.Size()]
		at := nextPos
		nextPos += h.Size()
		base = h.LastOffset() + 1
		if h.LastOffset() < r.offset || h.MaxTimestamp < r.minTime {
			next = max(next, min(base, r.hw))
			continue
		}
		if err := checkBatch(batch, &h); err != nil {
			return dst, next, at, used, corruptError(seg.path, at, err)
		}
		var n int
		if dst, n, err = p.decodeBatch(batch, &h, r.offset, r.hw, dst); err != nil {
			return dst, next, at, used, corruptError(seg.path, at, err)
		}
		got += n
		used += len(batch)
		next = min(base, r.hw)
		if used >= r.maxBytes {
			break
		}
	}
	return dst, next, nextPos, used, nil
}

// decodeBatch appends the records of a CRC-checked batch with offsets in
// [from, hw) to dst. The records share one allocation and point into
// batch (or its decompressed copy).
func (p *Partition) decodeBatch(batch []byte, h *batchHeader, from, hw int64, dst []*Record) ([]*Record, int, error) {
	if h.Attributes&attrControl != 0 {
		return dst, 0, nil // transaction markers carry no user records
	}
	body := batch[batchHeaderSize:]
	if c := h.Compression(); c != CompressNone {
		var err error
		if body, err = decompress(c, nil, body); err != nil {
			return dst, 0, err
		}
	}
	recs := make([]Record, h.Count)
	d := recordDecoder{b: body}
	n := 0
	for i := range recs {
		r := &recs[i]
		if !d.next(r, h.BaseTimestamp) {
			if d.err == nil {
				d.err = fmt.Errorf("batch holds %d records, header says %d", i, h.Count)
			}
			return dst, n, d.err
		}
		r.Offset += h.BaseOffset
		if r.Offset < from || r.Offset >= hw {
			continue
		}
		r.Topic, r.Partition = p.topic, p.id
		dst = append(dst, r)
		n++
	}
	if len(d.b) != 0 {
		return dst, n, fmt.Errorf("%d bytes after the last record", len(d.b))
	}
	return dst, n, nil
}

// scanChunk is how much a Scan reads at a time.
const scanChunk = 1 << 20

// Scan returns an iterator over the records from offset from on, which
// follows the tail: at the high watermark it waits for more. It ends when
// ctx is done or a read fails, yielding the error (ctx.Err() on
// cancellation) as its last element.
//
//	for r, err := range p.Scan(ctx, 0) {
//		if err != nil {
//			break
//		}
//		...
//	}
func (p *Partition) Scan(ctx context.Context, from int64) iter.Seq2[*Record, error] {
	return func(yield func(*Record, error) bool) {
		var recs []*Record
		next := from
		for {
			var err error
			recs, next, err = p.read(next, scanChunk, recs[:0])
			if err != nil {
				yield(nil, err)
				return
			}
			for _, r := range recs {
				if !yield(r, nil) {
					return
				}
			}
			if len(recs) == 0 {
				if err := p.Wait(ctx, next); err != nil {
					yield(nil, err)
					return
				}
			} else if err := ctx.Err(); err != nil {
				yield(nil, err)
				return
			}
			clear(recs)
		}
	}
}

// OffsetForTime returns the offset of the first record whose timestamp is
// at or after t, using the time index; the high watermark when there is
// none. Kafka: ListOffsets / offsetsForTimes.
func (p *Partition) OffsetForTime(t time.Time) (int64, error) {
	ts := t.UnixMilli()
	from := p.StartOffset()
	for attempt := 0; attempt < 3; attempt++ {
		p.mu.RLock()
		if p.closed {
			p.mu.RUnlock()
			return 0, p.errorf("%w", ErrClosed)
		}
		hw := p.hw.Load()
		var seg *segment
		p.segs.AscendGreaterOrEqual(p.floorLocked(max(from, p.start.Load())), func(s *segment) bool {
			if s.maxTime >= ts && s.base < hw {
				seg = s
				return false
			}
			return true
		})
		if seg == nil {
			p.mu.RUnlock()
			return hw, nil
		}
		start, err := seg.timeLookupLocked(ts)
		var pos, base int64
		if err == nil {
			pos, base, err = seg.lookupLocked(max(start, seg.base))
		}
		limit := seg.visible
		p.mu.RUnlock()
		if err != nil {
			if errors.Is(err, errSegmentClosed) {
				continue
			}
			return 0, p.errorf("time index: %w", err)
		}
		off, found, err := p.findTime(seg, ts, pos, base, limit, hw)
		switch {
		case errors.Is(err, errSegmentClosed):
			continue
		case err != nil:
			return 0, err
		case found:
			return off, nil
		}
		from = seg.next // not visible in this segment yet: look further
		if from >= hw {
			return hw, nil
		}
	}
	return p.HighWatermark(), nil
}

// findTime scans the batches of seg from pos for the first record with a
// timestamp at or after ts.
func (p *Partition) findTime(seg *segment, ts, pos, base, limit, hw int64) (int64, bool, error) {
	next := base
	for pos < limit && next < hw {
		recs, n, npos, _, err := p.readSegment(segmentRead{
			seg: seg, offset: next, pos: pos, base: next, limit: limit, hw: hw, minTime: ts,
		}, nil)
		if err != nil {
			return 0, false, err
		}
		for _, r := range recs {
			if r.Timestamp.UnixMilli() >= ts {
				return r.Offset, true, nil
			}
		}
		if npos == pos {
			break
		}
		next, pos = n, npos
	}
	return 0, false, nil
}

// enforceRetention deletes the oldest finalized segments while they are
// older than retention (by their newest record) or the partition is over
// retentionBytes. The active segment is never deleted.
func (p *Partition) enforceRetention(now time.Time, retention time.Duration, retentionBytes int64) (int, error) {
	p.mu.Lock()
	var total int64
	p.segs.Ascend(func(s *segment) bool { total += s.size; return true })
	var doomed []*segment
	for {
		s, ok := p.segs.Min()
		if !ok || s == p.active || !s.finalized {
			break
		}
		old := retention >= 0 && s.maxTime < now.Add(-retention).UnixMilli()
		big := retentionBytes > 0 && total-s.size >= retentionBytes
		if !old && !big {
			break
		}
		p.segs.Delete(s)
		total -= s.size
		doomed = append(doomed, s)
		first, _ := p.segs.Min()
		p.start.Store(first.base)
	}
	p.mu.Unlock()
	var errs []error
	for _, s := range doomed {
		p.log.Info("retention deleted segment", "file", s.path, "bytes", ByteSize(s.size))
		if err := s.remove(); err != nil {
			errs = append(errs, err)
		}
	}
	if len(doomed) > 0 {
		errs = append(errs, syncDir(p.dir))
	}
	return len(doomed), errors.Join(errs...)
}

// partitionStats is one partition's share of Stats.
type partitionStats struct {
	segments int
	bytes    int64
}

func (p *Partition) stats() partitionStats {
	p.mu.RLock()
	defer p.mu.RUnlock()
	var st partitionStats
	p.segs.Ascend(func(s *segment) bool {
		st.segments++
		st.bytes += s.size
		return true
	})
	return st
}

// close syncs and trims the active segment, finalizes sealed ones, records
// the recovery point and releases every file. Waiters get ErrClosed.
func (p *Partition) close() error {
	ferr := p.finalizeSealed()
	p.finalizeMu.Lock()
	defer p.finalizeMu.Unlock()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil
	}
	p.closed = true
	for p.syncing { // let the group commit in flight finish
		done := p.syncDone
		p.mu.Unlock()
		<-done
		p.mu.Lock()
	}
	if p.waitCh != nil {
		close(p.waitCh)
		p.waitCh = nil
	}
	var errs []error
	errs = append(errs, ferr)
	a := p.active
	if p.err == nil {
		// Trim the active segment to its batches; it stays the last
		// segment and reopens as active.
		if err := a.finalizeFiles(); err != nil {
			errs = append(errs, err)
		} else {
			p.synced = p.leo
		}
		a.index, a.tindex = nil, nil
		errs = append(errs, p.writeRecoveryPoint(a.base))
	}
	p.segs.Ascend(func(s *segment) bool {
		errs = append(errs, s.close())
		return true
	})
	if err := errors.Join(errs...); err != nil {
		return p.errorf("close: %w", err)
	}
	return nil
}
