package stream_test

// More SIGKILL crash tests, in the manner of crash_test.go: a child
// process (this test binary, re-executed as TestCrashMoreChild) works on
// a directory and reports on stdout every operation the engine
// acknowledged; the parent kills it with SIGKILL at a seeded random moment,
// reopens the directory and checks the acknowledged state. Each test logs
// its seed; STREAM_CRASH_SEED=n replays one.
//
//   - TestCrashTopicAdmin: topics created and deleted in a loop.
//   - TestCrashRetention: retention deleting segments under appends.
//   - TestCrashSyncPeriodic: the append loop of crash_test.go under
//     SyncPeriodic with a 1ms SyncInterval.
//   - TestCrashProducer: a Producer's SendAsync acknowledgements.
//   - TestCrashGroupCommits: a consumer group member's Run and its commits.
//
// Protocol lines start with "@ " so that the test framework's own output
// is told apart; each is one write of less than PIPE_BUF bytes to a pipe,
// so a line written survives the kill whole.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/instream/stream"
)

const (
	crashMoreEnvMode = "STREAM_CRASH_MORE_MODE"
	crashMoreEnvDir  = "STREAM_CRASH_MORE_DIR"
	crashMoreEnvSeed = "STREAM_CRASH_MORE_SEED"
	crashMoreEnvArg  = "STREAM_CRASH_MORE_ARG" // a mode's parameter
)

// crashSeed returns the seed of a crash test, logged so a failure can be
// replayed with STREAM_CRASH_SEED.
func crashSeed(t *testing.T) uint64 {
	t.Helper()
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("STREAM_CRASH_SEED"); s != "" {
		seed, _ = strconv.ParseUint(s, 10, 64)
	}
	t.Logf("seed %d (rerun with STREAM_CRASH_SEED=%d)", seed, seed)
	return seed
}

// crashOut writes the child's protocol lines.
type crashOut struct{ mu sync.Mutex }

func (o *crashOut) emit(format string, args ...any) {
	line := "@ " + fmt.Sprintf(format, args...) + "\n"
	o.mu.Lock()
	defer o.mu.Unlock()
	if _, err := os.Stdout.WriteString(line); err != nil {
		crashMoreFail("write: %v", err)
	}
}

// crashMoreFail ends the child with a message; the parent reports the
// child's exit (anything but SIGKILL) with its stderr.
func crashMoreFail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "crash child: "+format+"\n", args...)
	os.Exit(3)
}

// TestCrashMoreChild is the child process of the tests in this file; it
// does nothing unless run by one of them.
func TestCrashMoreChild(t *testing.T) {
	mode := os.Getenv(crashMoreEnvMode)
	if mode == "" {
		t.Skip("child process of the crash tests")
	}
	dir := os.Getenv(crashMoreEnvDir)
	seed, _ := strconv.ParseUint(os.Getenv(crashMoreEnvSeed), 10, 64)
	arg := os.Getenv(crashMoreEnvArg)
	out := &crashOut{}
	switch mode {
	case "topics":
		crashChildTopics(dir, seed, out)
	case "retention":
		crashChildRetention(dir, seed, arg, out)
	case "producer":
		crashChildProducer(dir, seed, arg, out)
	case "group":
		crashChildGroup(dir, seed, out)
	default:
		crashMoreFail("unknown mode %q", mode)
	}
}

// runMoreChild runs the child in mode on dir, kills it with SIGKILL delay
// after its first protocol line, and returns its protocol lines (without
// the "@ " prefix), in order.
func runMoreChild(t *testing.T, mode, dir, arg string, seed uint64, delay time.Duration) []string {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashMoreChild$", "-test.count=1")
	cmd.Env = append(os.Environ(),
		crashMoreEnvMode+"="+mode,
		crashMoreEnvDir+"="+dir,
		crashMoreEnvSeed+"="+strconv.FormatUint(seed, 10),
		crashMoreEnvArg+"="+arg,
	)
	return killAfterFirstLine(t, cmd, delay, func(line string) (string, bool) {
		return strings.CutPrefix(line, "@ ")
	})
}

// scanLine parses a protocol line with fmt.Sscanf, failing the test on a
// malformed one.
func scanLine(t *testing.T, line, format string, args ...any) {
	t.Helper()
	if _, err := fmt.Sscanf(line, format, args...); err != nil {
		t.Fatalf("malformed line %q (want %q): %v", line, format, err)
	}
}

// readPartition returns every record of p from StartOffset to
// HighWatermark, failing the test on an error (ErrCorrupt included) or a
// gap in the offsets.
func readPartition(t *testing.T, p *stream.Partition) (start int64, recs []*stream.Record) {
	t.Helper()
	start, hw := p.StartOffset(), p.HighWatermark()
	for next := start; next < hw; {
		got, err := p.Read(next, 256<<10)
		if err != nil {
			t.Errorf("%s-%d: read at %d of [%d, %d): %v (corrupt: %v)", p.Topic(), p.ID(), next, start, hw, err, errors.Is(err, stream.ErrCorrupt))
			return start, recs
		}
		if len(got) == 0 {
			t.Errorf("%s-%d: read at %d of [%d, %d) returned nothing", p.Topic(), p.ID(), next, start, hw)
			return start, recs
		}
		for _, r := range got {
			if r.Offset != next {
				t.Fatalf("%s-%d: offset %d, want %d (offsets must be contiguous)", p.Topic(), p.ID(), r.Offset, next)
			}
			recs = append(recs, r)
			next++
		}
	}
	return start, recs
}

