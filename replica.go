package stream

import (
	"context"
	"log/slog"
	"math"
	"slices"
	"sync"
	"time"
)

// Replication's data plane, Kafka's way and outside raft: a replicaManager
// per node keeps that node's replicas of replicated partitions in step
// with their leaders. It takes each partition's metadata — leader, leader
// epoch, replicas, ISR — from a source that pushes it (update), and sends
// the leader's ISR change requests to a sink (isrSink, Kafka's
// AlterPartition); the raft controller is both once wired (see the
// package doc, Replication). Everything else is here and in
// replica_fetch.go:
//
//   - A follower runs one goroutine per partition it follows. On becoming
//     follower it asks the leader where its own newest leader epoch ends
//     (OffsetsForLeaderEpoch) and truncates its log there (KIP-101,
//     KIP-279), then long-polls the leader: "fetch from offset X, my
//     durable log end is D, I know your high watermark is H, my epoch is
//     E". It appends the batches the leader returns byte for byte at
//     their offsets (Partition.appendReplicated: CRCs checked, leader
//     epochs kept, the epoch cache extended), fsyncs them under
//     SyncAlways, and moves its high watermark to min(leader's, its own
//     durable end).
//   - The leader answers a fetch with raw batches read from its segments
//     (no decoding, no re-encoding) and its high watermark, or ErrFenced
//     when the follower's epoch is not its own, or ErrNotLeader. A fetch
//     that finds nothing new waits (up to fetchMaxWait) for an append or
//     a move of the high watermark.
//   - The leader tracks each follower's durable log end and when it last
//     caught up (Kafka's lastCaughtUpTimeMs: the follower fetched from the
//     leader's log end, or from where the log ended at its previous
//     fetch). The high watermark is the smallest durable log end over the
//     ISR, the leader's own included. A follower not caught up for
//     ReplicaLagTime is dropped from the ISR, and one whose durable end
//     reaches the high watermark (and the start of the leader's epoch) is
//     added back, each through the sink.
//   - Appends on the leader stamp its epoch in each batch's
//     partitionLeaderEpoch; a new leader records its epoch's start offset
//     in the leader-epoch cache (leader_epoch.go) before its first
//     append. Append and AppendBatch on a follower fail with ErrNotLeader
//     naming the leader; on a leader whose ISR is below
//     MinInSyncReplicas, with ErrNotEnoughReplicas and nothing appended.
//     An append returns once the high watermark passes it (AcksAll);
//     if by then the ISR is below MinInSyncReplicas it fails with
//     ErrNotEnoughReplicas all the same (Kafka's
//     NOT_ENOUGH_REPLICAS_AFTER_APPEND: the records are in the log, not
//     acknowledged); if the node stops leading first, with ErrNotLeader.
//
// How it is wired (cluster_wiring.go, from Open with Options.Cluster): one
// replicaManager per Stream on the messenger the Cluster shares
// (ClusterConfig.ReplicaLagTime as lagTime), its kinds registered before
// the messenger serves; each local replica added with its topic's
// MinInSyncReplicas; the controller's effects applied here in order
// (a partition's metadata: update; a deleted topic: remove; a reset:
// update for every partition); isrSink is Cluster.alterISR; Close closes
// the manager before the partitions.
//
// A follower whose log ends below the leader's log start (retention
// deleted what it needs) restarts its log there, empty, as Kafka's
// truncateFullyAndStartAt (replica_fetch.go). Not handled yet: a batch
// larger than the transport's frame limit (TCPConfig.MaxFrameBytes)
// cannot be fetched; there is no high-watermark checkpoint (see add).
//
// Lock order: replica.mu, then replicaManager.mu, then the partition's
// locks. The partition never calls into this layer while holding its
// own: its append path reads only the immutable replicaGate snapshot.

// replicaAssignment is one partition's replication metadata, as the
// metadata source hands it over: the controller's partitionMeta.
type replicaAssignment struct {
	Leader         NodeID // 0 while none
	LeaderEpoch    int32  // changes with every leader change
	PartitionEpoch int32  // changes with every change; fences stale ISR requests
	Replicas       []NodeID
	ISR            []NodeID
}

