package stream_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/instream/stream"
)

func part(t *testing.T, tp *stream.Topic, i int) *stream.Partition {
	t.Helper()
	p, err := tp.Partition(int32(i))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// fill appends n records to every partition of tp, values "p<i>-<j>".
func fill(t *testing.T, tp *stream.Topic, n int) {
	t.Helper()
	for i := range tp.NumPartitions() {
		p := part(t, tp, i)
		var b stream.Batch
		for j := range n {
			b.Add(nil, fmt.Appendf(nil, "p%d-%d", i, p.HighWatermark()+int64(j)))
		}
		if _, err := p.AppendBatch(&b); err != nil {
			t.Fatal(err)
		}
	}
}

func tpOf(topic string, p int32) stream.TopicPartition {
	return stream.TopicPartition{Topic: topic, Partition: p}
}

func group(t *testing.T, s *stream.Stream, id string, cfg stream.GroupConfig) *stream.ConsumerGroup {
	t.Helper()
	g, err := s.ConsumerGroup(id, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func join(t *testing.T, g *stream.ConsumerGroup, cfg stream.ConsumerConfig) *stream.Consumer {
	t.Helper()
	c, err := g.Join(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func poll(t *testing.T, c *stream.Consumer) []*stream.Record {
	t.Helper()
	recs, err := c.Poll(context.Background())
	if err != nil {
		t.Fatalf("Poll: %v", err)
	}
	return recs
}

// pollAll polls until want records arrived or a poll returns none.
func pollAll(t *testing.T, c *stream.Consumer, want int) []*stream.Record {
	t.Helper()
	var out []*stream.Record
	for len(out) < want {
		recs := poll(t, c)
		if len(recs) == 0 {
			break
		}
		out = append(out, recs...)
	}
	return out
}

func TestGroupSmoke(t *testing.T) {
	checkNoLeaks(t)
	s, _ := open(t, nil)
	tp := topic(t, s, "t", 2)
	fill(t, tp, 10)
	g := group(t, s, "g", stream.GroupConfig{Topics: []string{"t"}, StartAt: stream.StartEarliest})
	c := join(t, g, stream.ConsumerConfig{FetchMaxWait: 10 * time.Millisecond})
	recs := pollAll(t, c, 20)
	if len(recs) != 20 {
		t.Fatalf("got %d records", len(recs))
	}
	if err := c.Commit(context.Background()); err != nil {
		t.Fatal(err)
	}
	got, err := g.Committed(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if want := map[stream.TopicPartition]int64{tpOf("t", 0): 10, tpOf("t", 1): 10}; !maps.Equal(got, want) {
		t.Fatalf("committed %v, want %v", got, want)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestConsumerConfigValidation(t *testing.T) {
	s, _ := open(t, nil)
	topic(t, s, "t", 1)
	g := group(t, s, "g", stream.GroupConfig{Topics: []string{"t"}})
	tests := []struct {
		cfg   stream.ConsumerConfig
		field string
	}{
		{stream.ConsumerConfig{MaxPollRecords: -1}, "ConsumerConfig.MaxPollRecords"},
		{stream.ConsumerConfig{FetchMinBytes: -1}, "ConsumerConfig.FetchMinBytes"},
		{stream.ConsumerConfig{FetchMaxBytes: -1}, "ConsumerConfig.FetchMaxBytes"},
		{stream.ConsumerConfig{FetchMinBytes: 100, FetchMaxBytes: 10}, "ConsumerConfig.FetchMinBytes"},
		{stream.ConsumerConfig{FetchMaxWait: -time.Second}, "ConsumerConfig.FetchMaxWait"},
		{stream.ConsumerConfig{InstanceID: "a b"}, "ConsumerConfig.InstanceID"},
		{stream.ConsumerConfig{MaxPollInterval: -1}, "ConsumerConfig.MaxPollInterval"},
		{stream.ConsumerConfig{Retry: stream.RetryPolicy{Attempts: -1}}, "ConsumerConfig.Retry.Attempts"},
		{stream.ConsumerConfig{Retry: stream.RetryPolicy{Backoff: -1}}, "ConsumerConfig.Retry.Backoff"},
		{stream.ConsumerConfig{Retry: stream.RetryPolicy{MaxBackoff: -1}}, "ConsumerConfig.Retry.MaxBackoff"},
		{stream.ConsumerConfig{Retry: stream.RetryPolicy{DeadLetterTopic: "a b"}}, "ConsumerConfig.Retry.DeadLetterTopic"},
	}
	for _, tt := range tests {
		t.Run(tt.field, func(t *testing.T) {
			cfg := tt.cfg
			for name, f := range map[string]func() error{
				"NewConsumer": func() error { return second(s.NewConsumer(cfg)) },
				"Join":        func() error { return second(g.Join(context.Background(), cfg)) },
			} {
				if err := f(); !errors.Is(err, stream.ErrInvalidConfig) || !strings.Contains(err.Error(), tt.field) {
					t.Errorf("%s: %v, want ErrInvalidConfig naming %s", name, err, tt.field)
				}
			}
			if cfg.MaxPollRecords != tt.cfg.MaxPollRecords || cfg.FetchMaxWait != tt.cfg.FetchMaxWait || cfg.InstanceID != tt.cfg.InstanceID {
				t.Error("the caller's ConsumerConfig was written")
			}
		})
	}
	if m := g.Members(); len(m) != 0 {
		t.Errorf("failed joins left members %v", m)
	}
}

func TestGroupConfigValidation(t *testing.T) {
	s, _ := open(t, nil)
	topic(t, s, "t", 1)
	tests := []struct {
		cfg   stream.GroupConfig
		field string
		err   error
	}{
		{stream.GroupConfig{Topics: []string{"t"}, SessionTimeout: -1}, "GroupConfig.SessionTimeout", stream.ErrInvalidConfig},
		{stream.GroupConfig{Topics: []string{"t"}, StartAt: 9}, "GroupConfig.StartAt", stream.ErrInvalidConfig},
		{stream.GroupConfig{Topics: []string{"t"}, InitialRebalanceDelay: -1}, "GroupConfig.InitialRebalanceDelay", stream.ErrInvalidConfig},
		{stream.GroupConfig{Topics: []string{"t", "t"}}, "GroupConfig.Topics", stream.ErrInvalidConfig},
		{stream.GroupConfig{Topics: []string{"bad name"}}, "GroupConfig.Topics", stream.ErrInvalidConfig},
		{stream.GroupConfig{Topics: []string{"missing"}}, "missing", stream.ErrUnknownTopic},
	}
	for _, tt := range tests {
		topics := slices.Clone(tt.cfg.Topics)
		_, err := s.ConsumerGroup("g", tt.cfg)
		if !errors.Is(err, tt.err) || !strings.Contains(err.Error(), tt.field) {
			t.Errorf("ConsumerGroup(%+v): %v, want %v naming %s", tt.cfg, err, tt.err, tt.field)
		}
		if !slices.Equal(topics, tt.cfg.Topics) {
			t.Error("the caller's GroupConfig was written")
		}
	}
	if _, err := s.ConsumerGroup("..", stream.GroupConfig{}); !errors.Is(err, stream.ErrInvalidName) {
		t.Errorf("group name \"..\": %v", err)
	}
	cfg := stream.GroupConfig{Topics: []string{"t"}}
	g := group(t, s, "g", cfg)
	want := stream.GroupConfig{Topics: []string{"t"}, Assignor: stream.RangeAssignor, SessionTimeout: 10 * time.Second,
		StartAt: stream.StartLatest, CommitInterval: 5 * time.Second}
	if got := g.Config(); !slices.Equal(got.Topics, want.Topics) || got.Assignor != want.Assignor ||
		got.SessionTimeout != want.SessionTimeout || got.CommitInterval != want.CommitInterval || got.StartAt != want.StartAt {
		t.Errorf("defaults: %+v, want %+v", got, want)
	}
	if g2 := group(t, s, "g", cfg); g2 != g {
		t.Error("a second ConsumerGroup with the same config returned another object")
	}
	if g2 := group(t, s, "g", stream.GroupConfig{}); g2 != g {
		t.Error("an admin handle (no Topics) returned another object")
	}
	if _, err := s.ConsumerGroup("g", stream.GroupConfig{Topics: []string{"t"}, Assignor: stream.RoundRobinAssignor}); !errors.Is(err, stream.ErrInvalidConfig) {
		t.Errorf("reopening with another assignor: %v, want ErrInvalidConfig", err)
	}
	admin := group(t, s, "admin", stream.GroupConfig{})
	if _, err := admin.Join(context.Background(), stream.ConsumerConfig{}); !errors.Is(err, stream.ErrInvalidConfig) {
		t.Errorf("Join on a group without topics: %v", err)
	}
}

func TestGroupLessConsumer(t *testing.T) {
	checkNoLeaks(t)
	s, _ := open(t, nil)
	tp := topic(t, s, "t", 2)
	fill(t, tp, 10)
	c, err := s.NewConsumer(stream.ConsumerConfig{FetchMaxWait: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Poll(context.Background()); err == nil {
		t.Error("Poll with nothing assigned succeeded")
	}
	if err := c.Assign(tpOf("t", 1)); err != nil {
		t.Fatal(err)
	}
	if got := c.Assignment(); !slices.Equal(got, []stream.TopicPartition{tpOf("t", 1)}) {
		t.Fatalf("Assignment %v", got)
	}
	if err := c.Assign(tpOf("t", 7)); !errors.Is(err, stream.ErrUnknownTopic) {
		t.Errorf("Assign of a missing partition: %v", err)
	}
	if err := c.Seek(tpOf("t", 1), 4); err != nil {
		t.Fatal(err)
	}
	recs := pollAll(t, c, 6)
	if len(recs) != 6 || recs[0].Offset != 4 || string(recs[0].Value) != "p1-4" || recs[0].Topic != "t" || recs[0].Partition != 1 {
		t.Fatalf("after Seek(4): %d records, first %+v", len(recs), recs[0])
	}
	if pos, err := c.Position(tpOf("t", 1)); err != nil || pos != 10 {
		t.Errorf("Position %d, %v; want 10", pos, err)
	}
	for _, off := range []int64{-1, 11} {
		if err := c.Seek(tpOf("t", 1), off); !errors.Is(err, stream.ErrOffsetOutOfRange) {
			t.Errorf("Seek(%d): %v, want ErrOffsetOutOfRange", off, err)
		}
	}
	if pos, _ := c.Position(tpOf("t", 1)); pos != 10 {
		t.Errorf("a failed Seek moved the position to %d", pos)
	}
	if err := c.Seek(tpOf("t", 0), 0); err == nil {
		t.Error("Seek on an unassigned partition succeeded")
	}
	if err := c.Commit(context.Background()); err == nil {
		t.Error("Commit on a group-less consumer succeeded")
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Poll(context.Background()); !errors.Is(err, stream.ErrClosed) {
		t.Errorf("Poll after Close: %v", err)
	}
}

// A group-less consumer whose position retention deleted gets
// ErrOffsetOutOfRange, never a silent clamp; a group member resets by
// StartAt.
func TestPositionPassedByRetention(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, err := stream.Open(t.TempDir(), &stream.Options{SegmentBytes: 2 << 10, RetentionCheckInterval: time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		tp, err := s.CreateTopic("t", stream.TopicConfig{RetentionBytes: 8 << 10})
		if err != nil {
			t.Fatal(err)
		}
		p := part(t, tp, 0)
		appendN(t, p, 0, 10)
		c, _ := s.NewConsumer(stream.ConsumerConfig{FetchMaxWait: time.Millisecond})
		c.Assign(tpOf("t", 0))
		g := group(t, s, "g", stream.GroupConfig{Topics: []string{"t"}, StartAt: stream.StartEarliest})
		m := join(t, g, stream.ConsumerConfig{MaxPollRecords: 5})
		if got := poll(t, m); len(got) != 5 {
			t.Fatalf("member polled %d", len(got))
		}
		if err := m.Commit(context.Background()); err != nil {
			t.Fatal(err)
		}
		m.Close()
		appendN(t, p, 10, 1000)
		time.Sleep(time.Minute + time.Second)
		synctest.Wait()
		start := p.StartOffset()
		if start <= 5 {
			t.Fatalf("retention did not pass offset 5 (start %d)", start)
		}
		if _, err := c.Poll(context.Background()); !errors.Is(err, stream.ErrOffsetOutOfRange) {
			t.Errorf("group-less Poll below the log start: %v, want ErrOffsetOutOfRange", err)
		}
		if pos, _ := c.Position(tpOf("t", 0)); pos != 0 {
			t.Errorf("position clamped to %d", pos)
		}
		m = join(t, g, stream.ConsumerConfig{})
		recs := poll(t, m)
		if len(recs) == 0 || recs[0].Offset != start {
			t.Fatalf("member with a committed offset retention passed starts at %v, want StartAt earliest %d", recs, start)
		}
	})
}

func TestPollIsFairAcrossPartitions(t *testing.T) {
	s, _ := open(t, nil)
	tp := topic(t, s, "t", 3)
	var b stream.Batch
	for range 5000 {
		b.Add(nil, []byte("busy"))
	}
	if _, err := part(t, tp, 0).AppendBatch(&b); err != nil {
		t.Fatal(err)
	}
	appendN(t, part(t, tp, 1), 0, 10)
	appendN(t, part(t, tp, 2), 0, 10)
	c, _ := s.NewConsumer(stream.ConsumerConfig{MaxPollRecords: 100})
	defer c.Close()
	c.Assign(tpOf("t", 0), tpOf("t", 1), tpOf("t", 2))
	recs := poll(t, c)
	per := map[int32]int{}
	for _, r := range recs {
		per[r.Partition]++
	}
	if len(recs) != 100 || per[1] != 10 || per[2] != 10 || per[0] != 80 {
		t.Fatalf("first poll: %d records, per partition %v; want the quiet partitions served in full", len(recs), per)
	}
	// Offsets are in order within each partition.
	last := map[int32]int64{0: -1, 1: -1, 2: -1}
	for _, r := range recs {
		if r.Offset != last[r.Partition]+1 {
			t.Fatalf("partition %d: offset %d after %d", r.Partition, r.Offset, last[r.Partition])
		}
		last[r.Partition] = r.Offset
	}
}

func TestPollLongPollTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, _ := open(t, nil)
		topic(t, s, "t", 2)
		c, _ := s.NewConsumer(stream.ConsumerConfig{FetchMaxWait: 3 * time.Second})
		c.Assign(tpOf("t", 0), tpOf("t", 1))
		start := time.Now()
		recs, err := c.Poll(context.Background())
		if err != nil || recs == nil || len(recs) != 0 {
			t.Fatalf("Poll of empty partitions: %v, %v; want an empty slice and nil", recs, err)
		}
		if d := time.Since(start); d != 3*time.Second {
			t.Errorf("Poll waited %v, want FetchMaxWait 3s", d)
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		if _, err := c.Poll(ctx); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Poll with a context ending first: %v", err)
		}
	})
}

func TestFetchMinBytesWaits(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, _ := open(t, nil)
		tp := topic(t, s, "t", 2)
		c, _ := s.NewConsumer(stream.ConsumerConfig{FetchMinBytes: 30, FetchMaxWait: time.Minute})
		c.Assign(tpOf("t", 0), tpOf("t", 1))
		done := make(chan []*stream.Record)
		go func() {
			recs, _ := c.Poll(context.Background())
			done <- recs
		}()
		part(t, tp, 0).Append(&stream.Record{Value: []byte("0123456789")}) // 10 bytes
		synctest.Wait()
		select {
		case <-done:
			t.Fatal("Poll returned below FetchMinBytes")
		default:
		}
		time.Sleep(time.Second)
		part(t, tp, 1).Append(&stream.Record{Value: []byte("01234567890123456789")}) // 30 in all
		synctest.Wait()
		select {
		case recs := <-done:
			if len(recs) != 2 {
				t.Fatalf("got %d records, want 2", len(recs))
			}
		default:
			t.Fatal("Poll did not return at FetchMinBytes")
		}
		// Below FetchMinBytes, FetchMaxWait returns what there is.
		part(t, tp, 0).Append(&stream.Record{Value: []byte("x")})
		start := time.Now()
		if recs := poll(t, c); len(recs) != 1 || time.Since(start) != time.Minute {
			t.Fatalf("got %d records after %v, want 1 after FetchMaxWait", len(recs), time.Since(start))
		}
		c.Close()
	})
}

// Poll wakes on an append without polling the partitions: the wait is
// bounded generously, no absolute speed is asserted.
func TestPollWakesOnAppend(t *testing.T) {
	checkNoLeaks(t)
	s, _ := open(t, &stream.Options{Sync: stream.SyncNever})
	tp := topic(t, s, "t", 4)
	c, _ := s.NewConsumer(stream.ConsumerConfig{FetchMaxWait: time.Hour})
	defer c.Close()
	c.Assign(tpOf("t", 0), tpOf("t", 1), tpOf("t", 2), tpOf("t", 3))
	for i := range 20 {
		got := make(chan []*stream.Record, 1)
		go func() {
			recs, err := c.Poll(context.Background())
			if err != nil {
				t.Error(err)
			}
			got <- recs
		}()
		start := time.Now()
		if _, err := part(t, tp, i%4).Append(&stream.Record{Value: value(i)}); err != nil {
			t.Fatal(err)
		}
		select {
		case recs := <-got:
			if len(recs) != 1 || string(recs[0].Value) != string(value(i)) {
				t.Fatalf("woke with %v", recs)
			}
			if i == 19 {
				t.Logf("wake-up latency of the last append: %v", time.Since(start))
			}
		case <-time.After(30 * time.Second):
			t.Fatal("Poll did not wake on append")
		}
	}
}

// owners tracks partition ownership through OnAssigned and OnRevoked and
// fails the test if a partition ever has two owners.
type owners struct {
	t     *testing.T
	mu    sync.Mutex
	owner map[stream.TopicPartition]string
	lost  map[lostPartition]bool // owned by an evicted member that has not heard yet
	log   []string

	// With ev set (watch), an owner the group evicted on its own (a
	// heartbeat or MaxPollInterval missed) has lost its partitions even
	// before it hears of it, as with evicted: they may move at once.
	ev        *evictionLog
	consumers map[string]*stream.Consumer
	ownerID   map[stream.TopicPartition]string // the owner's member ID when it got the partition
	unplanned map[string]string                // member ID -> reason, for owners evicted on the group's own
	maxOut    map[string]time.Duration         // member ID -> longest time out of Poll
}

// outOfPoll notes that member id spent d between two Polls.
func (o *owners) outOfPoll(id string, d time.Duration) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.maxOut != nil {
		o.maxOut[id] = max(o.maxOut[id], d)
	}
}

// watch makes o learn of evictions the test did not cause from ev, given
// every consumer's name (joined).
func (o *owners) watch(ev *evictionLog) {
	o.ev, o.consumers = ev, map[string]*stream.Consumer{}
	o.ownerID, o.unplanned = map[stream.TopicPartition]string{}, map[string]string{}
	o.maxOut = map[string]time.Duration{}
}

func (o *owners) joined(name string, c *stream.Consumer) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.consumers != nil {
		o.consumers[name] = c
	}
}

func newOwners(t *testing.T) *owners {
	return &owners{t: t, owner: map[stream.TopicPartition]string{}, lost: map[lostPartition]bool{}}
}

type lostPartition struct {
	tp     stream.TopicPartition
	member string
}

// evicted records that the group evicted name: its ownership ended, and
// it reports the loss through OnRevoked at its next Poll.
func (o *owners) evicted(name string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for tp, n := range o.owner {
		if n == name {
			delete(o.owner, tp)
			o.lost[lostPartition{tp, name}] = true
		}
	}
}

func (o *owners) config(name string, cfg stream.ConsumerConfig) stream.ConsumerConfig {
	cfg.OnAssigned = func(_ context.Context, tps []stream.TopicPartition) {
		o.mu.Lock()
		defer o.mu.Unlock()
		o.log = append(o.log, fmt.Sprintf("%s+%v", name, tps))
		var id string
		if c := o.consumers[name]; c != nil {
			id = c.MemberID()
		}
		for _, tp := range tps {
			if cur, ok := o.owner[tp]; ok {
				if reason := o.evictedOwnerLocked(tp); reason != "" {
					// Evicted by the group (the machine too slow for
					// the timeouts): its partition moves, and it
					// reports the loss at its next Poll.
					o.unplanned[o.ownerID[tp]] = reason
					o.lost[lostPartition{tp, cur}] = true
				} else {
					o.t.Errorf("%s assigned %v while %s (member %s, not evicted) owns it", name, tp, cur, o.ownerID[tp])
				}
			}
			o.owner[tp] = name
			if o.ownerID != nil {
				o.ownerID[tp] = id
			}
		}
	}
	cfg.OnRevoked = func(_ context.Context, tps []stream.TopicPartition) {
		o.mu.Lock()
		defer o.mu.Unlock()
		o.log = append(o.log, fmt.Sprintf("%s-%v", name, tps))
		for _, tp := range tps {
			if o.lost[lostPartition{tp, name}] {
				delete(o.lost, lostPartition{tp, name})
				continue
			}
			if o.owner[tp] != name {
				o.t.Errorf("%s revoked %v owned by %q", name, tp, o.owner[tp])
			}
			delete(o.owner, tp)
		}
	}
	return cfg
}

// evictedOwnerLocked returns why the group evicted the member that owns
// tp, or "" if it did not (or o does not watch).
func (o *owners) evictedOwnerLocked(tp stream.TopicPartition) string {
	if o.ev == nil || o.ownerID[tp] == "" {
		return ""
	}
	return o.ev.reason(o.ownerID[tp])
}

func (o *owners) of(name string) []int32 {
	o.mu.Lock()
	defer o.mu.Unlock()
	var ps []int32
	for tp, n := range o.owner {
		if n == name {
			ps = append(ps, tp.Partition)
		}
	}
	slices.Sort(ps)
	return ps
}

func TestEagerRebalance(t *testing.T) {
	for _, a := range []stream.Assignor{stream.RangeAssignor, stream.RoundRobinAssignor} {
		t.Run(a.Name(), func(t *testing.T) {
			checkNoLeaks(t)
			s, _ := open(t, nil)
			topic(t, s, "t", 4)
			g := group(t, s, "g", stream.GroupConfig{Topics: []string{"t"}, Assignor: a})
			o := newOwners(t)
			cc := stream.ConsumerConfig{FetchMaxWait: time.Millisecond}
			a1 := join(t, g, o.config("a", cc))
			poll(t, a1)
			if got := o.of("a"); !slices.Equal(got, []int32{0, 1, 2, 3}) {
				t.Fatalf("single member owns %v", got)
			}
			gen := g.Generation()
			b1 := join(t, g, o.config("b", cc)) // returns at once
			if g.Generation() != gen+1 || len(g.Members()) != 2 {
				t.Fatalf("generation %d, members %v after Join", g.Generation(), g.Members())
			}
			poll(t, b1) // a has not revoked yet: b gets nothing
			if got := o.of("b"); len(got) != 0 {
				t.Fatalf("b got %v before a revoked", got)
			}
			poll(t, a1) // eager: a revokes everything, takes back its share
			if got := o.of("a"); len(got) != 2 {
				t.Fatalf("a owns %v after the rebalance", got)
			}
			if !slices.Contains(o.log, "a-[{t 0} {t 1} {t 2} {t 3}]") {
				t.Errorf("eager member did not revoke everything: %v", o.log)
			}
			poll(t, b1)
			if got := o.of("b"); len(got) != 2 {
				t.Fatalf("b owns %v", got)
			}
			if got := b1.Assignment(); len(got) != 2 {
				t.Errorf("b's Assignment %v", got)
			}
			// Close leaves at once; a takes everything at its next Poll.
			if err := b1.Close(); err != nil {
				t.Fatal(err)
			}
			if m := g.Members(); len(m) != 1 {
				t.Fatalf("members after Close: %v", m)
			}
			poll(t, a1)
			if got := o.of("a"); len(got) != 4 {
				t.Fatalf("a owns %v after b left", got)
			}
			a1.Close()
			if len(o.owner) != 0 {
				t.Errorf("owners left after everyone closed: %v", o.owner)
			}
		})
	}
}

func TestCooperativeRebalanceRevokesOnlyMoved(t *testing.T) {
	s, _ := open(t, nil)
	topic(t, s, "t", 6)
	g := group(t, s, "g", stream.GroupConfig{Topics: []string{"t"}, Assignor: stream.CooperativeStickyAssignor})
	o := newOwners(t)
	cc := stream.ConsumerConfig{FetchMaxWait: time.Millisecond}
	a := join(t, g, o.config("a", cc))
	poll(t, a)
	b := join(t, g, o.config("b", cc))
	poll(t, a)
	poll(t, b)
	if len(o.of("a")) != 3 || len(o.of("b")) != 3 {
		t.Fatalf("a %v, b %v", o.of("a"), o.of("b"))
	}
	kept := o.of("a")
	c := join(t, g, o.config("c", cc))
	o.log = nil
	poll(t, a)
	poll(t, b)
	poll(t, c)
	if len(o.of("a")) != 2 || len(o.of("b")) != 2 || len(o.of("c")) != 2 {
		t.Fatalf("a %v, b %v, c %v", o.of("a"), o.of("b"), o.of("c"))
	}
	for _, p := range o.of("a") {
		if !slices.Contains(kept, p) {
			t.Errorf("a gained %d; sticky members only give up", p)
		}
	}
	for _, e := range o.log {
		if (strings.HasPrefix(e, "a-") || strings.HasPrefix(e, "b-")) && strings.Count(e, "{") != 1 {
			t.Errorf("revocation %s: only the moved partition may be revoked", e)
		}
	}
	a.Close()
	b.Close()
	c.Close()
}

func TestMoreMembersThanPartitionsLeavesSomeIdle(t *testing.T) {
	s, _ := open(t, nil)
	topic(t, s, "t", 2)
	g := group(t, s, "g", stream.GroupConfig{Topics: []string{"t"}})
	var cs []*stream.Consumer
	for range 3 {
		cs = append(cs, join(t, g, stream.ConsumerConfig{FetchMaxWait: time.Millisecond}))
	}
	total := 0
	for range 2 {
		for _, c := range cs {
			poll(t, c)
		}
	}
	idle := 0
	for _, c := range cs {
		total += len(c.Assignment())
		if len(c.Assignment()) == 0 {
			idle++
		}
	}
	if total != 2 || idle != 1 {
		t.Fatalf("%d partitions held, %d idle members", total, idle)
	}
}

// A member that stops calling Poll is evicted after MaxPollInterval (its
// heartbeats go on); see TestHeartbeatsStoppedEvict for SessionTimeout.
func TestMaxPollIntervalEvicts(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, _ := open(t, nil)
		tp := topic(t, s, "t", 2)
		g := group(t, s, "g", stream.GroupConfig{Topics: []string{"t"}, SessionTimeout: 3 * time.Second, CommitInterval: -1, StartAt: stream.StartEarliest})
		o := newOwners(t)
		cc := stream.ConsumerConfig{FetchMaxWait: time.Second, MaxPollInterval: 10 * time.Second}
		a := join(t, g, o.config("a", cc))
		b := join(t, g, o.config("b", cc))
		poll(t, a)
		poll(t, b)
		poll(t, a)
		if len(o.of("a")) != 1 || len(o.of("b")) != 1 {
			t.Fatalf("a %v b %v", o.of("a"), o.of("b"))
		}
		fill(t, tp, 5)
		poll(t, b) // b reads its partition, then stops polling
		bp := b.Assignment()[0]
		gen := g.Generation()
		// a keeps polling; b does not.
		for range 9 {
			poll(t, a) // one second each (FetchMaxWait), nothing new
		}
		if len(g.Members()) != 2 {
			t.Fatalf("evicted before MaxPollInterval: %v", g.Members())
		}
		poll(t, a)
		poll(t, a)
		synctest.Wait()
		if m := g.Members(); len(m) != 1 || g.Generation() != gen+1 {
			t.Fatalf("members %v generation %d after the timeout", m, g.Generation())
		}
		o.evicted("b")
		// b's partition is free (b was evicted): a takes it.
		poll(t, a)
		if got := o.of("a"); len(got) != 2 {
			t.Fatalf("a owns %v after b's eviction", got)
		}
		// b's commit is fenced and changes nothing.
		if err := b.CommitOffsets(context.Background(), map[stream.TopicPartition]int64{bp: 5}); !errors.Is(err, stream.ErrFenced) {
			t.Errorf("commit by an evicted member: %v, want ErrFenced", err)
		}
		if err := b.Commit(context.Background()); !errors.Is(err, stream.ErrFenced) {
			t.Errorf("Commit by an evicted member: %v, want ErrFenced", err)
		}
		if c, _ := g.Committed(context.Background()); len(c) != 0 {
			t.Errorf("fenced commit wrote %v", c)
		}
		// b's next Poll reports the loss and rejoins.
		old := b.MemberID()
		poll(t, b)
		if b.MemberID() == old || len(g.Members()) != 2 {
			t.Errorf("b did not rejoin: %s, members %v", b.MemberID(), g.Members())
		}
		if len(o.lost) != 0 {
			t.Errorf("b did not report its lost partitions: %v", o.lost)
		}
		a.Close()
		b.Close()
	})
}

func TestStaticMembership(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, _ := open(t, nil)
		topic(t, s, "t", 4)
		g := group(t, s, "g", stream.GroupConfig{Topics: []string{"t"}, SessionTimeout: 10 * time.Second})
		cc := func(id string) stream.ConsumerConfig {
			return stream.ConsumerConfig{InstanceID: id, FetchMaxWait: time.Second}
		}
		a := join(t, g, cc("a"))
		b := join(t, g, cc("b"))
		poll(t, a)
		poll(t, b)
		poll(t, a)
		poll(t, b)
		aParts := a.Assignment()
		if len(aParts) != 2 {
			t.Fatalf("a holds %v", aParts)
		}
		gen := g.Generation()
		a.Close()
		if len(g.Members()) != 2 || g.Generation() != gen {
			t.Fatalf("a static member's Close rebalanced: members %v generation %d", g.Members(), g.Generation())
		}
		poll(t, b)
		if len(b.Assignment()) != 2 {
			t.Fatalf("b took a's partitions while a may come back: %v", b.Assignment())
		}
		time.Sleep(5 * time.Second)
		a2 := join(t, g, cc("a"))
		poll(t, a2)
		if got := a2.Assignment(); !slices.Equal(got, aParts) || g.Generation() != gen {
			t.Fatalf("restarted static member got %v (had %v), generation %d (was %d)", got, aParts, g.Generation(), gen)
		}
		// A second live consumer with the same InstanceID fences the first.
		a3 := join(t, g, cc("a"))
		if _, err := a2.Poll(context.Background()); !errors.Is(err, stream.ErrFenced) {
			t.Errorf("Poll of a replaced static member: %v, want ErrFenced", err)
		}
		poll(t, a3)
		if got := a3.Assignment(); !slices.Equal(got, aParts) {
			t.Errorf("replacement got %v", got)
		}
		a2.Close()
		a3.Close()
		// Not back within the session timeout: evicted, b gets everything.
		for range 11 {
			poll(t, b)
		}
		synctest.Wait()
		poll(t, b)
		if m := g.Members(); len(m) != 1 || len(b.Assignment()) != 4 {
			t.Fatalf("members %v, b holds %v after a's timeout", m, b.Assignment())
		}
		b.Close()
	})
}

