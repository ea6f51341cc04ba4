package stream

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/bbolt"
	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
)

// raftNode drives the metadata raft group for one node: etcd raft's
// RawNode in one goroutine (run), in the order raft's doc prescribes for
// each Ready: persist hard state, entries and snapshot in one bbolt
// transaction; send messages; apply the snapshot and the committed entries
// to the controller; advance. The controller and raft stay pure; the
// driver does the I/O at their edges.
//
// Time: every TickInterval the driver ticks raft; every MetaTickTicks raft
// ticks the raft leader proposes a metadata tick, and every node proposes
// its own heartbeat often enough to renew its lease (SessionTicks metadata
// ticks) three times over. Liveness is thus decided in the log, the same
// on every node.
type raftNode struct {
	cfg     raftNodeConfig
	log     *slog.Logger
	storage *raftStorage

	propc   chan *proposal
	recvc   chan raftpb.Message
	reportc chan peerReport
	stopc   chan struct{} // closed by close: run returns
	donec   chan struct{} // closed by run when it returns
	stop    sync.Once

	sendCtx    context.Context // cancelled on close: in-flight Calls end
	sendCancel context.CancelFunc
	senders    map[NodeID]chan raftpb.Message
	sendWG     sync.WaitGroup

	seq    atomic.Uint64
	leader atomic.Uint64 // the raft leader as last seen; 0 while none

	// mu guards sm, applied, notify, waiters and err. run is the only
	// writer of sm; readers take mu.
	mu      sync.Mutex
	sm      *controller
	applied uint64        // the raft index sm reflects
	movedAt time.Time     // when applied last moved (cluster_group.go's staleness check)
	notify  chan struct{} // closed and replaced whenever applied moves
	waiters map[uint64]chan applied
	err     error // why run stopped, sticky; ErrClosed after close

	// Owned by run.
	rn        *raft.RawNode
	confState raftpb.ConfState
	snapIndex uint64
	ticks     int
	nextBeat  int                  // the raft tick at which to heartbeat next
	inflight  map[uint64]*proposal // waited proposals not applied yet, by Seq
}

// raftNodeConfig configures a raftNode; zero fields take defaults.
type raftNodeConfig struct {
	ID    NodeID
	Peers []NodeID
	// Messenger carries raft messages as kindRaft requests: the node
	// registers its handler on it; serving it is the owner's job.
	Messenger *messenger
	DB        *bbolt.DB // meta.db; the raft state lives in its raft buckets

	TickInterval    time.Duration // raft tick; default 100ms
	ElectionTicks   int           // default 10
	HeartbeatTicks  int           // default 1
	MetaTickTicks   int           // raft ticks per metadata tick; default 10
	SessionTicks    int64         // metadata ticks a node's lease lasts; default 9
	SnapshotEntries uint64        // applied entries between snapshots; default 1000
	RequestTimeout  time.Duration // bounds propose; default 30s
	Logger          *slog.Logger

	// OnApply, when set, is called on the driver's goroutine after each
	// applied command that had effects, in log order, and with a single
	// effectReset when the driver starts and after it installs a snapshot.
	// It must not block or wait for a proposal: hand the effects to
	// another goroutine. It may read the state through read.
	OnApply func(index uint64, effects []effect)
}

func (c raftNodeConfig) withDefaults() (raftNodeConfig, error) {
	if c.ID <= 0 {
		return c, configError("Cluster.NodeID", c.ID)
	}
	found := false
	seen := map[NodeID]bool{}
	for _, p := range c.Peers {
		if p <= 0 || seen[p] {
			return c, configError("Cluster.Peers", c.Peers)
		}
		seen[p] = true
		found = found || p == c.ID
	}
	if !found {
		return c, fmt.Errorf("%w: Cluster.Peers %v does not list Cluster.NodeID %d", ErrInvalidConfig, c.Peers, c.ID)
	}
	if c.Messenger == nil {
		return c, configError("Cluster.Transport", nil)
	}
	setDefault(&c.TickInterval, 100*time.Millisecond)
	setDefault(&c.ElectionTicks, 10)
	setDefault(&c.HeartbeatTicks, 1)
	setDefault(&c.MetaTickTicks, 10)
	setDefault(&c.SessionTicks, 9)
	setDefault(&c.SnapshotEntries, 1000)
	setDefault(&c.RequestTimeout, 30*time.Second)
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.HeartbeatTicks >= c.ElectionTicks {
		return c, configError("HeartbeatTicks", c.HeartbeatTicks)
	}
	return c, nil
}

