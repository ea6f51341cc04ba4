package stream

// compress and decompress are unexported (the producer and the storage
// engine call them on a batch's records section), so this file tests from
// inside the package.

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime/debug"
	"sync"
	"testing"

	"github.com/klauspost/compress/s2"
)

var allCodecs = []Compression{CompressNone, CompressGzip, CompressSnappy, CompressLZ4, CompressZstd}

// testPayload returns n bytes that compress somewhat, like records do:
// repeated field names with varying values.
func testPayload(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, seed))
	var b []byte
	for len(b) < n {
		b = fmt.Appendf(b, `{"user":%d,"event":"click","page":"/p/%d"}`, r.IntN(1000), r.IntN(50))
	}
	return b[:n]
}

func TestCompressRoundTrip(t *testing.T) {
	sizes := []int{0, 1, 100, 4 << 10, xerialBlockSize - 1, xerialBlockSize, xerialBlockSize + 1, 200 << 10, 1 << 20}
	for _, c := range allCodecs {
		for _, n := range sizes {
			t.Run(fmt.Sprintf("%v/%d", c, n), func(t *testing.T) {
				src := testPayload(n, uint64(n))
				enc, err := compress(c, nil, src)
				if err != nil {
					t.Fatalf("compress: %v", err)
				}
				if c != CompressNone && n >= 4<<10 && len(enc) >= n {
					t.Errorf("compressed %d bytes to %d: no compression", n, len(enc))
				}
				dec, err := decompress(c, nil, enc)
				if err != nil {
					t.Fatalf("decompress: %v", err)
				}
				if !bytes.Equal(dec, src) {
					t.Fatalf("round trip changed the data: got %d bytes, want %d", len(dec), len(src))
				}
			})
		}
	}
}

// Both directions append: the prefix in dst survives and the result
// starts with it.
func TestCompressAppendsToDst(t *testing.T) {
	src := testPayload(10<<10, 7)
	for _, c := range allCodecs {
		t.Run(c.String(), func(t *testing.T) {
			prefix := []byte("batch-header")
			enc, err := compress(c, bytes.Clone(prefix), src)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.HasPrefix(enc, prefix) {
				t.Fatalf("compress lost dst's prefix: %q", enc[:len(prefix)])
			}
			alone, err := compress(c, nil, src)
			if err != nil {
				t.Fatal(err)
			}
			if c != CompressGzip && !bytes.Equal(enc[len(prefix):], alone) { // gzip headers carry no time, but be lenient
				t.Errorf("compress into a prefixed dst differs from compress into nil")
			}
			// Decode into a dst with spare capacity and a prefix.
			dst := make([]byte, len(prefix), len(prefix)+7)
			copy(dst, prefix)
			dec, err := decompress(c, dst, enc[len(prefix):])
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(dec, append(bytes.Clone(prefix), src...)) {
				t.Fatalf("decompress did not append to dst")
			}
		})
	}
}

