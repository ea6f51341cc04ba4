package stream

import (
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
		s, err := openSegment(p.dir, base, p.cfg.indexEvery)
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
	if err := p.rebuildProducersLocked(); err != nil {
		return err
	}
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
