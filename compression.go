package stream

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"strings"
	"sync"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
)

// This file holds the codecs of a RecordBatch's records section. A
// compressed batch keeps its 61-byte header in the clear and replaces the
// records that follow it with one compressed blob, in the formats Kafka's
// Java client writes and reads:
//
//	gzip    a gzip stream (RFC 1952); concatenated members are accepted
//	snappy  xerial framing: "\x82SNAPPY\x00", version 1 and minimum
//	        compatible version 1 (big-endian int32s), then blocks of at most
//	        32 KiB, each a big-endian uint32 length and a raw snappy block.
//	        Readers also accept one raw snappy block, as librdkafka writes.
//	lz4     an LZ4 frame (the frame format, not Kafka 0.8's broken one)
//	zstd    one or more zstd frames
//
// Codec state is costly to build (a zstd encoder holds its tables and
// window), so encoders and decoders are made once and reused: gzip and lz4
// writers and readers through sync.Pools, zstd through one shared Encoder
// and Decoder, whose EncodeAll and DecodeAll are safe for concurrent use
// and keep their own internal pool. These caches hold no goroutines and no
// user data between calls.

// Compression is a batch compression codec, with Kafka's codes (the low
// three bits of a RecordBatch's attributes). It mirrors the producer
// setting compression.type; its zero value, CompressNone, stores records
// as they are. Its text form is Kafka's name for the codec ("none",
// "gzip", "snappy", "lz4", "zstd"), so it reads straight from JSON, YAML,
// flags or environment variables.
type Compression int8

// Kafka's compression.type values, with the codes Kafka stores in a
// batch's attributes.
const (
	CompressNone   Compression = 0 // compression.type=none
	CompressGzip   Compression = 1 // compression.type=gzip
	CompressSnappy Compression = 2 // compression.type=snappy (xerial-framed)
	CompressLZ4    Compression = 3 // compression.type=lz4 (LZ4 frame)
	CompressZstd   Compression = 4 // compression.type=zstd
)

// String returns Kafka's name for the codec ("none", "gzip", "snappy",
// "lz4", "zstd"), or "Compression(n)" for a code Kafka does not define.
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

// MarshalText returns Kafka's compression.type name for c. A code Kafka
// does not define is an error wrapping ErrInvalidConfig.
func (c Compression) MarshalText() ([]byte, error) {
	if !c.valid() {
		return nil, errorf("stream: compression code %d: %w", int8(c), ErrInvalidConfig)
	}
	return []byte(c.String()), nil
}

// UnmarshalText sets c from a compression.type name: "none", "gzip",
// "snappy", "lz4" or "zstd", in any case. Empty text means none, the
// zero value. Any other name is an error wrapping ErrInvalidConfig and
// leaves c unchanged.
func (c *Compression) UnmarshalText(text []byte) error {
	s := string(text)
	if s == "" {
		*c = CompressNone
		return nil
	}
	for v := CompressNone; v <= CompressZstd; v++ {
		if strings.EqualFold(s, v.String()) {
			*c = v
			return nil
		}
	}
	return errorf("stream: compression %q (want none, gzip, snappy, lz4 or zstd): %w", s, ErrInvalidConfig)
}

func (c Compression) valid() bool { return c >= CompressNone && c <= CompressZstd }

// maxDecompressedSize bounds what one records section may decompress to.
// Nothing else does: a few bytes of zstd or snappy can claim gigabytes,
// and gzip expands up to about 1000 times. No real batch is larger, since
// every Kafka producer builds a batch in an int32-indexed buffer, so more
// than this is corruption.
const maxDecompressedSize = math.MaxInt32

var errTooLarge = fmt.Errorf("decompressed size exceeds %d bytes", maxDecompressedSize)

// compress appends src compressed with c to dst and returns the extended
// slice; with CompressNone it appends src as it is. Nothing is written to
// dst's spare capacity on error. A code Kafka does not define is an error
// wrapping ErrInvalidConfig.
func compress(c Compression, dst, src []byte) ([]byte, error) {
	switch c {
	case CompressNone:
		return append(dst, src...), nil
	case CompressGzip:
		return compressGzip(dst, src)
	case CompressSnappy:
		return compressSnappy(dst, src), nil
	case CompressLZ4:
		return compressLZ4(dst, src)
	case CompressZstd:
		return zstdEncoder().EncodeAll(src, dst), nil
	}
	return dst, errorf("stream: compress with code %d: %w", int8(c), ErrInvalidConfig)
}

// decompress returns the decoded records section of a batch compressed
// with c, appended to dst. Damaged input, including an empty one, trailing
// garbage or a code Kafka does not define, is an error wrapping ErrCorrupt
// (for the caller to name the file and position); it never panics.
func decompress(c Compression, dst, src []byte) ([]byte, error) {
	if c == CompressNone {
		return append(dst, src...), nil
	}
	if !c.valid() {
		return nil, fmt.Errorf("%w: compression code %d", ErrCorrupt, int8(c))
	}
	if len(src) == 0 {
		// Every codec's encoding of even no bytes has a header.
		return nil, fmt.Errorf("%w: %v: empty input", ErrCorrupt, c)
	}
	var out []byte
	var err error
	switch c {
	case CompressGzip:
		out, err = decompressGzip(dst, src)
	case CompressSnappy:
		out, err = decompressSnappy(dst, src)
	case CompressLZ4:
		out, err = decompressLZ4(dst, src)
	case CompressZstd:
		out, err = decompressZstd(dst, src)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %v: %w", ErrCorrupt, c, err)
	}
	return out, nil
}

