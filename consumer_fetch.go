package stream

import (
	"errors"
	"math"
)

// The consumer's read ahead: per partition, records decoded into a
// recordSlab, and handed out round robin by Poll and Run.

// readAhead is how many bytes of records a consumer reads ahead per
// partition, at least: about one Poll of MaxPollRecords small records.
// More only adds live records for the garbage collector to scan.
const readAhead = 64 << 10

// recordBytes is a record's share of FetchMinBytes and FetchMaxBytes.
func recordBytes(r *Record) int {
	n := len(r.Key) + len(r.Value)
	for _, h := range r.Headers {
		n += len(h.Key) + len(h.Value)
	}
	return n
}

// refillLocked reads about n more bytes of records into st's buffer.
func (c *Consumer) refillLocked(tp TopicPartition, st *fetchState, n int) error {
	// Records before buf's were handed out, and those lent to Run's
	// handler handled, unless a Run batch is in flight (a Poll from the
	// handler): their chunks are free. Move buf's records to the front
	// of its backing array, so that it is reused, not regrown.
	from := int64(math.MaxInt64)
	if len(st.buf) > 0 {
		from = st.buf[0].Offset
	}
	if c.running == nil {
		st.slab.release(from)
	}
	if len(st.buf) <= cap(st.back) {
		full := st.back[:cap(st.back)]
		k := copy(full, st.buf)
		clear(full[k:])
		st.buf = full[:k]
	}
	if c.remoteLocked(st) {
		return c.refillRemoteLocked(tp, st, n)
	}
	before := len(st.buf)
	buf, next, err := st.p.readSlab(st.end, n, st.buf, &st.slab)
	if errors.Is(err, ErrOffsetOutOfRange) && len(st.buf) == 0 {
		if c.g == nil {
			return errorf("stream: poll %s-%d at position %d: %w", tp.Topic, tp.Partition, st.pos, err)
		}
		st.seek(c.g.resolve(tp, st.p, st.pos, true))
		buf, next, err = st.p.readSlab(st.end, n, st.buf, &st.slab)
	}
	if err != nil {
		if errors.Is(err, ErrOffsetOutOfRange) && len(st.buf) > 0 {
			return nil // hand out what is buffered; the next read reports it
		}
		return errorf("stream: poll %s-%d: %w", tp.Topic, tp.Partition, err)
	}
	st.buf, st.end = buf, next
	st.back = buf[:0]
	for _, r := range buf[before:] {
		st.bufBytes += recordBytes(r)
	}
	if len(st.buf) == 0 {
		st.pos = st.end
	}
	return nil
}

// takeLocked hands out buffered records round robin: each pass gives
// every partition with records an equal share of what is left. Records
// for Run are lent, in a reused slice; Poll's are given away for good.
func (c *Consumer) takeLocked(forRun bool) []*Record {
	n := len(c.order)
	start := c.rr % n
	c.rr = start + 1
	maxRecs, maxBytes := c.cfg.MaxPollRecords, int(min(c.cfg.FetchMaxBytes, 1<<40))
	var out []*Record
	if forRun && c.running == nil { // else a Run from Run's handler: the outer batch holds runRecs
		out = c.runRecs[:0]
	}
	if out == nil {
		out = make([]*Record, 0, min(maxRecs, 1024))
	}
	bytes := 0
	for {
		ready := 0
		for _, tp := range c.order {
			if len(c.parts[tp].buf) > 0 {
				ready++
			}
		}
		if ready == 0 || len(out) >= maxRecs || bytes >= maxBytes {
			if forRun {
				c.runRecs = out
			}
			return out
		}
		quota := (maxRecs - len(out) + ready - 1) / ready
		for i := range n {
			st := c.parts[c.order[(start+i)%n]]
			k := 0
			for k < len(st.buf) && k < quota && len(out) < maxRecs && (bytes < maxBytes || len(out) == 0) {
				r := st.buf[k]
				b := recordBytes(r)
				if len(out) > 0 && bytes+b > maxBytes {
					bytes = maxBytes
					break
				}
				out = append(out, r)
				bytes += b
				st.bufBytes -= b
				k++
			}
			if k == 0 {
				continue
			}
			if !forRun {
				st.slab.give()
			}
			st.pos = st.buf[k-1].Offset + 1
			clear(st.buf[:k])
			st.buf = st.buf[k:]
			if len(st.buf) == 0 {
				st.buf, st.bufBytes, st.pos = st.back[:0], 0, st.end
			}
		}
	}
}
