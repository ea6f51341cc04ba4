package stream_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/instream/stream"
)

// recorder implements every hook and keeps the events.
type recorder struct {
	mu         sync.Mutex
	appends    []stream.AppendEvent
	fsyncs     []stream.FsyncEvent
	rolls      []stream.RollEvent
	retentions []stream.RetentionEvent
	rebalances []stream.RebalanceEvent
	commits    []stream.CommitEvent
	isr        []stream.ISRChangeEvent
}

func (r *recorder) OnAppend(e stream.AppendEvent) {
	r.mu.Lock()
	r.appends = append(r.appends, e)
	r.mu.Unlock()
}
func (r *recorder) OnFsync(e stream.FsyncEvent) {
	r.mu.Lock()
	r.fsyncs = append(r.fsyncs, e)
	r.mu.Unlock()
}
func (r *recorder) OnRoll(e stream.RollEvent) {
	r.mu.Lock()
	r.rolls = append(r.rolls, e)
	r.mu.Unlock()
}
func (r *recorder) OnRetention(e stream.RetentionEvent) {
	r.mu.Lock()
	r.retentions = append(r.retentions, e)
	r.mu.Unlock()
}
func (r *recorder) OnRebalance(e stream.RebalanceEvent) {
	r.mu.Lock()
	r.rebalances = append(r.rebalances, e)
	r.mu.Unlock()
}
func (r *recorder) OnCommit(e stream.CommitEvent) {
	r.mu.Lock()
	r.commits = append(r.commits, e)
	r.mu.Unlock()
}
func (r *recorder) OnISRChange(e stream.ISRChangeEvent) {
	r.mu.Lock()
	r.isr = append(r.isr, e)
	r.mu.Unlock()
}

// appendOnly implements one hook: the others are optional.
type appendOnly struct{ n int }

func (a *appendOnly) OnAppend(stream.AppendEvent) { a.n++ }

func TestHooksPartitionEvents(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec, one := &recorder{}, &appendOnly{}
		s, err := stream.Open(t.TempDir(), &stream.Options{
			SegmentBytes: 2 << 10, RetentionCheckInterval: time.Minute, Hooks: []stream.Hook{rec, one},
		})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		p := partition(t, s, "t", stream.TopicConfig{RetentionBytes: 4 << 10})
		appendN(t, p, 0, 200) // 200 appends of one record, rolling every 2 KiB
		var b stream.Batch
		b.Add(nil, []byte("a"))
		b.Add(nil, []byte("b"))
		if _, err := p.AppendBatch(&b); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Minute + time.Second)
		synctest.Wait()

		rec.mu.Lock()
		defer rec.mu.Unlock()
		if len(rec.appends) != 201 || one.n != 201 {
			t.Fatalf("%d append events (%d to the one-hook value), want 201", len(rec.appends), one.n)
		}
		for i, e := range rec.appends[:200] {
			if e.Topic != "t" || e.Partition != 0 || e.BaseOffset != int64(i) || e.Records != 1 || e.Bytes <= 0 || e.Err != nil {
				t.Fatalf("append event %d = %+v, want t-0 at offset %d, 1 record", i, e, i)
			}
		}
		if last := rec.appends[200]; last.BaseOffset != 200 || last.Records != 2 {
			t.Errorf("batch append event = %+v, want offset 200, 2 records", last)
		}
		if len(rec.fsyncs) == 0 || rec.fsyncs[0].Topic != "t" || rec.fsyncs[0].Err != nil {
			t.Errorf("fsync events %+v, want some for t-0 without error", rec.fsyncs)
		}
		if len(rec.rolls) == 0 {
			t.Fatal("no roll events after 200 records in 2 KiB segments")
		}
		for i, e := range rec.rolls {
			if e.BaseOffset >= e.Next || e.Bytes <= 0 || i > 0 && e.BaseOffset != rec.rolls[i-1].Next {
				t.Fatalf("roll events %+v: want consecutive non-empty segments", rec.rolls)
			}
		}
		if len(rec.retentions) != 1 {
			t.Fatalf("retention events %+v, want one pass", rec.retentions)
		}
		if e := rec.retentions[0]; e.Segments == 0 || e.Bytes <= 0 || e.StartOffset != p.StartOffset() || e.Err != nil {
			t.Errorf("retention event %+v, want segments deleted up to start %d", e, p.StartOffset())
		}
	})
}

