package stream

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"
)

// Consumer groups on a cluster: a group spans nodes, its membership,
// assignment, ownership and committed offsets in the metadata raft group
// (controller_group.go), so that every node answers for it and it
// survives losing any minority of nodes, the controller included.
//
// Why through raft, not a coordinator node: the state must be in raft
// anyway for failover, and with it there the log already orders every
// change; a coordinator would be a second state machine to keep in step
// with it, and a second failover to get right. The cost is a raft commit
// per change (a join, a release, a commit); reads (a member's Poll
// checking what it owns) are local reads of the applied state. The
// metadata tick makes it deterministic: nothing in the controller reads
// a clock.
//
// Liveness has two levels. A member lives on one node, which judges it
// as a single node does (SessionTimeout from its heartbeats,
// MaxPollInterval from its Polls) and proposes its leave when it fails
// either. A node that dies takes its members with it (the controller's
// lease, SessionTimeout of the cluster); a node that restarts drops its
// earlier incarnation's members at its first heartbeat.
//
// The protocol is Kafka's eager one, with ownership in the log: at a new
// generation every member commits and releases what it owns, the leader
// member proposes the assignment (its Assignor runs on its node), and
// once the generation is synced and nobody owns anything, every member
// owns its part. A commit is fenced by ownership, so a member that lost
// a partition cannot move its offset, and the next owner starts where the
// last one committed.
//
// Not on a cluster (yet): static membership (InstanceID is ignored: the
// member is dynamic), InitialRebalanceDelay, and incremental cooperative
// rebalancing (CooperativeStickyAssignor's assignment is used, but every
// member revokes everything at each generation, as with the eager
// assignors).

// clusterGroup is a ConsumerGroup's cluster side.
type clusterGroup struct {
	g *ConsumerGroup
	n *clusterNode
	// local are the group's members on this node; guarded by g.mu.
	local map[string]*clusterMember
}

// clusterMember is a member on this node.
type clusterMember struct {
	c                      *Consumer
	deadline, pollDeadline time.Time
	polling                bool
	maxPoll                time.Duration
	held                   map[TopicPartition]bool // what the consumer holds (acquired, not released)
}

// groupView is what a member reads of its group from the applied
// metadata.
type groupView struct {
	exists           bool
	generation       int64
	leader           string
	synced, assigned int64
	member           *groupMemberMeta // a copy; nil: not a member
	members          []GroupMember    // leader's input: every member, with what it owns
	partitions       map[string]int32 // of the members' topics
	memberIDs        []string
}

// view reads group's state; member "" reads no member.
func (c *Cluster) groupView(group, member string, full bool) groupView {
	var v groupView
	c.node.read(func(sm *controller, _ uint64) {
		g, ok := sm.st.Groups[group]
		if !ok {
			return
		}
		v.exists = true
		v.generation, v.leader, v.synced, v.assigned = g.Generation, g.Leader, g.Synced, g.Assigned
		v.memberIDs = orderedKeys(g.Members)
		if m, ok := g.Members[member]; ok {
			mc := *m
			mc.Owned = slices.Clone(m.Owned)
			v.member = &mc
		}
		if !full {
			return
		}
		v.partitions = map[string]int32{}
		for _, id := range v.memberIDs {
			m := g.Members[id]
			v.members = append(v.members, GroupMember{ID: id, Topics: slices.Clone(m.Topics), Owned: slices.Clone(m.Owned)})
			for _, topic := range m.Topics {
				if t, ok := sm.st.Topics[topic]; ok {
					v.partitions[topic] = int32(len(t.Partitions))
				}
			}
		}
	})
	return v
}

// groupChanged returns a channel closed at the next change to group (or
// to the whole metadata).
func (n *clusterNode) groupChanged(group string) <-chan struct{} {
	n.groupMu.Lock()
	defer n.groupMu.Unlock()
	if n.groupCh == nil {
		n.groupCh = map[string]chan struct{}{}
	}
	ch := n.groupCh[group]
	if ch == nil {
		ch = make(chan struct{})
		n.groupCh[group] = ch
	}
	return ch
}

// notifyGroups runs on the raft driver's goroutine (onApply): it wakes
// the members of the groups that changed.
func (n *clusterNode) notifyGroups(effects []effect) {
	n.groupMu.Lock()
	defer n.groupMu.Unlock()
	for _, e := range effects {
		switch e.Kind {
		case effectGroup:
			if ch := n.groupCh[e.Group]; ch != nil {
				close(ch)
				delete(n.groupCh, e.Group)
			}
		case effectReset:
			for name, ch := range n.groupCh {
				close(ch)
				delete(n.groupCh, name)
			}
		}
	}
}

