package stream

import (
	"context"
	"encoding/binary"
	"errors"
	"math"
	"slices"
	"time"
)

// The fetch protocol between a follower and its partition leader, over
// the messenger (kindFetch, kindEpochEnd), and the follower's fetcher.
//
// A fetch request (all integers big-endian):
//
//	topic        uint16 length, bytes
//	partition    int32
//	leaderEpoch  int32  the epoch the follower follows
//	fetchOffset  int64  its log end: the first offset it wants
//	durableEnd   int64  its durable log end
//	knownHW      int64  the leader's high watermark as it last heard it
//	maxBytes     int32
//	maxWaitMs    int32  how long the leader may wait for something new
//
// Its reply: leaderEpoch int32, highWatermark int64, logStart int64 (the
// leader's log start offset), then raw batches, exactly as they lie in
// the leader's segment, to the end. A fetch below the leader's log start
// (retention deleted those records) gets no batches: the follower sees
// that its log ends below logStart and restarts it there (Kafka's
// OffsetOutOfRange handling, truncateFullyAndStartAt). The logStart
// field joined version 1 before its first release, so no bump.
//
// An epoch-end request (OffsetsForLeaderEpoch): topic, partition,
// leaderEpoch (the follower's current one, fenced like a fetch's), epoch
// (the one asked about). Its reply: epoch int32 (the largest the leader
// knows at most the one asked, -1 when none), endOffset int64.

// fetchReplyHeaderSize is the fixed part of a fetch reply: leader
// epoch, high watermark, log start.
const fetchReplyHeaderSize = 4 + 8 + 8

type fetchRequest struct {
	topic       string
	partition   int32
	epoch       int32
	fetchOffset int64
	durableEnd  int64
	knownHW     int64
	maxBytes    int32
	maxWaitMs   int32
}

func appendPartitionRef(b []byte, topic string, partition int32) []byte {
	b = binary.BigEndian.AppendUint16(b, uint16(len(topic)))
	b = append(b, topic...)
	return binary.BigEndian.AppendUint32(b, uint32(partition))
}

func (f *fetchRequest) encode() []byte {
	b := appendPartitionRef(make([]byte, 0, 2+len(f.topic)+4+4+8*3+4+4), f.topic, f.partition)
	b = binary.BigEndian.AppendUint32(b, uint32(f.epoch))
	b = binary.BigEndian.AppendUint64(b, uint64(f.fetchOffset))
	b = binary.BigEndian.AppendUint64(b, uint64(f.durableEnd))
	b = binary.BigEndian.AppendUint64(b, uint64(f.knownHW))
	b = binary.BigEndian.AppendUint32(b, uint32(f.maxBytes))
	return binary.BigEndian.AppendUint32(b, uint32(f.maxWaitMs))
}

// wireReader decodes fixed-layout payloads; ok turns false at the first
// short read and stays false.
type wireReader struct {
	b  []byte
	ok bool
}

func (r *wireReader) take(n int) []byte {
	if !r.ok || len(r.b) < n {
		r.ok = false
		return make([]byte, n)
	}
	v := r.b[:n]
	r.b = r.b[n:]
	return v
}

func (r *wireReader) i32() int32 { return int32(binary.BigEndian.Uint32(r.take(4))) }
func (r *wireReader) i64() int64 { return int64(binary.BigEndian.Uint64(r.take(8))) }
func (r *wireReader) str() string {
	n := binary.BigEndian.Uint16(r.take(2))
	return string(r.take(int(n)))
}

func (r *wireReader) err(what string) error {
	if !r.ok {
		return errorf("%w: truncated %s", ErrBadRequest, what)
	}
	return nil
}

func decodeFetchRequest(b []byte) (fetchRequest, error) {
	r := wireReader{b: b, ok: true}
	f := fetchRequest{topic: r.str(), partition: r.i32(), epoch: r.i32(), fetchOffset: r.i64(),
		durableEnd: r.i64(), knownHW: r.i64(), maxBytes: r.i32(), maxWaitMs: r.i32()}
	if err := r.err("fetch request"); err != nil {
		return f, err
	}
	if f.fetchOffset < 0 || f.durableEnd < 0 || f.maxBytes < 0 || f.maxWaitMs < 0 {
		return f, errorf("%w: fetch request with negative fields", ErrBadRequest)
	}
	return f, nil
}

