package stream

import (
	"context"
	"testing"
)

// TestPollAfterSeekBackFreesChunks: a consumer that Polls to offset n and
// seeks back to 0 must let the records it read before the seek go. The
// newest chunk, given away by Poll, stays in the slab to carve its tail,
// with the offset of the last record it held, n-1; while it led the list,
// release stopped at it ("holds records not yet handed out") and kept
// every chunk carved after it until the consumer read past n again: a
// whole pass of records, for ever after a seek far back.
func TestPollAfterSeekBackFreesChunks(t *testing.T) {
	s, err := Open(t.TempDir(), &Options{Sync: SyncNever})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	topic, err := s.CreateTopic("t", TopicConfig{})
	if err != nil {
		t.Fatal(err)
	}
	p, err := topic.Partition(0)
	if err != nil {
		t.Fatal(err)
	}
	const n = 20_000
	val := make([]byte, 100)
	var b Batch
	for off := 0; off < n; off += 100 {
		b.Reset()
		for range 100 {
			b.Add(nil, val)
		}
		if _, err := p.AppendBatch(&b); err != nil {
			t.Fatal(err)
		}
	}
	c, err := s.NewConsumer(ConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	tp := TopicPartition{Topic: "t", Partition: 0}
	if err := c.Assign(tp); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for pass := range 2 {
		for read := 0; read < n; {
			recs, err := c.Poll(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if len(recs) == 0 || recs[0].Offset != int64(read) {
				t.Fatalf("pass %d: Poll at %d returned %d records", pass, read, len(recs))
			}
			read += len(recs)
			c.mu.Lock()
			chunks := len(c.parts[tp].slab.chunks)
			c.mu.Unlock()
			// A chunk holds at most slabBytes of records; the
			// consumer reads about readAhead ahead.
			if max := 2 + 2*readAhead/slabBytes; chunks > max {
				t.Fatalf("pass %d, offset %d: the slab holds %d chunks, want at most %d", pass, read, chunks, max)
			}
		}
		if err := c.Seek(tp, 0); err != nil {
			t.Fatal(err)
		}
	}
}
