package stream

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"math"
	"sync"
	"time"
)

// The read path of a Partition: Read, Scan, OffsetForTime, and the
// decoding of batches out of segments.

// Read returns records starting exactly at offset, up to about maxBytes of
// encoded records but always at least one record when one exists below
// the high watermark: Read(offset, 1) returns the record at offset alone,
// and decodes no other. Reading at the high watermark returns no records;
// below StartOffset or above HighWatermark, ErrOffsetOutOfRange; a
// negative maxBytes, ErrInvalidConfig.
func (p *Partition) Read(offset int64, maxBytes int) ([]*Record, error) {
	if maxBytes < 0 {
		return nil, p.errorf("read at offset %d: maxBytes %d is negative: %w", offset, maxBytes, ErrInvalidConfig)
	}
	recs, _, err := p.readRecords(offset, maxBytes, true, nil, nil)
	return recs, err
}

// errIndexMismatch reports an index entry that points at the wrong place;
// the read rebuilds the segment's indexes and tries again.
var errIndexMismatch = errors.New("index entry does not match the log")

// read appends records from offset to dst, crossing segments until about
// maxBytes of whole batches are read, and returns the offset after the
// last one. It serves sequential readers (Scan, consumers), which take
// every record of a batch they read.
func (p *Partition) read(offset int64, maxBytes int, dst []*Record) ([]*Record, int64, error) {
	return p.readRecords(offset, maxBytes, false, dst, nil)
}

// readSlab is read decoding into slab (see recordSlab).
func (p *Partition) readSlab(offset int64, maxBytes int, dst []*Record, slab *recordSlab) ([]*Record, int64, error) {
	return p.readRecords(offset, maxBytes, false, dst, slab)
}

// readRecords is read; with records, maxBytes bounds the encoded records
// rather than the batches (see segmentRead); with a slab, records are
// carved from it.
func (p *Partition) readRecords(offset int64, maxBytes int, records bool, dst []*Record, slab *recordSlab) ([]*Record, int64, error) {
	got := len(dst)
	for {
		var used int
		var next int64
		var err error
		dst, next, used, err = p.readOnce(offset, maxBytes, records, dst, nil, math.MaxInt64, slab)
		if err != nil {
			if len(dst) > got {
				return dst, offset, nil // the next read reports it
			}
			return dst, offset, err
		}
		maxBytes -= used
		if next == offset || maxBytes <= 0 || next >= p.hw.Load() {
			return dst, next, nil
		}
		offset = next
	}
}