func setDefault[T comparable](p *T, v T) {
	var zero T
	if *p == zero {
		*p = v
	}
}

// proposal is a command on its way into the log. Raft may lose it (a
// follower forwards it to a leader that dies, or there is no leader), so
// run proposes it again every election timeout and on every change of
// leader until it applies or its caller gives up; the controller applies
// each Seq once.
type proposal struct {
	ctx     context.Context
	data    []byte
	seq     uint64
	retryAt int // the raft tick at which to propose it again
}

// peerReport tells run what became of a send.
type peerReport struct {
	to       NodeID
	snapshot bool // a MsgSnap was sent (or failed)
	failed   bool
}

// newRaftNode opens the raft state in cfg.DB, restores the controller
// from its snapshot and starts the driver. Entries committed after the
// snapshot are applied again as raft hands them back.
func newRaftNode(cfg raftNodeConfig) (*raftNode, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	storage, err := openRaftStorage(cfg.DB, cfg.Peers)
	if err != nil {
		return nil, err
	}
	n := &raftNode{
		cfg:     cfg,
		log:     cfg.Logger.With("node", cfg.ID),
		storage: storage,
		propc:   make(chan *proposal),
		recvc:   make(chan raftpb.Message, 256),
		reportc: make(chan peerReport, 64),
		stopc:   make(chan struct{}),
		donec:   make(chan struct{}),
		senders: map[NodeID]chan raftpb.Message{},
		sm:      newController(),
		notify:  make(chan struct{}),
		waiters: map[uint64]chan applied{},

		inflight: map[uint64]*proposal{},
	}
	snap, err := storage.Snapshot()
	if err != nil {
		return nil, err
	}
	if err := n.sm.restore(snap.Data); err != nil {
		return nil, err
	}
	n.applied, n.snapIndex = snap.Metadata.Index, snap.Metadata.Index
	_, n.confState, _ = storage.InitialState()
	n.rn, err = raft.NewRawNode(&raft.Config{
		ID:                        uint64(cfg.ID),
		ElectionTick:              cfg.ElectionTicks,
		HeartbeatTick:             cfg.HeartbeatTicks,
		Storage:                   storage,
		Applied:                   snap.Metadata.Index,
		MaxSizePerMsg:             1 << 20,
		MaxCommittedSizePerReady:  4 << 20,
		MaxUncommittedEntriesSize: 64 << 20,
		MaxInflightMsgs:           256,
		CheckQuorum:               true, // a leader cut off from the majority steps down
		PreVote:                   true, // a node back from a partition does not depose a healthy leader
		Logger:                    raftLogger{n.log},
	})
	if err != nil {
		return nil, errorf("stream: cluster: start raft: %w", err)
	}
	// Senders go to the voters raft knows, which Peers only seeds: on a
	// restart the stored configuration wins.
	n.sendCtx, n.sendCancel = context.WithCancel(context.Background())
	for _, v := range n.confState.Voters {
		p := NodeID(v)
		if p == cfg.ID {
			continue
		}
		q := make(chan raftpb.Message, 1024)
		n.senders[p] = q
		n.sendWG.Add(1)
		go n.sendLoop(p, q)
	}
	cfg.Messenger.handle(kindRaft, n.handle)
	go n.run()
	return n, nil
}

// close stops the driver and its senders and waits for them. It returns
// the error that stopped the driver earlier, if one did.
func (n *raftNode) close() error {
	n.stop.Do(func() { close(n.stopc) })
	<-n.donec
	n.sendCancel()
	n.sendWG.Wait()
	n.mu.Lock()
	defer n.mu.Unlock()
	if errors.Is(n.err, ErrClosed) {
		return nil
	}
	return n.err
}

// run is the driver: the only goroutine that touches rn.
func (n *raftNode) run() {
	err := n.loop()
	n.mu.Lock()
	if err == nil {
		err = errorf("stream: cluster node %d: %w", n.cfg.ID, ErrClosed)
	} else {
		n.log.Error("cluster metadata driver stopped", "err", err)
	}
	n.err = err
	n.mu.Unlock()
	close(n.donec)
}

