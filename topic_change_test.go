package stream_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"testing"
	"time"

	"github.com/instream/stream"
)

// A producer follows a topic deleted and recreated under the same name
// between two sends: the next send goes to the new topic instead of
// failing with ErrUnknownTopic.
func TestProducerFollowsRecreatedTopic(t *testing.T) {
	s, _ := open(t, nil)
	topic(t, s, "t", 2)
	p := newProducer(t, s, stream.ProducerConfig{})
	ctx := context.Background()
	if err := p.Send(ctx, &stream.Record{Topic: "t", Key: []byte("k"), Value: []byte("before")}); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteTopic("t"); err != nil {
		t.Fatal(err)
	}
	tp := topic(t, s, "t", 3)
	for i := range 20 {
		r := &stream.Record{Topic: "t", Key: fmt.Appendf(nil, "k%d", i), Value: value(i)}
		if err := p.Send(ctx, r); err != nil {
			t.Fatalf("send %d to the recreated topic: %v", i, err)
		}
	}
	var n int64
	for i := range tp.NumPartitions() {
		part, _ := tp.Partition(int32(i))
		n += part.HighWatermark()
	}
	if n != 20 {
		t.Fatalf("the recreated topic holds %d records, want 20", n)
	}
}

// CreatePartitions grows a topic: Topic.NumPartitions (of the Topic
// already held too) and Config reflect it, a producer already sending to
// the topic spreads keys over the new partitions, the count survives a
// restart, and it only grows.
func TestCreatePartitions(t *testing.T) {
	s, dir := open(t, nil)
	tp := topic(t, s, "t", 2)
	p := newProducer(t, s, stream.ProducerConfig{})
	ctx := context.Background()
	send := func(from, n int) {
		t.Helper()
		for i := from; i < from+n; i++ {
			if err := p.Send(ctx, &stream.Record{Topic: "t", Key: fmt.Appendf(nil, "key-%d", i), Value: value(i)}); err != nil {
				t.Fatalf("send %d: %v", i, err)
			}
		}
	}
	send(0, 10)
	if err := s.CreatePartitions("t", 4); err != nil {
		t.Fatalf("CreatePartitions: %v", err)
	}
	if n := tp.NumPartitions(); n != 4 {
		t.Fatalf("NumPartitions of the Topic held: %d, want 4", n)
	}
	if n := tp.Config().Partitions; n != 4 {
		t.Fatalf("Config().Partitions: %d, want 4", n)
	}
	send(10, 100)
	for i := int32(2); i < 4; i++ {
		part, err := tp.Partition(i)
		if err != nil {
			t.Fatal(err)
		}
		if part.HighWatermark() == 0 {
			t.Fatalf("new partition %d got no records from the producer", i)
		}
	}
	for _, tt := range []struct {
		topic string
		n     int
		want  error
	}{
		{"t", 4, stream.ErrInvalidConfig},
		{"t", 3, stream.ErrInvalidConfig},
		{"t", 0, stream.ErrInvalidConfig},
		{"t", -1, stream.ErrInvalidConfig},
		{"t", math.MaxInt, stream.ErrInvalidConfig}, // bounded before any directory is made
		{"missing", 4, stream.ErrUnknownTopic},
	} {
		if err := s.CreatePartitions(tt.topic, tt.n); !errors.Is(err, tt.want) {
			t.Errorf("CreatePartitions(%q, %d): %v, want %v", tt.topic, tt.n, err, tt.want)
		}
	}
	// A directory in the way of a new partition is never adopted.
	if err := os.MkdirAll(dir+"/topics/t-4", 0o755); err != nil {
		t.Fatal(err)
	}
	if err := s.CreatePartitions("t", 6); !errors.Is(err, stream.ErrTopicExists) || tp.NumPartitions() != 4 {
		t.Fatalf("CreatePartitions over a stray directory: %v, %d partitions; want ErrTopicExists and 4", err, tp.NumPartitions())
	}
	os.Remove(dir + "/topics/t-4")
	p.Close()
	s.Close()
	if err := s.CreatePartitions("t", 8); !errors.Is(err, stream.ErrClosed) {
		t.Fatalf("CreatePartitions after Close: %v", err)
	}

	s = reopen(t, dir, nil)
	tp, err := s.Topic("t")
	if err != nil {
		t.Fatal(err)
	}
	if tp.NumPartitions() != 4 {
		t.Fatalf("after a restart: %d partitions, want 4", tp.NumPartitions())
	}
	var total int64
	for i := range 4 {
		total += existing(t, s, "t", int32(i)).HighWatermark()
	}
	if total != 110 {
		t.Fatalf("after a restart: %d records, want 110", total)
	}
}

