package stream

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// The clean-shutdown marker, as Kafka's .kafka_cleanshutdown: a Close
// that closed every partition without an error (each active segment
// synced, trimmed to its batches, its indexes complete and synced; each
// sealed segment finalized) leaves DIR/topics/.clean_shutdown. The next
// Open takes it away, durably, before it opens a partition, and then
// trusts each partition's active segment as Close left it: it reads the
// index files and walks the batch headers after the last index entry to
// find the end of the log, without reading or checking the batches
// before it (openActiveClean). Without the marker — after a crash, kill
// -9 or a power cut, or a Close that failed — Open validates what is
// after each recovery point (recover).
//
// The marker goes before any append: a crash after a reopen leaves no
// marker, so it is never taken for a clean shutdown. A power cut before
// its removal reached the disk leaves the directory exactly as the clean
// Close did, since nothing has been written since.
const cleanShutdownFile = ".clean_shutdown"

// markCleanShutdown writes the marker, durably, once every partition
// closed cleanly.
func markCleanShutdown(fsys fileSystem, topicsDir string) error {
	if err := writeFile(fsys, filepath.Join(topicsDir, cleanShutdownFile), nil, true); err != nil {
		return err
	}
	return fsys.SyncDir(topicsDir)
}

// takeCleanShutdown reports whether the marker is there, and removes it
// durably.
func takeCleanShutdown(fsys fileSystem, topicsDir string) (bool, error) {
	path := filepath.Join(topicsDir, cleanShutdownFile)
	ok, err := fsys.Exists(path)
	if err != nil || !ok {
		return false, err
	}
	if err := fsys.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return false, err
	}
	return true, fsys.SyncDir(topicsDir)
}

// openActiveClean makes the last segment the active one after a clean
// Close, without validating it. When it does not look as a clean Close
// leaves it (its indexes or headers do not chain to the end of the file)
// it is validated as after a crash.
func (p *Partition) openActiveClean(s *segment) error {
	ok, err := s.loadActiveClean()
	if err != nil {
		return err
	}
	if !ok {
		p.log.Warn("active segment not as a clean Close leaves it; validating it", "file", s.path)
		return p.recoverActive(s, false)
	}
	return p.openActiveLocked(s)
}

// loadActiveClean rebuilds the active segment's in-memory state from its
// index files and the batch headers after the last index entry, trusting
// the file as a clean Close wrote it: trimmed to whole batches, synced,
// its indexes complete. It reports false when the files do not chain.
func (s *segment) loadActiveClean() (bool, error) {
	raw, err := io.ReadAll(io.NewSectionReader(s.idx, 0, 1<<31))
	if err != nil {
		return false, err
	}
	traw, err := io.ReadAll(io.NewSectionReader(s.tidx, 0, 1<<31))
	if err != nil {
		return false, err
	}
	fileSize, err := s.f.Size()
	if err != nil {
		return false, err
	}
	if len(raw)%indexEntrySize != 0 || len(traw)%timeEntrySize != 0 {
		return false, nil
	}
	entries := decodeIndex(raw)
	for i, e := range entries {
		if e.pos == 0 || int64(e.pos) >= fileSize || i > 0 && (e.rel <= entries[i-1].rel || e.pos <= entries[i-1].pos) {
			return false, nil
		}
	}
	tentries := decodeTimeIndex(traw)
	for i, e := range tentries {
		if i > 0 && e.ts < tentries[i-1].ts {
			return false, nil
		}
	}

	// As loadIndexForRecovery: keep the entries before the last one;
	// the walk from the last one re-adds it and what follows.
	s.index, s.tindex = nil, nil
	s.maxTime, s.maxTimeRel, s.firstTime, s.sinceIndex = -1, 0, -1, 0
	pos, next := int64(0), s.base
	if n := len(entries); n > 0 {
		last := entries[n-1]
		pos, next = int64(last.pos), s.base+int64(last.rel)
		s.index = entries[:n-1]
		for _, e := range tentries {
			if e.rel >= last.rel {
				break
			}
			s.tindex = append(s.tindex, e)
		}
		if k := len(s.tindex); k > 0 {
			s.maxTime, s.maxTimeRel = s.tindex[k-1].ts, s.tindex[k-1].rel
		}
		s.firstTime = s.firstBatchTime()
		s.sinceIndex = s.indexEvery
	}
	s.size = pos
	var hdr [batchHeaderSize]byte
	for pos < fileSize {
		if fileSize-pos < batchHeaderSize {
			return false, nil
		}
		if _, err := s.f.ReadAt(hdr[:], pos); err != nil {
			return false, err
		}
		h, err := parseBatchHeader(hdr[:])
		if err != nil || h.BaseOffset != next || pos+h.Size() > fileSize {
			return false, nil
		}
		s.noteBatch(&h, pos)
		pos += h.Size()
		next = h.LastOffset() + 1
	}
	s.size, s.next, s.visible = pos, next, pos

	// The index files hold what was just rebuilt, unless
	// IndexIntervalBytes changed since: then write them again.
	if bytes.Equal(encodeIndex(s.index), raw) && bytes.Equal(encodeTimeIndex(s.tindex), traw) {
		s.idxDone, s.tidxDone = len(s.index), len(s.tindex)
		return true, nil
	}
	if err := s.idx.Truncate(0); err != nil {
		return false, fmt.Errorf("rewrite %s: %w", s.indexPath(), err)
	}
	if err := s.tidx.Truncate(0); err != nil {
		return false, fmt.Errorf("rewrite %s: %w", s.timeIndexPath(), err)
	}
	s.idxDone, s.tidxDone = 0, 0
	return true, s.flushIndexes(s.size)
}

func decodeIndex(raw []byte) []indexEntry {
	entries := make([]indexEntry, 0, len(raw)/indexEntrySize)
	for i := 0; i+indexEntrySize <= len(raw); i += indexEntrySize {
		entries = append(entries, indexEntry{rel: binary.BigEndian.Uint32(raw[i:]), pos: binary.BigEndian.Uint32(raw[i+4:])})
	}
	return entries
}

func decodeTimeIndex(raw []byte) []timeEntry {
	entries := make([]timeEntry, 0, len(raw)/timeEntrySize)
	for i := 0; i+timeEntrySize <= len(raw); i += timeEntrySize {
		entries = append(entries, timeEntry{ts: int64(binary.BigEndian.Uint64(raw[i:])), rel: binary.BigEndian.Uint32(raw[i+8:])})
	}
	return entries
}

// partitionsHealthy reports whether no partition failed a write or an
// fsync: a failed one's Close cuts what it cannot vouch for, and the next
// Open validates it.
func (s *Stream) partitionsHealthy() bool {
	for _, t := range s.topics {
		for _, p := range t.partitions {
			p.mu.RLock()
			err := p.err
			p.mu.RUnlock()
			if err != nil {
				return false
			}
		}
	}
	return true
}
