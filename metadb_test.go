package stream_test

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/instream/stream"
)

// TestTruncatedMetaDB: a meta.db cut short (a torn copy, a disk that
// lost its tail) made Open die of SIGBUS inside bbolt, which mapped the
// file and read its freelist page past the end; no recover can catch
// that. Open must fail with a *CorruptError naming meta.db instead.
// Found by the torture suite's meta.db damage (TestTorture, disk mode).
func TestTruncatedMetaDB(t *testing.T) {
	if os.Getenv("STREAM_TRUNCATED_META_CHILD") != "" {
		// Open succeeds with every topic (the cut took free pages
		// only), or fails naming meta.db.
		s, err := stream.Open(os.Getenv("STREAM_TRUNCATED_META_CHILD"), nil)
		if err == nil {
			n := len(s.Topics())
			s.Close()
			if n != 20 {
				t.Fatalf("Open of a truncated meta.db succeeded with %d topics of 20", n)
			}
			return
		}
		var ce *stream.CorruptError
		if !errors.As(err, &ce) || filepath.Base(ce.File) != "meta.db" {
			t.Fatalf("Open of a truncated meta.db: %v, want a CorruptError naming meta.db", err)
		}
		return
	}
	dir := t.TempDir()
	s, err := stream.Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		if _, err := s.CreateTopic("t"+string(rune('a'+i)), stream.TopicConfig{}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	meta := filepath.Join(dir, "meta.db")
	b, err := os.ReadFile(meta)
	if err != nil {
		t.Fatal(err)
	}
	for _, size := range []int{2 * 4096, len(b) / 2, len(b) - 4096, len(b) - 1} {
		if err := os.WriteFile(meta, b[:size], 0o644); err != nil {
			t.Fatal(err)
		}
		// In a child: the bug kills the process.
		cmd := exec.Command(os.Args[0], "-test.run=^TestTruncatedMetaDB$", "-test.count=1")
		cmd.Env = append(os.Environ(), "STREAM_TRUNCATED_META_CHILD="+dir)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("meta.db of %d bytes cut to %d: %v\n%s", len(b), size, err, firstLines(string(out), 8))
		}
	}
}

func firstLines(s string, n int) string {
	lines := strings.SplitN(s, "\n", n+1)
	return strings.Join(lines[:min(n, len(lines))], "\n")
}