// isrChange is a leader's request to change a partition's ISR (Kafka's
// AlterPartition, the controller's cmdAlterPartition).
type isrChange struct {
	Topic          string
	Partition      int32
	Leader         NodeID
	LeaderEpoch    int32
	PartitionEpoch int32
	ISR            []NodeID
}

// isrSink takes a leader's ISR change requests. The new ISR comes back,
// if the request is accepted, as a metadata update.
type isrSink interface {
	alterISR(ctx context.Context, c isrChange) error
}

// replicaConfig tunes a replicaManager; the zero value takes defaults.
type replicaConfig struct {
	lagTime       time.Duration // ReplicaLagTime; default 10s
	fetchMaxWait  time.Duration // how long a fetch waits for data; default 500ms
	fetchMaxBytes int           // per fetch; default 1 MiB
	retryBackoff  time.Duration // after a failed fetch; default 100ms
	ackTimeout    time.Duration // bound on an append's wait for the high watermark; default 30s
}

func (c replicaConfig) withDefaults() replicaConfig {
	if c.lagTime <= 0 {
		c.lagTime = 10 * time.Second
	}
	if c.fetchMaxWait <= 0 {
		c.fetchMaxWait = 500 * time.Millisecond
	}
	if c.fetchMaxBytes <= 0 {
		c.fetchMaxBytes = int(1 * MiB)
	}
	if c.retryBackoff <= 0 {
		c.retryBackoff = 100 * time.Millisecond
	}
	if c.ackTimeout <= 0 {
		c.ackTimeout = 30 * time.Second
	}
	return c
}

type partKey struct {
	topic string
	id    int32
}

// replicaManager is one node's replication data plane.
type replicaManager struct {
	self NodeID
	msg  *messenger
	sink isrSink
	cfg  replicaConfig
	log  *slog.Logger

	ctx    context.Context // canceled by close: ends fetches and sink calls
	cancel context.CancelFunc
	wg     sync.WaitGroup // every goroutine of the manager and its replicas

	// mu guards parts and closed.
	mu     sync.Mutex
	parts  map[partKey]*replica
	closed bool
}

// newReplicaManager makes node self's data plane and registers its
// request kinds on msg, which the caller then serves.
func newReplicaManager(self NodeID, msg *messenger, sink isrSink, cfg replicaConfig, log *slog.Logger) *replicaManager {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	m := &replicaManager{
		self: self, msg: msg, sink: sink, cfg: cfg.withDefaults(), log: log.With("node", self),
		ctx: ctx, cancel: cancel, parts: make(map[partKey]*replica),
	}
	msg.handle(kindFetch, m.handleFetch)
	msg.handle(kindEpochEnd, m.handleEpochEnd)
	m.wg.Add(1)
	go m.run()
	return m
}

// add makes p a replica managed here, waiting for its first update.
// Until then appends to it fail with ErrNotLeader. Its high watermark
// drops to the log start until the replication layer raises it: the log
// end Open set it to may hold a suffix nobody acknowledged, which the
// next leader may not have (there is no high-watermark checkpoint yet,
// as Kafka's replication-offset-checkpoint; with one, a restarted replica
// would show readers what it had shown before at once).
func (m *replicaManager) add(p *Partition, minISR int) (*replica, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, errorf("stream: replica manager: %w", ErrClosed)
	}
	k := partKey{p.topic, p.id}
	if r := m.parts[k]; r != nil {
		return r, nil
	}
	r := &replica{m: m, p: p, minISR: max(minISR, 1), a: replicaAssignment{LeaderEpoch: -1}, changed: make(chan struct{})}
	p.attachReplica(&replicaGate{self: m.self, minISR: r.minISR, r: r})
	m.parts[k] = r
	return r, nil
}

func (m *replicaManager) replica(topic string, id int32) *replica {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.parts[partKey{topic, id}]
}

