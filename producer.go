package stream

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// Producer sends records to topics, as Kafka's KafkaProducer: it routes
// each record to a partition with its Partitioner, gathers the records of
// each partition into batches (see ProducerConfig: Linger, BatchBytes),
// appends whole batches, and reports each record's fate to a callback.
// Get one from Stream.NewProducer; it is safe for concurrent use, and
// Close (or CloseContext, to bound the wait) delivers what it holds and
// stops it. Stream.Close closes the producers still open.
//
// A failed append is retried every ProducerConfig.RetryBackoff until
// ProducerConfig.DeliveryTimeout, unless the error is one retrying cannot
// fix (ErrRecordTooLarge, ErrUnknownTopic, ErrInvalidConfig, ErrClosed,
// ErrFenced, ErrOutOfOrderSequence). Retries keep the order of records
// within a partition: a partition's batches are appended one at a time.
// Unless ProducerConfig.DisableIdempotence is set, each batch carries the
// producer's ID and sequence numbers (Kafka's KIP-98), so a batch retried
// after its acknowledgement was lost is recognised by the partition and
// never appended twice.
type Producer struct {
	s        *Stream
	cfg      ProducerConfig    // with defaults
	part     Partitioner       // from partitionerForProducer: this producer's own
	sticky   stickyPartitioner // part, when it wants onNewBatch; else nil
	log      *slog.Logger
	maxBatch int64 // bytes a batch may reach: BatchBytes, at most MaxRecordBytes
	maxRec   int64 // Options.MaxRecordBytes
	id       int64 // producer ID for idempotence; -1 when disabled

	closed    atomic.Bool   // set by Close: sends fail with ErrClosed
	abort     chan struct{} // closed when the Stream closes the producer or CloseContext gives up: no more retries
	abortOnce sync.Once
	forced    atomic.Bool  // set when CloseContext gives up: batches not yet appended fail with ErrClosed
	closeOnce sync.Once    // the start of the close (seal everything), done once
	drains    atomic.Int64 // running drain goroutines (one at most per partition)

	waiters chan *sendWaiter // idle waiters of Send kept for reuse

	counters producerCounters // for Metrics (metrics.go); atomic

	// freeMu guards free: delivered batches kept for reuse, most recent
	// last (newBatch, recycle), at most freeMax of them.
	freeMu  sync.Mutex
	free    []*producerBatch
	freeMax int

	// userCallbacks counts the drain goroutines running callbacks of
	// SendAsync; while it is zero no goroutine can be in one, and the
	// calls that must not wait for their own goroutine skip the check.
	userCallbacks atomic.Int32

	// topics maps a topic name to its accumulators; a copy-on-write map,
	// replaced under mu, read without a lock. last is the entry a send
	// used last: most producers send to one topic at a time, and a name
	// compared is cheaper than a name hashed.
	topics atomic.Pointer[map[string]*producerTopic]
	last   atomic.Pointer[producerTopic]

	buffered     atomic.Int64 // buffer bytes reserved by records not yet delivered
	roomWaiters  atomic.Int32 // senders waiting for buffer room
	flushWaiters atomic.Int32 // Flush and Close calls waiting for deliveries or drain goroutines

	// mu guards the topics map's replacement, room and progress.
	mu       sync.Mutex
	room     chan struct{} // closed when buffer room frees or on Close; nil when nobody waits
	progress chan struct{} // closed when a batch completes or a drain goroutine ends; nil when nobody waits

	// retired holds the accumulators of topics the producer stopped
	// sending to (deleted, recreated or grown) while they still had
	// batches to deliver, so that Flush and Close wait for them too.
	retired []*accumulator
}

// producerTopic is a producer's view of one topic: an accumulator per
// partition, as of the topic's changes count.
type producerTopic struct {
	name    string
	t       *Topic
	changes uint64
	accs    []*accumulator

	// sticky is the topic's sticky partition in the producer's own
	// HashPartitioner (nil with any other partitioner), read by sends of
	// keyless records without the partitioner's lookup by name.
	sticky *atomic.Int32
}

var bucketProducers = []byte("producers")

