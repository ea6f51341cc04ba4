package stream

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"path/filepath"
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
	fs    fileSystem
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

	unfinalized   int64           // base of the first sealed segment not yet finalized; math.MaxInt64: none
	recoveryPoint int64           // offsets below are in finalized segments, recorded on disk
	recovery      []RecoveryEvent // what Open repaired or found; immutable after Open
	err           error           // sticky write or sync failure: appends refuse until reopened
	closed        bool
	waitCh        chan struct{}            // closed when the high watermark moves; nil when nobody waits
	producers     map[int64]*producerState // idempotent producers' recent batches, by producer ID

	hw    atomic.Int64 // high watermark: records below it are visible
	start atomic.Int64 // log start offset: the first record kept

	// gate is nil on a single node. When the partition is replicated
	// (replica.go) it says who may append and in which leader epoch, and
	// the replication layer, not the durable end, moves hw. Written
	// while holding mu.
	gate   atomic.Pointer[replicaGate]
	epochs *leaderEpochCache // loaded when replicated; guarded by mu

	counters partitionCounters // for Metrics (metrics.go); atomic

	// syncFault, set only by tests (export_test.go), replaces the result
	// of the next fsyncs of the active segment. Guarded by mu.
	syncFault func() error
	// appendFault, set only by tests (export_test.go), runs after
	// AppendBatch wrote a batch, and an error it returns replaces the
	// acknowledgement. Guarded by mu.
	appendFault func() error
}

type partitionConfig struct {
	sync           SyncPolicy
	segmentBytes   int64
	segmentAge     time.Duration
	indexEvery     int64
	maxRecordBytes int64
	// producerExpiry is how long an idle idempotent producer is
	// remembered (Options.ProducerIDExpiration); 0 forever.
	producerExpiry time.Duration
	// finalizeLater hands a partition with sealed segments to the
	// background flusher (SyncPeriodic, SyncNever); nil finalizes inline.
	finalizeLater func(*Partition)
	// cache holds the files of finalized segments, shared by the
	// Stream's partitions; nil keeps them open until the partition
	// closes.
	cache *fileCache
	// cleanStart trusts the active segment as a clean Close left it
	// (clean_shutdown.go): set only for the partitions Open finds.
	cleanStart bool
	hooks      *hookSet // Options.Hooks (hooks.go); nil when none
}

const recoveryPointFile = "recovery-point"

