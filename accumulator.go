package stream

import (
	"errors"
	"math"
	"sync"
	"sync/atomic"
	"time"
)

// The producer's accumulator: one per partition a producer sends to. Sends
// encode their records into the partition's open batch; a batch is sealed
// when it reaches BatchBytes, when Linger has passed since it opened, or
// when Flush, Close or a full buffer asks; sealed batches wait in the
// ready queue. A drain goroutine, started when a batch is sealed and none
// runs, appends the ready batches one at a time, in order (retrying each
// as ProducerConfig says), runs their callbacks, and ends when the queue
// is empty. One batch of a partition at a time keeps records in order
// through retries, and lets records that arrive while a batch is being
// written (and, under SyncAlways, fsynced) gather into the next one:
// producer-side group commit.

// accumulator gathers the records a producer sends to one partition.
type accumulator struct {
	p     *Producer
	topic string
	id    int32

	part          *Partition   // used by the drain goroutine only: the topic recreated, it moves to the new partition
	moved         bool         // used by the drain goroutine only: part is the recreated topic's; batches go without idempotence
	numPartitions atomic.Int32 // of the topic, for the sticky partitioner; grows with CreatePartitions

	// mu guards the fields below.
	mu       sync.Mutex
	open     *producerBatch   // taking records; nil when none
	ready    []*producerBatch // sealed, oldest first, waiting for the drain goroutine
	draining bool             // a drain goroutine runs for this partition
	timer    *time.Timer      // fires Linger after the open batch opened
	drainFn  func()           // a.drain, bound on first use
	sealed   uint64           // batches sealed so far

	completed  atomic.Uint64 // batches whose callbacks have run; at most sealed
	inCallback atomic.Uint64 // ID of the goroutine running SendAsync callbacks of this partition; 0: none

	// Idempotence state, used only by the drain goroutine (one at a
	// time, handed over under mu): the producer ID and epoch this
	// partition sees, and the sequence number of the next batch's first
	// record.
	pid     int64
	epoch   int16
	nextSeq int32
	lastErr error // the last append error, for batches that expire unsent
}

// producerBatch is a batch being gathered or delivered, with the records
// waiting for its acknowledgement.
type producerBatch struct {
	batch   Batch
	recs    []pendingRecord // nil done for AcksNone: nothing to report
	user    bool            // some done is a SendAsync callback (not Send's own)
	waited  bool            // holds a record of Send, whose caller waits: the batch does not linger
	bytes   int64           // buffer room its records reserved
	created time.Time       // when it opened: Linger and DeliveryTimeout count from here
	nowMs   int64           // created in ms: the Timestamp of records sent without one
}

type pendingRecord struct {
	r    *Record
	done func(*Record, error)
}

// freeBatches is how many delivered batches a producer keeps for reuse,
// their buffers at full size: as many as its buffer can fill
// (BufferBytes / BatchBytes, at least 2), so that a producer kept busy
// by its buffer allocates nothing once warm. A producer thus holds on to
// the batch memory it once needed, at most about BufferBytes, as Kafka's
// producer pools the memory of its batches (buffer.memory).
func freeBatches(bufferBytes, maxBatch int64) int {
	return int(max(2, min(bufferBytes/max(maxBatch, 1), 1<<16)))
}

// newBatch returns a batch to gather records in: a recycled one, or a new
// one whose buffer holds a full batch, so that gathering never grows it.
func (p *Producer) newBatch() *producerBatch {
	p.freeMu.Lock()
	if n := len(p.free); n > 0 {
		// The most recently delivered: its memory is likely still in a
		// cache, where the oldest's is not.
		b := p.free[n-1]
		p.free[n-1] = nil
		p.free = p.free[:n-1]
		p.freeMu.Unlock()
		return b
	}
	p.freeMu.Unlock()
	b := new(producerBatch)
	b.batch.buf = make([]byte, 0, p.maxBatch)
	b.recs = make([]pendingRecord, 0, p.maxBatch/128) // grows for records under 128 bytes, then kept
	return b
}

// recycle keeps b, emptied, for a later batch, unless enough are kept,
// its buffer grew for an outsized record, or the producer is closed.
func (p *Producer) recycle(b *producerBatch) {
	if cap(b.batch.buf) > 2*int(p.maxBatch)+minBatchCap {
		return // grown for an outsized record: let it go
	}
	clear(b.recs)
	b.recs = b.recs[:0]
	b.user, b.waited = false, false
	b.bytes = 0
	b.batch.Reset()
	b.batch.compression = CompressNone
	b.batch.setProducer(-1, -1, -1) // the next batch may go to a moved partition
	p.freeMu.Lock()
	switch {
	case p.closed.Load():
		p.free = nil // no batch opens after Close: let the memory go
	case len(p.free) < p.freeMax:
		p.free = append(p.free, b)
	}
	p.freeMu.Unlock()
}

