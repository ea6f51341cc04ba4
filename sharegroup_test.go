package stream_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"testing"
	"testing/synctest"
	"time"

	"github.com/instream/stream"
)

func shareGroup(t *testing.T, s *stream.Stream, id string, cfg stream.ShareGroupConfig) *stream.ShareGroup {
	t.Helper()
	g, err := s.ShareGroup(id, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func shareJoin(t *testing.T, g *stream.ShareGroup, cfg stream.ShareMemberConfig) *stream.ShareMember {
	t.Helper()
	m, err := g.Join(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

func sharePoll(t *testing.T, m *stream.ShareMember) []*stream.Acquired {
	t.Helper()
	recs, err := m.Poll(context.Background())
	if err != nil {
		t.Fatalf("Poll: %v", err)
	}
	return recs
}

// offsets lists the offsets of acquired records.
func offsets(recs []*stream.Acquired) []int64 {
	out := make([]int64, len(recs))
	for i, r := range recs {
		out[i] = r.Offset
	}
	return out
}

// appendKeyed appends one record per key to partition 0 of tp.
func appendKeyed(t *testing.T, tp *stream.Topic, keys ...string) {
	t.Helper()
	p, err := tp.Partition(0)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		var key []byte
		if k != "" {
			key = []byte(k)
		}
		if _, err := p.Append(&stream.Record{Key: key, Value: []byte("v-" + k)}); err != nil {
			t.Fatal(err)
		}
	}
}

func shareStats(t *testing.T, g *stream.ShareGroup, topic string, p int32) stream.SharePartitionStats {
	t.Helper()
	st, err := g.Stats()
	if err != nil {
		t.Fatal(err)
	}
	return st[tpOf(topic, p)]
}

func TestShareGroupAcceptReleaseReject(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, _ := open(t, nil)
		tp := topic(t, s, "jobs", 1)
		appendKeyed(t, tp, "a", "b", "c")
		g := shareGroup(t, s, "q", stream.ShareGroupConfig{Topics: []string{"jobs"}, StartAt: stream.StartEarliest,
			AcquisitionLock: 10 * time.Second, ReleaseBackoff: time.Second})
		m := shareJoin(t, g, stream.ShareMemberConfig{FetchMaxWait: 5 * time.Second})
		ctx := context.Background()

		recs := sharePoll(t, m)
		if fmt.Sprint(offsets(recs)) != "[0 1 2]" || recs[0].DeliveryCount != 1 || string(recs[0].Value) != "v-a" {
			t.Fatalf("first poll: %v", offsets(recs))
		}
		if !recs[0].LockedUntil.Equal(time.Now().Add(10 * time.Second)) {
			t.Fatalf("LockedUntil %v, want now+10s", recs[0].LockedUntil)
		}
		if st := shareStats(t, g, "jobs", 0); st.Acquired != 3 || st.InFlight != 3 || st.Backlog != 3 {
			t.Fatalf("stats while held: %+v", st)
		}
		if err := m.Accept(ctx, recs[0]); err != nil {
			t.Fatal(err)
		}
		if err := m.Release(ctx, recs[1]); err != nil {
			t.Fatal(err)
		}
		if err := m.Reject(ctx, recs[2]); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		again := sharePoll(t, m) // record 1 after its backoff, nothing else
		if fmt.Sprint(offsets(again)) != "[1]" || again[0].DeliveryCount != 2 {
			t.Fatalf("poll after release: %v", offsets(again))
		}
		if waited := time.Since(start); waited != time.Second {
			t.Fatalf("released record came back after %v, want the 1s backoff", waited)
		}
		// A second acknowledgement of a finished record is refused.
		err := m.Accept(ctx, recs[0])
		var ae *stream.ShareAckError
		if !errors.Is(err, stream.ErrNotAcquired) || !errors.As(err, &ae) || ae.Offset != 0 || ae.Expired {
			t.Fatalf("accepting twice: %v", err)
		}
		// The stale acquisition of record 1 (delivery 1) is not the
		// current one (delivery 2).
		if err := m.Accept(ctx, recs[1]); !errors.Is(err, stream.ErrNotAcquired) {
			t.Fatalf("accepting an old delivery: %v", err)
		}
		if err := m.Accept(ctx, again[0]); err != nil {
			t.Fatal(err)
		}
		st := shareStats(t, g, "jobs", 0)
		want := stream.SharePartitionStats{StartOffset: 3, EndOffset: 3, HighWatermark: 3, Accepted: 2, Rejected: 1}
		if st != want {
			t.Fatalf("stats: %+v, want %+v", st, want)
		}
		if recs := sharePoll(t, m); len(recs) != 0 {
			t.Fatalf("poll of a finished queue: %v", offsets(recs))
		}
	})
}

func TestShareGroupLockExpiry(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, _ := open(t, nil)
		tp := topic(t, s, "jobs", 1)
		appendKeyed(t, tp, "a", "b")
		g := shareGroup(t, s, "q", stream.ShareGroupConfig{Topics: []string{"jobs"}, StartAt: stream.StartEarliest,
			AcquisitionLock: 10 * time.Second})
		a := shareJoin(t, g, stream.ShareMemberConfig{MaxPollRecords: 1, FetchMaxWait: time.Minute})
		b := shareJoin(t, g, stream.ShareMemberConfig{FetchMaxWait: time.Minute})
		ctx := context.Background()

		held := sharePoll(t, a) // record 0
		time.Sleep(5 * time.Second)
		other := sharePoll(t, b)
		if fmt.Sprint(offsets(held), offsets(other)) != "[0] [1]" {
			t.Fatalf("polls: %v %v", offsets(held), offsets(other))
		}
		// b waits for record 0: it gets it when a's lock ends, not before.
		start := time.Now()
		got := sharePoll(t, b)
		if fmt.Sprint(offsets(got)) != "[0]" || got[0].DeliveryCount != 2 || time.Since(start) != 5*time.Second {
			t.Fatalf("b's poll after %v: %v", time.Since(start), offsets(got))
		}
		err := a.Accept(ctx, held[0])
		var ae *stream.ShareAckError
		if !errors.As(err, &ae) || !errors.Is(err, stream.ErrNotAcquired) || ae.Expired {
			t.Fatalf("a accepting a record b holds: %v", err)
		}
		// Its own lock expired, nobody took it: the accept still fails.
		time.Sleep(10 * time.Second)
		err = b.Accept(ctx, other[0], got[0])
		if !errors.As(err, &ae) || !ae.Expired {
			t.Fatalf("accepting after the lock: %v", err)
		}
		if st := shareStats(t, g, "jobs", 0); st.Accepted != 0 || st.Acquired != 0 || st.InFlight != 2 {
			t.Fatalf("stats: %+v", st)
		}
		// Redelivered, with the count going on.
		got = sharePoll(t, a)
		if fmt.Sprint(offsets(got)) != "[0]" || got[0].DeliveryCount != 3 {
			t.Fatalf("redelivery: %v", offsets(got))
		}
	})
}

