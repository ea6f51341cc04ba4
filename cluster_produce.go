package stream

import (
	"context"
	"encoding/binary"
	"errors"
	"time"
)

// Producers on any node of a cluster: a batch for a partition this node
// does not lead goes to the leader as a kindProduce request, which the
// leader appends as its own producer's batch would be (the gate, the
// idempotence check, AcksAll). An ErrNotLeader back (leadership moved
// meanwhile) is retriable, so the producer's DeliveryTimeout loop tries
// again, by then towards the new leader; idempotence keeps a batch that
// reached a leader before its reply was lost from being written twice.

// produceBatch appends b to p, or, on a cluster, to p's leader.
func (s *Stream) produceBatch(p *Partition, b *Batch) (int64, error) {
	n := s.cluster
	if n == nil || b.err != nil || b.Len() == 0 {
		return p.AppendBatch(b)
	}
	g := p.gate.Load()
	if g == nil || g.leader == g.self || g.leader == 0 {
		return p.AppendBatch(b)
	}
	return n.forward(g.leader, p, b)
}

// produceRequest is a forwarded batch: its records as the producer's
// Batch holds them (uncompressed, offset and timestamp deltas from
// baseTime), with the producer's identity.
type produceRequest struct {
	topic       string
	partition   int32
	topicID     int64
	producerID  int64
	epoch       int32 // int16 on the wire of the log
	baseSeq     int32
	compression int32
	baseTime    int64
	count       int32
	records     []byte
}

func (r *produceRequest) encode() []byte {
	b := appendPartitionRef(make([]byte, 0, 64+len(r.topic)+len(r.records)), r.topic, r.partition)
	b = binary.BigEndian.AppendUint64(b, uint64(r.topicID))
	b = binary.BigEndian.AppendUint64(b, uint64(r.producerID))
	b = binary.BigEndian.AppendUint32(b, uint32(r.epoch))
	b = binary.BigEndian.AppendUint32(b, uint32(r.baseSeq))
	b = binary.BigEndian.AppendUint32(b, uint32(r.compression))
	b = binary.BigEndian.AppendUint64(b, uint64(r.baseTime))
	b = binary.BigEndian.AppendUint32(b, uint32(r.count))
	return append(b, r.records...)
}

func decodeProduceRequest(b []byte) (produceRequest, error) {
	r := wireReader{b: b, ok: true}
	q := produceRequest{topic: r.str(), partition: r.i32(), topicID: r.i64(), producerID: r.i64(),
		epoch: r.i32(), baseSeq: r.i32(), compression: r.i32(), baseTime: r.i64(), count: r.i32()}
	if err := r.err("produce request"); err != nil {
		return q, err
	}
	q.records = r.b
	if q.count <= 0 || q.compression < int32(CompressNone) || q.compression > int32(CompressZstd) ||
		q.epoch < -1 || q.epoch > 1<<15-1 {
		return q, errorf("%w: produce request with %d records, compression %d, producer epoch %d", ErrBadRequest, q.count, q.compression, q.epoch)
	}
	return q, nil
}

// forward sends b to leader and returns the base offset it got there.
func (n *clusterNode) forward(leader NodeID, p *Partition, b *Batch) (int64, error) {
	n.s.mu.RLock()
	t := n.s.topics[p.topic]
	n.s.mu.RUnlock()
	var id uint64
	if t != nil {
		id = t.id
	}
	req := produceRequest{topic: p.topic, partition: p.id, topicID: int64(id),
		producerID: b.producerID, epoch: int32(b.producerEpoch), baseSeq: b.baseSequence,
		compression: int32(b.compression), baseTime: b.baseTime, count: int32(b.count),
		records: b.buf[batchHeaderSize:]}
	ctx, cancel := context.WithTimeout(context.Background(), n.cfg.RequestTimeout)
	defer cancel()
	reply, err := n.msg.call(ctx, leader, kindProduce, req.encode())
	if errors.Is(err, ErrClosed) {
		// The leader's node (or its partition) is closing: its
		// partitions move to other nodes, so the producer looks the
		// leader up again and retries (idempotence keeps a batch the
		// closing leader did append from being appended twice). Not
		// ErrClosed, which tells a producer that it is closed itself.
		return -1, p.errorf("forward to leader node %d: %w (%v)", leader, ErrNotLeader, err)
	}
	if err != nil {
		return -1, p.errorf("forward to leader node %d: %w", leader, err)
	}
	if len(reply) != 8 {
		return -1, p.errorf("forward to leader node %d: reply of %d bytes: %w", leader, len(reply), ErrBadRequest)
	}
	return int64(binary.BigEndian.Uint64(reply)), nil
}

