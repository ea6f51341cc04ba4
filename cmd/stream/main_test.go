package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
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

// runCmd runs the command line args as main would and returns the exit
// status, stdout and stderr.
func runCmd(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), args, strings.NewReader(""), &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

// small is a demo workload that runs in well under a second.
func small(dir string, extra ...string) []string {
	return append([]string{"demo", "-dir", dir, "-records", "5000", "-appends", "300", "-writers", "8",
		"-reads", "200", "-partitions", "3", "-segment", "64KiB"}, extra...)
}

func TestDemo(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")

	code, out, errOut := runCmd(t, small(dir)...)
	if code != 0 {
		t.Fatalf("first run: exit status %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	t.Logf("first run:\n%s", out)
	for _, want := range []string{
		`topic demo created with 3 partitions`,
		`(?m)^produce +5,000 +\S+ +[0-9,]+ +\S+ \S+/s +\S+ +Producer.SendAsync, keyed`,
		`(?m)^append +300 +\S+ +[0-9,]+ +\S+ \S+/s +\S+ +Partition.Append `,
		`(?m)^scan +5,300 `,
		`(?m)^read +200 `,
		`(?m)^group +5,[0-9]{3} +\S+ +[0-9,]+ +\S+ \S+/s +\S+ +consumer group of 3 members, Poll, every record verified`,
		`(?m)^latency: +produce→ack p50 \S+, p99 \S+, p99.9 \S+, max \S+$`,
		`verified: 5,300 records read back`,
		`(?m)^group: +5,[0-9]{3} consumed by 3 members, 5,300 distinct, each verified; \d+ duplicates?$`,
		`on disk: +\S+ \S+ of record batches in \d+ segments`,
		`topic: +5,300 records kept, 5,300 added by this run`,
	} {
		if !regexp.MustCompile(want).MatchString(out) {
			t.Errorf("first run: output does not match %q", want)
		}
	}

	// A second run on the same directory reuses the topic and verifies
	// what it adds.
	code, out, errOut = runCmd(t, small(dir)...)
	if code != 0 {
		t.Fatalf("second run: exit status %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	for _, want := range []string{
		"topic demo reused, 3 partitions",
		"verified: 5,300 records read back",
		"5,300 distinct, each verified",
		"topic:    10,600 records kept, 5,300 added by this run",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("second run: output lacks %q\n%s", want, out)
		}
	}

	// What the two runs wrote is there, in order, through the library.
	s, err := stream.Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	topic, err := s.Topic("demo")
	if err != nil {
		t.Fatal(err)
	}
	var total int64
	for i := range topic.NumPartitions() {
		p, _ := topic.Partition(int32(i))
		total += p.HighWatermark() - p.StartOffset()
	}
	if total != 10_600 {
		t.Errorf("topic holds %d records, want 10,600", total)
	}
	if st := s.Stats(); st.Segments <= topic.NumPartitions() {
		t.Errorf("%d segments with -segment 64KiB: want the partitions to have rolled", st.Segments)
	}
}

func TestDemoJSON(t *testing.T) {
	dir := t.TempDir()
	for _, sync := range []string{"always", "periodic", "never"} {
		code, out, errOut := runCmd(t, small(dir, "-json", "-sync", sync)...)
		if code != 0 {
			t.Fatalf("-sync %s: exit status %d\n%s%s", sync, code, out, errOut)
		}
		var rep struct {
			Sync     string `json:"sync"`
			Verified int64  `json:"verified_records"`
			Phases   []struct {
				Name          string  `json:"name"`
				Records       int64   `json:"records"`
				RecordsPerSec float64 `json:"records_per_second"`
			} `json:"phases"`
			Latency struct {
				Records int64   `json:"records"`
				P50us   float64 `json:"p50_us"`
				P999us  float64 `json:"p999_us"`
			} `json:"produce_latency"`
			Group struct {
				Members    int   `json:"members"`
				Consumed   int64 `json:"consumed"`
				Verified   int64 `json:"verified"`
				Duplicates int64 `json:"duplicates"`
			} `json:"group"`
			Disk struct {
				LogBytes int64 `json:"log_bytes"`
				DirBytes int64 `json:"dir_bytes"`
				Segments int   `json:"segments"`
			} `json:"disk"`
		}
		if err := json.Unmarshal([]byte(out), &rep); err != nil {
			t.Fatalf("-sync %s: output is not JSON: %v\n%s", sync, err, out)
		}
		if rep.Sync != sync || rep.Verified != 5300 || rep.Disk.LogBytes <= 5300*108 ||
			rep.Disk.DirBytes < rep.Disk.LogBytes || rep.Disk.Segments < 3 {
			t.Errorf("-sync %s: report %+v", sync, rep)
		}
		phases := map[string]int64{}
		for _, p := range rep.Phases {
			phases[p.Name] = p.Records
			if p.Records > 0 && p.RecordsPerSec <= 0 {
				t.Errorf("-sync %s: phase %s: %d records at %v records/s", sync, p.Name, p.Records, p.RecordsPerSec)
			}
		}
		if rep.Latency.Records != 5000 || rep.Latency.P50us <= 0 || rep.Latency.P999us < rep.Latency.P50us {
			t.Errorf("-sync %s: produce latency %+v", sync, rep.Latency)
		}
		if g := rep.Group; g.Members != 3 || g.Verified != 5300 || g.Consumed != 5300+g.Duplicates {
			t.Errorf("-sync %s: group %+v", sync, g)
		}
		if phases["produce"] != 5000 || phases["append"] != 300 || phases["scan"] != 5300 || phases["read"] != 200 ||
			phases["group"] != rep.Group.Consumed {
			t.Errorf("-sync %s: phase records %v", sync, phases)
		}
		if _, ok := phases["sync"]; ok != (sync != "always") {
			t.Errorf("-sync %s: sync phase present = %v", sync, ok)
		}
	}
}

// TestDemoLockedDir runs the demo on a directory another process holds
// open: it must fail at once with the library's error naming the
// directory, not wait.
func TestDemoLockedDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "held")
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
	defer func() {
		stdin.Close() // the holder exits when its stdin closes
		cmd.Wait()
	}()
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || line != "holding\n" {
		t.Fatalf("holder process: %q, %v", line, err)
	}

	start := time.Now()
	code, out, errOut := runCmd(t, small(dir)...)
	if elapsed := time.Since(start); elapsed > 5*time.Second {
		t.Errorf("demo on a held directory took %v to fail", elapsed)
	}
	if code != 1 {
		t.Errorf("exit status %d, want 1\nstdout:\n%s", code, out)
	}
	if !strings.Contains(errOut, dir) || !strings.Contains(errOut, "in use") {
		t.Errorf("stderr %q: want the library's error naming %s", errOut, dir)
	}
	if out != "" {
		t.Errorf("stdout %q, want nothing", out)
	}
}