// readOnce reads from the segment holding offset, no further than offset
// until; with a visitor, records go to its fn instead of dst.
func (p *Partition) readOnce(offset int64, maxBytes int, records bool, dst []*Record, visit *visitor, until int64, slab *recordSlab) (_ []*Record, next int64, used int, err error) {
	var pinned *segment // the segment this attempt holds open, with its cache
	var cache *fileCache
	defer func() { cache.unpin(pinned) }()
	for attempt := 0; ; attempt++ {
		cache.unpin(pinned)
		pinned, cache = nil, nil
		p.mu.RLock()
		if p.closed {
			p.mu.RUnlock()
			return dst, offset, 0, p.errorf("%w", ErrClosed)
		}
		hw, start := p.hw.Load(), p.start.Load()
		if offset < start || offset > hw {
			p.mu.RUnlock()
			return dst, offset, 0, p.errorf("offset %d outside [%d, %d]: %w", offset, start, hw, ErrOffsetOutOfRange)
		}
		if offset == hw || offset >= until {
			p.mu.RUnlock()
			return dst, offset, 0, nil
		}
		hw = min(hw, until)
		seg := p.floorLocked(offset)
		c, err := seg.pinLocked()
		if err != nil {
			p.mu.RUnlock()
			if errors.Is(err, errSegmentClosed) && attempt < 3 {
				continue
			}
			return dst, offset, 0, p.errorf("read at offset %d: %w", offset, err)
		}
		pinned, cache = seg, c
		pos, base, err := seg.lookupLocked(offset)
		limit := seg.visible
		end := int64(-1)
		if records && err == nil {
			end = seg.nextEntryLocked(offset)
		}
		remember := records && seg.finalized && visit == nil && slab == nil
		p.mu.RUnlock()
		if err == nil && remember {
			// A batch a Read checked before: read just the records (read_point.go).
			if pb := seg.points.get(pos); pb != nil && pb.h.BaseOffset == base && pos+pb.h.Size() <= limit {
				var ok bool
				dst, next, used, ok, err = p.readPoint(seg, pos, pb, offset, hw, maxBytes, dst)
				if ok {
					return dst, next, used, nil
				}
			}
		}
		if err == nil {
			had := len(dst)
			dst, next, _, used, err = p.readSegment(segmentRead{
				seg: seg, offset: offset, pos: pos, base: base, limit: limit, hw: hw,
				maxBytes: maxBytes, records: records, minTime: math.MinInt64, visit: visit, end: end, slab: slab,
				remember: remember,
			}, dst)
			if errors.Is(err, errVisitStopped) {
				return dst, next, used, err
			}
			// Records decoded before an error go out with the offset
			// after them; the next read starts at the damage and
			// reports it. (With the old offset, Scan would yield them
			// again and again, never the error.)
			if err == nil && next == offset && next < hw {
				// Nothing below the high watermark at offset: the
				// segment ends before it, and the next one does not
				// start there (a segment file went missing).
				return dst, offset, 0, corruptError(seg.path, limit,
					fmt.Errorf("offset %d is missing: the segment ends before it", offset))
			}
			if err == nil || len(dst) > had || visit != nil && next > offset {
				return dst, next, used, nil
			}
		}
		switch {
		case errors.Is(err, errSegmentClosed) && attempt < 3:
			continue // retention or close took the segment; look again
		case errors.Is(err, errIndexMismatch) && attempt == 0 && seg.finalized:
			bad, rerr := seg.rebuildIndexes(&p.mu)
			p.log.Warn("rebuilt damaged index", "file", seg.indexPath(), "corrupt", bad, "error", rerr)
			continue
		case errors.Is(err, errIndexMismatch):
			return dst, offset, 0, corruptError(seg.path, pos, err)
		}
		return dst, offset, 0, p.errorf("read at offset %d: %w", offset, err)
	}
}

// floorLocked returns the segment holding offset.
func (p *Partition) floorLocked(offset int64) *segment {
	var found *segment
	p.segs.DescendLessOrEqual(&segment{base: offset}, func(s *segment) bool {
		found = s
		return false
	})
	return found
}

// minReadChunk is the least a read fetches from a segment at once, and
// maxReadChunk the most it fetches ahead of the batch it needs: a read
// with a huge maxBytes takes the segment a chunk at a time.
const (
	minReadChunk = 4 << 10
	maxReadChunk = 1 << 20
)

// readBuffers holds the scratch buffers reads fill from segments; buffers
// past maxPooledReadBuffer (a read of one huge batch) are not kept.
var readBuffers = sync.Pool{New: func() any { b := make([]byte, 0, 64<<10); return &b }}

const maxPooledReadBuffer = 4 << 20

// segmentRead is one read of records out of a segment: from offset, at
// byte pos where a batch with base offset base starts, reading no further
// than limit bytes and returning no record at or above hw. Batches whose
// newest timestamp is below minTime are skipped undecoded.
//
// maxBytes bounds the encoded batches decoded (at least one is); with
// records set, it bounds the encoded records instead, and decoding stops
// inside a batch once they reach it (at least one record): Read(offset,
// 1) decodes and copies one record, not its whole batch.
type segmentRead struct {
	seg      *segment
	offset   int64
	pos      int64
	base     int64
	limit    int64
	hw       int64
	maxBytes int
	records  bool
	end      int64 // where the next index entry points after pos; -1: unknown
	minTime  int64
	visit    *visitor    // ForEach: hand records to it instead of decoding into dst
	slab     *recordSlab // consumers: carve the records from it
	// verifySkips checks the CRC of the batches skipped on the way to
	// offset too; see readSegment.
	verifySkips bool
	// remember hands the checked batch at pos to the segment's point
	// cache (read_point.go): a Read of a finalized segment.
	remember bool
}

// errSkippedUnverified ends a read that met damage after skipping batches
// on their headers alone: it runs again checking each one.
var errSkippedUnverified = errors.New("damage after batches skipped unverified")

