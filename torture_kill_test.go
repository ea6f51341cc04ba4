package stream_test

// The torture suite's kill mode: one node in a child process (this test
// binary, re-executed as TestTortureChild, as the crash tests do), killed
// with SIGKILL at a random moment while it appends (rolling 4 KiB
// segments), sends through an idempotent Producer, and runs a consumer
// group whose members poll, commit and rebalance (one leaves and rejoins
// every few dozen polls). The child reports on stdout, before each write,
// the values it is about to write, and after, what it was told; every
// record its members polled; every commit that returned. Under every
// Sync policy an acknowledged write survives kill -9 (the page cache
// does), and a commit that returned is in meta.db. Not replayable
// exactly: where the kill lands is the scheduler's.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
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
	tortureEnvDir  = "STREAM_TORTURE_CHILD_DIR"
	tortureEnvSeed = "STREAM_TORTURE_CHILD_SEED"
	tortureEnvSync = "STREAM_TORTURE_CHILD_SYNC"
)

func tortureKillOptions(policy stream.SyncPolicy) *stream.Options {
	return &stream.Options{
		Sync:               policy,
		SyncInterval:       time.Millisecond,
		SegmentBytes:       4 * stream.KiB,
		IndexIntervalBytes: 512,
		DefaultTopic:       stream.TopicConfig{Retention: -1},
		Logger:             slog.New(slog.DiscardHandler),
	}
}

func tortureKill(t *testing.T, seed uint64, long bool) (int, tortureResult) {
	rng := rand.New(rand.NewPCG(seed, 15))
	h := newTortureHistory()
	dir := t.TempDir()
	policy := []stream.SyncPolicy{stream.SyncAlways, stream.SyncPeriodic, stream.SyncNever}[rng.IntN(3)]
	rounds := 2
	if long {
		rounds = 3 + rng.IntN(4)
	}
	for round := range rounds {
		delay := time.Duration(rng.IntN(300)) * time.Millisecond
		cmd := exec.Command(os.Args[0], "-test.run=^TestTortureChild$", "-test.count=1")
		cmd.Env = append(os.Environ(),
			tortureEnvDir+"="+dir,
			tortureEnvSeed+"="+fmt.Sprintf("%d-%d", seed, round),
			tortureEnvSync+"="+strconv.Itoa(int(policy)),
		)
		lines := killAfterFirstLine(t, cmd, delay, func(line string) (string, bool) {
			return strings.CutPrefix(line, "@ ")
		})
		tortureReplayChild(t, h, lines)
		t.Logf("round %d (%v): killed %v after the child's first line; %d lines", round, policy, delay, len(lines))
		s, err := stream.Open(dir, tortureKillOptions(policy))
		if err != nil {
			h.anomaly("open-error", "Open after SIGKILL: %v", err)
			return round + 1, h.Check()
		}
		last := round == rounds-1
		replica := "interim"
		if last {
			replica = "final"
		}
		tortureReadAll(h, s, replica, false)
		tortureObserveCommits(h, s)
		if err := s.Close(); err != nil {
			h.anomaly("close-error", "Close after SIGKILL: %v", err)
		}
	}
	return rounds, h.Check()
}

// tortureReplayChild turns the child's protocol lines into history.
func tortureReplayChild(t *testing.T, h *tortureHistory, lines []string) {
	pending := map[int32][]string{} // values of the append in flight, by partition
	for _, line := range lines {
		f := strings.Fields(line)
		if len(f) < 2 {
			t.Fatalf("malformed line %q", line)
		}
		num := func(i int) int64 {
			n, err := strconv.ParseInt(f[i], 10, 64)
			if err != nil {
				t.Fatalf("malformed line %q: %v", line, err)
			}
			return n
		}
		tp := func(i int) stream.TopicPartition {
			return stream.TopicPartition{Topic: tortureTopic, Partition: int32(num(i))}
		}
		switch f[0] {
		case "I": // I partition value...: an append about to be made
			for _, v := range f[2:] {
				h.invoke(v, tp(1), true)
			}
			pending[int32(num(1))] = f[2:]
		case "A": // A partition base: that append acknowledged
			for j, v := range pending[int32(num(1))] {
				h.ack(v, tp(1), num(2)+int64(j))
			}
		case "F": // F partition: it failed
			for _, v := range pending[int32(num(1))] {
				h.fail(v, true)
			}
		case "PI": // PI value: a producer send
			h.invoke(f[1], stream.TopicPartition{}, true)
		case "PA": // PA value partition offset
			h.ack(f[1], tp(2), num(3))
		case "PF": // PF value
			h.fail(f[1], false)
		case "S": // S member partition: assigned
			h.assigned(f[1], tp(2))
		case "R": // R member partition offset value
			h.polled(f[1], tp(2), num(3), f[4])
		case "C": // C partition offset: a commit returned
			h.committed("g", tp(1), num(2))
		default:
			t.Fatalf("malformed line %q", line)
		}
	}
}