// checkAcked checks that every acknowledged append to p at or above its
// StartOffset reads back with its content: recs are p's records from
// start. An append below start must lie wholly below it (retention deletes
// whole segments, and a batch is in one segment).
func checkAcked(t *testing.T, p *stream.Partition, start int64, recs []*stream.Record, acks []ackedAppend) {
	t.Helper()
	hw := start + int64(len(recs))
	for _, a := range acks {
		end := a.base + int64(a.count)
		switch {
		case end <= start:
			// Deleted by retention.
		case a.base < start:
			t.Errorf("%s-%d: acknowledged append [%d, %d) straddles StartOffset %d", p.Topic(), p.ID(), a.base, end, start)
		case end > hw:
			t.Errorf("%s-%d: acknowledged append [%d, %d) is past the high watermark %d: lost", p.Topic(), p.ID(), a.base, end, hw)
		default:
			if got := recordsSum(recs[a.base-start : end-start]); got != a.sum {
				t.Errorf("%s-%d: acknowledged append [%d, %d): content checksum %d, want %d", p.Topic(), p.ID(), a.base, end, got, a.sum)
			}
		}
	}
}

// --- Topic administration ----------------------------------------------

func crashTopicsOptions() *stream.Options {
	return &stream.Options{
		SegmentBytes:       4 * stream.KiB,
		IndexIntervalBytes: 512,
		MaxRecordBytes:     64 * stream.KiB,
		DefaultTopic:       stream.TopicConfig{Retention: -1},
	}
}

// crashChildTopics creates topics (and appends to them) and deletes them
// in a loop, printing
//
//	CREATING name partitions    before CreateTopic
//	CREATED name                once it returned
//	ACK name partition base count checksum
//	DELETING name               before DeleteTopic
//	DELETED name                once it returned
func crashChildTopics(dir string, seed uint64, out *crashOut) {
	s, err := stream.Open(dir, crashTopicsOptions())
	if err != nil {
		crashMoreFail("open: %v", err)
	}
	rng := rand.New(rand.NewPCG(seed, 1))
	live := s.Topics()
	appendTo := func(name string, part int, tag string) {
		t, err := s.Topic(name)
		if err != nil {
			crashMoreFail("topic %s: %v", name, err)
		}
		p, err := t.Partition(int32(part))
		if err != nil {
			crashMoreFail("partition %s-%d: %v", name, part, err)
		}
		recs := crashRecords(rng, tag, 8)
		base, err := p.Append(recs...)
		if err != nil {
			crashMoreFail("append to %s-%d: %v", name, part, err)
		}
		out.emit("ACK %s %d %d %d %d", name, part, base, len(recs), recordsSum(recs))
	}
	for seq := 0; ; seq++ {
		tag := fmt.Sprintf("s%x-%d", seed, seq)
		switch n := len(live); {
		case n < 2 || n < 6 && rng.IntN(3) == 0:
			name := "t" + tag
			parts := 1 + rng.IntN(3)
			out.emit("CREATING %s %d", name, parts)
			if _, err := s.CreateTopic(name, stream.TopicConfig{Partitions: parts, Retention: -1}); err != nil {
				crashMoreFail("create topic %s: %v", name, err)
			}
			out.emit("CREATED %s", name)
			live = append(live, name)
			for i := range parts {
				appendTo(name, i, tag)
			}
		case rng.IntN(2) == 0:
			i := rng.IntN(n)
			name := live[i]
			out.emit("DELETING %s", name)
			if err := s.DeleteTopic(name); err != nil {
				crashMoreFail("delete topic %s: %v", name, err)
			}
			out.emit("DELETED %s", name)
			live = slices.Delete(live, i, i+1)
		default:
			name := live[rng.IntN(n)]
			t, _ := s.Topic(name)
			appendTo(name, rng.IntN(t.NumPartitions()), tag)
		}
	}
}

// topicModel is what the parent knows of one topic the child created.
type topicModel struct {
	partitions                 int
	createAcked, deleteStarted bool
	deleteAcked                bool
	gone                       bool // absent after a reopen: must stay absent
	acks                       map[int][]ackedAppend
}

