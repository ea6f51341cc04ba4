package stream

import "fmt"

// Compression is a batch compression codec, with Kafka's codes (the low
// three bits of a RecordBatch's attributes).
type Compression int8

// Kafka's compression.type values.
const (
	CompressNone   Compression = 0
	CompressGzip   Compression = 1
	CompressSnappy Compression = 2
	CompressLZ4    Compression = 3
	CompressZstd   Compression = 4
)

func (c Compression) String() string {
	switch c {
	case CompressNone:
		return "none"
	case CompressGzip:
		return "gzip"
	case CompressSnappy:
		return "snappy"
	case CompressLZ4:
		return "lz4"
	case CompressZstd:
		return "zstd"
	}
	return fmt.Sprintf("Compression(%d)", int8(c))
}

// decompress returns the decoded records section of a batch compressed
// with c, appended to dst.
func decompress(c Compression, dst, src []byte) ([]byte, error) {
	return nil, fmt.Errorf("compression %v is not supported", c)
}