func TestAutoCommit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, _ := open(t, nil)
		tp := topic(t, s, "t", 1)
		fill(t, tp, 10)
		g := group(t, s, "g", stream.GroupConfig{Topics: []string{"t"}, StartAt: stream.StartEarliest, CommitInterval: 2 * time.Second})
		c := join(t, g, stream.ConsumerConfig{MaxPollRecords: 4, FetchMaxWait: time.Millisecond})
		ctx := context.Background()
		committed := func() int64 {
			m, err := g.Committed(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if off, ok := m[tpOf("t", 0)]; ok {
				return off
			}
			return -1
		}
		poll(t, c)
		poll(t, c)
		if got := committed(); got != -1 {
			t.Fatalf("committed %d before CommitInterval", got)
		}
		time.Sleep(2 * time.Second)
		poll(t, c) // commits the 8 returned so far, then returns 2 more
		if got := committed(); got != 8 {
			t.Fatalf("auto-commit at the interval: %d, want 8", got)
		}
		c.Close() // commits on Close
		if got := committed(); got != 10 {
			t.Fatalf("commit on Close: %d, want 10", got)
		}
	})
}

func TestManualCommitsOnly(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, _ := open(t, nil)
		tp := topic(t, s, "t", 1)
		fill(t, tp, 10)
		g := group(t, s, "g", stream.GroupConfig{Topics: []string{"t"}, StartAt: stream.StartEarliest, CommitInterval: -1})
		c := join(t, g, stream.ConsumerConfig{FetchMaxWait: time.Millisecond})
		poll(t, c)
		time.Sleep(time.Hour)
		poll(t, c)
		c.Close()
		if m, _ := g.Committed(context.Background()); len(m) != 0 {
			t.Fatalf("CommitInterval < 0 committed %v", m)
		}
	})
}

