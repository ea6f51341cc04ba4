package stream

import (
	"context"
	"errors"
	"fmt"
	"strings"
)

// Run: the handler loop over Poll, with its shutdown, cancellation and
// commit rules (the retry policy is in retry.go).

// rewindLocked sets the position of every partition of recs back to its
// first record there, dropping read-ahead records.
func (c *Consumer) rewindLocked(recs []*Record) {
	seen := map[TopicPartition]bool{}
	for _, r := range recs {
		tp := TopicPartition{Topic: r.Topic, Partition: r.Partition}
		if seen[tp] {
			continue
		}
		seen[tp] = true
		if st := c.parts[tp]; st != nil {
			st.seek(r.Offset)
		}
	}
}

// runCtxKey marks the context Run gives its handler, so CloseContext
// called from the handler does not wait for itself.
type runCtxKey struct{}

// Run polls and hands every record to handle, in order, until ctx ends
// (it returns ctx.Err()), the consumer closes (ErrClosed) or handle fails.
//
// The record is lent, as ForEach lends it: the *Record, its Key, Value
// and Headers are valid only until handle returns (including through
// RetryPolicy's attempts and OnGiveUp), and are then reused for later
// records. Copy what you keep (bytes.Clone, or Poll, whose records are
// the caller's). In exchange Run allocates nothing per record: records
// are decoded into buffers reused once handled (headers, when records
// carry them, still cost an allocation each).
// It checks ctx and Close before every record, so it stops within one
// record of either. A group member commits what handle accepted when a
// polled batch ends or Run stops, even when ctx has just ended.
//
// When handle returns an error for a record, Run commits up to (not
// including) that record, rewinds the position of its partition to it
// (and of every other partition to its first record not handled), so
// neither a later auto-commit nor Close can skip it, and returns the
// handler's error. A commit that fails with ErrFenced (the member was
// evicted) is logged, and Run goes on: the group redelivers those
// records elsewhere.
//
// Close waits for the record in flight (CloseContext bounds the wait and
// then cancels the handler's context with a cause wrapping ErrClosed);
// records Poll returned that the handler did not accept are never
// committed. Close and CloseContext called from inside handle do not wait
// for it: handle returns, and Run returns ErrClosed.
func (c *Consumer) Run(ctx context.Context, handle func(context.Context, *Record) error) error {
	if ctx == nil {
		return argError("run", "nil context")
	}
	if handle == nil {
		return argError("run", "nil handler")
	}
	g := goroutineID()
	prev := c.runG.Swap(g)
	defer c.runG.Store(prev)
	for {
		recs, err := c.poll(ctx, true)
		if err != nil {
			return err
		}
		if err := c.runBatch(ctx, recs, handle); err != nil {
			return err
		}
	}
}

// runBatch hands recs to handle in order, stopping before the next record
// once ctx ends or Close begins, and commits what handle accepted.
func (c *Consumer) runBatch(ctx context.Context, recs []*Record, handle func(context.Context, *Record) error) error {
	if len(recs) == 0 {
		return nil
	}
	hctx, cancel := context.WithCancelCause(context.WithValue(ctx, runCtxKey{}, c))
	defer cancel(nil)
	c.mu.Lock()
	done := c.running // set by poll with recs
	if c.closed {
		c.rewindLocked(c.pending)
		c.pending, c.running = nil, nil
		c.mu.Unlock()
		close(done)
		return errorf("stream: run: %w", ErrClosed)
	}
	c.stopRun = cancel
	c.mu.Unlock()
	defer close(done)
	var stop error
	for i, r := range recs {
		if stop = c.runStopped(ctx); stop != nil {
			break
		}
		if err := c.handle(hctx, r, handle); err != nil {
			stop = err
			break
		}
		c.accepted.Store(int64(i + 1))
	}
	// Rewind to the first record not accepted, so that no later commit
	// (auto-commit, Close) skips it.
	c.mu.Lock()
	c.rewindLocked(c.pendingLocked())
	c.pending, c.running, c.stopRun = nil, nil, nil
	c.mu.Unlock()
	if errors.Is(context.Cause(hctx), ErrClosed) {
		// Close stopped waiting and committed what was accepted.
		return errorf("stream: run: %w", ErrClosed)
	}
	if c.g == nil {
		return stop
	}
	err := c.Commit(context.WithoutCancel(ctx))
	switch {
	case err == nil:
	case errors.Is(err, ErrFenced):
		c.log.Warn("commit after handling fenced; the records will be redelivered", "error", oneLine(err))
	case stop != nil:
		return fmt.Errorf("%w (and the commit of the records before it failed: %w)", stop, err)
	default:
		return err
	}
	return stop
}

// runStopped returns why Run must stop before its next record, or nil.
func (c *Consumer) runStopped(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	select {
	case <-c.closing:
		return errorf("stream: run: %w", ErrClosed)
	default:
		return nil
	}
}

// oneLine returns err's message on one line, for a log attribute:
// errors.Join separates its errors with newlines.
func oneLine(err error) string {
	return strings.ReplaceAll(err.Error(), "\n", "; ")
}