func TestShareGroupDeliveryLimitDeadLetter(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, _ := open(t, nil)
		tp := topic(t, s, "jobs", 1)
		topic(t, s, "dead", 1)
		appendKeyed(t, tp, "released", "expired", "rejected", "ok")
		g := shareGroup(t, s, "q", stream.ShareGroupConfig{Topics: []string{"jobs"}, StartAt: stream.StartEarliest,
			AcquisitionLock: time.Second, MaxDeliveries: 2, ReleaseBackoff: time.Millisecond, DeadLetterTopic: "dead"})
		m := shareJoin(t, g, stream.ShareMemberConfig{FetchMaxWait: time.Minute})
		ctx := context.Background()
		byKey := func(recs []*stream.Acquired) map[string]*stream.Acquired {
			out := map[string]*stream.Acquired{}
			for _, r := range recs {
				out[string(r.Key)] = r
			}
			return out
		}
		first := byKey(sharePoll(t, m))
		if err := m.Accept(ctx, first["ok"]); err != nil {
			t.Fatal(err)
		}
		if err := m.Reject(ctx, first["rejected"]); err != nil {
			t.Fatal(err)
		}
		if err := m.Release(ctx, first["released"]); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Second) // "expired"'s lock ends
		second := byKey(sharePoll(t, m))
		if len(second) != 2 || second["released"].DeliveryCount != 2 || second["expired"].DeliveryCount != 2 {
			t.Fatalf("second delivery: %v", second)
		}
		if err := m.Release(ctx, second["released"]); err != nil { // the last delivery: rejected
			t.Fatal(err)
		}
		time.Sleep(time.Second)
		if recs := sharePoll(t, m); len(recs) != 0 { // rejects "expired", hands out nothing
			t.Fatalf("third poll: %v", offsets(recs))
		}
		st := shareStats(t, g, "jobs", 0)
		if st.StartOffset != 4 || st.Accepted != 1 || st.Rejected != 3 || st.DeadLettered != 3 {
			t.Fatalf("stats: %+v", st)
		}
		dp, _ := mustTopic(t, s, "dead").Partition(0)
		dead, err := dp.Read(0, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]map[string]string{}
		for _, r := range dead {
			h := map[string]string{}
			for _, x := range r.Headers {
				h[x.Key] = string(x.Value)
			}
			got[string(r.Key)] = h
		}
		want := map[string]map[string]string{
			"rejected": {"stream.dlt.topic": "jobs", "stream.dlt.partition": "0", "stream.dlt.offset": "2",
				"stream.dlt.error": "rejected by member " + m.ID(), "stream.dlt.group": "q", "stream.dlt.deliveries": "1"},
			"released": {"stream.dlt.topic": "jobs", "stream.dlt.partition": "0", "stream.dlt.offset": "0",
				"stream.dlt.error": "delivery limit 2 reached (released)", "stream.dlt.group": "q", "stream.dlt.deliveries": "2"},
			"expired": {"stream.dlt.topic": "jobs", "stream.dlt.partition": "0", "stream.dlt.offset": "1",
				"stream.dlt.error": "delivery limit 2 reached (the last lock expired)", "stream.dlt.group": "q", "stream.dlt.deliveries": "2"},
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("dead letters:\n got %v\nwant %v", got, want)
		}
	})
}