// handleFetch serves a follower's fetch: it notes the follower's durable
// end (which may move the high watermark and the ISR), waits for
// something new when there is nothing, and returns raw batches.
func (m *replicaManager) handleFetch(ctx context.Context, e envelope) ([]byte, error) {
	req, err := decodeFetchRequest(e.Payload)
	if err != nil {
		return nil, err
	}
	r := m.replica(req.topic, req.partition)
	if r == nil {
		return nil, errorf("stream: partition %s-%d has no replica on node %d: %w", req.topic, req.partition, m.self, ErrNotLeader)
	}
	changed, err := r.noteFetch(e.From, &req)
	if err != nil {
		return nil, err
	}
	r.maybeAdvanceHW()
	p := r.p
	wait := min(time.Duration(req.maxWaitMs)*time.Millisecond, m.cfg.fetchMaxWait)
	var timer *time.Timer
	for {
		leo, _ := p.logEnds()
		if req.fetchOffset < leo || p.HighWatermark() > req.knownHW || wait <= 0 {
			break
		}
		ch, err := p.hwChanged()
		if err != nil {
			return nil, err
		}
		if leo, _ := p.logEnds(); req.fetchOffset < leo || p.HighWatermark() > req.knownHW {
			break
		}
		if timer == nil {
			timer = time.NewTimer(wait)
			defer timer.Stop()
		}
		select {
		case <-ch:
			continue
		case <-timer.C:
		case <-changed:
		case <-ctx.Done():
		case <-m.ctx.Done():
		}
		break
	}
	// The leader's bound, not only the asker's: a request cannot make it
	// read a whole segment into memory.
	start := p.StartOffset()
	var data []byte
	if req.fetchOffset >= start {
		data, err = p.readRaw(req.fetchOffset, min(int(req.maxBytes), m.cfg.fetchMaxBytes))
		if errors.Is(err, ErrOffsetOutOfRange) && req.fetchOffset < p.StartOffset() {
			err = nil // retention moved the log start meanwhile
		}
		if err != nil {
			return nil, err
		}
	}
	r.mu.Lock()
	epoch := r.a.LeaderEpoch
	r.mu.Unlock()
	out := make([]byte, 0, fetchReplyHeaderSize+len(data))
	out = binary.BigEndian.AppendUint32(out, uint32(epoch))
	out = binary.BigEndian.AppendUint64(out, uint64(p.HighWatermark()))
	out = binary.BigEndian.AppendUint64(out, uint64(p.StartOffset()))
	return append(out, data...), nil
}

// noteFetch checks a fetch against the leadership and records what it
// says of the follower: its durable end and whether it caught up. It
// returns the channel closed at the next metadata change.
func (r *replica) noteFetch(from NodeID, req *fetchRequest) (<-chan struct{}, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	p := r.p
	if !r.leading() {
		return nil, p.errorf("fetch from node %d: the leader is node %d, not this node %d: %w", from, r.a.Leader, r.m.self, ErrNotLeader)
	}
	if req.epoch != r.a.LeaderEpoch {
		return nil, p.errorf("fetch from node %d in leader epoch %d, the leader's is %d: %w", from, req.epoch, r.a.LeaderEpoch, ErrFenced)
	}
	f := r.followers[from]
	if f == nil {
		return nil, p.errorf("fetch from node %d, not a replica of %v: %w", from, r.a.Replicas, ErrBadRequest)
	}
	leo, _ := p.logEnds()
	if req.fetchOffset > leo {
		return nil, p.errorf("fetch from node %d at offset %d past the leader's log end %d: %w", from, req.fetchOffset, leo, ErrOffsetOutOfRange)
	}
	now := time.Now()
	f.end = min(req.durableEnd, req.fetchOffset)
	if req.fetchOffset >= leo {
		f.lastCaughtUp = now
	} else if req.fetchOffset >= f.prevLEO && f.prevFetch.After(f.lastCaughtUp) {
		f.lastCaughtUp = f.prevFetch
	}
	f.prevLEO, f.prevFetch = leo, now
	r.maybeExpandISRLocked(from, f)
	return r.changed, nil
}

// handleEpochEnd answers OffsetsForLeaderEpoch.
func (m *replicaManager) handleEpochEnd(_ context.Context, e envelope) ([]byte, error) {
	rd := wireReader{b: e.Payload, ok: true}
	topic, partition, current, asked := rd.str(), rd.i32(), rd.i32(), rd.i32()
	if err := rd.err("epoch-end request"); err != nil {
		return nil, err
	}
	r := m.replica(topic, partition)
	if r == nil {
		return nil, errorf("stream: partition %s-%d has no replica on node %d: %w", topic, partition, m.self, ErrNotLeader)
	}
	r.mu.Lock()
	leading, leader, epoch := r.leading(), r.a.Leader, r.a.LeaderEpoch
	r.mu.Unlock()
	if !leading {
		return nil, r.p.errorf("epoch end asked by node %d: the leader is node %d, not this node %d: %w", e.From, leader, m.self, ErrNotLeader)
	}
	if current != epoch {
		return nil, r.p.errorf("epoch end asked by node %d in leader epoch %d, the leader's is %d: %w", e.From, current, epoch, ErrFenced)
	}
	_, found, end, err := r.p.endOffsetForEpoch(asked)
	if err != nil {
		return nil, err
	}
	out := binary.BigEndian.AppendUint32(nil, uint32(found))
	return binary.BigEndian.AppendUint64(out, uint64(end)), nil
}

// startFollowingLocked starts the fetcher of leader in epoch. r.mu is
// held.
func (r *replica) startFollowingLocked(leader NodeID, epoch int32) {
	r.m.mu.Lock()
	if r.m.closed {
		r.m.mu.Unlock()
		return
	}
	r.m.wg.Add(1)
	r.m.mu.Unlock()
	ctx, cancel := context.WithCancel(r.m.ctx)
	done := make(chan struct{})
	r.fetchStop, r.fetchDone = cancel, done
	go func() {
		defer r.m.wg.Done()
		defer close(done)
		defer cancel()
		r.follow(ctx, leader, epoch)
	}()
}

