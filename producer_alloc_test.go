package stream

import (
	"context"
	"testing"
)

// A warm producer allocates nothing per record: SendAsync encodes into
// batches the producer recycles, Send waits with a recycled waiter. What
// remains is per Flush (its list of partitions, its wake-up channel),
// thousandths of an allocation per record.
func TestProducerAllocations(t *testing.T) {
	if raceEnabled() {
		t.Skip("the race detector allocates on its own")
	}
	s, err := Open(t.TempDir(), &Options{Sync: SyncNever})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.CreateTopic("t", TopicConfig{Partitions: 1}); err != nil {
		t.Fatal(err)
	}
	p, err := s.NewProducer(ProducerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	ctx := context.Background()
	val := make([]byte, 100)
	recs := make([]Record, 2000)
	var failed error
	done := func(_ *Record, err error) {
		if err != nil && failed == nil {
			failed = err
		}
	}
	sendAll := func() {
		for i := range recs {
			recs[i] = Record{Topic: "t", Value: val}
			p.SendAsync(&recs[i], done)
		}
		if err := p.Flush(ctx); err != nil {
			t.Fatal(err)
		}
	}
	sendAll() // warm: the batches and the topic lookup
	if perRecord := testing.AllocsPerRun(10, sendAll) / float64(len(recs)); perRecord > 0.02 {
		t.Errorf("SendAsync: %.3f allocations per record, want at most 0.02", perRecord)
	}
	if failed != nil {
		t.Fatal(failed)
	}
	r := &Record{Topic: "t", Value: val}
	if err := p.Send(ctx, r); err != nil { // warm a waiter
		t.Fatal(err)
	}
	perSend := testing.AllocsPerRun(100, func() {
		if err := p.Send(ctx, r); err != nil {
			t.Fatal(err)
		}
	})
	if perSend >= 1 {
		t.Errorf("Send: %.1f allocations per call, want none", perSend)
	}
}
