package stream_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/instream/stream"
)

// topic creates a topic with n partitions.
func topic(t *testing.T, s *stream.Stream, name string, n int) *stream.Topic {
	t.Helper()
	tp, err := s.CreateTopic(name, stream.TopicConfig{Partitions: n})
	if err != nil {
		t.Fatal(err)
	}
	return tp
}

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

var _ = errors.Is
var _ = slices.Sort[[]int]
var _ = strings.Contains
var _ sync.Mutex
var _ = synctest.Wait
