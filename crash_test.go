package stream_test

// Crash tests: a child process (this test binary, re-executed) appends to
// a partition and reports every acknowledged append on stdout; the parent
// kills it with SIGKILL at a random moment, reopens the directory and
// checks that nothing acknowledged was lost, that offsets are contiguous
// and that appends continue where the log ends. Stdout is a pipe read by
// the parent, so an ack line, once written, survives the kill: a write of
// less than PIPE_BUF bytes to a pipe is atomic.

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/instream/stream"
)

const (
	crashEnvDir       = "STREAM_CRASH_CHILD_DIR"
	crashEnvSync      = "STREAM_CRASH_CHILD_SYNC"
	crashEnvSegment   = "STREAM_CRASH_CHILD_SEGMENT_BYTES"
	crashEnvAppenders = "STREAM_CRASH_CHILD_APPENDERS"
	crashEnvSeed      = "STREAM_CRASH_CHILD_SEED"
	// crashEnvSyncInterval, when set (a time.ParseDuration string), is
	// the child's Options.SyncInterval; the parent sets it with t.Setenv.
	crashEnvSyncInterval = "STREAM_CRASH_CHILD_SYNC_INTERVAL"
	crashTopic           = "crash"
)

// recordsSum is a checksum of the contents (key, value, headers) of recs,
// in order, with lengths so that moving a byte between fields changes it.
func recordsSum(recs []*stream.Record) uint32 {
	h := crc32.New(crc32.MakeTable(crc32.Castagnoli))
	var n [8]byte
	field := func(b []byte) {
		l := int64(len(b))
		if b == nil {
			l = -1
		}
		binary.BigEndian.PutUint64(n[:], uint64(l))
		h.Write(n[:])
		h.Write(b)
	}
	for _, r := range recs {
		field(r.Key)
		field(r.Value)
		binary.BigEndian.PutUint64(n[:], uint64(len(r.Headers)))
		h.Write(n[:])
		for _, hd := range r.Headers {
			field([]byte(hd.Key))
			field(hd.Value)
		}
	}
	return h.Sum32()
}

// crashRecords makes 1 to max records of varied shape from rng.
func crashRecords(rng *rand.Rand, tag string, max int) []*stream.Record {
	recs := make([]*stream.Record, 1+rng.IntN(max))
	for i := range recs {
		r := &stream.Record{Value: make([]byte, rng.IntN(300))}
		for j := range r.Value {
			r.Value[j] = byte(rng.Uint32())
		}
		copy(r.Value, fmt.Sprintf("%s-%d|", tag, i))
		if rng.IntN(3) > 0 {
			r.Key = []byte(fmt.Sprintf("k%d", rng.IntN(100)))
		}
		if rng.IntN(4) == 0 {
			r.Headers = []stream.Header{{Key: "h", Value: []byte(tag)}, {Key: "nil"}}
		}
		recs[i] = r
	}
	return recs
}

func crashOptions(sync stream.SyncPolicy, segmentBytes stream.ByteSize) *stream.Options {
	return &stream.Options{
		Sync:               sync,
		SegmentBytes:       segmentBytes,
		IndexIntervalBytes: 512,
		// No retention: every acknowledged record must stay.
		DefaultTopic: stream.TopicConfig{Retention: -1},
	}
}

func openCrashPartition(dir string, opts *stream.Options) (*stream.Stream, *stream.Partition, error) {
	s, err := stream.Open(dir, opts)
	if err != nil {
		return nil, nil, err
	}
	t, err := s.Topic(crashTopic)
	if errors.Is(err, stream.ErrUnknownTopic) {
		t, err = s.CreateTopic(crashTopic, stream.TopicConfig{Retention: -1})
	}
	if err != nil {
		s.Close()
		return nil, nil, err
	}
	p, err := t.Partition(0)
	if err != nil {
		s.Close()
		return nil, nil, err
	}
	return s, p, nil
}

