package stream

import (
	"log/slog"
	"math"
	"os"
)

// Internals for the black-box tests in package stream_test.

// DecodeBatchForTest decodes one RecordBatch v2 at the start of b as a
// read does: header, CRC, then records. It returns the records, the
// batch's size in bytes, and its base and last offsets.
func DecodeBatchForTest(b []byte) (recs []*Record, size int64, base, last int64, err error) {
	if len(b) < batchHeaderSize {
		return nil, 0, 0, 0, errShortRecord
	}
	h, err := parseBatchHeader(b)
	if err != nil {
		return nil, 0, 0, 0, err
	}
	if h.Size() > int64(len(b)) {
		return nil, 0, 0, 0, errShortRecord
	}
	batch := b[:h.Size()]
	if err := checkBatch(batch, &h); err != nil {
		return nil, 0, 0, 0, err
	}
	p := &Partition{topic: "fuzz"}
	recs, _, _, err = p.decodeBatch(batch, &h, h.BaseOffset, h.LastOffset()+1, math.MaxInt, nil)
	return recs, h.Size(), h.BaseOffset, h.LastOffset(), err
}

// OpenPartitionForTest opens the partition in dir (its .log files already
// written) as Open does, recovery included, without a Stream around it.
func OpenPartitionForTest(dir string) (*Partition, error) {
	return openPartition(osFS{}, dir, "fuzz", 0, partitionConfig{
		sync: SyncNever, segmentBytes: 1 << 20, segmentAge: DefaultSegmentAge,
		indexEvery: 256, maxRecordBytes: 1 << 20,
	}, slog.New(slog.DiscardHandler))
}

// ClosePartitionForTest closes a partition from OpenPartitionForTest.
func ClosePartitionForTest(p *Partition) error { return p.close() }

// SetSyncFault makes the fsyncs of p's group commit return what fault
// returns (nil fault: real fsyncs again), to test the sticky error.
func SetSyncFault(p *Partition, fault func() error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.syncFault = fault
}

// SetAppendFault makes every AppendBatch on p that writes a batch return
// what fault returns once the batch is in the log (nil fault: no fault):
// a lost acknowledgement. fault may block, to slow the partition down.
func SetAppendFault(p *Partition, fault func() error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.appendFault = fault
}

// ProducerBuffered returns the buffer room p's undelivered records hold.
func ProducerBuffered(p *Producer) int64 { return p.buffered.Load() }

// Fdatasync is the engine's fdatasync, for the benchmark baseline.
func Fdatasync(f *os.File) error { return fdatasync(f) }

// OpenOnFS opens a Stream whose topic files live on fsys (meta.db and
// the lock stay on the operating system's file system, in dir).
func OpenOnFS(fsys *MemFS, dir string, opts *Options) (*Stream, error) {
	return openFS(fsys, dir, opts)
}
