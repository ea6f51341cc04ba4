package kafkaproto

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"

	"github.com/instream/stream"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// produce appends each partition's RecordBatch as the client sent it
// (Partition.AppendRaw), the partitions of one request concurrently so
// they share the group commit. acks=0 gets no response, and a failure
// closes the connection, as Kafka does, so the producer notices; acks=1
// and -1 are both answered once the Stream acknowledges the append under
// its sync policy (fsynced under SyncAlways: stronger than Kafka's
// acks=1).
func (h *handler) produce(_ context.Context, req *kmsg.ProduceRequest) (kmsg.Response, error) {
	resp := req.ResponseKind().(*kmsg.ProduceResponse)
	var wg sync.WaitGroup
	for _, rt := range req.Topics {
		out := kmsg.NewProduceResponseTopic()
		out.Topic = rt.Topic
		out.Partitions = make([]kmsg.ProduceResponseTopicPartition, len(rt.Partitions))
		// A produce never creates a topic: Kafka's producers learn of
		// a missing one (and may create it) through Metadata.
		t, terr := h.srv.s.Topic(rt.Topic)
		for i, rp := range rt.Partitions {
			po := &out.Partitions[i]
			po.Default()
			po.Partition = rp.Partition
			po.BaseOffset = -1
			if req.TransactionID != nil {
				po.ErrorCode = errInvalidRequest
				po.ErrorMessage = kmsg.StringPtr("transactions are not supported")
				continue
			}
			if terr != nil {
				po.ErrorCode, po.ErrorMessage = errorCode(terr), errorMessage(terr)
				continue
			}
			p, err := t.Partition(rp.Partition)
			if err != nil {
				po.ErrorCode, po.ErrorMessage = errUnknownTopicOrPartition, errorMessage(err)
				continue
			}
			records := rp.Records
			wg.Go(func() { h.appendTo(p, records, po) })
		}
		resp.Topics = append(resp.Topics, out)
	}
	wg.Wait()
	if req.Acks == 0 {
		for _, rt := range resp.Topics {
			for _, rp := range rt.Partitions {
				if rp.ErrorCode != 0 {
					h.conn.log.Info("kafka produce with acks=0 failed; closing the connection, as Kafka does", "topic", rt.Topic, "partition", rp.Partition, "error_code", rp.ErrorCode)
					return nil, errDisconnect
				}
			}
		}
		return nil, nil
	}
	return resp, nil
}

// appendTo appends the one RecordBatch v2 of records to p (Kafka's
// producers send exactly one per partition) and fills po.
func (h *handler) appendTo(p *stream.Partition, records []byte, po *kmsg.ProduceResponseTopicPartition) {
	var err error
	switch {
	case len(records) < 17:
		err = fmt.Errorf("%d bytes of records is not a RecordBatch: %w", len(records), stream.ErrCorrupt)
	case records[16] != 2:
		err = fmt.Errorf("message format v%d: only RecordBatch v2 (magic 2) is supported: %w", records[16], stream.ErrCorrupt)
	case int64(binary.BigEndian.Uint32(records[8:]))+12 != int64(len(records)):
		err = fmt.Errorf("a produce request must hold exactly one record batch per partition: %w", stream.ErrCorrupt)
	}
	if err == nil {
		po.BaseOffset, err = p.AppendRaw(records)
	}
	if err != nil {
		po.BaseOffset = -1
		po.ErrorCode, po.ErrorMessage = errorCode(err), errorMessage(err)
		if errors.Is(err, stream.ErrInvalidConfig) || errors.Is(err, stream.ErrCorrupt) {
			po.ErrorCode = errInvalidRecord
			if errors.Is(err, stream.ErrCorrupt) {
				po.ErrorCode = errCorruptMessage
			}
		}
		if po.ErrorCode != errOutOfOrderSequence && po.ErrorCode != errInvalidProducerEpoch {
			h.srv.log.Info("kafka produce refused", "topic", p.Topic(), "partition", p.ID(), "client", h.clientID, "error", err)
		}
	}
	po.LogStartOffset = p.StartOffset()
}
