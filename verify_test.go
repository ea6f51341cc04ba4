package stream_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/instream/stream"
)

// writeClosed writes n records to a partition with small segments and
// closes the stream, returning the directory and the partition directory.
func writeClosed(t *testing.T, n int) (dir, pdir string) {
	t.Helper()
	dir = t.TempDir()
	s, err := stream.Open(dir, &stream.Options{Sync: stream.SyncNever, SegmentBytes: 2 << 10, IndexIntervalBytes: 128})
	if err != nil {
		t.Fatal(err)
	}
	p := partition(t, s, "t", stream.TopicConfig{})
	appendN(t, p, 0, n)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	return dir, p.Dir()
}

func TestVerifyCleanDirectory(t *testing.T) {
	dir, _ := writeClosed(t, 300)
	problems, err := stream.Verify(dir)
	if err != nil || len(problems) != 0 {
		t.Fatalf("Verify = %v, %v; want no problems", problems, err)
	}
}

func TestVerifyRefusesADirectoryInUse(t *testing.T) {
	_, dir := open(t, nil)
	if _, err := stream.Verify(dir); err == nil || !strings.Contains(err.Error(), dir) {
		t.Fatalf("Verify of an open directory: %v, want an error naming it", err)
	}
}

func TestVerifyFindsFlippedBytes(t *testing.T) {
	dir, pdir := writeClosed(t, 300)
	logs, _ := filepath.Glob(filepath.Join(pdir, "*.log"))
	victim := logs[1]
	// Find the second batch of the victim and flip a byte in its value.
	sf, err := stream.OpenSegmentFile(victim)
	if err != nil {
		t.Fatal(err)
	}
	var second stream.SegmentBatch
	i := 0
	for b, err := range sf.Batches() {
		if err != nil || b.Err != nil {
			t.Fatal(err, b.Err)
		}
		if i++; i == 2 {
			second = b
			break
		}
	}
	sf.Close()
	flipByte(t, victim, second.Position+second.Size-3)
	idx := strings.TrimSuffix(logs[2], ".log") + ".index"
	flipByte(t, idx, 5)

	problems, err := stream.Verify(dir)
	if err != nil {
		t.Fatal(err)
	}
	var sawLog, sawIndex bool
	for _, p := range problems {
		if !errors.Is(p, stream.ErrCorrupt) {
			t.Errorf("problem %v is not ErrCorrupt", p)
		}
		switch {
		case p.File == victim && p.Position == second.Position:
			sawLog = true
		case p.File == idx && p.Position == 0:
			sawIndex = true
		default:
			t.Errorf("unexpected problem: %v", p)
		}
	}
	if !sawLog || !sawIndex {
		t.Fatalf("problems %v: want the flipped batch of %s at %d and the index %s", problems, victim, second.Position, idx)
	}
}

func TestSegmentFileDump(t *testing.T) {
	_, pdir := writeClosed(t, 50)
	logs, _ := filepath.Glob(filepath.Join(pdir, "*.log"))
	next := int64(0)
	for _, l := range logs {
		sf, err := stream.OpenSegmentFile(l)
		if err != nil {
			t.Fatal(err)
		}
		var pos int64
		for b, err := range sf.Batches() {
			if err != nil || b.Err != nil {
				t.Fatal(err, b.Err)
			}
			if b.BaseOffset != next || b.Position != pos || b.Count != 1 || b.ProducerID != -1 || b.Compression != stream.CompressNone {
				t.Fatalf("batch %+v, want offset %d at %d", b, next, pos)
			}
			recs, err := sf.Records(b)
			if err != nil || len(recs) != 1 || recs[0].Offset != next || string(recs[0].Value) != string(value(int(next))) {
				t.Fatalf("Records = %v, %v", recs, err)
			}
			next, pos = b.LastOffset+1, pos+b.Size
		}
		sf.Close()
	}
	if next != 50 {
		t.Fatalf("dumped %d records, want 50", next)
	}
}

func flipByte(t *testing.T, path string, pos int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, pos); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0x40
	if _, err := f.WriteAt(b, pos); err != nil {
		t.Fatal(err)
	}
}