func TestCommitsNeverMoveBackByThemselves(t *testing.T) {
	s, _ := open(t, nil)
	tp := topic(t, s, "t", 1)
	fill(t, tp, 20)
	g := group(t, s, "g", stream.GroupConfig{Topics: []string{"t"}, StartAt: stream.StartEarliest, CommitInterval: -1})
	c := join(t, g, stream.ConsumerConfig{FetchMaxWait: time.Millisecond})
	defer c.Close()
	ctx := context.Background()
	poll(t, c)
	if err := c.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.Seek(tpOf("t", 0), 3); err != nil {
		t.Fatal(err)
	}
	if err := c.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if m, _ := g.Committed(ctx); m[tpOf("t", 0)] != 20 {
		t.Fatalf("Commit after a Seek back moved the offset to %d", m[tpOf("t", 0)])
	}
	meta := map[stream.TopicPartition]stream.OffsetAndMetadata{tpOf("t", 0): {Offset: 3, Metadata: "replay"}}
	if err := c.CommitWithMetadata(ctx, meta); err != nil {
		t.Fatal(err)
	}
	got, err := g.CommittedWithMetadata(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if o := got[tpOf("t", 0)]; o.Offset != 3 || o.Metadata != "replay" || o.Generation != g.Generation() || o.Time.IsZero() {
		t.Fatalf("explicit commit: %+v", o)
	}
	if err := c.CommitOffsets(ctx, map[stream.TopicPartition]int64{tpOf("t", 0): -1}); !errors.Is(err, stream.ErrOffsetOutOfRange) {
		t.Errorf("negative commit: %v", err)
	}
}

// A member rebalanced away from a partition cannot commit it.
func TestCommitFencedAfterRebalance(t *testing.T) {
	s, _ := open(t, nil)
	topic(t, s, "t", 2)
	g := group(t, s, "g", stream.GroupConfig{Topics: []string{"t"}, CommitInterval: -1})
	cc := stream.ConsumerConfig{FetchMaxWait: time.Millisecond}
	a := join(t, g, cc)
	defer a.Close()
	poll(t, a)
	b := join(t, g, cc)
	defer b.Close()
	poll(t, a) // a revokes; range gives it partition 0 back
	if got := a.Assignment(); !slices.Equal(got, []stream.TopicPartition{tpOf("t", 0)}) {
		t.Fatalf("a holds %v", got)
	}
	err := a.CommitOffsets(context.Background(), map[stream.TopicPartition]int64{tpOf("t", 0): 0, tpOf("t", 1): 0})
	if !errors.Is(err, stream.ErrFenced) {
		t.Fatalf("commit of a revoked partition: %v, want ErrFenced", err)
	}
	if m, _ := g.Committed(context.Background()); len(m) != 0 {
		t.Fatalf("a fenced commit wrote %v", m)
	}
}

func TestRunSemantics(t *testing.T) {
	s, _ := open(t, nil)
	tp := topic(t, s, "t", 1)
	fill(t, tp, 10)
	g := group(t, s, "g", stream.GroupConfig{Topics: []string{"t"}, StartAt: stream.StartEarliest, CommitInterval: -1})
	c := join(t, g, stream.ConsumerConfig{FetchMaxWait: time.Millisecond})
	ctx := context.Background()
	boom := errors.New("boom")
	var seen []int64
	err := c.Run(ctx, func(_ context.Context, r *stream.Record) error {
		if r.Offset == 6 {
			return boom
		}
		seen = append(seen, r.Offset)
		return nil
	})
	if !errors.Is(err, boom) {
		t.Fatalf("Run: %v, want the handler's error", err)
	}
	if m, _ := g.Committed(ctx); m[tpOf("t", 0)] != 6 {
		t.Fatalf("committed %v, want up to the failed record (6)", m)
	}
	if pos, _ := c.Position(tpOf("t", 0)); pos != 6 {
		t.Fatalf("position %d, want rewound to 6", pos)
	}
	if len(seen) != 6 {
		t.Fatalf("handled %v", seen)
	}
	// The failed record comes again; accepted records are committed.
	runCtx, cancel := context.WithCancel(ctx)
	seen = nil
	err = c.Run(runCtx, func(_ context.Context, r *stream.Record) error {
		seen = append(seen, r.Offset)
		if r.Offset == 9 {
			cancel()
		}
		return nil
	})
	if !errors.Is(err, context.Canceled) || !slices.Equal(seen, []int64{6, 7, 8, 9}) {
		t.Fatalf("second Run: %v, handled %v", err, seen)
	}
	if m, _ := g.Committed(ctx); m[tpOf("t", 0)] != 10 {
		t.Fatalf("committed %v after the batch was accepted, want 10", m)
	}
	c.Close()
}

func TestRestartResumesFromCommitted(t *testing.T) {
	checkNoLeaks(t)
	dir := t.TempDir()
	s, err := stream.Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	tp := topic(t, s, "t", 2)
	fill(t, tp, 10)
	g := group(t, s, "g", stream.GroupConfig{Topics: []string{"t"}, StartAt: stream.StartEarliest})
	c := join(t, g, stream.ConsumerConfig{MaxPollRecords: 6, FetchMaxWait: time.Millisecond})
	if got := poll(t, c); len(got) != 6 {
		t.Fatalf("polled %d", len(got))
	}
	gen := g.Generation()
	// Stream.Close closes the consumer, which commits.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Poll(context.Background()); !errors.Is(err, stream.ErrClosed) {
		t.Errorf("Poll after Stream.Close: %v", err)
	}
	s = reopen(t, dir, nil)
	if got := s.Groups(); !slices.Equal(got, []string{"g"}) {
		t.Fatalf("Groups after restart: %v", got)
	}
	g = group(t, s, "g", stream.GroupConfig{Topics: []string{"t"}, StartAt: stream.StartEarliest})
	if g.Generation() < gen {
		t.Errorf("generation went back from %d to %d", gen, g.Generation())
	}
	committed, _ := g.Committed(context.Background())
	if committed[tpOf("t", 0)]+committed[tpOf("t", 1)] != 6 {
		t.Fatalf("committed after restart: %v", committed)
	}
	c = join(t, g, stream.ConsumerConfig{FetchMaxWait: time.Millisecond})
	recs := pollAll(t, c, 14)
	if len(recs) != 14 {
		t.Fatalf("after restart read %d records, want the 14 not committed", len(recs))
	}
	for _, r := range recs {
		if r.Offset < committed[tpOf("t", r.Partition)] {
			t.Errorf("record %d-%d redelivered below the committed offset", r.Partition, r.Offset)
		}
	}
}

