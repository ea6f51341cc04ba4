package stream_test

// FuzzSegmentDecode feeds arbitrary bytes to the batch decoder and, as
// the only .log file of a partition, to recovery and reads. With fixCRC
// the fuzzer's bytes get valid CRCs (each chunk with magic 2 at byte 16,
// walked by its length field), so it reaches the record decoder instead
// of stopping at the checksum.
//
// Invariants:
//
//  1. Nothing panics.
//  2. The decoder never returns records from a batch whose CRC-32C (over
//     attributes..end, computed here independently) does not match.
//  3. A decoded batch yields records at consecutive offsets from its base
//     offset to its last offset (none for a control batch).
//  4. Recovery of the bytes as the active segment succeeds and keeps
//     exactly the longest prefix of valid batches (header, length, base
//     offsets following on from 0, CRC): HighWatermark is the offset after
//     it, the next append lands there, and after Close the file is that
//     prefix byte for byte followed by the appended batch.
//  5. Read over [0, HighWatermark) returns the decoder's records, at
//     contiguous offsets (but across control batches), or, from the first
//     batch whose records do not decode, an ErrCorrupt.

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/instream/stream"
)

// fixCRCs gives every chunk of data that has magic 2 at byte 16 a valid
// CRC, walking chunks by their length fields.
func fixCRCs(data []byte) {
	for pos := 0; pos+61 <= len(data); {
		size := int(int32(binary.BigEndian.Uint32(data[pos+8:]))) + 12
		if data[pos+16] != 2 || size < 61 || pos+size > len(data) {
			return
		}
		binary.BigEndian.PutUint32(data[pos+17:], crc32.Checksum(data[pos+21:pos+size], castagnoli))
		pos += size
	}
}

// validBatch is one batch of the valid prefix, as the model sees it.
type validBatch struct {
	pos, size  int64
	base, last int64
	control    bool
	recs       []*stream.Record // nil when decodeErr is set
	decodeErr  error
}

// validPrefix returns the longest prefix of data made of batches that
// recovery must keep: a header the decoder accepts, whole, base offsets
// following on from 0, a matching CRC. It checks invariants 2 and 3.
func validPrefix(t *testing.T, data []byte) (batches []validBatch, end, next int64) {
	for end < int64(len(data)) {
		rest := data[end:]
		if len(rest) >= 12 && bytes.Equal(rest[:12], make([]byte, 12)) {
			break // preallocated space: the end
		}
		recs, size, base, last, err := stream.DecodeBatchForTest(rest)
		if size == 0 { // header, length or CRC rejected
			break
		}
		if got, want := crc32.Checksum(rest[21:size], castagnoli), binary.BigEndian.Uint32(rest[17:]); got != want {
			t.Fatalf("decoder accepted a batch at %d whose CRC is %08x, stored %08x", end, got, want)
		}
		if base != next {
			break // out of sequence: recovery stops here
		}
		control := binary.BigEndian.Uint16(rest[21:])&0x20 != 0
		b := validBatch{pos: end, size: size, base: base, last: last, control: control}
		if err != nil {
			b.decodeErr = err
		} else {
			b.recs = recs
			want := last - base + 1
			if control {
				want = 0
			}
			if int64(len(recs)) != want {
				t.Fatalf("batch at %d, offsets [%d, %d]: decoded %d records, want %d", end, base, last, len(recs), want)
			}
			for i, r := range recs {
				if r.Offset != base+int64(i) {
					t.Fatalf("batch at %d: record %d at offset %d, want %d", end, i, r.Offset, base+int64(i))
				}
			}
		}
		batches = append(batches, b)
		end += size
		next = last + 1
	}
	return batches, end, next
}