// NewProducer returns a Producer configured by cfg (zero fields:
// defaults). A bad field is an error wrapping ErrInvalidConfig naming it.
// Unless cfg.DisableIdempotence is set, the producer gets a new producer
// ID, allocated in meta.db.
func (s *Stream) NewProducer(cfg ProducerConfig) (*Producer, error) {
	c, err := cfg.withDefaults()
	if err != nil {
		return nil, errorf("stream: new producer: %w", err)
	}
	p := &Producer{
		s: s, cfg: c, log: s.log, id: -1,
		part:     partitionerForProducer(c.Partitioner),
		maxBatch: min(int64(c.BatchBytes), int64(s.opts.MaxRecordBytes)),
		maxRec:   int64(s.opts.MaxRecordBytes),
		abort:    make(chan struct{}),
	}
	p.waiters = make(chan *sendWaiter, sendWaitersKept)
	p.freeMax = freeBatches(int64(c.BufferBytes), p.maxBatch)
	p.sticky, _ = p.part.(stickyPartitioner)
	p.topics.Store(&map[string]*producerTopic{})
	if !c.DisableIdempotence {
		if p.id, err = s.newProducerID(); err != nil {
			return nil, err
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, errorf("stream: new producer: %w", ErrClosed)
	}
	if s.producers == nil {
		s.producers = map[*Producer]struct{}{}
	}
	s.producers[p] = struct{}{}
	return p, nil
}

// newProducerID allocates a producer ID in meta.db: IDs are never reused,
// so a partition never mistakes one producer's batches for another's.
func (s *Stream) newProducerID() (int64, error) {
	var id uint64
	err := s.db.Update(func(tx *bbolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucketProducers)
		if err != nil {
			return err
		}
		id, err = b.NextSequence()
		return err
	})
	if err != nil {
		if errors.Is(err, berrors.ErrDatabaseNotOpen) {
			err = ErrClosed
		}
		return -1, errorf("stream: allocate producer ID: %w", err)
	}
	return s.clusterProducerID(id), nil
}

// topicForProducer returns the named topic, creating it with
// Options.DefaultTopic when it does not exist and Options.AutoCreateTopics
// is set.
func (s *Stream) topicForProducer(name string) (*Topic, error) {
	t, err := s.Topic(name)
	if err == nil || !errors.Is(err, ErrUnknownTopic) || !s.opts.AutoCreateTopics {
		return t, err
	}
	t, err = s.CreateTopic(name, s.opts.DefaultTopic)
	if errors.Is(err, ErrTopicExists) { // another sender created it first
		return s.Topic(name)
	}
	return t, err
}

// Send sends r and waits for its acknowledgement (per ProducerConfig.Acks),
// then sets r's Partition, Offset and, when zero, Timestamp. It returns
// the delivery error, or ctx.Err() if ctx ends first. That outcome is
// ambiguous: the record may still be written (and, with idempotence, at
// most once), and r is left as it was; send with context.WithoutCancel
// when a shutdown must not leave records in doubt. Send blocks while the
// producer's buffer is full (ProducerConfig.BufferBytes), until ctx ends
// or ProducerConfig.MaxBlock passes (ErrBufferFull). Called from one of
// the producer's callbacks, which it would wait for, it fails at once
// with ErrInCallback. Send copies r, so r may be reused once Send returns.
func (p *Producer) Send(ctx context.Context, r *Record) error {
	if r == nil {
		return errorf("stream: send a nil record: %w", ErrInvalidConfig)
	}
	if err := checkContext(ctx, "send"); err != nil {
		return err
	}
	if p.cfg.Acks != AcksNone && p.inCallback() {
		return errorf("stream: send to topic %s: %w", r.Topic, ErrInCallback)
	}
	w := p.waiter()
	w.rec = *r
	err := p.send(ctx, &w.rec, w.done, true)
	if err == nil {
		select {
		case err = <-w.ch:
		case <-ctx.Done():
			return ctx.Err() // w stays with the producer until delivered: not reused
		}
	}
	r.Partition, r.Offset, r.Timestamp = w.rec.Partition, w.rec.Offset, w.rec.Timestamp
	w.rec = Record{}
	select {
	case p.waiters <- w:
	default:
	}
	return err
}