func TestStartAtLatest(t *testing.T) {
	s, _ := open(t, nil)
	tp := topic(t, s, "t", 1)
	fill(t, tp, 10)
	g := group(t, s, "g", stream.GroupConfig{Topics: []string{"t"}})
	c := join(t, g, stream.ConsumerConfig{FetchMaxWait: time.Millisecond})
	defer c.Close()
	if got := poll(t, c); len(got) != 0 {
		t.Fatalf("StartLatest read %d old records", len(got))
	}
	fill(t, tp, 3)
	if got := poll(t, c); len(got) != 3 || got[0].Offset != 10 {
		t.Fatalf("StartLatest: %v", got)
	}
}

func TestGroupAdmin(t *testing.T) {
	s, _ := open(t, nil)
	tp := topic(t, s, "t", 2)
	fill(t, tp, 10)
	ctx := context.Background()
	g := group(t, s, "g", stream.GroupConfig{Topics: []string{"t"}, StartAt: stream.StartEarliest})
	lag, err := g.Lag(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if want := map[stream.TopicPartition]int64{tpOf("t", 0): 10, tpOf("t", 1): 10}; !maps.Equal(lag, want) {
		t.Fatalf("lag with nothing committed: %v, want %v", lag, want)
	}
	c := join(t, g, stream.ConsumerConfig{MaxPollRecords: 7, FetchMaxWait: time.Millisecond})
	poll(t, c)
	if err := c.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	lag, _ = g.Lag(ctx)
	if lag[tpOf("t", 0)]+lag[tpOf("t", 1)] != 13 {
		t.Fatalf("lag after 7 committed: %v", lag)
	}
	reset := map[stream.TopicPartition]int64{tpOf("t", 0): 0}
	if err := g.ResetOffsets(ctx, reset); !errors.Is(err, stream.ErrGroupNotEmpty) || !strings.Contains(err.Error(), "1 members") {
		t.Fatalf("ResetOffsets with a member: %v, want ErrGroupNotEmpty", err)
	}
	if err := s.DeleteGroup("g"); !errors.Is(err, stream.ErrGroupNotEmpty) {
		t.Fatalf("DeleteGroup with a member: %v", err)
	}
	c.Close()
	if err := g.ResetOffsets(ctx, map[stream.TopicPartition]int64{tpOf("t", 0): 11}); !errors.Is(err, stream.ErrOffsetOutOfRange) {
		t.Fatalf("reset above the high watermark: %v", err)
	}
	if err := g.ResetOffsets(ctx, map[stream.TopicPartition]int64{tpOf("t", 0): 0, tpOf("t", 1): 2}); err != nil {
		t.Fatal(err)
	}
	if m, _ := g.Committed(ctx); m[tpOf("t", 0)] != 0 || m[tpOf("t", 1)] != 2 {
		t.Fatalf("committed after reset: %v", m)
	}
	// Reset to a time: records after the mark.
	time.Sleep(5 * time.Millisecond)
	mark := time.Now()
	time.Sleep(5 * time.Millisecond)
	fill(t, tp, 5)
	if err := g.ResetOffsetsToTime(ctx, mark); err != nil {
		t.Fatal(err)
	}
	if m, _ := g.Committed(ctx); m[tpOf("t", 0)] != 10 || m[tpOf("t", 1)] != 10 {
		t.Fatalf("committed after reset to time: %v", m)
	}
	c = join(t, g, stream.ConsumerConfig{FetchMaxWait: time.Millisecond})
	if recs := pollAll(t, c, 10); len(recs) != 10 {
		t.Fatalf("replay from the time read %d", len(recs))
	}
	c.Close()
	group(t, s, "other", stream.GroupConfig{Topics: []string{"t"}})
	if got := s.Groups(); !slices.Equal(got, []string{"g", "other"}) {
		t.Fatalf("Groups: %v", got)
	}
	if err := s.DeleteGroup("g"); err != nil {
		t.Fatal(err)
	}
	if got := s.Groups(); !slices.Equal(got, []string{"other"}) {
		t.Fatalf("Groups after delete: %v", got)
	}
	if _, err := g.Committed(ctx); !errors.Is(err, stream.ErrClosed) {
		t.Errorf("a deleted group's handle: %v", err)
	}
	if err := s.DeleteGroup("g"); !errors.Is(err, stream.ErrUnknownGroup) {
		t.Errorf("deleting it again: %v", err)
	}
	g = group(t, s, "g", stream.GroupConfig{Topics: []string{"t"}})
	if m, _ := g.Committed(ctx); len(m) != 0 {
		t.Errorf("a recreated group has offsets %v", m)
	}
}

func TestReadToEnd(t *testing.T) {
	s, _ := open(t, nil)
	tp := topic(t, s, "t", 3)
	fill(t, tp, 100)
	ctx := context.Background()
	g := group(t, s, "nightly", stream.GroupConfig{Topics: []string{"t"}, StartAt: stream.StartEarliest, CommitInterval: -1})
	first := true
	load := func() int {
		c := join(t, g, stream.ConsumerConfig{})
		defer c.Close()
		n := 0
		for r, err := range c.ReadToEnd(ctx) {
			if err != nil {
				t.Fatal(err)
			}
			if r.Offset < 0 {
				t.Fatal("bad record")
			}
			n++
			if n == 1 && first {
				first = false
				fill(t, tp, 1) // appended during the load: read next time
			}
		}
		if err := c.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n := load(); n != 300 {
		t.Fatalf("first load read %d, want 300", n)
	}
	fill(t, tp, 10)
	if n := load(); n != 33 {
		t.Fatalf("second load read %d, want 33", n)
	}
	if n := load(); n != 0 {
		t.Fatalf("third load read %d, want 0", n)
	}
	// Breaking out keeps the position exactly after the last record seen.
	fill(t, tp, 10)
	c := join(t, g, stream.ConsumerConfig{})
	n := 0
	for _, err := range c.ReadToEnd(ctx) {
		if err != nil {
			t.Fatal(err)
		}
		if n++; n == 4 {
			break
		}
	}
	c.Commit(ctx)
	c.Close()
	if n := load(); n != 26 {
		t.Fatalf("after a break at 4 of 30, the next load read %d, want 26", n)
	}
}

func TestStreamCloseClosesConsumers(t *testing.T) {
	checkNoLeaks(t)
	dir := t.TempDir()
	s, err := stream.Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	topic(t, s, "t", 2)
	g := group(t, s, "g", stream.GroupConfig{Topics: []string{"t"}})
	c := join(t, g, stream.ConsumerConfig{FetchMaxWait: time.Hour})
	free, _ := s.NewConsumer(stream.ConsumerConfig{FetchMaxWait: time.Hour})
	free.Assign(tpOf("t", 0))
	errs := make(chan error, 2)
	for _, cons := range []*stream.Consumer{c, free} {
		go func() {
			_, err := cons.Poll(context.Background())
			errs <- err
		}()
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := <-errs; !errors.Is(err, stream.ErrClosed) {
			t.Errorf("a waiting Poll at Stream.Close: %v, want ErrClosed", err)
		}
	}
	if err := c.Close(); !errors.Is(err, stream.ErrClosed) {
		t.Errorf("Close after Stream.Close: %v", err)
	}
	if _, err := s.ConsumerGroup("g", stream.GroupConfig{}); !errors.Is(err, stream.ErrClosed) {
		t.Errorf("ConsumerGroup after Close: %v", err)
	}
	if _, err := s.NewConsumer(stream.ConsumerConfig{}); !errors.Is(err, stream.ErrClosed) {
		t.Errorf("NewConsumer after Close: %v", err)
	}
}

// TestGroupStress has members join, leave and get evicted while writers
// append. Every record must be processed at least once; duplicates are
// counted and reported (at-least-once redelivers what was processed but
// not committed when a partition moved). No partition is ever processed
// by two members at once, nor owned by two.
func TestGroupStress(t *testing.T) {
	for _, a := range []stream.Assignor{stream.RangeAssignor, stream.CooperativeStickyAssignor} {
		t.Run(a.Name(), func(t *testing.T) { groupStress(t, a) })
	}
}

func groupStress(t *testing.T, assignor stream.Assignor) {
	checkNoLeaks(t)
	seed := stressSeed(t)
	ev := newEvictionLog()
	s, _ := open(t, &stream.Options{Sync: stream.SyncNever, Logger: slog.New(ev)})
	const partitions, writers, perWriter = 4, 2, 3000
	tp := topic(t, s, "t", partitions)
	g := group(t, s, "g", stream.GroupConfig{
		Topics: []string{"t"}, Assignor: assignor, StartAt: stream.StartEarliest,
		SessionTimeout: 200 * time.Millisecond, CommitInterval: 20 * time.Millisecond,
	})
	o := newOwners(t)
	o.watch(ev)
	var (
		mu         sync.Mutex
		seen       = map[string]int{}
		processing = map[int32]*stream.Consumer{}
		dups       int
		all        = make(chan struct{})
	)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perWriter {
				p := part(t, tp, i%partitions)
				if _, err := p.Append(&stream.Record{Value: fmt.Appendf(nil, "w%d-%d", w, i)}); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	evictions, leaves := 0, 0
	const maxPoll = 200 * time.Millisecond
	var statsMu sync.Mutex
	worker := func(w int) {
		defer wg.Done()
		rng := newRand(seed + int64(w))
		for cycle := 0; ctx.Err() == nil; cycle++ {
			name := fmt.Sprintf("w%d.%d", w, cycle)
			c, err := g.Join(ctx, o.config(name, stream.ConsumerConfig{FetchMaxWait: 20 * time.Millisecond, MaxPollRecords: 50, MaxPollInterval: maxPoll}))
			if err != nil {
				return
			}
			o.joined(name, c)
			polls := 5 + rng.IntN(40)
			var out time.Time // when the last Poll returned, unless a stall followed
			for i := 0; i < polls && ctx.Err() == nil; i++ {
				if !out.IsZero() {
					o.outOfPoll(c.MemberID(), time.Since(out))
				}
				recs, err := c.Poll(ctx)
				if err != nil {
					break
				}
				out = time.Now()
				// Mark the partitions as being processed by c for the
				// whole of the processing, outside the lock: another
				// member that processes one meanwhile while c is still
				// in the group (not evicted: a zombie's work is fenced)
				// breaks the ownership rule.
				mu.Lock()
				for _, r := range recs {
					if cur, ok := processing[r.Partition]; ok && cur != c {
						if slices.Contains(g.Members(), cur.MemberID()) {
							t.Errorf("%s processes partition %d while member %s, still in the group, does", name, r.Partition, cur.MemberID())
						}
					}
					processing[r.Partition] = c
				}
				mu.Unlock()
				time.Sleep(time.Millisecond) // process
				mu.Lock()
				for _, r := range recs {
					k := string(r.Value)
					seen[k]++
					if seen[k] > 1 {
						dups++
					}
				}
				for _, r := range recs {
					if processing[r.Partition] == c {
						delete(processing, r.Partition)
					}
				}
				if len(seen) == writers*perWriter {
					select {
					case <-all:
					default:
						close(all)
					}
				}
				mu.Unlock()
				if rng.IntN(60) == 0 {
					// Stall past MaxPollInterval: evicted, then rejoins
					// at the next Poll.
					statsMu.Lock()
					evictions++
					statsMu.Unlock()
					o.evicted(name)
					out = time.Time{}
					select {
					case <-time.After(400 * time.Millisecond):
					case <-ctx.Done():
					}
				}
			}
			if !out.IsZero() {
				o.outOfPoll(c.MemberID(), time.Since(out))
			}
			statsMu.Lock()
			leaves++
			statsMu.Unlock()
			c.Close()
		}
	}
	const members = 4
	for w := range members {
		wg.Add(1)
		go worker(w)
	}
	select {
	case <-all:
	case <-time.After(2 * time.Minute):
		mu.Lock()
		t.Errorf("only %d of %d records processed", len(seen), writers*perWriter)
		mu.Unlock()
	}
	cancel()
	wg.Wait()
	t.Logf("%s: %d records, %d duplicates (at-least-once), %d leaves, %d stalls past MaxPollInterval, generation %d",
		assignor.Name(), len(seen), dups, leaves, evictions, g.Generation())
	// A member the group evicted on its own lost its partitions (they
	// may move before it hears), which the machine's load explains only
	// if the member did miss a deadline: one evicted for MaxPollInterval
	// must have spent long out of Poll (timed here from after Poll
	// returned, a little later than the group's clock starts, hence
	// the margin).
	o.mu.Lock()
	for id, reason := range o.unplanned {
		out := o.maxOut[id]
		t.Logf("partitions moved from member %s, evicted by the group on its own (%s); it spent at most %v out of Poll", id, reason, out)
		if strings.HasPrefix(reason, "no Poll") && out < maxPoll/2 {
			t.Errorf("member %s evicted for MaxPollInterval (%v) when it was never more than %v out of Poll", id, maxPoll, out)
		}
	}
	o.mu.Unlock()
	if m := g.Members(); len(m) != 0 {
		t.Errorf("members left after every consumer closed: %v", m)
	}
}

// stressSeed returns the seed of a stress test, logged so a failure can
// be replayed with STREAM_STRESS_SEED (the schedule still varies: a seed
// replays the members' choices, not the interleaving).
func stressSeed(t *testing.T) int64 {
	t.Helper()
	seed := time.Now().UnixNano()
	if s := os.Getenv("STREAM_STRESS_SEED"); s != "" {
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			t.Fatalf("STREAM_STRESS_SEED: %v", err)
		}
		seed = v
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("seed %d (rerun with STREAM_STRESS_SEED=%d)", seed, seed)
		}
	})
	t.Logf("seed %d", seed)
	return seed
}

