package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"testing"
)

func TestBench(t *testing.T) {
	out := mustRun(t, "bench", "-records", "2000", "-size", "50", "-partitions", "3", "-producers", "2", "-consumers", "2",
		"-sync", "never", "-linger", "0", "-json")
	var rep benchReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("bench -json: %v\n%s", err, out)
	}
	if rep.Produce.Records != 2000 || rep.Consume.Records < 2000 || rep.Consume.Records != 2000+rep.Duplicates ||
		rep.Produce.RecordsPerSec <= 0 || rep.Consume.MBPerSec <= 0 || rep.Latency.Records != 2000 ||
		rep.Latency.P50us <= 0 || rep.Latency.P50us > rep.Latency.P99us || rep.Latency.P99us > rep.Latency.MaxUs ||
		rep.LogBytes < 2000*58 || rep.DirBytes < rep.LogBytes || rep.Segments != 3 || rep.Kept {
		t.Errorf("bench report %+v", rep)
	}
	if _, err := os.Stat(rep.Dir); !os.IsNotExist(err) {
		t.Errorf("temporary directory %s after bench: %v, want it removed", rep.Dir, err)
	}

	// In a chosen directory: kept, and a second run refuses to reuse it.
	dir := filepath.Join(t.TempDir(), "data")
	out = mustRun(t, "bench", "-dir", dir, "-records", "300", "-consumers", "3")
	t.Logf("bench:\n%s", out)
	for _, want := range []string{
		`(?m)^stream bench: 300 records of 100 B values \(8-byte keys\), 4 partitions, 1 producer, sync=always, batch 64 KiB, linger 5ms$`,
		`(?m)^produce +300 +\S+ +[\d,]+ +[\d.]+ +1 Producer, SendAsync, acks=all$`,
		`(?m)^consume +300 +\S+ +[\d,]+ +[\d.]+ +consumer group of 3 members, Poll$`,
		`(?m)^produce latency: p50 \S+, p99 \S+, p99.9 \S+, max \S+$`,
		`(?m)^duplicates: +0$`,
		`(?m)^on disk: +\S+ \S+ of record batches in 4 segments; \S+ \S+ in ` + regexp.QuoteMeta(dir) + `$`,
	} {
		if !regexp.MustCompile(want).MatchString(out) {
			t.Errorf("bench output does not match %q", want)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "meta.db")); err != nil {
		t.Errorf("-dir not kept: %v", err)
	}
	code, _, errOut := runCmd(t, "bench", "-dir", dir, "-records", "10")
	if code != 1 || !regexp.MustCompile(`already holds a topic bench`).MatchString(errOut) {
		t.Errorf("second bench in %s: status %d, %q", dir, code, errOut)
	}
	for _, args := range [][]string{{"-records", "0"}, {"-producers", "0"}, {"-sync", "sometimes"}, {"-dir", dir, "-keep=false"}} {
		if code, _, _ := runCmd(t, append([]string{"bench"}, args...)...); code != 2 {
			t.Errorf("bench %q: status %d, want 2", args, code)
		}
	}
}
