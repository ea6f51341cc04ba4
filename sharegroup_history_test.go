package stream_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/instream/stream"
)

// shareEvent is one thing a member did with a record, as the history
// tests log it.
type shareEvent struct {
	phase    int // the process lifetime (between Open and Close)
	member   string
	at       time.Time // acquired
	until    time.Time // the lock's end
	end      time.Time // when the member let go: acknowledged, or until
	delivery int
	accepted bool
}

// shareHistory is the log of every acquisition of every record.
type shareHistory struct {
	mu       sync.Mutex
	acquired map[string][]*shareEvent // by "partition/offset"
}

func recKey(r *stream.Acquired) string { return fmt.Sprintf("%d/%d", r.Partition, r.Offset) }

func (h *shareHistory) acquire(phase int, member string, r *stream.Acquired) *shareEvent {
	ev := &shareEvent{phase: phase, member: member, at: time.Now(), until: r.LockedUntil, end: r.LockedUntil, delivery: r.DeliveryCount}
	h.mu.Lock()
	h.acquired[recKey(r)] = append(h.acquired[recKey(r)], ev)
	h.mu.Unlock()
	return ev
}

// check verifies the history: each record is accepted at most once,
// its deliveries are numbered 1, 2, 3... across restarts, and within a
// process two members hold it at once only after the first one's lock
// ended.
func (h *shareHistory) check(t *testing.T) (accepted map[string]bool) {
	t.Helper()
	accepted = map[string]bool{}
	for k, evs := range h.acquired {
		slices.SortStableFunc(evs, func(a, b *shareEvent) int { return a.delivery - b.delivery })
		for i, ev := range evs {
			if ev.delivery != i+1 {
				t.Fatalf("record %s: deliveries %v, want 1, 2, 3...", k, deliveries(evs))
			}
			if ev.accepted {
				if accepted[k] {
					t.Fatalf("record %s accepted twice", k)
				}
				accepted[k] = true
			}
			if i > 0 {
				prev := evs[i-1]
				if prev.accepted {
					t.Fatalf("record %s delivered again (delivery %d to %s) after it was accepted", k, ev.delivery, ev.member)
				}
				if prev.phase == ev.phase && ev.at.Before(prev.end) {
					t.Fatalf("record %s held by %s (delivery %d, from %v) while %s held it (delivery %d, lock until %v, let go at %v)",
						k, ev.member, ev.delivery, ev.at, prev.member, prev.delivery, prev.until, prev.end)
				}
			}
		}
	}
	return accepted
}

func deliveries(evs []*shareEvent) []int {
	out := make([]int, len(evs))
	for i, e := range evs {
		out[i] = e.delivery
	}
	return out
}

func shareHistorySeed(t *testing.T) uint64 {
	seed := uint64(time.Now().UnixNano())
	if v := os.Getenv("STREAM_SHARE_SEED"); v != "" {
		seed, _ = strconv.ParseUint(v, 10, 64)
	}
	t.Logf("seed %d (STREAM_SHARE_SEED)", seed)
	return seed
}