// TestDamageBeforeTheLastSegmentIsNeverTruncated: with the recovery
// point lost, Open validates every segment; damage found in one that a
// later segment follows must not cost the later ones (nor the damaged
// one's tail): reads report it instead.
func TestDamageBeforeTheLastSegmentIsNeverTruncated(t *testing.T) {
	dir, pdir := writeClosed(t, 300)
	logs, _ := filepath.Glob(filepath.Join(pdir, "*.log"))
	if err := os.Remove(filepath.Join(pdir, "recovery-point")); err != nil {
		t.Fatal(err)
	}
	sf, err := stream.OpenSegmentFile(logs[1])
	if err != nil {
		t.Fatal(err)
	}
	var victim stream.SegmentBatch
	for b := range sf.Batches() {
		victim = b // the last batch of the segment
	}
	sf.Close()
	flipByte(t, logs[1], victim.Position+victim.Size-2)

	s := reopen(t, dir, nil)
	p := existing(t, s, "t", 0)
	if hw := p.HighWatermark(); hw != 300 {
		t.Fatalf("high watermark %d after reopen, want 300", hw)
	}
	after, _ := filepath.Glob(filepath.Join(pdir, "*.log"))
	if len(after) != len(logs) {
		t.Fatalf("%d segments after reopen, want %d", len(after), len(logs))
	}
	_, err = p.Read(victim.BaseOffset, 1)
	var ce *stream.CorruptError
	if !errors.As(err, &ce) || ce.File != logs[1] || ce.Position != victim.Position {
		t.Fatalf("Read of the damaged batch: %v, want a CorruptError at %s:%d", err, logs[1], victim.Position)
	}
	checkValues(t, readAll(t, p, victim.LastOffset+1), int(victim.LastOffset+1))
}

// TestMissingSegmentIsReported: a segment file removed from the middle
// of a partition (outside damage) makes reads of its offsets fail with
// ErrCorrupt, and Scan end with it, rather than return nothing below the
// high watermark.
func TestMissingSegmentIsReported(t *testing.T) {
	dir, pdir := writeClosed(t, 300)
	logs, _ := filepath.Glob(filepath.Join(pdir, "*.log"))
	sf, err := stream.OpenSegmentFile(logs[2])
	if err != nil {
		t.Fatal(err)
	}
	var first stream.SegmentBatch
	for b := range sf.Batches() {
		first = b
		break
	}
	sf.Close()
	if err := os.Remove(logs[2]); err != nil {
		t.Fatal(err)
	}
	s := reopen(t, dir, nil)
	p := existing(t, s, "t", 0)
	if _, err := p.Read(first.BaseOffset, 100); !errors.Is(err, stream.ErrCorrupt) {
		t.Fatalf("Read in the missing segment: %v, want ErrCorrupt", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	n := 0
	for _, err := range p.Scan(ctx, 0) {
		if err != nil {
			if !errors.Is(err, stream.ErrCorrupt) {
				t.Fatalf("Scan ended with %v after %d records, want ErrCorrupt", err, n)
			}
			break
		}
		n++
	}
	if int64(n) != first.BaseOffset {
		t.Fatalf("Scan gave %d records before the gap at %d", n, first.BaseOffset)
	}
}

// TestVerifyIsReadOnly: Verify changes nothing in the directory it checks,
// not even the LOCK file (Open's lock writes its process ID there), and
// creates no LOCK where there was none.
func TestVerifyIsReadOnly(t *testing.T) {
	dir, _ := writeClosed(t, 300)
	snapshot := func() map[string]string {
		m := map[string]string{}
		err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
			if err != nil {
				return err
			}
			fi, err := d.Info()
			if err != nil {
				return err
			}
			m[path] = fi.Mode().String() + " " + fi.ModTime().String() + " " + strconv.FormatInt(fi.Size(), 10)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	check := func(name string) {
		t.Helper()
		// Date every entry back, so that a write shows in its time.
		past := time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)
		for path := range snapshot() {
			if err := os.Chtimes(path, past, past); err != nil {
				t.Fatal(err)
			}
		}
		before := snapshot()
		if problems, err := stream.Verify(dir); err != nil || len(problems) != 0 {
			t.Fatalf("%s: Verify = %v, %v; want no problems", name, problems, err)
		}
		after := snapshot()
		for path, was := range before {
			if now, ok := after[path]; !ok || now != was {
				t.Errorf("%s: Verify changed %s: %q, now %q", name, path, was, now)
			}
		}
		for path := range after {
			if _, ok := before[path]; !ok {
				t.Errorf("%s: Verify created %s", name, path)
			}
		}
	}
	check("with LOCK")
	if err := os.Remove(filepath.Join(dir, "LOCK")); err != nil {
		t.Fatal(err)
	}
	check("without LOCK")
}
