package stream

import (
	"slices"
	"time"
)

// Liveness of group members, as in Kafka: a member is alive while its
// consumer heartbeats (from its own goroutine, SessionTimeout), makes
// progress while it calls Poll (MaxPollInterval), and takes part in a
// rebalance by giving up what it must within its MaxPollInterval (the
// rebalance timeout). The coordinator's goroutine (run) evicts members
// past any of the three deadlines.

// run is the coordinator's goroutine: it evicts members whose deadlines
// passed.
func (g *ConsumerGroup) run() {
	defer close(g.done)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	for {
		var fire <-chan time.Time
		if next := g.expire(time.Now()); !next.IsZero() {
			timer.Reset(time.Until(next))
			fire = timer.C
		}
		select {
		case <-g.stop:
			return
		case <-g.wake:
		case <-fire:
		}
	}
}

// expire evicts the members past a deadline and returns the earliest
// deadline left (zero if none).
func (g *ConsumerGroup) expire(now time.Time) time.Time {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.cl != nil {
		return g.cl.expire(now)
	}
	var next time.Time
	earliest := func(t time.Time) {
		if !t.IsZero() && (next.IsZero() || t.Before(next)) {
			next = t
		}
	}
	type eviction struct {
		m      *member
		reason string
	}
	var evicted []eviction
	for _, m := range g.members {
		live := m.consumer != nil
		revoking := live && !m.revokeBy.IsZero() && g.needsRevokeLocked(m)
		switch {
		case !live && !now.Before(m.deadline):
			evicted = append(evicted, eviction{m, "static member not back within the session timeout"})
		case !now.Before(m.deadline):
			evicted = append(evicted, eviction{m, "no heartbeat within the session timeout"})
		case live && !m.polling && !now.Before(m.pollDeadline):
			evicted = append(evicted, eviction{m, "no Poll within MaxPollInterval: the handler is stuck or MaxPollRecords too many for it"})
		case revoking && !now.Before(m.revokeBy):
			evicted = append(evicted, eviction{m, "partitions not given up within MaxPollInterval of a rebalance (rebalance timeout)"})
		default:
			earliest(m.deadline)
			if live && !m.polling {
				earliest(m.pollDeadline)
			}
			if revoking {
				earliest(m.revokeBy)
			}
		}
	}
	slices.SortFunc(evicted, func(a, b eviction) int { return compareStrings(a.m.id, b.m.id) })
	for _, e := range evicted {
		g.log.Warn("evicted member", "member", e.m.id, "instance", e.m.instanceID, "reason", e.reason,
			"session_timeout", g.cfg.SessionTimeout, "max_poll_interval", e.m.maxPoll)
		g.removeLocked(e.m)
	}
	if len(evicted) > 0 {
		g.rebalanceLocked("eviction")
		// The rebalance may have set revocation deadlines.
		for _, m := range g.members {
			if m.consumer != nil && !m.revokeBy.IsZero() {
				earliest(m.revokeBy)
			}
		}
	}
	if !g.delayUntil.IsZero() {
		if now.Before(g.delayUntil) {
			earliest(g.delayUntil)
		} else {
			g.delayUntil = time.Time{} // the initial delay is over: hand out
			g.notifyLocked()
		}
	}
	g.timerAt = next
	return next
}

func compareStrings(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// wakeLocked makes run look at the deadlines again if t is before the
// time its timer is set for.
func (g *ConsumerGroup) wakeLocked(t time.Time) {
	if !g.timerAt.IsZero() && !t.Before(g.timerAt) {
		return
	}
	g.timerAt = t
	select {
	case g.wake <- struct{}{}:
	default:
	}
}

// needsRevokeLocked reports whether m holds partitions the current
// generation asks it to give up.
func (g *ConsumerGroup) needsRevokeLocked(m *member) bool {
	if len(m.owned) == 0 {
		return false
	}
	if !g.cooperative() {
		return m.gen < g.generation
	}
	for tp := range m.owned {
		if !slices.Contains(m.target, tp) {
			return true
		}
	}
	return false
}

// beat is a heartbeat of member id from its consumer c: it extends the
// session.
func (g *ConsumerGroup) beat(c *Consumer, id string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.cl != nil {
		g.cl.beat(c, id)
		return
	}
	if m := g.members[id]; m != nil && m.consumer == c {
		m.deadline = time.Now().Add(g.cfg.SessionTimeout)
	}
}

// touch marks progress of member id without a Poll (ReadToEnd): it
// extends the session and the poll deadline. It reports false when the
// member is no longer in the group.
func (g *ConsumerGroup) touch(id string) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.cl != nil {
		return g.cl.touch(id)
	}
	m := g.members[id]
	if m == nil {
		return false
	}
	now := time.Now()
	m.deadline, m.pollDeadline = now.Add(g.cfg.SessionTimeout), now.Add(m.maxPoll)
	return true
}

// pollDone ends member id's Poll: the time to its next Poll runs from now.
func (g *ConsumerGroup) pollDone(id string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.cl != nil {
		g.cl.pollDone(id)
		return
	}
	if m := g.members[id]; m != nil {
		now := time.Now()
		m.polling = false
		m.deadline, m.pollDeadline = now.Add(g.cfg.SessionTimeout), now.Add(m.maxPoll)
		first := m.deadline
		if m.pollDeadline.Before(first) {
			first = m.pollDeadline
		}
		g.wakeLocked(first)
	}
}

// heartbeatInterval is how often a member's consumer heartbeats: a third
// of the session timeout, as Kafka's default heartbeat.interval.ms (3s)
// is of session.timeout.ms (10s, then 45s).
func heartbeatInterval(session time.Duration) time.Duration {
	return max(session/3, time.Millisecond)
}

// heartbeatLoop is a group member's heartbeat goroutine: from Join to
// Close it keeps the member's session alive, whatever its Poll loop does.
func (c *Consumer) heartbeatLoop() {
	defer close(c.hbDone)
	t := time.NewTicker(heartbeatInterval(c.g.cfg.SessionTimeout))
	defer t.Stop()
	for {
		select {
		case <-c.closing:
			return
		case <-c.hbStop:
			return
		case <-t.C:
			if id := c.MemberID(); id != "" {
				c.g.beat(c, id)
			}
		}
	}
}