func (n *raftNode) loop() error {
	ticker := time.NewTicker(n.cfg.TickInterval)
	defer ticker.Stop()
	n.reset()
	for {
		select {
		case <-n.stopc:
			return nil
		case <-ticker.C:
			n.tick()
		case p := <-n.propc:
			n.propose(p)
		case m := <-n.recvc:
			if err := n.step(m); err != nil {
				return err
			}
		case r := <-n.reportc:
			if r.failed {
				n.rn.ReportUnreachable(uint64(r.to))
			}
			if r.snapshot {
				status := raft.SnapshotFinish
				if r.failed {
					status = raft.SnapshotFailure
				}
				n.rn.ReportSnapshot(uint64(r.to), status)
			}
		}
		if err := n.drain(); err != nil {
			return err
		}
		if err := n.ready(); err != nil {
			return err
		}
	}
}

// drain steps the messages and proposals that have arrived meanwhile (a
// bounded number), so that one Ready, one fsync, covers them all.
func (n *raftNode) drain() error {
	for range 256 {
		select {
		case m := <-n.recvc:
			if err := n.step(m); err != nil {
				return err
			}
		case p := <-n.propc:
			n.propose(p)
		default:
			return nil
		}
	}
	return nil
}

// step hands raft a peer's message; raft's refusals are logged. Raft
// panics on a message that contradicts its durable state (a commit index
// past its log, say): a corrupt or hostile peer. That stops this node's
// driver with ErrCorrupt, its persisted state intact, rather than the
// host process.
func (n *raftNode) step(m raftpb.Message) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = errorf("stream: cluster: raft message %s from node %d: %v: %w", m.Type, m.From, r, ErrCorrupt)
		}
	}()
	if err := n.rn.Step(m); err != nil {
		n.log.Debug("raft step", "from", m.From, "type", m.Type, "err", err)
	}
	return nil
}

func (n *raftNode) tick() {
	n.rn.Tick()
	n.ticks++
	leader := n.rn.BasicStatus().RaftState == raft.StateLeader
	if leader && n.ticks%n.cfg.MetaTickTicks == 0 {
		n.proposeInternal(&command{Tick: &cmdTick{}})
	}
	if n.ticks >= n.nextBeat && n.leader.Load() != 0 {
		hb := &command{Heartbeat: &cmdHeartbeat{Node: n.cfg.ID, Session: n.cfg.SessionTicks, Time: time.Now().UnixNano(), Boot: n.storage.boot}}
		if n.proposeInternal(hb) {
			every := max(1, int(n.cfg.SessionTicks)/3) * n.cfg.MetaTickTicks
			if !n.sm.alive(n.cfg.ID) {
				every = min(every, n.cfg.ElectionTicks) // not registered yet: try again soon
			}
			n.nextBeat = n.ticks + every
		}
	}
	for seq, p := range n.inflight {
		if p.ctx.Err() != nil {
			delete(n.inflight, seq)
		} else if n.ticks >= p.retryAt {
			n.propose(p)
		}
	}
}

// proposeInternal proposes a command of the driver's own, unwaited.
func (n *raftNode) proposeInternal(cmd *command) bool {
	data, err := encodeCommand(cmd)
	if err != nil {
		return false
	}
	return n.rn.Propose(data) == nil
}

func (n *raftNode) propose(p *proposal) {
	n.inflight[p.seq] = p
	p.retryAt = n.ticks + n.cfg.ElectionTicks
	if err := n.rn.Propose(p.data); errors.Is(err, raft.ErrProposalDropped) {
		p.retryAt = n.ticks + 1 // no leader yet: try again on the next tick
	} else if err != nil {
		n.log.Warn("raft propose", "err", err)
	}
}

