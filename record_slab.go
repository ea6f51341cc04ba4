package stream

import "math"

// A consumer decodes the records it reads ahead into slabs: chunks of
// Record structs and of record bytes, carved batch after batch, so a
// fetch costs an allocation per chunk (about readAhead bytes of records)
// rather than two per batch. Records Poll hands out are the caller's for
// good: their chunk is never reused. Records Run lends its handler are
// only valid until the handler returns: once handled, their chunk goes
// back to the free list and the next read ahead decodes into it, so a Run
// in a steady state allocates nothing per record.

// Chunk sizes: a chunk holds about one read ahead of records, and at most
// slabRecords of them.
const (
	slabRecords = 1024
	slabBytes   = readAhead
	// slabFree is how many free chunks a slab keeps for reuse.
	slabFree = 4
)

// recordSlab is the slabs of one partition's read-ahead records.
type recordSlab struct {
	chunks []*slabChunk // holding records read ahead, lent or given, oldest first
	free   []*slabChunk // handled: reused by the next carve
	zbuf   []byte       // decompressed batches, reused
}

// slabChunk is one chunk: recs and data are carved up to their lengths.
type slabChunk struct {
	recs []Record
	data []byte
	last int64 // offset of the newest record carved from it
	// given: Poll handed out records of it, which own their memory for
	// good. Its tail may still be carved; it is never reused.
	given bool
}

// carve returns k records and span bytes, from the newest chunk when they
// fit, else from a free or a new chunk.
func (s *recordSlab) carve(k, span int) ([]Record, []byte) {
	var c *slabChunk
	if n := len(s.chunks); n > 0 {
		c = s.chunks[n-1]
		if cap(c.recs)-len(c.recs) < k || cap(c.data)-len(c.data) < span {
			c = nil
		}
	}
	if c == nil {
		for i, f := range s.free {
			if cap(f.recs) >= k && cap(f.data) >= span {
				c = f
				s.free = append(s.free[:i], s.free[i+1:]...)
				break
			}
		}
		if c == nil {
			// Room for whole batches like this one, as many as fit in
			// slabBytes and slabRecords (at least one), so that neither
			// part is left partly unused when batches are alike.
			n := max(1, min(slabBytes/max(span, 1), slabRecords/k))
			c = &slabChunk{
				recs: make([]Record, 0, n*k),
				data: make([]byte, 0, n*span),
			}
		}
		s.chunks = append(s.chunks, c)
	}
	r, d := len(c.recs), len(c.data)
	c.recs, c.data = c.recs[:r+k], c.data[:d+span]
	return c.recs[r : r+k : r+k], c.data[d : d+span : d+span]
}

// carved records that the newest chunk's records end at offset last.
func (s *recordSlab) carved(last int64) {
	if n := len(s.chunks); n > 0 {
		s.chunks[n-1].last = last
	}
}

// seeked records that no chunk holds records still to hand out: the
// consumer dropped its read ahead to read from elsewhere. Each chunk's
// last offset says nothing about the records to come (a seek back reads
// lower ones), so the next release frees them all, in carve order, but
// the newest given one, which stays to carve its tail.
func (s *recordSlab) seeked() {
	for _, c := range s.chunks {
		c.last = math.MinInt64
	}
}

// give marks every chunk's records as handed out for good (Poll).
func (s *recordSlab) give() {
	for _, c := range s.chunks {
		c.given = true
	}
}

// release frees the chunks holding only records before offset from: the
// records still read ahead start there (math.MaxInt64: none are), and
// every record before them was handed out and, if lent, handled. Given
// chunks are dropped, the others kept for reuse; the newest, if given,
// stays to carve its tail.
func (s *recordSlab) release(from int64) {
	i := 0
	for ; i < len(s.chunks) && s.chunks[i].last < from; i++ {
		c := s.chunks[i]
		if c.given && i == len(s.chunks)-1 {
			break
		}
		s.chunks[i] = nil
		if c.given || len(s.free) >= slabFree {
			continue
		}
		clear(c.recs) // drop references to memory the chunk does not own (headers)
		c.recs, c.data = c.recs[:0], c.data[:0]
		s.free = append(s.free, c)
	}
	s.chunks = append(s.chunks[:0], s.chunks[i:]...)
}