// Kafka's Java producer frames snappy the xerial way. Build such framing
// by hand (not with compress), with blocks of uneven sizes, and decode it.
func TestDecompressXerialSnappy(t *testing.T) {
	src := testPayload(100<<10, 3)
	var framed []byte
	framed = append(framed, 0x82, 'S', 'N', 'A', 'P', 'P', 'Y', 0)
	framed = binary.BigEndian.AppendUint32(framed, 1) // version
	framed = binary.BigEndian.AppendUint32(framed, 1) // minimum compatible version
	for rest, n := src, 1; len(rest) > 0; n *= 7 {
		n = min(n, len(rest), 32<<10)
		block := s2.EncodeSnappy(nil, rest[:n])
		framed = binary.BigEndian.AppendUint32(framed, uint32(len(block)))
		framed = append(framed, block...)
		rest = rest[n:]
	}
	got, err := decompress(CompressSnappy, nil, framed)
	if err != nil {
		t.Fatalf("decompress xerial: %v", err)
	}
	if !bytes.Equal(got, src) {
		t.Fatalf("xerial decode: got %d bytes, want %d", len(got), len(src))
	}

	// What compress writes is that framing, with Java's 32 KiB blocks.
	enc, err := compress(CompressSnappy, nil, src)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(enc, framed[:16]) {
		t.Fatalf("compress snappy header = %x, want %x", enc[:16], framed[:16])
	}
	blocks := 0
	for rest := enc[16:]; len(rest) > 0; blocks++ {
		n := binary.BigEndian.Uint32(rest)
		block := rest[4 : 4+n]
		if l, err := s2.DecodedLen(block); err != nil || l > 32<<10 {
			t.Fatalf("block %d decodes to %d bytes (%v), want at most 32 KiB", blocks, l, err)
		}
		rest = rest[4+n:]
	}
	if want := (len(src) + 32<<10 - 1) / (32 << 10); blocks != want {
		t.Errorf("compress wrote %d xerial blocks, want %d", blocks, want)
	}
}

// librdkafka and others write one raw snappy block; readers accept it.
func TestDecompressRawSnappy(t *testing.T) {
	for _, n := range []int{0, 1, 1000, 70 << 10} {
		src := testPayload(n, 11)
		got, err := decompress(CompressSnappy, nil, s2.EncodeSnappy(nil, src))
		if err != nil {
			t.Fatalf("%d bytes: %v", n, err)
		}
		if !bytes.Equal(got, src) {
			t.Fatalf("%d bytes: raw snappy round trip changed the data", n)
		}
	}
}

func TestDecompressGarbage(t *testing.T) {
	valid := map[Compression][]byte{}
	for _, c := range allCodecs[1:] {
		enc, err := compress(c, nil, testPayload(50<<10, 5))
		if err != nil {
			t.Fatal(err)
		}
		valid[c] = enc
	}
	xerialHeader := valid[CompressSnappy][:16]

	type tc struct {
		name string
		c    Compression
		src  []byte
	}
	var cases []tc
	for _, c := range allCodecs[1:] {
		enc := valid[c]
		cases = append(cases,
			tc{"empty", c, nil},
			tc{"text", c, []byte("definitely not compressed, definitely not compressed")},
			tc{"zeros", c, make([]byte, 100)},
			tc{"truncated", c, enc[:len(enc)/2]},
			tc{"last byte cut", c, enc[:len(enc)-1]},
		)
		if c == CompressGzip || c == CompressZstd {
			// Only these carry a checksum of the content; damage to
			// snappy or lz4 data can decode to other bytes, which the
			// batch's CRC-32C catches before decompress runs.
			cases = append(cases, tc{"flipped byte", c, flip(enc, len(enc)*3/4)})
		}
	}
	cases = append(cases,
		tc{"gzip trailing garbage", CompressGzip, append(bytes.Clone(valid[CompressGzip]), "junk"...)},
		tc{"xerial short header", CompressSnappy, xerialHeader[:12]},
		tc{"xerial newer version", CompressSnappy, append(append(bytes.Clone(xerialHeader[:12]), 0, 0, 0, 2), valid[CompressSnappy][16:]...)},
		tc{"xerial block past end", CompressSnappy, append(bytes.Clone(xerialHeader), 0, 0, 1, 0, 1, 2, 3)},
		tc{"xerial negative block length", CompressSnappy, append(bytes.Clone(xerialHeader), 0xff, 0xff, 0xff, 0xff, 1, 2)},
		tc{"xerial torn length", CompressSnappy, append(bytes.Clone(xerialHeader), 0, 0)},
		// A 5-byte header claiming 4 GiB must fail before allocating it.
		tc{"snappy claims 4 GiB", CompressSnappy, []byte{0xff, 0xff, 0xff, 0xff, 0x0f}},
		// A zstd frame header claiming 1 TiB of content.
		tc{"zstd claims 1 TiB", CompressZstd, []byte{0x28, 0xb5, 0x2f, 0xfd, 0xc0 | 0x20, 0, 0, 0, 0, 0, 1, 0, 0, 1, 0, 0}},
		tc{"unknown codec 5", Compression(5), valid[CompressZstd]},
		tc{"unknown codec -1", Compression(-1), valid[CompressZstd]},
	)
	for _, c := range cases {
		t.Run(fmt.Sprintf("%v/%s", c.c, c.name), func(t *testing.T) {
			out, err := decompress(c.c, nil, c.src)
			if err == nil {
				t.Fatalf("decompress succeeded with %d bytes, want an error", len(out))
			}
			if !errors.Is(err, ErrCorrupt) {
				t.Errorf("error %v does not wrap ErrCorrupt", err)
			}
		})
	}
}