// sendWaiter is what a Send waits with: its copy of the record and the
// channel its callback reports on, recycled by the producer (not a
// sync.Pool, whose channels could cross testing/synctest bubbles) so that
// a Send allocates nothing of its own.
type sendWaiter struct {
	rec  Record
	ch   chan error           // buffered: the callback never blocks
	done func(*Record, error) // w.deliver, bound once
}

func (w *sendWaiter) deliver(_ *Record, err error) { w.ch <- err }

// sendWaitersKept is how many idle sendWaiters a producer keeps.
const sendWaitersKept = 64

// waiter returns a recycled sendWaiter or a new one.
func (p *Producer) waiter() *sendWaiter {
	select {
	case w := <-p.waiters:
		return w
	default:
	}
	w := &sendWaiter{ch: make(chan error, 1)}
	w.done = w.deliver
	return w
}

// SendAsync hands r to the producer and returns at once, unless the
// buffer is full (ProducerConfig.BufferBytes): then it blocks until
// deliveries free room, for at most ProducerConfig.MaxBlock, after which
// the record fails with ErrBufferFull. done, which may be nil, is called
// exactly once with r, its Partition, Offset and (when it was zero)
// Timestamp set, and the delivery error:
//
//   - Records are delivered in batches; done is called in the order the
//     records were sent, for each partition, on the goroutine that
//     appends the partition's batches. It should return quickly. It may
//     call the producer back: SendAsync works (but fails at once with
//     ErrBufferFull when the buffer is full, since room is freed by the
//     very goroutine running done), Close returns at once without waiting
//     for that goroutine, and Send and Flush, which would wait for it,
//     fail with ErrInCallback.
//   - A record refused at once (ErrClosed, ErrUnknownTopic, a partition
//     out of range, ErrRecordTooLarge, ErrInvalidConfig, ErrBufferFull)
//     gets done before SendAsync returns, on the caller's goroutine, as in
//     Kafka.
//   - With AcksNone, done is called as soon as the record is accepted,
//     before SendAsync returns, with Offset -1.
//
// SendAsync copies the key, value and headers into the batch before it
// returns, but keeps r itself: do not modify or reuse r until done is
// called. A record with a zero Timestamp gets the time its batch was
// opened (at most Linger before the send).
func (p *Producer) SendAsync(r *Record, done func(*Record, error)) {
	if err := p.send(context.Background(), r, done, false); err != nil && done != nil {
		if r != nil {
			r.Offset = -1
		}
		done(r, err)
	}
}

// send accepts r into its partition's batch, or returns why not; ctx
// bounds a wait for buffer room. fromSend says done is Send's own.
func (p *Producer) send(ctx context.Context, r *Record, done func(*Record, error), fromSend bool) error {
	if r == nil {
		return errorf("stream: send a nil record: %w", ErrInvalidConfig)
	}
	if p.closed.Load() {
		return p.errClosed()
	}
	pt, err := p.topic(r.Topic)
	if err != nil {
		return err
	}
	n := len(pt.accs)
	var i int32
	if cur := pt.sticky; cur != nil && r.Key == nil {
		// HashPartitioner's keyless path, its cell at hand.
		if i = cur.Load(); i < 0 || int(i) >= n {
			i = p.part.Partition(r, n)
		}
	} else {
		i = p.part.Partition(r, n)
	}
	if i < 0 || int(i) >= n {
		return errorf("stream: send to topic %s: partitioner chose partition %d, outside [0, %d): %w", r.Topic, i, n, ErrUnknownTopic)
	}
	a := pt.accs[i]
	// size bounds the record's encoded size: its length varint and its
	// timestamp and offset deltas take at most 18 more bytes than with
	// zero deltas.
	size := int64(recordSize(0, 0, r.Key, r.Value, r.Headers) + 18)
	if size+batchHeaderSize > p.maxRec {
		return errorf("stream: send to %s-%d: record of %d bytes exceeds Options.MaxRecordBytes %d: %w", r.Topic, i, size, p.maxRec, ErrRecordTooLarge)
	}
	if size > int64(p.cfg.BufferBytes) {
		return errorf("stream: send to %s-%d: record of %d bytes exceeds ProducerConfig.BufferBytes %d: %w", r.Topic, i, size, p.cfg.BufferBytes, ErrRecordTooLarge)
	}
	if err := p.reserve(ctx, size, a); err != nil {
		return err
	}
	ts := int64(noTimestamp)
	if !r.Timestamp.IsZero() {
		ts = r.Timestamp.UnixMilli()
	}
	ts, err = a.add(r, ts, size, done, fromSend)
	if err != nil {
		p.release(size)
		return err
	}
	if p.cfg.Acks == AcksNone && done != nil {
		r.Partition, r.Offset = i, -1
		if r.Timestamp.IsZero() {
			r.Timestamp = time.UnixMilli(ts)
		}
		done(r, nil)
	}
	return nil
}

