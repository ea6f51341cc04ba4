package stream

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// Recovery of a partition's log on Open: cleaning up after interrupted
// deletions and rolls, validating unsynced segments, truncating torn
// tails, and the recovery point that says which segments are finalized.

// listSegments returns the base offsets of the .log files, sorted, after
// removing what an interrupted deletion or roll left behind.
func (p *Partition) listSegments() ([]int64, error) {
	entries, err := p.fs.ReadDir(p.dir)
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
			if err := p.fs.Remove(filepath.Join(p.dir, name)); err != nil {
				return nil, err
			}
		}
	}
	slices.Sort(bases)
	return bases, nil
}

// recover opens the segments found on disk. Segments wholly below the
// recovery point were finalized (synced, trimmed, indexed) and are
// trusted: damage there stays for reads to report as ErrCorrupt. After
// the recovery point every batch is checked, as Kafka does: the log is
// cut at the first invalid batch (a torn tail: the power went before it
// was synced) and every later segment is removed; a sealed segment that
// checks out is trimmed of preallocated zeros and finalized again. The
// last segment is validated from its last index entry (entries are
// written only for synced data) and becomes the active one. Every cut is
// recorded in p.recovery. Without a recovery point file (pointKnown
// false) sealed segments are never cut: damage in them is recorded and
// left for reads to report. After a clean Close the last segment is
// trusted as Close left it (openActiveClean).
//
// Each finalized segment goes to the file cache, which keeps at most
// Options.MaxOpenFiles of their files open.
func (p *Partition) recover(bases []int64, pointKnown bool) error {
	for i, base := range bases {
		s, err := openSegment(p.fs, p.dir, base, p.cfg.indexEvery)
		if err != nil {
			return err
		}
		p.segs.ReplaceOrInsert(s)
		if i == len(bases)-1 {
			if p.cfg.cleanStart {
				return p.openActiveClean(s)
			}
			return p.recoverActive(s, false)
		}
		next := bases[i+1]
		if next <= p.recoveryPoint {
			if err := s.loadSealed(next); err != nil {
				return err
			}
			p.cfg.cache.add(s)
			continue
		}
		// Sealed after the last recorded finalization: check every
		// batch. A crash between roll and finalization leaves the
		// preallocated zeros after the batches, which are trimmed.
		r, err := s.scan(0, base, nil)
		if err != nil {
			return err
		}
		if r.next == next && r.bad == nil && (!r.zeroTail || s.zeroFrom(r.end)) {
			if err := p.refinalize(s, r.end, next); err != nil {
				return err
			}
			p.cfg.cache.add(s)
			continue
		}
		why := r.bad
		if why == nil {
			why = fmt.Errorf("segment ends at offset %d, the next segment starts at %d", r.next, next)
		}
		if !pointKnown {
			// Without a recovery point (its file lost or damaged;
			// every partition writes one when created) nothing says
			// where the durable log ends: keep the later segments,
			// and let reads report the damage.
			p.noteRecovery(RecoveryEvent{File: s.path, Position: r.end, Offset: r.next, Err: why})
			if err := s.loadSealed(next); err != nil {
				return err
			}
			p.cfg.cache.add(s)
			continue
		}
		size, err := s.f.Size()
		if err != nil {
			return err
		}
		ev := RecoveryEvent{
			File: s.path, Position: r.end, Offset: r.next, Truncated: true,
			DroppedBytes: s.dataEnd(r.end, size) - r.end, Err: why,
		}
		for _, b := range bases[i+1:] {
			n, err := p.removeSegmentFiles(b)
			if err != nil {
				return err
			}
			ev.DroppedBytes += n
			ev.DroppedSegments++
		}
		if err := p.fs.SyncDir(p.dir); err != nil {
			return err
		}
		p.noteRecovery(ev)
		// The cut itself is recoverActive's: it scans this segment
		// and truncates at the same batch.
		s.index, s.tindex = nil, nil
		if err := s.idx.Truncate(0); err != nil {
			return err
		}
		if err := s.tidx.Truncate(0); err != nil {
			return err
		}
		return p.recoverActive(s, true)
	}
	return nil
}

// removeSegmentFiles removes the files of the segment at base that
// recovery drops, the log first, and returns the log's size.
func (p *Partition) removeSegmentFiles(base int64) (int64, error) {
	var size int64
	if f, err := p.fs.OpenFile(segmentPath(p.dir, base, ".log"), os.O_RDONLY, 0); err == nil {
		size, _ = f.Size()
		f.Close()
	}
	for _, ext := range []string{".log", ".index", ".timeindex"} {
		if err := p.fs.Remove(segmentPath(p.dir, base, ext)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return 0, err
		}
	}
	return size, nil
}