// readSegment decodes the records of r into dst and returns the offset
// and byte position after the last batch it read.
//
// The batches before the one holding r.offset are skipped on their
// headers, without reading or checking the rest of them: each header's
// base offset must follow on from the one before, so a damaged length or
// last offset delta in a skipped header shows at the next header, which
// would not be where the damaged one says or would not have the base
// offset it says. When the read then fails before any batch passed its
// CRC, the skipped batches are suspects: the read runs again checking
// every CRC, so the error names the first damaged batch.
func (p *Partition) readSegment(r segmentRead, dst []*Record) (_ []*Record, next, nextPos int64, used int, err error) {
	dst, next, nextPos, used, err = p.readSegmentOnce(r, dst)
	if errors.Is(err, errSkippedUnverified) {
		r.verifySkips = true
		return p.readSegmentOnce(r, dst)
	}
	return dst, next, nextPos, used, err
}

// satAdd adds non-negative sizes without overflowing.
func satAdd(a, b int64) int64 {
	if a > math.MaxInt64-b {
		return math.MaxInt64
	}
	return a + b
}

func (p *Partition) readSegmentOnce(r segmentRead, dst []*Record) (_ []*Record, next, nextPos int64, used int, err error) {
	seg := r.seg
	// Batches are read into a pooled scratch buffer and checked there;
	// decodeBatch copies out only what the returned records reference.
	scratch := readBuffers.Get().(*[]byte)
	defer func() {
		if cap(*scratch) <= maxPooledReadBuffer {
			readBuffers.Put(scratch)
		}
	}()
	// The first chunk covers maxBytes past the index entry, plus the
	// index's slack: the batch holding offset starts within indexEvery
	// bytes of pos.
	want := min(satAdd(satAdd(int64(max(r.maxBytes, 0)), p.cfg.indexEvery), minReadChunk), maxReadChunk)
	if r.records && r.end > r.pos {
		// The batch holding offset ends by the next index entry: one
		// read to there takes it whole, and maxBytes past it.
		want = min(satAdd(r.end-r.pos, int64(r.maxBytes)), max(r.end-r.pos, maxReadChunk))
	}
	var buf []byte
	bufPos := r.pos // file position of buf[0]
	// load makes buf hold the file from at on, at least need bytes of it
	// (want when more), reusing what buf already holds from there.
	load := func(at, need int64) error {
		n := min(r.limit-at, max(need, want))
		var kept []byte // what buf holds from at on (at may be past it: a skipped batch)
		if at >= bufPos && at < bufPos+int64(len(buf)) {
			kept = buf[at-bufPos:]
			kept = kept[:min(int64(len(kept)), n)]
		}
		keep := int64(len(kept))
		if int64(cap(*scratch)) < n {
			grown := make([]byte, n)
			copy(grown, kept)
			*scratch = grown
		} else {
			copy((*scratch)[:keep], kept)
		}
		buf, bufPos = (*scratch)[:n], at
		err := seg.readAt(buf[keep:], at+keep)
		if errors.Is(err, io.ErrUnexpectedEOF) {
			// The file is shorter than the data the partition knows
			// it holds: damage.
			err = corruptError(seg.path, at+keep, err)
		}
		return err
	}
	if err := load(r.pos, 0); err != nil {
		return dst, r.offset, r.pos, used, err
	}
	next, nextPos = r.offset, r.pos
	base := r.base
	got := 0
	doubt := false // batches were skipped unverified, and none passed its CRC since
	fail := func(at int64, err error) ([]*Record, int64, int64, int, error) {
		if doubt && !r.verifySkips {
			return dst, next, at, used, errSkippedUnverified
		}
		return dst, next, at, used, corruptError(seg.path, at, err)
	}
	for nextPos < r.limit && next < r.hw {
		off := nextPos - bufPos
		if int64(len(buf))-off < batchHeaderSize {
			if got > 0 {
				break
			}
			if nextPos+batchHeaderSize > r.limit {
				return fail(nextPos, fmt.Errorf("%d bytes before the end of the data at %d, less than a batch header", r.limit-nextPos, r.limit))
			}
			if err := load(nextPos, batchHeaderSize); err != nil {
				return dst, next, nextPos, used, err
			}
			continue
		}
		// The first batch came from an index entry unless the read
		// starts at the segment's first batch (an entry damaged to
		// position 0 is an index entry too).
		fromIndex := nextPos == r.pos && (r.pos != 0 || r.base != seg.base)
		h, err := parseBatchHeader(buf[off:])
		if err == nil && h.BaseOffset != base {
			if fromIndex {
				return dst, next, nextPos, used, errIndexMismatch
			}
			err = fmt.Errorf("batch base offset %d, want %d", h.BaseOffset, base)
		}
		if err == nil && nextPos+h.Size() > r.limit {
			err = fmt.Errorf("batch of %d bytes runs past the end of the data at %d", h.Size(), r.limit)
		}
		if err != nil {
			if fromIndex {
				return dst, next, nextPos, used, errIndexMismatch
			}
			return fail(nextPos, err)
		}
		at := nextPos
		if h.LastOffset() < r.offset && !r.verifySkips && r.minTime == math.MinInt64 {
			// Before offset: skip the batch on its header (see above).
			nextPos += h.Size()
			base = h.LastOffset() + 1
			next = max(next, min(base, r.hw))
			doubt = true
			continue
		}
		if off+h.Size() > int64(len(buf)) {
			if got > 0 {
				break
			}
			if err := load(nextPos, h.Size()); err != nil {
				return dst, next, nextPos, used, err
			}
			continue
		}
		batch := buf[off : off+h.Size()]
		// Check the CRC before trusting the header to skip the batch
		// by its time: maxTimestamp decides the skip, and a damaged
		// one would make OffsetForTime silently skip records.
		if err := checkBatch(batch, &h); err != nil {
			doubt = false // this batch is the damage
			return fail(at, err)
		}
		doubt = false
		if r.remember && at == r.pos && h.LastOffset() >= r.offset {
			seg.points.remember(at, batch, &h)
		}
		nextPos += h.Size()
		base = h.LastOffset() + 1
		if h.LastOffset() < r.offset || h.MaxTimestamp < r.minTime {
			next = max(next, min(base, r.hw))
			continue
		}
		var n, taken int
		if r.visit != nil {
			n, err = r.visit.batch(p, batch, &h, r.offset, r.hw)
			if r.visit.err != nil {
				return dst, next, at, used, errVisitStopped
			}
			next = max(next, r.visit.next)
			taken = len(batch)
		} else if r.records {
			dst, n, taken, err = p.decodeBatchInto(batch, &h, r.offset, r.hw, r.maxBytes-used, dst, r.slab)
		} else {
			dst, n, _, err = p.decodeBatchInto(batch, &h, r.offset, r.hw, math.MaxInt, dst, r.slab)
			taken = len(batch)
		}
		if err != nil {
			return dst, next, at, used, corruptError(seg.path, at, err)
		}
		got += n
		used += taken
		if r.records && n > 0 {
			next = dst[len(dst)-1].Offset + 1
		} else {
			next = min(base, r.hw)
		}
		if used >= r.maxBytes {
			break
		}
	}
	if got == 0 && doubt && !r.verifySkips {
		// Nothing found past batches skipped on their headers: the
		// offset went missing, or a header misled the skip.
		return dst, next, nextPos, used, errSkippedUnverified
	}
	return dst, next, nextPos, used, nil
}