// appendWriter is an io.Writer appending to a slice, so that streaming
// codecs compress straight into the caller's dst.
type appendWriter struct{ b []byte }

func (w *appendWriter) Write(p []byte) (int, error) {
	w.b = append(w.b, p...)
	return len(p), nil
}

// readAppend appends everything r yields to dst, failing past
// maxDecompressedSize. sizeHint is the first growth step.
func readAppend(dst []byte, r io.Reader, sizeHint int) ([]byte, error) {
	start := len(dst)
	if cap(dst)-len(dst) < sizeHint {
		dst = append(dst[:len(dst):len(dst)], make([]byte, sizeHint)...)[:start]
	}
	for {
		if len(dst) == cap(dst) {
			dst = append(dst, 0)[:len(dst)] // grow by append's policy
		}
		n, err := r.Read(dst[len(dst):cap(dst)])
		dst = dst[:len(dst)+n]
		if len(dst)-start > maxDecompressedSize {
			return nil, errTooLarge
		}
		if err == io.EOF {
			return dst, nil
		}
		if err != nil {
			return nil, err
		}
	}
}

// decompressHint guesses a decoded size from a compressed one, capped so
// that a lying header cannot make us allocate much up front.
func decompressHint(n int) int { return min(4*n, 1<<20) }

// gzip

type gzipCompressor struct {
	w   *gzip.Writer
	out appendWriter
}

type gzipDecompressor struct {
	r   gzip.Reader
	src bytes.Reader
}

var (
	gzipWriters = sync.Pool{New: func() any {
		c := new(gzipCompressor)
		c.w = gzip.NewWriter(&c.out) // level 6, as Kafka's compression.gzip.level default
		return c
	}}
	gzipReaders = sync.Pool{New: func() any { return new(gzipDecompressor) }}
)

func compressGzip(dst, src []byte) ([]byte, error) {
	c := gzipWriters.Get().(*gzipCompressor)
	defer gzipWriters.Put(c)
	return compressStream(c.w, &c.out, dst, src)
}

// streamCompressor is a pooled gzip or lz4 frame writer.
type streamCompressor interface {
	Reset(io.Writer)
	io.WriteCloser
}

// compressStream appends src compressed by w to dst, writing through out,
// which it empties again so the pooled writer keeps no caller's buffer.
func compressStream(w streamCompressor, out *appendWriter, dst, src []byte) ([]byte, error) {
	out.b = dst
	defer func() { out.b = nil }()
	w.Reset(out)
	if _, err := w.Write(src); err != nil {
		return dst, err
	}
	if err := w.Close(); err != nil {
		return dst, err
	}
	return out.b, nil
}

func decompressGzip(dst, src []byte) ([]byte, error) {
	d := gzipReaders.Get().(*gzipDecompressor)
	defer gzipReaders.Put(d)
	defer d.src.Reset(nil)
	d.src.Reset(src)
	if err := d.r.Reset(&d.src); err != nil {
		return nil, err
	}
	return readAppend(dst, &d.r, decompressHint(len(src)))
}

// snappy, xerial-framed

var xerialMagic = []byte("\x82SNAPPY\x00")

const (
	xerialHeaderSize = 16       // magic, version, minimum compatible version
	xerialVersion    = 1        // what the Java client writes, and requires at least
	xerialBlockSize  = 32 << 10 // the Java client's block size
	// snappyMaxExpansion bounds how much one byte of a raw snappy block
	// decodes to: the densest element, a 3-byte copy, yields 64 bytes.
	snappyMaxExpansion = 22
)

func compressSnappy(dst, src []byte) []byte {
	dst = append(dst, xerialMagic...)
	dst = binary.BigEndian.AppendUint32(dst, xerialVersion)
	dst = binary.BigEndian.AppendUint32(dst, xerialVersion)
	for len(src) > 0 {
		n := min(len(src), xerialBlockSize)
		at := len(dst)
		dst = append(dst, 0, 0, 0, 0) // the length, filled in below
		dst = growSlice(dst, s2.MaxEncodedLen(n))
		block := s2.EncodeSnappy(dst[len(dst):cap(dst)], src[:n])
		binary.BigEndian.PutUint32(dst[at:], uint32(len(block)))
		dst = dst[:len(dst)+len(block)]
		src = src[n:]
	}
	return dst
}

