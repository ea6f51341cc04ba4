package stream

import (
	"container/list"
	"errors"
	"os"
	"sync"
)

// The file cache, like Pebble's table cache: a segment holds file
// descriptors only while the cache keeps them open. Every segment of a
// partition is handed to the cache once its partition has opened it
// (recovery) or created it (a roll): the active one, sealed ones awaiting
// finalization, finalized ones. Each use of a segment's descriptors pins
// it (opening the files if they are closed); unpinned, the segment stays
// open, most recently used first, until the cache needs room for another
// and closes it. One cache serves every partition of a Stream, so
// Options.MaxOpenFiles bounds the whole process's segment descriptors
// however many partitions and segments the directory holds; pins held at
// once (one per call in flight) are the only excess.
//
// Closing the descriptors of a segment that is not finalized loses
// nothing: its memory mapping stays, and appends and reads of it go
// through the mapping. The mapping also holds the file open in the
// kernel (the mapping references the open file), so the file's
// write-back error state outlives the descriptor: the fsync through a
// descriptor opened later (a group commit, the finalization, which opens
// it before it unmaps) reports an error no fsync reported yet (Linux
// 4.16 and later sample a file's error sequence that way at open). The
// index files of a segment not yet finalized have no such hold; their
// entries are checked against the log before use and rebuilt from it
// when wrong, so a write lost there costs a rebuild, never a record.
//
// Lock order: Partition.mu, then fileCache.mu, then segment.mu. Pinning
// and eviction never wait for a read: a pinned segment is never evicted,
// and an unpinned one has no read inside it.

// filesPerSegment is the descriptors an open segment holds.
const filesPerSegment = 3

type fileCache struct {
	max int // segments the cache keeps open: MaxOpenFiles / filesPerSegment

	// mu guards lru and the cache fields of every segment (pins, elem,
	// forgotten).
	mu  sync.Mutex
	lru *list.List // open, finalized segments, most recently used first
}

func newFileCache(maxOpenFiles int) *fileCache {
	return &fileCache{max: max(1, maxOpenFiles/filesPerSegment), lru: list.New()}
}

// cacheState is a segment's part of the file cache; fileCache.mu guards
// it.
type cacheState struct {
	cache     *fileCache    // set when the segment is handed to the cache
	pins      int           // reads using the open files
	elem      *list.Element // in cache.lru while open and counted
	forgotten bool          // removed or closed: never counted again
}

// add hands a segment whose files are open to the cache, which may close
// them at once when it is full; handing it again does nothing. The
// segment's partition holds its mu (or has not been published yet), and
// uses the segment's descriptors only under a pin from then on.
func (c *fileCache) add(s *segment) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if s.cacheState.cache != nil || s.forgotten {
		return
	}
	s.cacheState.cache = c
	s.elem = c.lru.PushFront(s)
	c.evictLocked()
}

// pinLocked pins a segment for a read (see pin). A segment not finalized
// is read through its mapping, which needs no descriptor: pinning it does
// nothing. The partition's mu is held, at least for reading.
//
// A read that began before its segment was finalized holds no pin; the
// cache may close the files under it once the finalization unmapped it,
// and it gets errSegmentClosed and looks again, as when retention takes a
// segment.
func (s *segment) pinLocked() (*fileCache, error) {
	if !s.finalized {
		return nil, nil
	}
	return s.pin()
}

// pin makes sure a segment's files are open and keeps them so until the
// returned cache's unpin (a nil cache's unpin does nothing). A segment not
// yet handed to the cache (during Open) is always open: pinning it does
// nothing. It fails with errSegmentClosed once the segment is closed
// (retention removed it), and with the open's error when the files cannot
// be opened.
func (s *segment) pin() (*fileCache, error) {
	c := s.cacheState.cache
	if c == nil {
		return nil, nil
	}
	c.mu.Lock()
	s.pins++
	if s.elem != nil {
		c.lru.MoveToFront(s.elem)
		c.mu.Unlock()
		return c, nil
	}
	c.mu.Unlock()
	s.mu.Lock()
	err := s.openFilesLocked()
	s.mu.Unlock()
	c.mu.Lock()
	defer c.mu.Unlock()
	if err != nil {
		s.pins--
		return nil, err
	}
	if s.elem == nil && !s.forgotten {
		s.elem = c.lru.PushFront(s)
		c.evictLocked()
	}
	return c, nil
}

// unpin ends a use of s that pinLocked began.
func (c *fileCache) unpin(s *segment) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	s.pins--
	if s.pins == 0 {
		c.evictLocked()
	}
}

// evictLocked closes the least recently used unpinned segments while more
// than max are open. c.mu is held.
func (c *fileCache) evictLocked() {
	for e := c.lru.Back(); e != nil && c.lru.Len() > c.max; {
		s := e.Value.(*segment)
		prev := e.Prev()
		if s.pins == 0 {
			c.lru.Remove(e)
			s.elem = nil
			s.mu.Lock()
			s.closeFilesLocked()
			s.mu.Unlock()
		}
		e = prev
	}
}

// forget takes a segment out of the cache for good, before it is closed
// or removed. Its files stay open for close to release.
func (s *segment) forget() {
	c := s.cacheState.cache
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	s.forgotten = true
	if s.elem != nil {
		c.lru.Remove(s.elem)
		s.elem = nil
	}
}

// openFilesLocked opens the files of a segment the cache closed. The
// index maps of a finalized segment follow on first lookup
// (rlockIndexes). s.mu is held for writing.
func (s *segment) openFilesLocked() (err error) {
	if s.closed {
		return errSegmentClosed
	}
	if s.f != nil {
		return nil
	}
	defer func() {
		if err != nil {
			s.closeFilesLocked()
		}
	}()
	// For writing too: a damaged index is rebuilt in place
	// (rebuildIndexes).
	if s.f, err = s.fs.OpenFile(s.path, os.O_RDWR, 0); err != nil {
		return err
	}
	if s.idx, err = s.fs.OpenFile(s.indexPath(), os.O_RDWR|os.O_CREATE, 0o644); err != nil {
		return err
	}
	if s.tidx, err = s.fs.OpenFile(s.timeIndexPath(), os.O_RDWR|os.O_CREATE, 0o644); err != nil {
		return err
	}
	return nil
}

// closeFilesLocked releases the files and index maps of a segment, which
// stays usable: the next pin opens them again. The mapping of a segment
// not finalized stays (see the top of the file). s.mu is held for
// writing.
func (s *segment) closeFilesLocked() error {
	s.points.reset() // checked while open: check again when reopened
	err := errors.Join(s.unmapIndexesLocked(), s.closeFiles())
	s.f, s.idx, s.tidx = nil, nil, nil
	return err
}