// update hands the manager a partition's current metadata. Updates older
// than the one applied (a lower leader or partition epoch) are ignored.
func (m *replicaManager) update(topic string, id int32, a replicaAssignment) error {
	r := m.replica(topic, id)
	if r == nil {
		return errorf("stream: partition %s-%d is not replicated on node %d: %w", topic, id, m.self, ErrUnknownTopic)
	}
	r.update(a)
	return nil
}

// remove stops replicating a partition (its topic was deleted, or the
// replica moved away): its fetcher stops, appends waiting for
// acknowledgement fail with ErrNotLeader, and later appends too.
func (m *replicaManager) remove(topic string, id int32) {
	m.mu.Lock()
	r := m.parts[partKey{topic, id}]
	delete(m.parts, partKey{topic, id})
	m.mu.Unlock()
	if r == nil {
		return
	}
	r.stopFollowing()
	r.mu.Lock()
	defer r.mu.Unlock()
	r.a = replicaAssignment{LeaderEpoch: math.MaxInt32, PartitionEpoch: math.MaxInt32}
	close(r.changed)
	r.changed = make(chan struct{})
	r.followers = nil
	r.installGateLocked()
}

// close stops every goroutine and waits for them; appends waiting for
// acknowledgement fail with ErrClosed. The partitions stay open.
func (m *replicaManager) close() {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return
	}
	m.closed = true
	parts := make([]*replica, 0, len(m.parts))
	for _, r := range m.parts {
		parts = append(parts, r)
	}
	m.mu.Unlock()
	m.cancel()
	for _, r := range parts {
		r.stopFollowing()
	}
	m.wg.Wait()
}

// run checks the followers' lag (ISR shrink) every quarter of
// ReplicaLagTime until close.
func (m *replicaManager) run() {
	defer m.wg.Done()
	t := time.NewTicker(m.cfg.lagTime / 4)
	defer t.Stop()
	for {
		select {
		case <-m.ctx.Done():
			return
		case <-t.C:
		}
		m.mu.Lock()
		parts := make([]*replica, 0, len(m.parts))
		for _, r := range m.parts {
			parts = append(parts, r)
		}
		m.mu.Unlock()
		for _, r := range parts {
			r.maybeShrinkISR(time.Now())
		}
	}
}

// replica is this node's replica of one partition.
type replica struct {
	m      *replicaManager
	p      *Partition
	minISR int

	// mu guards the fields below.
	mu        sync.Mutex
	a         replicaAssignment
	followers map[NodeID]*followerState // leading: the other replicas
	isrBusy   bool                      // an ISR change request is in flight
	changed   chan struct{}             // closed (and replaced) at every metadata change
	fetchStop context.CancelFunc        // following: stops the fetcher
	fetchDone chan struct{}             // following: closed when the fetcher ends
}

// followerState is what the leader knows of a follower.
type followerState struct {
	end          int64     // its durable log end, -1 until it fetches
	lastCaughtUp time.Time // it last fetched from the leader's log end of then
	prevLEO      int64     // the leader's log end at its previous fetch
	prevFetch    time.Time // and when that was
}

func (r *replica) leading() bool { return r.a.Leader == r.m.self }