// TestCrashTopicAdmin kills a child that creates topics, appends to them
// and deletes them. After each kill, Open must succeed and every topic be
// either wholly there — its partitions, its acknowledged appends intact —
// or wholly gone: not in Topics, no directory left. A topic whose
// creation was acknowledged stays unless its deletion began; a topic whose
// deletion was acknowledged, or that was seen gone, never comes back.
func TestCrashTopicAdmin(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns child processes")
	}
	seed := crashSeed(t)
	rng := rand.New(rand.NewPCG(seed, 0))
	dir := t.TempDir()
	model := map[string]*topicModel{}
	var inCreate, inDelete, creates, deletes int
	// At least 20 rounds, and more (up to 100) until the children have
	// done enough: the kills come at random moments of wall time, and a
	// loaded machine gets less done in each.
	const minRounds, maxRounds = 20, 100
	rounds := 0
	for round := 0; round < minRounds || (creates <= minRounds || deletes == 0) && round < maxRounds; round++ {
		rounds++
		delay := time.Duration(rng.IntN(120)) * time.Millisecond
		lines := runMoreChild(t, "topics", dir, "", rng.Uint64(), delay)
		for _, line := range lines {
			verb, rest, _ := strings.Cut(line, " ")
			var name string
			switch verb {
			case "CREATING":
				var parts int
				scanLine(t, rest, "%s %d", &name, &parts)
				model[name] = &topicModel{partitions: parts, acks: map[int][]ackedAppend{}}
				continue
			case "ACK":
				var part int
				var a ackedAppend
				scanLine(t, rest, "%s %d %d %d %d", &name, &part, &a.base, &a.count, &a.sum)
				model[name].acks[part] = append(model[name].acks[part], a)
			default:
				scanLine(t, rest, "%s", &name)
			}
			m := model[name]
			switch verb {
			case "CREATED":
				m.createAcked = true
				creates++
			case "DELETING":
				m.deleteStarted = true
			case "DELETED":
				m.deleteAcked = true
				deletes++
			}
		}
		if len(lines) > 0 {
			switch last, _, _ := strings.Cut(lines[len(lines)-1], " "); last {
			case "CREATING":
				inCreate++
			case "DELETING":
				inDelete++
			}
		}
		checkTopicsAfterCrash(t, dir, model)
		if t.Failed() {
			t.Fatalf("round %d (killed after %v, %d lines, last %q)", round, delay, len(lines), lines[len(lines)-1])
		}
	}
	t.Logf("%d rounds: %d topics created, %d deleted; killed inside CreateTopic %d times, DeleteTopic %d times",
		rounds, creates, deletes, inCreate, inDelete)
	if creates <= minRounds || deletes == 0 {
		t.Errorf("the children did too little to test anything in %d rounds: %d creates, %d deletes", rounds, creates, deletes)
	}
}

func checkTopicsAfterCrash(t *testing.T, dir string, model map[string]*topicModel) {
	t.Helper()
	s, err := stream.Open(dir, crashTopicsOptions())
	if err != nil {
		t.Fatalf("reopen after SIGKILL: %v", err)
	}
	defer func() {
		if err := s.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	}()
	present := map[string]bool{}
	for _, name := range s.Topics() {
		present[name] = true
		m := model[name]
		switch {
		case m == nil:
			t.Errorf("topic %s exists, but the child never created it", name)
			continue
		case m.deleteAcked:
			t.Errorf("topic %s is back after its deletion was acknowledged", name)
		case m.gone:
			t.Errorf("topic %s is back after a reopen found it gone", name)
		}
		tp, err := s.Topic(name)
		if err != nil {
			t.Fatalf("topic %s listed by Topics: %v", name, err)
		}
		if tp.NumPartitions() != m.partitions {
			t.Errorf("topic %s has %d partitions, created with %d", name, tp.NumPartitions(), m.partitions)
			continue
		}
		for i := range m.partitions {
			p, err := tp.Partition(int32(i))
			if err != nil {
				t.Fatalf("partition %s-%d: %v", name, i, err)
			}
			start, recs := readPartition(t, p)
			if start != 0 {
				t.Errorf("%s-%d: StartOffset %d, want 0 (no retention)", name, i, start)
			}
			checkAcked(t, p, start, recs, m.acks[i])
			if _, err := os.Stat(p.Dir()); err != nil {
				t.Errorf("%s-%d: %v", name, i, err)
			}
		}
	}
	for name, m := range model {
		if present[name] {
			continue
		}
		if m.createAcked && !m.deleteStarted {
			t.Errorf("topic %s is gone, but its creation was acknowledged and nobody deleted it", name)
		}
		m.gone = true
	}
	// No directory of a topic that is gone, nor of a partition a topic
	// does not have.
	entries, err := os.ReadDir(filepath.Join(dir, "topics"))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		name, part := e.Name(), -1
		if i := strings.LastIndexByte(name, '-'); i >= 0 {
			if n, err := strconv.Atoi(name[i+1:]); err == nil {
				name, part = name[:i], n
			}
		}
		if !present[name] || part < 0 || part >= model[name].partitions {
			t.Errorf("topics/%s left over: it belongs to no topic", e.Name())
		}
	}
}

// --- Retention ---------------------------------------------------------

const crashRetentionTopic = "ret"

func crashRetentionOptions(sync stream.SyncPolicy, check time.Duration) *stream.Options {
	return &stream.Options{
		Sync:                   sync,
		SegmentBytes:           2 * stream.KiB,
		IndexIntervalBytes:     256,
		MaxRecordBytes:         64 * stream.KiB,
		RetentionCheckInterval: check,
	}
}