// ready handles one Ready, if raft has one.
func (n *raftNode) ready() error {
	if !n.rn.HasReady() {
		return nil
	}
	rd := n.rn.Ready()
	if rd.SoftState != nil {
		if old := n.leader.Swap(rd.SoftState.Lead); old != rd.SoftState.Lead {
			n.log.Info("cluster controller", "leader", rd.SoftState.Lead, "term", n.rn.BasicStatus().Term)
			for _, p := range n.inflight {
				p.retryAt = n.ticks // the old leader may have lost them
			}
		}
	}
	if err := n.storage.save(rd.HardState, rd.Entries, rd.Snapshot); err != nil {
		return err
	}
	for _, m := range rd.Messages {
		n.send(m)
	}
	if !raft.IsEmptySnap(rd.Snapshot) {
		if err := n.applySnapshot(rd.Snapshot); err != nil {
			return err
		}
		n.reset()
	}
	for _, e := range rd.CommittedEntries {
		n.applyEntry(e)
	}
	n.rn.Advance(rd)
	return n.maybeSnapshot()
}

func (n *raftNode) applySnapshot(snap raftpb.Snapshot) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if err := n.sm.restore(snap.Data); err != nil {
		return err
	}
	n.confState = snap.Metadata.ConfState
	n.snapIndex = snap.Metadata.Index
	n.setAppliedLocked(snap.Metadata.Index)
	// Proposals of ours that the snapshot covers applied while this node
	// lagged: their outcome is not in the snapshot, and retrying them
	// would be refused as duplicates. Their callers learn that much.
	if pm := n.sm.st.Proposers[n.cfg.ID]; pm != nil && pm.Boot == n.storage.boot {
		for seq := range n.inflight {
			if seq <= pm.Floor || pm.Seqs[seq] {
				delete(n.inflight, seq)
				if w, ok := n.waiters[seq]; ok {
					w <- applied{err: errorf("stream: cluster metadata change applied while this node lagged; its outcome is unknown here: %w", ErrTimeout)}
					delete(n.waiters, seq)
				}
			}
		}
	}
	return nil
}

// reset tells OnApply the whole state is new.
func (n *raftNode) reset() {
	if n.cfg.OnApply != nil {
		n.mu.Lock()
		applied := n.applied
		n.mu.Unlock()
		n.cfg.OnApply(applied, []effect{{Kind: effectReset}})
	}
}

func (n *raftNode) setAppliedLocked(i uint64) {
	n.applied, n.movedAt = i, time.Now()
	close(n.notify)
	n.notify = make(chan struct{})
}

func (n *raftNode) applyEntry(e raftpb.Entry) {
	var out applied
	var cmd *command
	switch e.Type {
	case raftpb.EntryNormal:
		if len(e.Data) == 0 {
			break // a new leader's empty entry
		}
		n.mu.Lock()
		cmd, out = n.sm.applyEntry(e.Data)
		n.mu.Unlock()
	case raftpb.EntryConfChange, raftpb.EntryConfChangeV2:
		// Membership changes are not proposed yet; apply one all the same
		// so that raft's configuration stays right.
		var cc raftpb.ConfChangeI
		if e.Type == raftpb.EntryConfChange {
			var c raftpb.ConfChange
			if err := c.Unmarshal(e.Data); err == nil {
				cc = c
			}
		} else {
			var c raftpb.ConfChangeV2
			if err := c.Unmarshal(e.Data); err == nil {
				cc = c
			}
		}
		if cc != nil {
			n.confState = *n.rn.ApplyConfChange(cc)
		}
	}
	n.mu.Lock()
	n.setAppliedLocked(e.Index)
	if cmd != nil && cmd.Origin == n.cfg.ID && cmd.Boot == n.storage.boot && !errors.Is(out.err, errDuplicateProposal) {
		delete(n.inflight, cmd.Seq)
		if w, ok := n.waiters[cmd.Seq]; ok {
			w <- out // buffered: never blocks
			delete(n.waiters, cmd.Seq)
		}
	}
	n.mu.Unlock()
	if out.err != nil && cmd != nil && cmd.Origin == n.cfg.ID {
		n.log.Debug("metadata command rejected", "index", e.Index, "err", out.err)
	}
	if len(out.effects) > 0 && n.cfg.OnApply != nil {
		n.cfg.OnApply(e.Index, out.effects)
	}
}

