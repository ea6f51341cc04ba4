package main

import (
	"bytes"
	"context"
	"encoding/json"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// runCmdIn runs the command line args as main would with stdin, and
// returns the exit status, stdout and stderr.
func runCmdIn(t *testing.T, stdin string, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), args, strings.NewReader(stdin), &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

// mustRunIn runs a command line with stdin that must succeed and returns
// its stdout.
func mustRunIn(t *testing.T, stdin string, args ...string) string {
	t.Helper()
	code, out, errOut := runCmdIn(t, stdin, args...)
	if code != 0 {
		t.Fatalf("stream %q: exit status %d\nstdout:\n%s\nstderr:\n%s", args, code, out, errOut)
	}
	return out
}

// records returns the partition, offset, key and value columns of
// consume's table, one string a record, space-separated.
func records(out string) []string {
	var recs []string
	for _, f := range fields(out) {
		if len(f) >= 5 && f[0] != "partition" {
			recs = append(recs, f[0]+" "+f[1]+" "+f[3]+" "+strings.Join(f[4:], " "))
		}
	}
	return recs
}

func TestProduceConsume(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	mustRun(t, "create", "-dir", dir, "-partitions", "3", "events")

	var in strings.Builder
	for i := range 30 {
		in.WriteString("user" + string(rune('a'+i%5)) + "=" + "event-" + itoa(i) + "\r\n")
	}
	out := mustRunIn(t, in.String(), "produce", "-dir", dir, "events", "-key-sep", "=", "-compression", "zstd")
	t.Logf("produce:\n%s", out)
	if !strings.HasPrefix(out, "produced 30 records to events: 30 delivered, 0 failed\n") {
		t.Errorf("produce summary:\n%s", out)
	}

	out = mustRun(t, "consume", "-dir", dir, "events")
	t.Logf("consume:\n%s", out)
	recs := records(out)
	if len(recs) != 30 {
		t.Fatalf("consume printed %d records, want 30:\n%s", len(recs), out)
	}
	// Every record is back, in the order sent within each partition, and
	// each key always in the same partition.
	lastIndex := map[string]int{}
	keyPart := map[string]string{}
	nextOffset := map[string]int{}
	seen := map[string]bool{}
	for _, r := range recs {
		f := strings.Fields(r)
		part, off, key, value := f[0], f[1], f[2], f[3]
		if off != itoa(nextOffset[part]) {
			t.Errorf("partition %s: offset %s, want %d", part, off, nextOffset[part])
		}
		nextOffset[part]++
		if p, ok := keyPart[key]; ok && p != part {
			t.Errorf("key %s in partitions %s and %s", key, p, part)
		}
		keyPart[key] = part
		i := atoi(t, strings.TrimPrefix(value, "event-"))
		if want := "user" + string(rune('a'+i%5)); key != want {
			t.Errorf("value %s has key %s, want %s", value, key, want)
		}
		if last, ok := lastIndex[part]; ok && i <= last {
			t.Errorf("partition %s: event %d after event %d", part, i, last)
		}
		lastIndex[part] = i
		seen[value] = true
	}
	if len(seen) != 30 {
		t.Errorf("%d distinct values, want 30", len(seen))
	}

	// -partition and no key: every record in partition 2, key null.
	out = mustRunIn(t, "x\ny\n", "produce", "-dir", dir, "-partition", "2", "events")
	want := "produced 2 records to events: 2 delivered, 0 failed\n\npartition  records  first offset  last offset\n" +
		"        2        2" + pad(14-len(itoa(nextOffset["2"]))) + itoa(nextOffset["2"]) + pad(13-len(itoa(nextOffset["2"]+1))) + itoa(nextOffset["2"]+1) + "\n"
	if out != want {
		t.Errorf("produce -partition 2:\n got %q\nwant %q", out, want)
	}
	out = mustRun(t, "consume", "-dir", dir, "events", "-partition", "2", "-from", itoa(nextOffset["2"]))
	if got := records(out); strings.Join(got, ";") != "2 "+itoa(nextOffset["2"])+" null x;2 "+itoa(nextOffset["2"]+1)+" null y" {
		t.Errorf("consume -partition 2 -from %d: %q\n%s", nextOffset["2"], got, out)
	}
}

func itoa(i int) string { return strconv.Itoa(i) }

func atoi(t *testing.T, s string) int {
	t.Helper()
	i, err := strconv.Atoi(s)
	if err != nil {
		t.Fatal(err)
	}
	return i
}

func pad(n int) string { return strings.Repeat(" ", max(n, 0)) }

func TestProduceErrors(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	mustRun(t, "create", "-dir", dir, "t")
	code, out, errOut := runCmdIn(t, "a:1\nno separator\nb:2\n", "produce", "-dir", dir, "-key-sep", ":", "t")
	if code != 1 || !strings.Contains(errOut, `line 2: no key separator ":"`) || !strings.Contains(errOut, "1 record of 3 failed") {
		t.Errorf("status %d, stderr %q", code, errOut)
	}
	if !strings.HasPrefix(out, "produced 3 records to t: 2 delivered, 1 failed\n") {
		t.Errorf("stdout %q", out)
	}
	// The good lines were delivered.
	if got := records(mustRun(t, "consume", "-dir", dir, "t")); strings.Join(got, ";") != "0 0 a 1;0 1 b 2" {
		t.Errorf("consume after a failed line: %q", got)
	}

	// -json, -acks none: offsets are not known.
	out = mustRunIn(t, "v\n", "produce", "-dir", dir, "-acks", "none", "-json", "t")
	var rep produceReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("produce -json: %v\n%s", err, out)
	}
	if rep.Topic != "t" || rep.Records != 1 || rep.Delivered != 1 || rep.Failed != 0 || len(rep.Partitions) != 1 ||
		rep.Partitions[0].FirstOffset != -1 || len(rep.Errors) != 0 {
		t.Errorf("produce -acks none -json: %+v", rep)
	}

	for _, tc := range []struct {
		args []string
		code int
		err  string
	}{
		{[]string{"produce", "-dir", dir}, 2, "want one topic name"},
		{[]string{"produce", "-dir", dir, "nosuch"}, 1, "unknown topic"},
		{[]string{"produce", "-dir", dir, "-partition", "1", "t"}, 1, "-partition 1: topic t has 1 partition"},
		{[]string{"produce", "-dir", dir, "-acks", "some", "t"}, 2, "want all, leader or none"},
		{[]string{"produce", "-dir", dir, "-compression", "rar", "t"}, 2, "invalid value"},
		{[]string{"produce", "-dir", filepath.Join(dir, "missing"), "t"}, 1, "does not exist"},
	} {
		code, _, errOut := runCmdIn(t, "x\n", tc.args...)
		if code != tc.code || !strings.Contains(errOut, tc.err) {
			t.Errorf("stream %q: status %d, stderr %q; want %d and %q", tc.args, code, errOut, tc.code, tc.err)
		}
	}
}