// crashChildRetention appends to a partition whose retention (8 KiB,
// checked every millisecond, 2 KiB segments) deletes segments all the
// time, printing "ACK base count checksum" for every acknowledged append,
// while a reader follows the log from its start.
func crashChildRetention(dir string, seed uint64, policy string, out *crashOut) {
	pol, _ := strconv.Atoi(policy)
	s, err := stream.Open(dir, crashRetentionOptions(stream.SyncPolicy(pol), time.Millisecond))
	if err != nil {
		crashMoreFail("open: %v", err)
	}
	t, err := s.Topic(crashRetentionTopic)
	if errors.Is(err, stream.ErrUnknownTopic) {
		t, err = s.CreateTopic(crashRetentionTopic, stream.TopicConfig{Retention: -1, RetentionBytes: 8 * stream.KiB})
	}
	if err != nil {
		crashMoreFail("topic: %v", err)
	}
	p, _ := t.Partition(0)
	go func() { // a reader, for retention to race with
		var next int64
		for {
			if start := p.StartOffset(); next < start {
				next = start
			}
			recs, err := p.Read(next, 16<<10)
			if errors.Is(err, stream.ErrOffsetOutOfRange) && next < p.StartOffset() {
				continue // retention passed it
			}
			if err != nil {
				crashMoreFail("read at %d: %v", next, err)
			}
			for _, r := range recs {
				if r.Offset != next {
					crashMoreFail("read: offset %d, want %d", r.Offset, next)
				}
				next++
			}
			if len(recs) == 0 {
				if err := p.Wait(context.Background(), next); err != nil {
					crashMoreFail("wait: %v", err)
				}
			}
		}
	}()
	for w := range 2 {
		go func() {
			rng := rand.New(rand.NewPCG(seed, uint64(w)))
			for seq := 0; ; seq++ {
				recs := crashRecords(rng, fmt.Sprintf("s%x-w%d-%d", seed, w, seq), 10)
				base, err := p.Append(recs...)
				if err != nil {
					crashMoreFail("append: %v", err)
				}
				out.emit("ACK %d %d %d", base, len(recs), recordsSum(recs))
			}
		}()
	}
	select {} // until killed
}

// TestCrashRetention kills a child appending to a partition whose
// retention deletes segments constantly. After each kill: Open succeeds;
// StartOffset never moves back; the offsets from StartOffset to the high
// watermark are contiguous and read without error (no ErrCorrupt); every
// acknowledged append at or above StartOffset reads back exactly, none is
// lost past the high watermark; no index file is left without its log;
// and appends continue at the high watermark.
func TestCrashRetention(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns child processes")
	}
	for _, c := range []struct {
		name   string
		sync   stream.SyncPolicy
		rounds int
	}{
		{"SyncAlways", stream.SyncAlways, 10},
		// Segments are finalized by the background flusher, and only
		// finalized segments are deleted.
		{"SyncNever", stream.SyncNever, 7},
	} {
		t.Run(c.name, func(t *testing.T) {
			seed := crashSeed(t)
			rng := rand.New(rand.NewPCG(seed, 0))
			dir := t.TempDir()
			// Retention does not run in the parent: it would move
			// StartOffset under the checks.
			opts := crashRetentionOptions(c.sync, time.Hour)
			var acks []ackedAppend
			var lastStart int64
			var midDelete int // kills that left a segment half deleted
			for round := range c.rounds {
				delay := time.Duration(rng.IntN(150)) * time.Millisecond
				lines := runMoreChild(t, "retention", dir, strconv.Itoa(int(c.sync)), rng.Uint64(), delay)
				for _, line := range lines {
					var a ackedAppend
					scanLine(t, line, "ACK %d %d %d", &a.base, &a.count, &a.sum)
					acks = append(acks, a)
				}
				if orphanIndexes(t, filepath.Join(dir, "topics", crashRetentionTopic+"-0")) > 0 {
					midDelete++
				}
				lastStart = checkRetentionAfterCrash(t, dir, opts, lastStart, &acks, rng)
				if t.Failed() {
					t.Fatalf("round %d (killed after %v, %d acks this round)", round, delay, len(lines))
				}
			}
			t.Logf("%d rounds: %d acknowledged appends; StartOffset %d; %d kills left a segment half deleted", c.rounds, len(acks), lastStart, midDelete)
			if lastStart == 0 {
				t.Errorf("retention deleted nothing: the test tested nothing")
			}
		})
	}
}

// orphanIndexes counts the index files in dir without their .log: what a
// kill in the middle of a segment's deletion leaves for Open to remove.
func orphanIndexes(t *testing.T, dir string) int {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	logs := map[string]bool{}
	for _, e := range entries {
		if stem, ok := strings.CutSuffix(e.Name(), ".log"); ok {
			logs[stem] = true
		}
	}
	n := 0
	for _, e := range entries {
		stem, ext, _ := strings.Cut(e.Name(), ".")
		if (ext == "index" || ext == "timeindex") && !logs[stem] {
			n++
		}
	}
	return n
}