// TestHelperHoldDir is not a test: TestDemoLockedDir runs the test binary
// with it to hold a directory open in another process until stdin closes.
func TestHelperHoldDir(t *testing.T) {
	dir := os.Getenv("STREAM_TEST_HOLD_DIR")
	if dir == "" {
		t.Skip("helper process for TestDemoLockedDir")
	}
	s, err := stream.Open(dir, nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Println("holding")
	var buf [1]byte
	os.Stdin.Read(buf[:])
	s.Close()
	os.Exit(0)
}

func TestCommandLine(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	for _, tc := range []struct {
		args       []string
		code       int
		out, err   string // substrings of stdout and stderr
		noDirAfter bool
	}{
		{args: nil, code: 2, err: "Commands:"},
		{args: []string{"help"}, code: 0, out: "demo "},
		{args: []string{"help", "demo"}, code: 0, err: "Usage: stream demo [flags]"},
		{args: []string{"nosuch"}, code: 2, err: `unknown command "nosuch"`},
		{args: []string{"demo", "-h"}, code: 0, err: "-records int"},
		{args: []string{"demo", "-dir", dir, "-sync", "sometimes"}, code: 2, err: "want always, periodic or never", noDirAfter: true},
		{args: []string{"demo", "-dir", dir, "-size", "lots"}, code: 2, err: "invalid value", noDirAfter: true},
		{args: []string{"demo", "-dir", dir, "-records", "-1"}, code: 2, err: "-records -1: must be 0 or more", noDirAfter: true},
		{args: []string{"demo", "-dir", dir, "extra"}, code: 2, err: "unexpected arguments", noDirAfter: true},
	} {
		code, out, errOut := runCmd(t, tc.args...)
		if code != tc.code || !strings.Contains(out, tc.out) || !strings.Contains(errOut, tc.err) {
			t.Errorf("stream %q: status %d, stdout %q, stderr %q; want status %d, stdout with %q, stderr with %q",
				tc.args, code, out, errOut, tc.code, tc.out, tc.err)
		}
		if _, err := os.Stat(dir); tc.noDirAfter && err == nil {
			t.Errorf("stream %q created %s", tc.args, dir)
		}
	}
}

func TestDemoPartitionsMismatch(t *testing.T) {
	dir := t.TempDir()
	if code, out, errOut := runCmd(t, small(dir)...); code != 0 {
		t.Fatalf("exit status %d\n%s%s", code, out, errOut)
	}
	code, _, errOut := runCmd(t, "demo", "-dir", dir, "-records", "10", "-partitions", "5")
	if code != 1 || !strings.Contains(errOut, "already has 3 partitions, not 5") {
		t.Errorf("status %d, stderr %q", code, errOut)
	}
	// Without -partitions the existing topic is reused.
	if code, out, errOut := runCmd(t, "demo", "-dir", dir, "-records", "10", "-appends", "10", "-reads", "10"); code != 0 ||
		!strings.Contains(out, "topic demo reused, 3 partitions") {
		t.Errorf("status %d\n%s%s", code, out, errOut)
	}
}

func TestDemoCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var stdout, stderr bytes.Buffer
	code := run(ctx, small(t.TempDir()), strings.NewReader(""), &stdout, &stderr)
	if code != 1 || !strings.Contains(stderr.String(), "context canceled") {
		t.Errorf("status %d, stderr %q", code, stderr.String())
	}
}

