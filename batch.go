package stream

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
	"slices"
	"time"
)

// This file holds Kafka's RecordBatch v2 codec: the byte layout of every
// batch in a segment's .log file, and of a Batch being built.
//
//	baseOffset           int64   0  (not covered by the CRC)
//	batchLength          int32   8  (bytes after this field)
//	partitionLeaderEpoch int32  12  (not covered by the CRC)
//	magic                int8   16  (2)
//	crc                  uint32 17  (CRC-32C of attributes..end)
//	attributes           int16  21
//	lastOffsetDelta      int32  23
//	baseTimestamp        int64  27
//	maxTimestamp         int64  35
//	producerId           int64  43
//	producerEpoch        int16  51
//	baseSequence         int32  53
//	recordCount          int32  57
//	records                     61
//
// Each record is: length varint, attributes int8, timestampDelta varlong,
// offsetDelta varint, keyLength varint (-1: null), key, valueLength varint,
// value, headerCount varint, then per header keyLength varint, key,
// valueLength varint, value. Varints are zigzag, as encoding/binary's.

const (
	batchHeaderSize = 61
	// batchOverhead is the part of the header that batchLength does not
	// count (baseOffset and batchLength).
	batchOverhead = 12
	batchMagic    = 2

	offBaseOffset      = 0
	offLength          = 8
	offLeaderEpoch     = 12
	offMagic           = 16
	offCRC             = 17
	offAttributes      = 21
	offLastOffsetDelta = 23
	offBaseTimestamp   = 27
	offMaxTimestamp    = 35
	offProducerID      = 43
	offProducerEpoch   = 51
	offBaseSequence    = 53
	offRecordCount     = 57

	// attribute bits
	attrCompressionMask = 0x07
	attrTimestampType   = 0x08 // 0: CreateTime
	attrTransactional   = 0x10
	attrControl         = 0x20
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// Batch builds a RecordBatch v2 in memory for Partition.AppendBatch: the
// embedded-log fast path. Add encodes each record straight into one
// reusable buffer, so a warm Batch allocates nothing per record; Reset
// empties it for reuse. A Batch is not safe for concurrent use.
//
// Records added with Add carry the time of the batch's first Add (one
// clock read per batch); AddRecord keeps a record's own Timestamp.
type Batch struct {
	buf      []byte // header (batchHeaderSize bytes) then the records
	count    int
	baseTime int64 // ms of the first record; valid when count > 0
	maxTime  int64
	sealed   bool // header and CRC are up to date with buf

	// producer identity for idempotence; -1 when not idempotent
	producerID    int64
	producerEpoch int16
	baseSequence  int32
	attributes    int16

	// compression, set by producers, compresses the records section when
	// the batch is sealed; out is the sealed batch: buf, or zbuf holding
	// the header and the compressed records.
	compression Compression
	zbuf        []byte
	out         []byte

	// err is a bad argument to AddRecord (a nil record), which has no
	// error to return: AppendBatch reports it, and Reset clears it.
	err error
}

// Add appends a record with the given key, value and headers. A nil key is
// Kafka's null key. The slices are copied; the caller may reuse them.
func (b *Batch) Add(key, value []byte, headers ...Header) {
	if b.count == 0 {
		b.start(time.Now().UnixMilli())
	}
	b.add(0, key, value, headers)
}

// AddRecord appends r's key, value, headers and timestamp (zero: the
// batch's time). r's other fields are ignored.
func (b *Batch) AddRecord(r *Record) {
	if r == nil {
		b.err = argError("Batch.AddRecord", "nil record")
		return
	}
	ts := int64(noTimestamp)
	if !r.Timestamp.IsZero() {
		ts = r.Timestamp.UnixMilli() // 0 is 1970-01-01, a valid CreateTime
	}
	if b.count == 0 {
		if ts == noTimestamp {
			ts = time.Now().UnixMilli()
		}
		b.start(ts)
	}
	delta := int64(0)
	if ts != noTimestamp {
		delta = ts - b.baseTime
	}
	b.add(delta, r.Key, r.Value, r.Headers)
}

// noTimestamp marks a record sent without a Timestamp (the zero
// time.Time), which gets its batch's time. Kafka's own "none" is -1, but
// negative times before 1970 are valid CreateTimes here too.
const noTimestamp = math.MinInt64

// Len returns the number of records in the batch (0 for a nil Batch).
func (b *Batch) Len() int {
	if b == nil {
		return 0
	}
	return b.count
}

// Size returns the encoded size of the batch in bytes, as it will be
// written to the log before any compression.
func (b *Batch) Size() int {
	if b == nil || b.count == 0 {
		return 0
	}
	return len(b.buf)
}

// Reset empties the batch, keeping its buffer for reuse. Reset of a nil
// Batch does nothing.
func (b *Batch) Reset() {
	if b == nil {
		return
	}
	b.count = 0
	b.err = nil
	b.sealed = false
	if b.buf != nil {
		b.buf = b.buf[:batchHeaderSize]
	}
}

func (b *Batch) start(ts int64) {
	if cap(b.buf) < batchHeaderSize {
		b.buf = make([]byte, batchHeaderSize, 16*KiB)
	}
	b.buf = b.buf[:batchHeaderSize]
	b.baseTime = ts
	b.maxTime = ts
	if b.producerID == 0 && b.producerEpoch == 0 && b.baseSequence == 0 {
		b.producerID, b.producerEpoch, b.baseSequence = -1, -1, -1
	}
}

func (b *Batch) add(tsDelta int64, key, value []byte, headers []Header) {
	b.sealed = false
	b.buf = appendRecord(b.buf, tsDelta, int64(b.count), key, value, headers)
	if t := b.baseTime + tsDelta; t > b.maxTime {
		b.maxTime = t
	}
	b.count++
}

// seal writes the header and CRC; the baseOffset field is left for the
// partition to fill. With a compression set, the records section is
// compressed (unless that does not make it smaller) and the codec goes in
// the attributes; the header stays in the clear and, as in Kafka, the CRC
// covers the compressed bytes.
func (b *Batch) seal() []byte {
	if !b.sealed {
		b.out = b.buf
		attrs := b.attributes
		if c := b.compression; c != CompressNone {
			z, err := compress(c, append(b.zbuf[:0], b.buf[:batchHeaderSize]...), b.buf[batchHeaderSize:])
			if err == nil && len(z) < len(b.buf) {
				b.out, attrs = z, attrs&^attrCompressionMask|int16(c)
			}
			b.zbuf = z[:0]
		}
		putBatchHeader(b.out, batchHeader{
			Length:          int32(len(b.out) - batchOverhead),
			Magic:           batchMagic,
			Attributes:      attrs,
			LastOffsetDelta: int32(b.count - 1),
			BaseTimestamp:   b.baseTime,
			MaxTimestamp:    b.maxTime,
			ProducerID:      b.producerID,
			ProducerEpoch:   b.producerEpoch,
			BaseSequence:    b.baseSequence,
			Count:           int32(b.count),
		})
		b.sealed = true
	}
	return b.out
}

// batchHeader is the decoded fixed part of a RecordBatch v2.
type batchHeader struct {
	BaseOffset      int64
	Length          int32
	LeaderEpoch     int32
	Magic           int8
	CRC             uint32
	Attributes      int16
	LastOffsetDelta int32
	BaseTimestamp   int64
	MaxTimestamp    int64
	ProducerID      int64
	ProducerEpoch   int16
	BaseSequence    int32
	Count           int32
}

// Size is the number of bytes the whole batch occupies in the log.
func (h *batchHeader) Size() int64 { return int64(h.Length) + batchOverhead }

// LastOffset is the offset of the batch's last record.
func (h *batchHeader) LastOffset() int64 { return h.BaseOffset + int64(h.LastOffsetDelta) }

// Compression is the codec in the attributes.
func (h *batchHeader) Compression() Compression {
	return Compression(h.Attributes & attrCompressionMask)
}

// putBatchHeader writes h into b[:batchHeaderSize] and computes the CRC
// over b[offAttributes:]; b must hold the whole batch.
func putBatchHeader(b []byte, h batchHeader) {
	be := binary.BigEndian
	be.PutUint64(b[offBaseOffset:], uint64(h.BaseOffset))
	be.PutUint32(b[offLength:], uint32(h.Length))
	be.PutUint32(b[offLeaderEpoch:], uint32(h.LeaderEpoch))
	b[offMagic] = byte(h.Magic)
	be.PutUint16(b[offAttributes:], uint16(h.Attributes))
	be.PutUint32(b[offLastOffsetDelta:], uint32(h.LastOffsetDelta))
	be.PutUint64(b[offBaseTimestamp:], uint64(h.BaseTimestamp))
	be.PutUint64(b[offMaxTimestamp:], uint64(h.MaxTimestamp))
	be.PutUint64(b[offProducerID:], uint64(h.ProducerID))
	be.PutUint16(b[offProducerEpoch:], uint16(h.ProducerEpoch))
	be.PutUint32(b[offBaseSequence:], uint32(h.BaseSequence))
	be.PutUint32(b[offRecordCount:], uint32(h.Count))
	be.PutUint32(b[offCRC:], crc32.Checksum(b[offAttributes:], crcTable))
}

// parseBatchHeader decodes the fixed header from b, which must hold at
// least batchHeaderSize bytes. It checks only what the header alone can
// show; checkBatch verifies the CRC.
func parseBatchHeader(b []byte) (batchHeader, error) {
	be := binary.BigEndian
	h := batchHeader{
		BaseOffset:      int64(be.Uint64(b[offBaseOffset:])),
		Length:          int32(be.Uint32(b[offLength:])),
		LeaderEpoch:     int32(be.Uint32(b[offLeaderEpoch:])),
		Magic:           int8(b[offMagic]),
		CRC:             be.Uint32(b[offCRC:]),
		Attributes:      int16(be.Uint16(b[offAttributes:])),
		LastOffsetDelta: int32(be.Uint32(b[offLastOffsetDelta:])),
		BaseTimestamp:   int64(be.Uint64(b[offBaseTimestamp:])),
		MaxTimestamp:    int64(be.Uint64(b[offMaxTimestamp:])),
		ProducerID:      int64(be.Uint64(b[offProducerID:])),
		ProducerEpoch:   int16(be.Uint16(b[offProducerEpoch:])),
		BaseSequence:    int32(be.Uint32(b[offBaseSequence:])),
		Count:           int32(be.Uint32(b[offRecordCount:])),
	}
	switch {
	case h.Magic != batchMagic:
		return h, fmt.Errorf("magic %d, want %d", h.Magic, batchMagic)
	case h.Length < batchHeaderSize-batchOverhead:
		return h, fmt.Errorf("batch length %d is shorter than a header", h.Length)
	case h.BaseOffset < 0:
		return h, fmt.Errorf("negative base offset %d", h.BaseOffset)
	case h.Count < 0 || h.LastOffsetDelta < 0 || h.Count > h.LastOffsetDelta+1:
		return h, fmt.Errorf("record count %d does not fit last offset delta %d", h.Count, h.LastOffsetDelta)
	case h.Count > h.Length: // every record takes at least a byte
		return h, fmt.Errorf("record count %d exceeds batch length %d", h.Count, h.Length)
	}
	return h, nil
}

// checkBatch verifies the CRC of a whole batch b (header included).
func checkBatch(b []byte, h *batchHeader) error {
	if got := crc32.Checksum(b[offAttributes:], crcTable); got != h.CRC {
		return fmt.Errorf("crc mismatch: stored %08x, computed %08x", h.CRC, got)
	}
	return nil
}

// isZeroHeader reports whether b (a header's worth of bytes) is all zero:
// the preallocated tail of an active segment, which reads as its end.
func isZeroHeader(b []byte) bool {
	for _, c := range b[:batchOverhead] {
		if c != 0 {
			return false
		}
	}
	return true
}

// recordSize returns the size of a record's body (after its length varint).
func recordSize(tsDelta, offsetDelta int64, key, value []byte, headers []Header) int {
	n := 1 + varintLen(tsDelta) + varintLen(offsetDelta)
	n += bytesLen(key) + bytesLen(value)
	n += varintLen(int64(len(headers)))
	for i := range headers {
		n += varintLen(int64(len(headers[i].Key))) + len(headers[i].Key)
		n += bytesLen(headers[i].Value)
	}
	return n
}

// appendRecord appends one encoded record to dst.
func appendRecord(dst []byte, tsDelta, offsetDelta int64, key, value []byte, headers []Header) []byte {
	size := recordSize(tsDelta, offsetDelta, key, value, headers)
	dst = binary.AppendVarint(dst, int64(size))
	dst = append(dst, 0) // record attributes: unused
	dst = binary.AppendVarint(dst, tsDelta)
	dst = binary.AppendVarint(dst, offsetDelta)
	dst = appendBytes(dst, key)
	dst = appendBytes(dst, value)
	dst = binary.AppendVarint(dst, int64(len(headers)))
	for i := range headers {
		dst = binary.AppendVarint(dst, int64(len(headers[i].Key)))
		dst = append(dst, headers[i].Key...)
		dst = appendBytes(dst, headers[i].Value)
	}
	return dst
}

func appendBytes(dst, b []byte) []byte {
	if b == nil {
		return binary.AppendVarint(dst, -1)
	}
	dst = binary.AppendVarint(dst, int64(len(b)))
	return append(dst, b...)
}

func bytesLen(b []byte) int {
	if b == nil {
		return 1
	}
	return varintLen(int64(len(b))) + len(b)
}

// varintLen is the length of v as a zigzag varint.
func varintLen(v int64) int {
	u := uint64(v<<1) ^ uint64(v>>63)
	n := 1
	for u >= 0x80 {
		u >>= 7
		n++
	}
	return n
}

var errShortRecord = errors.New("record runs past the end of its batch")

// recordDecoder walks the records of one batch.
type recordDecoder struct {
	b   []byte // remaining record bytes
	err error

	lastDelta int64     // timestamp delta of the previous record
	lastTime  time.Time // and its time: records of a batch often share one

	reuseHeaders bool // decode headers into the record's own slice (ForEach)
}

// record decodes record i of the batch h into r, with its absolute
// offset, checking that its offset delta is i; a LogAppendTime batch (a
// broker-stamped Kafka log) gives every record the batch's max timestamp,
// as Kafka's clients do.
func (d *recordDecoder) record(r *Record, h *batchHeader, i int64) error {
	if !d.next(r, h.BaseTimestamp) {
		if d.err == nil {
			d.err = fmt.Errorf("batch holds %d records, header says %d", i, h.Count)
		}
		return d.err
	}
	if r.Offset != i {
		return fmt.Errorf("record %d has offset delta %d", i, r.Offset)
	}
	r.Offset += h.BaseOffset
	if h.Attributes&attrTimestampType != 0 {
		r.Timestamp = time.UnixMilli(h.MaxTimestamp)
	}
	return nil
}

// end reports bytes left over after the batch's last record.
func (d *recordDecoder) end() error {
	if len(d.b) != 0 {
		return fmt.Errorf("%d bytes after the last record", len(d.b))
	}
	return nil
}

// fieldReader reads the fields of one record from b at i. ok turns false
// at the first malformed field and stays false; the caller checks once.
type fieldReader struct {
	b  []byte
	i  int
	ok bool
}

func (f *fieldReader) varint() int64 {
	if i := f.i; i < len(f.b) && f.b[i] < 0x80 { // one byte: most lengths and deltas
		f.i++
		u := int64(f.b[i])
		return u>>1 ^ -(u & 1)
	}
	return f.longVarint()
}

func (f *fieldReader) longVarint() int64 {
	if i := f.i; i+1 < len(f.b) && f.b[i+1] < 0x80 { // two bytes: lengths up to 8 KiB
		f.i += 2
		u := int64(f.b[i]&0x7f) | int64(f.b[i+1])<<7
		return u>>1 ^ -(u & 1)
	}
	if f.i >= len(f.b) {
		f.ok = false
		return 0
	}
	v, n := binary.Varint(f.b[f.i:])
	if n <= 0 {
		f.ok = false
		return 0
	}
	f.i += n
	return v
}

// bytes returns the next length-prefixed field as a sub-slice of the
// input; nil for Kafka's null (-1).
func (f *fieldReader) bytes() []byte {
	n := f.varint()
	if n < 0 || n > int64(len(f.b)-f.i) {
		if n != -1 {
			f.ok = false
		}
		return nil
	}
	j := f.i + int(n)
	v := f.b[f.i:j:j]
	f.i = j
	return v
}

// next decodes one record into r (Key, Value, Headers, Timestamp and the
// offset delta in Offset) and returns false at the end or on error (d.err).
func (d *recordDecoder) next(r *Record, baseTime int64) bool {
	if len(d.b) == 0 || d.err != nil {
		return false
	}
	head := fieldReader{b: d.b, ok: true}
	size := head.varint()
	if !head.ok || size < 1 || size > int64(len(d.b)-head.i) {
		d.err = fmt.Errorf("record length %d with %d bytes left", size, len(d.b)-head.i)
		return false
	}
	end := head.i + int(size)
	f := fieldReader{b: d.b[head.i:end], i: 1, ok: true} // past the record attributes
	d.b = d.b[end:]
	ts := f.varint()
	r.Offset = f.varint()
	r.Key = f.bytes()
	r.Value = f.bytes()
	nh := f.varint()
	if !d.reuseHeaders {
		r.Headers = nil
	} else {
		r.Headers = r.Headers[:0]
	}
	if nh != 0 {
		if nh < 0 || nh > int64(len(f.b)-f.i) {
			d.err = fmt.Errorf("header count %d with %d bytes left", nh, len(f.b)-f.i)
			return false
		}
		if d.reuseHeaders {
			r.Headers = slices.Grow(r.Headers[:0], int(nh))[:nh]
		} else {
			r.Headers = make([]Header, nh)
		}
		for i := range r.Headers {
			r.Headers[i].Key = string(f.bytes())
			r.Headers[i].Value = f.bytes()
		}
	}
	if !f.ok {
		d.err = errShortRecord
		return false
	}
	if f.i != len(f.b) {
		d.err = fmt.Errorf("%d stray bytes after a record", len(f.b)-f.i)
		return false
	}
	if ts != d.lastDelta || d.lastTime.IsZero() {
		d.lastDelta, d.lastTime = ts, time.UnixMilli(baseTime+ts)
	}
	r.Timestamp = d.lastTime
	return true
}