func checkRetentionAfterCrash(t *testing.T, dir string, opts *stream.Options, lastStart int64, acks *[]ackedAppend, rng *rand.Rand) int64 {
	t.Helper()
	s, err := stream.Open(dir, opts)
	if err != nil {
		t.Fatalf("reopen after SIGKILL: %v", err)
	}
	defer func() {
		if err := s.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	}()
	tp, err := s.Topic(crashRetentionTopic)
	if err != nil {
		t.Fatal(err)
	}
	p, _ := tp.Partition(0)
	start, recs := readPartition(t, p)
	if start < lastStart {
		t.Errorf("StartOffset %d moved back from %d", start, lastStart)
	}
	checkAcked(t, p, start, recs, *acks)
	// Every index file has its log; the first log is at StartOffset.
	entries, err := os.ReadDir(p.Dir())
	if err != nil {
		t.Fatal(err)
	}
	logs := map[string]bool{}
	var first string
	for _, e := range entries {
		if stem, ok := strings.CutSuffix(e.Name(), ".log"); ok {
			logs[stem] = true
			if first == "" || stem < first {
				first = stem
			}
		}
	}
	for _, e := range entries {
		stem, ext, _ := strings.Cut(e.Name(), ".")
		switch ext {
		case "log":
		case "index", "timeindex":
			if !logs[stem] {
				t.Errorf("%s left without its .log", e.Name())
			}
		default:
			if e.Name() != "recovery-point" {
				t.Errorf("unexpected file %s", e.Name())
			}
		}
	}
	if want := fmt.Sprintf("%020d", start); first != want {
		t.Errorf("first segment %s.log, StartOffset %d", first, start)
	}
	hw := p.HighWatermark()
	one := crashRecords(rng, "parent", 2)
	base, err := p.Append(one...)
	if err != nil {
		t.Fatalf("append after recovery: %v", err)
	}
	if base != hw {
		t.Fatalf("append after recovery at offset %d, want the high watermark %d", base, hw)
	}
	*acks = append(*acks, ackedAppend{base: base, count: len(one), sum: recordsSum(one)})
	return start
}

// --- SyncPeriodic ------------------------------------------------------

// TestCrashSyncPeriodic runs the append crash loop of crash_test.go
// (several appenders, 4 KiB segments) under SyncPeriodic with a 1ms
// SyncInterval, so that kills land in the flusher's fsyncs and
// finalizations: every acknowledged append survives kill -9 with its
// content, offsets stay contiguous, appends resume at the high watermark.
func TestCrashSyncPeriodic(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns child processes")
	}
	t.Setenv(crashEnvSyncInterval, "1ms") // inherited by the children
	seed := crashSeed(t)
	rng := rand.New(rand.NewPCG(seed, 0))
	dir := t.TempDir()
	opts := crashOptions(stream.SyncPeriodic, 4*stream.KiB)
	want := map[int64]ackedAppend{}
	// At least 12 rounds, more (up to 60) until enough was acknowledged.
	const minRounds, maxRounds = 12, 60
	rounds := 0
	for round := 0; round < minRounds || len(want) <= 2*minRounds && round < maxRounds; round++ {
		rounds++
		delay := time.Duration(rng.IntN(150)) * time.Millisecond
		acks := runCrashChild(t, dir, stream.SyncPeriodic, 4*stream.KiB, 3, rng.Uint64(), delay)
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
	logs, _ := filepath.Glob(filepath.Join(dir, "topics", crashTopic+"-0", "*.log"))
	t.Logf("%d rounds: %d acknowledged appends, %d segments", rounds, len(want), len(logs))
	if len(want) <= 2*minRounds {
		t.Errorf("only %d appends acknowledged in %d rounds: the children did too little to test anything", len(want), rounds)
	}
}

// --- Producer ----------------------------------------------------------

const crashProducerTopic = "prod"

func crashProducerOptions() *stream.Options {
	return &stream.Options{
		SegmentBytes:       8 * stream.KiB,
		IndexIntervalBytes: 512,
		MaxRecordBytes:     256 * stream.KiB,
		DefaultTopic:       stream.TopicConfig{Retention: -1},
	}
}

// producerRecord makes a record whose value starts with "tag|", so that
// the parent can find it (and its duplicates) in the log.
func producerRecord(rng *rand.Rand, tag string) *stream.Record {
	r := &stream.Record{Topic: crashProducerTopic, Value: []byte(tag + "|")}
	for range rng.IntN(300) {
		r.Value = append(r.Value, byte(rng.Uint32()))
	}
	if rng.IntN(3) > 0 {
		r.Key = []byte(fmt.Sprintf("k%d", rng.IntN(100)))
	}
	if rng.IntN(4) == 0 {
		r.Headers = []stream.Header{{Key: "h", Value: []byte(tag)}, {Key: "nil"}}
	}
	return r
}

