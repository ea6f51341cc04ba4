package stream_test

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/instream/stream"
)

// within runs f and fails the test, with every goroutine's stack, if it
// has not returned after d: the tests of calls that used to deadlock.
func within(t *testing.T, d time.Duration, what string, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		f()
	}()
	select {
	case <-done:
	case <-time.After(d):
		buf := make([]byte, 1<<20)
		t.Fatalf("%s did not return within %v (deadlock):\n%s", what, d, buf[:runtime.Stack(buf, true)])
	}
}

// Producer.Close called from a delivery callback returns at once instead
// of waiting for the goroutine that runs the callback: the records sent
// before it are still delivered, later sends fail with ErrClosed, and
// Stream.Close completes.
func TestProducerCloseFromCallback(t *testing.T) {
	s, _ := open(t, nil)
	topic(t, s, "c", 2)
	p := newProducer(t, s, stream.ProducerConfig{})
	const n = 50
	var rs results
	var closeErr error
	closed := make(chan struct{})
	var once sync.Once
	within(t, 10*time.Second, "Close from a callback", func() {
		for i := range n {
			done := rs.done()
			p.SendAsync(&stream.Record{Topic: "c", Key: value(i), Value: value(i)}, func(r *stream.Record, err error) {
				once.Do(func() {
					closeErr = p.Close()
					close(closed)
				})
				done(r, err)
			})
		}
		<-closed
		rs.wg.Wait()
	})
	if closeErr != nil {
		t.Fatalf("Close from a callback: %v", closeErr)
	}
	for i, err := range rs.errs {
		if err != nil {
			t.Fatalf("record %d sent before Close: %v", i, err)
		}
	}
	if err := p.Send(context.Background(), &stream.Record{Topic: "c"}); !errors.Is(err, stream.ErrClosed) {
		t.Fatalf("Send after Close: %v", err)
	}
	within(t, 10*time.Second, "Stream.Close", func() {
		if err := s.Close(); err != nil {
			t.Errorf("Stream.Close: %v", err)
		}
	})
}

// Stream.Close called from a producer's callback does not wait for that
// callback's own goroutine either.
func TestStreamCloseFromProducerCallback(t *testing.T) {
	checkNoLeaks(t)
	s, _ := open(t, nil)
	topic(t, s, "c", 1)
	p := newProducer(t, s, stream.ProducerConfig{})
	var closeErr error
	within(t, 10*time.Second, "Stream.Close from a callback", func() {
		done := make(chan struct{})
		p.SendAsync(&stream.Record{Topic: "c", Value: value(0)}, func(_ *stream.Record, err error) {
			closeErr = s.Close()
			close(done)
		})
		<-done
	})
	if closeErr != nil {
		t.Fatalf("Stream.Close from a callback: %v", closeErr)
	}
}

// A callback that relays records with SendAsync (each relayed record
// larger than the one delivered, so the buffer fills) while the buffer is
// full gets ErrBufferFull for the relayed record at once instead of waiting
// for room that only its own goroutine can free; nothing hangs and every
// callback runs.
func TestProducerSendAsyncFromCallbackBufferFull(t *testing.T) {
	s, _ := open(t, &stream.Options{Sync: stream.SyncNever})
	topic(t, s, "in", 1)
	topic(t, s, "relay", 1)
	const limit = 2 * stream.KiB
	p := newProducer(t, s, stream.ProducerConfig{BufferBytes: limit, BatchBytes: 512, Linger: time.Minute})
	const n = 200
	var mu sync.Mutex
	var relayed, full, other int
	var all sync.WaitGroup
	within(t, 20*time.Second, "SendAsync from callbacks with a full buffer", func() {
		for i := range n {
			all.Add(1)
			p.SendAsync(&stream.Record{Topic: "in", Value: value(i)}, func(r *stream.Record, err error) {
				if err != nil {
					t.Errorf("record %d: %v", i, err)
				}
				all.Add(1)
				p.SendAsync(&stream.Record{Topic: "relay", Key: r.Value, Value: make([]byte, 200)}, func(_ *stream.Record, err error) {
					mu.Lock()
					switch {
					case err == nil:
						relayed++
					case errors.Is(err, stream.ErrBufferFull):
						full++
					default:
						other++
						t.Errorf("relayed record: %v", err)
					}
					mu.Unlock()
					all.Done()
				})
				all.Done()
			})
		}
		for range 2 { // the second for the relayed records sent during the first
			if err := p.Flush(context.Background()); err != nil {
				t.Errorf("Flush: %v", err)
			}
		}
		all.Wait()
	})
	if relayed+full != n || full == 0 {
		t.Fatalf("%d relayed, %d refused with ErrBufferFull, %d other; want %d in all, some refused", relayed, full, other, n)
	}
}

// Send and Flush from a callback would wait for the goroutine running the
// callback: they fail at once with ErrInCallback.
func TestProducerSendFlushFromCallback(t *testing.T) {
	s, _ := open(t, nil)
	topic(t, s, "c", 1)
	p := newProducer(t, s, stream.ProducerConfig{})
	var sendErr, flushErr error
	within(t, 10*time.Second, "Send and Flush from a callback", func() {
		done := make(chan struct{})
		p.SendAsync(&stream.Record{Topic: "c", Value: value(0)}, func(_ *stream.Record, err error) {
			sendErr = p.Send(context.Background(), &stream.Record{Topic: "c", Value: value(1)})
			flushErr = p.Flush(context.Background())
			close(done)
		})
		<-done
	})
	if !errors.Is(sendErr, stream.ErrInCallback) || !errors.Is(flushErr, stream.ErrInCallback) {
		t.Fatalf("Send from a callback: %v; Flush: %v; want ErrInCallback", sendErr, flushErr)
	}
	if err := p.Send(context.Background(), &stream.Record{Topic: "c", Value: value(1)}); err != nil {
		t.Fatalf("Send outside the callback: %v", err)
	}
}

