package stream

import (
	"context"
	"encoding/binary"
	"errors"
	"math"
	"slices"
	"time"
)

// Consumers read anywhere on a cluster. A consumer reads a partition
// from this node's replica when it leads or is in the ISR, never above
// the high watermark this replica knows; otherwise (no replica here, or
// one out of sync) it reads from the leader with kindConsumerFetch
// requests: batches as they lie in the leader's log, below the leader's
// high watermark, decoded here as a local read's would be. The choice is
// made at every read ahead, so a replica that falls out of the ISR, or a
// leader that moves, is followed.
//
// Waiting for new records is a long poll on the leader (up to
// FetchMaxWait) in a goroutine of the consumer, one per remote partition
// at most, whose reply the next read ahead uses; Close cancels and waits
// for them. The synchronous read ahead runs under the consumer's mu, as
// local reads do, so a Position call may wait for one round trip.

type consumerFetchRequest struct {
	topic     string
	partition int32
	topicID   int64
	offset    int64
	maxBytes  int32
	maxWaitMs int32
}

func (r *consumerFetchRequest) encode() []byte {
	b := appendPartitionRef(make([]byte, 0, 32+len(r.topic)), r.topic, r.partition)
	b = binary.BigEndian.AppendUint64(b, uint64(r.topicID))
	b = binary.BigEndian.AppendUint64(b, uint64(r.offset))
	b = binary.BigEndian.AppendUint32(b, uint32(r.maxBytes))
	return binary.BigEndian.AppendUint32(b, uint32(r.maxWaitMs))
}

func decodeConsumerFetchRequest(b []byte) (consumerFetchRequest, error) {
	r := wireReader{b: b, ok: true}
	q := consumerFetchRequest{topic: r.str(), partition: r.i32(), topicID: r.i64(), offset: r.i64(), maxBytes: r.i32(), maxWaitMs: r.i32()}
	if err := r.err("consumer fetch request"); err != nil {
		return q, err
	}
	if len(r.b) != 0 || q.maxBytes < 0 || q.maxWaitMs < 0 {
		return q, errorf("%w: consumer fetch request: max bytes %d, max wait %d, %d trailing bytes", ErrBadRequest, q.maxBytes, q.maxWaitMs, len(r.b))
	}
	return q, nil
}

// handleConsumerFetch serves a consumer's fetch on the partition leader.
func (n *clusterNode) handleConsumerFetch(ctx context.Context, e envelope) ([]byte, error) {
	q, err := decodeConsumerFetchRequest(e.Payload)
	if err != nil {
		return nil, err
	}
	t, err := n.topicAsOf(ctx, q.topic, uint64(q.topicID))
	if err != nil {
		return nil, err
	}
	p, err := t.Partition(q.partition)
	if err != nil {
		return nil, err
	}
	if g := p.gate.Load(); g == nil || g.leader != g.self {
		return nil, p.errorf("consumer fetch on node %d, not the leader: %w", n.cfg.NodeID, ErrNotLeader)
	}
	if q.offset == p.HighWatermark() && q.maxWaitMs > 0 {
		ch, err := p.hwChanged()
		if err != nil {
			return nil, err
		}
		if q.offset == p.HighWatermark() {
			timer := time.NewTimer(time.Duration(q.maxWaitMs) * time.Millisecond)
			select {
			case <-ch:
			case <-timer.C:
			case <-ctx.Done():
			case <-n.stopc:
			}
			timer.Stop()
		}
	}
	start, hw := p.StartOffset(), p.HighWatermark()
	out := binary.BigEndian.AppendUint64(make([]byte, 0, 16), uint64(start))
	out = binary.BigEndian.AppendUint64(out, uint64(hw))
	if q.offset < start || q.offset >= hw {
		return out, nil
	}
	out, _, err = p.ReadRaw(q.offset, int(q.maxBytes), out)
	if err != nil && !errors.Is(err, ErrOffsetOutOfRange) {
		return nil, err
	}
	return out, nil
}

// remoteFetch is a consumer's state for a partition it reads from the
// leader. Guarded by the consumer's mu, except the long poll's fields,
// which its goroutine writes before closing polled and nobody reads
// before.
type remoteFetch struct {
	start, hw int64 // as the leader last said

	polled chan struct{} // nil: no long poll; closed when it returned
	at     int64         // the offset it asked for
	reply  []byte
	err    error
}