// crashChildProducer sends records with a Producer (idempotent, the
// compression codec arg, SyncAlways) from two goroutines with SendAsync,
// printing "ACK partition offset checksum tag" from each record's
// callback.
func crashChildProducer(dir string, seed uint64, codec string, out *crashOut) {
	s, err := stream.Open(dir, crashProducerOptions())
	if err != nil {
		crashMoreFail("open: %v", err)
	}
	if _, err := s.Topic(crashProducerTopic); errors.Is(err, stream.ErrUnknownTopic) {
		_, err = s.CreateTopic(crashProducerTopic, stream.TopicConfig{Partitions: 3, Retention: -1})
		if err != nil {
			crashMoreFail("create topic: %v", err)
		}
	}
	c, _ := strconv.Atoi(codec)
	pr, err := s.NewProducer(stream.ProducerConfig{
		Linger:      time.Millisecond,
		BatchBytes:  4 * stream.KiB,
		BufferBytes: 256 * stream.KiB,
		Compression: stream.Compression(c),
	})
	if err != nil {
		crashMoreFail("producer: %v", err)
	}
	done := func(r *stream.Record, err error) {
		if err != nil {
			crashMoreFail("delivery of %q: %v", r.Value[:bytes.IndexByte(r.Value, '|')], err)
		}
		tag := r.Value[:bytes.IndexByte(r.Value, '|')]
		out.emit("ACK %d %d %d %s", r.Partition, r.Offset, recordsSum([]*stream.Record{r}), tag)
	}
	for g := range 2 {
		go func() {
			rng := rand.New(rand.NewPCG(seed, uint64(g)))
			for seq := 0; ; seq++ {
				pr.SendAsync(producerRecord(rng, fmt.Sprintf("s%x-g%d-%d", seed, g, seq)), done)
			}
		}()
	}
	select {} // until killed
}

// producerAck is one record a producer acknowledged.
type producerAck struct {
	sum uint32
	tag string
}

// TestCrashProducer kills a child sending with a Producer's SendAsync
// under SyncAlways, with idempotence on and a codec chosen per round.
// After each kill every record whose callback reported success is in the
// log at the offset it was given, with its exact content, and no record
// is in the log twice.
func TestCrashProducer(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns child processes")
	}
	seed := crashSeed(t)
	rng := rand.New(rand.NewPCG(seed, 0))
	dir := t.TempDir()
	acked := map[stream.TopicPartition]map[int64]producerAck{}
	codecs := []stream.Compression{stream.CompressNone, stream.CompressGzip, stream.CompressSnappy, stream.CompressLZ4, stream.CompressZstd}
	const rounds = 10
	var total int
	for round := range rounds {
		delay := time.Duration(rng.IntN(150)) * time.Millisecond
		codec := codecs[round%len(codecs)]
		lines := runMoreChild(t, "producer", dir, strconv.Itoa(int(codec)), rng.Uint64(), delay)
		for _, line := range lines {
			var tp stream.TopicPartition
			var off int64
			var a producerAck
			scanLine(t, line, "ACK %d %d %d %s", &tp.Partition, &off, &a.sum, &a.tag)
			tp.Topic = crashProducerTopic
			if acked[tp] == nil {
				acked[tp] = map[int64]producerAck{}
			}
			if old, ok := acked[tp][off]; ok {
				t.Fatalf("round %d: %s-%d offset %d acknowledged twice (%s, then %s)", round, tp.Topic, tp.Partition, off, old.tag, a.tag)
			}
			acked[tp][off] = a
			total++
		}
		checkProducerAfterCrash(t, dir, acked)
		if t.Failed() {
			t.Fatalf("round %d (codec %d, killed after %v, %d acks this round)", round, codec, delay, len(lines))
		}
	}
	t.Logf("%d rounds: %d records acknowledged", rounds, total)
	if total <= 10*rounds {
		t.Errorf("only %d records acknowledged in %d rounds: the children did too little to test anything", total, rounds)
	}
}

func checkProducerAfterCrash(t *testing.T, dir string, acked map[stream.TopicPartition]map[int64]producerAck) {
	t.Helper()
	s, err := stream.Open(dir, crashProducerOptions())
	if err != nil {
		t.Fatalf("reopen after SIGKILL: %v", err)
	}
	defer func() {
		if err := s.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	}()
	tp, err := s.Topic(crashProducerTopic)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]string{} // tag: where
	for i := range int32(tp.NumPartitions()) {
		p, _ := tp.Partition(i)
		start, recs := readPartition(t, p)
		for _, r := range recs {
			tag, _, ok := bytes.Cut(r.Value, []byte("|"))
			if !ok {
				t.Fatalf("%s-%d offset %d: value %q is not the child's", p.Topic(), i, r.Offset, r.Value)
			}
			at := fmt.Sprintf("%s-%d@%d", p.Topic(), i, r.Offset)
			if where, ok := seen[string(tag)]; ok {
				t.Errorf("record %s is in the log twice: at %s and %s", tag, where, at)
			}
			seen[string(tag)] = at
		}
		hw := start + int64(len(recs))
		for off, a := range acked[stream.TopicPartition{Topic: crashProducerTopic, Partition: i}] {
			if off < start || off >= hw {
				t.Errorf("%s-%d: acknowledged record %s at offset %d outside the log [%d, %d): lost", p.Topic(), i, a.tag, off, start, hw)
				continue
			}
			r := recs[off-start]
			if got := recordsSum([]*stream.Record{r}); got != a.sum || !bytes.HasPrefix(r.Value, []byte(a.tag+"|")) {
				t.Errorf("%s-%d offset %d: record %.40q (checksum %d), acknowledged %s (checksum %d)", p.Topic(), i, off, r.Value, got, a.tag, a.sum)
			}
		}
	}
}

// --- Consumer group commits --------------------------------------------

const (
	crashGroupTopic      = "jobs"
	crashGroupID         = "workers"
	crashGroupPartitions = 3
	crashGroupRecords    = 3000 // per partition
)