func mustTopic(t *testing.T, s *stream.Stream, name string) *stream.Topic {
	t.Helper()
	tp, err := s.Topic(name)
	if err != nil {
		t.Fatal(err)
	}
	return tp
}

func TestShareGroupOrderedByKey(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, _ := open(t, nil)
		tp := topic(t, s, "jobs", 1)
		appendKeyed(t, tp, "a", "a", "b", "", "", "b", "c")
		g := shareGroup(t, s, "q", stream.ShareGroupConfig{Topics: []string{"jobs"}, StartAt: stream.StartEarliest,
			OrderedByKey: true, ReleaseBackoff: time.Second})
		m1 := shareJoin(t, g, stream.ShareMemberConfig{FetchMaxWait: time.Minute})
		m2 := shareJoin(t, g, stream.ShareMemberConfig{FetchMaxWait: 10 * time.Second})
		ctx := context.Background()
		first := sharePoll(t, m1)
		if fmt.Sprint(offsets(first)) != "[0 2 3 4 6]" { // one of each key, and the keyless ones
			t.Fatalf("first poll: %v", offsets(first))
		}
		if recs := sharePoll(t, m2); len(recs) != 0 { // a's and b's next wait for their predecessors
			t.Fatalf("second member: %v", offsets(recs))
		}
		// A released record keeps its lane through its backoff.
		if err := m1.Release(ctx, first[0]); err != nil {
			t.Fatal(err)
		}
		if err := m1.Accept(ctx, first[1]); err != nil {
			t.Fatal(err)
		}
		got := sharePoll(t, m2)
		if fmt.Sprint(offsets(got)) != "[5]" {
			t.Fatalf("after b's first: %v", offsets(got))
		}
		got = sharePoll(t, m2) // record 0 again after 1s; record 1 still waits
		if fmt.Sprint(offsets(got)) != "[0]" {
			t.Fatalf("after the backoff: %v", offsets(got))
		}
		if err := m2.Accept(ctx, got[0]); err != nil {
			t.Fatal(err)
		}
		if got = sharePoll(t, m2); fmt.Sprint(offsets(got)) != "[1]" {
			t.Fatalf("a's second: %v", offsets(got))
		}
	})
}

