package stream

import (
	"bytes"
	"encoding/binary"
	"sort"
	"sync"
)

// Point reads: Read(offset, 1) of a record inside a large batch of a
// sealed segment.
//
// A read must check the CRC of the batch a record comes from, and the CRC
// covers the whole batch: a random Read of one 100-byte record from a
// 64 KiB batch costs a 64 KiB pread and a 64 KiB checksum, nearly all of
// it spent on bytes it does not return. A finalized segment's batches
// never change while its files stay open (a replica truncation reopens
// the segment as the active one first), so a Read that checked a large
// batch remembers it here, with the byte position of a record every
// pointMarkEvery bytes. The next Read in that batch preads only from
// the mark before its record to the end of what it returns, steps over
// the records before its own by their length prefixes, and decodes only
// what it returns.
//
// What the cache trusts is the CRC checked when the segment's files were
// opened: it is dropped when the file cache closes them, and when the
// segment is cut for a replica. A record that then fails to decode (the
// file was changed under an open stream) drops the batch's entry and the
// read goes the full way, which checks the CRC again and reports the
// damage as ErrCorrupt.

const (
	// pointMinBatch is the smallest batch remembered: reading a smaller
	// one whole costs about as much as a point read.
	pointMinBatch = 8 << 10
	// pointMarkEvery is the spacing of the marks: a point read preads
	// about this much before the record it returns.
	pointMarkEvery = 2 << 10
	// maxPointBatches bounds a segment's cache, about 300 bytes a
	// batch; past it, an arbitrary entry makes room.
	maxPointBatches = 512
)

// pointCache is a finalized segment's checked batches, by file position.
type pointCache struct {
	mu      sync.Mutex // guards batches
	batches map[int64]*pointBatch
}

// pointBatch is a batch whose CRC a read checked.
type pointBatch struct {
	h     batchHeader
	marks []pointMark // ascending; marks[0] is the first record
}

// pointMark is where record delta of a batch starts, in bytes from the
// batch's start.
type pointMark struct {
	delta int32
	pos   uint32
}

func (c *pointCache) get(pos int64) *pointBatch {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.batches[pos]
}

// remember records batch, at byte pos of its segment, as checked: its
// CRC passed. Batches too small to gain, compressed or control batches,
// and batches whose records do not walk to their end are left out.
func (c *pointCache) remember(pos int64, batch []byte, h *batchHeader) {
	if h.Size() < pointMinBatch || h.Compression() != CompressNone || h.Attributes&attrControl != 0 ||
		int64(h.Count) != int64(h.LastOffsetDelta)+1 || h.Size() > 1<<31 {
		return
	}
	if c.get(pos) != nil {
		return
	}
	marks := make([]pointMark, 0, 1+len(batch)/pointMarkEvery)
	at, last := batchHeaderSize, -pointMarkEvery
	for i := range h.Count {
		if at-last >= pointMarkEvery {
			marks = append(marks, pointMark{delta: i, pos: uint32(at)})
			last = at
		}
		n, err := recordLen(batch[at:])
		if err != nil {
			return
		}
		at += n
	}
	if at != len(batch) {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.batches == nil {
		c.batches = make(map[int64]*pointBatch)
	}
	if len(c.batches) >= maxPointBatches {
		for k := range c.batches {
			delete(c.batches, k)
			break
		}
	}
	c.batches[pos] = &pointBatch{h: *h, marks: marks}
}

// forget drops the entry of the batch at pos.
func (c *pointCache) forget(pos int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.batches, pos)
}

// reset drops every entry: the segment's files are closed or about to
// change.
func (c *pointCache) reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.batches = nil
}