// errCrashInjected is the child handler's occasional failure, to exercise
// Run's commit-up-to-the-failed-record path.
var errCrashInjected = errors.New("injected handler failure")

func crashGroupValue(part int32, off int64) string { return fmt.Sprintf("p%d-o%d", part, off) }

// crashChildGroup consumes the pre-filled topic as a member of a group
// with Run (committing after each handled batch and auto-committing every
// millisecond), printing
//
//	READY                     once joined
//	HANDLED partition offset  when the handler accepted a record
//	FAIL partition offset     when the handler refused one (injected)
//	COMMIT partition offset   when it sees a new committed offset
//	AFTERFAIL partition offset  the committed offsets once Run returned
//	                            the handler's error (-1: none)
//
// The committed offsets are read back from the group (meta.db) after each
// handled record and after Run returns: a COMMIT line reports a commit
// the engine made and acknowledged.
func crashChildGroup(dir string, seed uint64, out *crashOut) {
	s, err := stream.Open(dir, nil)
	if err != nil {
		crashMoreFail("open: %v", err)
	}
	rng := rand.New(rand.NewPCG(seed, 1))
	g, err := s.ConsumerGroup(crashGroupID, stream.GroupConfig{
		Topics: []string{crashGroupTopic}, StartAt: stream.StartEarliest, CommitInterval: time.Millisecond,
	})
	if err != nil {
		crashMoreFail("group: %v", err)
	}
	ctx := context.Background()
	c, err := g.Join(ctx, stream.ConsumerConfig{MaxPollRecords: 1 + rng.IntN(16), FetchMaxWait: 50 * time.Millisecond})
	if err != nil {
		crashMoreFail("join: %v", err)
	}
	out.emit("READY")
	last := map[int32]int64{}
	reportCommits := func() {
		cm, err := g.Committed(ctx)
		if err != nil {
			crashMoreFail("committed: %v", err)
		}
		for tp, off := range cm {
			if prev, ok := last[tp.Partition]; !ok || off != prev {
				out.emit("COMMIT %d %d", tp.Partition, off)
				last[tp.Partition] = off
			}
		}
	}
	reportCommits()
	for {
		err := c.Run(ctx, func(ctx context.Context, r *stream.Record) error {
			if rng.IntN(60) == 0 {
				out.emit("FAIL %d %d", r.Partition, r.Offset)
				return errCrashInjected
			}
			if want := crashGroupValue(r.Partition, r.Offset); string(r.Value) != want {
				crashMoreFail("record %d of partition %d is %q, want %q", r.Offset, r.Partition, r.Value, want)
			}
			out.emit("HANDLED %d %d", r.Partition, r.Offset)
			reportCommits()
			return nil
		})
		if !errors.Is(err, errCrashInjected) {
			crashMoreFail("run: %v", err)
		}
		// Run committed up to the failed record, and on every other
		// partition up to its first record not handled.
		cm, err := g.Committed(ctx)
		if err != nil {
			crashMoreFail("committed: %v", err)
		}
		for p := range int32(crashGroupPartitions) {
			off, ok := cm[stream.TopicPartition{Topic: crashGroupTopic, Partition: p}]
			if !ok {
				off = -1
			}
			out.emit("AFTERFAIL %d %d", p, off)
		}
		reportCommits()
	}
}

// TestCrashGroupCommits kills a child consuming a pre-filled topic in a
// consumer group with Run. After each kill, for every partition:
//
//   - the committed offset is at least the last commit the child saw
//     succeed (an acknowledged commit is durable) and never moves back;
//   - it is never past a record the child had not handled (every offset
//     below it was handled);
//   - a new member resumes exactly at it: both a member the parent joins
//     (its first record) and the next child (its first handled record),
//     so nothing below it is redelivered and nothing at or above it lost;
//   - within a run the handled offsets are contiguous, a failed record
//     being redelivered next;
//   - when the handler fails, Run has committed exactly up to the
//     first record not handled on every partition.
func TestCrashGroupCommits(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns child processes")
	}
	seed := crashSeed(t)
	rng := rand.New(rand.NewPCG(seed, 0))
	dir := t.TempDir()
	fillGroupTopic(t, dir)
	committed := map[int32]int64{}  // after the last reopen
	handledEnd := map[int32]int64{} // every offset below was handled
	var handled, commits, fails int
	// At least 12 rounds, and more (up to 60) until the children have
	// done enough: kills come at random moments of wall time, and a
	// loaded machine gets less done in each.
	const minRounds, maxRounds = 12, 60
	rounds := 0
	for round := 0; round < minRounds || (commits <= minRounds || handled <= 10*minRounds) && round < maxRounds; round++ {
		rounds++
		delay := time.Duration(rng.IntN(150)) * time.Millisecond
		lines := runMoreChild(t, "group", dir, "", rng.Uint64(), delay)
		next := map[int32]int64{} // the next offset the child must handle
		for p, off := range committed {
			next[p] = off
		}
		lastCommit := map[int32]int64{}
		for _, line := range lines {
			verb, rest, _ := strings.Cut(line, " ")
			var p int32
			var off int64
			if verb != "READY" {
				scanLine(t, rest, "%d %d", &p, &off)
			}
			switch verb {
			case "HANDLED":
				if off != next[p] {
					t.Fatalf("round %d: partition %d: handled offset %d, want %d (committed at start %d)", round, p, off, next[p], committed[p])
				}
				next[p] = off + 1
				handledEnd[p] = max(handledEnd[p], off+1)
				handled++
			case "FAIL":
				if off != next[p] {
					t.Fatalf("round %d: partition %d: handler got offset %d, want %d", round, p, off, next[p])
				}
				fails++
			case "AFTERFAIL":
				// Run commits exactly what was handled: the next
				// record to handle, on every partition.
				if want := next[p]; off != want && (off != -1 || want != 0) {
					t.Fatalf("round %d: partition %d: committed %d after a handler failure, want %d (the next record not handled)", round, p, off, want)
				}
			case "COMMIT":
				if off > handledEnd[p] {
					t.Fatalf("round %d: partition %d: committed %d, but only offsets below %d were handled", round, p, off, handledEnd[p])
				}
				lastCommit[p] = off
				commits++
			}
		}
		checkGroupAfterCrash(t, dir, committed, lastCommit, handledEnd)
		if t.Failed() {
			t.Fatalf("round %d (killed after %v, %d lines)", round, delay, len(lines))
		}
	}
	t.Logf("%d rounds: %d records handled, %d commits seen, %d injected failures; committed %v", rounds, handled, commits, fails, committed)
	if commits <= minRounds || handled <= 10*minRounds {
		t.Errorf("the children did too little to test anything in %d rounds: %d records handled, %d commits", rounds, handled, commits)
	}
}