func TestShareGroupMaxInFlightPerMember(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, _ := open(t, nil)
		tp := topic(t, s, "jobs", 1)
		appendKeyed(t, tp, "a", "b", "c", "d")
		g := shareGroup(t, s, "q", stream.ShareGroupConfig{Topics: []string{"jobs"}, StartAt: stream.StartEarliest, MaxInFlightPerMember: 2})
		m := shareJoin(t, g, stream.ShareMemberConfig{FetchMaxWait: time.Second})
		other := shareJoin(t, g, stream.ShareMemberConfig{FetchMaxWait: time.Second})
		held := sharePoll(t, m)
		if fmt.Sprint(offsets(held)) != "[0 1]" {
			t.Fatalf("first poll: %v", offsets(held))
		}
		if recs := sharePoll(t, m); len(recs) != 0 {
			t.Fatalf("poll at the limit: %v", offsets(recs))
		}
		if recs := sharePoll(t, other); fmt.Sprint(offsets(recs)) != "[2 3]" {
			t.Fatalf("the other member: %v", offsets(recs))
		}
		if err := m.Accept(context.Background(), held[0]); err != nil {
			t.Fatal(err)
		}
		// Closing the other member gives its records back at once.
		other.Close()
		if recs := sharePoll(t, m); fmt.Sprint(offsets(recs)) != "[2]" || recs[0].DeliveryCount != 2 {
			t.Fatalf("after an accept: %v", offsets(recs))
		}
	})
}