// maybeSnapshot snapshots the controller every SnapshotEntries applied
// entries and compacts the log behind it, keeping a tail so that a
// follower a little behind catches up from entries, not a snapshot.
func (n *raftNode) maybeSnapshot() error {
	n.mu.Lock()
	applied := n.applied
	if applied-n.snapIndex < n.cfg.SnapshotEntries {
		n.mu.Unlock()
		return nil
	}
	data, err := n.sm.snapshot()
	n.mu.Unlock()
	if err != nil {
		return err
	}
	if _, err := n.storage.CreateSnapshot(applied, &n.confState, data); err != nil {
		return err
	}
	n.snapIndex = applied
	keep := n.cfg.SnapshotEntries / 4
	if applied > keep {
		if err := n.storage.Compact(applied - keep); err != nil && !errors.Is(err, raft.ErrCompacted) {
			return err
		}
	}
	return nil
}

// send queues m for its peer's sender; a full queue drops it, which raft
// tolerates (it retries), except that a dropped snapshot must be reported.
func (n *raftNode) send(m raftpb.Message) {
	q, ok := n.senders[NodeID(m.To)]
	if !ok {
		return
	}
	select {
	case q <- m:
	default:
		n.rn.ReportUnreachable(m.To)
		if m.Type == raftpb.MsgSnap {
			n.rn.ReportSnapshot(m.To, raft.SnapshotFailure)
		}
	}
}

// sendLoop sends to one peer, in order, batching what has queued up into
// one Call. Each Call is bounded by an election timeout, so a dead peer
// costs a bounded wait, and by sendCtx, so close does not wait for it.
func (n *raftNode) sendLoop(to NodeID, q chan raftpb.Message) {
	defer n.sendWG.Done()
	for {
		var batch []raftpb.Message
		select {
		case <-n.sendCtx.Done():
			return
		case m := <-q:
			batch = append(batch, m)
		}
	drain:
		for len(batch) < 64 {
			select {
			case m := <-q:
				batch = append(batch, m)
			default:
				break drain
			}
		}
		payload, err := encodeRaftMessages(batch)
		if err == nil {
			ctx, cancel := context.WithTimeout(n.sendCtx, time.Duration(n.cfg.ElectionTicks)*n.cfg.TickInterval)
			_, err = n.cfg.Messenger.call(ctx, to, kindRaft, payload)
			cancel()
		}
		if err != nil && n.sendCtx.Err() == nil {
			n.log.Debug("raft send", "to", to, "messages", len(batch), "err", err)
		}
		snapshot := false
		for _, m := range batch {
			snapshot = snapshot || m.Type == raftpb.MsgSnap
		}
		if err != nil || snapshot {
			select {
			case n.reportc <- peerReport{to: to, snapshot: snapshot, failed: err != nil}:
			case <-n.sendCtx.Done():
				return
			}
		}
	}
}

// handle takes a kindRaft request from a peer.
func (n *raftNode) handle(ctx context.Context, e envelope) ([]byte, error) {
	msgs, err := decodeRaftMessages(e.Payload)
	if err != nil {
		n.log.Warn("bad raft request", "from", e.From, "err", err)
		return nil, err
	}
	for _, m := range msgs {
		if NodeID(m.From) != e.From || NodeID(m.To) != n.cfg.ID {
			n.log.Warn("misaddressed raft message", "sender", e.From, "from", m.From, "to", m.To)
			return nil, errorf("stream: raft message from %d to %d sent by node %d to node %d: %w", m.From, m.To, e.From, n.cfg.ID, ErrBadRequest)
		}
		select {
		case n.recvc <- m:
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-n.donec:
			return nil, errorf("stream: cluster node %d: %w", n.cfg.ID, ErrClosed)
		}
	}
	return nil, nil
}

func encodeRaftMessages(msgs []raftpb.Message) ([]byte, error) {
	var b []byte
	for _, m := range msgs {
		data, err := m.Marshal()
		if err != nil {
			return nil, err
		}
		b = binary.AppendUvarint(b, uint64(len(data)))
		b = append(b, data...)
	}
	return b, nil
}