// decodeBatch appends to dst the records of a CRC-checked batch with
// offsets in [from, hw), stopping once those taken reach budget encoded
// bytes (at least one is taken). It returns how many it took and their
// encoded size. The records share two allocations, their structs and a
// copy of their bytes (or the decompressed batch): batch itself may be a
// reused buffer. Records before from are stepped over by their length
// prefixes, not decoded; a batch decoded to its end must end there.
func (p *Partition) decodeBatch(batch []byte, h *batchHeader, from, hw int64, budget int, dst []*Record) (_ []*Record, n, taken int, err error) {
	return p.decodeBatchInto(batch, h, from, hw, budget, dst, nil)
}

// decodeBatchInto is decodeBatch; with a slab, the records and their
// bytes are carved from it instead.
func (p *Partition) decodeBatchInto(batch []byte, h *batchHeader, from, hw int64, budget int, dst []*Record, slab *recordSlab) (_ []*Record, n, taken int, err error) {
	if h.Attributes&attrControl != 0 {
		return dst, 0, 0, nil // transaction markers carry no user records
	}
	var zbuf []byte
	if slab != nil {
		zbuf = slab.zbuf[:0]
	}
	body, owned, err := batchBody(batch, h, zbuf)
	if slab != nil && owned {
		slab.zbuf = body[:0]
		owned = false // a reused buffer: copy out of it
	}
	if err != nil {
		return dst, 0, 0, err
	}
	first, end := max(from, h.BaseOffset), min(hw, h.LastOffset()+1)
	i := int64(0) // the record rest starts with
	rest := body
	for ; h.BaseOffset+i < first; i++ {
		size, err := recordLen(rest)
		if err != nil {
			return dst, 0, 0, err
		}
		rest = rest[size:]
	}
	// The span of the records returned: up to end, or until budget. To
	// the batch's end, it is the rest: the decoder checks the lengths.
	span, k := 0, int64(0)
	whole := budget == math.MaxInt && end == h.LastOffset()+1
	if whole {
		span, k = len(rest), max(end-(h.BaseOffset+i), 0)
	}
	for !whole && h.BaseOffset+i+k < end && (k == 0 || span < budget) {
		size, err := recordLen(rest[span:])
		if err != nil {
			return dst, 0, 0, err
		}
		span += size
		k++
	}
	if k == 0 {
		return dst, 0, 0, nil
	}
	if h.BaseOffset+i+k == h.LastOffset()+1 && span != len(rest) {
		return dst, 0, 0, fmt.Errorf("%d bytes after the last record", len(rest)-span)
	}
	own := rest[:span]
	var recs []Record
	switch {
	case slab != nil:
		var data []byte
		recs, data = slab.carve(int(k), span)
		copy(data, own)
		own = data
	case !owned:
		// The records returned reference these bytes: copy them out of
		// the caller's buffer, once, into memory they own.
		own = bytes.Clone(own)
		fallthrough
	default:
		recs = make([]Record, k)
	}
	// On an error the records decoded so far are dropped: what a batch
	// returns is returned whole or not at all.
	d := recordDecoder{b: own}
	had := len(dst)
	for j := range recs {
		r := &recs[j]
		if err := d.record(r, h, i+int64(j)); err != nil {
			return dst[:had], 0, 0, err
		}
		r.Topic, r.Partition = p.topic, p.id
		dst = append(dst, r)
	}
	if whole {
		if err := d.end(); err != nil {
			return dst[:had], 0, 0, err
		}
	}
	if slab != nil {
		slab.carved(recs[k-1].Offset)
	}
	return dst, int(k), span, nil
}