// A crash after CreatePartitions committed the new count to meta.db but
// before it made the new partitions' directories leaves a topic whose
// missing directories Open creates.
func TestCreatePartitionsCrashBeforeDirectories(t *testing.T) {
	s, dir := open(t, nil)
	topic(t, s, "t", 1)
	if err := s.CreatePartitions("t", 3); err != nil {
		t.Fatal(err)
	}
	s.Close()
	for _, d := range []string{"/topics/t-1", "/topics/t-2"} {
		if err := os.RemoveAll(dir + d); err != nil {
			t.Fatal(err)
		}
	}
	s = reopen(t, dir, nil)
	tp, err := s.Topic("t")
	if err != nil || tp.NumPartitions() != 3 {
		t.Fatalf("after the crash: %v, %v; want 3 partitions", tp, err)
	}
	part, _ := tp.Partition(2)
	if _, err := part.Append(&stream.Record{Value: []byte("v")}); err != nil {
		t.Fatal(err)
	}
}

// Records in flight when their topic is deleted and recreated go to the
// new topic's partition, and the producer's later sends to the new topic
// are not refused for their sequence numbers: the moved batch carries no
// idempotence state into the new partition.
func TestProducerInFlightAcrossRecreate(t *testing.T) {
	s, _ := open(t, nil)
	topic(t, s, "t", 1)
	p := newProducer(t, s, stream.ProducerConfig{Linger: time.Minute})
	ctx := context.Background()
	if err := p.Send(ctx, &stream.Record{Topic: "t", Value: value(0)}); err != nil {
		t.Fatal(err)
	}
	var rs results
	for i := 1; i <= 3; i++ {
		p.SendAsync(&stream.Record{Topic: "t", Value: value(i)}, rs.done()) // lingering
	}
	if err := s.DeleteTopic("t"); err != nil {
		t.Fatal(err)
	}
	tp := topic(t, s, "t", 1)
	flush(t, p) // the lingering batch goes to the recreated topic
	for i, err := range rs.errs {
		if err != nil || rs.recs[i].Offset != int64(i) {
			t.Fatalf("record %d in flight across the recreation: offset %d, %v", i+1, rs.recs[i].Offset, err)
		}
	}
	r := &stream.Record{Topic: "t", Value: value(4)}
	if err := p.Send(ctx, r); err != nil || r.Offset != 3 {
		t.Fatalf("Send to the recreated topic after the moved batch: offset %d, %v", r.Offset, err)
	}
	part, _ := tp.Partition(0)
	checkValues(t, readAll(t, part, 0), 1)
}

