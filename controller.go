package stream

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
)

// The controller: the cluster's metadata as a pure, deterministic state
// machine, in the manner of etcd's raft.go under rawnode.go. Its only
// inputs are commands in raft's committed order (a metadata tick is a
// command too, proposed by the raft leader); its outputs are the new state
// and effects that nodes act on (a partition's leader or ISR changed, a
// topic went away). No goroutines, no clock, no I/O: every node that
// applies the same log holds byte-identical state, which the tests check
// by comparing snapshots.
//
// Determinism rules kept here: maps are only ever walked in sorted key
// order; nothing reads time, randomness or the local node's identity;
// every decision depends on the state and the command alone. Time is the
// logical Tick, advanced by tick commands; a node's liveness is a lease in
// ticks renewed by its heartbeat commands.
//
// Encoding: commands and snapshots are JSON (encoding/json). It is
// deterministic for what we store (struct fields in declaration order, map
// keys sorted), readable when debugging a log, and tolerant across two
// adjacent releases: an older node ignores a field it does not know, and a
// command kind it does not know is rejected by every node alike (it
// carries no recognised operation). Metadata changes are rare and small,
// so JSON's cost does not matter; the data plane never goes through here.

// metaState is everything the controller knows. It is what a snapshot
// holds.
type metaState struct {
	Tick        int64                 `json:"tick"`          // logical time, advanced by cmdTick
	NextTopicID uint64                `json:"next_topic_id"` // Kafka's topic IDs: a recreated name is a new topic
	Spread      int                   `json:"spread"`        // rotates the first replica of each new topic over the nodes
	Nodes       map[NodeID]*nodeMeta  `json:"nodes"`
	Topics      map[string]*topicMeta `json:"topics"`
	Groups      map[string]*groupMeta `json:"groups"`
	// Proposers remembers which proposals each node has had applied, so
	// that a proposal its node retried (the first attempt may have been
	// lost, or not) applies once.
	Proposers map[NodeID]*proposerMeta `json:"proposers"`
}

// proposerMeta is one node's spent proposal numbers in its current
// incarnation (Boot).
type proposerMeta struct {
	Boot  uint64          `json:"boot"`
	Floor uint64          `json:"floor"` // every Seq at or below is spent
	Seqs  map[uint64]bool `json:"seqs"`  // spent Seqs above Floor, at most proposerWindow
}

// proposerWindow bounds proposerMeta.Seqs: a node would need this many
// proposals outstanding at once for a retry to be refused wrongly.
const proposerWindow = 1024

var errDuplicateProposal = errors.New("stream: metadata proposal already applied")

// nodeMeta is one node's registration and lease.
type nodeMeta struct {
	ID        NodeID `json:"id"`
	Alive     bool   `json:"alive"`
	Expires   int64  `json:"expires"`        // the tick at which the lease runs out
	LastHeard int64  `json:"last_heard"`     // the heartbeat's wall time, Unix ns, as its sender stamped it
	Boot      uint64 `json:"boot,omitempty"` // the latest incarnation heard from
}

// topicMeta is a topic and the replication state of its partitions.
type topicMeta struct {
	ID         uint64           `json:"id"`
	Name       string           `json:"name"`
	Config     TopicConfig      `json:"config"`
	Unclean    bool             `json:"unclean,omitempty"` // unclean leader election allowed
	Partitions []*partitionMeta `json:"partitions"`
}

// partitionMeta is a partition's replicas, leader and ISR. LeaderEpoch
// changes with every leader change (it fences the old leader's appends);
// PartitionEpoch changes with every change at all (it fences a stale
// AlterPartition, as KIP-497's partition epoch does).
type partitionMeta struct {
	Replicas       []NodeID `json:"replicas"`
	Leader         NodeID   `json:"leader"`
	LeaderEpoch    int32    `json:"leader_epoch"`
	PartitionEpoch int32    `json:"partition_epoch"`
	ISR            []NodeID `json:"isr"`
}

// groupMeta is a consumer group: its members, generation, assignment and
// committed offsets.
type groupMeta struct {
	Generation int64                              `json:"generation"`
	Leader     string                             `json:"leader,omitempty"`
	Members    map[string]*groupMemberMeta        `json:"members"`
	Offsets    map[string]map[int32]committedMeta `json:"offsets"`
	// Synced is the generation the leader's assignment is for; Assigned
	// the generation handed out (controller_group.go).
	Synced   int64 `json:"synced,omitempty"`
	Assigned int64 `json:"assigned,omitempty"`
}

