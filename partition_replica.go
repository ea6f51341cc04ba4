package stream

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"time"
)

// The hooks a Partition gives the replication layer (replica.go): a gate
// on appends, the leader epoch stamped in each batch, appends of a
// leader's batches as they are, truncation (KIP-101), the leader-epoch
// cache, raw reads for fetches, and a high watermark that the layer sets.
// On a single node none of it runs: the gate is nil, and every hook on
// the append path is one nil check.

// replicaGate is what the append path needs to know of a replicated
// partition, as one immutable snapshot: who leads, in which epoch, how
// big the ISR is. Set by the replication layer while holding the
// partition's mu; read anywhere.
type replicaGate struct {
	self, leader NodeID
	epoch        int32
	isr, minISR  int
	r            *replica
}

// admit refuses an append on a replica that is not the leader
// (ErrNotLeader, naming the leader) or a leader whose ISR is below
// MinInSyncReplicas (ErrNotEnoughReplicas); nothing is written then.
func (g *replicaGate) admit(p *Partition) error {
	if g.leader != g.self {
		if g.leader == 0 {
			return p.errorf("no leader known (this is node %d): %w", g.self, ErrNotLeader)
		}
		return p.errorf("the leader is node %d, not this node %d: %w", g.leader, g.self, ErrNotLeader)
	}
	if g.isr < g.minISR {
		return p.errorf("ISR of %d below MinInSyncReplicas %d: %w", g.isr, g.minISR, ErrNotEnoughReplicas)
	}
	return nil
}

// attachReplica makes the partition replicated: appends go through g,
// and the high watermark falls back to the log start, for the
// replication layer to raise (see replicaManager.add).
func (p *Partition) attachReplica(g *replicaGate) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.gate.Store(g)
	p.hw.Store(p.start.Load())
	p.wakeLocked()
}

// setGate installs g (nil: back to a single node) under p.mu.
func (p *Partition) setGate(g *replicaGate) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.gate.Store(g)
	p.wakeLocked()
}

// wakeLocked wakes whoever waits on hwChanged. p.mu is held.
func (p *Partition) wakeLocked() {
	if p.waitCh != nil {
		close(p.waitCh)
		p.waitCh = nil
	}
}

// logEnds returns the log end offset and the durable end.
func (p *Partition) logEnds() (leo, durable int64) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.leo, p.durable
}

// raiseHW moves the high watermark of a replicated partition up to hw,
// never past the durable end and never down.
func (p *Partition) raiseHW(hw int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	hw = min(hw, p.durable)
	if hw > p.hw.Load() {
		p.hw.Store(hw)
		p.wakeLocked()
	}
}

// epochCacheLocked returns the leader-epoch cache, loading it on first
// use. A log written before the cache existed (a single node's) holds
// batches of epoch 0: it starts as epoch 0 from the log start. p.mu is
// held.
func (p *Partition) epochCacheLocked() (*leaderEpochCache, error) {
	if p.epochs != nil {
		return p.epochs, nil
	}
	c, err := loadLeaderEpochCache(p.fs, p.dir, p.leo)
	if err != nil {
		return nil, p.errorf("leader-epoch cache: %w", err)
	}
	if len(c.entries) == 0 && p.leo > p.start.Load() {
		if err := c.assign(0, p.start.Load()); err != nil {
			return nil, p.errorf("leader-epoch cache: %w", err)
		}
	}
	p.epochs = c
	return c, nil
}

// assignEpoch records, durably, that epoch starts at the log end: a new
// leader does it before it takes appends.
func (p *Partition) assignEpoch(epoch int32) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	c, err := p.epochCacheLocked()
	if err != nil {
		return err
	}
	if err := c.assign(epoch, p.leo); err != nil {
		return p.errorf("leader-epoch cache: %w", err)
	}
	return nil
}

// latestEpoch returns the newest epoch in the cache, -1 when none, and
// where the given epoch ends on this log (OffsetsForLeaderEpoch).
func (p *Partition) endOffsetForEpoch(epoch int32) (latest, found int32, end int64, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	c, err := p.epochCacheLocked()
	if err != nil {
		return -1, -1, -1, err
	}
	found, end = c.endOffsetFor(epoch, p.leo)
	return c.latest(), found, end, nil
}

// errDiverged is a follower append whose first batch does not start at
// the follower's log end: it truncates again before fetching.
var errDiverged = errors.New("batches do not continue the log")