// TestShareGroupHistory runs many members that accept, release, stall
// past their locks and crash (stop without closing: their locks expire),
// over several lifetimes of the Stream, on a fake clock, and checks the
// history: every record accepted exactly once or rejected after
// MaxDeliveries deliveries; none lost; a record held by two members at
// once only after the first one's lock expired; delivery counts that
// survive restarts.
func TestShareGroupHistory(t *testing.T) {
	seed := shareHistorySeed(t)
	synctest.Test(t, func(t *testing.T) {
		const (
			partitions = 3
			perPart    = 150
			maxDeliv   = 4
			lock       = 5 * time.Second
		)
		dir := t.TempDir()
		cfg := stream.ShareGroupConfig{Topics: []string{"jobs"}, StartAt: stream.StartEarliest, AcquisitionLock: lock,
			MaxDeliveries: maxDeliv, ReleaseBackoff: 100 * time.Millisecond, MaxReleaseBackoff: time.Second, DeadLetterTopic: "dead"}
		h := &shareHistory{acquired: map[string][]*shareEvent{}}
		rng := rand.New(rand.NewPCG(seed, 1))
		var mu sync.Mutex // guards rng
		for phase := range 4 {
			s, err := stream.Open(dir, nil)
			if err != nil {
				t.Fatal(err)
			}
			if phase == 0 {
				tp := topic(t, s, "jobs", partitions)
				topic(t, s, "dead", 1)
				fill(t, tp, perPart)
			}
			g, err := s.ShareGroup("q", cfg)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			var wg sync.WaitGroup
			var runMember func(n int)
			runMember = func(n int) {
				defer wg.Done()
				mu.Lock()
				mrng := rand.New(rand.NewPCG(seed, rng.Uint64()))
				mu.Unlock()
				m, err := g.Join(ctx, stream.ShareMemberConfig{MaxPollRecords: 1 + mrng.IntN(4), FetchMaxWait: time.Second})
				if err != nil {
					if !errors.Is(err, context.Canceled) { // a crash replaced as the phase ends
						t.Error(err)
					}
					return
				}
				name := fmt.Sprintf("p%d-%s", phase, m.ID())
				for {
					recs, err := m.Poll(ctx)
					if err != nil {
						if !errors.Is(err, context.Canceled) {
							t.Errorf("%s: poll: %v", name, err)
						}
						return
					}
					evs := make([]*shareEvent, len(recs))
					for i, r := range recs {
						evs[i] = h.acquire(phase, name, r)
					}
					// ok checks an acknowledgement's error: only a record
					// whose lock ended (the member took too long on the
					// ones before) may be refused, with ErrNotAcquired.
					ok := func(what string, r *stream.Acquired, err error) bool {
						if err == nil {
							return true
						}
						if !errors.Is(err, stream.ErrNotAcquired) || time.Now().Before(r.LockedUntil) {
							t.Errorf("%s: %s %s: %v", name, what, recKey(r), err)
						}
						return false
					}
					for i, r := range recs {
						ev := evs[i]
						time.Sleep(time.Duration(mrng.IntN(400)) * time.Millisecond)
						switch x := mrng.IntN(100); {
						case x < 3 && n < 40: // crash: stop without closing, holding what it holds
							wg.Add(1)
							go runMember(n + 1)
							return
						case x < 10: // stall past the lock
							time.Sleep(lock)
							if err := m.Accept(context.Background(), r); !errors.Is(err, stream.ErrNotAcquired) {
								t.Errorf("%s: accepting %s after its lock: %v", name, recKey(r), err)
							}
						case x < 30:
							end := time.Now()
							if ok("release", r, m.Release(context.Background(), r)) {
								ev.end = end
							}
						default:
							end := time.Now()
							if ok("accept", r, m.Accept(context.Background(), r)) {
								ev.end, ev.accepted = end, true
							}
						}
					}
				}
			}
			last := phase == 3
			for i := range 8 {
				if last && i > 0 {
					break
				}
				wg.Add(1)
				go runMember(0)
			}
			if last {
				// One member drains the rest (it stalls and crashes too;
				// a crash starts another).
				for {
					time.Sleep(10 * time.Second)
					st, err := g.Stats()
					if err != nil {
						t.Fatal(err)
					}
					backlog := int64(0)
					for _, p := range st {
						backlog += p.Backlog
					}
					if backlog == 0 {
						break
					}
				}
			} else {
				time.Sleep(30 * time.Second)
			}
			cancel()
			wg.Wait()
			if phase == 3 {
				verifyShareHistory(t, h, s, g, partitions, perPart, maxDeliv)
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
		}
	})
}

func verifyShareHistory(t *testing.T, h *shareHistory, s *stream.Stream, g *stream.ShareGroup, partitions, perPart, maxDeliv int) {
	t.Helper()
	accepted := h.check(t)
	dp, err := mustTopic(t, s, "dead").Partition(0)
	if err != nil {
		t.Fatal(err)
	}
	dead, err := dp.Read(0, 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	rejected := map[string]bool{}
	for _, r := range dead {
		var p, o string
		for _, x := range r.Headers {
			switch x.Key {
			case "stream.dlt.partition":
				p = string(x.Value)
			case "stream.dlt.offset":
				o = string(x.Value)
			}
		}
		k := p + "/" + o
		if rejected[k] || accepted[k] {
			t.Fatalf("record %s dead-lettered twice or after being accepted", k)
		}
		rejected[k] = true
		if evs := h.acquired[k]; len(evs) != maxDeliv {
			t.Fatalf("record %s rejected after deliveries %v, want %d", k, deliveries(evs), maxDeliv)
		}
	}
	st, err := g.Stats()
	if err != nil {
		t.Fatal(err)
	}
	var acc, rej int64
	for p := range int32(partitions) {
		ps := st[tpOf("jobs", p)]
		if ps.StartOffset != int64(perPart) || ps.Backlog != 0 || ps.InFlight != 0 {
			t.Fatalf("partition %d not finished: %+v", p, ps)
		}
		acc += ps.Accepted
		rej += ps.Rejected
	}
	for p := range partitions {
		for o := range perPart {
			k := fmt.Sprintf("%d/%d", p, o)
			if !accepted[k] && !rejected[k] {
				t.Fatalf("record %s lost: neither accepted nor rejected (deliveries %v)", k, deliveries(h.acquired[k]))
			}
		}
	}
	if int(acc) != len(accepted) || int(rej) != len(rejected) {
		t.Fatalf("group counts %d accepted, %d rejected; the members %d accepted, %d were dead-lettered", acc, rej, len(accepted), len(rejected))
	}
	t.Logf("%d records: %d accepted, %d rejected", partitions*perPart, acc, rej)
}
