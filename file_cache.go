package stream

import (
	"container/list"
	"errors"
	"os"
	"sync"
)

// The file cache of sealed segments, like Pebble's table cache: a
// finalized segment holds no file descriptor and no index map while
// nobody reads it. A read pins the segment (opening its files if they
// are closed); unpinned, the segment stays open, most recently used
// first, until the cache needs room for another and closes it. One cache
// serves every partition of a Stream, so Options.MaxOpenFiles bounds the
// whole process's sealed-segment descriptors however many segments the
// directory holds.
//
// The active segment and sealed segments not yet finalized are not in
// the cache: they hold their files until they are finalized (the
// finalizing partition then hands them to the cache) or closed.
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

// add hands a finalized segment whose files are open to the cache, which
// may close them at once when it is full. The segment's partition holds
// its mu (or has not been published yet).
func (c *fileCache) add(s *segment) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	s.cacheState.cache = c
	if s.forgotten || s.elem != nil {
		return
	}
	s.elem = c.lru.PushFront(s)
	c.evictLocked()
}

// pinLocked makes sure a finalized segment's files are open and keeps
// them so until the returned cache's unpin (a nil cache's unpin does
// nothing). Segments outside the cache (active, or not finalized) are
// always open: pinning them does nothing. It fails with errSegmentClosed
// once the segment is closed (retention removed it), and with the open's
// error when the files cannot be opened. The partition's mu is held, at
// least for reading: it orders the segment's hand-over to the cache.
//
// A read that began before its segment was finalized holds no pin; the
// cache may close the files under it, and it gets errSegmentClosed and
// looks again, as when retention takes a segment.
func (s *segment) pinLocked() (*fileCache, error) {
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

// openFilesLocked opens the files of a finalized segment the cache
// closed. The index maps follow on first lookup (rlockIndexes). s.mu is
// held for writing.
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

// closeFilesLocked releases the files and index maps of a finalized
// segment, which stays usable: the next pin opens them again. s.mu is
// held for writing.
func (s *segment) closeFilesLocked() error {
	s.points.reset() // checked while open: check again when reopened
	err := errors.Join(s.unmapIndexesLocked(), s.closeFiles())
	s.f, s.idx, s.tidx = nil, nil, nil
	return err
}
