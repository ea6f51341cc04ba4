package stream

import (
	"testing"
	"testing/synctest"
	"time"
)

// TestIdempotentRetryAfterRolls is the bug the torture suite's cluster
// mode found (RELIABILITY.md, "Bugs the suite found"): a producer
// retrying one batch through a failover writes nothing else to the
// partition meanwhile, and the partition forgot it at the second roll
// (it expired producers that wrote nothing to the segment just sealed or
// the new one), so the retry, which must be answered with its original
// offset, was appended a second time: a duplicate with idempotence on.
// Producers now expire by time (Options.ProducerIDExpiration).
func TestIdempotentRetryAfterRolls(t *testing.T) {
	s, err := Open(t.TempDir(), &Options{SegmentBytes: 4 * KiB, Sync: SyncNever})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	top, err := s.CreateTopic("t", TopicConfig{Retention: -1})
	if err != nil {
		t.Fatal(err)
	}
	p, _ := top.Partition(0)
	base, err := p.AppendBatch(idempotentBatch(7, 0, 0, 1))
	if err != nil {
		t.Fatal(err)
	}
	// Other producers' traffic: a few segments' worth.
	for range 200 {
		if _, err := p.Append(&Record{Value: make([]byte, 100)}); err != nil {
			t.Fatal(err)
		}
	}
	if n := p.stats().segments; n < 3 {
		t.Fatalf("%d segments: the test needs at least two rolls", n)
	}
	// The retry of the first batch, its acknowledgement having been lost.
	again, err := p.AppendBatch(idempotentBatch(7, 0, 0, 1))
	if err != nil {
		t.Fatal(err)
	}
	if again != base {
		t.Errorf("the retried batch was appended again at offset %d; idempotence must answer with its original offset %d", again, base)
	}
}

// TestIdempotentProducerExpiresByTime: a producer not heard from for
// ProducerIDExpiration is forgotten at the next roll, so the state of a
// partition that sees many short-lived producers stays bounded; its next
// batch is a new start. Under synctest's clock.
func TestIdempotentProducerExpiresByTime(t *testing.T) {
	dir := t.TempDir()
	synctest.Test(t, func(t *testing.T) {
		s, err := Open(dir, &Options{SegmentBytes: 4 * KiB, Sync: SyncAlways, ProducerIDExpiration: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		top, err := s.CreateTopic("t", TopicConfig{Retention: -1})
		if err != nil {
			t.Fatal(err)
		}
		p, _ := top.Partition(0)
		first, err := p.AppendBatch(idempotentBatch(7, 0, 0, 1))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := p.AppendBatch(idempotentBatch(8, 0, 0, 1)); err != nil {
			t.Fatal(err)
		}
		time.Sleep(30 * time.Minute)
		// Producer 8 is heard from again; 7 is not.
		second8, err := p.AppendBatch(idempotentBatch(8, 0, 1, 1))
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(45 * time.Minute) // 7: 75 minutes idle; 8: 45
		segs := p.stats().segments
		for p.stats().segments == segs {
			if _, err := p.Append(&Record{Value: make([]byte, 100)}); err != nil {
				t.Fatal(err)
			}
		}
		again, err := p.AppendBatch(idempotentBatch(7, 0, 0, 1))
		if err != nil {
			t.Fatal(err)
		}
		if again == first {
			t.Errorf("producer 7, idle past ProducerIDExpiration, was still remembered at the roll: its batch was answered with offset %d", first)
		}
		s8, err := p.AppendBatch(idempotentBatch(8, 0, 1, 1))
		if err != nil {
			t.Fatal(err)
		}
		if s8 != second8 {
			t.Errorf("producer 8, heard from within ProducerIDExpiration, was forgotten: its retry was appended at %d, want the original offset %d", s8, second8)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	})
}

// TestIdempotentProducerNeverExpires: a negative ProducerIDExpiration
// keeps every producer, however long idle (Open accepts it).
func TestIdempotentProducerNeverExpires(t *testing.T) {
	dir := t.TempDir()
	synctest.Test(t, func(t *testing.T) {
		s, err := Open(dir, &Options{SegmentBytes: 4 * KiB, Sync: SyncAlways, ProducerIDExpiration: -1})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		top, err := s.CreateTopic("t", TopicConfig{Retention: -1})
		if err != nil {
			t.Fatal(err)
		}
		p, _ := top.Partition(0)
		first, err := p.AppendBatch(idempotentBatch(7, 0, 0, 1))
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(1000 * time.Hour)
		segs := p.stats().segments
		for p.stats().segments == segs {
			if _, err := p.Append(&Record{Value: make([]byte, 100)}); err != nil {
				t.Fatal(err)
			}
		}
		again, err := p.AppendBatch(idempotentBatch(7, 0, 0, 1))
		if err != nil {
			t.Fatal(err)
		}
		if again != first {
			t.Errorf("with ProducerIDExpiration < 0 the producer was forgotten: its retry was appended at %d, want %d", again, first)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	})
}
