package stream

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"runtime"
	"testing"
)

// FuzzTransportFrame reads frames from arbitrary bytes as a TCP
// transport's connection does and checks: no panic; every frame
// accepted holds at most the limit and re-encodes to exactly the bytes
// it was read from; a refused frame that claims to leave the stream at a
// frame boundary really does (reading goes on from there); reading ends
// with io.EOF only at a frame boundary.
func FuzzTransportFrame(f *testing.F) {
	const limit = 1 << 10
	f.Add(appendFrame(nil, frame{version: frameVersion, typ: frameRequest, id: 1, arg: 5, payload: []byte("hello")}))
	f.Add(append(appendFrame(nil, frame{version: 0, typ: frameRequest, id: 2, payload: []byte("old")}),
		appendFrame(nil, frame{version: frameVersion, typ: frameReply, id: 3})...))
	f.Add(appendFrame(nil, frame{version: frameVersion, typ: 9, id: 4, payload: []byte("?")}))
	f.Add([]byte{0x7f, 0xff, 0xff, 0xff, 1, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0})
	f.Add([]byte("GET / HTTP/1.1\r\n\r\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		src := bytes.NewReader(b)
		r := bufio.NewReaderSize(src, 16)
		consumed := func() int { return len(b) - src.Len() - r.Buffered() }
		for {
			start := consumed()
			fr, err := readFrame(r, limit)
			var bad *badFrameError
			switch {
			case err == nil:
				if len(fr.payload) > limit {
					t.Fatalf("accepted a payload of %d bytes over the limit %d", len(fr.payload), limit)
				}
				if enc := appendFrame(nil, fr); !bytes.Equal(enc, b[start:consumed()]) {
					t.Fatalf("frame %+v re-encodes as %x, read from %x", fr, enc, b[start:consumed()])
				}
				continue
			case errors.As(err, &bad) && bad.resync:
				if n := consumed() - start; n < 4 || int(uint32(b[start])<<24|uint32(b[start+1])<<16|uint32(b[start+2])<<8|uint32(b[start+3]))+4 != n {
					t.Fatalf("refused frame %q left the stream %d bytes on, not at its end", err, n)
				}
				continue
			case err == io.EOF:
				if consumed() != len(b) {
					t.Fatalf("io.EOF with %d bytes unread", len(b)-consumed())
				}
			}
			return
		}
	})
}

func TestReadPayloadGrowsAsDataArrives(t *testing.T) {
	// A peer announces a payload of nearly 1 GiB and sends 10 bytes: the
	// read fails having allocated one chunk, not a gigabyte.
	in := appendFrame(nil, frame{version: frameVersion, typ: frameRequest, id: 1, payload: []byte("0123456789")})
	in[0], in[1], in[2], in[3] = 0x3f, 0xff, 0xff, 0xff
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, err := readFrame(bufio.NewReader(bytes.NewReader(in)), 1<<30)
	runtime.ReadMemStats(&after)
	if err != errTruncated {
		t.Errorf("err %v, want errTruncated", err)
	}
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 1<<20 {
		t.Errorf("reading a truncated 1 GiB frame allocated %d bytes", grew)
	}
}