type groupMemberMeta struct {
	ID         string           `json:"id"`
	Node       NodeID           `json:"node"` // the member lives on this node; it leaves when the node dies
	Topics     []string         `json:"topics"`
	Assignment []TopicPartition `json:"assignment,omitempty"`
	// Owned is what the member holds (controller_group.go); Boot the
	// incarnation of its node it joined in.
	Owned []TopicPartition `json:"owned,omitempty"`
	Boot  uint64           `json:"boot,omitempty"`
}

type committedMeta struct {
	Offset   int64  `json:"offset"`
	Metadata string `json:"metadata,omitempty"`
}

// command is one entry of the metadata log. Exactly one operation field
// is set. Origin, Boot and Seq name the proposal so that the node that
// proposed it can hand the result to the waiting caller; they do not
// change what the command does.
type command struct {
	Origin NodeID `json:"origin,omitempty"`
	Boot   uint64 `json:"boot,omitempty"`
	Seq    uint64 `json:"seq,omitempty"`

	Noop             *struct{}            `json:"noop,omitempty"`
	Tick             *cmdTick             `json:"tick,omitempty"`
	Heartbeat        *cmdHeartbeat        `json:"heartbeat,omitempty"`
	NodeDown         *cmdNodeDown         `json:"node_down,omitempty"`
	CreateTopic      *cmdCreateTopic      `json:"create_topic,omitempty"`
	DeleteTopic      *cmdDeleteTopic      `json:"delete_topic,omitempty"`
	CreatePartitions *cmdCreatePartitions `json:"create_partitions,omitempty"`
	AlterPartition   *cmdAlterPartition   `json:"alter_partition,omitempty"`
	ElectLeader      *cmdElectLeader      `json:"elect_leader,omitempty"`
	JoinGroup        *cmdJoinGroup        `json:"join_group,omitempty"`
	LeaveGroup       *cmdLeaveGroup       `json:"leave_group,omitempty"`
	SyncGroup        *cmdSyncGroup        `json:"sync_group,omitempty"`
	CommitOffsets    *cmdCommitOffsets    `json:"commit_offsets,omitempty"`
	DeleteGroup      *cmdDeleteGroup      `json:"delete_group,omitempty"`
	ReleaseGroup     *cmdReleaseGroup     `json:"release_group,omitempty"`
}

// cmdTick advances logical time by one; nodes whose lease ran out die.
type cmdTick struct{}

// cmdHeartbeat registers a node or renews its lease for Session ticks; a
// dead node that heartbeats is alive again (it rejoins ISRs only when a
// leader asks, once it has caught up).
type cmdHeartbeat struct {
	Node    NodeID `json:"node"`
	Session int64  `json:"session"` // lease length in ticks, > 0
	Time    int64  `json:"time"`    // the sender's wall clock, Unix ns; informational
	// Boot is the sender's incarnation; a higher one than last heard
	// drops the group members of its earlier ones (controller_group.go).
	Boot uint64 `json:"boot,omitempty"`
}

// cmdNodeDown declares a node dead at once: a controlled shutdown.
type cmdNodeDown struct {
	Node NodeID `json:"node"`
}

type cmdCreateTopic struct {
	Name    string      `json:"name"`
	Config  TopicConfig `json:"config"` // defaults already filled in by the proposer
	Unclean bool        `json:"unclean,omitempty"`
}

type cmdDeleteTopic struct {
	Name string `json:"name"`
}

// cmdCreatePartitions grows a topic to Count partitions.
type cmdCreatePartitions struct {
	Topic string `json:"topic"`
	Count int    `json:"count"`
}

// cmdAlterPartition is a partition leader's request to change its ISR
// (Kafka's AlterPartition). It names the epochs the leader believes
// current; a stale one is fenced.
type cmdAlterPartition struct {
	Topic          string   `json:"topic"`
	Partition      int32    `json:"partition"`
	Leader         NodeID   `json:"leader"`
	LeaderEpoch    int32    `json:"leader_epoch"`
	PartitionEpoch int32    `json:"partition_epoch"`
	ISR            []NodeID `json:"isr"`
}

// cmdElectLeader moves leadership to the preferred replica (the first
// one) when it is alive and in sync, as kafka-leader-election does.
type cmdElectLeader struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
}

type cmdJoinGroup struct {
	Group  string   `json:"group"`
	Member string   `json:"member"`
	Node   NodeID   `json:"node"`
	Topics []string `json:"topics"`
	Boot   uint64   `json:"boot,omitempty"` // the node's incarnation
}

type cmdLeaveGroup struct {
	Group  string `json:"group"`
	Member string `json:"member"`
}

// cmdSyncGroup is the group leader's assignment for a generation.
type cmdSyncGroup struct {
	Group       string                      `json:"group"`
	Member      string                      `json:"member"`
	Generation  int64                       `json:"generation"`
	Assignments map[string][]TopicPartition `json:"assignments"`
}

