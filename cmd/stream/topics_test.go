package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/instream/stream"
)

// t0 is the timestamp of the first record the storage tests write, so
// that what dump prints is the same on every run.
var t0 = time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)

// fillTopic appends batches of perBatch records to every partition of an
// existing topic, with fixed timestamps, keys "k<i>" and values
// "value <i>" (i counts per partition), and closes the stream. Segments
// roll at 1 KiB, so a few batches make several segments.
func fillTopic(t *testing.T, dir, topic string, batches, perBatch int) {
	t.Helper()
	s, err := stream.Open(dir, &stream.Options{Sync: stream.SyncNever, SegmentBytes: stream.KiB})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	tp, err := s.Topic(topic)
	if err != nil {
		t.Fatal(err)
	}
	for pi := range tp.NumPartitions() {
		p, _ := tp.Partition(int32(pi))
		i := int(p.HighWatermark())
		for range batches {
			var b stream.Batch
			for range perBatch {
				b.AddRecord(&stream.Record{Key: fmt.Appendf(nil, "k%d", i), Value: fmt.Appendf(nil, "value %d", i),
					Timestamp: t0.Add(time.Duration(i) * time.Millisecond)})
				i++
			}
			if _, err := p.AppendBatch(&b); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

// mustRun runs a command line that must succeed and returns its stdout.
func mustRun(t *testing.T, args ...string) string {
	t.Helper()
	code, out, errOut := runCmd(t, args...)
	if code != 0 {
		t.Fatalf("stream %q: exit status %d\nstdout:\n%s\nstderr:\n%s", args, code, out, errOut)
	}
	return out
}

// fields splits each non-empty line of a table into its columns.
func fields(out string) [][]string {
	var rows [][]string
	for _, line := range strings.Split(out, "\n") {
		if line != "" {
			rows = append(rows, strings.Fields(line))
		}
	}
	return rows
}

func TestCreateTopicsDelete(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")

	out := mustRun(t, "create", "-dir", dir, "events", "-partitions", "2", "-retention", "30d", "-segment-bytes", "1KiB")
	want := "created topic events in " + dir + ": 2 partitions, retention 30 days, retention bytes unlimited, segments of 1.0 KiB\n"
	if out != want {
		t.Errorf("create events:\n got %q\nwant %q", out, want)
	}
	out = mustRun(t, "create", "-dir", dir, "-retention", "forever", "-retention-bytes", "1 MiB", "audit")
	want = "created topic audit in " + dir + ": 1 partition, retention forever, retention bytes 1.0 MiB a partition, segments of the stream's default\n"
	if out != want {
		t.Errorf("create audit:\n got %q\nwant %q", out, want)
	}
	fillTopic(t, dir, "events", 6, 10)

	// The table: a line per partition, a blank line, the totals.
	out = mustRun(t, "topics", "-dir", dir)
	t.Logf("topics:\n%s", out)
	lines := strings.Split(out, "\n")
	if len(lines) != 7 || lines[0] != "topic   partition  start  end  records  segments     size" || lines[4] != "" {
		t.Fatalf("topics output:\n%s", out)
	}
	for i, w := range []string{"audit 0 0 0 0 1 0 B", "events 0 0 60 60 ", "events 1 0 60 60 "} {
		if got := strings.Join(strings.Fields(lines[i+1]), " "); !strings.HasPrefix(got, w) {
			t.Errorf("topics line %d: %q, want columns %q...", i+1, lines[i+1], w)
		}
	}
	if !regexp.MustCompile(`^2 topics, 3 partitions, 120 records, \d+ segments, [\d.]+ KiB on disk$`).MatchString(lines[5]) {
		t.Errorf("topics totals: %q", lines[5])
	}

	// -json has the configurations and sizes that match the files.
	var rep struct {
		Dir    string `json:"dir"`
		Topics []struct {
			Name   string `json:"name"`
			Config struct {
				Partitions     int   `json:"partitions"`
				RetentionMs    int64 `json:"retention_ms"`
				RetentionBytes int64 `json:"retention_bytes"`
				SegmentBytes   int64 `json:"segment_bytes"`
			} `json:"config"`
			Partitions []partitionInfo `json:"partitions"`
		} `json:"topics"`
	}
	out = mustRun(t, "topics", "-dir", dir, "-json")
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("topics -json: %v\n%s", err, out)
	}
	if rep.Dir != dir || len(rep.Topics) != 2 || rep.Topics[0].Name != "audit" || rep.Topics[1].Name != "events" {
		t.Fatalf("topics -json: %+v", rep)
	}
	if c := rep.Topics[0].Config; c.Partitions != 1 || c.RetentionMs != -1 || c.RetentionBytes != 1<<20 || c.SegmentBytes != 0 {
		t.Errorf("audit config %+v", c)
	}
	if c := rep.Topics[1].Config; c.Partitions != 2 || c.RetentionMs != 30*24*3600*1000 || c.RetentionBytes != 0 || c.SegmentBytes != 1<<10 {
		t.Errorf("events config %+v", c)
	}
	for _, p := range rep.Topics[1].Partitions {
		logs, _ := filepath.Glob(filepath.Join(dir, "topics", fmt.Sprintf("events-%d", p.Partition), "*.log"))
		var logBytes int64
		for _, l := range logs {
			fi, _ := os.Stat(l)
			logBytes += fi.Size()
		}
		if p.StartOffset != 0 || p.HighWatermark != 60 || p.Records != 60 || p.Segments != len(logs) || p.Segments < 2 ||
			p.LogBytes != logBytes || p.Bytes < p.LogBytes {
			t.Errorf("events partition %+v; %d .log files of %d bytes", p, len(logs), logBytes)
		}
	}

	out = mustRun(t, "delete", "events", "-dir", dir)
	if !regexp.MustCompile(`^deleted topic events from ` + regexp.QuoteMeta(dir) + `: 2 partitions, 120 records, [2-9] segments\n$`).MatchString(out) {
		t.Errorf("delete: %q", out)
	}
	if _, err := os.Stat(filepath.Join(dir, "topics", "events-0")); !os.IsNotExist(err) {
		t.Errorf("events-0 after delete: %v", err)
	}
	out = mustRun(t, "topics", "-dir", dir)
	if rows := fields(out); len(rows) != 3 || rows[1][0] != "audit" {
		t.Errorf("topics after delete:\n%s", out)
	}
	out = mustRun(t, "delete", "-dir", dir, "-json", "audit")
	var del struct {
		Dir        string `json:"dir"`
		Topic      string `json:"topic"`
		Partitions int    `json:"partitions"`
		Records    int64  `json:"records"`
		Segments   int    `json:"segments"`
	}
	if err := json.Unmarshal([]byte(out), &del); err != nil || del.Dir != dir || del.Topic != "audit" ||
		del.Partitions != 1 || del.Records != 0 || del.Segments != 1 {
		t.Errorf("delete -json: %v\n%s", err, out)
	}
	if out := mustRun(t, "topics", "-dir", dir); out != "no topics in "+dir+"\n" {
		t.Errorf("topics with none: %q", out)
	}
	if out := mustRun(t, "topics", "-dir", dir, "-json"); !strings.Contains(out, `"topics": []`) {
		t.Errorf("topics -json with none: %s", out)
	}
}

func TestCreateJSON(t *testing.T) {
	dir := t.TempDir()
	out := mustRun(t, "create", "-dir", dir, "-json", "-partitions", "3", "-retention", "36h", "t")
	var info struct {
		Name   string `json:"name"`
		Config struct {
			Partitions  int   `json:"partitions"`
			RetentionMs int64 `json:"retention_ms"`
		} `json:"config"`
		Partitions []partitionInfo `json:"partitions"`
	}
	if err := json.Unmarshal([]byte(out), &info); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if info.Name != "t" || info.Config.Partitions != 3 || info.Config.RetentionMs != 36*3600*1000 || len(info.Partitions) != 3 {
		t.Errorf("create -json: %s", out)
	}
}

func TestStorageCommandErrors(t *testing.T) {
	base := t.TempDir()
	dir := filepath.Join(base, "data")
	mustRun(t, "create", "-dir", dir, "t")
	missing := filepath.Join(base, "missing")
	plain := t.TempDir() // exists, holds no stream
	for _, tc := range []struct {
		args []string
		code int
		err  string
	}{
		{[]string{"create", "-dir", dir, "t"}, 1, "topic already exists"},
		{[]string{"create", "-dir", dir, "no/slash"}, 2, "no/slash"},
		{[]string{"create", "-dir", dir, "-partitions", "0", "u"}, 2, "-partitions 0: must be 1 or more"},
		{[]string{"create", "-dir", dir, "-retention", "soon", "u"}, 2, "invalid value \"soon\" for flag -retention"},
		{[]string{"create", "-dir", dir, "-segment-bytes", "12", "u"}, 2, "SegmentBytes"},
		{[]string{"create", "-dir", dir, "-retention-bytes", "lots", "u"}, 2, "invalid value"},
		{[]string{"create", "-dir", dir}, 2, "want one topic name, got 0 arguments"},
		{[]string{"create", "-dir", dir, "a", "b"}, 2, "want one topic name, got 2 arguments"},
		{[]string{"delete", "-dir", dir, "nosuch"}, 1, "unknown topic"},
		{[]string{"delete", "-dir", dir}, 2, "want one topic name"},
		{[]string{"topics", "-dir", dir, "extra"}, 2, "unexpected arguments"},
		{[]string{"verify", "-dir", dir, "extra"}, 2, "unexpected arguments"},
		{[]string{"topics", "-dir", missing}, 1, "directory " + missing + " does not exist"},
		{[]string{"delete", "-dir", missing, "t"}, 1, "directory " + missing + " does not exist"},
		{[]string{"verify", "-dir", missing}, 1, "directory " + missing + " does not exist"},
		{[]string{"topics", "-dir", plain}, 1, plain + " is not a stream directory"},
		{[]string{"verify", "-dir", plain}, 1, plain + " is not a stream directory"},
		{[]string{"dump"}, 2, "want one segment file"},
		{[]string{"dump", filepath.Join(base, "nosuch.log")}, 1, "nosuch.log: no such file"},
		{[]string{"dump", "-max-bytes", "-1", "x.log"}, 2, "-max-bytes -1"},
		{[]string{"dump", "00000000000000000000.index"}, 2, "is an index: dump decodes the segment's .log file"},
		{[]string{"dump", "-dir", dir, "x.log"}, 1, "x.log: no such file"},
	} {
		code, out, errOut := runCmd(t, tc.args...)
		if code != tc.code || !strings.Contains(errOut, tc.err) {
			t.Errorf("stream %q: status %d, stderr %q; want status %d, stderr with %q\nstdout: %q",
				tc.args, code, errOut, tc.code, tc.err, out)
		}
	}
	// Inspecting commands made nothing where there was nothing.
	if _, err := os.Stat(missing); !os.IsNotExist(err) {
		t.Errorf("%s: %v, want it not to exist", missing, err)
	}
	if entries, _ := os.ReadDir(plain); len(entries) != 0 {
		t.Errorf("%s holds %d entries, want none", plain, len(entries))
	}
	// Help for each command.
	for _, name := range []string{"topics", "create", "delete", "dump", "verify"} {
		code, _, errOut := runCmd(t, name, "-h")
		if code != 0 || !strings.Contains(errOut, "Usage: stream "+name+" [flags]") || !strings.Contains(errOut, "-json") {
			t.Errorf("stream %s -h: status %d\n%s", name, code, errOut)
		}
	}
}

// TestStorageCommandsLockedDir runs each command that opens a directory
// on one another process holds: each must fail at once with an error
// naming the directory, not wait.
func TestStorageCommandsLockedDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "held")
	mustRun(t, "create", "-dir", dir, "t")
	holdDir(t, dir)
	for _, args := range [][]string{
		{"topics", "-dir", dir},
		{"create", "-dir", dir, "u"},
		{"delete", "-dir", dir, "t"},
		{"verify", "-dir", dir},
	} {
		start := time.Now()
		code, out, errOut := runCmd(t, args...)
		if elapsed := time.Since(start); elapsed > 5*time.Second {
			t.Errorf("stream %q on a held directory took %v to fail", args, elapsed)
		}
		if code != 1 || !strings.Contains(errOut, dir) || !strings.Contains(errOut, "in use") || out != "" {
			t.Errorf("stream %q on a held directory: status %d, stdout %q, stderr %q; want status 1 and the error naming %s",
				args, code, out, errOut, dir)
		}
	}
}