// TestConsumeGolden prints records with fixed timestamps: the table and
// the JSON lines are the same on every run.
func TestConsumeGolden(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	mustRun(t, "create", "-dir", dir, "-partitions", "2", "t")
	fillTopic(t, dir, "t", 2, 2)
	out := mustRun(t, "consume", "-dir", dir, "t")
	want := `partition    offset  timestamp                 key       value
        0         0  2025-01-02T03:04:05.000Z  k0        value 0
        0         1  2025-01-02T03:04:05.001Z  k1        value 1
        0         2  2025-01-02T03:04:05.002Z  k2        value 2
        0         3  2025-01-02T03:04:05.003Z  k3        value 3
        1         0  2025-01-02T03:04:05.000Z  k0        value 0
        1         1  2025-01-02T03:04:05.001Z  k1        value 1
        1         2  2025-01-02T03:04:05.002Z  k2        value 2
        1         3  2025-01-02T03:04:05.003Z  k3        value 3
`
	if out != want {
		t.Errorf("consume:\n%s\nwant:\n%s", out, want)
	}

	// -from a time: the first record at or after it, in each partition.
	out = mustRun(t, "consume", "-dir", dir, "t", "-from", "2025-01-02T03:04:05.002Z", "-json")
	want = `{"topic":"t","partition":0,"offset":2,"timestamp":"2025-01-02T03:04:05.002Z","key":"k2","value":"value 2"}
{"topic":"t","partition":0,"offset":3,"timestamp":"2025-01-02T03:04:05.003Z","key":"k3","value":"value 3"}
{"topic":"t","partition":1,"offset":2,"timestamp":"2025-01-02T03:04:05.002Z","key":"k2","value":"value 2"}
{"topic":"t","partition":1,"offset":3,"timestamp":"2025-01-02T03:04:05.003Z","key":"k3","value":"value 3"}
`
	if out != want {
		t.Errorf("consume -from time -json:\n%s\nwant:\n%s", out, want)
	}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var r consumedRecordJSON
		if err := json.Unmarshal([]byte(line), &r); err != nil || r.Value == nil {
			t.Errorf("%s: %v", line, err)
		}
	}

	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"-from", "latest"}, nil},
		{[]string{"-from", "3"}, []string{"0 3 k3 value 3", "1 3 k3 value 3"}},
		{[]string{"-from", "99"}, nil},
		{[]string{"-from", "2030-01-01T00:00:00Z"}, nil},
		{[]string{"-n", "3"}, []string{"0 0 k0 value 0", "0 1 k1 value 1", "0 2 k2 value 2"}},
		{[]string{"-partition", "1", "-n", "1"}, []string{"1 0 k0 value 0"}},
	} {
		out := mustRun(t, append([]string{"consume", "-dir", dir, "t"}, tc.args...)...)
		if got := records(out); strings.Join(got, ";") != strings.Join(tc.want, ";") {
			t.Errorf("consume %q: %q, want %q\n%s", tc.args, got, tc.want, out)
		}
		if len(tc.want) == 0 && out != "no records\n" {
			t.Errorf("consume %q: %q, want \"no records\"", tc.args, out)
		}
	}

	for _, tc := range []struct {
		args []string
		code int
		err  string
	}{
		{[]string{"-from", "yesterday"}, 2, "want earliest, latest, an offset or an RFC 3339 time"},
		{[]string{"-from", "-3"}, 2, "an offset must be 0 or more"},
		{[]string{"-group", "g", "-partition", "0"}, 2, "-partition cannot be used with -group"},
		{[]string{"-partition", "2"}, 1, "topic t has 2 partitions"},
		{[]string{"-n", "-1"}, 2, "-n -1"},
		{[]string{"-group", "no/slash"}, 1, "invalid name"},
	} {
		code, _, errOut := runCmd(t, append([]string{"consume", "-dir", dir, "t"}, tc.args...)...)
		if code != tc.code || !strings.Contains(errOut, tc.err) {
			t.Errorf("consume %q: status %d, stderr %q; want %d and %q", tc.args, code, errOut, tc.code, tc.err)
		}
	}
}

