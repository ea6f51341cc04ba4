package stream_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/instream/stream"
)

// lostLog records OnLost and OnRevoked calls.
type lostLog struct {
	mu            sync.Mutex
	lost, revoked []stream.TopicPartition
}

func (l *lostLog) config(cfg stream.ConsumerConfig) stream.ConsumerConfig {
	cfg.OnLost = func(_ context.Context, tps []stream.TopicPartition) {
		l.mu.Lock()
		defer l.mu.Unlock()
		l.lost = append(l.lost, tps...)
	}
	cfg.OnRevoked = func(_ context.Context, tps []stream.TopicPartition) {
		l.mu.Lock()
		defer l.mu.Unlock()
		l.revoked = append(l.revoked, tps...)
	}
	return cfg
}

func (l *lostLog) lostOf(topic string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, tp := range l.lost {
		if tp.Topic == topic {
			n++
		}
	}
	return n
}

// Deleting one of a group's topics: the members report the deleted
// topic's partitions lost, the group rebalances and goes on with the
// other topic; once every topic is gone Poll says so with
// ErrTopicDeleted, never ErrClosed.
func TestDeleteOneOfTheGroupsTopics(t *testing.T) {
	checkNoLeaks(t)
	s, _ := open(t, nil)
	topic(t, s, "a", 2)
	b := topic(t, s, "b", 1)
	g := group(t, s, "g", stream.GroupConfig{Topics: []string{"a", "b"}, StartAt: stream.StartEarliest})
	var l1, l2 lostLog
	cc := stream.ConsumerConfig{FetchMaxWait: time.Millisecond}
	c1 := join(t, g, l1.config(cc))
	c2 := join(t, g, l2.config(cc))
	defer c1.Close()
	defer c2.Close()
	for range 3 {
		poll(t, c1)
		poll(t, c2)
	}
	only := c2 // the range assignor gives one member a-0 and b-0, the other a-1
	if len(c1.Assignment()) == 1 {
		only = c1
	}
	if got := only.Assignment(); !slices.Equal(got, []stream.TopicPartition{tpOf("a", 1)}) {
		t.Fatalf("assignments %v and %v", c1.Assignment(), c2.Assignment())
	}
	gen := g.Generation()
	if err := s.DeleteTopic("a"); err != nil {
		t.Fatal(err)
	}
	fill(t, b, 5)
	got := 0
	for i := 0; i < 20 && got < 5; i++ {
		for _, c := range []*stream.Consumer{c1, c2} {
			recs, err := c.Poll(context.Background())
			if err != nil {
				t.Fatalf("Poll after one of the group's topics was deleted: %v", err)
			}
			got += len(recs)
		}
	}
	if got != 5 {
		t.Errorf("read %d records of the remaining topic, want 5", got)
	}
	if g.Generation() == gen || len(g.Members()) != 2 {
		t.Errorf("generation %d (was %d), members %v: the group must rebalance and keep both", g.Generation(), gen, g.Members())
	}
	if n := l1.lostOf("a") + l2.lostOf("a"); n != 2 {
		t.Errorf("OnLost reported %d partitions of the deleted topic, want 2", n)
	}
	for _, c := range []*stream.Consumer{c1, c2} {
		for _, tp := range c.Assignment() {
			if tp.Topic == "a" {
				t.Errorf("%s still assigned %v", c.MemberID(), tp)
			}
		}
	}
	if err := s.DeleteTopic("b"); err != nil {
		t.Fatal(err)
	}
	for _, c := range []*stream.Consumer{c1, c2} {
		if _, err := c.Poll(context.Background()); !errors.Is(err, stream.ErrTopicDeleted) {
			t.Errorf("Poll with every topic of the group deleted: %v, want ErrTopicDeleted", err)
		}
	}
}