// noteRecovery records (and logs) a repair or a problem found at Open.
func (p *Partition) noteRecovery(ev RecoveryEvent) {
	ev.Topic, ev.Partition = p.topic, p.id
	p.recovery = append(p.recovery, ev)
	p.log.Warn("recovery", "event", ev.String())
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
	bad, err := s.rebuildIndexes(nil)
	if err != nil {
		return err
	}
	if bad != nil {
		return bad
	}
	return nil
}

// recoverActive validates the last segment and makes it the active one.
// noted: recover already recorded the cut it makes.
func (p *Partition) recoverActive(s *segment, noted bool) error {
	events, err := s.recoverActive(false)
	if err != nil {
		return err
	}
	for _, ev := range events {
		if !(noted && ev.Truncated) {
			p.noteRecovery(ev)
		}
	}
	if err := s.syncData(s.size); err != nil {
		return err
	}
	return p.openActiveLocked(s)
}

// openActiveLocked makes s, synced to its end, the active segment: it maps
// it for appends, rebuilds the producers' state and moves the recovery
// point to it.
func (p *Partition) openActiveLocked(s *segment) error {
	if err := p.setActiveLocked(s); err != nil {
		return err
	}
	if err := p.rebuildProducersLocked(); err != nil {
		return err
	}
	if p.recoveryPoint != s.base {
		p.recordRecoveryPoint(s.base)
	}
	p.cfg.cache.add(s)
	return nil
}

// setActiveLocked maps s, synced to its end, for appends and makes it the
// active segment.
func (p *Partition) setActiveLocked(s *segment) error {
	s.synced = s.size
	if err := s.activate(p.capacity(s.size), p.cfg.segmentBytes, p.cfg.sync != SyncAlways); err != nil {
		return err
	}
	p.active = s
	return nil
}

// readRecoveryPoint reads the recovery point file; known is false when
// it is missing or unreadable. An empty (or all-zero) file is 0: a new partition writes
// its first recovery point without an fsync (the directory fsync of its
// first segment makes the entry durable, maybe not the bytes); later
// ones are renamed into place only once synced.
func (p *Partition) readRecoveryPoint() (point int64, known bool) {
	b, err := readFile(p.fs, filepath.Join(p.dir, recoveryPointFile))
	if err != nil {
		return 0, false
	}
	if len(bytes.Trim(b, "\x00")) == 0 {
		return 0, true // empty, or its size reached the disk without its bytes
	}
	n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil || n < 0 {
		return 0, false
	}
	return n, true
}

// recordRecoveryPoint notes that the segments below offset are
// finalized, in memory and on disk. Failing to write the file (a full
// disk) is logged, not fatal: a stale recovery point only makes the next
// Open validate more segments.
func (p *Partition) recordRecoveryPoint(offset int64) {
	p.recoveryPoint = offset
	if err := p.writeRecoveryPoint(offset); err != nil {
		p.log.Warn("could not record the recovery point; the next Open checks more segments", "error", err)
	}
}

// writeRecoveryPoint writes the recovery point file: a temporary file,
// synced, renamed into place, the directory synced.
func (p *Partition) writeRecoveryPoint(offset int64) error {
	path := filepath.Join(p.dir, recoveryPointFile)
	tmp := path + ".tmp"
	if err := writeFile(p.fs, tmp, []byte(strconv.FormatInt(offset, 10)+"\n"), true); err != nil {
		return err
	}
	if err := p.fs.Rename(tmp, path); err != nil {
		return err
	}
	return p.fs.SyncDir(p.dir)
}

// RecoveryEvent is one repair Open made to a partition's log, or one
// problem it found and left in place. Stream.Recovery returns them.
type RecoveryEvent struct {
	Topic     string
	Partition int32
	File      string // the .log file
	Position  int64  // byte position of the first invalid batch
	Offset    int64  // offset the invalid batch should have started at
	// Truncated: the log was cut at Position, after the last recovery
	// point (a torn tail: data the power cut before it was synced), and
	// the offsets from Offset on are gone; appends continue at Offset.
	// DroppedBytes and DroppedSegments say how much went: the bytes of
	// data cut (preallocated zeros aside) and the later segments
	// removed. False: damage below the recovery point, left in place;
	// reads that reach it fail with ErrCorrupt.
	Truncated       bool
	DroppedBytes    int64
	DroppedSegments int
	Err             error // what was wrong at Position
}

func (e RecoveryEvent) String() string {
	if !e.Truncated {
		return fmt.Sprintf("%s-%d: damage in %s at byte %d (offset %d) left for reads to report: %v",
			e.Topic, e.Partition, e.File, e.Position, e.Offset, e.Err)
	}
	return fmt.Sprintf("%s-%d: truncated %s at byte %d (offset %d), dropping %d bytes of data and %d later segments: %v",
		e.Topic, e.Partition, e.File, e.Position, e.Offset, e.DroppedBytes, e.DroppedSegments, e.Err)
}