// TestTortureChild is the kill mode's child process; it does nothing
// unless run by it.
func TestTortureChild(t *testing.T) {
	dir := os.Getenv(tortureEnvDir)
	if dir == "" {
		t.Skip("child process of the torture suite's kill mode")
	}
	tag := "k" + os.Getenv(tortureEnvSeed)
	var seed uint64
	for _, c := range tag {
		seed = seed*31 + uint64(c)
	}
	policy, _ := strconv.Atoi(os.Getenv(tortureEnvSync))
	out := &crashOut{}
	s, err := stream.Open(dir, tortureKillOptions(stream.SyncPolicy(policy)))
	if err != nil {
		crashMoreFail("open: %v", err)
	}
	top, err := s.Topic(tortureTopic)
	if errors.Is(err, stream.ErrUnknownTopic) {
		top, err = s.CreateTopic(tortureTopic, stream.TopicConfig{Partitions: 3, Retention: -1})
	}
	if err != nil {
		crashMoreFail("topic: %v", err)
	}
	for i := range top.NumPartitions() {
		p, _ := top.Partition(int32(i))
		go func() {
			rng := rand.New(rand.NewPCG(seed, uint64(i)))
			for n := 0; ; n++ {
				recs := make([]*stream.Record, 1+rng.IntN(4))
				vals := make([]string, len(recs))
				for j := range recs {
					vals[j] = fmt.Sprintf("%s-a%d-%d-%d", tag, i, n, j)
					recs[j] = &stream.Record{Value: []byte(vals[j])}
				}
				out.emit("I %d %s", i, strings.Join(vals, " "))
				base, err := p.Append(recs...)
				if err != nil {
					out.emit("F %d", i)
					crashMoreFail("append: %v", err)
				}
				out.emit("A %d %d", i, base)
			}
		}()
	}
	prod, err := s.NewProducer(stream.ProducerConfig{Linger: time.Millisecond})
	if err != nil {
		crashMoreFail("producer: %v", err)
	}
	go func() {
		for n := 0; ; n++ {
			v := fmt.Sprintf("%s-p-%d", tag, n)
			out.emit("PI %s", v)
			prod.SendAsync(&stream.Record{Topic: tortureTopic, Key: []byte(fmt.Sprint(n % 5)), Value: []byte(v)}, func(r *stream.Record, err error) {
				if err != nil {
					out.emit("PF %s", v)
					return
				}
				out.emit("PA %s %d %d", v, r.Partition, r.Offset)
			})
		}
	}()
	gcfg := tortureGroupConfig()
	gcfg.CommitInterval = -1 // only the commits the child reports
	gcfg.SessionTimeout = time.Second
	g, err := s.ConsumerGroup("g", gcfg)
	if err != nil {
		crashMoreFail("group: %v", err)
	}
	var wg sync.WaitGroup
	for m := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for join := 0; ; join++ {
				id := fmt.Sprintf("%s-m%d-j%d", tag, m, join)
				pos := map[int32]int64{}
				var mu sync.Mutex
				c, err := g.Join(context.Background(), stream.ConsumerConfig{
					MaxPollRecords: 50, FetchMaxWait: 20 * time.Millisecond,
					OnAssigned: func(_ context.Context, tps []stream.TopicPartition) {
						for _, tp := range tps {
							out.emit("S %s %d", id, tp.Partition)
						}
					},
					OnRevoked: func(_ context.Context, tps []stream.TopicPartition) {
						mu.Lock()
						defer mu.Unlock()
						for _, tp := range tps {
							delete(pos, tp.Partition)
						}
					},
				})
				if err != nil {
					crashMoreFail("join: %v", err)
				}
				for polls := 0; m == 0 || polls < 30; polls++ {
					recs, err := c.Poll(context.Background())
					if err != nil {
						break // evicted: rejoin
					}
					offs := map[stream.TopicPartition]int64{}
					mu.Lock()
					for _, r := range recs {
						out.emit("R %s %d %d %s", id, r.Partition, r.Offset, r.Value)
						pos[r.Partition] = r.Offset + 1
					}
					for p, o := range pos {
						offs[stream.TopicPartition{Topic: tortureTopic, Partition: p}] = o
					}
					mu.Unlock()
					if polls%3 == 2 && len(offs) > 0 {
						if err := c.CommitOffsets(context.Background(), offs); err == nil {
							for tp, o := range offs {
								out.emit("C %d %d", tp.Partition, o)
							}
						}
					}
				}
				c.Close()
			}
		}()
	}
	wg.Wait()
	select {} // until killed
}