func (p *Producer) errClosed() error {
	return errorf("stream: producer: %w", ErrClosed)
}

// topic returns the accumulators of the named topic. A topic deleted,
// recreated or grown since the last send is looked up again: accumulators
// of partitions that remain are kept, the others retired.
func (p *Producer) topic(name string) (*producerTopic, error) {
	if pt := p.last.Load(); pt != nil && pt.name == name && pt.changes == pt.t.changes.Load() {
		return pt, nil // the common case, kept small enough to inline
	}
	return p.lookupTopic(name)
}

// lookupTopic is topic past the last topic sent to.
func (p *Producer) lookupTopic(name string) (*producerTopic, error) {
	if pt := (*p.topics.Load())[name]; pt != nil && pt.changes == pt.t.changes.Load() {
		p.last.Store(pt)
		return pt, nil
	}
	t, err := p.s.topicForProducer(name)
	p.mu.Lock()
	defer p.mu.Unlock()
	old := *p.topics.Load()
	prev := old[name]
	if err != nil {
		if prev != nil && errors.Is(err, ErrUnknownTopic) {
			p.replaceTopicLocked(name, prev, nil)
		}
		return nil, errorf("stream: send to topic %s: %w", name, err)
	}
	changes := t.changes.Load() // before reading the partitions: a later change is seen at the next send
	if prev != nil && prev.t == t && prev.changes == changes {
		return prev, nil // another sender got here first
	}
	parts := t.partitionList()
	pt := &producerTopic{name: name, t: t, changes: changes, accs: make([]*accumulator, len(parts))}
	if h, ok := p.part.(*hashPartitioner); ok {
		pt.sticky = h.topic(name)
	}
	for i, part := range parts {
		if prev != nil && prev.t == t && i < len(prev.accs) {
			pt.accs[i] = prev.accs[i]
		} else {
			pt.accs[i] = &accumulator{p: p, topic: name, id: int32(i), part: part, pid: p.id}
		}
		pt.accs[i].numPartitions.Store(int32(len(parts)))
	}
	p.replaceTopicLocked(name, prev, pt)
	return pt, nil
}

// replaceTopicLocked makes pt (nil: none) the producer's view of the named
// topic instead of prev, and retires prev's accumulators that pt does not
// keep: their open batches are sealed, to be written (or failed) now, and
// Flush and Close wait for them. p.mu is held.
func (p *Producer) replaceTopicLocked(name string, prev, pt *producerTopic) {
	old := *p.topics.Load()
	m := make(map[string]*producerTopic, len(old)+1)
	for k, v := range old {
		if k != name {
			m[k] = v
		}
	}
	if pt != nil {
		m[name] = pt
	}
	p.topics.Store(&m)
	kept := p.retired[:0]
	for _, a := range p.retired {
		if a.busy() {
			kept = append(kept, a)
		}
	}
	clear(p.retired[len(kept):])
	p.retired = kept
	if prev == nil {
		return
	}
	for i, a := range prev.accs {
		if pt != nil && pt.t == prev.t && i < len(pt.accs) {
			continue
		}
		a.mu.Lock()
		if a.open != nil && !p.closed.Load() {
			a.sealLocked()
		}
		a.mu.Unlock()
		if a.busy() {
			p.retired = append(p.retired, a)
		}
	}
}

// accumulators returns every accumulator of the producer, retired ones
// included.
func (p *Producer) accumulators() []*accumulator {
	var all []*accumulator
	for _, pt := range *p.topics.Load() {
		all = append(all, pt.accs...)
	}
	p.mu.Lock()
	all = append(all, p.retired...)
	p.mu.Unlock()
	return all
}