// appendReplicated appends a leader's batches to a follower's log byte
// for byte, at their own offsets (the first must start at the log end,
// each following on), keeping their partitionLeaderEpoch, after checking
// each one's CRC. Nothing is appended unless every batch checks out.
// Under SyncAlways it returns once they are fsynced. It returns the new
// log end.
func (p *Partition) appendReplicated(data []byte) (int64, error) {
	type item struct {
		h batchHeader
		b []byte
	}
	var items []item
	for pos := 0; pos < len(data); {
		if len(data)-pos < batchHeaderSize {
			return 0, p.errorf("replicated batch: %d bytes left, shorter than a header: %w", len(data)-pos, ErrCorrupt)
		}
		h, err := parseBatchHeader(data[pos:])
		if err != nil {
			return 0, p.errorf("replicated batch at byte %d: %v: %w", pos, err, ErrCorrupt)
		}
		if h.Size() > int64(len(data)-pos) {
			return 0, p.errorf("replicated batch of %d bytes, %d left: %w", h.Size(), len(data)-pos, ErrCorrupt)
		}
		b := data[pos : pos+int(h.Size())]
		if err := checkBatch(b, &h); err != nil {
			return 0, p.errorf("replicated batch at offset %d: %v: %w", h.BaseOffset, err, ErrCorrupt)
		}
		if n := len(items); n > 0 && h.BaseOffset != items[n-1].h.LastOffset()+1 {
			return 0, p.errorf("replicated batch at offset %d after one ending at %d: %w", h.BaseOffset, items[n-1].h.LastOffset(), errDiverged)
		}
		items = append(items, item{h, b})
		pos += len(b)
	}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return 0, p.errorf("%w", ErrClosed)
	}
	if p.err != nil {
		err := p.err
		p.mu.Unlock()
		return 0, err
	}
	if len(items) == 0 {
		leo := p.leo
		p.mu.Unlock()
		return leo, nil
	}
	if items[0].h.BaseOffset != p.leo {
		leo := p.leo
		p.mu.Unlock()
		return 0, p.errorf("replicated batch at offset %d, log end %d: %w", items[0].h.BaseOffset, leo, errDiverged)
	}
	// Epochs first: an entry is durable before any batch of its epoch.
	c, err := p.epochCacheLocked()
	if err != nil {
		p.mu.Unlock()
		return 0, err
	}
	for _, it := range items {
		if it.h.LeaderEpoch > c.latest() {
			if err := c.assign(it.h.LeaderEpoch, it.h.BaseOffset); err != nil {
				p.mu.Unlock()
				return 0, p.errorf("leader-epoch cache: %w", err)
			}
		}
	}
	now := time.Now().UnixMilli()
	for _, it := range items {
		n := int64(len(it.b))
		seg, pos, err := p.reserveLocked(n, now)
		if err != nil {
			p.mu.Unlock()
			return 0, err
		}
		copy(seg.m[pos:pos+n], it.b)
		if seg.firstTime < 0 {
			seg.firstTime = now
		}
		seg.noteBatch(&it.h, pos)
		p.leo = seg.next
		if it.h.ProducerID >= 0 {
			p.noteSequenceLocked(it.h.ProducerID, it.h.ProducerEpoch, it.h.BaseSequence, int(it.h.LastOffsetDelta)+1, it.h.BaseOffset, now)
		}
		if p.cfg.sync != SyncAlways {
			seg.visible = seg.size
		}
	}
	end := p.leo
	p.wakeLocked()
	if p.cfg.sync != SyncAlways {
		p.advanceLocked(end)
		p.mu.Unlock()
		return end, nil
	}
	p.mu.Unlock()
	return end, p.syncTo(end)
}

