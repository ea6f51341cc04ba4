package stream

import (
	"bytes"
	"context"
	"runtime"
)

// Closing a producer, and the calls its callbacks make back into it.
//
// SendAsync callbacks run on the producer's drain goroutines (one per
// partition with batches to write). A call from a callback that waited
// for deliveries would wait for its own goroutine, so the producer tells
// those calls apart: while a drain goroutine runs SendAsync callbacks its
// ID is in the partition accumulator's inCallback, and Close, Flush, Send
// and a SendAsync that finds the buffer full look for their own
// goroutine's ID there (only while some callback runs: userCallbacks).

// Close delivers every record sent before it (retrying failures until
// ProducerConfig.DeliveryTimeout, as always), waits for their callbacks,
// and stops the producer's goroutines; CloseContext bounds that wait.
// Sends during or after Close fail with ErrClosed, as does a second
// Close. Called from one of the producer's callbacks, Close returns at
// once: the records sent before it are still delivered, by the
// producer's goroutines once the callback returns, and Stream.Close
// waits for them. Kafka: KafkaProducer.close.
func (p *Producer) Close() error {
	return p.CloseContext(context.Background())
}

// CloseContext is Close with ctx bounding its wait, as Kafka's
// close(timeout). If ctx ends before every record is delivered, it
// returns an error wrapping ctx.Err() at once, and the producer gives up:
// failed appends are no longer retried, and each record not yet written
// fails with an error wrapping ErrClosed (its callback runs, on the
// producer's goroutine, after CloseContext returns: no record is dropped
// silently). A batch whose append is under way when ctx ends finishes it
// and reports its outcome as usual; Stream.Close waits for it.
func (p *Producer) CloseContext(ctx context.Context) error {
	first := !p.closed.Swap(true)
	p.beginClose()
	if p.inCallback() {
		if !first {
			return p.errClosed()
		}
		return nil // this goroutine delivers the rest once the callback returns
	}
	if err := p.waitDrains(ctx); err != nil {
		p.forced.Store(true)
		p.abortOnce.Do(func() { close(p.abort) })
		return errorf("stream: close producer: gave up on undelivered records: %w", err)
	}
	p.s.mu.Lock()
	delete(p.s.producers, p)
	p.s.mu.Unlock()
	if !first {
		return p.errClosed()
	}
	return nil
}

// closeForStream is Close called by Stream.Close: batches are still
// written, but a failed append is not retried. Called from one of the
// producer's callbacks, it does not wait for that callback's goroutine.
func (p *Producer) closeForStream() {
	p.closed.Store(true)
	p.abortOnce.Do(func() { close(p.abort) })
	p.beginClose()
	if !p.inCallback() {
		p.waitDrains(context.Background())
	}
}

// beginClose starts the close once, after closed is set: senders waiting
// for room learn of it, every open batch is sealed (no batch opens after
// this) for the drain goroutines to write, and the batches kept for
// reuse are let go.
func (p *Producer) beginClose() {
	p.closeOnce.Do(func() {
		p.wakeRoom()
		p.freeMu.Lock()
		p.free = nil
		p.freeMu.Unlock()
		for _, a := range p.accumulators() {
			a.mu.Lock()
			if a.open != nil {
				a.sealLocked()
			}
			if a.timer != nil {
				a.timer.Stop()
			}
			a.mu.Unlock()
		}
	})
}

// waitDrains waits until no drain goroutine runs, or ctx ends.
func (p *Producer) waitDrains(ctx context.Context) error {
	p.flushWaiters.Add(1)
	defer p.flushWaiters.Add(-1)
	for {
		progress := p.progressChan()
		if p.drains.Load() == 0 {
			return nil
		}
		select {
		case <-progress:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// aborted reports whether the producer stopped retrying: the Stream is
// closing it, or CloseContext gave up.
func (p *Producer) aborted() bool {
	select {
	case <-p.abort:
		return true
	default:
		return false
	}
}

// inCallback reports whether the calling goroutine is running one of the
// producer's SendAsync callbacks.
func (p *Producer) inCallback() bool {
	if p.userCallbacks.Load() == 0 {
		return false
	}
	g := goroutineID()
	for _, a := range p.accumulators() {
		if a.inCallback.Load() == g {
			return true
		}
	}
	return false
}

// goroutineID returns the calling goroutine's ID, parsed from the first
// line of its stack trace ("goroutine 42 [running]:"). Go offers no
// other way; the producer needs it only to tell its callbacks' calls
// from others, never on the path of a send that does not wait.
func goroutineID() uint64 {
	var buf [64]byte
	b := bytes.TrimPrefix(buf[:runtime.Stack(buf[:], false)], []byte("goroutine "))
	var id uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			break
		}
		id = id*10 + uint64(c-'0')
	}
	return id
}
