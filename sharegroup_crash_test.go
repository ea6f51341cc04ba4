package stream_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/instream/stream"
)

const (
	shareCrashEnvDir  = "STREAM_SHARE_CRASH_DIR"
	shareCrashEnvSeed = "STREAM_SHARE_CRASH_SEED"
	shareCrashRecords = 1500 // per partition
	shareCrashParts   = 4
)

func shareCrashConfig() stream.ShareGroupConfig {
	return stream.ShareGroupConfig{Topics: []string{"jobs"}, StartAt: stream.StartEarliest,
		MaxDeliveries: 1000, ReleaseBackoff: time.Millisecond, MaxReleaseBackoff: time.Millisecond}
}

// TestShareGroupCrashChild is the child process of
// TestShareGroupCrashSIGKILL; it does nothing unless run by it. Eight
// members acquire, accept and release records until the process is
// killed, printing "ACQ partition offset delivery" for every record
// Poll returned and "ACC partition offset" for every record once Accept
// returned.
func TestShareGroupCrashChild(t *testing.T) {
	dir := os.Getenv(shareCrashEnvDir)
	if dir == "" {
		t.Skip("child process of TestShareGroupCrashSIGKILL")
	}
	fail := func(format string, args ...any) {
		fmt.Fprintf(os.Stderr, "share crash child: "+format+"\n", args...)
		os.Exit(3)
	}
	seed, _ := strconv.ParseUint(os.Getenv(shareCrashEnvSeed), 10, 64)
	s, err := stream.Open(dir, nil)
	if err != nil {
		fail("open: %v", err)
	}
	g, err := s.ShareGroup("q", shareCrashConfig())
	if err != nil {
		fail("share group: %v", err)
	}
	var outMu sync.Mutex
	say := func(lines []string) {
		outMu.Lock()
		defer outMu.Unlock()
		// One write per line: a pipe write under PIPE_BUF is atomic, so
		// the parent reads whole lines whenever the kill comes.
		for _, l := range lines {
			if _, err := os.Stdout.WriteString(l + "\n"); err != nil {
				fail("write: %v", err)
			}
		}
	}
	for w := range 8 {
		go func() {
			rng := rand.New(rand.NewPCG(seed, uint64(w)))
			m, err := g.Join(context.Background(), stream.ShareMemberConfig{MaxPollRecords: 1 + rng.IntN(16), FetchMaxWait: time.Second})
			if err != nil {
				fail("join: %v", err)
			}
			for {
				recs, err := m.Poll(context.Background())
				if err != nil {
					fail("poll: %v", err)
				}
				if len(recs) == 0 {
					// Nothing left to acquire: say so, so that a
					// parent waiting for a first line does not wait
					// for ever once an earlier process finished the
					// queue.
					say([]string{"EMPTY"})
					continue
				}
				lines := make([]string, len(recs))
				for i, r := range recs {
					lines[i] = fmt.Sprintf("ACQ %d %d %d", r.Partition, r.Offset, r.DeliveryCount)
				}
				say(lines)
				var accept, release []*stream.Acquired
				for _, r := range recs {
					if rng.IntN(100) < 15 {
						release = append(release, r)
					} else {
						accept = append(accept, r)
					}
				}
				if err := m.Release(context.Background(), release...); err != nil {
					fail("release: %v", err)
				}
				// Accept one by one or all at once.
				for len(accept) > 0 {
					n := 1
					if rng.IntN(2) == 0 {
						n = len(accept)
					}
					if err := m.Accept(context.Background(), accept[:n]...); err != nil {
						fail("accept: %v", err)
					}
					lines = lines[:0]
					for _, r := range accept[:n] {
						lines = append(lines, fmt.Sprintf("ACC %d %d", r.Partition, r.Offset))
					}
					say(lines)
					accept = accept[n:]
				}
			}
		}()
	}
	select {} // until killed
}

