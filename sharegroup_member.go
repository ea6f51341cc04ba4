package stream

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"sync/atomic"
	"time"
)

// ShareMember is a member of a share group (ShareGroup.Join). It acquires
// records with Poll (or Run) and acknowledges each with Accept, Release
// or Reject. All methods are safe for concurrent use.
type ShareMember struct {
	g   *ShareGroup
	id  string
	cfg ShareMemberConfig

	// Guarded by g.mu.
	held   int // records acquired and not acknowledged (some locks may have expired)
	cursor int // where the next Poll starts in g.order: members spread over partitions
	closed bool
}

// Acquired is a record a member holds: the record (lent for as long as
// the member holds it; copy what you keep past the acknowledgement), its
// delivery count and the end of its lock.
type Acquired struct {
	Record
	// DeliveryCount is the record's acquisitions so far, this one
	// included: 1 on its first delivery. Kafka: deliveryCount.
	DeliveryCount int
	// LockedUntil is when the lock ends: after it the record may go to
	// another member and acknowledging it fails with ErrNotAcquired.
	LockedUntil time.Time

	member  *ShareMember
	settled atomic.Bool // acknowledged by its member
}

// ShareAckError is the error of an acknowledgement of a record the member
// does not hold; it unwraps to ErrNotAcquired. The record's state is
// unchanged by the acknowledgement: another member may hold it now.
type ShareAckError struct {
	Group         string
	Topic         string
	Partition     int32
	Offset        int64
	DeliveryCount int
	// Expired is true when the member held the record but its lock
	// ended: the group will deliver (or has delivered) it again.
	Expired bool
}

func (e *ShareAckError) Error() string {
	why := "not held by this member (acknowledged already, or acquired by another member after its lock expired)"
	if e.Expired {
		why = "its acquisition lock expired"
	}
	return fmt.Sprintf("stream: share group %s: %s-%d at offset %d (delivery %d): %s: record not acquired",
		e.Group, e.Topic, e.Partition, e.Offset, e.DeliveryCount, why)
}

func (e *ShareAckError) Unwrap() error { return ErrNotAcquired }

// Join adds a member to the group. It fails with ErrClosed once the group
// or its Stream is closed.
func (g *ShareGroup) Join(ctx context.Context, cfg ShareMemberConfig) (*ShareMember, error) {
	if err := checkContext(ctx, "share group join"); err != nil {
		return nil, err
	}
	c, err := cfg.withDefaults()
	if err != nil {
		return nil, errorf("stream: share group %s: %w", g.id, err)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return nil, errorf("stream: share group %s: join: %w", g.id, ErrClosed)
	}
	g.nextID++
	m := &ShareMember{g: g, id: g.id + "-" + strconv.Itoa(g.nextID), cfg: c, cursor: g.nextID}
	g.members[m] = struct{}{}
	return m, nil
}

// ID returns the member's ID, unique within its group and Stream.
func (m *ShareMember) ID() string { return m.id }

// Close leaves the group. The records the member holds become available
// to the others at once (their delivery counts stay). Later calls return
// ErrClosed.
func (m *ShareMember) Close() error {
	g := m.g
	g.mu.Lock()
	defer g.mu.Unlock()
	if _, ok := g.members[m]; !ok {
		return errorf("stream: share member %s: %w", m.id, ErrClosed)
	}
	delete(g.members, m)
	m.closed = true
	for _, sp := range g.order {
		for i := range sp.entries {
			if e := &sp.entries[i]; e.state == shareAcquired && e.owner == m {
				e.state, e.owner, e.until = shareAvailable, nil, time.Time{}
			}
		}
	}
	m.held = 0
	g.notifyLocked()
	return nil
}

