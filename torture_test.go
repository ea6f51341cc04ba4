package stream_test

// The torture suite (issue #14): randomized faults on one node and on a
// cluster, judged by the history checker (torture_checker_test.go).
//
//	go test -run Torture -v . -torture.time=30s      # a long pass
//	go test -run Torture -v . -torture.seed=S         # replay
//
// (-v shows the summary line of a pass that passed; go test hides a
// passing package's output. A pass longer than a few minutes wants
// -timeout 0: the test stops starting runs 3 minutes before -timeout.)
//
// Each run of a mode gets its own seed (the pass's seed plus the run's
// index), printed; -torture.seed=S -torture.mode=M replays that run
// first. Modes, each cycling through randomly combined nemeses:
//
//   - disk: one node on MemFS, in process (torture_nemesis_test.go):
//     power cuts, EIO/ENOSPC on writes and fsyncs, group members
//     stalling past their timeouts, bit flips and truncation in
//     segments, indexes and recovery points.
//   - kill: one node in a child process that is SIGKILLed at a random
//     moment of appending, rolling, committing or rebalancing
//     (torture_kill_test.go). Not replayable exactly: the kill lands
//     where the operating system's scheduler put the child.
//   - cluster: three nodes over a MemNetwork under testing/synctest
//     (torture_cluster_test.go): partitions, leader kills and restarts,
//     message drops, delays, duplicates and reordering, a slow disk.
//
// The disk and cluster modes draw every nemesis decision from the seed;
// what the goroutines do between the decisions is up to the Go scheduler,
// so a replay repeats the faults exactly, and the interleaving only as
// far as the scheduler does.
//
// Without -torture.time each mode runs one short run, so that go test
// ./... stays fast. The pass ends with the line issue #14 gives:
//
//	torture: seed S, N cycles, A acknowledged, lost 0, inconsistent 0, duplicate D, skipped 0, unseen 0

import (
	"flag"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"
)

var (
	tortureTime = flag.Duration("torture.time", 0, "run the torture suite's randomized cycles for this long (0: one short run per mode)")
	tortureSeed = flag.Uint64("torture.seed", 0, "the torture suite's seed (0: from the clock); printed by every run")
	tortureMode = flag.String("torture.mode", "", "run only this torture mode: disk, kill or cluster")
	// tortureKnown turns on the nemeses that trigger known bugs, listed
	// in RELIABILITY.md: their checks stay, the default runs leave
	// them out.
	tortureKnown = flag.Bool("torture.known", false, "also run the nemeses that trigger known bugs (RELIABILITY.md)")
)

// tortureModeFunc runs one run of a mode with its seed, long (more
// cycles) or short, and returns its cycles and the checker's verdict.
type tortureModeFunc func(t *testing.T, seed uint64, long bool) (cycles int, r tortureResult)

var tortureModes = []struct {
	name string
	run  tortureModeFunc
}{
	{"disk", tortureDisk},
	{"kill", tortureKill},
	{"cluster", tortureCluster},
}

func TestTorture(t *testing.T) {
	seed := *tortureSeed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	var modes []int
	for i, m := range tortureModes {
		if *tortureMode == "" || *tortureMode == m.name {
			modes = append(modes, i)
		}
	}
	if len(modes) == 0 {
		t.Fatalf("-torture.mode=%q: no such mode", *tortureMode)
	}
	t.Logf("torture: seed %d (replay with -torture.seed=%d)", seed, seed)
	deadline := time.Now().Add(*tortureTime)
	var total tortureResult
	cycles := 0
	perMode := map[string]*tortureResult{}
	perModeCycles := map[string]int{}
	var failed []string // the runs with anomalies, to replay
	for i := 0; ; i++ {
		if *tortureTime == 0 && i == len(modes) {
			break
		}
		if *tortureTime > 0 && i > 0 && time.Now().After(deadline) {
			break
		}
		if d, ok := t.Deadline(); ok && i > 0 && time.Until(d) < 3*time.Minute {
			t.Logf("torture: stopping early, %v before the test binary's -timeout", time.Until(d).Round(time.Second))
			break
		}
		m := tortureModes[modes[i%len(modes)]]
		if m.name == "kill" && testing.Short() {
			continue
		}
		runSeed := seed + uint64(i)
		var n int
		var r tortureResult
		ok := t.Run(fmt.Sprintf("%s/seed=%d", m.name, runSeed), func(t *testing.T) {
			n, r = m.run(t, runSeed, *tortureTime > 0)
			t.Logf("%s", r.classes())
			t.Logf("%s", r.summary(runSeed, n))
			if r.Anomalies() > 0 {
				t.Errorf("%d anomalies; replay with -torture.seed=%d -torture.mode=%s:\n%s", r.Anomalies(), runSeed, m.name, strings.Join(r.Details, "\n"))
			}
		})
		cycles += n
		total.add(r)
		if perMode[m.name] == nil {
			perMode[m.name] = &tortureResult{}
		}
		perMode[m.name].add(r)
		perModeCycles[m.name] += n
		if !ok {
			failed = append(failed, fmt.Sprintf("-torture.seed=%d -torture.mode=%s", runSeed, m.name))
		}
	}
	for _, m := range tortureModes {
		if r := perMode[m.name]; r != nil {
			t.Logf("mode %s: %s", m.name, r.summary(seed, perModeCycles[m.name]))
		}
	}
	if len(failed) > 0 {
		t.Logf("torture: %d runs with anomalies; replay each with:\n%s", len(failed), strings.Join(failed, "\n"))
	}
	line := total.classes() + "\n" + total.summary(seed, cycles)
	t.Log(line)
	if *tortureTime > 0 {
		// go test shows a passing test's log only with -v: say it
		// anyway, it is what the long pass is for.
		fmt.Fprintln(os.Stderr, line)
	}
}