func decompressSnappy(dst, src []byte) ([]byte, error) {
	if !bytes.HasPrefix(src, xerialMagic) {
		// A raw snappy block cannot start with the magic: it would be a
		// copy before any literal.
		return decodeSnappyBlock(dst, src)
	}
	if len(src) < xerialHeaderSize {
		return nil, errors.New("short xerial header")
	}
	if v := int32(binary.BigEndian.Uint32(src[12:])); v > xerialVersion {
		return nil, fmt.Errorf("xerial minimum compatible version %d, want at most %d", v, xerialVersion)
	}
	start := len(dst)
	for src = src[xerialHeaderSize:]; len(src) > 0; {
		if len(src) < 4 {
			return nil, errors.New("truncated xerial block length")
		}
		n := binary.BigEndian.Uint32(src)
		src = src[4:]
		if uint64(n) > uint64(len(src)) {
			return nil, fmt.Errorf("xerial block of %d bytes, only %d left", n, len(src))
		}
		var err error
		if dst, err = decodeSnappyBlock(dst, src[:n]); err != nil {
			return nil, err
		}
		if len(dst)-start > maxDecompressedSize {
			return nil, errTooLarge
		}
		src = src[n:]
	}
	return dst, nil
}

// decodeSnappyBlock appends the decoding of one raw snappy block to dst.
// It checks the block's claimed length before allocating for it.
func decodeSnappyBlock(dst, src []byte) ([]byte, error) {
	n, err := s2.DecodedLen(src)
	if err != nil {
		return nil, err
	}
	if n > snappyMaxExpansion*len(src) || n > maxDecompressedSize {
		return nil, fmt.Errorf("snappy block of %d bytes claims %d decoded", len(src), n)
	}
	dst = growSlice(dst, n)
	out, err := s2.Decode(dst[len(dst):len(dst)+n], src)
	if err != nil {
		return nil, err
	}
	if len(out) != n {
		return nil, errors.New("snappy block shorter than its header says")
	}
	return dst[:len(dst)+n], nil
}

// growSlice returns b with room for at least n more bytes.
func growSlice(b []byte, n int) []byte {
	if cap(b)-len(b) >= n {
		return b
	}
	return append(b[:len(b):len(b)], make([]byte, n)...)[:len(b)]
}

// lz4

type lz4Compressor struct {
	w   *lz4.Writer
	out appendWriter
}

type lz4Decompressor struct {
	r   *lz4.Reader
	src bytes.Reader
}

var (
	lz4Writers = sync.Pool{New: func() any {
		c := new(lz4Compressor)
		c.w = lz4.NewWriter(&c.out)
		// What the Java client writes: 64 KiB blocks and no content
		// checksum (the batch's CRC-32C covers these bytes already).
		// One goroutine. The options are valid, so Apply cannot fail.
		_ = c.w.Apply(
			lz4.BlockSizeOption(lz4.Block64Kb),
			lz4.ChecksumOption(false),
			lz4.ConcurrencyOption(1),
		)
		return c
	}}
	lz4Readers = sync.Pool{New: func() any { return &lz4Decompressor{r: lz4.NewReader(nil)} }}
)

func compressLZ4(dst, src []byte) ([]byte, error) {
	c := lz4Writers.Get().(*lz4Compressor)
	defer lz4Writers.Put(c)
	return compressStream(c.w, &c.out, dst, src)
}

func decompressLZ4(dst, src []byte) ([]byte, error) {
	d := lz4Readers.Get().(*lz4Decompressor)
	defer lz4Readers.Put(d)
	defer d.src.Reset(nil)
	d.src.Reset(src)
	d.r.Reset(&d.src)
	return readAppend(dst, d.r, decompressHint(len(src)))
}

// zstd

const (
	// zstdWindow is the encoder's window: ample for a batch, and it keeps
	// each pooled encoder's memory small.
	zstdWindow = 1 << 20
	// zstdMaxExpansion bounds how much one byte of a zstd frame decodes
	// to: an RLE block, 4 bytes, yields at most 128 KiB.
	zstdMaxExpansion = 32 << 10
)

var (
	zstdEncoder = sync.OnceValue(func() *zstd.Encoder {
		e, err := zstd.NewWriter(nil,
			zstd.WithWindowSize(zstdWindow),
			zstd.WithZeroFrames(true), // an empty input still gets a frame
		)
		if err != nil {
			panic(err) // the options are constants
		}
		return e
	})
	zstdDecoder = sync.OnceValue(func() *zstd.Decoder {
		d, err := zstd.NewReader(nil,
			zstd.WithDecoderConcurrency(0), // GOMAXPROCS concurrent DecodeAlls
			zstd.WithDecoderMaxMemory(maxDecompressedSize),
		)
		if err != nil {
			panic(err) // the options are constants
		}
		return d
	})
)

func decompressZstd(dst, src []byte) ([]byte, error) {
	// DecodeAll allocates the content size a frame header claims, so check
	// the claim against what the input could possibly hold first.
	var h zstd.Header
	if err := h.Decode(src); err != nil {
		return nil, err
	}
	if h.HasFCS && h.FrameContentSize > uint64(len(src))*zstdMaxExpansion {
		return nil, fmt.Errorf("zstd frame of %d bytes claims %d decoded", len(src), h.FrameContentSize)
	}
	return zstdDecoder().DecodeAll(src, dst)
}