// handleProduce appends a batch forwarded by another node's producer to
// the local replica, which must lead; the reply is the base offset.
func (n *clusterNode) handleProduce(ctx context.Context, e envelope) ([]byte, error) {
	q, err := decodeProduceRequest(e.Payload)
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
	// Rebuild the batch record by record: a malformed one is refused
	// here, never written.
	var b Batch
	d := recordDecoder{b: q.records}
	var r Record
	for i := int32(0); i < q.count; i++ {
		if !d.next(&r, q.baseTime) {
			if d.err == nil {
				d.err = errShortRecord
			}
			return nil, errorf("%w: produce request for %s-%d: record %d: %v", ErrBadRequest, q.topic, q.partition, i, d.err)
		}
		if int64(i) != r.Offset {
			return nil, errorf("%w: produce request for %s-%d: record %d has offset delta %d", ErrBadRequest, q.topic, q.partition, i, r.Offset)
		}
		if r.Timestamp.IsZero() {
			r.Timestamp = time.UnixMilli(0)
		}
		b.AddRecord(&r)
	}
	if err := d.end(); err != nil {
		return nil, errorf("%w: produce request for %s-%d: %v", ErrBadRequest, q.topic, q.partition, err)
	}
	b.compression = Compression(q.compression)
	if q.producerID >= 0 {
		b.setProducer(q.producerID, int16(q.epoch), q.baseSeq)
	}
	base, err := p.AppendBatch(&b)
	if err != nil {
		return nil, err
	}
	return binary.BigEndian.AppendUint64(nil, uint64(base)), nil
}

// topicAsOf returns the local topic name whose cluster ID is at least
// id. The sender may have applied a topic's creation before this node
// (both follow the same metadata log, each at its own pace): then it
// waits for this node to catch up, a SessionTimeout at most, and fails
// with ErrNotLeader, which producers retry. A sender's older topic of
// that name fails with ErrUnknownTopic.
func (n *clusterNode) topicAsOf(ctx context.Context, name string, id uint64) (*Topic, error) {
	var t *Topic
	have := func() bool {
		n.s.mu.RLock()
		t = n.s.topics[name]
		n.s.mu.RUnlock()
		return t != nil && t.id >= id
	}
	if !have() && id == 0 {
		return nil, errorf("stream: topic %s: %w", name, ErrUnknownTopic)
	}
	if !have() {
		ctx, cancel := context.WithTimeout(ctx, n.cfg.SessionTimeout)
		defer cancel()
		if n.waitFor(ctx, "produce to "+name, have) != nil {
			return nil, errorf("stream: topic %s (ID %d) not applied on node %d yet: %w", name, id, n.cfg.NodeID, ErrNotLeader)
		}
	}
	if id != 0 && t.id != id {
		return nil, errorf("stream: topic %s: the sender's is an older topic of that name: %w", name, ErrUnknownTopic)
	}
	return t, nil
}

// clusterProducerID makes a producer ID allocated from this node's
// meta.db unique across the cluster: the node ID goes in its low 31
// bits, so two nodes never hand out the same one.
func (s *Stream) clusterProducerID(local uint64) int64 {
	if s.cluster == nil {
		return int64(local)
	}
	return int64(local)<<31 | int64(s.cluster.cfg.NodeID)
}
