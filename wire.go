package stream

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
	"time"
)

// Hooks for a Kafka wire-protocol front end (package kafkaproto): a
// client's RecordBatch v2 appended as it came, stored batches read as
// they lie in the segments, producer IDs for InitProducerId, topic
// auto-creation as a Producer does it, and commits from a group
// coordinator that fences its members itself.

// AppendRaw appends batch, one Kafka RecordBatch v2 as a producer sends it
// (magic 2, a valid CRC-32C, records at offset deltas 0..count-1), as it
// is: the partition assigns its base offset (which the CRC does not
// cover) and keeps the rest, compression and timestamps included. A
// header's max timestamp that is not its newest record's is set to it,
// and the CRC with it, as Kafka's broker does (KafkaJS sends the newest
// of the timestamps the application gave, ignoring records stamped with
// the time of sending); the time index relies on it. An
// idempotent batch (producer ID >= 0) is checked as the engine's own
// producers' are: a retry of a batch the log holds returns the offset it
// has, a gap gets ErrOutOfOrderSequence, an older epoch ErrFenced.
// Transactional and control batches are refused with ErrInvalidConfig,
// a malformed one with ErrCorrupt, one larger than Options.MaxRecordBytes
// with ErrRecordTooLarge; nothing is written then. batch is not retained.
func (p *Partition) AppendRaw(batch []byte) (baseOffset int64, err error) {
	h, fixTime, err := p.checkRaw(batch)
	if err != nil {
		return 0, err
	}
	n := int64(len(batch))
	p.mu.Lock()
	if h.ProducerID >= 0 {
		base, dup, err := p.checkSequenceLocked(h.ProducerID, h.ProducerEpoch, h.BaseSequence, int(h.Count))
		if err != nil || dup {
			p.mu.Unlock()
			if err != nil {
				return 0, err
			}
			return base, p.waitAcked(base + int64(h.Count))
		}
	}
	now := time.Now().UnixMilli()
	seg, pos, err := p.reserveLocked(n, now)
	if err != nil {
		p.mu.Unlock()
		return 0, err
	}
	if h.ProducerID >= 0 {
		p.noteSequenceLocked(h.ProducerID, h.ProducerEpoch, h.BaseSequence, int(h.Count), p.leo, now)
	}
	dst := seg.m[pos : pos+n]
	copy(dst, batch)
	// The partition leader epoch is not covered by the CRC either; the
	// engine's own batches carry 0.
	binary.BigEndian.PutUint32(dst[offLeaderEpoch:], 0)
	h.LeaderEpoch = 0
	if fixTime {
		binary.BigEndian.PutUint64(dst[offMaxTimestamp:], uint64(h.MaxTimestamp))
		h.CRC = crc32.Checksum(dst[offAttributes:], crcTable)
		binary.BigEndian.PutUint32(dst[offCRC:], h.CRC)
	}
	return p.commitLocked(seg, dst, pos, &h)
}