// TestConsumeGroup consumes as a group: a second run resumes after what
// the first committed, and groups shows the lag before and after.
func TestConsumeGroup(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	mustRun(t, "create", "-dir", dir, "-partitions", "2", "t")
	fillTopic(t, dir, "t", 1, 3) // offsets 0-2 in each partition

	if out := mustRun(t, "groups", "-dir", dir); out != "no consumer groups in "+dir+"\n" {
		t.Errorf("groups with none: %q", out)
	}
	out := mustRun(t, "consume", "-dir", dir, "t", "-group", "g", "-n", "4")
	if got := len(records(out)); got != 4 {
		t.Fatalf("first run printed %d records, want 4\n%s", got, out)
	}
	out = mustRun(t, "groups", "-dir", dir)
	t.Logf("groups:\n%s", out)
	rows := fields(out)
	if len(rows) != 4 || strings.Join(rows[0], " ") != "group g: generation 1, no members, lag 2" ||
		strings.Join(rows[2][:5], " ") != "t 0 3 3 0" || strings.Join(rows[3][:5], " ") != "t 1 1 3 2" {
		t.Errorf("groups after 4 of 6 records:\n%s", out)
	}

	out = mustRun(t, "consume", "-dir", dir, "t", "-group", "g")
	if got := strings.Join(records(out), ";"); got != "1 1 k1 value 1;1 2 k2 value 2" {
		t.Errorf("second run: %q\n%s", got, out)
	}
	out = mustRun(t, "consume", "-dir", dir, "t", "-group", "g")
	if out != "no records\n" {
		t.Errorf("third run, nothing new: %q", out)
	}
	fillTopic(t, dir, "t", 1, 1) // offset 3 in each partition
	var rep struct {
		Dir    string
		Groups []groupInfo
	}
	out = mustRun(t, "groups", "-dir", dir, "g", "-json")
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("groups -json: %v\n%s", err, out)
	}
	if len(rep.Groups) != 1 || rep.Groups[0].Lag != 2 || len(rep.Groups[0].Partitions) != 2 ||
		*rep.Groups[0].Partitions[1].Committed != 3 || rep.Groups[0].Partitions[1].HighWatermark != 4 {
		t.Errorf("groups -json after 2 more records: %s", out)
	}
	out = mustRun(t, "consume", "-dir", dir, "t", "-group", "g", "-json")
	if n := strings.Count(out, "\n"); n != 2 || !strings.Contains(out, `"offset":3`) {
		t.Errorf("fourth run: %d lines\n%s", n, out)
	}

	// -from with a group resets it; latest applies only with nothing
	// committed.
	if got := records(mustRun(t, "consume", "-dir", dir, "t", "-group", "g", "-from", "2")); len(got) != 4 {
		t.Errorf("-from 2: %q", got)
	}
	if got := records(mustRun(t, "consume", "-dir", dir, "t", "-group", "g", "-from", "2025-01-02T03:04:05.003Z")); len(got) != 2 {
		t.Errorf("-from time: %q", got)
	}
	if got := records(mustRun(t, "consume", "-dir", dir, "t", "-group", "h", "-from", "latest")); len(got) != 0 {
		t.Errorf("new group -from latest: %q", got)
	}
	code, _, errOut := runCmd(t, "groups", "-dir", dir, "nosuch")
	if code != 1 || !strings.Contains(errOut, "unknown consumer group") {
		t.Errorf("groups nosuch: status %d, %q", code, errOut)
	}
}

