package benchmarks_test

// Kafka logs read by stream: batches encoded by franz-go's kmsg (and
// compressed by kgo's compressor), as a Kafka broker's partition
// directory holds them, written as segment files and read back with
// stream.Open and Partition.Read.

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/instream/stream"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// kafkaBatch encodes a RecordBatch v2 with kmsg: records numbered from
// offset delta 0, compressed with kgo's compressor when codec is set,
// the length and CRC computed as a Kafka producer does.
func kafkaBatch(t *testing.T, b kmsg.RecordBatch, recs []kmsg.Record, codec kgo.CompressionCodec) []byte {
	t.Helper()
	var body []byte
	for i := range recs {
		r := &recs[i]
		r.OffsetDelta = int32(i)
		r.Length = 0
		r.Length = int32(len(r.AppendTo(nil)) - 1) // the bytes after a one-byte length
		body = r.AppendTo(body)
		b.MaxTimestamp = max(b.MaxTimestamp, b.FirstTimestamp+r.TimestampDelta64)
	}
	if comp, err := kgo.DefaultCompressor(codec); err != nil {
		t.Fatal(err)
	} else if comp != nil {
		z, used := comp.Compress(new(bytes.Buffer), body)
		if used == kgo.CodecNone || used == kgo.CodecError {
			t.Fatalf("kgo did not compress (codec %d)", used)
		}
		body = bytes.Clone(z)
		b.Attributes |= int16(used)
	}
	b.Magic = 2
	b.Records = body
	b.NumRecords = int32(len(recs))
	b.LastOffsetDelta = int32(len(recs) - 1)
	b.Length = 0
	raw := b.AppendTo(nil)
	binary.BigEndian.PutUint32(raw[8:], uint32(len(raw)-12))
	binary.BigEndian.PutUint32(raw[17:], crc32.Checksum(raw[21:], castagnoli))
	return raw
}

func kafkaRecord(key, value []byte, tsDelta int64, headers ...kmsg.Header) kmsg.Record {
	return kmsg.Record{Key: key, Value: value, TimestampDelta64: tsDelta, TimestampDelta: int32(tsDelta), Headers: headers}
}