func newRand(seed int64) *rand.Rand { return rand.New(rand.NewPCG(uint64(seed), 0)) }

// FetchMinBytes above the read-ahead: Poll gathers across many reads
// without spinning, and returns once enough is there.
func TestFetchMinBytesLarge(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, err := stream.Open(t.TempDir(), &stream.Options{Sync: stream.SyncNever})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		tp := topic(t, s, "t", 1)
		p := part(t, tp, 0)
		val := make([]byte, 100<<10)
		for range 12 { // 1.2 MiB
			p.Append(&stream.Record{Value: val})
		}
		c, _ := s.NewConsumer(stream.ConsumerConfig{FetchMinBytes: 2 << 20, FetchMaxWait: time.Minute, MaxPollRecords: 1000})
		c.Assign(tpOf("t", 0))
		done := make(chan int)
		go func() {
			recs, _ := c.Poll(context.Background())
			done <- len(recs)
		}()
		synctest.Wait() // durably blocked: not spinning
		for range 9 {
			p.Append(&stream.Record{Value: val})
		}
		synctest.Wait()
		select {
		case n := <-done:
			if n != 21 {
				t.Fatalf("got %d records, want 21", n)
			}
		default:
			t.Fatal("Poll did not return at FetchMinBytes")
		}
		c.Close()
	})
}