// TestCrashChild is the child process of the crash tests; it does nothing
// unless run by one of them. It appends until killed, printing
// "ACK base count checksum" for every acknowledged append.
func TestCrashChild(t *testing.T) {
	dir := os.Getenv(crashEnvDir)
	if dir == "" {
		t.Skip("child process of the crash tests")
	}
	fail := func(format string, args ...any) {
		fmt.Fprintf(os.Stderr, "crash child: "+format+"\n", args...)
		os.Exit(3)
	}
	policy, _ := strconv.Atoi(os.Getenv(crashEnvSync))
	segBytes, _ := strconv.ParseInt(os.Getenv(crashEnvSegment), 10, 64)
	appenders, _ := strconv.Atoi(os.Getenv(crashEnvAppenders))
	seed, _ := strconv.ParseUint(os.Getenv(crashEnvSeed), 10, 64)
	opts := crashOptions(stream.SyncPolicy(policy), stream.ByteSize(segBytes))
	if d, err := time.ParseDuration(os.Getenv(crashEnvSyncInterval)); err == nil {
		opts.SyncInterval = d
	}
	_, p, err := openCrashPartition(dir, opts)
	if err != nil {
		fail("open: %v", err)
	}
	var outMu sync.Mutex
	ack := func(base int64, recs []*stream.Record) {
		line := fmt.Sprintf("ACK %d %d %d\n", base, len(recs), recordsSum(recs))
		outMu.Lock()
		defer outMu.Unlock()
		if _, err := os.Stdout.WriteString(line); err != nil {
			fail("write ack: %v", err)
		}
	}
	// The first append after recovery must land at the high watermark.
	hw := p.HighWatermark()
	first := crashRecords(rand.New(rand.NewPCG(seed, 0)), "first", 3)
	base, err := p.Append(first...)
	if err != nil {
		fail("first append: %v", err)
	}
	if base != hw {
		fail("first append after recovery at offset %d, high watermark was %d", base, hw)
	}
	ack(base, first)
	for w := range appenders {
		go func() {
			rng := rand.New(rand.NewPCG(seed, uint64(w+1)))
			var b stream.Batch
			for seq := 0; ; seq++ {
				tag := fmt.Sprintf("s%d-w%d-%d", seed, w, seq)
				recs := crashRecords(rng, tag, 20)
				var base int64
				var err error
				if rng.IntN(2) == 0 {
					base, err = p.Append(recs...)
				} else {
					b.Reset()
					for _, r := range recs {
						b.Add(r.Key, r.Value, r.Headers...)
					}
					base, err = p.AppendBatch(&b)
				}
				if err != nil {
					fail("append: %v", err)
				}
				ack(base, recs)
			}
		}()
	}
	select {} // until killed
}

// ackedAppend is one append the child acknowledged.
type ackedAppend struct {
	base  int64
	count int
	sum   uint32
}

// runCrashChild starts a child appending to dir, kills it with SIGKILL
// after its first ack plus a random delay, and returns what it
// acknowledged.
func runCrashChild(t *testing.T, dir string, policy stream.SyncPolicy, segBytes stream.ByteSize, appenders int, seed uint64, delay time.Duration) []ackedAppend {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
	cmd.Env = append(os.Environ(),
		crashEnvDir+"="+dir,
		crashEnvSync+"="+strconv.Itoa(int(policy)),
		crashEnvSegment+"="+strconv.FormatInt(int64(segBytes), 10),
		crashEnvAppenders+"="+strconv.Itoa(appenders),
		crashEnvSeed+"="+strconv.FormatUint(seed, 10),
	)
	var acks []ackedAppend
	for _, line := range killAfterFirstLine(t, cmd, delay, func(line string) (string, bool) {
		return line, strings.HasPrefix(line, "ACK ")
	}) {
		var a ackedAppend
		if _, err := fmt.Sscanf(line, "ACK %d %d %d", &a.base, &a.count, &a.sum); err != nil {
			t.Fatalf("child's ack %q: %v", line, err)
		}
		acks = append(acks, a)
	}
	return acks
}

// killAfterFirstLine starts cmd, waits for the first line of its stdout
// that keep accepts (the child's protocol; the rest is the test
// framework's), kills it with SIGKILL delay later — a random moment into
// its run, which is the test — and returns the accepted lines, as keep
// rewrote them, in order. It fails the test if the child says nothing in
// 20 s, exits by itself first, or does not die of the signal.
func killAfterFirstLine(t *testing.T, cmd *exec.Cmd, delay time.Duration, keep func(string) (string, bool)) []string {
	t.Helper()
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	first := make(chan struct{})
	readDone := make(chan []string, 1)
	go func() {
		var lines []string
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			line, ok := keep(sc.Text())
			if !ok {
				continue
			}
			if lines == nil {
				close(first)
			}
			lines = append(lines, line)
		}
		readDone <- lines
	}()
	timeout := time.NewTimer(20 * time.Second)
	defer timeout.Stop()
	select {
	case <-first:
		select {
		case <-time.After(delay):
		case <-timeout.C:
		}
	case <-timeout.C:
		t.Errorf("child wrote nothing in 20s")
	case lines := <-readDone:
		cmd.Wait()
		t.Fatalf("child exited before its first line (%q): %s", lines, stderr.String())
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatalf("kill child: %v", err)
	}
	var lines []string
	select {
	case lines = <-readDone:
	case <-time.After(20 * time.Second):
		t.Fatalf("child's stdout still open 20s after SIGKILL")
	}
	werr := cmd.Wait()
	var exit *exec.ExitError
	if !errors.As(werr, &exit) || exit.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("child did not die of SIGKILL: %v; stderr:\n%s", werr, stderr.String())
	}
	return lines
}