// Poll acquires up to MaxPollRecords available records, from the
// partitions in turn (each member starting at a different one), each
// under a lock of AcquisitionLock. It waits up to FetchMaxWait for one,
// then returns an empty slice and a nil error. Its acquisitions, delivery
// counts included, are stored in meta.db before it returns (in one
// transaction shared with the other members' acknowledgements), so a
// record that crashes the process on every delivery is still rejected
// after MaxDeliveries.
//
// On its way Poll rejects the records whose last delivery's lock expired
// (see MaxDeliveries). It fails with ErrClosed once the member, the group
// or the Stream is closed, and with ctx's error.
func (m *ShareMember) Poll(ctx context.Context) ([]*Acquired, error) {
	if err := checkContext(ctx, "share poll"); err != nil {
		return nil, err
	}
	g := m.g
	wait := time.NewTimer(m.cfg.FetchMaxWait)
	defer wait.Stop()
	for {
		g.refresh()
		g.fill()
		now := time.Now()
		g.mu.Lock()
		if m.closed {
			g.mu.Unlock()
			return nil, errorf("stream: share member %s: poll: %w", m.id, ErrClosed)
		}
		out, dead, wake := g.acquireLocked(m, now)
		var b *shareBatch
		if len(out) > 0 {
			b = g.batchLocked()
		}
		changed := g.changed
		type watch struct {
			p  *Partition
			hw int64
		}
		var watches []watch
		for _, sp := range g.order {
			if len(sp.entries) < g.cfg.MaxPartitionLocks {
				watches = append(watches, watch{sp.p, sp.p.HighWatermark()})
			}
		}
		g.mu.Unlock()
		if len(dead) > 0 {
			g.finishDead(dead)
		}
		if len(out) > 0 {
			if err := g.wait(ctx, b); err != nil {
				m.releaseNow(out)
				return nil, errorf("stream: share member %s: poll: %w", m.id, err)
			}
			return out, nil
		}
		if len(dead) > 0 {
			continue
		}
		// Wait for a change: new records, released ones, a lock or a
		// backoff ending, the end of FetchMaxWait.
		cases := []reflect.SelectCase{
			{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(ctx.Done())},
			{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(wait.C)},
			{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(changed)},
		}
		var timer *time.Timer
		if !wake.IsZero() {
			timer = time.NewTimer(wake.Sub(now))
			cases = append(cases, reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(timer.C)})
		}
		moved := false
		for _, w := range watches {
			ch, err := w.p.hwChanged()
			if err != nil {
				continue // closed: its topic was deleted
			}
			if w.p.HighWatermark() != w.hw {
				moved = true
				break
			}
			cases = append(cases, reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(ch)})
		}
		chosen := -1
		if !moved {
			chosen, _, _ = reflect.Select(cases)
		}
		if timer != nil {
			timer.Stop()
		}
		switch chosen {
		case 0:
			return nil, ctx.Err()
		case 1:
			return []*Acquired{}, nil
		}
	}
}

// acquireLocked acquires records for m from the partitions in turn. It
// also returns the records to reject (their delivery limit reached) and
// the earliest future moment a lock or backoff it met ends (zero: none).
func (g *ShareGroup) acquireLocked(m *ShareMember, now time.Time) (out []*Acquired, dead []deadJob, wake time.Time) {
	n := len(g.order)
	room := func() int {
		r := m.cfg.MaxPollRecords - len(out)
		if g.cfg.MaxInFlightPerMember > 0 {
			r = min(r, g.cfg.MaxInFlightPerMember-m.held)
		}
		return r
	}
	note := func(t time.Time) {
		if wake.IsZero() || t.Before(wake) {
			wake = t
		}
	}
	lock := g.cfg.AcquisitionLock
	maxDeliveries := uint16(g.cfg.MaxDeliveries)
	for k := range n {
		sp := g.order[(m.cursor+k)%n]
		lanes := map[string]struct{}(nil)
		if g.cfg.OrderedByKey {
			lanes = g.lanes
			clear(lanes)
		}
		block := func(e *shareEntry) {
			if lanes != nil && e.rec.Key != nil {
				lanes[string(e.rec.Key)] = struct{}{}
			}
		}
		for i := range sp.entries {
			e := &sp.entries[i]
			if e.state == shareAcquired && !now.Before(e.until) {
				g.expireLocked(e)
			}
			switch e.state {
			case shareAccepted, shareRejected:
				continue
			case shareAcquired:
				note(e.until)
				block(e)
				continue
			case shareDeadLettering:
				block(e)
				continue
			}
			if lanes != nil && e.rec.Key != nil {
				if _, busy := lanes[string(e.rec.Key)]; busy {
					continue
				}
			}
			block(e)
			if now.Before(e.until) {
				note(e.until)
				continue
			}
			if e.deliveries >= maxDeliveries {
				e.state = shareDeadLettering
				reason := fmt.Sprintf("delivery limit %d reached (the last lock expired)", maxDeliveries)
				dead = append(dead, deadJob{sp: sp, rec: e.rec, reason: reason, count: e.deliveries})
				continue
			}
			if room() <= 0 {
				break
			}
			e.state, e.owner, e.until = shareAcquired, m, now.Add(lock)
			e.deliveries++
			m.held++
			sp.dirty = true
			a := &Acquired{Record: *e.rec, DeliveryCount: int(e.deliveries), LockedUntil: e.until, member: m}
			out = append(out, a)
		}
	}
	m.cursor++
	return out, dead, wake
}