func newClusterGroup(g *ConsumerGroup, n *clusterNode) *clusterGroup {
	return &clusterGroup{g: g, n: n, local: map[string]*clusterMember{}}
}

// op bounds a group operation by RequestTimeout.
func (cg *clusterGroup) op() (context.Context, context.CancelFunc) {
	return cg.n.clusterOp()
}

// join adds c to the group: a proposal, then c gets its member ID. A
// Close that began meanwhile makes it leave again.
func (cg *clusterGroup) join(c *Consumer) error {
	g := cg.g
	g.mu.Lock()
	if g.closed {
		g.mu.Unlock()
		return errorf("stream: group %s: %w", g.id, ErrClosed)
	}
	if len(g.cfg.Topics) == 0 {
		g.mu.Unlock()
		return errorf("stream: join group %s: %w: GroupConfig.Topics is empty", g.id, ErrInvalidConfig)
	}
	g.nextID++
	boot := cg.n.cluster.node.storage.boot
	id := fmt.Sprintf("consumer-n%d-b%d-%d", cg.n.cfg.NodeID, boot, g.nextID)
	topics := slices.Clone(g.cfg.Topics)
	g.mu.Unlock()

	ctx, cancel := cg.op()
	defer cancel()
	if _, err := cg.n.cluster.propose(ctx, &command{JoinGroup: &cmdJoinGroup{Group: g.id, Member: id, Node: cg.n.cfg.NodeID, Topics: topics, Boot: boot}}); err != nil {
		return errorf("stream: join group %s: %w", g.id, err)
	}
	g.mu.Lock()
	c.mu.Lock()
	closed := c.closed || g.closed
	if !closed {
		c.memberID = id
		now := time.Now()
		cg.local[id] = &clusterMember{c: c, maxPoll: c.cfg.MaxPollInterval, held: map[TopicPartition]bool{},
			deadline: now.Add(g.cfg.SessionTimeout), pollDeadline: now.Add(c.cfg.MaxPollInterval)}
		g.wakeLocked(now.Add(min(g.cfg.SessionTimeout, c.cfg.MaxPollInterval)))
	}
	c.mu.Unlock()
	g.mu.Unlock()
	if closed {
		cg.leaveGroup(id)
		return errorf("stream: join group %s: consumer: %w", g.id, ErrClosed)
	}
	g.log.Info("member joined", "member", id, "node", cg.n.cfg.NodeID)
	return nil
}

// propose proposes cmd, logging a failure other than the member or
// group being gone.
func (cg *clusterGroup) propose(what string, cmd *command) error {
	ctx, cancel := cg.op()
	defer cancel()
	_, err := cg.n.cluster.propose(ctx, cmd)
	if err != nil && !errors.Is(err, ErrFenced) && !errors.Is(err, ErrUnknownGroup) {
		cg.g.log.Warn("group "+what+" failed", "error", oneLine(err))
	}
	return err
}

// leaveGroup proposes member id's leave, waiting a SessionTimeout at
// most: without a quorum, this node's lease runs out meanwhile and its
// members leave with it.
func (cg *clusterGroup) leaveGroup(id string) {
	ctx, cancel := context.WithTimeout(context.Background(), cg.n.cfg.SessionTimeout)
	defer cancel()
	_, err := cg.n.cluster.propose(ctx, &command{LeaveGroup: &cmdLeaveGroup{Group: cg.g.id, Member: id}})
	if err != nil && !errors.Is(err, ErrUnknownGroup) {
		cg.g.log.Warn("group leave failed; the member leaves when this node's lease runs out", "member", id, "error", oneLine(err))
	}
}

// leave handles Close: the member leaves the group.
func (cg *clusterGroup) leave(id string) {
	g := cg.g
	g.mu.Lock()
	_, ok := cg.local[id]
	delete(cg.local, id)
	g.mu.Unlock()
	if ok {
		cg.leaveGroup(id)
	}
}

// heartbeat is a member's look at the group at Poll: evicted (lost), a
// generation to revoke for, the assignment to propose as leader, an
// empty-handed release to make.
func (cg *clusterGroup) heartbeat(c *Consumer, id string) (heartbeatResult, error) {
	g := cg.g
	res := heartbeatResult{changed: cg.n.groupChanged(g.id)}
	v := cg.n.cluster.groupView(g.id, id, false)
	g.mu.Lock()
	if g.closed {
		g.mu.Unlock()
		return res, errorf("stream: group %s: %w", g.id, ErrClosed)
	}
	lm := cg.local[id]
	if lm == nil || v.member == nil || cg.n.metadataStale() {
		if lm != nil {
			delete(cg.local, id)
		}
		g.mu.Unlock()
		res.lost = true
		return res, nil
	}
	lm.polling = true
	lm.deadline = time.Now().Add(g.cfg.SessionTimeout)
	held := len(lm.held)
	res.gen = v.generation
	pending := v.assigned < v.generation
	if pending {
		res.revoke = sortedKeys(lm.held)
	}
	res.noTopics = cg.noTopics()
	g.mu.Unlock()

	if pending && v.leader == id && v.synced < v.generation {
		cg.sync(id, v.generation)
	}
	if pending && held == 0 && len(v.member.Owned) > 0 {
		cg.propose("release", &command{ReleaseGroup: &cmdReleaseGroup{Group: g.id, Member: id, Generation: v.generation}})
	}
	return res, nil
}

