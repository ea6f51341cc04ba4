package stream

import (
	"errors"
	"testing"
)

func idempotentBatch(id int64, epoch int16, seq int32, n int) *Batch {
	var b Batch
	for range n {
		b.Add(nil, []byte("v"))
	}
	b.setProducer(id, epoch, seq)
	return &b
}

func TestIdempotentAppends(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	tp, err := s.CreateTopic("t", TopicConfig{})
	if err != nil {
		t.Fatal(err)
	}
	p, _ := tp.Partition(0)
	steps := []struct {
		name  string
		batch *Batch
		base  int64
		err   error
		hw    int64
	}{
		{"first", idempotentBatch(7, 0, 0, 3), 0, nil, 3},
		{"retry of first", idempotentBatch(7, 0, 0, 3), 0, nil, 3},
		{"next", idempotentBatch(7, 0, 3, 2), 3, nil, 5},
		{"other producer", idempotentBatch(8, 0, 0, 1), 5, nil, 6},
		{"retry of next", idempotentBatch(7, 0, 3, 2), 3, nil, 6},
		{"gap", idempotentBatch(7, 0, 9, 1), 0, ErrOutOfOrderSequence, 6},
		{"overlap", idempotentBatch(7, 0, 4, 2), 0, ErrOutOfOrderSequence, 6},
		{"old epoch", idempotentBatch(8, -1, 1, 1), 0, ErrFenced, 6},
		{"new epoch not at 0", idempotentBatch(8, 1, 5, 1), 0, ErrOutOfOrderSequence, 6},
		{"new epoch", idempotentBatch(8, 1, 0, 1), 6, nil, 7},
		{"plain batch", func() *Batch { var b Batch; b.Add(nil, nil); return &b }(), 7, nil, 8},
	}
	for _, st := range steps {
		base, err := p.AppendBatch(st.batch)
		if !errors.Is(err, st.err) || (err == nil && base != st.base) {
			t.Fatalf("%s: AppendBatch = %d, %v; want %d, %v", st.name, base, err, st.base, st.err)
		}
		if hw := p.HighWatermark(); hw != st.hw {
			t.Fatalf("%s: high watermark %d, want %d", st.name, hw, st.hw)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// The state comes back from the log: a retry after a restart is still
	// recognised.
	s, err = Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	tp, _ = s.Topic("t")
	p, _ = tp.Partition(0)
	if base, err := p.AppendBatch(idempotentBatch(7, 0, 3, 2)); err != nil || base != 3 {
		t.Fatalf("retry after reopen = %d, %v; want 3", base, err)
	}
	if base, err := p.AppendBatch(idempotentBatch(7, 0, 5, 1)); err != nil || base != 8 {
		t.Fatalf("next after reopen = %d, %v; want 8", base, err)
	}
}

func TestLastSequenceWraps(t *testing.T) {
	if got := lastSequence(2147483646, 3); got != 0 {
		t.Fatalf("lastSequence wraps to %d, want 0", got)
	}
	if got := lastSequence(0, 1); got != 0 {
		t.Fatalf("lastSequence(0, 1) = %d", got)
	}
}