// openPartition opens (or creates) the partition directory and recovers
// its log.
func openPartition(fsys fileSystem, dir, topic string, id int32, cfg partitionConfig, logger *slog.Logger) (_ *Partition, err error) {
	p := &Partition{
		topic: topic, id: id, dir: dir, fs: fsys, cfg: cfg, unfinalized: math.MaxInt64,
		log:  logger.With("topic", topic, "partition", id),
		segs: btree.NewG(8, func(a, b *segment) bool { return a.base < b.base }),
	}
	if err := fsys.MkdirAll(dir, 0o755); err != nil {
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
	point, known := p.readRecoveryPoint()
	p.recoveryPoint = point
	if len(bases) == 0 {
		// A partition always has a recovery point file, so recovery
		// tells a lost one from a partition that never rolled. The
		// directory fsync of the first segment's creation makes its
		// entry durable; its bytes need no fsync (see
		// readRecoveryPoint).
		if !known || point != 0 {
			p.recoveryPoint = 0
			if err := writeFile(fsys, filepath.Join(dir, recoveryPointFile), []byte("0\n"), false); err != nil {
				return nil, err
			}
		}
		s, err := createSegment(fsys, dir, 0, p.capacity(0), cfg.segmentBytes, cfg.indexEvery, cfg.sync != SyncAlways)
		if err != nil {
			return nil, err
		}
		p.segs.ReplaceOrInsert(s)
		p.active = s
		cfg.cache.add(s)
		if err := fsys.SyncDir(filepath.Dir(dir)); err != nil {
			return nil, err
		}
	} else if err := p.recover(bases, known); err != nil {
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

func (p *Partition) errorf(format string, args ...any) error {
	return errorf("stream: partition %s-%d: "+format, append([]any{p.topic, p.id}, args...)...)
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
// Reset and reused at once. A nil b, or one given a nil record, gets
// ErrInvalidConfig.
func (p *Partition) AppendBatch(b *Batch) (baseOffset int64, err error) {
	if b == nil {
		return 0, argError("append batch", "nil batch")
	}
	if b.err != nil {
		return 0, b.err
	}
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
	if g := p.gate.Load(); g != nil {
		if err := g.admit(p); err != nil {
			p.mu.Unlock()
			return 0, err
		}
	}
	if b.producerID >= 0 {
		base, dup, err := p.checkSequenceLocked(b.producerID, b.producerEpoch, b.baseSequence, b.count)
		if err != nil || dup {
			p.mu.Unlock()
			if err != nil {
				return 0, err
			}
			// A retry of a batch the log holds: acknowledge it as the
			// original would have been.
			return base, p.waitAcked(base + int64(b.count))
		}
	}
	now := time.Now().UnixMilli()
	seg, pos, err := p.reserveLocked(n, now)
	if err != nil {
		p.mu.Unlock()
		return 0, err
	}
	if b.producerID >= 0 {
		p.noteSequenceLocked(b.producerID, b.producerEpoch, b.baseSequence, b.count, p.leo, now)
	}
	dst := seg.m[pos : pos+n]
	copy(dst, buf)
	fault := p.appendFault
	base, err := p.commitLocked(seg, dst, pos, &h)
	if err == nil && fault != nil {
		err = fault()
	}
	p.cfg.hooks.appended(p, base, b.count, n, err)
	return base, err
}

// Append appends recs as one batch and returns the offset of the first.
// It sets each record's Offset, and its Timestamp when zero, and otherwise
// behaves as AppendBatch. The records' Topic and Partition are ignored.
// A nil record gets ErrInvalidConfig, and nothing is written.
func (p *Partition) Append(recs ...*Record) (baseOffset int64, err error) {
	if len(recs) == 0 {
		return p.emptyAppend()
	}
	for i, r := range recs {
		if r == nil {
			return 0, argError("append", fmt.Sprintf("record %d is nil", i))
		}
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
	if g := p.gate.Load(); g != nil {
		if err := g.admit(p); err != nil {
			p.mu.Unlock()
			return 0, err
		}
	}
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
	base, err = p.commitLocked(seg, dst, pos, &h)
	p.cfg.hooks.appended(p, base, len(recs), n, err)
	return base, err
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
	g := p.gate.Load()
	if g != nil {
		stampEpoch(g, dst, h)
	}
	if seg.firstTime < 0 {
		// SegmentAge counts from the wall clock at the first append,
		// not from record timestamps, which may be old (a replay).
		seg.firstTime = time.Now().UnixMilli()
	}
	seg.noteBatch(h, pos)
	p.leo = seg.next
	end := p.leo
	if p.cfg.sync != SyncAlways {
		seg.visible = seg.size
		p.advanceLocked(end)
		// Index entries reach the file only in syncTo, after the data
		// they point at is synced: recovery starts its scan at the last
		// entry, so an entry past the durable end would hide a torn
		// tail from it.
		p.mu.Unlock()
		if g != nil {
			return base, p.waitAcked(end)
		}
		return base, nil
	}
	if g != nil {
		p.wakeLocked() // followers long-polling for data
	}
	p.mu.Unlock()
	return base, p.waitAcked(end)
}

// syncTo returns once the records below end are fsynced, starting an
// fsync unless one in flight will cover them (group commit).
//
// Records in a segment sealed by a roll are synced by its finalization,
// which the waiters run (finalizeSealed, outside mu); an fsync of the
// active segment counts only up to the first segment not yet finalized.
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
		if p.unfinalizedBaseLocked() < end {
			p.mu.Unlock()
			if err := p.finalizeSealed(); err != nil {
				return err
			}
			p.mu.Lock()
			continue
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

	began := time.Now()
	err := seg.syncData(size)
	if fault != nil {
		err = fault()
	}
	p.counters.observeFsync(time.Since(began))
	p.cfg.hooks.fsynced(p, time.Since(began), err)

	p.mu.Lock()
	defer p.mu.Unlock()
	p.syncing = false
	close(done)
	if err != nil {
		return p.failLocked(fmt.Errorf("fsync %s: %w", seg.path, err))
	}
	p.synced = max(p.synced, min(leo, p.unfinalizedBaseLocked()))
	seg.synced = max(seg.synced, size)
	if p.active == seg && !seg.sealed {
		if p.cfg.sync == SyncAlways {
			seg.visible = max(seg.visible, size)
		}
		if err := seg.flushIndexes(size); err != nil {
			return p.failLocked(err)
		}
	}
	if p.cfg.sync == SyncAlways {
		p.advanceLocked(p.synced)
	}
	return nil
}

// unfinalizedBaseLocked returns the base offset of the first sealed
// segment not yet finalized (math.MaxInt64 when none): the records from
// there on are not known to be synced. p.mu is held.
func (p *Partition) unfinalizedBaseLocked() int64 {
	return p.unfinalized
}

// finalizedLocked moves p.unfinalized past the segments finalized since.
// p.mu is held.
func (p *Partition) finalizedLocked() {
	if p.unfinalized == math.MaxInt64 {
		return
	}
	next := int64(math.MaxInt64)
	p.segs.AscendGreaterOrEqual(&segment{base: p.unfinalized}, func(s *segment) bool {
		if s == p.active {
			return false
		}
		if s.sealed && !s.finalized {
			next = s.base
			return false
		}
		return true
	})
	p.unfinalized = next
}

// failLocked makes err sticky: the partition refuses appends until it is
// reopened, so nothing is acknowledged after a failed write or fsync
// (whose data the kernel may have dropped).
func (p *Partition) failLocked(err error) error {
	p.counters.writeErrors.Add(1)
	if p.err == nil {
		p.err = p.errorf("refusing writes after a failed write or sync (reopen to recover): %w", err)
		p.log.Error("partition failed", "error", err)
	}
	return p.err
}

// advanceLocked moves the durable end, and with it the high watermark, to
// end, waking waiters. On a replicated partition the replication layer
// moves the high watermark (raiseHW). p.mu is held.
func (p *Partition) advanceLocked(end int64) {
	if end <= p.durable {
		return
	}
	p.durable = end
	if p.gate.Load() == nil {
		p.hw.Store(end)
	}
	if p.waitCh != nil {
		close(p.waitCh)
		p.waitCh = nil
	}
}

// rollLocked seals the active segment and starts a new one that can hold
// a batch of n bytes. p.mu is held. Creating the new segment (its files,
// its first allocation, a directory fsync) happens here, since appends
// need it; finalizing the old one (fsync, trim, indexes, recovery point)
// happens outside the lock: under SyncAlways the appenders waiting for
// the old segment's records run it (syncTo), otherwise the background
// flusher does. Until then the recovery point stays before the old
// segment, so recovery validates it and cuts the log at its first torn
// batch.
func (p *Partition) rollLocked(n int64) error {
	old := p.active
	s, err := createSegment(p.fs, p.dir, p.leo, p.capacity(n), p.cfg.segmentBytes, p.cfg.indexEvery, p.cfg.sync != SyncAlways)
	if err != nil {
		return p.errorf("roll: %w", err)
	}
	old.sealLocked()
	p.segs.ReplaceOrInsert(s)
	p.active = s
	p.cfg.cache.add(s)
	p.unfinalized = min(p.unfinalized, old.base)
	p.expireProducersLocked(time.Now().UnixMilli())
	if p.cfg.finalizeLater != nil {
		p.cfg.finalizeLater(p)
	}
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
	if p.err != nil {
		// Never retry an fsync that failed: it can succeed without the
		// data the kernel dropped (fsyncgate).
		err := p.err
		p.mu.RUnlock()
		return err
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
		// Keep the files open until reads pin the segment as a
		// finalized one (pinLocked).
		c, err := s.pin()
		if err == nil {
			err = s.finalizeFiles()
		}
		p.mu.Lock()
		if err != nil {
			err = p.failLocked(err)
			p.mu.Unlock()
			c.unpin(s)
			return err
		}
		s.markFinalizedLocked()
		p.finalizedLocked()
		c.unpin(s)
		// The segments are finalized in order: everything below this
		// one's end is synced.
		p.synced = max(p.synced, s.next)
		if p.cfg.sync == SyncAlways {
			p.advanceLocked(s.next)
		}
		p.mu.Unlock()
		p.cfg.hooks.rolled(p, s)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	point := min(p.active.base, p.unfinalized)
	if point != p.recoveryPoint {
		p.recordRecoveryPoint(point)
	}
	return nil
}

// Sync fsyncs everything appended so far, for SyncPeriodic and SyncNever
// users who want a durable point now.
//
// Appends may roll the log while Sync runs: the segment that was active
// when Sync started can be sealed before the fsync of the active one, so
// Sync finalizes sealed segments again until none below its start
// remains.
func (p *Partition) Sync() error {
	p.mu.RLock()
	leo := p.leo
	p.mu.RUnlock()
	for {
		if err := p.finalizeSealed(); err != nil {
			return err
		}
		if err := p.syncTo(leo); err != nil {
			return err
		}
		if !p.sealedBelow(leo) {
			return nil
		}
	}
}

// sealedBelow reports whether a segment holding offsets below end is
// sealed but not yet finalized (so neither synced nor trimmed).
func (p *Partition) sealedBelow(end int64) bool {
	p.mu.RLock()
	defer p.mu.RUnlock()
	found := false
	p.segs.AscendLessThan(&segment{base: end}, func(s *segment) bool {
		found = s.sealed && !s.finalized
		return !found
	})
	return found
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
	if ctx == nil {
		return argError("wait", "nil context")
	}
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

// enforceRetention deletes the oldest finalized segments while they are
// older than retention (by their newest record) or the partition is over
// retentionBytes. The active segment is never deleted, nor, for its age,
// a segment holding records at or past floor (the share groups'
// progress; math.MaxInt64: none).
//
// It holds finalizeMu while it removes files, so close waits for it, and
// it does nothing once the partition is closed: after DeleteTopic a new
// topic of the same name may own files with the same names.
func (p *Partition) enforceRetention(now time.Time, retention time.Duration, retentionBytes, floor int64) (int, error) {
	p.finalizeMu.Lock()
	defer p.finalizeMu.Unlock()
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return 0, nil
	}
	var total int64
	p.segs.Ascend(func(s *segment) bool { total += s.size; return true })
	var doomed []*segment
	for {
		s, ok := p.segs.Min()
		if !ok || s == p.active || !s.finalized {
			break
		}
		old := retention >= 0 && s.maxTime < now.Add(-retention).UnixMilli() && p.segmentEndLocked(s) <= floor
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
		errs = append(errs, p.fs.SyncDir(p.dir))
	}
	p.cfg.hooks.retained(p, doomed, errors.Join(errs...))
	return len(doomed), errors.Join(errs...)
}

// segmentEndLocked returns the offset after a sealed segment's records:
// the next segment's base.
func (p *Partition) segmentEndLocked(s *segment) int64 {
	end := p.leo
	p.segs.AscendGreaterOrEqual(&segment{base: s.base + 1}, func(n *segment) bool { end = n.base; return false })
	return end
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
	if ferr != p.err { // a failed partition's error is returned once, below
		errs = append(errs, ferr)
	}
	a := p.active
	if p.err == nil {
		// Appends may have rolled the log since finalizeSealed: no more
		// can (closed is set), so finalize what they sealed before the
		// recovery point moves past it.
		p.segs.Ascend(func(s *segment) bool {
			if s.sealed && !s.finalized {
				if err := s.finalizeFiles(); err != nil {
					errs = append(errs, p.failLocked(err))
					return false
				}
				s.markFinalizedLocked()
			}
			return true
		})
		p.finalizedLocked()
	}
	if p.err == nil {
		// Trim the active segment to its batches; it stays the last
		// segment and reopens as active.
		if err := a.finalizeFiles(); err != nil {
			errs = append(errs, err)
		} else {
			p.synced = p.leo
		}
		a.index, a.tindex = nil, nil
		p.recordRecoveryPoint(a.base)
	}
	if p.err != nil {
		p.dropUnsyncedLocked()
	}
	p.segs.Ascend(func(s *segment) bool {
		errs = append(errs, s.close())
		return true
	})
	err := errors.Join(errs...)
	if err != nil {
		err = p.errorf("close: %w", err)
	}
	// A failed partition's Close fails too: it cannot promise that what
	// was appended is durable.
	return errors.Join(p.err, err)
}

// dropUnsyncedLocked cuts every segment that is not finalized back to
// what its last successful fsync covered, when closing a failed
// partition. After a failed fsync the kernel may have marked the dirty
// pages clean without writing them (fsyncgate): a reopen in this process
// would read them back from the page cache, valid-looking, and they could
// vanish at the next eviction or power cut. Nothing cut was acknowledged
// under SyncAlways. Best effort: when the disk refuses this too, the
// reopen validates what it finds, as after a crash. p.mu is held.
func (p *Partition) dropUnsyncedLocked() {
	p.segs.Ascend(func(s *segment) bool {
		if s.finalized {
			return true
		}
		c, err := s.pin()
		if err == nil {
			s.mu.Lock()
			err = s.unmapLocked()
			s.mu.Unlock()
		}
		if err == nil {
			err = s.f.Truncate(s.synced)
		}
		if err == nil {
			err = s.f.Sync()
		}
		c.unpin(s)
		if err != nil {
			p.log.Error("could not cut the unsynced tail of a failed partition", "file", s.path, "error", err)
			return false
		}
		p.log.Warn("cut the unsynced tail of a failed partition", "file", s.path, "position", s.synced)
		return true
	})
}