// noTopics reports whether every topic of the group is gone.
func (cg *clusterGroup) noTopics() bool {
	return len(cg.g.partitionCounts()) == 0
}

// sync computes the generation's assignment with the group's Assignor,
// as its leader, and proposes it.
func (cg *clusterGroup) sync(id string, gen int64) {
	v := cg.n.cluster.groupView(cg.g.id, id, true)
	if v.generation != gen || v.leader != id {
		return
	}
	assignment := cg.g.cfg.Assignor.Assign(v.members, v.partitions)
	cg.propose("sync", &command{SyncGroup: &cmdSyncGroup{Group: cg.g.id, Member: id, Generation: gen, Assignments: assignment}})
}

// release notes that member id gave up tps; gen > 0: in answer to
// generation gen, which, once it holds nothing, it tells the group.
func (cg *clusterGroup) release(id string, tps []TopicPartition, gen int64) {
	g := cg.g
	g.mu.Lock()
	lm := cg.local[id]
	if lm == nil {
		g.mu.Unlock()
		return
	}
	for _, tp := range tps {
		delete(lm.held, tp)
	}
	empty := len(lm.held) == 0
	g.mu.Unlock()
	if empty && gen > 0 {
		cg.propose("release", &command{ReleaseGroup: &cmdReleaseGroup{Group: g.id, Member: id, Generation: gen}})
	}
}