// reserve takes n bytes of buffer room, waiting while the buffer is full
// until room frees, ctx ends, MaxBlock passes or the producer closes. A
// callback does not wait: its goroutine may be the one to free room.
// a, the record's partition, is named in errors.
func (p *Producer) reserve(ctx context.Context, n int64, a *accumulator) error {
	if p.buffered.Add(n) <= int64(p.cfg.BufferBytes) {
		return nil // the common case, kept small enough to inline
	}
	return p.reserveSlow(ctx, n, a)
}

// reserveSlow is reserve once the buffer was found full: n bytes are
// given back, then reserved again when room frees.
func (p *Producer) reserveSlow(ctx context.Context, n int64, a *accumulator) error {
	topic, partition := a.topic, a.id
	limit := int64(p.cfg.BufferBytes)
	p.buffered.Add(-n)
	p.roomWaiters.Add(1)
	defer p.roomWaiters.Add(-1)
	ctxDone := ctx.Done()
	inCallback := p.inCallback()
	var maxBlock *time.Timer
	for {
		p.mu.Lock()
		if p.room == nil {
			p.room = make(chan struct{})
		}
		room := p.room
		p.mu.Unlock()
		if p.closed.Load() {
			return p.errClosed()
		}
		if p.buffered.Add(n) <= limit {
			return nil
		}
		p.buffered.Add(-n)
		// The buffer is full: write every batch now rather than let
		// them linger (Kafka does the same when buffer.memory runs out).
		p.sealAll()
		if inCallback {
			return errorf("stream: send to %s-%d: buffer full (ProducerConfig.BufferBytes %v), and a callback cannot wait for room: %w", topic, partition, p.cfg.BufferBytes, ErrBufferFull)
		}
		if maxBlock == nil {
			maxBlock = time.NewTimer(p.cfg.MaxBlock)
			defer maxBlock.Stop()
		}
		select {
		case <-room:
		case <-ctxDone:
			return ctx.Err()
		case <-maxBlock.C:
			return errorf("stream: send to %s-%d: buffer full (ProducerConfig.BufferBytes %v) for ProducerConfig.MaxBlock %v: %w", topic, partition, p.cfg.BufferBytes, p.cfg.MaxBlock, ErrBufferFull)
		}
	}
}

// release returns n bytes of buffer room and wakes the senders waiting
// for it.
func (p *Producer) release(n int64) {
	p.buffered.Add(-n)
	if p.roomWaiters.Load() > 0 {
		p.wakeRoom()
	}
}

func (p *Producer) wakeRoom() {
	p.mu.Lock()
	if p.room != nil {
		close(p.room)
		p.room = nil
	}
	p.mu.Unlock()
}

// wakeWaiters wakes the Flush and Close calls waiting for deliveries.
func (p *Producer) wakeWaiters() {
	if p.flushWaiters.Load() > 0 {
		p.mu.Lock()
		if p.progress != nil {
			close(p.progress)
			p.progress = nil
		}
		p.mu.Unlock()
	}
}

// progressChan returns the channel closed at the next completed batch or
// ended drain goroutine, for a caller counted in flushWaiters.
func (p *Producer) progressChan() chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.progress == nil {
		p.progress = make(chan struct{})
	}
	return p.progress
}

// sealAll seals every partition's open batch, so that it is written
// without lingering.
func (p *Producer) sealAll() {
	for _, a := range p.accumulators() {
		a.mu.Lock()
		if a.open != nil {
			a.sealLocked()
		}
		a.mu.Unlock()
	}
}

// Flush writes every batch at once and waits until each record sent
// before the call is delivered or has failed, and its callback has
// returned; ctx bounds the wait. Records sent during Flush may or may not
// be waited for. It returns ErrClosed after Close, ErrInCallback from one
// of the producer's callbacks, and ctx.Err() if ctx ends first. Kafka:
// KafkaProducer.flush.
func (p *Producer) Flush(ctx context.Context) error {
	if ctx == nil {
		return argError("flush", "nil context")
	}
	if p.closed.Load() {
		return p.errClosed()
	}
	if p.inCallback() {
		return errorf("stream: flush: %w", ErrInCallback)
	}
	return p.flush(ctx)
}