// update applies new metadata: a change of leader epoch makes this node
// lead or follow anew; within an epoch only the ISR changes.
func (r *replica) update(a replicaAssignment) {
	a.Replicas, a.ISR = slices.Clone(a.Replicas), slices.Clone(a.ISR)
	r.mu.Lock()
	if a.LeaderEpoch < r.a.LeaderEpoch || a.LeaderEpoch == r.a.LeaderEpoch && a.PartitionEpoch <= r.a.PartitionEpoch {
		r.mu.Unlock()
		return
	}
	newEpoch := a.LeaderEpoch != r.a.LeaderEpoch || a.Leader != r.a.Leader
	r.reassigned(r.a, a)
	r.a = a
	close(r.changed)
	r.changed = make(chan struct{})
	if !newEpoch {
		r.installGateLocked()
		r.mu.Unlock()
		r.maybeAdvanceHW()
		return
	}
	r.isrBusy = false
	r.mu.Unlock()

	// A new epoch: stop following whoever led before.
	r.stopFollowing()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.a.LeaderEpoch != a.LeaderEpoch { // a newer update came meanwhile
		return
	}
	switch {
	case r.leading():
		if err := r.p.assignEpoch(a.LeaderEpoch); err != nil {
			r.m.log.Error("cannot lead: leader-epoch cache", "topic", r.p.topic, "partition", r.p.id, "error", err)
			r.p.setGate(&replicaGate{self: r.m.self, epoch: a.LeaderEpoch, minISR: r.minISR, r: r})
			return
		}
		now := time.Now()
		leo, _ := r.p.logEnds()
		r.followers = make(map[NodeID]*followerState)
		for _, id := range a.Replicas {
			if id != r.m.self {
				r.followers[id] = &followerState{end: -1, lastCaughtUp: now, prevLEO: leo, prevFetch: now}
			}
		}
		r.installGateLocked()
		r.m.log.Info("leading", "topic", r.p.topic, "partition", r.p.id, "epoch", a.LeaderEpoch, "log_end", leo)
	default:
		r.followers = nil
		r.installGateLocked()
		if a.Leader != 0 && slices.Contains(a.Replicas, r.m.self) {
			r.startFollowingLocked(a.Leader, a.LeaderEpoch)
		}
	}
}

// installGateLocked gives the partition the gate of the current
// metadata. r.mu is held.
func (r *replica) installGateLocked() {
	r.p.setGate(&replicaGate{self: r.m.self, leader: r.a.Leader, epoch: r.a.LeaderEpoch,
		isr: len(r.a.ISR), minISR: r.minISR, r: r})
}

// stopFollowing stops the fetcher, if any, and waits for it.
func (r *replica) stopFollowing() {
	r.mu.Lock()
	stop, done := r.fetchStop, r.fetchDone
	r.fetchStop, r.fetchDone = nil, nil
	r.mu.Unlock()
	if stop != nil {
		stop()
		<-done
	}
}

// maybeAdvanceHW moves a leader's high watermark to the smallest durable
// log end over the ISR.
func (r *replica) maybeAdvanceHW() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.leading() {
		return
	}
	_, hw := r.p.logEnds()
	for _, id := range r.a.ISR {
		if id == r.m.self {
			continue
		}
		f := r.followers[id]
		if f == nil || f.end < 0 {
			return // not heard from yet: it may hold less than the high watermark's candidate
		}
		hw = min(hw, f.end)
	}
	r.p.raiseHW(hw)
}

// waitAcked is Partition.waitAcked on a replicated partition: it returns
// once the high watermark passes end, failing with ErrNotEnoughReplicas
// when the ISR is then below MinInSyncReplicas, and with ErrNotLeader
// when the node stops leading first.
func (r *replica) waitAcked(end int64) error {
	p := r.p
	g := p.gate.Load()
	if p.cfg.sync == SyncAlways {
		if err := p.syncTo(end); err != nil {
			return err
		}
	}
	r.maybeAdvanceHW()
	var timeout <-chan time.Time
	for {
		ch, err := p.hwChanged()
		if err != nil {
			return err
		}
		r.mu.Lock()
		a, changed := r.a, r.changed
		r.mu.Unlock()
		if a.Leader != r.m.self || a.LeaderEpoch != g.epoch {
			return p.errorf("records below offset %d not acknowledged: leader is now node %d (epoch %d): %w", end, a.Leader, a.LeaderEpoch, ErrNotLeader)
		}
		if p.hw.Load() >= end {
			if len(a.ISR) < r.minISR {
				return p.errorf("records below offset %d written but ISR of %d is below MinInSyncReplicas %d: %w", end, len(a.ISR), r.minISR, ErrNotEnoughReplicas)
			}
			return nil
		}
		if timeout == nil {
			t := time.NewTimer(r.m.cfg.ackTimeout)
			defer t.Stop()
			timeout = t.C
		}
		select {
		case <-ch:
		case <-changed:
		case <-timeout:
			// Kafka's REQUEST_TIMED_OUT: a leader cut off from its ISR
			// (and from the controller that would shrink it) cannot move
			// its high watermark; the records stay unacknowledged and a
			// new leader may drop them.
			return p.errorf("records below offset %d written but not replicated to the ISR %v within %v (high watermark %d): %w",
				end, a.ISR, r.m.cfg.ackTimeout, p.hw.Load(), ErrTimeout)
		case <-r.m.ctx.Done():
			return p.errorf("records below offset %d not acknowledged: %w", end, ErrClosed)
		}
	}
}