// With the partition stuck and the buffer full, SendAsync waits
// ProducerConfig.MaxBlock for room, then fails the record with
// ErrBufferFull; Send waits at most MaxBlock too.
func TestProducerMaxBlock(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, _ := open(t, &stream.Options{Sync: stream.SyncNever})
		part, _ := topic(t, s, "slow", 1).Partition(0)
		gate := make(chan struct{})
		stream.SetAppendFault(part, func() error { <-gate; return nil })
		p := newProducer(t, s, stream.ProducerConfig{BufferBytes: 2 * stream.KiB, BatchBytes: 512, MaxBlock: 3 * time.Second})
		var rs results
		start := time.Now()
		var i int
		for ; rs.len() == 0; i++ {
			p.SendAsync(&stream.Record{Topic: "slow", Value: value(i)}, rs.done())
		}
		if got := time.Since(start); got != 3*time.Second {
			t.Fatalf("SendAsync failed after %v, want MaxBlock 3s", got)
		}
		if err := rs.errs[0]; !errors.Is(err, stream.ErrBufferFull) {
			t.Fatalf("SendAsync with the buffer full for MaxBlock: %v, want ErrBufferFull", err)
		}
		start = time.Now()
		err := p.Send(context.Background(), &stream.Record{Topic: "slow", Value: value(i)})
		if got := time.Since(start); !errors.Is(err, stream.ErrBufferFull) || got != 3*time.Second {
			t.Fatalf("Send: %v after %v, want ErrBufferFull after 3s", err, got)
		}
		close(gate)
		flush(t, p)
	})
}

// CloseContext bounds Close's wait: when ctx ends before the records are
// delivered (here the partition fails every append, so they would be
// retried for DeliveryTimeout), it returns ctx's error at once and every
// undelivered record's callback gets an error wrapping ErrClosed;
// nothing is dropped silently.
func TestProducerCloseContext(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, _ := open(t, nil)
		part, _ := topic(t, s, "failing", 1).Partition(0)
		injected := errors.New("injected fsync failure")
		stream.SetSyncFault(part, func() error { return injected })
		p, err := s.NewProducer(stream.ProducerConfig{DeliveryTimeout: time.Hour, RetryBackoff: time.Second, BatchBytes: 512})
		if err != nil {
			t.Fatal(err)
		}
		var rs results
		const n = 100
		for i := range n {
			p.SendAsync(&stream.Record{Topic: "failing", Value: value(i)}, rs.done())
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		start := time.Now()
		err = p.CloseContext(ctx)
		if got := time.Since(start); !errors.Is(err, context.DeadlineExceeded) || got != 5*time.Second {
			t.Fatalf("CloseContext: %v after %v; want context.DeadlineExceeded after 5s", err, got)
		}
		rs.wg.Wait()
		if time.Since(start) != 5*time.Second {
			t.Fatalf("undelivered records failed %v after the close began; want at once", time.Since(start))
		}
		for i, err := range rs.errs {
			if !errors.Is(err, stream.ErrClosed) {
				t.Fatalf("record %d: %v, want ErrClosed", i, err)
			}
		}
		if err := p.Close(); !errors.Is(err, stream.ErrClosed) {
			t.Fatalf("Close after CloseContext: %v", err)
		}
	})
}

// CloseContext with time enough delivers everything, as Close does.
func TestProducerCloseContextDelivers(t *testing.T) {
	s, _ := open(t, nil)
	topic(t, s, "c", 2)
	p, err := s.NewProducer(stream.ProducerConfig{Linger: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	var rs results
	for i := range 100 {
		p.SendAsync(&stream.Record{Topic: "c", Key: value(i), Value: value(i)}, rs.done())
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := p.CloseContext(ctx); err != nil {
		t.Fatalf("CloseContext: %v", err)
	}
	if rs.len() != 100 {
		t.Fatalf("%d callbacks when CloseContext returned, want 100", rs.len())
	}
	for i, err := range rs.errs {
		if err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
	}
}

// Send does not linger: its caller waits for the acknowledgement anyway,
// so a batch holding a Send's record is written as soon as its partition
// is free, and concurrent Sends still share batches (those arriving
// while one is written gather into the next). SendAsync records in the
// same batch go with it.
func TestProducerSendDoesNotLinger(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, _ := open(t, nil)
		topic(t, s, "t", 1)
		p := newProducer(t, s, stream.ProducerConfig{Linger: time.Minute})
		var rs results
		p.SendAsync(&stream.Record{Topic: "t", Value: value(0)}, rs.done())
		start := time.Now()
		r := &stream.Record{Topic: "t", Value: value(1)}
		if err := p.Send(context.Background(), r); err != nil {
			t.Fatal(err)
		}
		if got := time.Since(start); got != 0 || r.Offset != 1 {
			t.Fatalf("Send returned offset %d after %v; want offset 1 without waiting for Linger", r.Offset, got)
		}
		rs.wg.Wait()
		if rs.errs[0] != nil || rs.recs[0].Offset != 0 {
			t.Fatalf("the SendAsync record before it: %v, offset %d", rs.errs[0], rs.recs[0].Offset)
		}
	})
}
