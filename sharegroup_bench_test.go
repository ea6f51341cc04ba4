package stream_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/instream/stream"
)

// benchQueue opens a Stream with a topic of 8 partitions holding n
// records of 100 bytes, spread evenly.
func benchQueue(b *testing.B, n int) *stream.Stream {
	b.Helper()
	s, err := stream.Open(b.TempDir(), nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	tp, err := s.CreateTopic("jobs", stream.TopicConfig{Partitions: 8})
	if err != nil {
		b.Fatal(err)
	}
	val := make([]byte, 100)
	for p := range int32(8) {
		part, _ := tp.Partition(p)
		var batch stream.Batch
		for i := int(p); i < n; i += 8 {
			batch.Add(nil, val)
			if batch.Len() == 1000 {
				if _, err := part.AppendBatch(&batch); err != nil {
					b.Fatal(err)
				}
				batch.Reset()
			}
		}
		if batch.Len() > 0 {
			if _, err := part.AppendBatch(&batch); err != nil {
				b.Fatal(err)
			}
		}
	}
	return s
}

// BenchmarkShareGroupAccept measures records accepted per second by
// members running Run over 8 partitions; consumer-group is a consumer
// group's Run over the same records, for comparison.
func BenchmarkShareGroupAccept(b *testing.B) {
	for _, members := range []int{1, 8, 64} {
		b.Run(fmt.Sprintf("members=%d", members), func(b *testing.B) {
			s := benchQueue(b, b.N)
			g, err := s.ShareGroup("q", stream.ShareGroupConfig{Topics: []string{"jobs"}, StartAt: stream.StartEarliest})
			if err != nil {
				b.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var done atomic.Int64
			var wg sync.WaitGroup
			b.ReportAllocs()
			b.ResetTimer()
			start := time.Now()
			for range members {
				m, err := g.Join(ctx, stream.ShareMemberConfig{MaxPollRecords: 100})
				if err != nil {
					b.Fatal(err)
				}
				wg.Add(1)
				go func() {
					defer wg.Done()
					m.Run(ctx, func(context.Context, *stream.Acquired) error {
						if done.Add(1) == int64(b.N) {
							cancel()
						}
						return nil
					})
				}()
			}
			wg.Wait()
			elapsed := time.Since(start)
			b.StopTimer()
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "records/s")
			b.ReportMetric(0, "ns/op")
		})
	}
	b.Run("consumer-group", func(b *testing.B) {
		s := benchQueue(b, b.N)
		g, err := s.ConsumerGroup("c", stream.GroupConfig{Topics: []string{"jobs"}, StartAt: stream.StartEarliest})
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		c, err := g.Join(ctx, stream.ConsumerConfig{MaxPollRecords: 100})
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		n := 0
		b.ReportAllocs()
		b.ResetTimer()
		start := time.Now()
		c.Run(ctx, func(context.Context, *stream.Record) error {
			if n++; n == b.N {
				cancel()
			}
			return nil
		})
		elapsed := time.Since(start)
		b.StopTimer()
		b.ReportMetric(float64(b.N)/elapsed.Seconds(), "records/s")
		b.ReportMetric(0, "ns/op")
	})
}

// BenchmarkShareGroupSendToAcquire measures the time from the start of
// an append (fsynced, under SyncAlways) to the moment a member's Poll
// returns the record, one record at a time, with 8 members waiting.
func BenchmarkShareGroupSendToAcquire(b *testing.B) {
	s, err := stream.Open(b.TempDir(), nil)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	tp, err := s.CreateTopic("jobs", stream.TopicConfig{Partitions: 8})
	if err != nil {
		b.Fatal(err)
	}
	g, err := s.ShareGroup("q", stream.ShareGroupConfig{Topics: []string{"jobs"}})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var mu sync.Mutex
	var lat []time.Duration
	got := make(chan struct{}, 1)
	var wg sync.WaitGroup
	for range 8 {
		m, err := g.Join(ctx, stream.ShareMemberConfig{})
		if err != nil {
			b.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			m.Run(ctx, func(_ context.Context, r *stream.Acquired) error {
				d := time.Since(time.Unix(0, int64(binary.BigEndian.Uint64(r.Value))))
				mu.Lock()
				lat = append(lat, d)
				mu.Unlock()
				got <- struct{}{}
				return nil
			})
		}()
	}
	b.ResetTimer()
	for i := range b.N {
		p, _ := tp.Partition(int32(i % 8))
		v := binary.BigEndian.AppendUint64(nil, uint64(time.Now().UnixNano()))
		if _, err := p.Append(&stream.Record{Value: v}); err != nil {
			b.Fatal(err)
		}
		<-got
	}
	b.StopTimer()
	cancel()
	wg.Wait()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Nanoseconds()), "p50-ns")
	b.ReportMetric(float64(lat[len(lat)*99/100].Nanoseconds()), "p99-ns")
}