// readRaw returns whole batches from offset, as they lie in the log
// (leader epochs, CRCs and all), up to about maxBytes but at least one
// batch when offset is below the log end, from one segment. offset must
// start a batch. Replicas fetch with it, past the high watermark.
func (p *Partition) readRaw(offset int64, maxBytes int) ([]byte, error) {
	p.mu.RLock()
	if p.closed {
		p.mu.RUnlock()
		return nil, p.errorf("%w", ErrClosed)
	}
	leo, start := p.leo, p.start.Load()
	if offset < start || offset > leo {
		p.mu.RUnlock()
		return nil, p.errorf("fetch at offset %d outside [%d, %d]: %w", offset, start, leo, ErrOffsetOutOfRange)
	}
	if offset == leo {
		p.mu.RUnlock()
		return nil, nil
	}
	seg := p.floorLocked(offset)
	pos, base, err := seg.lookupLocked(offset)
	limit := seg.size
	p.mu.RUnlock()
	if err != nil {
		return nil, p.errorf("fetch at offset %d: %w", offset, err)
	}
	var hdr [batchHeaderSize]byte
	for base < offset { // skip to the batch at offset
		if pos+batchHeaderSize > limit {
			return nil, p.errorf("fetch at offset %d: past the segment's data: %w", offset, ErrOffsetOutOfRange)
		}
		if err := seg.readAt(hdr[:], pos); err != nil {
			return nil, p.errorf("fetch at offset %d: %w", offset, err)
		}
		h, err := parseBatchHeader(hdr[:])
		if err != nil || h.BaseOffset != base {
			return nil, corruptError(seg.path, pos, fmt.Errorf("fetch at offset %d: batch header: %v", offset, err))
		}
		if h.LastOffset() >= offset {
			return nil, p.errorf("fetch at offset %d, inside the batch at %d: %w", offset, base, ErrOffsetOutOfRange)
		}
		pos += h.Size()
		base = h.LastOffset() + 1
	}
	end := pos
	for end < limit && (end == pos || end-pos < int64(maxBytes)) {
		if err := seg.readAt(hdr[:], end); err != nil {
			return nil, p.errorf("fetch at offset %d: %w", offset, err)
		}
		h, err := parseBatchHeader(hdr[:])
		if err != nil || end+h.Size() > limit {
			return nil, corruptError(seg.path, end, fmt.Errorf("fetch: batch header: %v", err))
		}
		if end > pos && end-pos+h.Size() > int64(maxBytes) {
			break
		}
		end += h.Size()
	}
	out := make([]byte, end-pos)
	if err := seg.readAt(out, pos); err != nil {
		return nil, p.errorf("fetch at offset %d: %w", offset, err)
	}
	return out, nil
}

// truncateTo cuts the log at offset, durably (KIP-101): every batch from
// the one holding offset on goes, across segments, and the leader-epoch
// cache loses the epochs that started there. The log end becomes the
// base of that batch (offset itself when it starts one); the high
// watermark comes down with it if it was above. Nothing happens when
// offset is at or past the log end. A failure is sticky, as a failed
// write.
//
// The order keeps every crash state a prefix of the old log: the
// recovery point moves to the kept segment first (so recovery scans it),
// later segments go from the last, then the kept one is cut and fsynced,
// then the epoch cache is rewritten.
func (p *Partition) truncateTo(offset int64) error {
	p.finalizeMu.Lock()
	defer p.finalizeMu.Unlock()
	p.mu.Lock()
	defer p.mu.Unlock()
	for p.syncing { // let the group commit in flight finish
		done := p.syncDone
		p.mu.Unlock()
		<-done
		p.mu.Lock()
	}
	if p.closed {
		return p.errorf("%w", ErrClosed)
	}
	if p.err != nil {
		return p.err
	}
	if offset >= p.leo {
		return nil
	}
	if offset < p.start.Load() {
		return p.errorf("truncate to offset %d below the log start %d: %w", offset, p.start.Load(), ErrOffsetOutOfRange)
	}
	s := p.floorLocked(offset)
	pos, base, err := s.lookupLocked(offset)
	if err != nil {
		return p.failLocked(fmt.Errorf("truncate: %w", err))
	}
	var hdr [batchHeaderSize]byte
	for pos < s.size {
		if err := s.readAt(hdr[:], pos); err != nil {
			return p.failLocked(fmt.Errorf("truncate: %w", err))
		}
		h, err := parseBatchHeader(hdr[:])
		if err != nil {
			return p.failLocked(corruptError(s.path, pos, err))
		}
		if h.LastOffset() >= offset {
			break
		}
		pos += h.Size()
		base = h.LastOffset() + 1
	}
	if p.recoveryPoint > s.base {
		p.recordRecoveryPoint(s.base)
	}
	var later []*segment
	p.segs.AscendGreaterOrEqual(&segment{base: s.base + 1}, func(l *segment) bool {
		later = append(later, l)
		return true
	})
	for i := len(later) - 1; i >= 0; i-- {
		p.segs.Delete(later[i])
		if err := later[i].remove(); err != nil {
			return p.failLocked(fmt.Errorf("truncate: %w", err))
		}
	}
	if len(later) > 0 {
		if err := p.fs.SyncDir(p.dir); err != nil {
			return p.failLocked(fmt.Errorf("truncate: %w", err))
		}
	}
	if err := p.reopenActiveAt(s, pos); err != nil {
		return p.failLocked(fmt.Errorf("truncate %s at byte %d: %w", s.path, pos, err))
	}
	p.leo = s.next
	p.durable, p.synced = min(p.durable, p.leo), min(p.synced, p.leo)
	if p.hw.Load() > p.leo {
		p.hw.Store(p.leo)
	}
	p.producers = nil
	if err := p.rebuildProducersLocked(); err != nil {
		return p.failLocked(err)
	}
	if p.epochs != nil && p.epochs.truncateFromEnd(p.leo) {
		if err := p.epochs.write(); err != nil {
			return p.failLocked(fmt.Errorf("leader-epoch cache: %w", err))
		}
	}
	p.log.Info("truncated log", "offset", p.leo, "asked", offset, "base", base)
	p.wakeLocked()
	return nil
}