// recordLen returns the encoded size of the record at the start of b, its
// length prefix included.
func recordLen(b []byte) (int, error) {
	f := fieldReader{b: b, ok: true}
	size := f.varint()
	if !f.ok || size < 1 || size > int64(len(b)-f.i) {
		return 0, fmt.Errorf("record length %d with %d bytes left", size, len(b)-f.i)
	}
	return f.i + int(size), nil
}

// batchBody returns the records section of a CRC-checked batch,
// decompressed (appended to zbuf) when the batch is compressed, and
// whether it is fresh memory rather than a part of batch. It refuses a
// batch whose offsets are not contiguous: in this engine (no compaction) a
// batch holds one record per offset of [base, last], record i at offset
// delta i, and a CRC-valid batch that says otherwise (a writer bug or a
// foreign file) would make reads return records at offsets other than
// those asked for.
func batchBody(batch []byte, h *batchHeader, zbuf []byte) (body []byte, fresh bool, err error) {
	if int64(h.Count) != int64(h.LastOffsetDelta)+1 {
		return nil, false, fmt.Errorf("record count %d, last offset delta %d: offsets are not contiguous", h.Count, h.LastOffsetDelta)
	}
	body = batch[batchHeaderSize:]
	if c := h.Compression(); c != CompressNone {
		body, err = decompress(c, zbuf, body)
		return body, true, err
	}
	return body, false, nil
}