// CreatePartitions is crash-safe: with the power cut before each of its
// file-system operations in turn, the directory reopens with the old
// partition count or the new one (the new one whenever CreatePartitions
// returned success), the old partitions keep their records, every
// partition takes appends, and no directory is left belonging to no
// topic.
func TestCreatePartitionsPowerCut(t *testing.T) {
	step := 1
	if testing.Short() {
		step = 4
	}
	for n := 1; ; n += step {
		dir := t.TempDir()
		fsys := stream.NewMemFS()
		fsys.MkdirAllDurable(dir)
		s, err := stream.OpenOnFS(fsys, dir, nil)
		if err != nil {
			t.Fatal(err)
		}
		tp, err := s.CreateTopic("t", stream.TopicConfig{Partitions: 2})
		if err != nil {
			t.Fatal(err)
		}
		for i := range 2 {
			part, _ := tp.Partition(int32(i))
			if _, err := part.Append(&stream.Record{Value: value(i)}); err != nil {
				t.Fatal(err)
			}
		}
		fsys.CutPowerAfter(n)
		cpErr := s.CreatePartitions("t", 4)
		finished := !fsys.Dead()
		fsys.CutPower()
		s.Close()

		s, err = stream.OpenOnFS(fsys.Restart(uint64(n)), dir, nil)
		if err != nil {
			t.Fatalf("cut before operation %d: Open: %v", n, err)
		}
		tp, err = s.Topic("t")
		if err != nil {
			t.Fatal(err)
		}
		got := tp.NumPartitions()
		if got != 2 && got != 4 || cpErr == nil && got != 4 {
			t.Fatalf("cut before operation %d (CreatePartitions: %v): %d partitions after the restart", n, cpErr, got)
		}
		for i := range got {
			part, _ := tp.Partition(int32(i))
			want := int64(0)
			if i < 2 {
				want = 1
			}
			if hw := part.HighWatermark(); hw != want {
				t.Fatalf("cut before operation %d: partition %d holds %d records, want %d", n, i, hw, want)
			}
			if _, err := part.Append(&stream.Record{Value: []byte("after")}); err != nil {
				t.Fatalf("cut before operation %d: append to partition %d: %v", n, i, err)
			}
		}
		if got == 2 {
			// Nothing left in the way of a retry.
			if err := s.CreatePartitions("t", 4); err != nil {
				t.Fatalf("cut before operation %d: CreatePartitions again: %v", n, err)
			}
		}
		s.Close()
		if finished {
			t.Logf("CreatePartitions took %d file-system operations", n-1)
			return
		}
	}
}

// CreateTopic is crash-safe the same way: with the power cut before each
// of its file-system operations in turn, the directory reopens with the
// topic or without it (with it whenever CreateTopic returned success),
// and a retry is never refused by directories left behind.
func TestCreateTopicPowerCut(t *testing.T) {
	step := 1
	if testing.Short() {
		step = 4
	}
	for n := 1; ; n += step {
		dir := t.TempDir()
		fsys := stream.NewMemFS()
		fsys.MkdirAllDurable(dir)
		s, err := stream.OpenOnFS(fsys, dir, nil)
		if err != nil {
			t.Fatal(err)
		}
		fsys.CutPowerAfter(n)
		_, ctErr := s.CreateTopic("t", stream.TopicConfig{Partitions: 2})
		finished := !fsys.Dead()
		fsys.CutPower()
		s.Close()

		s, err = stream.OpenOnFS(fsys.Restart(uint64(n)), dir, nil)
		if err != nil {
			t.Fatalf("cut before operation %d: Open: %v", n, err)
		}
		tp, err := s.Topic("t")
		switch {
		case err == nil:
			for i := range tp.NumPartitions() {
				part, _ := tp.Partition(int32(i))
				if _, err := part.Append(&stream.Record{Value: []byte("after")}); err != nil {
					t.Fatalf("cut before operation %d: append to partition %d: %v", n, i, err)
				}
			}
		case ctErr == nil:
			t.Fatalf("cut before operation %d: CreateTopic succeeded, but after the restart: %v", n, err)
		default:
			if _, err := s.CreateTopic("t", stream.TopicConfig{Partitions: 2}); err != nil {
				t.Fatalf("cut before operation %d (CreateTopic: %v): CreateTopic again: %v", n, ctErr, err)
			}
		}
		s.Close()
		if finished {
			t.Logf("CreateTopic took %d file-system operations", n-1)
			return
		}
	}
}