// maybeShrinkISR asks to drop from the ISR the followers that have not
// caught up for ReplicaLagTime.
func (r *replica) maybeShrinkISR(now time.Time) {
	r.mu.Lock()
	if !r.leading() || r.isrBusy {
		r.mu.Unlock()
		return
	}
	isr := r.a.ISR[:0:0]
	for _, id := range r.a.ISR {
		f := r.followers[id]
		if id != r.m.self && f != nil && now.Sub(f.lastCaughtUp) > r.m.cfg.lagTime {
			r.m.log.Info("follower out of sync", "topic", r.p.topic, "partition", r.p.id, "follower", id,
				"lag", now.Sub(f.lastCaughtUp), "end", f.end)
			continue
		}
		isr = append(isr, id)
	}
	if len(isr) == len(r.a.ISR) {
		r.mu.Unlock()
		return
	}
	r.requestISRLocked(isr)
	r.mu.Unlock()
}

// maybeExpandISR asks to add follower id to the ISR once its durable end
// reaches the high watermark and the start of this leader's epoch
// (Kafka's isFollowerInSync). r.mu is held.
func (r *replica) maybeExpandISRLocked(id NodeID, f *followerState) {
	if r.isrBusy || slices.Contains(r.a.ISR, id) {
		return
	}
	hw := r.p.HighWatermark()
	_, epochStart, err := r.epochStart()
	if err != nil || f.end < hw || f.end < epochStart {
		return
	}
	r.m.log.Info("follower caught up", "topic", r.p.topic, "partition", r.p.id, "follower", id, "end", f.end)
	isr := append(slices.Clone(r.a.ISR), id)
	r.requestISRLocked(isr)
}

// epochStart returns this leader's epoch and where it started in the log.
func (r *replica) epochStart() (int32, int64, error) {
	p := r.p
	p.mu.Lock()
	defer p.mu.Unlock()
	c, err := p.epochCacheLocked()
	if err != nil || len(c.entries) == 0 {
		return -1, 0, err
	}
	e := c.entries[len(c.entries)-1]
	return e.epoch, e.start, nil
}

// requestISRLocked sends an ISR change to the sink in the background;
// one at a time per partition. r.mu is held.
func (r *replica) requestISRLocked(isr []NodeID) {
	r.isrBusy = true
	c := isrChange{Topic: r.p.topic, Partition: r.p.id, Leader: r.m.self,
		LeaderEpoch: r.a.LeaderEpoch, PartitionEpoch: r.a.PartitionEpoch, ISR: isr}
	r.m.mu.Lock()
	closed := r.m.closed
	if !closed {
		r.m.wg.Add(1)
	}
	r.m.mu.Unlock()
	if closed {
		return
	}
	go func() {
		defer r.m.wg.Done()
		err := r.m.sink.alterISR(r.m.ctx, c)
		r.mu.Lock()
		if r.a.LeaderEpoch == c.LeaderEpoch {
			r.isrBusy = false
		}
		r.mu.Unlock()
		if err != nil {
			r.m.log.Warn("ISR change refused", "topic", c.Topic, "partition", c.Partition, "isr", c.ISR, "error", err)
		}
	}()
}

// waitAcked returns once the records below end may be acknowledged: they
// are below the high watermark. On one node under SyncAlways that is when
// they are fsynced; the other policies make them visible as they are
// written. On a replicated partition the replication layer decides
// (replica.waitAcked).
func (p *Partition) waitAcked(end int64) error {
	if g := p.gate.Load(); g != nil {
		return g.r.waitAcked(end)
	}
	if p.cfg.sync == SyncAlways {
		return p.syncTo(end)
	}
	return nil
}
