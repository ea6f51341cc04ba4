package stream

import (
	"fmt"
	"slices"
	"sync"
	"time"
)

// Hook is a value that implements one or more of the hook interfaces
// below (AppendHook, FsyncHook, RollHook, RetentionHook, RebalanceHook,
// CommitHook, ISRChangeHook), set in Options.Hooks. A user implements
// only the events it cares about, as with franz-go's kgo.Hook; Open
// refuses a hook that implements none (ErrInvalidConfig), which is
// almost always a misspelt method.
//
// Append, fsync, roll, retention and commit hooks run synchronously, on
// the goroutine that caused the event, after the event and outside the
// engine's locks: they may call the Stream (Metrics, say), but they slow
// that goroutine down, so they should be quick and must not block.
// Rebalance and ISR-change hooks happen while a group's or a replica's
// state is locked, so they run on one goroutine of their own, in the
// order of the events, which Close stops after delivering what was
// queued.
//
// With no hook set, the hot path pays one nil check per event.
type Hook any

// AppendHook is called after each append to a partition this process
// leads (Append, AppendBatch, a Producer's batch), once it is
// acknowledged or has failed; nothing is called per record.
type AppendHook interface {
	OnAppend(AppendEvent)
}

// AppendEvent describes one appended batch.
type AppendEvent struct {
	Topic      string
	Partition  int32
	BaseOffset int64 // the batch's first offset; meaningless when Err is set
	Records    int
	Bytes      int64 // the encoded batch
	Err        error // nil: acknowledged
}

// FsyncHook is called after each fsync of a partition's active segment
// by the group commit.
type FsyncHook interface {
	OnFsync(FsyncEvent)
}

// FsyncEvent describes one fsync.
type FsyncEvent struct {
	Topic     string
	Partition int32
	Duration  time.Duration
	Err       error // non-nil: the partition now refuses writes
}

// RollHook is called when a segment sealed by a roll is complete on disk
// (synced, trimmed, its indexes written): the log has a new active
// segment starting at Next.
type RollHook interface {
	OnRoll(RollEvent)
}

// RollEvent describes one finalized segment.
type RollEvent struct {
	Topic      string
	Partition  int32
	BaseOffset int64 // the sealed segment's first offset
	Next       int64 // the offset after its last record
	Bytes      int64
}

// RetentionHook is called after retention deleted segments of a
// partition.
type RetentionHook interface {
	OnRetention(RetentionEvent)
}

// RetentionEvent describes one retention pass over a partition that
// deleted something.
type RetentionEvent struct {
	Topic       string
	Partition   int32
	Segments    int
	Bytes       int64
	StartOffset int64 // the new log start offset
	Err         error // removing a file failed (the segment is gone from the log all the same)
}

// RebalanceHook is called when a consumer group open in this process
// starts a new generation.
type RebalanceHook interface {
	OnRebalance(RebalanceEvent)
}

// RebalanceEvent describes one rebalance.
type RebalanceEvent struct {
	Group      string
	Generation int64
	Members    int
	Reason     string // "join", "leave", "eviction", …, as logged
}

// CommitHook is called after each offset commit of a member of a group
// open in this process.
type CommitHook interface {
	OnCommit(CommitEvent)
}

// CommitEvent describes one commit.
type CommitEvent struct {
	Group    string
	Member   string
	Offsets  map[TopicPartition]OffsetAndMetadata // the caller's map: do not modify
	Duration time.Duration                        // of the meta.db transaction
	Err      error
}

// ISRChangeHook is called when this node learns a partition's new
// leader or in-sync replica set (replicated partitions only).
type ISRChangeHook interface {
	OnISRChange(ISRChangeEvent)
}

// ISRChangeEvent describes one change of a partition's replication
// metadata.
type ISRChangeEvent struct {
	Topic       string
	Partition   int32
	Leader      NodeID
	LeaderEpoch int32
	ISR         []NodeID
	PreviousISR []NodeID
	// LeaderChanged: a new leader (or none) rather than only a new ISR.
	LeaderChanged bool
}

// hookSet holds Options.Hooks sorted by event. A nil *hookSet (no hooks)
// is valid: every method then returns at once.
type hookSet struct {
	append    []AppendHook
	fsync     []FsyncHook
	roll      []RollHook
	retention []RetentionHook
	rebalance []RebalanceHook
	commit    []CommitHook
	isr       []ISRChangeHook

	// The queue of the hooks run on their own goroutine (async); mu
	// guards queue and closed.
	mu     sync.Mutex
	queue  []func()
	closed bool
	wake   chan struct{}
	done   chan struct{}
}

// newHookSet sorts hooks by the interfaces they implement; nil when
// there are none.
func newHookSet(hooks []Hook) (*hookSet, error) {
	if len(hooks) == 0 {
		return nil, nil
	}
	h := &hookSet{}
	for i, hk := range hooks {
		n := 0
		if x, ok := hk.(AppendHook); ok {
			h.append, n = append(h.append, x), n+1
		}
		if x, ok := hk.(FsyncHook); ok {
			h.fsync, n = append(h.fsync, x), n+1
		}
		if x, ok := hk.(RollHook); ok {
			h.roll, n = append(h.roll, x), n+1
		}
		if x, ok := hk.(RetentionHook); ok {
			h.retention, n = append(h.retention, x), n+1
		}
		if x, ok := hk.(RebalanceHook); ok {
			h.rebalance, n = append(h.rebalance, x), n+1
		}
		if x, ok := hk.(CommitHook); ok {
			h.commit, n = append(h.commit, x), n+1
		}
		if x, ok := hk.(ISRChangeHook); ok {
			h.isr, n = append(h.isr, x), n+1
		}
		if n == 0 {
			return nil, configError(fmt.Sprintf("Options.Hooks[%d]", i), fmt.Sprintf("%T implements no hook interface", hk))
		}
	}
	if len(h.rebalance) > 0 || len(h.isr) > 0 {
		h.wake, h.done = make(chan struct{}, 1), make(chan struct{})
		go h.run()
	}
	return h, nil
}