// fillGroupTopic creates the group test's topic with crashGroupRecords
// records in each partition.
func fillGroupTopic(t *testing.T, dir string) {
	t.Helper()
	s, err := stream.Open(dir, &stream.Options{Sync: stream.SyncNever})
	if err != nil {
		t.Fatal(err)
	}
	tp, err := s.CreateTopic(crashGroupTopic, stream.TopicConfig{Partitions: crashGroupPartitions, Retention: -1})
	if err != nil {
		t.Fatal(err)
	}
	for i := range int32(crashGroupPartitions) {
		p, _ := tp.Partition(i)
		var b stream.Batch
		for off := int64(0); off < crashGroupRecords; off++ {
			b.Add(nil, []byte(crashGroupValue(i, off)))
			if b.Len() == 100 || off == crashGroupRecords-1 {
				if _, err := p.AppendBatch(&b); err != nil {
					t.Fatal(err)
				}
				b.Reset()
			}
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

// checkGroupAfterCrash reopens dir, checks the group's committed offsets
// against what the child reported, updates committed, and checks that a
// new member starts at them.
func checkGroupAfterCrash(t *testing.T, dir string, committed, lastCommit, handledEnd map[int32]int64) {
	t.Helper()
	s, err := stream.Open(dir, nil)
	if err != nil {
		t.Fatalf("reopen after SIGKILL: %v", err)
	}
	defer func() {
		if err := s.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	}()
	// No auto-commit and no commit on Close: the parent only looks.
	g, err := s.ConsumerGroup(crashGroupID, stream.GroupConfig{
		Topics: []string{crashGroupTopic}, StartAt: stream.StartEarliest, CommitInterval: -1,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cm, err := g.Committed(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for tp, off := range cm {
		if tp.Topic != crashGroupTopic || tp.Partition < 0 || tp.Partition >= crashGroupPartitions {
			t.Errorf("committed offset %d for %s-%d, which the group does not consume", off, tp.Topic, tp.Partition)
		}
	}
	pending := map[int32]bool{} // partitions a new member must read from
	for p := range int32(crashGroupPartitions) {
		off, ok := cm[stream.TopicPartition{Topic: crashGroupTopic, Partition: p}]
		if !ok {
			off = 0 // StartEarliest
		}
		if reported, ok := lastCommit[p]; ok && off < reported {
			t.Errorf("partition %d: committed offset %d, but the child saw %d committed: an acknowledged commit was lost", p, off, reported)
		}
		if off < committed[p] {
			t.Errorf("partition %d: committed offset %d moved back from %d", p, off, committed[p])
		}
		if off > handledEnd[p] {
			t.Errorf("partition %d: committed offset %d, but only offsets below %d were handled", p, off, handledEnd[p])
		}
		committed[p] = off
		if off < crashGroupRecords {
			pending[p] = true
		}
	}
	if t.Failed() || len(pending) == 0 {
		return
	}
	c, err := g.Join(ctx, stream.ConsumerConfig{FetchMaxWait: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := c.Close(); err != nil {
			t.Errorf("close consumer: %v", err)
		}
	}()
	for len(pending) > 0 {
		recs, err := c.Poll(ctx)
		if err != nil {
			t.Fatalf("poll (waiting for partitions %v): %v", pending, err)
		}
		for _, r := range recs {
			if !pending[r.Partition] {
				continue
			}
			delete(pending, r.Partition)
			if r.Offset != committed[r.Partition] {
				t.Errorf("partition %d: a new member starts at %d, the committed offset is %d", r.Partition, r.Offset, committed[r.Partition])
			}
		}
	}
}