// A group-less consumer whose partition's topic is deleted gets
// ErrTopicDeleted, and the partition leaves its assignment.
func TestDeleteTopicUnderGroupLessConsumer(t *testing.T) {
	s, _ := open(t, nil)
	topic(t, s, "a", 1)
	c, err := s.NewConsumer(stream.ConsumerConfig{FetchMaxWait: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Assign(tpOf("a", 0))
	errc := make(chan error, 1)
	go func() {
		_, err := c.Poll(context.Background())
		errc <- err
	}()
	time.Sleep(10 * time.Millisecond) // usually waiting by now; either way works
	if err := s.DeleteTopic("a"); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; !errors.Is(err, stream.ErrTopicDeleted) || errors.Is(err, stream.ErrClosed) {
		t.Errorf("Poll of a deleted topic: %v, want ErrTopicDeleted", err)
	}
	if got := c.Assignment(); len(got) != 0 {
		t.Errorf("assignment after the delete: %v", got)
	}
}

// A deleted topic's committed offsets go with it: recreated under the
// same name, it is read from its start, and the group picks up its new
// partition count.
func TestRecreatedTopicIsNotReadFromOldOffsets(t *testing.T) {
	s, _ := open(t, nil)
	tp := topic(t, s, "a", 1)
	fill(t, tp, 10)
	g := group(t, s, "g", stream.GroupConfig{Topics: []string{"a"}, StartAt: stream.StartEarliest, CommitInterval: -1})
	c := join(t, g, stream.ConsumerConfig{FetchMaxWait: time.Millisecond, MaxPollRecords: 5})
	defer c.Close()
	if recs := poll(t, c); len(recs) != 5 {
		t.Fatalf("got %d records", len(recs))
	}
	if err := c.Commit(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteTopic("a"); err != nil {
		t.Fatal(err)
	}
	if got, _ := g.Committed(context.Background()); len(got) != 0 {
		t.Errorf("committed offsets after DeleteTopic: %v", got)
	}
	tp = topic(t, s, "a", 3)
	fill(t, tp, 10)
	var recs []*stream.Record
	for i := 0; i < 50 && len(recs) < 30; i++ {
		r, err := c.Poll(context.Background())
		if err != nil {
			t.Fatalf("Poll after the topic was recreated: %v", err)
		}
		recs = append(recs, r...)
	}
	if len(recs) != 30 {
		t.Fatalf("read %d records of the recreated topic, want all 30", len(recs))
	}
	if len(c.Assignment()) != 3 {
		t.Errorf("assignment %v after the topic came back with 3 partitions", c.Assignment())
	}
	for _, r := range recs {
		if r.Partition == 0 && r.Offset == 0 {
			return
		}
	}
	t.Error("offset 0 of the recreated topic was skipped")
}

// A commit racing DeleteTopic (the member has not polled since) never
// brings the deleted topic's offsets back: an explicit commit fails with
// ErrTopicDeleted, an implicit one skips the topic.
func TestCommitAfterDeleteTopicWritesNothing(t *testing.T) {
	s, _ := open(t, nil)
	tp := topic(t, s, "a", 1)
	fill(t, tp, 3)
	g := group(t, s, "g", stream.GroupConfig{Topics: []string{"a"}, StartAt: stream.StartEarliest, CommitInterval: -1})
	c := join(t, g, stream.ConsumerConfig{FetchMaxWait: time.Millisecond})
	defer c.Close()
	if recs := pollAll(t, c, 3); len(recs) != 3 {
		t.Fatalf("got %d records", len(recs))
	}
	if err := s.DeleteTopic("a"); err != nil {
		t.Fatal(err)
	}
	if err := c.CommitOffsets(context.Background(), map[stream.TopicPartition]int64{tpOf("a", 0): 3}); !errors.Is(err, stream.ErrTopicDeleted) {
		t.Errorf("CommitOffsets of a deleted topic: %v, want ErrTopicDeleted", err)
	}
	if err := c.Commit(context.Background()); err != nil {
		t.Errorf("Commit with a deleted topic held: %v", err)
	}
	if got, _ := g.Committed(context.Background()); len(got) != 0 {
		t.Errorf("committed offsets of a deleted topic: %v", got)
	}
}