// run calls the queued hooks in order until close.
func (h *hookSet) run() {
	defer close(h.done)
	for {
		h.mu.Lock()
		q, closed := h.queue, h.closed
		h.queue = nil
		h.mu.Unlock()
		for _, f := range q {
			f()
		}
		if closed && len(q) == 0 {
			return
		}
		if len(q) == 0 {
			<-h.wake
		}
	}
}

// async queues f for the hooks' goroutine; after close it drops f.
func (h *hookSet) async(f func()) {
	h.mu.Lock()
	if !h.closed {
		h.queue = append(h.queue, f)
	}
	h.mu.Unlock()
	select {
	case h.wake <- struct{}{}:
	default:
	}
}

// close delivers the queued events and stops the hooks' goroutine.
func (h *hookSet) close() {
	if h == nil || h.done == nil {
		return
	}
	h.mu.Lock()
	h.closed = true
	h.mu.Unlock()
	select {
	case h.wake <- struct{}{}:
	default:
	}
	<-h.done
}

// appended reports an append of p. Inlined at the call site: with no
// hook it is a nil check.
func (h *hookSet) appended(p *Partition, base int64, records int, bytes int64, err error) {
	if h != nil && len(h.append) > 0 {
		h.fireAppend(p, base, records, bytes, err)
	}
}

func (h *hookSet) fireAppend(p *Partition, base int64, records int, bytes int64, err error) {
	e := AppendEvent{Topic: p.topic, Partition: p.id, BaseOffset: base, Records: records, Bytes: bytes, Err: err}
	for _, x := range h.append {
		x.OnAppend(e)
	}
}

// fsynced reports an fsync of p's active segment.
func (h *hookSet) fsynced(p *Partition, d time.Duration, err error) {
	if h == nil {
		return
	}
	for _, x := range h.fsync {
		x.OnFsync(FsyncEvent{Topic: p.topic, Partition: p.id, Duration: d, Err: err})
	}
}

// rolled reports that s, sealed by a roll, is finalized. s is sealed:
// its bounds no longer change.
func (h *hookSet) rolled(p *Partition, s *segment) {
	if h == nil {
		return
	}
	for _, x := range h.roll {
		x.OnRoll(RollEvent{Topic: p.topic, Partition: p.id, BaseOffset: s.base, Next: s.next, Bytes: s.size})
	}
}

// retained reports segments retention deleted from p.
func (h *hookSet) retained(p *Partition, doomed []*segment, err error) {
	if h == nil || len(doomed) == 0 {
		return
	}
	e := RetentionEvent{Topic: p.topic, Partition: p.id, Segments: len(doomed), StartOffset: p.StartOffset(), Err: err}
	for _, s := range doomed {
		e.Bytes += s.size
	}
	for _, x := range h.retention {
		x.OnRetention(e)
	}
}

// rebalanced counts a rebalance of g and reports it. g.mu is held.
func (g *ConsumerGroup) rebalanced(reason string) {
	g.counters.rebalances.Add(1)
	h := g.s.hooks
	if h == nil || len(h.rebalance) == 0 {
		return
	}
	e := RebalanceEvent{Group: g.id, Generation: g.generation, Members: len(g.members), Reason: reason}
	h.async(func() {
		for _, x := range h.rebalance {
			x.OnRebalance(e)
		}
	})
}

// committed measures a commit of member of g and reports it.
func (g *ConsumerGroup) committedBy(member string, offs map[TopicPartition]OffsetAndMetadata, began time.Time, err error) {
	d := time.Since(began)
	g.counters.commit.observe(d)
	if err != nil {
		g.counters.commitErrors.Add(1)
	}
	if h := g.s.hooks; h != nil {
		for _, x := range h.commit {
			x.OnCommit(CommitEvent{Group: g.id, Member: member, Offsets: offs, Duration: d, Err: err})
		}
	}
}

// reassigned counts a change of r's replication metadata from old to a
// and reports it. r.mu is held.
func (r *replica) reassigned(old, a replicaAssignment) {
	p := r.p
	changedLeader := old.Leader != a.Leader
	if changedLeader && old.LeaderEpoch > 0 {
		p.counters.leaderChanges.Add(1)
	}
	h := p.cfg.hooks
	if h == nil || len(h.isr) == 0 || !changedLeader && slices.Equal(old.ISR, a.ISR) {
		return
	}
	e := ISRChangeEvent{Topic: p.topic, Partition: p.id, Leader: a.Leader, LeaderEpoch: a.LeaderEpoch,
		ISR: slices.Clone(a.ISR), PreviousISR: slices.Clone(old.ISR), LeaderChanged: changedLeader}
	h.async(func() {
		for _, x := range h.isr {
			x.OnISRChange(e)
		}
	})
}