// cmdCommitOffsets commits offsets for a member of generation Generation,
// or, with Member empty, for a group without members (an admin reset or a
// standalone consumer).
type cmdCommitOffsets struct {
	Group      string                             `json:"group"`
	Member     string                             `json:"member,omitempty"`
	Generation int64                              `json:"generation,omitempty"`
	Offsets    map[string]map[int32]committedMeta `json:"offsets"`
	// ByOwner fences the commit by ownership instead of generation: the
	// member must own every partition named (controller_group.go).
	// Implicit skips offsets at or below the committed ones.
	ByOwner  bool `json:"by_owner,omitempty"`
	Implicit bool `json:"implicit,omitempty"`
}

type cmdDeleteGroup struct {
	Group string `json:"group"`
}

// effectKind says what an effect reports.
type effectKind uint8

const (
	// effectPartition: a partition was created or its leader, epochs or
	// ISR changed. Partition holds the new state.
	effectPartition effectKind = iota + 1
	// effectTopicDeleted: a topic and all its partitions are gone.
	effectTopicDeleted
	// effectNodeDead and effectNodeAlive: a node's liveness changed.
	effectNodeDead
	effectNodeAlive
	// effectGroup: a group's generation or assignment changed.
	effectGroup
	// effectReset: the whole state was replaced (the driver started from,
	// or received, a snapshot). Nodes re-read the state and act on the
	// difference; no finer effects come with it.
	effectReset
	// effectNodeBoot: a node's new incarnation was heard (its Boot rose).
	// The node acts on the metadata only once it has (cluster_wiring.go).
	effectNodeBoot
)

// effect is something nodes must act on after a command applied: become
// leader or follower of a partition, drop a topic's files, rejoin a group.
type effect struct {
	Kind       effectKind
	Topic      string
	TopicID    uint64
	Partition  int32
	State      partitionMeta // effectPartition
	Node       NodeID        // effectNodeDead, effectNodeAlive, effectNodeBoot
	Group      string        // effectGroup
	Generation int64         // effectGroup
}

// applied is a command's outcome: the same on every node.
type applied struct {
	effects    []effect
	generation int64 // JoinGroup: the generation the member joined
	err        error // the command was rejected; the state did not change
}

// controller is the metadata state machine.
type controller struct {
	st metaState
}

func newController() *controller {
	return &controller{st: metaState{
		Nodes:  map[NodeID]*nodeMeta{},
		Topics: map[string]*topicMeta{},
		Groups: map[string]*groupMeta{},

		Proposers: map[NodeID]*proposerMeta{},
	}}
}

// encodeCommand encodes cmd for the log.
func encodeCommand(cmd *command) ([]byte, error) {
	return json.Marshal(cmd)
}

// applyEntry applies one committed log entry. An entry that does not
// decode is rejected like any bad command: every node rejects it alike.
func (c *controller) applyEntry(data []byte) (*command, applied) {
	var cmd command
	if err := json.Unmarshal(data, &cmd); err != nil {
		return nil, applied{err: errorf("stream: metadata command: %w: %v", ErrCorrupt, err)}
	}
	return &cmd, c.apply(&cmd)
}

// apply applies one command. A rejected command leaves the state as it
// was: every check comes before the first change.
func (c *controller) apply(cmd *command) applied {
	if cmd.Origin != 0 && cmd.Seq != 0 {
		if err := c.admit(cmd); err != nil {
			return applied{err: err}
		}
	}
	switch {
	case cmd.Noop != nil:
		return applied{}
	case cmd.Tick != nil:
		return c.tick()
	case cmd.Heartbeat != nil:
		return c.heartbeat(cmd.Heartbeat)
	case cmd.NodeDown != nil:
		return c.nodeDown(cmd.NodeDown)
	case cmd.CreateTopic != nil:
		return c.createTopic(cmd.CreateTopic)
	case cmd.DeleteTopic != nil:
		return c.deleteTopic(cmd.DeleteTopic)
	case cmd.CreatePartitions != nil:
		return c.createPartitions(cmd.CreatePartitions)
	case cmd.AlterPartition != nil:
		return c.alterPartition(cmd.AlterPartition)
	case cmd.ElectLeader != nil:
		return c.electLeader(cmd.ElectLeader)
	case cmd.JoinGroup != nil:
		return c.joinGroup(cmd.JoinGroup)
	case cmd.LeaveGroup != nil:
		return c.leaveGroup(cmd.LeaveGroup)
	case cmd.SyncGroup != nil:
		return c.syncGroup(cmd.SyncGroup)
	case cmd.CommitOffsets != nil:
		return c.commitOffsets(cmd.CommitOffsets)
	case cmd.DeleteGroup != nil:
		return c.deleteGroup(cmd.DeleteGroup)
	case cmd.ReleaseGroup != nil:
		return c.releaseGroup(cmd.ReleaseGroup)
	}
	return applied{err: errorf("stream: metadata command with no known operation: %w", ErrInvalidConfig)}
}

