package stream

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"
)

// RetryPolicy says what Consumer.Run does when its handler fails on a
// record, so that one poison record neither blocks its partition forever
// nor makes every caller write the same loop. The zero value retries
// nothing: Run stops and returns the handler's error. Kafka clients leave
// this to the application (Spring Kafka's DefaultErrorHandler with a
// DeadLetterPublishingRecoverer is the usual answer).
type RetryPolicy struct {
	// Attempts is how many times Run hands a record to the handler
	// before giving up on it. Default 1: no retry.
	Attempts int
	// Backoff is the wait before the second attempt; each later wait
	// doubles, up to MaxBackoff. Close and the end of Run's context cut a
	// wait short (the record is then not accepted). Default 100ms.
	Backoff time.Duration
	// MaxBackoff bounds the wait between attempts. Default 10s.
	MaxBackoff time.Duration
	// DeadLetterTopic, when set, receives each record whose attempts are
	// spent: Run appends a copy (key, value, timestamp, headers, plus
	// the headers stream.dlt.topic, stream.dlt.partition,
	// stream.dlt.offset and stream.dlt.error) to the partition its key
	// hashes to (keyless: its partition number modulo the count), counts
	// the record as accepted and goes on. The topic must exist by then
	// (else Run stops with ErrUnknownTopic).
	DeadLetterTopic string
	// OnGiveUp, when set, is called with each record whose attempts are
	// spent and the handler's last error, after the dead-letter append
	// if there is one. Returning nil counts the record as accepted and
	// Run goes on; an error stops Run with it. r is lent as to the
	// handler: valid until OnGiveUp returns; copy what you keep.
	OnGiveUp func(ctx context.Context, r *Record, err error) error
}

// Defaults of RetryPolicy.
const (
	DefaultRunBackoff    = 100 * time.Millisecond
	DefaultRunMaxBackoff = 10 * time.Second
)

func (p RetryPolicy) withDefaults() (RetryPolicy, error) {
	if p.Attempts < 0 {
		return p, configError("ConsumerConfig.Retry.Attempts", p.Attempts)
	}
	if p.Attempts == 0 {
		p.Attempts = 1
	}
	if p.Backoff < 0 {
		return p, configError("ConsumerConfig.Retry.Backoff", p.Backoff)
	}
	if p.Backoff == 0 {
		p.Backoff = DefaultRunBackoff
	}
	if p.MaxBackoff < 0 {
		return p, configError("ConsumerConfig.Retry.MaxBackoff", p.MaxBackoff)
	}
	if p.MaxBackoff == 0 {
		p.MaxBackoff = max(DefaultRunMaxBackoff, p.Backoff)
	}
	if p.DeadLetterTopic != "" {
		if err := validName("topic", p.DeadLetterTopic); err != nil {
			return p, configError("ConsumerConfig.Retry.DeadLetterTopic", fmt.Sprintf("%q", p.DeadLetterTopic))
		}
	}
	return p, nil
}

// handle runs the handler on one record under the retry policy. It
// returns nil when the record counts as accepted.
func (c *Consumer) handle(ctx context.Context, r *Record, handle func(context.Context, *Record) error) error {
	pol := c.cfg.Retry
	wait := pol.Backoff
	var err error
	for attempt := 1; ; attempt++ {
		if err = handle(ctx, r); err == nil {
			return nil
		}
		if attempt >= pol.Attempts {
			break
		}
		c.log.Warn("handler failed; retrying", "topic", r.Topic, "partition", r.Partition, "offset", r.Offset,
			"attempt", attempt, "of", pol.Attempts, "backoff", wait, "error", oneLine(err))
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			if errors.Is(context.Cause(ctx), ErrClosed) {
				return context.Cause(ctx)
			}
			return ctx.Err()
		case <-c.closing:
			t.Stop()
			return errorf("stream: run: %w", ErrClosed)
		}
		wait = min(2*wait, pol.MaxBackoff)
	}
	if pol.DeadLetterTopic == "" && pol.OnGiveUp == nil {
		return err
	}
	if pol.DeadLetterTopic != "" {
		if derr := c.deadLetter(r, err); derr != nil {
			return derr
		}
		c.log.Warn("handler failed on every attempt; record sent to the dead-letter topic", "topic", r.Topic, "partition", r.Partition,
			"offset", r.Offset, "attempts", pol.Attempts, "dead_letter_topic", pol.DeadLetterTopic, "error", oneLine(err))
	}
	if pol.OnGiveUp != nil {
		return pol.OnGiveUp(ctx, r, err)
	}
	return nil
}

// deadLetter appends a copy of r, with why it failed, to the dead-letter
// topic.
func (c *Consumer) deadLetter(r *Record, cause error) error {
	name := c.cfg.Retry.DeadLetterTopic
	t, err := c.s.Topic(name)
	if err != nil {
		if errors.Is(err, ErrUnknownTopic) {
			err = ErrUnknownTopic
		}
		return errorf("stream: run: dead-letter topic %s for %s-%d at %d: %w", name, r.Topic, r.Partition, r.Offset, err)
	}
	if err := appendDeadLetter(t, r, cause.Error()); err != nil {
		return errorf("stream: run: dead-letter %s-%d at %d: %w", r.Topic, r.Partition, r.Offset, err)
	}
	return nil
}

// appendDeadLetter appends a copy of r to the dead-letter topic t: on the
// partition r's key picks (else r's partition number, modulo t's count),
// with r's headers, then stream.dlt.topic, .partition, .offset and .error
// (reason) saying where it came from and why, then extra. Consumer
// retries and share groups dead-letter through it.
func appendDeadLetter(t *Topic, r *Record, reason string, extra ...Header) error {
	n := t.NumPartitions()
	part := r.Partition % int32(n)
	if r.Key != nil {
		part = keyPartition(r.Key, n)
	}
	p, err := t.Partition(part)
	if err != nil {
		return err
	}
	hdrs := make([]Header, 0, len(r.Headers)+4+len(extra))
	hdrs = append(hdrs, r.Headers...)
	hdrs = append(hdrs,
		Header{Key: "stream.dlt.topic", Value: []byte(r.Topic)},
		Header{Key: "stream.dlt.partition", Value: strconv.AppendInt(nil, int64(r.Partition), 10)},
		Header{Key: "stream.dlt.offset", Value: strconv.AppendInt(nil, r.Offset, 10)},
		Header{Key: "stream.dlt.error", Value: []byte(reason)},
	)
	hdrs = append(hdrs, extra...)
	_, err = p.Append(&Record{Topic: t.name, Key: r.Key, Value: r.Value, Headers: hdrs, Timestamp: r.Timestamp})
	return err
}