// holdDir opens dir in another process (the test binary running
// TestHelperHoldDir) until the test ends.
func holdDir(t *testing.T, dir string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperHoldDir$")
	cmd.Env = append(os.Environ(), "STREAM_TEST_HOLD_DIR="+dir)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stdin.Close() // the holder exits when its stdin closes
		cmd.Wait()
	})
	if line, err := bufio.NewReader(stdout).ReadString('\n'); err != nil || line != "holding\n" {
		t.Fatalf("holder process: %q, %v", line, err)
	}
}

// topics -alter grows a topic with Stream.CreatePartitions and lists the
// result; shrinking is refused.
func TestTopicsAlterPartitions(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	mustRun(t, "create", "-dir", dir, "-partitions", "2", "events")
	out := mustRun(t, "topics", "-dir", dir, "-alter", "events", "-partitions", "3")
	if rows := fields(out); len(rows) != 5 || rows[3][0] != "events" || rows[3][1] != "2" {
		t.Fatalf("topics -alter events -partitions 3:\n%s", out)
	}
	code, _, errOut := runCmd(t, "topics", "-dir", dir, "-alter", "events", "-partitions", "2")
	if code == 0 || !strings.Contains(errOut, "can only grow") {
		t.Fatalf("shrinking: exit %d, stderr %q", code, errOut)
	}
	if code, _, _ := runCmd(t, "topics", "-dir", dir, "-alter", "events"); code != 2 {
		t.Fatalf("-alter without -partitions: exit %d, want 2 (usage)", code)
	}
}