// checkRaw validates a client's batch for AppendRaw: header, CRC, and
// every record's framing, so that no batch a read would later report as
// corrupt gets into the log. A header's max timestamp other than its
// records' newest (under CreateTime) is returned corrected, with fixTime
// set: the caller writes it into the stored copy.
func (p *Partition) checkRaw(batch []byte) (h batchHeader, fixTime bool, err error) {
	if len(batch) < batchHeaderSize {
		return batchHeader{}, false, p.errorf("raw batch of %d bytes is shorter than a header: %w", len(batch), ErrCorrupt)
	}
	h, err = parseBatchHeader(batch)
	if err != nil {
		return h, false, p.errorf("raw batch: %v: %w", err, ErrCorrupt)
	}
	if h.Size() != int64(len(batch)) {
		return h, false, p.errorf("raw batch: length field says %d bytes, got %d: %w", h.Size(), len(batch), ErrCorrupt)
	}
	if int64(len(batch)) > p.cfg.maxRecordBytes {
		return h, false, p.errorf("batch of %d bytes exceeds %d: %w", len(batch), p.cfg.maxRecordBytes, ErrRecordTooLarge)
	}
	if h.Attributes&(attrTransactional|attrControl) != 0 {
		return h, false, p.errorf("raw batch: transactional and control batches are not supported: %w", ErrInvalidConfig)
	}
	if h.Count == 0 {
		return h, false, p.errorf("raw batch holds no records: %w", ErrCorrupt)
	}
	if err := checkBatch(batch, &h); err != nil {
		return h, false, p.errorf("raw batch: %v: %w", err, ErrCorrupt)
	}
	if !h.Compression().valid() {
		return h, false, p.errorf("raw batch: unknown compression codec %d: %w", h.Compression(), ErrCorrupt)
	}
	body, _, err := batchBody(batch, &h, nil)
	if err != nil {
		return h, false, p.errorf("raw batch: %v: %w", err, ErrCorrupt)
	}
	d := recordDecoder{b: body, reuseHeaders: true}
	var r Record
	maxTime := int64(math.MinInt64)
	for i := range int64(h.Count) {
		if err := d.record(&r, &h, i); err != nil {
			return h, false, p.errorf("raw batch: %v: %w", err, ErrCorrupt)
		}
		maxTime = max(maxTime, r.Timestamp.UnixMilli())
	}
	if err := d.end(); err != nil {
		return h, false, p.errorf("raw batch: %v: %w", err, ErrCorrupt)
	}
	// The time index and OffsetForTime trust the header's max timestamp:
	// it must be the records' own.
	if h.Attributes&attrTimestampType == 0 && maxTime != h.MaxTimestamp {
		h.MaxTimestamp = maxTime
		return h, true, nil
	}
	return h, false, nil
}

// ReadRaw appends to dst the stored batches from the one holding offset
// on, byte for byte as they lie in the segments (RecordBatch v2, each
// CRC-checked), up to about maxBytes but at least one batch when one lies
// wholly below the high watermark. The first batch may start before
// offset: Kafka's consumers skip the records they did not ask for. It
// returns the extended dst and the offset after the last batch (offset
// when none). Offsets outside [StartOffset, HighWatermark] get
// ErrOffsetOutOfRange; damaged data, a *CorruptError.
func (p *Partition) ReadRaw(offset int64, maxBytes int, dst []byte) ([]byte, int64, error) {
	if maxBytes < 0 {
		return dst, offset, p.errorf("read at offset %d: maxBytes %d is negative: %w", offset, maxBytes, ErrInvalidConfig)
	}
	next := offset
	for first := true; ; first = false {
		had := len(dst)
		var err error
		dst, next, err = p.readRawOnce(next, maxBytes, dst)
		if err != nil {
			if !first {
				return dst, next, nil // the next read reports it
			}
			return dst, next, err
		}
		maxBytes -= len(dst) - had
		if len(dst) == had || maxBytes <= 0 {
			return dst, next, nil
		}
	}
}

// readRawOnce is ReadRaw within the segment holding offset.
func (p *Partition) readRawOnce(offset int64, maxBytes int, dst []byte) ([]byte, int64, error) {
	for attempt := 0; ; attempt++ {
		p.mu.RLock()
		if p.closed {
			p.mu.RUnlock()
			return dst, offset, p.errorf("%w", ErrClosed)
		}
		hw, start := p.hw.Load(), p.start.Load()
		if offset < start || offset > hw {
			p.mu.RUnlock()
			return dst, offset, p.errorf("offset %d outside [%d, %d]: %w", offset, start, hw, ErrOffsetOutOfRange)
		}
		if offset == hw {
			p.mu.RUnlock()
			return dst, offset, nil
		}
		seg := p.floorLocked(offset)
		pos, base, err := seg.lookupLocked(offset)
		limit := seg.visible
		p.mu.RUnlock()
		if err == nil {
			var out []byte
			var next int64
			out, next, err = p.rawSegment(seg, offset, pos, base, limit, hw, maxBytes, dst)
			if err == nil {
				return out, next, nil
			}
		}
		if errors.Is(err, errSegmentClosed) && attempt < 3 {
			continue // retention or close took the segment; look again
		}
		if errors.Is(err, errIndexMismatch) {
			return dst, offset, corruptError(seg.path, pos, err)
		}
		return dst, offset, err
	}
}