func decodeRaftMessages(b []byte) ([]raftpb.Message, error) {
	var msgs []raftpb.Message
	for rest := b; len(rest) > 0; {
		size, k := binary.Uvarint(rest)
		if k <= 0 || size > uint64(len(rest)-k) {
			return nil, errorf("stream: raft request: truncated message: %w", ErrBadRequest)
		}
		var m raftpb.Message
		if err := m.Unmarshal(rest[k : k+int(size)]); err != nil {
			return nil, errorf("stream: raft request: %v: %w", err, ErrBadRequest)
		}
		msgs = append(msgs, m)
		rest = rest[k+int(size):]
	}
	return msgs, nil
}

// proposeWait proposes cmd and waits until it is applied here, returning
// its outcome. It gives up when ctx ends or RequestTimeout passes, with
// ErrTimeout (or ctx's error); the command may still apply later.
func (n *raftNode) proposeWait(ctx context.Context, cmd *command) (applied, error) {
	seq := n.seq.Add(1)
	c := *cmd
	c.Origin, c.Boot, c.Seq = n.cfg.ID, n.storage.boot, seq
	data, err := encodeCommand(&c)
	if err != nil {
		return applied{}, errorf("stream: cluster: encode command: %w", err)
	}
	ch := make(chan applied, 1)
	n.mu.Lock()
	if n.err != nil {
		err := n.err
		n.mu.Unlock()
		return applied{}, err
	}
	n.waiters[seq] = ch
	n.mu.Unlock()
	defer func() {
		n.mu.Lock()
		delete(n.waiters, seq)
		n.mu.Unlock()
	}()
	ctx, cancel := context.WithTimeout(ctx, n.cfg.RequestTimeout)
	defer cancel()
	select {
	case n.propc <- &proposal{ctx: ctx, data: data, seq: seq}:
	case <-ctx.Done():
		return applied{}, n.ctxErr(ctx)
	case <-n.donec:
		return applied{}, n.stoppedErr()
	}
	select {
	case out := <-ch:
		return out, out.err
	case <-ctx.Done():
		return applied{}, n.ctxErr(ctx)
	case <-n.donec:
		return applied{}, n.stoppedErr()
	}
}

func (n *raftNode) ctxErr(ctx context.Context) error {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return errorf("stream: cluster metadata change not applied in time (no quorum?): %w", ErrTimeout)
	}
	return errorf("stream: cluster metadata change: %w", ctx.Err())
}

func (n *raftNode) stoppedErr() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.err
}

// barrier returns once this node has applied everything committed when it
// was called: a proposal of nothing, waited for. Reads after it are
// linearizable.
func (n *raftNode) barrier(ctx context.Context) error {
	_, err := n.proposeWait(ctx, &command{Noop: &struct{}{}})
	return err
}

// read calls f with the applied state, under mu. f must not keep
// references into it.
func (n *raftNode) read(f func(c *controller, applied uint64)) {
	n.mu.Lock()
	defer n.mu.Unlock()
	f(n.sm, n.applied)
}

// raftLogger sends raft's log to slog; Fatal and Panic panic, as raft
// expects them not to return.
type raftLogger struct{ l *slog.Logger }

func (r raftLogger) Debug(v ...any)                 { r.l.Debug(fmt.Sprint(v...)) }
func (r raftLogger) Debugf(format string, v ...any) { r.l.Debug(fmt.Sprintf(format, v...)) }
func (r raftLogger) Info(v ...any)                  { r.l.Debug(fmt.Sprint(v...)) }
func (r raftLogger) Infof(format string, v ...any)  { r.l.Debug(fmt.Sprintf(format, v...)) }
func (r raftLogger) Warning(v ...any)               { r.l.Warn(fmt.Sprint(v...)) }
func (r raftLogger) Warningf(format string, v ...any) {
	r.l.Warn(fmt.Sprintf(format, v...))
}
func (r raftLogger) Error(v ...any)                 { r.l.Error(fmt.Sprint(v...)) }
func (r raftLogger) Errorf(format string, v ...any) { r.l.Error(fmt.Sprintf(format, v...)) }
func (r raftLogger) Fatal(v ...any)                 { panic(fmt.Sprint(v...)) }
func (r raftLogger) Fatalf(format string, v ...any) { panic(fmt.Sprintf(format, v...)) }
func (r raftLogger) Panic(v ...any)                 { panic(fmt.Sprint(v...)) }
func (r raftLogger) Panicf(format string, v ...any) { panic(fmt.Sprintf(format, v...)) }