// acquire returns what the group handed member id that it does not hold
// yet.
func (cg *clusterGroup) acquire(id string) []TopicPartition {
	g := cg.g
	v := cg.n.cluster.groupView(g.id, id, false)
	if v.member == nil || v.assigned < v.generation {
		return nil
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	lm := cg.local[id]
	if lm == nil {
		return nil
	}
	var added []TopicPartition
	for _, tp := range v.member.Owned {
		if !lm.held[tp] {
			lm.held[tp] = true
			added = append(added, tp)
		}
	}
	return added
}

// commit commits offs for member id: a proposal fenced by ownership.
func (cg *clusterGroup) commit(id string, offs map[TopicPartition]OffsetAndMetadata, implicit bool) error {
	g := cg.g
	g.mu.Lock()
	closed, lm := g.closed, cg.local[id]
	g.mu.Unlock()
	if closed {
		return errorf("stream: group %s: commit: %w", g.id, ErrClosed)
	}
	if lm == nil {
		return errorf("stream: group %s: commit by member %s, which was evicted or left: %w", g.id, id, ErrFenced)
	}
	if len(offs) == 0 {
		return nil
	}
	ctx, cancel := cg.op()
	defer cancel()
	if _, err := cg.n.cluster.propose(ctx, &command{CommitOffsets: commitCommand(g.id, id, offs, implicit)}); err != nil {
		return errorf("stream: group %s: commit: %w", g.id, err)
	}
	return nil
}

func commitCommand(group, member string, offs map[TopicPartition]OffsetAndMetadata, implicit bool) *cmdCommitOffsets {
	co := &cmdCommitOffsets{Group: group, Member: member, ByOwner: member != "", Implicit: implicit,
		Offsets: map[string]map[int32]committedMeta{}}
	for tp, o := range offs {
		if co.Offsets[tp.Topic] == nil {
			co.Offsets[tp.Topic] = map[int32]committedMeta{}
		}
		co.Offsets[tp.Topic][tp.Partition] = committedMeta{Offset: o.Offset, Metadata: o.Metadata}
	}
	return co
}

// writeOffsets is ResetOffsets' commit: a member-less one, refused by the
// controller while the group has members.
func (cg *clusterGroup) writeOffsets(offs map[TopicPartition]OffsetAndMetadata) error {
	ctx, cancel := cg.op()
	defer cancel()
	if _, err := cg.n.cluster.propose(ctx, &command{CommitOffsets: commitCommand(cg.g.id, "", offs, false)}); err != nil {
		return errorf("stream: group %s: reset offsets: %w", cg.g.id, err)
	}
	return nil
}

// committed returns the group's committed offsets as this node has
// applied them; none for a group the cluster does not know yet.
func (cg *clusterGroup) committed() (map[TopicPartition]OffsetAndMetadata, error) {
	out, err := cg.n.cluster.committed(cg.g.id)
	if errors.Is(err, ErrUnknownGroup) {
		return map[TopicPartition]OffsetAndMetadata{}, nil
	}
	return out, err
}

// The local liveness of the members on this node.

func (cg *clusterGroup) beat(c *Consumer, id string) {
	if lm := cg.local[id]; lm != nil && lm.c == c {
		lm.deadline = time.Now().Add(cg.g.cfg.SessionTimeout)
	}
}

func (cg *clusterGroup) touch(id string) bool {
	lm := cg.local[id]
	if lm == nil {
		return false
	}
	now := time.Now()
	lm.deadline, lm.pollDeadline = now.Add(cg.g.cfg.SessionTimeout), now.Add(lm.maxPoll)
	return true
}

func (cg *clusterGroup) pollDone(id string) {
	if lm := cg.local[id]; lm != nil {
		now := time.Now()
		lm.polling = false
		lm.deadline, lm.pollDeadline = now.Add(cg.g.cfg.SessionTimeout), now.Add(lm.maxPoll)
		cg.g.wakeLocked(earlier(lm.deadline, lm.pollDeadline))
	}
}

// expire evicts the local members past a deadline (they leave the group
// through the controller) and returns the earliest deadline left. g.mu
// is held; it is released while the leaves are proposed.
func (cg *clusterGroup) expire(now time.Time) time.Time {
	g := cg.g
	var next time.Time
	var evicted []string
	for _, id := range slices.Sorted(maps.Keys(cg.local)) {
		lm := cg.local[id]
		switch {
		case !now.Before(lm.deadline):
			g.log.Warn("evicted member", "member", id, "reason", "no heartbeat within the session timeout", "session_timeout", g.cfg.SessionTimeout)
		case !lm.polling && !now.Before(lm.pollDeadline):
			g.log.Warn("evicted member", "member", id, "reason", "no Poll within MaxPollInterval", "max_poll_interval", lm.maxPoll)
		default:
			first := lm.deadline
			if !lm.polling {
				first = earlier(first, lm.pollDeadline)
			}
			if next.IsZero() || first.Before(next) {
				next = first
			}
			continue
		}
		delete(cg.local, id)
		evicted = append(evicted, id)
	}
	g.timerAt = next
	if len(evicted) > 0 {
		g.mu.Unlock()
		for _, id := range evicted {
			cg.leaveGroup(id)
		}
		g.mu.Lock()
	}
	return next
}

// deleteGroup is DeleteGroup on a cluster.
func (n *clusterNode) deleteGroup(id string) error {
	ctx, cancel := n.clusterOp()
	defer cancel()
	if _, err := n.cluster.propose(ctx, &command{DeleteGroup: &cmdDeleteGroup{Group: id}}); err != nil {
		return errorf("stream: delete group %s: %w", id, err)
	}
	return nil
}

// groups lists the cluster's groups.
func (c *Cluster) groups() []string {
	var out []string
	c.node.read(func(sm *controller, _ uint64) { out = orderedKeys(sm.st.Groups) })
	return out
}

// clusterGroupState guards nothing of its own: the zero value marks the
// fields clusterNode gains for groups (groupMu, groupCh).
type clusterGroupState struct {
	// groupMu guards groupCh: per group, a channel closed at its next
	// change.
	groupMu sync.Mutex
	groupCh map[string]chan struct{}
}

// metadataStale reports whether this node has applied nothing for a
// third of a SessionTimeout, although the controller commits a tick
// every ninth: it is cut off from the majority. The others declare it
// dead, and hand its members' partitions on, once its lease of nine
// ticks runs out, at least six ticks after its last applied heartbeat;
// its members count themselves lost at three (Kafka's consumer, its
// coordinator unreachable, does the same).
func (n *clusterNode) metadataStale() bool {
	rn := n.cluster.node
	rn.mu.Lock()
	at := rn.movedAt
	rn.mu.Unlock()
	return !at.IsZero() && time.Since(at) > n.cfg.SessionTimeout/3
}

// deleteClusterGroup is DeleteGroup on a cluster: the controller refuses
// while the group has members anywhere; then this node's group object
// closes.
func (s *Stream) deleteClusterGroup(id string) error {
	if err := s.cluster.deleteGroup(id); err != nil {
		return err
	}
	r := &s.groups
	r.mu.Lock()
	g := r.groups[id]
	delete(r.groups, id)
	r.mu.Unlock()
	if g != nil {
		g.shutdown()
	}
	s.log.Info("deleted group", "group", id)
	return nil
}

func earlier(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}