// expireLocked takes back a record whose lock ended.
func (g *ShareGroup) expireLocked(e *shareEntry) {
	e.owner.held--
	e.state, e.owner, e.until = shareAvailable, nil, time.Time{}
}

// ackKind is what an acknowledgement does.
type ackKind int

const (
	ackAccept ackKind = iota
	ackRelease
	ackReject
	ackReleaseNow // Run giving back records it did not process: no backoff
)

// Accept acknowledges records as processed: they are never delivered
// again. It returns once that is stored in meta.db (one transaction for
// all of them, shared with other members'). A record the member does not
// hold (its lock expired, or it was acknowledged already) is skipped
// with a *ShareAckError (ErrNotAcquired); the others are accepted, and
// the errors are joined.
func (m *ShareMember) Accept(ctx context.Context, recs ...*Acquired) error {
	return m.ackWait(ctx, ackAccept, recs)
}

// Release gives records back for redelivery after a backoff
// (ReleaseBackoff, doubling with each delivery), or, for records whose
// delivery count reached MaxDeliveries, rejects them as Reject does.
// Errors are as Accept's. It does not wait for meta.db: after a crash a
// released record is delivered again anyway.
func (m *ShareMember) Release(ctx context.Context, recs ...*Acquired) error {
	_, err := m.ack(ctx, ackRelease, recs)
	return err
}

// Reject acknowledges records as unprocessable: they are never delivered
// again, and are copied to the DeadLetterTopic if there is one. It
// returns once that is stored. Errors are as Accept's.
func (m *ShareMember) Reject(ctx context.Context, recs ...*Acquired) error {
	return m.ackWait(ctx, ackReject, recs)
}

// releaseNow gives back records without backoff.
func (m *ShareMember) releaseNow(recs []*Acquired) {
	m.ack(context.Background(), ackReleaseNow, recs)
}

func (m *ShareMember) ackWait(ctx context.Context, kind ackKind, recs []*Acquired) error {
	b, err := m.ack(ctx, kind, recs)
	if werr := m.g.wait(ctx, b); werr != nil {
		return errors.Join(err, errorf("stream: share member %s: %w", m.id, werr))
	}
	return err
}

