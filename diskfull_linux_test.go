package stream_test

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"syscall"
	"testing"

	"github.com/instream/stream"
)

// TestDiskFull fills a small tmpfs: the append that cannot get space must
// fail with an error (ENOSPC), not acknowledge and not die of SIGBUS on
// the mapped segment; everything acknowledged before reads back, before
// and after a reopen, and appends work again once space is freed.
func TestDiskFull(t *testing.T) {
	// Large segments: the active segment's file grows by preallocation
	// (64 KiB, doubling) until the file system is full. Small ones: rolls
	// create new, preallocated segments until one cannot be created.
	for _, segBytes := range []stream.ByteSize{64 * stream.MiB, 64 * stream.KiB} {
		t.Run("SegmentBytes="+segBytes.String(), func(t *testing.T) { testDiskFull(t, segBytes) })
	}
}

func testDiskFull(t *testing.T, segBytes stream.ByteSize) {
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size=1m"); err != nil {
		t.Skipf("cannot mount a 1 MiB tmpfs to fill (needs root or CAP_SYS_ADMIN): %v", err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, 0); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
	})
	opts := &stream.Options{SegmentBytes: segBytes, DefaultTopic: stream.TopicConfig{Retention: -1}}
	s, p, err := openCrashPartition(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	// Runs before the unmount: the last stream opened is closed.
	t.Cleanup(func() { s.Close() })
	rng := rand.New(rand.NewPCG(1, 2))
	var acked [][]*stream.Record
	var appendErr error
	var refused []*stream.Record
	for i := 0; i < 10000 && appendErr == nil; i++ {
		recs := crashRecords(rng, fmt.Sprint(i), 16)
		hw := p.HighWatermark()
		var base int64
		base, appendErr = p.Append(recs...)
		if appendErr != nil {
			refused = recs
			if got := p.HighWatermark(); got != hw {
				t.Errorf("failed append moved the high watermark from %d to %d", hw, got)
			}
			break
		}
		if base != hw {
			t.Fatalf("append at %d, want %d", base, hw)
		}
		acked = append(acked, recs)
	}
	if appendErr == nil {
		t.Fatalf("10000 appends fit in a 1 MiB file system")
	}
	if !errors.Is(appendErr, syscall.ENOSPC) {
		t.Errorf("append on a full disk: %v, want an error wrapping ENOSPC", appendErr)
	}
	t.Logf("disk full after %d appends: %v", len(acked), appendErr)
	check := func(p *stream.Partition) {
		t.Helper()
		off := int64(0)
		for i, recs := range acked {
			var got []*stream.Record
			for len(got) < len(recs) {
				more, err := p.Read(off+int64(len(got)), 1) // one record
				if err != nil || len(more) == 0 {
					t.Fatalf("read acknowledged append %d at %d: %d records, %v", i, off, len(more), err)
				}
				got = append(got, more...)
			}
			if len(got) < len(recs) || recordsSum(got[:len(recs)]) != recordsSum(recs) {
				t.Fatalf("acknowledged append %d at %d reads back different", i, off)
			}
			off += int64(len(recs))
		}
		if hw := p.HighWatermark(); hw != off {
			t.Fatalf("HighWatermark %d, want %d", hw, off)
		}
	}
	check(p)
	// Still full: the refused append fails again, and nothing moves. (A
	// smaller one may still fit: reserving falls back to exactly what an
	// append needs.)
	if _, err := p.Append(refused...); err == nil {
		t.Errorf("append on a still-full disk succeeded")
	}
	check(p)
	if err := s.Close(); err != nil {
		t.Logf("close on a full disk: %v", err)
	}
	// Reopen on the full disk, then free space and append again.
	s, p, err = openCrashPartition(dir, opts)
	if err != nil {
		t.Fatalf("reopen on a full disk: %v", err)
	}
	check(p)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("tmpfs", dir, "tmpfs", syscall.MS_REMOUNT, "size=8m"); err != nil {
		t.Fatalf("grow the tmpfs: %v", err)
	}
	s, p, err = openCrashPartition(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	check(p)
	recs := crashRecords(rng, "after", 16)
	hw := p.HighWatermark()
	if base, err := p.Append(recs...); err != nil || base != hw {
		t.Fatalf("append after freeing space: %d, %v; want %d", base, err, hw)
	}
	acked = append(acked, recs)
	check(p)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// Nothing of the directory is still mapped: a failed roll must not
	// leak the new segment's mapping (nor keep the file system busy).
	if maps, err := os.ReadFile("/proc/self/maps"); err == nil {
		for _, line := range strings.Split(string(maps), "\n") {
			if strings.Contains(line, dir) {
				t.Errorf("still mapped after Close: %s", line)
			}
		}
	}
}