// TestShareGroupRestart: after a Close and an Open the group goes on
// where it was: finished records are never delivered again, held and
// released ones are, with their delivery counts.
func TestShareGroupRestart(t *testing.T) {
	s, dir := open(t, nil)
	tp := topic(t, s, "jobs", 2)
	fill(t, tp, 5)
	cfg := stream.ShareGroupConfig{Topics: []string{"jobs"}, StartAt: stream.StartEarliest, ReleaseBackoff: time.Nanosecond}
	g := shareGroup(t, s, "q", cfg)
	m := shareJoin(t, g, stream.ShareMemberConfig{})
	ctx := context.Background()
	var all []*stream.Acquired
	for len(all) < 10 {
		all = append(all, sharePoll(t, m)...)
	}
	delivered := map[string]int{}
	for i, r := range all {
		key := fmt.Sprintf("%d/%d", r.Partition, r.Offset)
		switch i % 3 {
		case 0:
			if err := m.Accept(ctx, r); err != nil {
				t.Fatal(err)
			}
		case 1:
			if err := m.Release(ctx, r); err != nil {
				t.Fatal(err)
			}
			delivered[key] = 1
		case 2:
			delivered[key] = 1 // held at Close
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = reopen(t, dir, nil)
	g = shareGroup(t, s, "q", stream.ShareGroupConfig{}) // the stored configuration
	if g.Config().ReleaseBackoff != time.Nanosecond {
		t.Fatalf("stored configuration not used: %+v", g.Config())
	}
	m = shareJoin(t, g, stream.ShareMemberConfig{FetchMaxWait: 100 * time.Millisecond})
	got := map[string]int{}
	for {
		recs := sharePoll(t, m)
		if len(recs) == 0 {
			break
		}
		for _, r := range recs {
			got[fmt.Sprintf("%d/%d", r.Partition, r.Offset)] = r.DeliveryCount - 1
		}
		if err := m.Accept(ctx, recs...); err != nil {
			t.Fatal(err)
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(delivered) {
		t.Fatalf("redelivered after restart (key: earlier deliveries):\n got %v\nwant %v", got, delivered)
	}
	for p := range int32(2) {
		if st := shareStats(t, g, "jobs", p); st.StartOffset != 5 || st.Accepted != 5 || st.Backlog != 0 {
			t.Fatalf("partition %d: %+v", p, st)
		}
	}
}

func TestShareGroupConfigAndAdmin(t *testing.T) {
	s, _ := open(t, nil)
	tp := topic(t, s, "jobs", 1)
	appendKeyed(t, tp, "a", "b")
	if _, err := s.ShareGroup("none", stream.ShareGroupConfig{}); !errors.Is(err, stream.ErrUnknownGroup) {
		t.Fatalf("admin handle of a group never created: %v", err)
	}
	if _, err := s.ShareGroup("q", stream.ShareGroupConfig{Topics: []string{"nope"}}); !errors.Is(err, stream.ErrUnknownTopic) {
		t.Fatalf("unknown topic: %v", err)
	}
	for _, bad := range []stream.ShareGroupConfig{
		{Topics: []string{"jobs"}, AcquisitionLock: -1},
		{Topics: []string{"jobs"}, MaxDeliveries: -1},
		{Topics: []string{"jobs"}, MaxInFlightPerMember: -1},
		{Topics: []string{"jobs"}, DeadLetterTopic: "a b"},
		{Topics: []string{"jobs", "jobs"}},
	} {
		if _, err := s.ShareGroup("q", bad); !errors.Is(err, stream.ErrInvalidConfig) {
			t.Fatalf("%+v: %v", bad, err)
		}
	}
	g := shareGroup(t, s, "q", stream.ShareGroupConfig{Topics: []string{"jobs"}}) // StartLatest
	if again := shareGroup(t, s, "q", stream.ShareGroupConfig{}); again != g {
		t.Fatal("a second open is another object")
	}
	if _, err := s.ShareGroup("q", stream.ShareGroupConfig{Topics: []string{"jobs"}, MaxDeliveries: 9}); !errors.Is(err, stream.ErrInvalidConfig) {
		t.Fatalf("another configuration: %v", err)
	}
	m := shareJoin(t, g, stream.ShareMemberConfig{FetchMaxWait: time.Millisecond})
	if recs := sharePoll(t, m); len(recs) != 0 {
		t.Fatalf("StartLatest delivered old records: %v", offsets(recs))
	}
	if err := g.Reset(context.Background(), stream.StartEarliest); !errors.Is(err, stream.ErrGroupNotEmpty) {
		t.Fatalf("reset with a member: %v", err)
	}
	if err := s.DeleteShareGroup("q"); !errors.Is(err, stream.ErrGroupNotEmpty) {
		t.Fatalf("delete with a member: %v", err)
	}
	m.Close()
	if _, err := m.Poll(context.Background()); !errors.Is(err, stream.ErrClosed) {
		t.Fatalf("poll after Close: %v", err)
	}
	if err := g.Reset(context.Background(), stream.StartEarliest); err != nil {
		t.Fatal(err)
	}
	if st := shareStats(t, g, "jobs", 0); st.StartOffset != 0 || st.Backlog != 2 {
		t.Fatalf("after reset: %+v", st)
	}
	if fmt.Sprint(s.ShareGroups()) != "[q]" {
		t.Fatalf("ShareGroups: %v", s.ShareGroups())
	}
	if err := s.DeleteShareGroup("q"); err != nil {
		t.Fatal(err)
	}
	if _, err := g.Stats(); !errors.Is(err, stream.ErrClosed) {
		t.Fatalf("stats of a deleted group: %v", err)
	}
	if err := s.DeleteShareGroup("q"); !errors.Is(err, stream.ErrUnknownGroup) {
		t.Fatalf("deleting twice: %v", err)
	}
	if len(s.ShareGroups()) != 0 {
		t.Fatalf("ShareGroups after delete: %v", s.ShareGroups())
	}
}

// TestShareGroupRun: Run accepts what its handler accepts and releases
// what it fails, until the delivery limit rejects it.
func TestShareGroupRun(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, _ := open(t, nil)
		tp := topic(t, s, "jobs", 3)
		fill(t, tp, 20)
		g := shareGroup(t, s, "q", stream.ShareGroupConfig{Topics: []string{"jobs"}, StartAt: stream.StartEarliest,
			MaxDeliveries: 3, ReleaseBackoff: time.Millisecond})
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		seen := map[string][]int{}
		done := make(chan error)
		m := shareJoin(t, g, stream.ShareMemberConfig{MaxPollRecords: 7})
		go func() {
			done <- m.Run(ctx, func(_ context.Context, r *stream.Acquired) error {
				k := strconv.Itoa(int(r.Partition)) + "/" + strconv.FormatInt(r.Offset, 10)
				seen[k] = append(seen[k], r.DeliveryCount)
				if r.Offset%5 == 0 {
					return errors.New("poison")
				}
				return nil
			})
		}()
		time.Sleep(time.Minute)
		synctest.Wait()
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Fatalf("Run: %v", err)
		}
		for p := range int32(3) {
			st := shareStats(t, g, "jobs", p)
			if st.StartOffset != 20 || st.Accepted != 16 || st.Rejected != 4 {
				t.Fatalf("partition %d: %+v", p, st)
			}
		}
		for k, d := range seen {
			want := "[1]"
			if off, _ := strconv.Atoi(k[2:]); off%5 == 0 {
				want = "[1 2 3]"
			}
			if fmt.Sprint(d) != want {
				t.Fatalf("%s delivered %v, want %s", k, d, want)
			}
		}
	})
}

// TestShareGroupHoldsRetention: time-based retention deletes no segment
// holding a record a share group has not finished, unless the group
// sets IgnoreRetention.
func TestShareGroupHoldsRetention(t *testing.T) {
	for _, ignore := range []bool{false, true} {
		t.Run(fmt.Sprintf("IgnoreRetention=%v", ignore), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				s, _ := open(t, &stream.Options{RetentionCheckInterval: time.Minute})
				tp, err := s.CreateTopic("jobs", stream.TopicConfig{Retention: time.Hour, SegmentBytes: stream.KiB})
				if err != nil {
					t.Fatal(err)
				}
				p, _ := tp.Partition(0)
				for i := range 40 {
					if _, err := p.Append(&stream.Record{Value: make([]byte, 200), Key: []byte(strconv.Itoa(i))}); err != nil {
						t.Fatal(err)
					}
				}
				g := shareGroup(t, s, "q", stream.ShareGroupConfig{Topics: []string{"jobs"}, StartAt: stream.StartEarliest, IgnoreRetention: ignore})
				m := shareJoin(t, g, stream.ShareMemberConfig{MaxPollRecords: 10})
				recs := sharePoll(t, m)
				if err := m.Accept(context.Background(), recs...); err != nil {
					t.Fatal(err)
				}
				time.Sleep(2 * time.Hour)
				synctest.Wait()
				start := p.StartOffset()
				if ignore {
					if start <= 10 {
						t.Fatalf("retention ignored by the group kept the log from %d", start)
					}
					return
				}
				if start == 0 || start > 10 {
					t.Fatalf("log start %d; want the segments wholly below the group's start 10 deleted, no more", start)
				}
				// The records are still there for the group.
				if recs := sharePoll(t, m); len(recs) != 10 || recs[0].Offset != 10 {
					t.Fatalf("after retention: %v", offsets(recs))
				}
			})
		})
	}
}