// admit spends a proposal's number, refusing one already spent or one
// from an earlier incarnation of its node (whose caller has given up).
func (c *controller) admit(cmd *command) error {
	pm := c.st.Proposers[cmd.Origin]
	if pm == nil || cmd.Boot > pm.Boot {
		pm = &proposerMeta{Boot: cmd.Boot, Seqs: map[uint64]bool{}}
		c.st.Proposers[cmd.Origin] = pm
	}
	if cmd.Boot < pm.Boot || cmd.Seq <= pm.Floor || pm.Seqs[cmd.Seq] {
		return fmt.Errorf("%w: node %d boot %d proposal %d", errDuplicateProposal, cmd.Origin, cmd.Boot, cmd.Seq)
	}
	pm.Seqs[cmd.Seq] = true
	if len(pm.Seqs) > proposerWindow {
		lowest := cmd.Seq
		for seq := range pm.Seqs {
			lowest = min(lowest, seq)
		}
		delete(pm.Seqs, lowest)
		pm.Floor = lowest
	}
	return nil
}

// snapshot encodes the whole state.
func (c *controller) snapshot() ([]byte, error) {
	return json.Marshal(&c.st)
}

// restore replaces the state with a snapshot's.
func (c *controller) restore(data []byte) error {
	fresh := newController()
	if len(data) > 0 {
		if err := json.Unmarshal(data, &fresh.st); err != nil {
			return errorf("stream: metadata snapshot: %w: %v", ErrCorrupt, err)
		}
	}
	if fresh.st.Nodes == nil {
		fresh.st.Nodes = map[NodeID]*nodeMeta{}
	}
	if fresh.st.Topics == nil {
		fresh.st.Topics = map[string]*topicMeta{}
	}
	if fresh.st.Groups == nil {
		fresh.st.Groups = map[string]*groupMeta{}
	}
	if fresh.st.Proposers == nil {
		fresh.st.Proposers = map[NodeID]*proposerMeta{}
	}
	c.st = fresh.st
	return nil
}

func rejectf(sentinel error, format string, args ...any) applied {
	return applied{err: errorf("stream: "+format+": %w", append(args, sentinel)...)}
}