// add encodes r (with timestamp ts in ms, noTimestamp for none) into the
// open batch and keeps done for its acknowledgement; fromSend says done is
// Send's own, which never calls back into the producer, and that a caller
// waits for the record, so the batch does not linger. It returns the
// timestamp the record got, or ErrClosed.
func (a *accumulator) add(r *Record, ts, size int64, done func(*Record, error), fromSend bool) (int64, error) {
	p := a.p
	a.mu.Lock()
	if p.closed.Load() {
		a.mu.Unlock()
		return 0, p.errClosed()
	}
	b := a.open
	if b != nil && int64(len(b.batch.buf))+size > p.maxBatch {
		a.sealLocked() // full: r starts the next batch
		b = nil
	}
	if b == nil {
		b = p.newBatch()
		b.created = time.Now()
		b.nowMs = b.created.UnixMilli()
		a.open = b
		if l := p.cfg.Linger; l > 0 {
			if a.timer == nil {
				a.timer = time.AfterFunc(l, a.lingerExpired)
			} else {
				a.timer.Reset(l)
			}
		}
	}
	if ts == noTimestamp {
		ts = b.nowMs
	}
	if b.batch.count == 0 {
		b.batch.start(ts)
	}
	b.batch.add(ts-b.batch.baseTime, r.Key, r.Value, r.Headers)
	b.bytes += size
	if p.cfg.Acks != AcksNone {
		b.recs = append(b.recs, pendingRecord{r, done})
		b.user = b.user || done != nil && !fromSend
	}
	b.waited = b.waited || fromSend
	if int64(len(b.batch.buf)) >= p.maxBatch || (p.cfg.Linger == 0 || b.waited) && !a.draining {
		a.sealLocked()
	}
	a.mu.Unlock()
	return ts, nil
}

// sealLocked moves the open batch to the ready queue and makes sure a
// drain goroutine will append it. a.mu is held.
func (a *accumulator) sealLocked() {
	a.ready = append(a.ready, a.open)
	a.open = nil
	a.sealed++
	if a.p.sticky != nil {
		a.p.sticky.onNewBatch(a.topic, a.id, int(a.numPartitions.Load()))
	}
	if !a.draining {
		a.draining = true
		a.p.drains.Add(1)
		if a.drainFn == nil {
			a.drainFn = a.drain // bound once: go a.drain() would allocate each time
		}
		go a.drainFn()
	}
}

// lingerExpired seals the open batch once Linger has passed since it
// opened. A timer set for a batch sealed early finds a younger one, or
// none, and leaves it: its own Reset timer will fire.
func (a *accumulator) lingerExpired() {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.open != nil && time.Since(a.open.created) >= a.p.cfg.Linger {
		a.sealLocked()
	}
}

// drain appends the ready batches in order until none is left. Once
// CloseContext gives up, the batches not yet appended fail with ErrClosed.
func (a *accumulator) drain() {
	p := a.p
	defer func() {
		p.drains.Add(-1)
		p.wakeWaiters()
	}()
	var g uint64 // this goroutine's ID, once SendAsync callbacks need it
	for {
		a.mu.Lock()
		if len(a.ready) == 0 && a.open != nil && (p.cfg.Linger == 0 || a.open.waited) {
			a.sealLocked() // gathered while the previous batch was written
		}
		if len(a.ready) == 0 {
			a.draining = false
			a.mu.Unlock()
			return
		}
		// Pop the oldest by moving the rest down (at most BufferBytes /
		// BatchBytes pointers), so that the array is reused; one grown
		// by a burst is let go once empty.
		b := a.ready[0]
		n := copy(a.ready, a.ready[1:])
		a.ready[n] = nil
		a.ready = a.ready[:n]
		if n == 0 && cap(a.ready) > readyKept {
			a.ready = nil
		}
		a.mu.Unlock()
		base, err := int64(-1), error(nil)
		if p.forced.Load() {
			err = errorf("stream: partition %s-%d: producer closed before the batch was written: %w", a.topic, a.id, ErrClosed)
		} else {
			base, err = a.deliver(b)
		}
		a.complete(b, base, err, &g)
	}
}

// deliver appends b, retrying as the producer's configuration says, and
// returns its base offset or the error its records fail with.
func (a *accumulator) deliver(b *producerBatch) (int64, error) {
	p := a.p
	n := b.batch.count
	if p.id >= 0 && !a.moved {
		b.batch.setProducer(a.pid, a.epoch, a.nextSeq)
	}
	b.batch.compression = p.cfg.Compression
	deadline := b.created.Add(p.cfg.DeliveryTimeout)
	var err error
	attempts := 0
	for {
		if !time.Now().Before(deadline) {
			err = a.expired(attempts, err)
			break
		}
		var base int64
		base, err = p.s.produceBatch(a.part, &b.batch) // to the leader, on a cluster
		attempts++
		if err == nil {
			if p.id >= 0 && !a.moved {
				a.nextSeq = lastSequence(a.nextSeq, n+1)
			}
			a.lastErr = nil
			p.counters.delivered(n, attempts, b.created, nil)
			return base, nil
		}
		a.lastErr = err
		if errors.Is(err, ErrClosed) {
			if err = a.closedPartition(err); err == nil {
				// The topic was recreated: append to its partition, without
				// idempotence, since the producer's accumulator of the new
				// topic numbers its own batches to that partition.
				b.batch.setProducer(-1, -1, -1)
				continue
			}
		}
		if !retriable(err) || p.aborted() {
			break
		}
		if attempts == 1 { // once per batch, not per retry: a failed partition refuses every one until DeliveryTimeout
			p.log.Warn("producer: append failed; retrying", "topic", a.topic, "partition", a.id,
				"records", n, "backoff", p.cfg.RetryBackoff, "delivery_timeout", p.cfg.DeliveryTimeout, "error", err)
		}
		wait := min(p.cfg.RetryBackoff, time.Until(deadline))
		if wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-t.C:
			case <-p.abort:
				t.Stop()
			}
			if p.aborted() {
				break
			}
		}
	}
	if p.forced.Load() && !errors.Is(err, ErrClosed) {
		err = errorf("stream: partition %s-%d: producer closed after %d failed attempts: %w: %w", a.topic, a.id, attempts, ErrClosed, err)
	}
	if p.id >= 0 && !a.moved {
		// The batch may or may not be in the log: start the partition's
		// sequence over under a new epoch, so the next batch is not
		// refused as a gap (Kafka's KIP-360 epoch bump).
		a.bumpEpoch()
	}
	p.counters.delivered(n, attempts, b.created, err)
	return -1, err
}