// ack applies an acknowledgement and returns the batch that stores it
// (nil if nothing changed) and the errors of the records not held.
func (m *ShareMember) ack(ctx context.Context, kind ackKind, recs []*Acquired) (*shareBatch, error) {
	if err := checkContext(ctx, "share acknowledge"); err != nil {
		return nil, err
	}
	g := m.g
	g.mu.Lock()
	if m.closed {
		g.mu.Unlock()
		return nil, errorf("stream: share member %s: acknowledge: %w", m.id, ErrClosed)
	}
	now := time.Now()
	var errs []error
	var dead []deadJob
	changed := false
	for _, a := range recs {
		if a == nil {
			errs = append(errs, argError("share acknowledge", "nil record"))
			continue
		}
		sp := g.parts[TopicPartition{a.Topic, a.Partition}]
		var e *shareEntry
		if sp != nil {
			e = sp.entry(a.Offset)
		}
		if e == nil || a.member != m || e.owner != m || e.state != shareAcquired || int(e.deliveries) != a.DeliveryCount {
			errs = append(errs, &ShareAckError{Group: g.id, Topic: a.Topic, Partition: a.Partition, Offset: a.Offset, DeliveryCount: a.DeliveryCount})
			continue
		}
		if !now.Before(e.until) {
			g.expireLocked(e)
			changed = true
			errs = append(errs, &ShareAckError{Group: g.id, Topic: a.Topic, Partition: a.Partition, Offset: a.Offset, DeliveryCount: a.DeliveryCount, Expired: true})
			continue
		}
		a.settled.Store(true)
		m.held--
		e.owner, e.until = nil, time.Time{}
		changed = true
		sp.dirty = true
		switch {
		case kind == ackAccept:
			e.state = shareAccepted
			sp.accepted++
			sp.advance()
		case kind == ackReject:
			e.state = shareDeadLettering
			dead = append(dead, deadJob{sp: sp, rec: e.rec, reason: "rejected by member " + m.id, count: e.deliveries})
		case e.deliveries >= uint16(g.cfg.MaxDeliveries):
			e.state = shareDeadLettering
			reason := fmt.Sprintf("delivery limit %d reached (released)", g.cfg.MaxDeliveries)
			dead = append(dead, deadJob{sp: sp, rec: e.rec, reason: reason, count: e.deliveries})
		case kind == ackRelease:
			e.state, e.until = shareAvailable, now.Add(g.releaseBackoff(e.deliveries))
		default:
			e.state = shareAvailable
		}
	}
	var b *shareBatch
	if changed {
		if kind != ackAccept {
			g.notifyLocked()
		}
		b = g.batchLocked()
	}
	g.mu.Unlock()
	if len(dead) > 0 {
		b = g.finishDead(dead)
	}
	return b, errors.Join(errs...)
}

// releaseBackoff is the wait of a record released after its d-th
// delivery.
func (g *ShareGroup) releaseBackoff(d uint16) time.Duration {
	w := g.cfg.ReleaseBackoff
	for i := uint16(1); i < d && w < g.cfg.MaxReleaseBackoff; i++ {
		w *= 2
	}
	return min(w, g.cfg.MaxReleaseBackoff)
}

// Run polls and hands each acquired record to handle, until ctx ends or
// the member closes. A record whose handler returns nil is accepted, one
// whose handler fails is released (redelivered after a backoff, and
// rejected after MaxDeliveries); a record the handler acknowledged
// itself is left as it did. Run accepts each record as its handler
// returns and waits for the acceptances of a poll to be stored before
// polling again: after a crash, the records whose handler returned since
// are delivered again (at least once). When ctx ends Run gives back the
// records of the poll it did not hand out and returns ctx's error.
//
// An acknowledgement of a record whose lock expired while its handler
// ran is logged, and Run goes on (the record is redelivered). The
// handler runs with no lock of the package held.
func (m *ShareMember) Run(ctx context.Context, handle func(context.Context, *Acquired) error) error {
	if err := checkContext(ctx, "share run"); err != nil {
		return err
	}
	if handle == nil {
		return argError("share run", "nil handler")
	}
	for {
		recs, err := m.Poll(ctx)
		if err != nil {
			return err
		}
		var last *shareBatch
		for i, a := range recs {
			if ctx.Err() != nil {
				m.releaseNow(recs[i:])
				break
			}
			herr := handle(ctx, a)
			if a.settled.Load() {
				continue
			}
			kind := ackAccept
			if herr != nil {
				kind = ackRelease
				m.g.log.Warn("share group handler failed; releasing the record", "member", m.id, "topic", a.Topic,
					"partition", a.Partition, "offset", a.Offset, "delivery", a.DeliveryCount, "error", oneLine(herr))
			}
			b, aerr := m.ack(context.WithoutCancel(ctx), kind, []*Acquired{a})
			if b != nil {
				last = b
			}
			if aerr != nil {
				if !errors.Is(aerr, ErrNotAcquired) {
					return aerr
				}
				m.g.log.Warn("share group acknowledgement failed; the record is delivered again", "member", m.id, "error", aerr)
			}
		}
		// The batches are written in order: the last one's end means
		// every earlier acceptance is stored.
		if err := m.g.wait(context.WithoutCancel(ctx), last); err != nil {
			return errorf("stream: share member %s: run: %w", m.id, err)
		}
		if err := ctx.Err(); err != nil {
			return err
		}
	}
}