// writeKafkaLog makes a Stream directory with a one-partition topic "t"
// whose partition directory holds only the given segment files, batches
// by base offset: no indexes, no recovery point, as if copied from a
// Kafka broker. It returns the directory.
func writeKafkaLog(t *testing.T, segments map[int64][][]byte) string {
	t.Helper()
	dir := t.TempDir()
	s, err := stream.Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	topic, err := s.CreateTopic("t", stream.TopicConfig{Partitions: 1, Retention: -1})
	if err != nil {
		t.Fatal(err)
	}
	p, _ := topic.Partition(0)
	pdir := p.Dir()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(pdir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if err := os.Remove(filepath.Join(pdir, e.Name())); err != nil {
			t.Fatal(err)
		}
	}
	for base, batches := range segments {
		name := filepath.Join(pdir, fmt.Sprintf("%020d.log", base))
		if err := os.WriteFile(name, bytes.Join(batches, nil), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// openKafkaLog opens what writeKafkaLog made and returns its partition.
func openKafkaLog(t *testing.T, segments map[int64][][]byte) (*stream.Stream, *stream.Partition, string) {
	t.Helper()
	dir := writeKafkaLog(t, segments)
	s, err := stream.Open(dir, nil)
	if err != nil {
		t.Fatalf("Open of a Kafka log: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	topic, err := s.Topic("t")
	if err != nil {
		t.Fatal(err)
	}
	p, err := topic.Partition(0)
	if err != nil {
		t.Fatal(err)
	}
	return s, p, dir
}

// kafkaLog builds the batches of a Kafka log from offset base on: plain
// and idempotent batches, each codec, a large record, a leader epoch
// other than 0; and the records Kafka's consumer would return.
func kafkaLog(t *testing.T, base int64) ([][]byte, []wantRecord) {
	t0 := int64(1_700_000_000_000)
	var batches [][]byte
	var wants []wantRecord
	add := func(h kmsg.RecordBatch, codec kgo.CompressionCodec, recs ...kmsg.Record) {
		h.FirstOffset = base
		h.FirstTimestamp = t0
		h.PartitionLeaderEpoch = 7
		if h.ProducerID == 0 {
			h.ProducerID, h.ProducerEpoch, h.FirstSequence = -1, -1, -1
		}
		raw := kafkaBatch(t, h, recs, codec)
		batches = append(batches, raw)
		for i, r := range recs {
			w := wantRecord{offset: base + int64(i), key: r.Key, value: r.Value, tsMin: t0 + r.TimestampDelta64, tsMax: t0 + r.TimestampDelta64}
			for _, h := range r.Headers {
				w.headers = append(w.headers, stream.Header{Key: h.Key, Value: h.Value})
			}
			wants = append(wants, w)
		}
		base += int64(len(recs))
		t0 += 1000
	}
	none := kgo.NoCompression()
	add(kmsg.RecordBatch{}, none,
		kafkaRecord(nil, []byte("null key"), 0),
		kafkaRecord([]byte{}, []byte{}, 5, kmsg.Header{Key: "h", Value: []byte("x")}, kmsg.Header{Key: "null", Value: nil}, kmsg.Header{Key: "", Value: []byte{}}),
		kafkaRecord([]byte("tombstone"), nil, -2500),
	)
	seq := int32(0)
	idem := func() kmsg.RecordBatch {
		return kmsg.RecordBatch{ProducerID: 42, ProducerEpoch: 3, FirstSequence: seq}
	}
	add(idem(), none, kafkaRecord([]byte("k"), []byte("idempotent 0"), 0), kafkaRecord([]byte("k"), []byte("idempotent 1"), 1))
	seq += 2
	for _, codec := range []kgo.CompressionCodec{kgo.GzipCompression(), kgo.SnappyCompression(), kgo.Lz4Compression(), kgo.ZstdCompression()} {
		var recs []kmsg.Record
		for i := range 50 {
			recs = append(recs, kafkaRecord(fmt.Appendf(nil, "key-%d", i), []byte(strings.Repeat("kafka compressed value ", 1+i%5)), int64(i)))
		}
		add(idem(), codec, recs...)
		seq += 50
	}
	var many []kmsg.Header
	for i := range 70 {
		many = append(many, kmsg.Header{Key: fmt.Sprintf("h%d", i), Value: []byte{byte(i)}})
	}
	add(kmsg.RecordBatch{}, none, kafkaRecord(bytes.Repeat([]byte("K"), 300), bytes.Repeat([]byte("V"), 20_000), 3, many...))
	return batches, wants
}

// TestKafkaLogReadByStream writes batches encoded by franz-go as segment
// files, as a Kafka broker's partition directory holds them, and reads
// them back with stream.
func TestKafkaLogReadByStream(t *testing.T) {
	t.Run("one segment from offset 0", func(t *testing.T) {
		batches, wants := kafkaLog(t, 0)
		_, p, _ := openKafkaLog(t, map[int64][][]byte{0: batches})
		expectRecords(t, "stream Partition.Read", streamRecords(readAll(t, p)), wants)
	})
	t.Run("two segments from offset 1000", func(t *testing.T) {
		// What retention leaves of a Kafka log: the first segment
		// starts past 0. The second segment is the active one.
		first, wants := kafkaLog(t, 1000)
		next := wants[len(wants)-1].offset + 1
		second, more := kafkaLog(t, next)
		s, p, dir := openKafkaLog(t, map[int64][][]byte{1000: first, next: second})
		if p.StartOffset() != 1000 {
			t.Errorf("StartOffset %d, want 1000", p.StartOffset())
		}
		expectRecords(t, "stream Partition.Read", streamRecords(readAll(t, p)), append(wants, more...))
		// Appends continue the log in Kafka's format.
		r := &stream.Record{Key: []byte("after"), Value: []byte("appended by stream")}
		if _, err := p.Append(r); err != nil {
			t.Fatal(err)
		}
		if r.Offset != more[len(more)-1].offset+1 {
			t.Errorf("append after the Kafka log got offset %d", r.Offset)
		}
		pdir := p.Dir()
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		problems, err := stream.Verify(dir)
		if err != nil || len(problems) > 0 {
			t.Errorf("Verify: %v %v", problems, err)
		}
		all := append(append(wants, more...), want(r))
		expectRecords(t, "kmsg decoding the segment files", kafkaRecords(readSegments(t, pdir)), all)
	})
}

// TestKafkaLogFeatures covers batch kinds a Kafka broker writes that
// stream's own writers never do, with what Kafka's consumer returns.
func TestKafkaLogFeatures(t *testing.T) {
	t0 := int64(1_700_000_000_000)
	t.Run("transaction with commit marker", func(t *testing.T) {
		// A transactional batch, then the broker's control batch
		// committing it: one control record, key (version 0, type 1 =
		// commit), value (version 0, coordinator epoch).
		data := kafkaBatch(t, kmsg.RecordBatch{FirstOffset: 0, FirstTimestamp: t0, Attributes: attrTransactional,
			ProducerID: 9, ProducerEpoch: 0, FirstSequence: 0},
			[]kmsg.Record{kafkaRecord([]byte("k"), []byte("in txn 0"), 0), kafkaRecord([]byte("k"), []byte("in txn 1"), 1)}, kgo.NoCompression())
		marker := kafkaBatch(t, kmsg.RecordBatch{FirstOffset: 2, FirstTimestamp: t0 + 10, Attributes: attrTransactional | attrControl,
			ProducerID: 9, ProducerEpoch: 0, FirstSequence: -1},
			[]kmsg.Record{kafkaRecord([]byte{0, 0, 0, 1}, []byte{0, 0, 0, 0, 0, 0}, 0)}, kgo.NoCompression())
		after := kafkaBatch(t, kmsg.RecordBatch{FirstOffset: 3, FirstTimestamp: t0 + 20, ProducerID: -1, ProducerEpoch: -1, FirstSequence: -1},
			[]kmsg.Record{kafkaRecord(nil, []byte("after the marker"), 0)}, kgo.NoCompression())
		_, p, _ := openKafkaLog(t, map[int64][][]byte{0: {data, marker, after}})
		if p.HighWatermark() != 4 {
			t.Errorf("high watermark %d, want 4", p.HighWatermark())
		}
		expectRecords(t, "stream Partition.Read", streamRecords(readAll(t, p)), []wantRecord{
			{offset: 0, key: []byte("k"), value: []byte("in txn 0"), tsMin: t0, tsMax: t0},
			{offset: 1, key: []byte("k"), value: []byte("in txn 1"), tsMin: t0 + 1, tsMax: t0 + 1},
			{offset: 3, key: nil, value: []byte("after the marker"), tsMin: t0 + 20, tsMax: t0 + 20},
		})
	})
	t.Run("LogAppendTime", func(t *testing.T) {
		// A topic with message.timestamp.type=LogAppendTime: the broker
		// sets the attribute and maxTimestamp to its clock, and every
		// record's timestamp reads as maxTimestamp.
		raw := kafkaBatch(t, kmsg.RecordBatch{FirstTimestamp: t0, ProducerID: -1, ProducerEpoch: -1, FirstSequence: -1},
			[]kmsg.Record{kafkaRecord(nil, []byte("a"), 0), kafkaRecord(nil, []byte("b"), 7)}, kgo.NoCompression())
		appended := t0 + 60_000
		raw[21+1] |= attrLogAppendTime // attributes, low byte
		binary.BigEndian.PutUint64(raw[35:], uint64(appended))
		binary.BigEndian.PutUint32(raw[17:], crc32.Checksum(raw[21:], castagnoli))
		decodeBatch(t, "LogAppendTime batch", raw) // the batch itself is well formed
		_, p, _ := openKafkaLog(t, map[int64][][]byte{0: {raw}})
		expectRecords(t, "stream Partition.Read", streamRecords(readAll(t, p)), []wantRecord{
			{offset: 0, value: []byte("a"), tsMin: appended, tsMax: appended},
			{offset: 1, value: []byte("b"), tsMin: appended, tsMax: appended},
		})
	})
	t.Run("compacted batch", func(t *testing.T) {
		// Log compaction leaves batches with offset gaps. stream's
		// offsets are contiguous (no compaction), so such a batch is
		// reported as corrupt, never read at wrong offsets.
		recs := []kmsg.Record{kafkaRecord([]byte("a"), []byte("kept"), 0), kafkaRecord([]byte("c"), []byte("kept"), 2)}
		raw := kafkaBatch(t, kmsg.RecordBatch{FirstTimestamp: t0, ProducerID: -1, ProducerEpoch: -1, FirstSequence: -1}, recs, kgo.NoCompression())
		var b kmsg.RecordBatch
		if err := b.ReadFrom(raw); err != nil {
			t.Fatal(err)
		}
		// Offsets 0 and 2 survive compaction: lastOffsetDelta 2, two records.
		var body []byte
		for i, d := range []int32{0, 2} {
			recs[i].OffsetDelta = d
			body = recs[i].AppendTo(body)
		}
		b.Records, b.LastOffsetDelta = body, 2
		raw = b.AppendTo(nil)
		binary.BigEndian.PutUint32(raw[17:], crc32.Checksum(raw[21:], castagnoli))
		s, err := stream.Open(writeKafkaLog(t, map[int64][][]byte{0: {raw}}), nil)
		if err != nil {
			if !errors.Is(err, stream.ErrCorrupt) {
				t.Fatalf("Open: %v, want nil or ErrCorrupt", err)
			}
			return
		}
		defer s.Close()
		topic, _ := s.Topic("t")
		p, _ := topic.Partition(0)
		recsRead, err := p.Read(0, 1<<20)
		if !errors.Is(err, stream.ErrCorrupt) {
			t.Errorf("Read of a compacted batch: %d records, %v; want ErrCorrupt", len(recsRead), err)
		}
	})
}