// TestDemoCheck makes sure the demo's verification catches what it is
// there to catch.
func TestDemoCheck(t *testing.T) {
	d := &demoRun{values: newValueSource(16), start: []int64{0, 0}, end: []int64{10, 10},
		produced: []demoPlace{{0, 3}, {1, 4}}, // record 0 at demo-0 offset 3, record 1 at demo-1 offset 4
		appended: [][]int64{{7}, {8}}}         // writer 0 → partition 0, writer 1 → partition 1
	rec := func(offset int64, id uint64, valuePartition int) *stream.Record {
		key := binary.BigEndian.AppendUint64(nil, id)
		return &stream.Record{Offset: offset, Key: key, Value: bytes.Clone(d.values.value(valuePartition, id))}
	}
	if _, err := d.check(0, rec(3, 0, 0)); err != nil {
		t.Errorf("good produced record: %v", err)
	}
	if _, err := d.check(1, rec(4, 1, 0)); err != nil {
		t.Errorf("good produced record: %v", err)
	}
	if _, err := d.check(1, rec(8, writerSeqID(1, 0), 1)); err != nil {
		t.Errorf("good appended record: %v", err)
	}
	flipped := rec(3, 0, 0)
	flipped.Value[5] ^= 1
	for name, tc := range map[string]struct {
		partition int
		r         *stream.Record
	}{
		"value flipped":            {0, flipped},
		"value of other part.":     {1, rec(4, 1, 1)},
		"produced at other offset": {0, rec(4, 0, 0)},
		"produced in other part.":  {1, rec(3, 0, 0)},
		"unknown produced id":      {0, rec(3, 2, 0)},
		"short key":                {0, &stream.Record{Offset: 3, Key: []byte{3}}},
		"append at wrong place":    {0, rec(6, writerSeqID(0, 0), 0)},
		"writer of other part.":    {0, rec(8, writerSeqID(1, 0), 0)},
		"unknown writer":           {0, rec(8, writerSeqID(5, 0), 0)},
		"unknown sequence":         {0, rec(7, writerSeqID(0, 1), 0)},
	} {
		if _, err := d.check(tc.partition, tc.r); err == nil {
			t.Errorf("%s: check passed", name)
		}
	}

	// A record seen twice, or never, is caught.
	seen := d.newSeen()
	if !seen.mark(0) || seen.mark(0) || !seen.mark(writerSeqID(1, 0)) {
		t.Error("mark: first and second sightings not told apart")
	}
	if err := seen.missing(d); err == nil || !strings.Contains(err.Error(), "produced record 1 (demo-1 offset 4) was not read back") {
		t.Errorf("missing: %v", err)
	}
	seen.mark(1)
	if err := seen.missing(d); err == nil || !strings.Contains(err.Error(), "record 0 of append writer 0 (offset 7)") {
		t.Errorf("missing: %v", err)
	}
	seen.mark(writerSeqID(0, 0))
	if err := seen.missing(d); err != nil {
		t.Errorf("missing with everything seen: %v", err)
	}
}

// TestProgress draws the bar as a terminal shows it and the plain line
// written elsewhere.
func TestProgress(t *testing.T) {
	var buf bytes.Buffer
	p := &progress{w: &buf, terminal: true, name: "produce", total: 200}
	p.add(50)
	p.draw()
	if want := "\rproduce  [#######.......................]  25%  50/200 records"; buf.String() != want {
		t.Errorf("bar %q, want %q", buf.String(), want)
	}
	buf.Reset()
	p = newProgress(&buf, false)
	p.begin("scan", 10)
	p.add(10)
	p.end()
	if !regexp.MustCompile(`^scan: 10 records in \S+\n$`).MatchString(buf.String()) {
		t.Errorf("plain line %q", buf.String())
	}
	buf.Reset()
	p = newProgress(&buf, true)
	p.begin("scan", 10)
	p.end()
	if buf.Len() != 0 {
		t.Errorf("quiet progress wrote %q", buf.String())
	}
	if isTerminal(&buf) {
		t.Error("a buffer is a terminal")
	}
}