// follow is the fetcher: truncate to where this log and the leader's
// agree, then fetch until ctx ends. Errors back off and retry; a log
// that turns out to diverge is truncated again.
func (r *replica) follow(ctx context.Context, leader NodeID, epoch int32) {
	log := r.m.log.With("topic", r.p.topic, "partition", r.p.id, "leader", leader, "epoch", epoch)
	truncated := false
	for ctx.Err() == nil {
		var err error
		if !truncated {
			err = r.truncateToLeader(ctx, leader, epoch)
			truncated = err == nil
		}
		if err == nil {
			err = r.fetchOnce(ctx, leader, epoch)
			if errors.Is(err, errDiverged) || errors.Is(err, ErrOffsetOutOfRange) {
				truncated = false
			}
		}
		if err == nil {
			continue
		}
		if ctx.Err() != nil {
			return
		}
		log.Debug("fetch failed; retrying", "error", err)
		if errors.Is(err, ErrClosed) && r.p.isClosed() {
			return
		}
		t := time.NewTimer(r.m.cfg.retryBackoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// truncateToLeader asks the leader where this log's newest epoch ends in
// its log and truncates there (KIP-101). When the leader does not know
// that epoch, it answers with the largest it knows below (KIP-279): if
// this log has that epoch too, it truncates to the smaller of the two
// ends; if not, it truncates to where its own epochs below that one end
// and asks again about the largest of them, as Kafka does. Never to the
// high watermark there: a restarted replica's is its log start (there is
// no high-watermark checkpoint), and it would cut acknowledged records
// while the controller keeps it in the ISR (RELIABILITY.md, bug 4). With
// no epoch to ask about, or one below every epoch the leader has, it
// truncates to the high watermark, as Kafka does: none of this log's
// epochs is then in the leader's.
func (r *replica) truncateToLeader(ctx context.Context, leader NodeID, epoch int32) error {
	p := r.p
	asked, _, _, err := p.endOffsetForEpoch(math.MaxInt32)
	if err != nil {
		return err
	}
	if asked < 0 {
		return nil // an empty log
	}
	for {
		req := appendPartitionRef(nil, p.topic, p.id)
		req = binary.BigEndian.AppendUint32(req, uint32(epoch))
		req = binary.BigEndian.AppendUint32(req, uint32(asked))
		cctx, cancel := context.WithTimeout(ctx, r.m.cfg.fetchMaxWait+time.Second) // a lost request must not stall the fetcher
		b, err := r.m.msg.call(cctx, leader, kindEpochEnd, req)
		cancel()
		if err != nil {
			return err
		}
		rd := wireReader{b: b, ok: true}
		found, end := rd.i32(), rd.i64()
		if err := rd.err("epoch-end reply"); err != nil {
			return err
		}
		target := end
		switch {
		case found < 0:
			target = p.HighWatermark()
		case found != asked:
			_, own, ownEnd, err := p.endOffsetForEpoch(found)
			if err != nil {
				return err
			}
			switch {
			case own == found:
				target = min(end, ownEnd)
			case own >= 0:
				if err := p.truncateTo(min(end, ownEnd)); err != nil {
					return err
				}
				asked = own
				continue
			default:
				target = min(end, p.HighWatermark())
			}
		}
		return p.truncateTo(target)
	}
}

// fetchOnce fetches once from the leader and appends what it returns.
func (r *replica) fetchOnce(ctx context.Context, leader NodeID, epoch int32) error {
	p := r.p
	leo, durable := p.logEnds()
	req := fetchRequest{topic: p.topic, partition: p.id, epoch: epoch, fetchOffset: leo, durableEnd: durable,
		knownHW: p.HighWatermark(), maxBytes: int32(r.m.cfg.fetchMaxBytes), maxWaitMs: int32(r.m.cfg.fetchMaxWait.Milliseconds())}
	cctx, cancel := context.WithTimeout(ctx, 2*r.m.cfg.fetchMaxWait+time.Second)
	defer cancel()
	b, err := r.m.msg.call(cctx, leader, kindFetch, req.encode())
	if err != nil {
		return err
	}
	rd := wireReader{b: b, ok: true}
	lepoch, hw, start := rd.i32(), rd.i64(), rd.i64()
	if err := rd.err("fetch reply"); err != nil {
		return err
	}
	if lepoch != epoch {
		return p.errorf("fetch reply in leader epoch %d, following %d: %w", lepoch, epoch, ErrFenced)
	}
	if leo < start {
		// What this log needs next is gone from the leader's: start
		// again from the leader's log start.
		r.m.log.Info("follower's log ends below the leader's log start; restarting it there",
			"topic", p.topic, "partition", p.id, "log_end", leo, "leader_log_start", start)
		return p.truncateFullyAndStartAt(start)
	}
	if len(rd.b) > 0 {
		if _, err := p.appendReplicated(slices.Clip(rd.b)); err != nil {
			return err
		}
	}
	p.raiseHW(hw)
	return nil
}