// remoteLocked reports whether st's partition is read from its leader,
// and keeps st.remote in step: made when it starts, dropped when this
// node's replica leads or is back in sync.
func (c *Consumer) remoteLocked(st *fetchState) bool {
	n := c.s.cluster
	if n == nil {
		return false
	}
	g := st.p.gate.Load()
	local := g == nil || g.leader == g.self
	if !local {
		pm, _, err := n.cluster.partition(st.p.topic, st.p.id)
		local = err != nil || slices.Contains(pm.ISR, n.cfg.NodeID)
	}
	if local {
		st.remote = nil
		return false
	}
	if st.remote == nil {
		st.remote = &remoteFetch{start: -1, hw: -1}
	}
	return true
}

// hwLocked is the high watermark st reads below: its replica's, or the
// leader's as last heard (-1 before: read to learn it).
func (c *Consumer) hwLocked(st *fetchState) int64 {
	if c.remoteLocked(st) {
		r := st.remote
		r.absorb(st.end)
		if r.hw < 0 {
			return math.MaxInt64
		}
		return r.hw
	}
	return st.p.HighWatermark()
}

// absorb takes in a long poll that has returned: its reply stays for the
// next read ahead if it has records past end; otherwise it is dropped,
// for a new poll to start.
func (r *remoteFetch) absorb(end int64) {
	if r.polled == nil {
		return
	}
	select {
	case <-r.polled:
	default:
		return
	}
	if r.err == nil && len(r.reply) >= 16 {
		r.start, r.hw = int64(binary.BigEndian.Uint64(r.reply)), int64(binary.BigEndian.Uint64(r.reply[8:]))
		if r.at == end && r.hw > end {
			return
		}
	}
	r.polled, r.reply, r.err = nil, nil, nil
}

// hwChangedLocked is st's partition's hwChanged, or, read from the
// leader, a long poll there for records past st.end.
func (c *Consumer) hwChangedLocked(st *fetchState) (<-chan struct{}, error) {
	if !c.remoteLocked(st) {
		return st.p.hwChanged()
	}
	r := st.remote
	if r.absorb(st.end); r.polled != nil {
		return r.polled, nil // in flight, or its reply waits for the next read ahead
	}
	if c.remoteCtx == nil {
		c.remoteCtx, c.remoteStop = context.WithCancel(context.Background())
	}
	ch := make(chan struct{})
	r.polled, r.at, r.reply, r.err = ch, st.end, nil, nil
	req := c.fetchRequest(st, st.end, readAhead, c.cfg.FetchMaxWait)
	leader := leaderOf(st.p)
	ctx := c.remoteCtx
	c.remoteWG.Add(1)
	go func() {
		defer c.remoteWG.Done()
		defer close(ch)
		r.reply, r.err = c.s.cluster.fetchFrom(ctx, leader, req)
		if r.err != nil {
			// The leader is away or moved: wake the Poll after a while,
			// not at once, or it would spin on a dead leader.
			t := time.NewTimer(c.cfg.FetchMaxWait)
			select {
			case <-t.C:
			case <-ctx.Done():
			}
			t.Stop()
		}
	}()
	return ch, nil
}

func (c *Consumer) fetchRequest(st *fetchState, offset int64, maxBytes int, wait time.Duration) *consumerFetchRequest {
	n := c.s.cluster
	n.s.mu.RLock()
	t := n.s.topics[st.p.topic]
	n.s.mu.RUnlock()
	var id uint64
	if t != nil {
		id = t.id
	}
	return &consumerFetchRequest{topic: st.p.topic, partition: st.p.id, topicID: int64(id), offset: offset,
		maxBytes: int32(min(maxBytes, math.MaxInt32)), maxWaitMs: int32(wait.Milliseconds())}
}

// leaderOf returns the leader of p as its replica knows it; 0: none.
func leaderOf(p *Partition) NodeID {
	if g := p.gate.Load(); g != nil {
		return g.leader
	}
	return 0
}

// fetchFrom sends a consumer fetch to leader.
func (n *clusterNode) fetchFrom(ctx context.Context, leader NodeID, q *consumerFetchRequest) ([]byte, error) {
	if leader == 0 {
		return nil, errorf("stream: read %s-%d: no leader known: %w", q.topic, q.partition, ErrNotLeader)
	}
	ctx, cancel := context.WithTimeout(ctx, time.Duration(q.maxWaitMs)*time.Millisecond+n.cfg.RequestTimeout)
	defer cancel()
	return n.msg.call(ctx, leader, kindConsumerFetch, q.encode())
}