func flip(b []byte, i int) []byte {
	b = bytes.Clone(b)
	b[i] ^= 0x55
	return b
}

func TestCompressUnknownCodec(t *testing.T) {
	for _, c := range []Compression{5, 7, -1} {
		if _, err := compress(c, nil, []byte("x")); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("compress(%v) error = %v, want ErrInvalidConfig", c, err)
		}
	}
}

// The pooled codecs are shared by every producer and reader.
func TestCompressConcurrent(t *testing.T) {
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 20 {
				c := allCodecs[(g+i)%len(allCodecs)]
				src := testPayload(1+(g*997+i*131)%(40<<10), uint64(g*100+i))
				enc, err := compress(c, nil, src)
				if err != nil {
					t.Error(err)
					return
				}
				dec, err := decompress(c, nil, enc)
				if err != nil || !bytes.Equal(dec, src) {
					t.Errorf("%v: concurrent round trip failed: %v", c, err)
					return
				}
			}
		})
	}
	wg.Wait()
}

// Reusing the zstd encoder and the pooled writers is the point: a
// compress must not build a codec each time.
func TestCompressAllocations(t *testing.T) {
	if raceEnabled() {
		t.Skip("the race detector makes sync.Pool drop items at random")
	}
	src := testPayload(16<<10, 9)
	for _, c := range allCodecs[1:] {
		dst := make([]byte, 0, 64<<10)
		if _, err := compress(c, dst, src); err != nil { // warm the pools
			t.Fatal(err)
		}
		enc, err := compress(c, nil, src)
		if err != nil {
			t.Fatal(err)
		}
		compressAllocs := testing.AllocsPerRun(50, func() {
			if _, err := compress(c, dst, src); err != nil {
				t.Fatal(err)
			}
		})
		decompressAllocs := testing.AllocsPerRun(50, func() {
			if _, err := decompress(c, dst, enc); err != nil {
				t.Fatal(err)
			}
		})
		// A codec built per call costs dozens of allocations (zstd's
		// tables alone are many); reuse into a dst with room costs none,
		// give or take a pool emptied by a garbage collection.
		if compressAllocs > 2 || decompressAllocs > 2 {
			t.Errorf("%v: %.1f allocations per compress, %.1f per decompress; want at most 2",
				c, compressAllocs, decompressAllocs)
		}
	}
}

// raceEnabled reports whether the test binary was built with -race.
func raceEnabled() bool {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return false
	}
	for _, s := range info.Settings {
		if s.Key == "-race" {
			return s.Value == "true"
		}
	}
	return false
}