func FuzzSegmentDecode(f *testing.F) {
	// Seeds: real segments written by the engine.
	dir := f.TempDir()
	p, err := stream.OpenPartitionForTest(dir)
	if err != nil {
		f.Fatal(err)
	}
	var b stream.Batch
	b.Add(nil, []byte("v"))
	b.Add([]byte("k"), nil, stream.Header{Key: "h", Value: []byte("x")}, stream.Header{Key: "n"})
	b.Add([]byte("key"), bytes.Repeat([]byte("value"), 40))
	if _, err := p.AppendBatch(&b); err != nil {
		f.Fatal(err)
	}
	if _, err := p.Append(&stream.Record{Key: []byte("a"), Value: []byte("b")}); err != nil {
		f.Fatal(err)
	}
	if _, err := p.Append(&stream.Record{Value: []byte("one")}, &stream.Record{Value: []byte("two"), Headers: []stream.Header{{Key: "k", Value: nil}}}); err != nil {
		f.Fatal(err)
	}
	if err := stream.ClosePartitionForTest(p); err != nil {
		f.Fatal(err)
	}
	seg, err := os.ReadFile(filepath.Join(dir, "00000000000000000000.log"))
	if err != nil {
		f.Fatal(err)
	}
	first := int(binary.BigEndian.Uint32(seg[8:])) + 12
	f.Add(seg, false)
	f.Add(seg[:first], false)
	f.Add(seg[:first], true)
	f.Add(seg[:len(seg)-7], false)
	f.Add(append(append([]byte{}, seg...), make([]byte, 100)...), false)
	f.Add(append(append([]byte{}, seg...), 0xff, 0, 1), false)
	f.Add(seg[first:], false) // starts at offset 3: out of sequence
	damaged := append([]byte{}, seg...)
	damaged[first+70] ^= 0x10
	f.Add(damaged, false)
	f.Add(damaged, true)
	f.Add([]byte{}, false)
	f.Add(make([]byte, 61), true)

	f.Fuzz(func(t *testing.T, data []byte, fixCRC bool) {
		// A hang is a failure too: crash with every goroutine's stack,
		// which makes the fuzzer keep the input.
		defer time.AfterFunc(10*time.Second, func() {
			buf := make([]byte, 1<<20)
			panic(fmt.Sprintf("input hangs for 10s:\n%s", buf[:runtime.Stack(buf, true)]))
		}).Stop()
		data = bytes.Clone(data)
		if fixCRC {
			fixCRCs(data)
		}
		batches, end, next := validPrefix(t, data)

		dir := t.TempDir()
		log := filepath.Join(dir, "00000000000000000000.log")
		if err := os.WriteFile(log, data, 0o644); err != nil {
			t.Fatal(err)
		}
		p, err := stream.OpenPartitionForTest(dir)
		if err != nil {
			t.Fatalf("recovery failed: %v", err)
		}
		closed := false
		defer func() {
			if !closed {
				stream.ClosePartitionForTest(p)
			}
		}()
		if hw := p.HighWatermark(); hw != next {
			t.Fatalf("HighWatermark %d, want %d (valid prefix of %d bytes, %d batches)", hw, next, end, len(batches))
		}
		// Read everything; compare with the decoder.
		var want []*stream.Record
		var wantErrAt int64 = -1
		for _, vb := range batches {
			if vb.decodeErr != nil {
				wantErrAt = vb.base
				break
			}
			want = append(want, vb.recs...)
		}
		var got []*stream.Record
		for off := int64(0); off < next; {
			recs, err := p.Read(off, 1)
			if err != nil {
				if !errors.Is(err, stream.ErrCorrupt) || wantErrAt < 0 || off > wantErrAt {
					t.Fatalf("Read(%d): %v (first undecodable batch at %d)", off, err, wantErrAt)
				}
				break
			}
			if len(recs) == 0 {
				// Only control batches are left below the high
				// watermark... or Read broke its promise.
				if len(got) != len(want) {
					t.Fatalf("Read(%d) returned nothing below the high watermark %d", off, next)
				}
				break
			}
			got = append(got, recs...)
			off = recs[len(recs)-1].Offset + 1
		}
		if wantErrAt < 0 && len(got) != len(want) {
			t.Fatalf("read %d records, the decoder %d", len(got), len(want))
		}
		for i := range min(len(got), len(want)) {
			g, w := got[i], want[i]
			if g.Offset != w.Offset || !bytes.Equal(g.Key, w.Key) || !bytes.Equal(g.Value, w.Value) || len(g.Headers) != len(w.Headers) {
				t.Fatalf("record %d: read offset %d %q=%q, decoder offset %d %q=%q", i, g.Offset, g.Key, g.Value, w.Offset, w.Key, w.Value)
			}
		}
		// Appends continue at the end of the valid prefix.
		base, err := p.Append(&stream.Record{Value: []byte("next")})
		if err != nil {
			t.Fatalf("append after recovery: %v", err)
		}
		if base != next {
			t.Fatalf("append at %d, want %d", base, next)
		}
		closed = true
		if err := stream.ClosePartitionForTest(p); err != nil {
			t.Fatalf("close: %v", err)
		}
		after, err := os.ReadFile(log)
		if err != nil {
			t.Fatal(err)
		}
		// The append may have rolled to a new segment (a fuzzed
		// timestamp makes the segment older than SegmentAge).
		appended := after[min(end, int64(len(after))):]
		if logs, _ := filepath.Glob(filepath.Join(dir, "*.log")); len(logs) == 2 && int64(len(after)) == end {
			if appended, err = os.ReadFile(filepath.Join(dir, fmt.Sprintf("%020d.log", next))); err != nil {
				t.Fatalf("append rolled, but: %v", err)
			}
		} else if len(logs) != 1 {
			t.Fatalf("after close: %d .log files: %v", len(logs), logs)
		}
		if int64(len(after)) < end || !bytes.Equal(after[:end], data[:end]) {
			t.Fatalf("after close the log is %d bytes; want the %d-byte valid prefix unchanged", len(after), end)
		}
		if _, size, base, _, err := stream.DecodeBatchForTest(appended); err != nil || base != next || size != int64(len(appended)) {
			t.Fatalf("after close, the appended batch: base %d size %d err %v; %d bytes", base, size, err, len(appended))
		}
	})
}