// ForEach calls fn for each record from offset from up to, not including,
// offset to (the high watermark at the call when to is negative), in
// order, and stops at the first error fn returns, which it returns as is.
// It is the allocation-free way to replay a partition, as when rebuilding
// state from an event log: the Record passed to fn, its Key, Value and
// Headers, are reused, valid only until fn returns — copy what you keep,
// as with bbolt's Bucket.ForEach. Corrupt data and a from outside
// [StartOffset, HighWatermark] are errors, as with Read.
func (p *Partition) ForEach(from, to int64, fn func(*Record) error) error {
	if fn == nil {
		return argError("ForEach", "nil function")
	}
	if to < 0 {
		to = p.HighWatermark()
	}
	if start, hw := p.StartOffset(), p.HighWatermark(); from < start || from > hw {
		// Checked here too for an empty range, which reads nothing.
		return p.errorf("ForEach from %d outside [%d, %d]: %w", from, start, hw, ErrOffsetOutOfRange)
	}
	v := &visitor{fn: fn}
	for next := from; next < to; {
		_, n, _, err := p.readOnce(next, scanChunk, false, nil, v, to, nil)
		if v.err != nil {
			return v.err
		}
		if err != nil {
			return err
		}
		if n == next {
			return nil // the high watermark is below to
		}
		next = n
	}
	if from > to {
		return p.errorf("ForEach from %d past to %d: %w", from, to, ErrOffsetOutOfRange)
	}
	return nil
}

// errVisitStopped ends a read whose visitor's fn returned an error.
var errVisitStopped = errors.New("stopped by the visitor")

// visitor hands records to ForEach's fn one at a time, decoded in place:
// one Record, reused, pointing into the read buffer.
type visitor struct {
	fn   func(*Record) error
	r    Record
	zbuf []byte // decompressed records, reused
	err  error  // what fn returned, ending the visit
	next int64  // the offset after the last record handed to fn
}

// batch hands fn the records of a CRC-checked batch with offsets in
// [from, hw), and returns how many.
func (v *visitor) batch(p *Partition, batch []byte, h *batchHeader, from, hw int64) (int, error) {
	if h.Attributes&attrControl != 0 {
		v.next = h.LastOffset() + 1
		return 0, nil
	}
	body, _, err := batchBody(batch, h, v.zbuf[:0])
	if err != nil {
		return 0, err
	}
	if h.Compression() != CompressNone {
		v.zbuf = body
	}
	d := recordDecoder{b: body, reuseHeaders: true}
	r := &v.r
	n := 0
	for i := range int64(h.Count) {
		if err := d.record(r, h, i); err != nil {
			return n, err
		}
		if r.Offset < from || r.Offset >= hw {
			continue
		}
		r.Topic, r.Partition = p.topic, p.id
		if err := v.fn(r); err != nil {
			v.err = err
			return n, nil
		}
		v.next = r.Offset + 1
		n++
	}
	return n, d.end()
}

// scanChunk is how much a Scan reads at a time: small enough that, with
// the index slack readSegment adds, its buffers stay in a size class the
// allocator reuses, rather than large spans fetched from the OS.
const scanChunk = 24 << 10

// Scan returns an iterator over the records from offset from on, which
// follows the tail: at the high watermark it waits for more. It ends when
// ctx is done or a read fails, yielding the error (ctx.Err() on
// cancellation) as its last element.
//
//	for r, err := range p.Scan(ctx, 0) {
//		if err != nil {
//			break
//		}
//		...
//	}
func (p *Partition) Scan(ctx context.Context, from int64) iter.Seq2[*Record, error] {
	return func(yield func(*Record, error) bool) {
		if ctx == nil {
			yield(nil, argError("scan", "nil context"))
			return
		}
		var recs []*Record
		next := from
		for {
			var err error
			recs, next, err = p.read(next, scanChunk, recs[:0])
			if err != nil {
				yield(nil, err)
				return
			}
			for _, r := range recs {
				if !yield(r, nil) {
					return
				}
			}
			if len(recs) == 0 {
				if err := p.Wait(ctx, next); err != nil {
					yield(nil, err)
					return
				}
			} else if err := ctx.Err(); err != nil {
				yield(nil, err)
				return
			}
			clear(recs)
		}
	}
}

