package stream

import (
	"fmt"
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
// recovery point were finalized and are trusted (their batches are
// checked when read); a later sealed segment is validated in full and
// trimmed of preallocated zeros, and the last one is validated from its
// last good index entry, its torn or corrupt tail truncated. Only the
// last segment is ever truncated: damage before it stays, for reads to
// report.
func (p *Partition) recover(bases []int64) error {
	for i, base := range bases {
		s, err := openSegment(p.fs, p.dir, base, p.cfg.indexEvery)
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
		// Sealed after the last recorded finalization: check every
		// batch. A crash between roll and finalization leaves the
		// preallocated zeros after the batches, which are trimmed.
		// Anything else is damage, and damage in a segment that a later
		// one follows is never truncated (nor the later ones removed):
		// reads that reach it report ErrCorrupt.
		r, err := s.scan(0, base, nil)
		if err != nil {
			return err
		}
		if r.next == next && r.bad == nil && (!r.zeroTail || s.zeroFrom(r.end)) {
			if err := p.refinalize(s, r.end, next); err != nil {
				return err
			}
			continue
		}
		why := r.bad
		if why == nil {
			why = fmt.Errorf("ends at offset %d, the next segment starts at %d", r.next, next)
		}
		p.log.Error("damaged segment: reads that reach the damage report it", "file", s.path, "position", r.end, "reason", why)
		if err := s.loadSealed(next); err != nil {
			return err
		}
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
	if err := s.syncData(s.size); err != nil {
		return err
	}
	if err := s.activate(p.capacity(s.size)); err != nil {
		return err
	}
	p.active = s
	if err := p.rebuildProducersLocked(); err != nil {
		return err
	}
	if p.recoveryPoint != s.base {
		p.recordRecoveryPoint(s.base)
	}
	return nil
}

func (p *Partition) readRecoveryPoint() int64 {
	b, err := readFile(p.fs, filepath.Join(p.dir, recoveryPointFile))
	if err != nil {
		return 0
	}
	n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		return 0
	}
	return n
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
	if err := writeFileSync(p.fs, tmp, []byte(strconv.FormatInt(offset, 10)+"\n")); err != nil {
		return err
	}
	if err := p.fs.Rename(tmp, path); err != nil {
		return err
	}
	return p.fs.SyncDir(p.dir)
}
