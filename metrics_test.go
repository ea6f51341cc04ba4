package stream_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/instream/stream"
)

func TestMetrics(t *testing.T) {
	s, _ := open(t, nil) // SyncAlways: every append fsyncs
	tp, err := s.CreateTopic("orders", stream.TopicConfig{Partitions: 2})
	if err != nil {
		t.Fatal(err)
	}
	p0, _ := tp.Partition(0)
	for i := range 5 {
		if _, err := p0.Append(&stream.Record{Value: fmt.Appendf(nil, "v%d", i)}); err != nil {
			t.Fatal(err)
		}
	}
	ctx := context.Background()
	g, err := s.ConsumerGroup("billing", stream.GroupConfig{Topics: []string{"orders"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := g.ResetOffsets(ctx, map[stream.TopicPartition]int64{{Topic: "orders", Partition: 0}: 3}); err != nil {
		t.Fatal(err)
	}

	m := s.Metrics()
	if len(m.Partitions) != 2 {
		t.Fatalf("Metrics().Partitions = %d, want 2", len(m.Partitions))
	}
	pm := m.Partitions[0]
	if pm.Topic != "orders" || pm.Partition != 0 || pm.StartOffset != 0 || pm.EndOffset != 5 || pm.HighWatermark != 5 {
		t.Errorf("partition 0 = %+v, want orders-0 with offsets [0, 5), hw 5", pm)
	}
	if pm.Bytes <= 0 || pm.Segments != 1 {
		t.Errorf("partition 0: %d bytes in %d segments, want > 0 bytes in 1", pm.Bytes, pm.Segments)
	}
	if pm.Fsyncs == 0 || pm.FsyncLatency.Count != pm.Fsyncs || len(pm.FsyncLatency.Counts) != len(pm.FsyncLatency.Bounds)+1 {
		t.Errorf("partition 0: %d fsyncs, histogram %+v: want > 0 fsyncs, all in the histogram", pm.Fsyncs, pm.FsyncLatency)
	}
	if pm.Failed != "" || pm.WriteErrors != 0 {
		t.Errorf("partition 0 failed %q with %d write errors, want healthy", pm.Failed, pm.WriteErrors)
	}
	if tot := m.Totals; tot.Topics != 1 || tot.Partitions != 2 || tot.Records != 5 || tot.Groups != 1 || tot.Fsyncs != pm.Fsyncs {
		t.Errorf("Totals = %+v, want 1 topic, 2 partitions, 5 records, 1 group, %d fsyncs", tot, pm.Fsyncs)
	}
	if len(m.Groups) != 1 {
		t.Fatalf("Groups = %+v, want billing", m.Groups)
	}
	gm := m.Groups[0]
	if len(gm.Partitions) == 2 {
		if gm.Partitions[0].CommittedAt.IsZero() || !gm.Partitions[1].CommittedAt.IsZero() {
			t.Errorf("CommittedAt %v and %v, want a time for the committed partition only", gm.Partitions[0].CommittedAt, gm.Partitions[1].CommittedAt)
		}
		gm.Partitions[0].CommittedAt = time.Time{}
	}
	want := []stream.GroupPartitionMetrics{
		{Topic: "orders", Partition: 0, Committed: 3, Lag: 2},
		{Topic: "orders", Partition: 1, Committed: -1, Lag: 0},
	}
	if gm.Group != "billing" || !gm.Open || gm.Lag != 2 || fmt.Sprint(gm.Partitions) != fmt.Sprint(want) {
		t.Errorf("group = %+v, want billing open, lag 2, partitions %v", gm, want)
	}

	c, err := g.Join(ctx, stream.ConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if gm := s.Metrics().Groups[0]; gm.Members != 1 || gm.Generation < 1 || fmt.Sprint(gm.MemberIDs) != fmt.Sprint([]string{c.MemberID()}) {
		t.Errorf("after Join: %d members %v, generation %d; want 1 member %s, generation >= 1", gm.Members, gm.MemberIDs, gm.Generation, c.MemberID())
	}
}

func TestMetricsClosedGroupFromDisk(t *testing.T) {
	s, dir := open(t, nil)
	p := partition(t, s, "t", stream.TopicConfig{})
	for range 4 {
		if _, err := p.Append(&stream.Record{Value: []byte("x")}); err != nil {
			t.Fatal(err)
		}
	}
	g, err := s.ConsumerGroup("g", stream.GroupConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if err := g.ResetOffsets(context.Background(), map[stream.TopicPartition]int64{{Topic: "t"}: 1}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s = reopen(t, dir, nil)
	m := s.Metrics()
	if len(m.Groups) != 1 || m.Groups[0].Open || m.Groups[0].Lag != 3 || len(m.Groups[0].Partitions) != 1 {
		t.Fatalf("after reopen Groups = %+v, want g closed with lag 3 on t-0", m.Groups)
	}
}

func TestMetricsFailedPartition(t *testing.T) {
	s, _ := open(t, nil)
	p := partition(t, s, "t", stream.TopicConfig{})
	boom := errors.New("disk on fire")
	stream.SetSyncFault(p, func() error { return boom })
	if _, err := p.Append(&stream.Record{Value: []byte("x")}); !errors.Is(err, boom) {
		t.Fatalf("Append with a failing fsync = %v, want %v", err, boom)
	}
	m := s.Metrics()
	pm := m.Partitions[0]
	if pm.Failed == "" || pm.WriteErrors == 0 || m.Totals.FailedPartitions != 1 {
		t.Errorf("failed partition = %+v, totals %+v: want Failed set, write errors counted", pm, m.Totals)
	}
}

func TestMetricsAfterClose(t *testing.T) {
	s, _ := open(t, nil)
	partition(t, s, "t", stream.TopicConfig{})
	s.Close()
	if m := s.Metrics(); m.Partitions != nil || m.Groups != nil || m.Totals != (stream.TotalMetrics{}) {
		t.Errorf("Metrics after Close = %+v, want zero", m)
	}
}

// BenchmarkMetrics builds a snapshot of 100 partitions and two groups: the
// cost of a scraper calling Metrics every second.
// BenchmarkMetrics measures a snapshot over N partitions with two
// groups committed on all of them and a producer: what a scraper pays
// each second.
func BenchmarkMetrics(b *testing.B) {
	for _, n := range []int32{10, 100, 1000} {
		b.Run(fmt.Sprintf("partitions=%d", n), func(b *testing.B) {
			s, t := openBench(b, &stream.Options{Sync: stream.SyncNever}, int(n))
			for i := range n {
				p, _ := t.Partition(i)
				appendBatches(b, p, 10, payload(100))
			}
			ctx := context.Background()
			for _, id := range []string{"a", "b"} {
				g, err := s.ConsumerGroup(id, stream.GroupConfig{Topics: []string{"bench"}})
				if err != nil {
					b.Fatal(err)
				}
				offs := map[stream.TopicPartition]int64{}
				for i := range n {
					offs[stream.TopicPartition{Topic: "bench", Partition: i}] = 5
				}
				if err := g.ResetOffsets(ctx, offs); err != nil {
					b.Fatal(err)
				}
			}
			pr, err := s.NewProducer(stream.ProducerConfig{})
			if err != nil {
				b.Fatal(err)
			}
			defer pr.Close()
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				if m := s.Metrics(); len(m.Partitions) != int(n) {
					b.Fatal(len(m.Partitions))
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/partition")
		})
	}
}