func TestCompressionText(t *testing.T) {
	for _, c := range allCodecs {
		text, err := c.MarshalText()
		if err != nil {
			t.Fatalf("%v.MarshalText: %v", c, err)
		}
		var back Compression = -1
		if err := back.UnmarshalText(text); err != nil || back != c {
			t.Errorf("UnmarshalText(%q) = %v, %v; want %v", text, back, err, c)
		}
	}
	for _, tt := range []struct {
		in      string
		want    Compression
		wantErr bool
	}{
		{"none", CompressNone, false},
		{"", CompressNone, false},
		{"gzip", CompressGzip, false},
		{"GZIP", CompressGzip, false},
		{"snappy", CompressSnappy, false},
		{"lz4", CompressLZ4, false},
		{"Zstd", CompressZstd, false},
		{"zstandard", 0, true},
		{"producer", 0, true}, // a topic-level value in Kafka, not a codec
		{" gzip", 0, true},
		{"1", 0, true},
	} {
		c := Compression(-1)
		err := c.UnmarshalText([]byte(tt.in))
		if tt.wantErr {
			if !errors.Is(err, ErrInvalidConfig) {
				t.Errorf("UnmarshalText(%q) error = %v, want ErrInvalidConfig", tt.in, err)
			}
			if c != -1 {
				t.Errorf("UnmarshalText(%q) changed c to %v on error", tt.in, c)
			}
			continue
		}
		if err != nil || c != tt.want {
			t.Errorf("UnmarshalText(%q) = %v, %v; want %v", tt.in, c, err, tt.want)
		}
	}
	if _, err := Compression(5).MarshalText(); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("Compression(5).MarshalText error = %v, want ErrInvalidConfig", err)
	}
	if got := Compression(6).String(); got != "Compression(6)" {
		t.Errorf("Compression(6).String() = %q", got)
	}

	// Through encoding/json, as a config file would use it.
	var cfg struct{ Compression Compression }
	if err := json.Unmarshal([]byte(`{"Compression":"lz4"}`), &cfg); err != nil || cfg.Compression != CompressLZ4 {
		t.Errorf("json: got %v, %v; want lz4", cfg.Compression, err)
	}
	out, err := json.Marshal(struct{ C Compression }{CompressZstd})
	if err != nil || string(out) != `{"C":"zstd"}` {
		t.Errorf("json.Marshal = %s, %v", out, err)
	}
}

// FuzzDecompress checks, for every codec including undefined codes, that
// decompress on arbitrary input:
//   - never panics and never allocates beyond what the input can decode to;
//   - returns either an error wrapping ErrCorrupt and nil, or the output;
//   - appends to dst: dst's bytes stay as they were, in front;
//   - is deterministic: a second call gives the same result;
//   - and for input that compress produced, returns the original.
func FuzzDecompress(f *testing.F) {
	for _, c := range allCodecs {
		for _, n := range []int{0, 10, 3000} {
			enc, err := compress(c, nil, testPayload(n, uint64(n)))
			if err != nil {
				f.Fatal(err)
			}
			f.Add(int8(c), enc)
		}
	}
	f.Add(int8(CompressSnappy), []byte("\x82SNAPPY\x00\x00\x00\x00\x01\x00\x00\x00\x01\x00\x00\x00\x05\x03\x08abc"))
	f.Add(int8(7), []byte{1, 2, 3})
	f.Fuzz(func(t *testing.T, code int8, src []byte) {
		c := Compression(code)
		prefix := []byte{0xde, 0xad}
		out, err := decompress(c, bytes.Clone(prefix), src)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error %v does not wrap ErrCorrupt", err)
			}
			if out != nil {
				t.Fatalf("output %d bytes alongside an error", len(out))
			}
			return
		}
		if !bytes.HasPrefix(out, prefix) {
			t.Fatalf("dst's prefix lost")
		}
		again, err := decompress(c, nil, src)
		if err != nil || !bytes.Equal(again, out[len(prefix):]) {
			t.Fatalf("second decode differs: %v", err)
		}
		if c == CompressNone {
			return
		}
		// What we decoded, we can encode and decode back.
		enc, err := compress(c, nil, again)
		if err != nil {
			t.Fatal(err)
		}
		back, err := decompress(c, nil, enc)
		if err != nil || !bytes.Equal(back, again) {
			t.Fatalf("re-encoded round trip failed: %v", err)
		}
	})
}