// expired is the error of a batch whose DeliveryTimeout passed after
// attempts appends failing with last (0 attempts: it waited behind
// others).
func (a *accumulator) expired(attempts int, last error) error {
	if attempts == 0 {
		last = a.lastErr
		if last == nil {
			last = errors.New("no append attempted")
		}
	}
	return errorf("stream: partition %s-%d: delivery timed out after %v and %d attempts: %w: %w",
		a.topic, a.id, a.p.cfg.DeliveryTimeout, attempts, ErrTimeout, last)
}

// closedPartition explains an ErrClosed from the partition. The stream
// is closing: err as it is. The topic was deleted: ErrUnknownTopic, unless
// it was recreated with this partition, to which the batch then moves
// (nil), as Kafka's producer sends a batch to the topic partition of that
// name once its metadata knows the new topic. Later sends look the topic
// up again (Topic.changes).
func (a *accumulator) closedPartition(err error) error {
	t, terr := a.p.s.Topic(a.topic)
	if terr != nil && !errors.Is(terr, ErrUnknownTopic) {
		return err
	}
	if terr == nil {
		if part, perr := t.Partition(a.id); perr == nil {
			if part == a.part {
				return err
			}
			a.part, a.moved = part, true
			return nil
		}
	}
	return errorf("stream: partition %s-%d: the topic was deleted: %w", a.topic, a.id, ErrUnknownTopic)
}

// bumpEpoch moves the partition to the next producer epoch, sequence 0;
// after 32767 bumps it takes a new producer ID.
func (a *accumulator) bumpEpoch() {
	a.nextSeq = 0
	if a.epoch < math.MaxInt16 {
		a.epoch++
		return
	}
	id, err := a.p.s.newProducerID()
	if err != nil {
		a.p.log.Error("producer: allocate producer ID", "error", err)
		return
	}
	a.pid, a.epoch = id, 0
}

// retriable reports whether retrying an append that failed with err can
// succeed.
func retriable(err error) bool {
	for _, fatal := range [...]error{ErrRecordTooLarge, ErrUnknownTopic, ErrInvalidConfig, ErrClosed, ErrFenced, ErrOutOfOrderSequence} {
		if errors.Is(err, fatal) {
			return false
		}
	}
	return true
}

// complete reports b's fate to its records' callbacks, frees its buffer
// room and recycles it. g caches the drain goroutine's ID: SendAsync
// callbacks run with it in inCallback, so that calls from them into the
// producer know not to wait for this goroutine.
func (a *accumulator) complete(b *producerBatch, base int64, err error, g *uint64) {
	p := a.p
	if b.user {
		if *g == 0 {
			*g = goroutineID()
		}
		p.userCallbacks.Add(1)
		a.inCallback.Store(*g)
		defer func() {
			a.inCallback.Store(0)
			p.userCallbacks.Add(-1)
		}()
	}
	p.release(b.bytes)
	if p.cfg.Acks == AcksNone {
		if err != nil {
			p.log.Error("producer: records lost (AcksNone)", "topic", a.topic, "partition", a.id, "records", b.batch.count, "error", err)
		}
	}
	now := time.UnixMilli(b.nowMs)
	for i, pr := range b.recs {
		r := pr.r
		r.Partition, r.Offset = a.id, -1
		if err == nil {
			r.Offset = base + int64(i)
		}
		if r.Timestamp.IsZero() {
			r.Timestamp = now
		}
		if pr.done != nil {
			pr.done(r, err)
		}
	}
	a.completed.Add(1)
	p.wakeWaiters()
	p.recycle(b)
}

// readyKept is the capacity of a ready queue kept once it empties.
const readyKept = 64

// minBatchCap is the buffer a Batch starts with (Batch.start).
const minBatchCap = 16 << 10

// busy reports whether a has records not yet delivered.
func (a *accumulator) busy() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.open != nil || a.completed.Load() < a.sealed
}