// truncateFullyAndStartAt drops the whole log and starts it again,
// empty, at offset (Kafka's truncateFullyAndStartAt): a follower whose
// log ends below the leader's log start (retention deleted what it
// needs) restarts its log where the leader's begins. offset must be past
// the log end. Crash-safe in this order: the new empty segment is
// created (a crash then leaves the old log, the new segment dropped by
// recovery as a gap), the old segments go from the first (a crash
// leaves a suffix of the old log), then the recovery point and the
// leader-epoch cache follow.
func (p *Partition) truncateFullyAndStartAt(offset int64) error {
	p.finalizeMu.Lock()
	defer p.finalizeMu.Unlock()
	p.mu.Lock()
	defer p.mu.Unlock()
	for p.syncing {
		done := p.syncDone
		p.mu.Unlock()
		<-done
		p.mu.Lock()
	}
	if p.closed {
		return p.errorf("%w", ErrClosed)
	}
	if p.err != nil {
		return p.err
	}
	if offset <= p.leo {
		return p.errorf("restart the log at offset %d, not past its end %d: %w", offset, p.leo, ErrOffsetOutOfRange)
	}
	s, err := createSegment(p.fs, p.dir, offset, p.capacity(0), p.cfg.segmentBytes, p.cfg.indexEvery, p.cfg.sync != SyncAlways)
	if err != nil {
		return p.failLocked(fmt.Errorf("restart the log at offset %d: %w", offset, err))
	}
	var old []*segment
	p.segs.Ascend(func(o *segment) bool { old = append(old, o); return true })
	p.segs.Clear(false)
	p.segs.ReplaceOrInsert(s)
	p.active = s
	p.cfg.cache.add(s)
	p.unfinalized = math.MaxInt64
	for _, o := range old {
		if err := o.remove(); err != nil {
			return p.failLocked(fmt.Errorf("restart the log at offset %d: %w", offset, err))
		}
	}
	if err := p.fs.SyncDir(p.dir); err != nil {
		return p.failLocked(fmt.Errorf("restart the log at offset %d: %w", offset, err))
	}
	p.recordRecoveryPoint(offset)
	p.leo, p.durable, p.synced = offset, offset, offset
	p.start.Store(offset)
	p.hw.Store(max(p.hw.Load(), offset))
	p.producers = nil
	if p.epochs != nil && len(p.epochs.entries) > 0 {
		p.epochs.entries = nil
		if err := p.epochs.write(); err != nil {
			return p.failLocked(fmt.Errorf("leader-epoch cache: %w", err))
		}
	}
	p.log.Info("log restarted at the leader's log start", "offset", offset)
	p.wakeLocked()
	return nil
}

// reopenActiveAt cuts segment s at byte pos, fsyncs it, and makes it the
// active segment again, its in-memory indexes rebuilt from the log (the
// recovery of a last segment). p.mu is held.
func (p *Partition) reopenActiveAt(s *segment, pos int64) error {
	s.points.reset()  // its batches change
	c, err := s.pin() // the file cache may have closed its files
	if err != nil {
		return err
	}
	defer c.unpin(s)
	s.mu.Lock()
	err = errors.Join(s.unmapLocked(), s.unmapIndexesLocked())
	s.mu.Unlock()
	if err != nil {
		return err
	}
	if err := s.f.Truncate(pos); err != nil {
		return err
	}
	if err := s.f.Sync(); err != nil {
		return err
	}
	for _, f := range []vfsFile{s.idx, s.tidx} {
		if err := f.Truncate(0); err != nil {
			return err
		}
	}
	s.sealed, s.finalized = false, false
	s.idxDone, s.tidxDone = 0, 0
	if _, err := s.recoverActive(true); err != nil {
		return err
	}
	for _, f := range []vfsFile{s.idx, s.tidx} {
		if err := f.Sync(); err != nil {
			return err
		}
	}
	return p.setActiveLocked(s)
}

// stampEpochLocked writes the leader's epoch into a batch being
// committed (partitionLeaderEpoch lies outside the CRC). p.mu is held.
func stampEpoch(g *replicaGate, dst []byte, h *batchHeader) {
	binary.BigEndian.PutUint32(dst[offLeaderEpoch:], uint32(g.epoch))
	h.LeaderEpoch = g.epoch
}

// isClosed reports whether the partition was closed.
func (p *Partition) isClosed() bool {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.closed
}