func orderedKeys[K ~string | ~int32, V any](m map[K]V) []K {
	keys := make([]K, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// --- nodes and liveness ---

func (c *controller) tick() applied {
	c.st.Tick++
	var out applied
	for _, id := range orderedKeys(c.st.Nodes) {
		n := c.st.Nodes[id]
		if n.Alive && n.Expires <= c.st.Tick {
			out.effects = append(out.effects, c.markDead(n)...)
		}
	}
	return out
}

func (c *controller) heartbeat(h *cmdHeartbeat) applied {
	if h.Node <= 0 {
		return rejectf(ErrInvalidConfig, "heartbeat: node ID %d", h.Node)
	}
	if h.Session <= 0 {
		return rejectf(ErrInvalidConfig, "heartbeat from node %d: session of %d ticks", h.Node, h.Session)
	}
	n := c.st.Nodes[h.Node]
	if n == nil {
		n = &nodeMeta{ID: h.Node}
		c.st.Nodes[h.Node] = n
	}
	n.Expires = c.st.Tick + h.Session
	n.LastHeard = h.Time
	var out applied
	if h.Boot > n.Boot {
		restarted := n.Boot != 0
		n.Boot = h.Boot
		out.effects = append(c.dropStaleMembers(n.ID, h.Boot), effect{Kind: effectNodeBoot, Node: n.ID})
		if restarted {
			out.effects = append(out.effects, c.restarted(n)...)
		}
	}
	if n.Alive {
		return out
	}
	n.Alive = true
	out.effects = append(out.effects, effect{Kind: effectNodeAlive, Node: n.ID})
	// Partitions left leaderless wait for an in-sync replica to come back
	// (or, when unclean election is allowed, any replica).
	c.eachPartition(func(t *topicMeta, i int32, p *partitionMeta) {
		if p.Leader != 0 || !slices.Contains(p.Replicas, n.ID) {
			return
		}
		if slices.Contains(p.ISR, n.ID) {
			p.Leader = n.ID
		} else if t.Unclean {
			p.Leader, p.ISR = n.ID, []NodeID{n.ID}
		} else {
			return
		}
		p.LeaderEpoch++
		p.PartitionEpoch++
		out.effects = append(out.effects, partitionEffect(t, i, p))
	})
	return out
}

func (c *controller) nodeDown(d *cmdNodeDown) applied {
	n := c.st.Nodes[d.Node]
	if n == nil {
		return rejectf(ErrInvalidConfig, "node down: unknown node %d", d.Node)
	}
	if !n.Alive {
		return applied{}
	}
	return applied{effects: c.markDead(n)}
}

// markDead declares n dead: its partitions fail over to an in-sync
// replica, it leaves every ISR, its group members leave their groups.
func (c *controller) markDead(n *nodeMeta) []effect {
	n.Alive = false
	effects := []effect{{Kind: effectNodeDead, Node: n.ID}}
	c.eachPartition(func(t *topicMeta, i int32, p *partitionMeta) {
		if !slices.Contains(p.ISR, n.ID) && p.Leader != n.ID {
			return
		}
		if p.Leader == n.ID {
			c.electFrom(t, p, n.ID)
		} else if len(p.ISR) > 1 {
			p.ISR = without(p.ISR, n.ID)
			p.PartitionEpoch++
		} else {
			return
		}
		effects = append(effects, partitionEffect(t, i, p))
	})
	for _, name := range orderedKeys(c.st.Groups) {
		g := c.st.Groups[name]
		changed := false
		for _, id := range orderedKeys(g.Members) {
			if g.Members[id].Node == n.ID {
				delete(g.Members, id)
				changed = true
			}
		}
		if changed {
			effects = append(effects, c.rebalance(name, g))
		}
	}
	return effects
}

// restarted acts on a new incarnation of n (Kafka's broker epoch,
// KIP-380): the previous one died, losing what it had not fsynced, so n
// leaves every ISR, and the partitions it led move to a new leader epoch:
// to another live in-sync replica, or, when n is the only one, to n
// again, so that the followers' epoch check makes them truncate what the
// old incarnation wrote and the new one lost (KIP-101/279). n rejoins the
// ISRs once it has caught up, as any follower.
func (c *controller) restarted(n *nodeMeta) []effect {
	var effects []effect
	c.eachPartition(func(t *topicMeta, i int32, p *partitionMeta) {
		if !slices.Contains(p.ISR, n.ID) && p.Leader != n.ID {
			return
		}
		switch {
		case p.Leader == n.ID:
			p.LeaderEpoch++
			p.PartitionEpoch++
			for _, r := range p.Replicas {
				if r != n.ID && slices.Contains(p.ISR, r) && c.alive(r) {
					p.Leader = r
					p.ISR = without(p.ISR, n.ID)
					break
				}
			}
		case len(p.ISR) > 1:
			p.ISR = without(p.ISR, n.ID)
			p.PartitionEpoch++
		default:
			return // leaderless, n its last in-sync replica: it leads when alive
		}
		effects = append(effects, partitionEffect(t, i, p))
	})
	return effects
}

// electFrom replaces the leader of p, which is leaving: the first replica
// in replica order that is in the ISR and alive; failing that, when
// unclean election is allowed, the first live replica. With neither the
// partition stays leaderless, its ISR keeping the last in-sync replica so
// that it can lead cleanly when it returns (Kafka keeps it too).
func (c *controller) electFrom(t *topicMeta, p *partitionMeta, leaving NodeID) {
	p.LeaderEpoch++
	p.PartitionEpoch++
	for _, r := range p.Replicas {
		if r != leaving && slices.Contains(p.ISR, r) && c.alive(r) {
			p.Leader = r
			p.ISR = without(p.ISR, leaving)
			return
		}
	}
	if t.Unclean {
		for _, r := range p.Replicas {
			if r != leaving && c.alive(r) {
				p.Leader, p.ISR = r, []NodeID{r}
				return
			}
		}
	}
	p.Leader = 0
}

func (c *controller) alive(id NodeID) bool {
	n := c.st.Nodes[id]
	return n != nil && n.Alive
}

// liveNodes lists the live nodes in ID order.
func (c *controller) liveNodes() []NodeID {
	var ids []NodeID
	for _, id := range orderedKeys(c.st.Nodes) {
		if c.st.Nodes[id].Alive {
			ids = append(ids, id)
		}
	}
	return ids
}

// eachPartition calls f for every partition in topic name, then partition
// order.
func (c *controller) eachPartition(f func(t *topicMeta, i int32, p *partitionMeta)) {
	for _, name := range orderedKeys(c.st.Topics) {
		t := c.st.Topics[name]
		for i, p := range t.Partitions {
			f(t, int32(i), p)
		}
	}
}

func partitionEffect(t *topicMeta, i int32, p *partitionMeta) effect {
	return effect{Kind: effectPartition, Topic: t.Name, TopicID: t.ID, Partition: i, State: p.clone()}
}

func (p *partitionMeta) clone() partitionMeta {
	q := *p
	q.Replicas = slices.Clone(p.Replicas)
	q.ISR = slices.Clone(p.ISR)
	return q
}

func without(ids []NodeID, id NodeID) []NodeID {
	out := make([]NodeID, 0, len(ids))
	for _, x := range ids {
		if x != id {
			out = append(out, x)
		}
	}
	return out
}

// --- topics and partitions ---

func (c *controller) createTopic(ct *cmdCreateTopic) applied {
	if err := validName("topic", ct.Name); err != nil {
		return applied{err: err}
	}
	if _, ok := c.st.Topics[ct.Name]; ok {
		return rejectf(ErrTopicExists, "create topic %s", ct.Name)
	}
	cfg := ct.Config
	if cfg.Partitions < 1 || cfg.Partitions > maxPartitions {
		return rejectf(ErrInvalidConfig, "create topic %s: Partitions = %d", ct.Name, cfg.Partitions)
	}
	if cfg.ReplicationFactor < 1 {
		return rejectf(ErrInvalidConfig, "create topic %s: ReplicationFactor = %d", ct.Name, cfg.ReplicationFactor)
	}
	if cfg.MinInSyncReplicas < 1 || cfg.MinInSyncReplicas > cfg.ReplicationFactor {
		return rejectf(ErrInvalidConfig, "create topic %s: MinInSyncReplicas = %d with ReplicationFactor %d", ct.Name, cfg.MinInSyncReplicas, cfg.ReplicationFactor)
	}
	live := c.liveNodes()
	if cfg.ReplicationFactor > len(live) {
		return rejectf(ErrNotEnoughReplicas, "create topic %s: replication factor %d with %d live nodes", ct.Name, cfg.ReplicationFactor, len(live))
	}
	c.st.NextTopicID++
	t := &topicMeta{ID: c.st.NextTopicID, Name: ct.Name, Config: cfg, Unclean: ct.Unclean}
	c.st.Topics[ct.Name] = t
	return applied{effects: append(c.addPartitions(t, cfg.Partitions, live), c.topicChanged(ct.Name, false)...)}
}

// addPartitions grows t to count partitions over the live nodes: replica
// j of partition p is node (start+p+j) mod n, so replicas and leaders
// spread round-robin and the start rotates from topic to topic (Kafka's
// rack-unaware assignment, without its randomness).
func (c *controller) addPartitions(t *topicMeta, count int, live []NodeID) []effect {
	var effects []effect
	start := c.st.Spread
	c.st.Spread = (c.st.Spread + 1) % len(live)
	rf := t.Config.ReplicationFactor
	for p := len(t.Partitions); p < count; p++ {
		replicas := make([]NodeID, rf)
		for j := range replicas {
			replicas[j] = live[(start+p+j)%len(live)]
		}
		pm := &partitionMeta{Replicas: replicas, Leader: replicas[0], ISR: slices.Clone(replicas)}
		t.Partitions = append(t.Partitions, pm)
		effects = append(effects, partitionEffect(t, int32(p), pm))
	}
	return effects
}

func (c *controller) deleteTopic(dt *cmdDeleteTopic) applied {
	t, ok := c.st.Topics[dt.Name]
	if !ok {
		return rejectf(ErrUnknownTopic, "delete topic %s", dt.Name)
	}
	delete(c.st.Topics, dt.Name)
	return applied{effects: append([]effect{{Kind: effectTopicDeleted, Topic: t.Name, TopicID: t.ID}}, c.topicChanged(dt.Name, true)...)}
}

func (c *controller) createPartitions(cp *cmdCreatePartitions) applied {
	t, ok := c.st.Topics[cp.Topic]
	if !ok {
		return rejectf(ErrUnknownTopic, "create partitions of %s", cp.Topic)
	}
	if cp.Count <= len(t.Partitions) || cp.Count > maxPartitions {
		return rejectf(ErrInvalidConfig, "create partitions of %s: count %d with %d partitions", cp.Topic, cp.Count, len(t.Partitions))
	}
	live := c.liveNodes()
	if t.Config.ReplicationFactor > len(live) {
		return rejectf(ErrNotEnoughReplicas, "create partitions of %s: replication factor %d with %d live nodes", cp.Topic, t.Config.ReplicationFactor, len(live))
	}
	t.Config.Partitions = cp.Count
	return applied{effects: append(c.addPartitions(t, cp.Count, live), c.topicChanged(cp.Topic, false)...)}
}

// partition finds a partition or says why not.
func (c *controller) partition(topic string, i int32) (*topicMeta, *partitionMeta, error) {
	t, ok := c.st.Topics[topic]
	if !ok {
		return nil, nil, errorf("stream: topic %s: %w", topic, ErrUnknownTopic)
	}
	if i < 0 || int(i) >= len(t.Partitions) {
		return nil, nil, errorf("stream: topic %s has no partition %d: %w", topic, i, ErrUnknownTopic)
	}
	return t, t.Partitions[i], nil
}

// alterPartition applies a leader's ISR change. Fenced when the request's
// leader or epochs are not current: a deposed leader, or one that has not
// seen the last change, must refresh and ask again.
func (c *controller) alterPartition(ap *cmdAlterPartition) applied {
	t, p, err := c.partition(ap.Topic, ap.Partition)
	if err != nil {
		return applied{err: err}
	}
	where := fmt.Sprintf("alter partition %s-%d", ap.Topic, ap.Partition)
	if ap.Leader != p.Leader || ap.LeaderEpoch != p.LeaderEpoch {
		return rejectf(ErrFenced, "%s: leader %d epoch %d, current leader %d epoch %d", where, ap.Leader, ap.LeaderEpoch, p.Leader, p.LeaderEpoch)
	}
	if ap.PartitionEpoch != p.PartitionEpoch {
		return rejectf(ErrFenced, "%s: partition epoch %d, current %d", where, ap.PartitionEpoch, p.PartitionEpoch)
	}
	if !slices.Contains(ap.ISR, p.Leader) {
		return rejectf(ErrInvalidConfig, "%s: ISR %v without its leader %d", where, ap.ISR, p.Leader)
	}
	var isr []NodeID // in replica order: the order elections try
	for _, r := range p.Replicas {
		if slices.Contains(ap.ISR, r) {
			isr = append(isr, r)
		}
	}
	if len(isr) != len(ap.ISR) {
		return rejectf(ErrInvalidConfig, "%s: ISR %v is not a set of replicas %v", where, ap.ISR, p.Replicas)
	}
	for _, r := range isr {
		if !slices.Contains(p.ISR, r) && !c.alive(r) {
			return rejectf(ErrInvalidConfig, "%s: node %d is not alive and cannot join the ISR", where, r)
		}
	}
	p.ISR = isr
	p.PartitionEpoch++
	return applied{effects: []effect{partitionEffect(t, ap.Partition, p)}}
}

func (c *controller) electLeader(el *cmdElectLeader) applied {
	t, p, err := c.partition(el.Topic, el.Partition)
	if err != nil {
		return applied{err: err}
	}
	preferred := p.Replicas[0]
	if p.Leader == preferred {
		return applied{}
	}
	if !slices.Contains(p.ISR, preferred) || !c.alive(preferred) {
		return rejectf(ErrNotEnoughReplicas, "elect leader of %s-%d: preferred replica %d is not alive and in sync", el.Topic, el.Partition, preferred)
	}
	p.Leader = preferred
	p.LeaderEpoch++
	p.PartitionEpoch++
	return applied{effects: []effect{partitionEffect(t, el.Partition, p)}}
}

// --- consumer groups ---

func (c *controller) rebalance(name string, g *groupMeta) effect {
	g.Generation++
	for _, m := range g.Members {
		m.Assignment = nil
	}
	if _, ok := g.Members[g.Leader]; !ok {
		g.Leader = ""
		if ids := orderedKeys(g.Members); len(ids) > 0 {
			g.Leader = ids[0]
		}
	}
	return effect{Kind: effectGroup, Group: name, Generation: g.Generation}
}

func (c *controller) group(name string) *groupMeta {
	g := c.st.Groups[name]
	if g == nil {
		g = &groupMeta{Members: map[string]*groupMemberMeta{}, Offsets: map[string]map[int32]committedMeta{}}
		c.st.Groups[name] = g
	}
	return g
}

func (c *controller) joinGroup(j *cmdJoinGroup) applied {
	if err := validName("group", j.Group); err != nil {
		return applied{err: err}
	}
	if j.Member == "" {
		return rejectf(ErrInvalidConfig, "join group %s: empty member ID", j.Group)
	}
	if !c.alive(j.Node) {
		return rejectf(ErrInvalidConfig, "join group %s: node %d is not alive", j.Group, j.Node)
	}
	if j.Boot != 0 && j.Boot < c.st.Nodes[j.Node].Boot {
		return rejectf(ErrFenced, "join group %s: node %d incarnation %d was restarted", j.Group, j.Node, j.Boot)
	}
	topics := slices.Clone(j.Topics)
	sort.Strings(topics)
	topics = slices.Compact(topics)
	g := c.group(j.Group)
	if m, ok := g.Members[j.Member]; ok && m.Node == j.Node && slices.Equal(m.Topics, topics) {
		return applied{generation: g.Generation} // a rejoin that changes nothing
	}
	g.Members[j.Member] = &groupMemberMeta{ID: j.Member, Node: j.Node, Topics: topics, Boot: j.Boot}
	e := c.rebalance(j.Group, g)
	return applied{effects: []effect{e}, generation: g.Generation}
}

func (c *controller) leaveGroup(l *cmdLeaveGroup) applied {
	g, ok := c.st.Groups[l.Group]
	if !ok {
		return rejectf(ErrUnknownGroup, "leave group %s", l.Group)
	}
	if _, ok := g.Members[l.Member]; !ok {
		return applied{generation: g.Generation} // already gone: leaving twice is fine
	}
	delete(g.Members, l.Member)
	e := c.rebalance(l.Group, g)
	return applied{effects: []effect{e}, generation: g.Generation}
}

func (c *controller) syncGroup(s *cmdSyncGroup) applied {
	g, ok := c.st.Groups[s.Group]
	if !ok {
		return rejectf(ErrUnknownGroup, "sync group %s", s.Group)
	}
	if s.Generation != g.Generation {
		return rejectf(ErrFenced, "sync group %s: generation %d, current %d", s.Group, s.Generation, g.Generation)
	}
	if s.Member != g.Leader {
		return rejectf(ErrFenced, "sync group %s: member %q is not the group leader %q", s.Group, s.Member, g.Leader)
	}
	if g.Synced >= s.Generation {
		return rejectf(ErrFenced, "sync group %s: generation %d is synced already", s.Group, s.Generation)
	}
	for _, id := range orderedKeys(s.Assignments) {
		if _, ok := g.Members[id]; !ok {
			return rejectf(ErrInvalidConfig, "sync group %s: assignment for unknown member %q", s.Group, id)
		}
	}
	for _, id := range orderedKeys(g.Members) {
		g.Members[id].Assignment = slices.Clone(s.Assignments[id])
	}
	g.Synced = g.Generation
	c.handOut(g)
	return applied{effects: []effect{{Kind: effectGroup, Group: s.Group, Generation: g.Generation}}, generation: g.Generation}
}

func (c *controller) commitOffsets(co *cmdCommitOffsets) applied {
	if err := validName("group", co.Group); err != nil {
		return applied{err: err}
	}
	for _, topic := range orderedKeys(co.Offsets) {
		for _, p := range orderedKeys(co.Offsets[topic]) {
			if off := co.Offsets[topic][p].Offset; off < 0 || p < 0 {
				return rejectf(ErrInvalidConfig, "commit group %s: offset %d for %s-%d", co.Group, off, topic, p)
			}
		}
	}
	g := c.st.Groups[co.Group]
	if co.Member == "" {
		if g != nil && len(g.Members) > 0 {
			return rejectf(ErrGroupNotEmpty, "commit group %s without a member", co.Group)
		}
	} else {
		if g == nil {
			return rejectf(ErrUnknownGroup, "commit group %s", co.Group)
		}
		if _, ok := g.Members[co.Member]; !ok {
			return rejectf(ErrFenced, "commit group %s: member %q is not in the group", co.Group, co.Member)
		}
		if co.ByOwner {
			if err := ownsAll(co, g.Members[co.Member]); err != nil {
				return applied{err: err}
			}
		} else if co.Generation != g.Generation {
			return rejectf(ErrFenced, "commit group %s: generation %d, current %d", co.Group, co.Generation, g.Generation)
		}
	}
	g = c.group(co.Group)
	for _, topic := range orderedKeys(co.Offsets) {
		if g.Offsets[topic] == nil {
			g.Offsets[topic] = map[int32]committedMeta{}
		}
		for p, o := range co.Offsets[topic] {
			if old, ok := g.Offsets[topic][p]; co.Implicit && ok && old.Offset >= o.Offset {
				continue
			}
			g.Offsets[topic][p] = o
		}
	}
	return applied{generation: g.Generation}
}

func (c *controller) deleteGroup(d *cmdDeleteGroup) applied {
	g, ok := c.st.Groups[d.Group]
	if !ok {
		return rejectf(ErrUnknownGroup, "delete group %s", d.Group)
	}
	if len(g.Members) > 0 {
		return rejectf(ErrGroupNotEmpty, "delete group %s", d.Group)
	}
	delete(c.st.Groups, d.Group)
	return applied{}
}

// --- reads ---

// partitionState is the public view of a partition; the high watermark
// is not metadata (it moves with every write) and is left to the replica.
func (c *controller) partitionState(topic string, i int32) (PartitionState, error) {
	_, p, err := c.partition(topic, i)
	if err != nil {
		return PartitionState{}, err
	}
	return PartitionState{Leader: p.Leader, LeaderEpoch: p.LeaderEpoch, Replicas: slices.Clone(p.Replicas), ISR: slices.Clone(p.ISR)}, nil
}
