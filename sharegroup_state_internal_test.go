package stream

import (
	"bytes"
	"testing"
	"time"
)

// TestSharePartitionEncodeRuns: the stored form keeps what a restart
// needs (start, finished records, delivery counts, as runs) and turns
// acquisitions into available records with their counts.
func TestSharePartitionEncodeRuns(t *testing.T) {
	sp := &sharePartition{start: 10, accepted: 7, rejected: 2, deadLettered: 1}
	for i, e := range []shareEntry{
		{state: shareAcquired, deliveries: 1, until: time.Now()}, // 10
		{state: shareAccepted, deliveries: 1},                    // 11
		{state: shareAccepted, deliveries: 1},                    // 12
		{state: shareAvailable},                                  // 13: the default, not stored
		{state: shareRejected, deliveries: 3},                    // 14
		{state: shareDeadLettering, deliveries: 5},               // 15
	} {
		e.rec = &Record{Offset: 10 + int64(i)}
		sp.entries = append(sp.entries, e)
	}
	sp.stored = map[int64]storedEntry{20: {shareAccepted, 2}}
	var got sharePartition
	if err := got.decode(sp.encode()); err != nil {
		t.Fatal(err)
	}
	want := map[int64]storedEntry{
		10: {shareAvailable, 1}, 11: {shareAccepted, 1}, 12: {shareAccepted, 1},
		14: {shareRejected, 3}, 15: {shareAvailable, 5}, 20: {shareAccepted, 2},
	}
	if got.start != 10 || got.accepted != 7 || got.rejected != 2 || got.deadLettered != 1 || len(got.stored) != len(want) {
		t.Fatalf("decoded %+v", got)
	}
	for off, e := range want {
		if got.stored[off] != e {
			t.Fatalf("offset %d: %+v, want %+v", off, got.stored[off], e)
		}
	}
}

// FuzzShareStateDecode: decoding a stored share-partition never panics
// or allocates without bound, and whatever decodes encodes back to
// bytes that decode to the same state.
func FuzzShareStateDecode(f *testing.F) {
	sp := &sharePartition{start: 3, stored: map[int64]storedEntry{5: {shareAccepted, 1}, 6: {shareAvailable, 2}}}
	f.Add(sp.encode())
	f.Add([]byte{stateVersion, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		var a sharePartition
		if a.decode(b) != nil {
			return
		}
		again := a.encode()
		var c sharePartition
		if err := c.decode(again); err != nil {
			t.Fatalf("re-encoded state does not decode: %v", err)
		}
		if !bytes.Equal(c.encode(), again) {
			t.Fatal("encoding is not stable")
		}
	})
}
