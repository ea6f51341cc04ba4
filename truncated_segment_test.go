package stream_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/instream/stream"
)

// TestTruncatedSealedSegment: a sealed segment cut short (outside
// damage: a torn copy, a file system that lost its tail). Reads of the
// offsets past the cut hung (a cut leaving less than a batch header
// looped for ever) or failed with a bare "unexpected EOF"; damage is
// never skipped, and reads that reach it fail with a *CorruptError
// naming the file. The segments after it stay readable. Found by the
// torture suite (TestTorture, disk mode, a truncated .log).
func TestTruncatedSealedSegment(t *testing.T) {
	dir0, pdir0 := writeClosed(t, 300)
	logs0, _ := filepath.Glob(filepath.Join(pdir0, "*.log"))
	if len(logs0) < 4 {
		t.Fatalf("%d segments, want at least 4", len(logs0))
	}
	sf, err := stream.OpenSegmentFile(logs0[1])
	if err != nil {
		t.Fatal(err)
	}
	var batches []stream.SegmentBatch
	for b := range sf.Batches() {
		batches = append(batches, b)
	}
	sf.Close()
	if len(batches) < 2 {
		t.Fatalf("%d batches in %s", len(batches), logs0[1])
	}
	prev, last := batches[len(batches)-2], batches[len(batches)-1]
	for cut := prev.Position + 1; cut < last.Position+last.Size; cut += 7 {
		for _, cleanShutdown := range []bool{true, false} {
			t.Run(fmt.Sprintf("cut%d/clean=%v", cut, cleanShutdown), func(t *testing.T) {
				dir := t.TempDir()
				copyDir(t, dir0, dir)
				victim := filepath.Join(dir, "topics", filepath.Base(pdir0), filepath.Base(logs0[1]))
				if !cleanShutdown {
					os.Remove(filepath.Join(dir, "topics", ".clean_shutdown"))
				}
				if err := os.Truncate(victim, cut); err != nil {
					t.Fatal(err)
				}
				s := reopen(t, dir, nil)
				defer s.Close()
				p := existing(t, s, "t", 0)
				from := last.BaseOffset
				if cut < last.Position {
					from = prev.BaseOffset
				}
				_, err := p.Read(from, 1)
				var ce *stream.CorruptError
				if !errors.As(err, &ce) || ce.File != victim {
					t.Errorf("Read at %d, in the cut-off tail of %s: %v, want a CorruptError naming it", from, victim, err)
				}
				if got, err := p.Read(last.LastOffset+1, 1); err != nil || len(got) != 1 || got[0].Offset != last.LastOffset+1 {
					t.Errorf("Read of the next segment's first record: %v, %v", got, err)
				}
			})
		}
	}
}
