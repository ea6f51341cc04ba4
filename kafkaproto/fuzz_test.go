package kafkaproto

import (
	"bytes"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// FuzzDecodeRequest feeds arbitrary frames to the request decoder. It
// checks that decoding never panics; that a frame it accepts names an API
// and version this server serves (or is an ApiVersions to answer with
// UNSUPPORTED_VERSION); and that an accepted request encodes back to a
// frame that decodes to the same encoding.
func FuzzDecodeRequest(f *testing.F) {
	rc := &rawClient{}
	for _, v := range versions {
		req := kmsg.RequestForKey(v.key)
		for _, ver := range []int16{v.min, v.max} {
			req.SetVersion(ver)
			f.Add(rc.frame(req)[4:])
		}
	}
	f.Add([]byte{0, 18, 0, 9, 0, 0, 0, 1, 255, 255})
	f.Fuzz(func(t *testing.T, frame []byte) {
		req, err := decodeRequest(frame)
		if err != nil {
			return
		}
		lo, hi, ok := supported(req.key)
		if !ok {
			t.Fatalf("accepted unserved API key %d", req.key)
		}
		if req.req == nil {
			if req.key != apiVersionsKey || (req.version >= lo && req.version <= hi) {
				t.Fatalf("accepted key %d v%d without decoding it", req.key, req.version)
			}
			return
		}
		if req.version < lo || req.version > hi {
			t.Fatalf("accepted key %d at unserved version %d", req.key, req.version)
		}
		enc := rc.frame(req.req)[4:]
		again, err := decodeRequest(enc)
		if err != nil {
			t.Fatalf("re-encoded %s v%d does not decode: %v", kmsg.NameForKey(req.key), req.version, err)
		}
		if !bytes.Equal(again.req.AppendTo(nil), req.req.AppendTo(nil)) {
			t.Fatalf("%s v%d does not round-trip", kmsg.NameForKey(req.key), req.version)
		}
	})
}