// OffsetForTime returns the offset of the first record, in log order,
// whose timestamp is at or after t, using the time index; the high
// watermark when there is none. Kafka: ListOffsets / offsetsForTimes.
// Timestamps are the producers' (CreateTime): when they do not rise with
// offsets, records after the returned one may be older than t, and
// records before it are not all older than t.
func (p *Partition) OffsetForTime(t time.Time) (int64, error) {
	ts := unixMilli(t)
	from := p.StartOffset()
	var distrust *segment // a segment whose indexes failed a check: search it from its start
	var pinned *segment   // the segment this attempt holds open, with its cache
	var cache *fileCache
	defer func() { cache.unpin(pinned) }()
	for attempt := 0; attempt < 3; attempt++ {
		cache.unpin(pinned)
		pinned, cache = nil, nil
		p.mu.RLock()
		if p.closed {
			p.mu.RUnlock()
			return 0, p.errorf("%w", ErrClosed)
		}
		hw := p.hw.Load()
		var seg *segment
		p.segs.AscendGreaterOrEqual(p.floorLocked(max(from, p.start.Load())), func(s *segment) bool {
			if s.maxTime >= ts && s.base < hw {
				seg = s
				return false
			}
			return true
		})
		if seg == nil {
			p.mu.RUnlock()
			return hw, nil
		}
		c, err := seg.pinLocked()
		if err != nil {
			p.mu.RUnlock()
			if errors.Is(err, errSegmentClosed) {
				continue
			}
			return 0, p.errorf("time index: %w", err)
		}
		pinned, cache = seg, c
		start, entryTS, entry, err := seg.timeLookupLocked(ts)
		pos, base := int64(0), seg.base
		if err == nil && seg == distrust {
			start, entry = seg.base, false
		} else if err == nil {
			pos, base, err = seg.lookupLocked(max(start, seg.base))
		}
		limit, segNext := seg.visible, seg.next
		p.mu.RUnlock()
		if err == nil && entry && !seg.batchMaxTimeIs(pos, base, limit, start, entryTS) {
			err = errIndexMismatch
		}
		var off int64
		var found bool
		if err == nil {
			off, found, err = p.findTime(seg, ts, pos, base, limit, hw)
		}
		switch {
		case errors.Is(err, errSegmentClosed):
			continue
		case errors.Is(err, errIndexMismatch) && seg != distrust:
			// A damaged index entry: rebuild a sealed segment's index
			// files (an active one's in-memory index is rebuilt on the
			// next Open), and search this segment from its start, at
			// most once per segment since from only grows.
			if seg.finalized {
				bad, rerr := seg.rebuildIndexes(&p.mu)
				p.log.Warn("rebuilt damaged index", "file", seg.timeIndexPath(), "corrupt", bad, "error", rerr)
			}
			distrust = seg
			attempt-- // not a lost race: do not count it
			continue
		case err != nil:
			return 0, p.errorf("time index: %w", err)
		case found:
			return off, nil
		}
		from = segNext // not visible in this segment yet: look further
		if from >= hw {
			return hw, nil
		}
	}
	return p.HighWatermark(), nil
}

// Times in milliseconds since 1970 as int64 span ±292 million years;
// UnixMilli is undefined past them.
var (
	maxUnixMilli = time.UnixMilli(math.MaxInt64)
	minUnixMilli = time.UnixMilli(math.MinInt64)
)

// unixMilli is t.UnixMilli, clamped to the int64 range for times beyond
// it, rather than wrapping around.
func unixMilli(t time.Time) int64 {
	switch {
	case t.After(maxUnixMilli):
		return math.MaxInt64
	case t.Before(minUnixMilli):
		return math.MinInt64
	}
	return t.UnixMilli()
}

// findTime scans the batches of seg from pos for the first record with a
// timestamp at or after ts.
func (p *Partition) findTime(seg *segment, ts, pos, base, limit, hw int64) (int64, bool, error) {
	next := base
	for pos < limit && next < hw {
		recs, n, npos, _, err := p.readSegment(segmentRead{
			seg: seg, offset: next, pos: pos, base: next, limit: limit, hw: hw, minTime: ts,
		}, nil)
		if err != nil {
			return 0, false, err
		}
		for _, r := range recs {
			if r.Timestamp.UnixMilli() >= ts {
				return r.Offset, true, nil
			}
		}
		if npos == pos {
			break
		}
		next, pos = n, npos
	}
	return 0, false, nil
}