// checkAfterCrash reopens dir and checks every acknowledged append (want,
// by base offset) against the log; then it appends one record, which must
// land at the high watermark, and adds it to want.
func checkAfterCrash(t *testing.T, dir string, opts *stream.Options, want map[int64]ackedAppend, rng *rand.Rand) {
	t.Helper()
	s, p, err := openCrashPartition(dir, opts)
	if err != nil {
		t.Fatalf("reopen after SIGKILL: %v", err)
	}
	defer func() {
		if err := s.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	}()
	start, hw := p.StartOffset(), p.HighWatermark()
	if start != 0 {
		t.Errorf("StartOffset = %d, want 0 (no retention)", start)
	}
	var recs []*stream.Record
	if hw > start {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		next := start
		for r, err := range p.Scan(ctx, start) {
			if err != nil {
				t.Fatalf("scan at offset %d of [%d, %d): %v (corrupt: %v)", next, start, hw, err, errors.Is(err, stream.ErrCorrupt))
			}
			if r.Offset != next {
				t.Fatalf("scan: offset %d, want %d (offsets must be contiguous)", r.Offset, next)
			}
			recs = append(recs, r)
			next++
			if next == hw {
				break
			}
		}
		cancel()
	}
	var maxAcked int64 = -1
	for _, a := range want {
		end := a.base + int64(a.count)
		maxAcked = max(maxAcked, end-1)
		if end > hw {
			t.Errorf("acknowledged append [%d, %d) is past the high watermark %d: lost", a.base, end, hw)
			continue
		}
		if got := recordsSum(recs[a.base-start : end-start]); got != a.sum {
			t.Errorf("acknowledged append [%d, %d): content checksum %d, want %d", a.base, end, got, a.sum)
		}
	}
	if hw < maxAcked+1 {
		t.Errorf("HighWatermark %d, last acknowledged offset %d", hw, maxAcked)
	}
	one := crashRecords(rng, "parent", 2)
	base, err := p.Append(one...)
	if err != nil {
		t.Fatalf("append after recovery: %v", err)
	}
	if base != hw {
		t.Fatalf("append after recovery at offset %d, want the high watermark %d", base, hw)
	}
	want[base] = ackedAppend{base: base, count: len(one), sum: recordsSum(one)}
}

func TestCrashSIGKILL(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns child processes")
	}
	cases := []struct {
		name      string
		sync      stream.SyncPolicy
		segBytes  stream.ByteSize
		appenders int
		rounds    int
	}{
		{"SyncAlways", stream.SyncAlways, 0, 1, 12},
		{"SyncAlways/4KiBSegments/4Appenders", stream.SyncAlways, 4 * stream.KiB, 4, 12},
		// A process crash leaves the page cache (and the mapped active
		// segment) to the kernel: acknowledged appends survive kill -9
		// without fsync too.
		{"SyncNever/4KiBSegments/3Appenders", stream.SyncNever, 4 * stream.KiB, 3, 10},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			seed := uint64(time.Now().UnixNano())
			if s := os.Getenv("STREAM_CRASH_SEED"); s != "" {
				seed, _ = strconv.ParseUint(s, 10, 64)
			}
			t.Logf("seed %d (rerun with STREAM_CRASH_SEED=%d)", seed, seed)
			rng := rand.New(rand.NewPCG(seed, 0))
			dir := t.TempDir()
			opts := crashOptions(c.sync, c.segBytes)
			want := map[int64]ackedAppend{}
			for round := range c.rounds {
				delay := time.Duration(rng.IntN(150)) * time.Millisecond
				acks := runCrashChild(t, dir, c.sync, c.segBytes, c.appenders, rng.Uint64(), delay)
				for _, a := range acks {
					if old, ok := want[a.base]; ok {
						t.Fatalf("round %d: offset %d acknowledged twice (%+v, then %+v)", round, a.base, old, a)
					}
					want[a.base] = a
				}
				checkAfterCrash(t, dir, opts, want, rng)
				if t.Failed() {
					t.Fatalf("round %d (killed after %v, %d acks this round)", round, delay, len(acks))
				}
			}
			var records int
			for _, a := range want {
				records += a.count
			}
			logs, _ := filepath.Glob(filepath.Join(dir, "topics", crashTopic+"-0", "*.log"))
			t.Logf("%d rounds: %d acknowledged appends, %d records, %d segments", c.rounds, len(want), records, len(logs))
			if len(want) <= 2*c.rounds {
				t.Errorf("only %d appends acknowledged in %d rounds: the children did too little to test anything", len(want), c.rounds)
			}
		})
	}
}