// TestShareGroupFollowsNewPartitions: partitions added to a topic, while
// the group runs or while it is closed, are read from their first record
// (a StartLatest group would otherwise skip what was sent to them before
// it looked).
func TestShareGroupFollowsNewPartitions(t *testing.T) {
	s, dir := open(t, nil)
	topic(t, s, "jobs", 1)
	g := shareGroup(t, s, "q", stream.ShareGroupConfig{Topics: []string{"jobs"}}) // StartLatest
	m := shareJoin(t, g, stream.ShareMemberConfig{FetchMaxWait: time.Millisecond})
	if err := s.CreatePartitions("jobs", 2); err != nil {
		t.Fatal(err)
	}
	appendTo := func(p int32) {
		part, err := mustTopic(t, s, "jobs").Partition(p)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := part.Append(&stream.Record{Value: []byte("x")}); err != nil {
			t.Fatal(err)
		}
	}
	appendTo(1)
	if recs := sharePoll(t, m); len(recs) != 1 || recs[0].Partition != 1 {
		t.Fatalf("while running: %v", recs)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = reopen(t, dir, nil)
	if err := s.CreatePartitions("jobs", 3); err != nil {
		t.Fatal(err)
	}
	appendTo(2)
	g = shareGroup(t, s, "q", stream.ShareGroupConfig{Topics: []string{"jobs"}})
	m = shareJoin(t, g, stream.ShareMemberConfig{FetchMaxWait: time.Millisecond})
	got := map[int32]int64{}
	for _, r := range append(sharePoll(t, m), sharePoll(t, m)...) {
		got[r.Partition] = r.Offset
	}
	if fmt.Sprint(got) != "map[1:0 2:0]" { // 1's record again: it was held at Close
		t.Fatalf("after a restart: %v", got)
	}
}

// TestShareGroupDeadLetterFailureBacksOff: a record whose dead-letter copy
// fails (the topic is missing) stays unfinished and is tried again after
// MaxReleaseBackoff, not at every Poll.
func TestShareGroupDeadLetterFailureBacksOff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, _ := open(t, nil)
		appendKeyed(t, topic(t, s, "jobs", 1), "a")
		g := shareGroup(t, s, "q", stream.ShareGroupConfig{Topics: []string{"jobs"}, StartAt: stream.StartEarliest,
			MaxDeliveries: 1, MaxReleaseBackoff: 10 * time.Second, DeadLetterTopic: "dead"})
		m := shareJoin(t, g, stream.ShareMemberConfig{FetchMaxWait: time.Millisecond})
		recs := sharePoll(t, m)
		if err := m.Release(context.Background(), recs...); err != nil {
			t.Fatal(err)
		}
		topic(t, s, "dead", 1)
		time.Sleep(5 * time.Second)
		if recs := sharePoll(t, m); len(recs) != 0 {
			t.Fatalf("a record past its delivery limit delivered again: %v", offsets(recs))
		}
		if st := shareStats(t, g, "jobs", 0); st.Rejected != 0 || st.InFlight != 1 {
			t.Fatalf("dead-lettering retried before its backoff: %+v", st)
		}
		time.Sleep(5 * time.Second)
		sharePoll(t, m)
		if st := shareStats(t, g, "jobs", 0); st.Rejected != 1 || st.DeadLettered != 1 || st.StartOffset != 1 {
			t.Fatalf("after the backoff: %+v", st)
		}
	})
}

