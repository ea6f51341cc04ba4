package kafkaproto

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/instream/stream"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// maxFetchWait bounds a fetch's long poll whatever the client asks.
const maxFetchWait = 30 * time.Second

// fetch serves the stored batches from each requested offset on, as they
// lie in the segments (Partition.ReadRaw). It long-polls: while fewer
// than MinBytes are ready it waits, up to MaxWaitMillis, for any of the
// partitions' high watermarks to move. Fetch sessions (v7+) are not
// kept: every response is a full one with session ID 0, which Kafka's
// clients take as "sessions off".
func (h *handler) fetch(ctx context.Context, req *kmsg.FetchRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.FetchResponse)
	if req.SessionID != 0 || req.SessionEpoch > 0 {
		resp.ErrorCode = errFetchSessionIDNotFound
		return resp
	}
	wait := min(time.Duration(max(req.MaxWaitMillis, 0))*time.Millisecond, maxFetchWait)
	deadline := time.Now().Add(wait)
	maxBytes := int(req.MaxBytes)
	if req.Version < 3 || maxBytes <= 0 {
		maxBytes = 50 << 20
	}
	for {
		got, failed, parts := h.fetchOnce(req, resp, maxBytes)
		if got >= int(req.MinBytes) || failed || !time.Now().Before(deadline) || len(parts) == 0 {
			return resp
		}
		if !waitAny(ctx, deadline, parts) {
			if ctx.Err() != nil {
				return resp
			}
		}
	}
}

// waiting is a partition a fetch waits on and the offset it wants past.
type waiting struct {
	p      *stream.Partition
	offset int64
}

// waitAny returns true once one of parts has records at or past its
// offset, false at the deadline or when ctx ends.
func waitAny(ctx context.Context, deadline time.Time, parts []waiting) bool {
	ctx, cancel := context.WithDeadline(ctx, deadline)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	woke := make(chan struct{}, len(parts))
	for _, w := range parts {
		wg.Go(func() {
			if w.p.Wait(ctx, w.offset) == nil {
				woke <- struct{}{}
			}
			// Anything else (ctx done, the partition closed) lets the
			// deadline decide.
		})
	}
	select {
	case <-woke:
		return true
	case <-ctx.Done():
		return false
	}
}

// fetchOnce fills resp afresh and returns the bytes of records in it,
// whether a partition failed, and the partitions to wait on.
func (h *handler) fetchOnce(req *kmsg.FetchRequest, resp *kmsg.FetchResponse, maxBytes int) (got int, failed bool, parts []waiting) {
	resp.Topics = resp.Topics[:0]
	for _, rt := range req.Topics {
		out := kmsg.NewFetchResponseTopic()
		out.Topic = rt.Topic
		t, terr := h.srv.s.Topic(rt.Topic)
		for _, rp := range rt.Partitions {
			po := kmsg.NewFetchResponseTopicPartition()
			po.Partition = rp.Partition
			po.HighWatermark, po.LastStableOffset, po.LogStartOffset = -1, -1, -1
			// No records is an empty set, never null: librdkafka rejects
			// a null one ("invalid MessageSetSize -1").
			po.RecordBatches = []byte{}
			var p *stream.Partition
			err := terr
			if err == nil {
				p, err = t.Partition(rp.Partition)
				if err != nil {
					err = stream.ErrUnknownTopic
				}
			}
			if err == nil && h.srv.notLeader(rt.Topic, rp.Partition) {
				err = stream.ErrNotLeader
			}
			if err == nil {
				po.HighWatermark, po.LogStartOffset = p.HighWatermark(), p.StartOffset()
				po.LastStableOffset = po.HighWatermark
				budget := min(int(rp.PartitionMaxBytes), maxBytes-got)
				if budget <= 0 && got > 0 {
					out.Partitions = append(out.Partitions, po)
					continue
				}
				// At least one batch, whatever the budget (KIP-74).
				po.RecordBatches, _, err = p.ReadRaw(rp.FetchOffset, max(budget, 1), po.RecordBatches)
				got += len(po.RecordBatches)
				if err == nil && len(po.RecordBatches) == 0 {
					parts = append(parts, waiting{p, rp.FetchOffset})
				}
			}
			if err != nil {
				failed = true
				po.ErrorCode = errorCode(err)
				if !errors.Is(err, stream.ErrOffsetOutOfRange) && !errors.Is(err, stream.ErrUnknownTopic) && !errors.Is(err, stream.ErrNotLeader) {
					h.srv.log.Warn("kafka fetch failed", "topic", rt.Topic, "partition", rp.Partition, "offset", rp.FetchOffset, "error", err)
				}
			}
			out.Partitions = append(out.Partitions, po)
		}
		resp.Topics = append(resp.Topics, out)
	}
	return got, failed, parts
}

// listOffsets answers the earliest (-2), latest (-1) or first offset at
// or after a timestamp of each partition; a timestamp past every record
// answers offset -1, as Kafka does.
func (h *handler) listOffsets(req *kmsg.ListOffsetsRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.ListOffsetsResponse)
	for _, rt := range req.Topics {
		out := kmsg.NewListOffsetsResponseTopic()
		out.Topic = rt.Topic
		t, terr := h.srv.s.Topic(rt.Topic)
		for _, rp := range rt.Partitions {
			po := kmsg.NewListOffsetsResponseTopicPartition()
			po.Partition = rp.Partition
			po.Timestamp, po.Offset = -1, -1
			err := terr
			var p *stream.Partition
			if err == nil {
				if p, err = t.Partition(rp.Partition); err != nil {
					err = stream.ErrUnknownTopic
				}
			}
			if err == nil && h.srv.notLeader(rt.Topic, rp.Partition) {
				err = stream.ErrNotLeader
			}
			if err == nil {
				po.Offset, po.Timestamp, err = offsetFor(p, rp.Timestamp)
			}
			po.ErrorCode = errorCode(err)
			out.Partitions = append(out.Partitions, po)
		}
		resp.Topics = append(resp.Topics, out)
	}
	return resp
}

// offsetFor resolves one ListOffsets query on p.
func offsetFor(p *stream.Partition, ts int64) (offset, timestamp int64, err error) {
	switch ts {
	case -1:
		return p.HighWatermark(), -1, nil
	case -2:
		return p.StartOffset(), -1, nil
	}
	if ts < 0 {
		return -1, -1, stream.ErrInvalidConfig
	}
	off, err := p.OffsetForTime(time.UnixMilli(ts))
	if err != nil {
		return -1, -1, err
	}
	if off >= p.HighWatermark() {
		return -1, -1, nil
	}
	recs, err := p.Read(off, 1)
	if err != nil || len(recs) == 0 {
		return off, ts, err
	}
	return off, recs[0].Timestamp.UnixMilli(), nil
}