func TestHooksFailedFsync(t *testing.T) {
	rec := &recorder{}
	s, _ := open(t, &stream.Options{Hooks: []stream.Hook{rec}})
	p := partition(t, s, "t", stream.TopicConfig{})
	boom := errors.New("disk on fire")
	stream.SetSyncFault(p, func() error { return boom })
	if _, err := p.Append(&stream.Record{Value: []byte("x")}); !errors.Is(err, boom) {
		t.Fatalf("Append with a failing fsync: %v, want %v", err, boom)
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if len(rec.fsyncs) != 1 || !errors.Is(rec.fsyncs[0].Err, boom) {
		t.Errorf("fsync events %+v, want one failing with %v", rec.fsyncs, boom)
	}
	if len(rec.appends) != 1 || !errors.Is(rec.appends[0].Err, boom) {
		t.Errorf("append events %+v, want one failing with %v", rec.appends, boom)
	}
}

func TestHooksGroupEvents(t *testing.T) {
	rec := &recorder{}
	s, dir := open(t, &stream.Options{Hooks: []stream.Hook{rec}})
	p := partition(t, s, "t", stream.TopicConfig{Partitions: 2})
	appendN(t, p, 0, 3)
	ctx := context.Background()
	g, err := s.ConsumerGroup("g", stream.GroupConfig{Topics: []string{"t"}, StartAt: stream.StartEarliest, CommitInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	c, err := g.Join(ctx, stream.ConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	for n := 0; n < 3; {
		recs, err := c.Poll(ctx)
		if err != nil {
			t.Fatal(err)
		}
		n += len(recs)
	}
	if err := c.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	m := s.Metrics()
	if err := s.Close(); err != nil { // delivers the queued rebalance events
		t.Fatal(err)
	}
	_ = dir

	rec.mu.Lock()
	defer rec.mu.Unlock()
	if len(rec.rebalances) < 2 || rec.rebalances[0].Group != "g" || rec.rebalances[0].Members != 1 ||
		rec.rebalances[len(rec.rebalances)-1].Members != 0 {
		t.Errorf("rebalance events %+v: want g with 1 member after Join, 0 after Close", rec.rebalances)
	}
	for i := 1; i < len(rec.rebalances); i++ {
		if rec.rebalances[i].Generation <= rec.rebalances[i-1].Generation {
			t.Errorf("rebalance events out of order: %+v", rec.rebalances)
		}
	}
	var commits int
	for _, e := range rec.commits {
		if e.Group == "g" && e.Err == nil && e.Offsets[stream.TopicPartition{Topic: "t", Partition: 0}].Offset == 3 {
			commits++
		}
	}
	if commits != 1 {
		t.Errorf("commit events %+v, want one committing t-0 at 3", rec.commits)
	}
	if len(m.Groups) != 1 || m.Groups[0].Rebalances < 2 || m.Groups[0].CommitLatency.Count == 0 {
		t.Errorf("group metrics %+v, want rebalances and a commit counted", m.Groups)
	}
}

func TestHooksRejectAValueWithNoHook(t *testing.T) {
	_, err := stream.Open(t.TempDir(), &stream.Options{Hooks: []stream.Hook{struct{}{}}})
	if !errors.Is(err, stream.ErrInvalidConfig) {
		t.Fatalf("Open with a hook implementing nothing: %v, want ErrInvalidConfig", err)
	}
}

// BenchmarkAppendHooks measures what hooks cost an append: none (the
// default: a nil check), and one append hook doing nothing. Compare
// none with the same benchmark on a tree without hooks (benchstat).
func BenchmarkAppendHooks(b *testing.B) {
	for _, bc := range []struct {
		name  string
		hooks []stream.Hook
	}{
		{"none", nil},
		{"append", []stream.Hook{&appendOnly{}}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			s, err := stream.Open(b.TempDir(), &stream.Options{Sync: stream.SyncNever, Hooks: bc.hooks})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			tp, err := s.CreateTopic("t", stream.TopicConfig{})
			if err != nil {
				b.Fatal(err)
			}
			p, _ := tp.Partition(0)
			var batch stream.Batch
			for range 10 {
				batch.Add(nil, make([]byte, 100))
			}
			b.SetBytes(int64(10 * 100))
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				if _, err := p.AppendBatch(&batch); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(10*b.N), "ns/record")
		})
	}
}