// refillRemoteLocked is refillLocked from the leader: the long poll's
// reply if it is for st.end, else a fetch now.
func (c *Consumer) refillRemoteLocked(tp TopicPartition, st *fetchState, n int) error {
	r := st.remote
	var reply []byte
	var err error
	got := false
	if r.absorb(st.end); r.polled != nil {
		select {
		case <-r.polled:
			reply, got = r.reply, true // absorb kept it: records past st.end
			r.polled, r.reply = nil, nil
		default:
		}
	}
	if !got {
		// Bounded well below RequestTimeout: it runs under c.mu.
		ctx, cancel := context.WithTimeout(context.Background(), max(c.cfg.FetchMaxWait, time.Second))
		reply, err = c.s.cluster.fetchFrom(ctx, leaderOf(st.p), c.fetchRequest(st, st.end, n, 0))
		cancel()
	}
	if err != nil {
		if errors.Is(err, ErrNotLeader) || errors.Is(err, ErrUnreachable) || errors.Is(err, ErrTimeout) || errors.Is(err, context.DeadlineExceeded) {
			// Leadership moves or the leader is away: read again later.
			c.log.Debug("consumer fetch from the leader", "topic", tp.Topic, "partition", tp.Partition, "error", oneLine(err))
			r.hw = st.end
			return nil
		}
		return errorf("stream: poll %s-%d from the leader: %w", tp.Topic, tp.Partition, err)
	}
	if len(reply) < 16 {
		return errorf("stream: poll %s-%d from the leader: reply of %d bytes: %w", tp.Topic, tp.Partition, len(reply), ErrBadRequest)
	}
	r.start, r.hw = int64(binary.BigEndian.Uint64(reply)), int64(binary.BigEndian.Uint64(reply[8:]))
	data := reply[16:]
	if st.end < r.start || st.end > r.hw {
		if len(st.buf) > 0 {
			return nil // hand out what is buffered; the next read reports it
		}
		if c.g == nil {
			return errorf("stream: poll %s-%d at position %d outside [%d, %d]: %w", tp.Topic, tp.Partition, st.pos, r.start, r.hw, ErrOffsetOutOfRange)
		}
		to := r.hw
		if c.g.cfg.StartAt == StartEarliest || st.end < r.start {
			to = r.start
		}
		c.log.Warn("position outside the leader's log; resetting", "topic", tp.Topic, "partition", tp.Partition,
			"position", st.end, "start", r.start, "high_watermark", r.hw, "offset", to)
		st.seek(to)
		return nil
	}
	before := len(st.buf)
	next := st.end
	for len(data) > 0 {
		if len(data) < batchHeaderSize {
			return errorf("stream: poll %s-%d from the leader: %d bytes of a batch header: %w", tp.Topic, tp.Partition, len(data), ErrCorrupt)
		}
		h, err := parseBatchHeader(data[:batchHeaderSize])
		if err != nil || h.Size() > int64(len(data)) {
			return errorf("stream: poll %s-%d from the leader: batch header: %v: %w", tp.Topic, tp.Partition, err, ErrCorrupt)
		}
		batch := data[:h.Size()]
		data = data[h.Size():]
		if err := checkBatch(batch, &h); err != nil {
			return errorf("stream: poll %s-%d from the leader: %v: %w", tp.Topic, tp.Partition, err, ErrCorrupt)
		}
		if h.LastOffset() < next {
			continue
		}
		st.buf, _, _, err = st.p.decodeBatchInto(batch, &h, next, r.hw, math.MaxInt, st.buf, &st.slab)
		if err != nil {
			return errorf("stream: poll %s-%d from the leader: %v: %w", tp.Topic, tp.Partition, err, ErrCorrupt)
		}
		next = min(h.LastOffset()+1, r.hw)
	}
	st.end = next
	st.back = st.buf[:0]
	for _, rec := range st.buf[before:] {
		st.bufBytes += recordBytes(rec)
	}
	if len(st.buf) == 0 {
		st.pos = st.end
	}
	return nil
}

// bounds returns p's log start and high watermark where this node reads
// it: its replica, or its leader (falling back to the replica's when the
// leader does not answer).
func (s *Stream) bounds(p *Partition) (start, hw int64) {
	if start, hw, ok := s.remoteBounds(p); ok {
		return start, hw
	}
	return p.StartOffset(), p.HighWatermark()
}

// remoteBounds returns the log start and high watermark of p as its
// leader has them, when this node reads p from the leader.
func (s *Stream) remoteBounds(p *Partition) (start, hw int64, ok bool) {
	n := s.cluster
	if n == nil {
		return 0, 0, false
	}
	c := &Consumer{s: s}
	st := &fetchState{p: p}
	if !c.remoteLocked(st) {
		return 0, 0, false
	}
	ctx, cancel := context.WithTimeout(context.Background(), n.cfg.RequestTimeout)
	defer cancel()
	reply, err := n.fetchFrom(ctx, leaderOf(p), c.fetchRequest(st, 0, 0, 0))
	if err != nil || len(reply) < 16 {
		return 0, 0, false
	}
	return int64(binary.BigEndian.Uint64(reply)), int64(binary.BigEndian.Uint64(reply[8:])), true
}