// signalWriter is a buffer that reports each write on a channel.
type signalWriter struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	wrote chan struct{}
}

func (w *signalWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	select {
	case w.wrote <- struct{}{}:
	default:
	}
	return w.buf.Write(p)
}

func (w *signalWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// TestConsumeFollow tails a topic as a group until interrupted: it ends
// cleanly and commits what it printed.
func TestConsumeFollow(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	mustRun(t, "create", "-dir", dir, "-partitions", "2", "t")
	fillTopic(t, dir, "t", 1, 2)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stdout := &signalWriter{wrote: make(chan struct{}, 1)}
	var stderr bytes.Buffer
	done := make(chan int)
	go func() {
		done <- run(ctx, []string{"consume", "-dir", dir, "-group", "g", "-follow", "t"}, strings.NewReader(""), stdout, &stderr)
	}()
	deadline := time.After(10 * time.Second)
	for len(records(stdout.String())) < 4 {
		select {
		case <-stdout.wrote:
		case code := <-done:
			t.Fatalf("consume -follow ended with status %d before interrupted\n%s%s", code, stdout.String(), stderr.String())
		case <-deadline:
			t.Fatalf("consume -follow printed, in 10s:\n%s", stdout.String())
		}
	}
	cancel() // as SIGINT does
	if code := <-done; code != 0 {
		t.Fatalf("consume -follow interrupted: status %d\n%s", code, stderr.String())
	}
	out := mustRun(t, "groups", "-dir", dir, "-json")
	var rep struct{ Groups []groupInfo }
	if err := json.Unmarshal([]byte(out), &rep); err != nil || len(rep.Groups) != 1 || rep.Groups[0].Lag != 0 ||
		len(rep.Groups[0].Partitions) != 2 || *rep.Groups[0].Partitions[0].Committed != 2 {
		t.Errorf("groups after -follow: %v\n%s", err, out)
	}
	// Without a group, -follow -n stops by itself.
	if got := records(mustRun(t, "consume", "-dir", dir, "-follow", "-n", "3", "t")); len(got) != 3 {
		t.Errorf("-follow -n 3: %q", got)
	}
}

// TestClientCommandsLockedDir runs each new command on a directory
// another process holds: each fails at once, naming it.
func TestClientCommandsLockedDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "held")
	mustRun(t, "create", "-dir", dir, "t")
	holdDir(t, dir)
	for _, args := range [][]string{
		{"produce", "-dir", dir, "t"},
		{"consume", "-dir", dir, "t"},
		{"consume", "-dir", dir, "-follow", "-group", "g", "t"},
		{"groups", "-dir", dir},
		{"bench", "-dir", dir, "-records", "10"},
	} {
		start := time.Now()
		code, out, errOut := runCmdIn(t, "x\n", args...)
		if elapsed := time.Since(start); elapsed > 5*time.Second {
			t.Errorf("stream %q on a held directory took %v to fail", args, elapsed)
		}
		if code != 1 || !strings.Contains(errOut, dir) || !strings.Contains(errOut, "in use") || out != "" {
			t.Errorf("stream %q on a held directory: status %d, stdout %q, stderr %q; want status 1 and the error naming %s",
				args, code, out, errOut, dir)
		}
	}
}

func TestClientCommandsHelp(t *testing.T) {
	for _, tc := range []struct{ name, flag string }{
		{"produce", "-key-sep SEP"}, {"consume", "-from OFFSET"}, {"groups", "-json"}, {"bench", "-linger duration"},
	} {
		code, _, errOut := runCmd(t, tc.name, "-h")
		if code != 0 || !strings.Contains(errOut, "Usage: stream "+tc.name+" [flags]") || !strings.Contains(errOut, tc.flag) {
			t.Errorf("stream %s -h: status %d\n%s", tc.name, code, errOut)
		}
	}
}