// TestShareGroupCrashSIGKILL kills a process of eight share-group members
// with SIGKILL at random moments, several times, then drains the queue
// and checks that no record accepted (Accept returned) was delivered
// again, neither in a later process nor to the drain; that delivery
// counts only grow; and that at the end every record is accepted: none
// lost. Records acquired but not accepted at a kill are delivered again,
// with a higher delivery count (at least once).
func TestShareGroupCrashSIGKILL(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	seed := shareHistorySeed(t)
	rng := rand.New(rand.NewPCG(seed, 0))
	dir := t.TempDir()
	s, err := stream.Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	tp, err := s.CreateTopic("jobs", stream.TopicConfig{Partitions: shareCrashParts})
	if err != nil {
		t.Fatal(err)
	}
	fill(t, tp, shareCrashRecords)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	accepted := map[string]bool{}
	lastDelivery := map[string]int{}
	for run := range 5 {
		cmd := exec.Command(os.Args[0], "-test.run=^TestShareGroupCrashChild$", "-test.count=1")
		cmd.Env = append(os.Environ(), shareCrashEnvDir+"="+dir, shareCrashEnvSeed+"="+strconv.FormatUint(rng.Uint64(), 10))
		delay := time.Duration(20+rng.IntN(150)) * time.Millisecond
		lines := killAfterFirstLine(t, cmd, delay, func(line string) (string, bool) {
			return line, strings.HasPrefix(line, "ACQ ") || strings.HasPrefix(line, "ACC ") || line == "EMPTY"
		})
		acq, acc := 0, 0
		for _, line := range lines {
			var p, o, d int
			if line == "EMPTY" {
				continue
			}
			if strings.HasPrefix(line, "ACQ ") {
				acq++
				if _, err := fmt.Sscanf(line, "ACQ %d %d %d", &p, &o, &d); err != nil {
					t.Fatalf("child line %q: %v", line, err)
				}
				k := fmt.Sprintf("%d/%d", p, o)
				if accepted[k] {
					t.Fatalf("run %d: record %s delivered again (delivery %d) after it was accepted", run, k, d)
				}
				if d <= lastDelivery[k] {
					t.Fatalf("run %d: record %s delivery %d after delivery %d", run, k, d, lastDelivery[k])
				}
				lastDelivery[k] = d
				continue
			}
			acc++
			if _, err := fmt.Sscanf(line, "ACC %d %d", &p, &o); err != nil {
				t.Fatalf("child line %q: %v", line, err)
			}
			k := fmt.Sprintf("%d/%d", p, o)
			if accepted[k] {
				t.Fatalf("run %d: record %s accepted twice", run, k)
			}
			accepted[k] = true
		}
		t.Logf("run %d: killed after %v: %d acquisitions, %d acceptances", run, delay, acq, acc)
	}

	s, err = stream.Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	g, err := s.ShareGroup("q", stream.ShareGroupConfig{})
	if err != nil {
		t.Fatal(err)
	}
	m, err := g.Join(context.Background(), stream.ShareMemberConfig{FetchMaxWait: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	drained := 0
	for {
		recs, err := m.Poll(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if len(recs) == 0 {
			break
		}
		for _, r := range recs {
			k := fmt.Sprintf("%d/%d", r.Partition, r.Offset)
			if accepted[k] {
				t.Fatalf("record %s delivered again (delivery %d) after the crashes, though accepted", k, r.DeliveryCount)
			}
			if r.DeliveryCount <= lastDelivery[k] {
				t.Fatalf("record %s: delivery %d after delivery %d", k, r.DeliveryCount, lastDelivery[k])
			}
		}
		drained += len(recs)
		if err := m.Accept(context.Background(), recs...); err != nil {
			t.Fatal(err)
		}
	}
	st, err := g.Stats()
	if err != nil {
		t.Fatal(err)
	}
	var total int64
	for p := range int32(shareCrashParts) {
		ps := st[tpOf("jobs", p)]
		if ps.StartOffset != shareCrashRecords || ps.Backlog != 0 || ps.Rejected != 0 {
			t.Fatalf("partition %d not finished: %+v", p, ps)
		}
		total += ps.Accepted
	}
	if total != shareCrashParts*shareCrashRecords {
		t.Fatalf("group counts %d accepted, want %d", total, shareCrashParts*shareCrashRecords)
	}
	t.Logf("%d accepted by the killed processes (printed), %d drained, %d accepted but killed before printing",
		len(accepted), drained, total-int64(len(accepted))-int64(drained))
}