// readPoint is a Read of records from offset in the remembered batch pb,
// at byte pos of seg: it appends to dst the records of the batch from
// offset below hw, until their encoded size reaches maxBytes (at least
// one), and returns the offset after them and their encoded size. ok is
// false when the read should go the full way instead: the bytes no longer
// decode as they did (the entry is dropped).
func (p *Partition) readPoint(seg *segment, pos int64, pb *pointBatch, offset, hw int64, maxBytes int, dst []*Record) (_ []*Record, next int64, used int, ok bool, err error) {
	h := &pb.h
	target := int32(offset - h.BaseOffset)
	end := int32(min(hw, h.LastOffset()+1) - h.BaseOffset) // deltas below end may be returned
	if target < 0 || target >= end {
		return dst, offset, 0, false, nil
	}
	k := sort.Search(len(pb.marks), func(i int) bool { return pb.marks[i].delta > target }) - 1
	mark := pb.marks[k]
	// Read from the mark to the next one (the records before target lie
	// there), plus maxBytes and a length prefix's worth past it.
	batchEnd := h.Size()
	from := int64(mark.pos)
	upto := batchEnd
	if k+1 < len(pb.marks) {
		upto = min(batchEnd, satAdd(int64(pb.marks[k+1].pos), int64(max(maxBytes, 0))+binary.MaxVarintLen64))
	}
	scratch := readBuffers.Get().(*[]byte)
	defer func() {
		if cap(*scratch) <= maxPooledReadBuffer {
			readBuffers.Put(scratch)
		}
	}()
	buf := (*scratch)[:0]
	// ensure makes buf hold the batch's bytes [from, to).
	ensure := func(to int64) error {
		to = min(to, batchEnd)
		have := from + int64(len(buf))
		if to <= have {
			return nil
		}
		n := int(to - from)
		if cap(buf) < n {
			grown := make([]byte, len(buf), max(n, 2*cap(buf)))
			copy(grown, buf)
			buf = grown
			*scratch = grown[:0]
		}
		buf = buf[:n]
		return seg.readAt(buf[have-from:], pos+have)
	}
	if err := ensure(upto); err != nil {
		return dst, offset, 0, false, err
	}
	// recordAt returns the encoded size of the record at at, reading it
	// in when it runs past buf.
	recordAt := func(at int64) (int64, bool) {
		if ensure(at+binary.MaxVarintLen64) != nil {
			return 0, false
		}
		f := fieldReader{b: buf[at-from:], ok: true}
		size := f.varint()
		n := int64(f.i) + size
		if !f.ok || size < 1 || at+n > batchEnd || ensure(at+n) != nil {
			return 0, false
		}
		return n, true
	}
	at := from
	for d := mark.delta; d < target; d++ {
		n, ok := recordAt(at)
		if !ok {
			return p.pointMiss(seg, pos, dst, offset)
		}
		at += n
	}
	span, taken := int64(0), int32(0)
	for target+taken < end && (taken == 0 || span < int64(maxBytes)) {
		n, ok := recordAt(at + span)
		if !ok {
			return p.pointMiss(seg, pos, dst, offset)
		}
		span += n
		taken++
	}
	if target+taken == h.LastOffsetDelta+1 && at+span != batchEnd {
		return p.pointMiss(seg, pos, dst, offset)
	}
	// The records reference their bytes: copy them out of the pooled
	// buffer, once.
	d := recordDecoder{b: bytes.Clone(buf[at-from : at-from+span])}
	recs := make([]Record, taken)
	had := len(dst)
	for j := range recs {
		r := &recs[j]
		if err := d.record(r, h, int64(target)+int64(j)); err != nil {
			dst = dst[:had]
			return p.pointMiss(seg, pos, dst, offset)
		}
		r.Topic, r.Partition = p.topic, p.id
		dst = append(dst, r)
	}
	return dst, offset + int64(taken), int(span), true, nil
}

// pointMiss drops the entry of a remembered batch that no longer reads as
// it did, for the read to go the full way.
func (p *Partition) pointMiss(seg *segment, pos int64, dst []*Record, offset int64) ([]*Record, int64, int, bool, error) {
	seg.points.forget(pos)
	p.log.Warn("a checked batch reads differently: checking it again", "file", seg.path, "position", pos)
	return dst, offset, 0, false, nil
}
