package stream

import (
	"errors"
	"math"
	"time"
)

// Idempotent appends, as Kafka's KIP-98: an idempotent producer stamps
// each batch with its producer ID, epoch and the sequence number of its
// first record, counting per partition. The partition remembers the last
// few batches of each producer, so a batch retried after a lost
// acknowledgement is recognised and answered with the offset it already
// has, never appended twice, and a batch after a gap is refused.

// ErrOutOfOrderSequence is returned by appends of an idempotent batch
// whose sequence number does not follow the producer's previous batch on
// the partition: a batch in between was lost. Nothing is written.
var ErrOutOfOrderSequence = errors.New("stream: out of order sequence number")

// producerBatchesKept is how many recent batches per producer a partition
// remembers, as Kafka's (max.in.flight.requests.per.connection = 5).
const producerBatchesKept = 5

// producerState is what a partition remembers of one producer.
type producerState struct {
	epoch   int16
	batches [producerBatchesKept]sequencedBatch // ring of the latest, newest at last
	last    int                                 // index of the newest in batches
	n       int                                 // how many of batches are valid
	// seen is when the partition last heard from the producer (Unix
	// milliseconds): the wall clock at its newest append, or the Open
	// that rebuilt it. Expiry counts from it.
	seen int64
}

type sequencedBatch struct {
	firstSeq, lastSeq int32
	base              int64 // offset of its first record
}

// setProducer marks the batch as idempotent: appended by producer id
// with epoch, its first record carrying sequence number firstSeq. Producers
// set it; a retry of the same batch keeps the same values.
func (b *Batch) setProducer(id int64, epoch int16, firstSeq int32) {
	b.producerID, b.producerEpoch, b.baseSequence = id, epoch, firstSeq
	b.sealed = false
}

// lastSequence is the sequence number of the last record of a batch that
// starts at first and holds count records; sequences wrap at MaxInt32.
func lastSequence(first int32, count int) int32 {
	return int32((int64(first) + int64(count) - 1) % (math.MaxInt32 + 1))
}

// checkSequenceLocked decides what to do with an idempotent batch: append
// it (dup false, nil), answer it with the base offset of the copy already
// held (dup true), or refuse it. p.mu is held.
func (p *Partition) checkSequenceLocked(id int64, epoch int16, firstSeq int32, count int) (base int64, dup bool, err error) {
	st := p.producers[id]
	if st == nil || st.n == 0 {
		return 0, false, nil // a new producer (or one whose state expired) starts anywhere
	}
	switch {
	case epoch < st.epoch:
		return 0, false, p.errorf("producer %d epoch %d is older than %d: %w", id, epoch, st.epoch, ErrFenced)
	case epoch > st.epoch:
		if firstSeq != 0 {
			return 0, false, p.errorf("producer %d new epoch %d must start at sequence 0, not %d: %w", id, epoch, firstSeq, ErrOutOfOrderSequence)
		}
		return 0, false, nil
	}
	lastSeq := lastSequence(firstSeq, count)
	for i := range st.n {
		b := st.batches[(st.last-i+producerBatchesKept)%producerBatchesKept]
		if b.firstSeq == firstSeq && b.lastSeq == lastSeq {
			return b.base, true, nil
		}
	}
	newest := st.batches[st.last]
	if want := lastSequence(newest.lastSeq, 2); firstSeq != want {
		return 0, false, p.errorf("producer %d: sequence %d, want %d: %w", id, firstSeq, want, ErrOutOfOrderSequence)
	}
	return 0, false, nil
}

// noteSequenceLocked records an idempotent batch appended at base, at
// Unix millisecond now. p.mu is held.
func (p *Partition) noteSequenceLocked(id int64, epoch int16, firstSeq int32, count int, base, now int64) {
	if p.producers == nil {
		p.producers = map[int64]*producerState{}
	}
	st := p.producers[id]
	if st == nil || epoch != st.epoch {
		st = &producerState{epoch: epoch, last: producerBatchesKept - 1}
		p.producers[id] = st
	}
	st.last = (st.last + 1) % producerBatchesKept
	st.batches[st.last] = sequencedBatch{firstSeq: firstSeq, lastSeq: lastSequence(firstSeq, count), base: base}
	st.n = min(st.n+1, producerBatchesKept)
	st.seen = max(st.seen, now)
}

// expireProducersLocked forgets the producers not heard from for the
// partition's producer expiry (Options.ProducerIDExpiration) before now,
// in Unix milliseconds, as Kafka expires idle producers after
// producer.id.expiration.ms. Rolls call it: it bounds the state of a
// partition that sees many short-lived producers, and a forgotten
// producer's next batch is accepted as a new start. Expiry is by time,
// never by how much others appended: a producer retrying one batch
// through a failover appends nothing meanwhile and must still be
// recognised (TestIdempotentRetryAfterRolls). p.mu is held.
func (p *Partition) expireProducersLocked(now int64) {
	if p.cfg.producerExpiry <= 0 {
		return
	}
	horizon := now - p.cfg.producerExpiry.Milliseconds()
	for id, st := range p.producers {
		if st.n == 0 || st.seen < horizon {
			delete(p.producers, id)
		}
	}
}

// rebuildProducersLocked restores the producer state from the batch
// headers of the active segment after recovery, each producer counted as
// heard from now (the expiry starts again at Open: it never shortens).
// Producers whose last batch is in an older segment are forgotten; their
// next batch is accepted as a new start.
func (p *Partition) rebuildProducersLocked() error {
	s := p.active
	now := time.Now().UnixMilli()
	var hdr [batchHeaderSize]byte
	for pos := int64(0); pos < s.size; {
		if err := s.readAt(hdr[:], pos); err != nil {
			return err
		}
		h, err := parseBatchHeader(hdr[:])
		if err != nil {
			return corruptError(s.path, pos, err)
		}
		if h.ProducerID >= 0 {
			p.noteSequenceLocked(h.ProducerID, h.ProducerEpoch, h.BaseSequence, int(h.LastOffsetDelta)+1, h.BaseOffset, now)
		}
		pos += h.Size()
	}
	return nil
}