func (p *Producer) flush(ctx context.Context) error {
	type target struct {
		a *accumulator
		n uint64
	}
	var targets []target
	for _, a := range p.accumulators() {
		a.mu.Lock()
		if a.open != nil {
			a.sealLocked()
		}
		n := a.sealed
		a.mu.Unlock()
		if a.completed.Load() < n {
			targets = append(targets, target{a, n})
		}
	}
	if len(targets) == 0 {
		return nil
	}
	p.flushWaiters.Add(1)
	defer p.flushWaiters.Add(-1)
	for _, t := range targets {
		for {
			progress := p.progressChan()
			if t.a.completed.Load() >= t.n {
				break
			}
			select {
			case <-progress:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	}
	return nil
}

// TypedProducer sends Go values, encoding keys and values with codecs,
// as a KafkaProducer<K, V> with its key.serializer and value.serializer.
// It is a thin layer over a Producer, safe for concurrent use; Decode
// reads the values back from records.
//
//	events := stream.NewTypedProducer(p, stream.String, stream.JSON[Event]())
//	r, err := events.Send(ctx, "events", "user-1", Event{Kind: "signup"})
type TypedProducer[K, V any] struct {
	p     *Producer
	key   Codec[K] // nil: records have no key
	value Codec[V]
}

// NewTypedProducer returns a TypedProducer sending through p. A nil key
// codec sends records without a key (Kafka's null key; the key arguments
// are ignored).
func NewTypedProducer[K, V any](p *Producer, key Codec[K], value Codec[V]) *TypedProducer[K, V] {
	return &TypedProducer[K, V]{p: p, key: key, value: value}
}

// Record encodes key and value into a record for topic, to add headers or
// a timestamp before sending it with the Producer. An encoding error
// wraps ErrInvalidConfig, as does a TypedProducer made without a Producer
// or a value codec.
func (tp *TypedProducer[K, V]) Record(topic string, key K, value V) (*Record, error) {
	if tp == nil || tp.p == nil || tp.value == nil {
		return nil, argError("typed producer", "no Producer or no value codec")
	}
	r := &Record{Topic: topic}
	var err error
	if tp.key != nil {
		if r.Key, err = tp.key.Encode(key); err != nil {
			return nil, errorf("stream: encode key for topic %s: %w: %w", topic, ErrInvalidConfig, err)
		}
	}
	if r.Value, err = tp.value.Encode(value); err != nil {
		return nil, errorf("stream: encode value for topic %s: %w: %w", topic, ErrInvalidConfig, err)
	}
	return r, nil
}

// Send encodes key and value and sends them to topic as Producer.Send
// does, returning the record with its Partition, Offset and Timestamp.
func (tp *TypedProducer[K, V]) Send(ctx context.Context, topic string, key K, value V) (*Record, error) {
	r, err := tp.Record(topic, key, value)
	if err != nil {
		return nil, err
	}
	return r, tp.p.Send(ctx, r)
}

// SendAsync encodes key and value and sends them to topic as
// Producer.SendAsync does. An encoding error goes to done (which may be
// nil) before SendAsync returns.
func (tp *TypedProducer[K, V]) SendAsync(topic string, key K, value V, done func(*Record, error)) {
	r, err := tp.Record(topic, key, value)
	if err != nil {
		if done != nil {
			done(&Record{Topic: topic, Offset: -1}, err)
		}
		return
	}
	tp.p.SendAsync(r, done)
}

// Decode returns the key and value of r decoded with the codecs; a nil key
// codec leaves the key zero. It is the reading side of TypedProducer, for
// records from Read, Scan or a consumer.
func Decode[K, V any](r *Record, key Codec[K], value Codec[V]) (K, V, error) {
	var k K
	var v V
	var err error
	if r == nil || value == nil {
		return k, v, argError("decode", "nil record or value codec")
	}
	if key != nil {
		if k, err = key.Decode(r.Key); err != nil {
			return k, v, errorf("stream: decode key of %s-%d at offset %d: %w", r.Topic, r.Partition, r.Offset, err)
		}
	}
	if v, err = value.Decode(r.Value); err != nil {
		return k, v, errorf("stream: decode value of %s-%d at offset %d: %w", r.Topic, r.Partition, r.Offset, err)
	}
	return k, v, nil
}