// TestShareGroupForgetsDeletedTopic: deleting a topic deletes what closed
// share groups stored of it, as it deletes consumer groups' committed
// offsets, so a share group reopened on a topic of the same name,
// recreated, starts from the new topic's start, not from the old one's
// progress.
func TestShareGroupForgetsDeletedTopic(t *testing.T) {
	s, dir := open(t, nil)
	tp := topic(t, s, "jobs", 1)
	fill(t, tp, 5)
	cfg := stream.ShareGroupConfig{Topics: []string{"jobs"}, StartAt: stream.StartEarliest}
	g := shareGroup(t, s, "q", cfg)
	m := shareJoin(t, g, stream.ShareMemberConfig{})
	var all []*stream.Acquired
	for len(all) < 5 {
		all = append(all, sharePoll(t, m)...)
	}
	if err := m.Accept(context.Background(), all...); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = reopen(t, dir, nil)
	if err := s.DeleteTopic("jobs"); err != nil {
		t.Fatal(err)
	}
	tp = topic(t, s, "jobs", 1)
	fill(t, tp, 3)
	g = shareGroup(t, s, "q", cfg)
	m = shareJoin(t, g, stream.ShareMemberConfig{FetchMaxWait: 100 * time.Millisecond})
	var again []*stream.Acquired
	for len(again) < 3 {
		recs := sharePoll(t, m)
		if len(recs) == 0 {
			t.Fatalf("the recreated topic's records were not delivered (got %d of 3): the group kept the deleted topic's progress", len(again))
		}
		again = append(again, recs...)
	}
	if again[0].Offset != 0 {
		t.Fatalf("first record delivered at offset %d, want 0", again[0].Offset)
	}
}