// rawSegment copies whole batches from seg, walking headers from pos
// (where the batch with base offset base starts) to the one holding
// offset, then taking batches below hw until maxBytes.
func (p *Partition) rawSegment(seg *segment, offset, pos, base, limit, hw int64, maxBytes int, dst []byte) ([]byte, int64, error) {
	var hdr [batchHeaderSize]byte
	next := offset
	took := 0
	for pos+batchHeaderSize <= limit {
		if err := seg.readAt(hdr[:], pos); err != nil {
			return dst, offset, err
		}
		h, err := parseBatchHeader(hdr[:])
		if err == nil && h.BaseOffset != base {
			err = fmt.Errorf("batch base offset %d, want %d", h.BaseOffset, base)
		}
		if err == nil && pos+h.Size() > limit {
			err = fmt.Errorf("batch of %d bytes runs past the end of the data at %d", h.Size(), limit)
		}
		if err != nil {
			return dst, offset, corruptError(seg.path, pos, err)
		}
		if h.LastOffset() >= hw || (took > 0 && took+int(h.Size()) > maxBytes) {
			break
		}
		if h.LastOffset() >= offset {
			at := len(dst)
			dst = append(dst, make([]byte, h.Size())...)
			if err := seg.readAt(dst[at:], pos); err != nil {
				return dst[:at], offset, err
			}
			if err := checkBatch(dst[at:], &h); err != nil {
				return dst[:at], offset, corruptError(seg.path, pos, err)
			}
			took += int(h.Size())
			next = h.LastOffset() + 1
		}
		pos += h.Size()
		base = h.LastOffset() + 1
		if took >= maxBytes {
			break
		}
	}
	return dst, next, nil
}

// NewProducerID allocates a producer ID that no producer of this Stream
// has had or will have (IDs are kept in meta.db), for a wire-protocol
// InitProducerId. Batches stamped with it and epoch 0 are deduplicated
// by AppendRaw as the engine's own idempotent producers' are.
func (s *Stream) NewProducerID() (int64, error) {
	return s.newProducerID()
}

// TopicOrCreate returns the named topic, creating it with
// Options.DefaultTopic when it does not exist and Options.AutoCreateTopics
// is set, as a Producer does; otherwise a missing topic gets
// ErrUnknownTopic.
func (s *Stream) TopicOrCreate(name string) (*Topic, error) {
	return s.topicForProducer(name)
}

// StoreOffsets writes committed offsets on behalf of members this package
// does not know: a Kafka wire-protocol group coordinator, which fences its
// own members by generation before calling it. Offsets are stored as
// Commit's are, shared with the Go API's Committed, Lag and Join. While
// the group has members that joined through the Go API it fails with
// ErrGroupNotEmpty and writes nothing, as ResetOffsets does. Unlike
// ResetOffsets, it does not check offsets against the partitions: Kafka
// lets a group commit any offset.
func (g *ConsumerGroup) StoreOffsets(ctx context.Context, offs map[TopicPartition]OffsetAndMetadata) error {
	if err := checkContext(ctx, "group "+g.id); err != nil {
		return err
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if err := g.resettableLocked(); err != nil {
		return err
	}
	if len(offs) == 0 {
		return nil
	}
	return g.writeOffsets(offs, false, g.generation, time.Now().UTC(), nil)
}

// HasMembers reports whether members joined through the Go API are in the
// group (static members away for less than SessionTimeout included).
func (g *ConsumerGroup) HasMembers() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.members) > 0
}
