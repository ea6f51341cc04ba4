package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

func TestVerifyClean(t *testing.T) {
	dir, logs := writeSegments(t, 20, 3)
	mustRun(t, "create", "-dir", dir, "-partitions", "2", "other")
	out := mustRun(t, "verify", "-dir", dir)
	want := fmt.Sprintf(`^ok: %s: 2 topics, 3 partitions, %d segments, [\d.]+ (B|KiB) of record batches verified, no problems\n$`,
		regexp.QuoteMeta(dir), len(logs)+2)
	if !regexp.MustCompile(want).MatchString(out) {
		t.Errorf("verify: %q, want it to match %q", out, want)
	}
	var rep verifyReport
	if err := json.Unmarshal([]byte(mustRun(t, "verify", "-dir", dir, "-json")), &rep); err != nil {
		t.Fatal(err)
	}
	if !rep.OK || rep.Dir != dir || rep.Topics != 2 || rep.Partitions != 3 || rep.Segments != len(logs)+2 ||
		rep.LogBytes == 0 || rep.Problems == nil || len(rep.Problems) != 0 {
		t.Errorf("verify -json: %+v", rep)
	}
}

// TestVerifyFlippedByte flips a byte inside the second batch of a sealed
// segment: verify exits 1 and names the file and the batch's position.
func TestVerifyFlippedByte(t *testing.T) {
	dir, logs := writeSegments(t, 20, 3)
	if len(logs) < 3 {
		t.Fatalf("%d segments, want several", len(logs))
	}
	victim := logs[1] // sealed: not the last
	second := segmentBatches(t, victim)[1]
	data, err := os.ReadFile(victim)
	if err != nil {
		t.Fatal(err)
	}
	data[second.Position+second.Size-3] ^= 0x40 // in the last record's value
	if err := os.WriteFile(victim, data, 0o644); err != nil {
		t.Fatal(err)
	}

	code, out, errOut := runCmd(t, "verify", "-dir", dir)
	t.Logf("verify:\n%s", out)
	if code != 1 || errOut != "stream verify: "+dir+": 1 problem found\n" {
		t.Errorf("exit status %d, stderr %q; want 1 and the count of problems", code, errOut)
	}
	lines := strings.Split(out, "\n")
	if len(lines) != 5 || !strings.HasPrefix(lines[0], dir+": 1 problem in 1 topic, 1 partition, ") ||
		!regexp.MustCompile(`^file +position  problem$`).MatchString(lines[2]) {
		t.Fatalf("verify output:\n%s", out)
	}
	f := strings.Fields(lines[3])
	if len(f) < 4 || f[0] != victim || f[1] != fmt.Sprint(second.Position) || f[2] != "crc" || f[3] != "mismatch:" {
		t.Errorf("problem line %q: want %s, position %d, crc mismatch", lines[3], victim, second.Position)
	}

	code, out, _ = runCmd(t, "verify", "-dir", dir, "-json")
	var rep verifyReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil || code != 1 {
		t.Fatalf("verify -json: status %d, %v\n%s", code, err, out)
	}
	if rep.OK || len(rep.Problems) != 1 || rep.Problems[0].File != victim || rep.Problems[0].Position != second.Position ||
		!strings.HasPrefix(rep.Problems[0].Problem, "crc mismatch") {
		t.Errorf("verify -json: %+v", rep)
	}

	// dump agrees: the segment's first batch, then the damaged one.
	code, out, _ = runCmd(t, "dump", victim)
	if rows := dumpRows(t, out); code != 1 || len(rows) != 2 || rows[1].position != second.Position || rows[1].verdict != "DAMAGED" {
		t.Errorf("dump of the damaged segment: status %d\n%s", code, out)
	}
	if want := fmt.Sprintf("\n  ^ at byte %d: crc mismatch: stored %08x, computed ", second.Position, second.CRC); !strings.Contains(out, want) {
		t.Errorf("dump lacks %q", want)
	}
}

// TestVerifyDamagedIndex damages an index, which Open would rebuild:
// verify still reports it.
func TestVerifyDamagedIndex(t *testing.T) {
	dir, logs := writeSegments(t, 20, 3)
	idx := filepath.Join(dir, "topics", "t-0", strings.TrimSuffix(filepath.Base(logs[0]), ".log")+".timeindex")
	if err := os.WriteFile(idx, []byte{1, 2, 3}, 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, _ := runCmd(t, "verify", "-dir", dir)
	if code != 1 || !regexp.MustCompile(`(?m)^`+regexp.QuoteMeta(idx)+` +0  3 stray bytes after the last entry$`).MatchString(out) {
		t.Errorf("verify: status %d\n%s", code, out)
	}
}
