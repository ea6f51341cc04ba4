package stream

import (
	"context"
	"log/slog"
	"time"

	"go.etcd.io/bbolt"
)

// ClusterConfig makes a Stream one node of a cluster (Options.Cluster).
// Every node runs the same library; nothing else runs.
type ClusterConfig struct {
	// NodeID is this node's ID, > 0. Required.
	NodeID NodeID
	// Peers lists every voting node, this one included: the same list on
	// every node at first start. Required. Later starts use the voters
	// stored in meta.db (membership changes are not supported yet).
	Peers []NodeID
	// Transport carries requests between nodes. Required.
	Transport Transport
	// SessionTimeout: a node silent this long is dead and its partitions
	// fail over. Default 9s.
	SessionTimeout time.Duration
	// ReplicaLagTime: a follower this far behind its leader leaves the
	// ISR (Kafka's replica.lag.time.max.ms). Default 10s.
	ReplicaLagTime time.Duration
	// RequestTimeout bounds cluster operations (CreateTopic, forwarded
	// appends). Default 30s.
	RequestTimeout time.Duration
	// UncleanLeaderElection lets a replica outside the ISR lead when no
	// in-sync one is alive (Kafka's unclean.leader.election.enable),
	// trading acknowledged records for availability. Default false.
	UncleanLeaderElection bool
}

// PartitionState is a partition's replication state as the cluster's
// metadata holds it.
type PartitionState struct {
	Leader        NodeID // 0 while none
	LeaderEpoch   int32
	Replicas, ISR []NodeID
	HighWatermark int64
}

// NodeState is a node as the cluster's metadata knows it.
type NodeState struct {
	ID NodeID
	// Alive: the node's lease (SessionTimeout) has not run out and it has
	// not shut down.
	Alive bool
	// LastHeard is when the node last heartbeat, by its own clock.
	LastHeard time.Time
}

// Cluster is the cluster as this node sees it: its nodes, the controller,
// its topics and each partition's leader and ISR, read from the metadata
// this node has applied (a follower of the metadata log may be a moment
// behind the controller). Every node answers.
type Cluster struct {
	cfg  ClusterConfig // defaults filled in
	node *raftNode
	// localHW, when set, returns this node's high watermark of a
	// partition it leads (the Stream's replica).
	localHW func(topic string, partition int32) (int64, bool)
}

// withDefaults fills ClusterConfig's zero fields.
func (c ClusterConfig) withDefaults() ClusterConfig {
	setDefault(&c.SessionTimeout, 9*time.Second)
	setDefault(&c.ReplicaLagTime, 10*time.Second)
	setDefault(&c.RequestTimeout, 30*time.Second)
	return c
}

// newCluster starts this node's part of the metadata raft group, its state
// in db, its messages over msg (a messenger over cfg.Transport): it
// registers its request kind there; the caller, having registered the
// others, serves msg, and closes the transport after close. Times derive
// from SessionTimeout: a
// metadata tick every SessionTimeout/9 (a lease is 9 ticks, renewed
// every 3) and a raft tick every tenth of that, so raft elects a new
// controller within about 2 metadata ticks. onApply, if set, receives the
// effects of applied commands (see raftNodeConfig.OnApply).
// snapshotEntries, when not 0, overrides how many applied entries pass
// between metadata snapshots (tests make it small).
func newCluster(cfg ClusterConfig, db *bbolt.DB, msg *messenger, log *slog.Logger, onApply func(uint64, []effect), snapshotEntries uint64) (*Cluster, error) {
	cfg = cfg.withDefaults()
	if cfg.SessionTimeout < 90*time.Millisecond {
		return nil, configError("Cluster.SessionTimeout", cfg.SessionTimeout)
	}
	if cfg.ReplicaLagTime < 0 {
		return nil, configError("Cluster.ReplicaLagTime", cfg.ReplicaLagTime)
	}
	if cfg.RequestTimeout < 0 {
		return nil, configError("Cluster.RequestTimeout", cfg.RequestTimeout)
	}
	metaTick := cfg.SessionTimeout / 9
	node, err := newRaftNode(raftNodeConfig{
		ID:              cfg.NodeID,
		Peers:           cfg.Peers,
		Messenger:       msg,
		DB:              db,
		TickInterval:    metaTick / 10,
		MetaTickTicks:   10,
		SessionTicks:    9,
		RequestTimeout:  cfg.RequestTimeout,
		SnapshotEntries: snapshotEntries,
		Logger:          log,
		OnApply:         onApply,
	})
	if err != nil {
		return nil, err
	}
	return &Cluster{cfg: cfg, node: node}, nil
}

// close shuts the node down: it tells the controller first, so that its
// partitions fail over now rather than when its lease runs out (bounded
// by an election timeout: without a quorum it cannot be told), then stops
// the raft driver. Requests that still arrive get ErrClosed.
func (c *Cluster) close() error {
	if c.Controller() != 0 {
		ctx, cancel := context.WithTimeout(context.Background(), time.Duration(c.node.cfg.ElectionTicks)*c.node.cfg.TickInterval)
		c.propose(ctx, &command{NodeDown: &cmdNodeDown{Node: c.cfg.NodeID}})
		cancel()
	}
	return c.node.close()
}

// NodeID returns this node's ID.
func (c *Cluster) NodeID() NodeID { return c.cfg.NodeID }

// Controller returns the node that leads the metadata raft group, which
// decides leaders and ISRs; 0 while none is known.
func (c *Cluster) Controller() NodeID { return NodeID(c.node.leader.Load()) }

// Nodes lists the nodes that have joined the cluster, in ID order.
func (c *Cluster) Nodes() []NodeState {
	var out []NodeState
	c.node.read(func(sm *controller, _ uint64) {
		for _, id := range orderedKeys(sm.st.Nodes) {
			n := sm.st.Nodes[id]
			out = append(out, NodeState{ID: n.ID, Alive: n.Alive, LastHeard: time.Unix(0, n.LastHeard)})
		}
	})
	return out
}

// Topics lists the cluster's topics, sorted.
func (c *Cluster) Topics() []string {
	var out []string
	c.node.read(func(sm *controller, _ uint64) { out = orderedKeys(sm.st.Topics) })
	return out
}

// PartitionState returns a partition's replicas, leader, leader epoch and
// ISR. It fails with ErrUnknownTopic for a topic or partition the cluster
// does not have. HighWatermark is not metadata: it is filled in on the
// partition's leader, from its replica, and left 0 on other nodes.
func (c *Cluster) PartitionState(topic string, partition int32) (PartitionState, error) {
	var ps PartitionState
	var err error
	c.node.read(func(sm *controller, _ uint64) { ps, err = sm.partitionState(topic, partition) })
	if err == nil && c.localHW != nil && ps.Leader == c.cfg.NodeID {
		if hw, ok := c.localHW(topic, partition); ok {
			ps.HighWatermark = hw
		}
	}
	return ps, err
}

// propose puts cmd through the metadata log and returns its outcome.
func (c *Cluster) propose(ctx context.Context, cmd *command) (applied, error) {
	return c.node.proposeWait(ctx, cmd)
}

// createTopic creates a topic through the controller, cfg's zero fields
// filled with their defaults here, on the proposing node, so that every
// node applies the same values.
func (c *Cluster) createTopic(ctx context.Context, name string, cfg TopicConfig) error {
	cfg, err := cfg.withDefaults("TopicConfig.")
	if err != nil {
		return errorf("stream: create topic %s: %w", name, err)
	}
	_, err = c.propose(ctx, &command{CreateTopic: &cmdCreateTopic{Name: name, Config: cfg, Unclean: c.cfg.UncleanLeaderElection}})
	return err
}

// deleteTopic deletes a topic through the controller.
func (c *Cluster) deleteTopic(ctx context.Context, name string) error {
	_, err := c.propose(ctx, &command{DeleteTopic: &cmdDeleteTopic{Name: name}})
	return err
}

// The data plane's side of the controller: what a partition leader needs
// to change its ISR, and the consumer group commands. Each goes through
// the metadata log and returns the controller's verdict.

// partition returns a partition's full metadata (PartitionEpoch
// included, which alterISR must quote) and its topic's ID.
func (c *Cluster) partition(topic string, i int32) (partitionMeta, uint64, error) {
	var pm partitionMeta
	var id uint64
	var err error
	c.node.read(func(sm *controller, _ uint64) {
		var t *topicMeta
		var p *partitionMeta
		if t, p, err = sm.partition(topic, i); err == nil {
			pm, id = p.clone(), t.ID
		}
	})
	return pm, id, err
}

// alterISR asks the controller to set a partition's ISR, as its leader
// at the epochs given. ErrFenced: the leader or an epoch is stale; read
// the partition again.
func (c *Cluster) alterISR(ctx context.Context, topic string, i int32, leaderEpoch, partitionEpoch int32, isr []NodeID) error {
	_, err := c.propose(ctx, &command{AlterPartition: &cmdAlterPartition{
		Topic: topic, Partition: i, Leader: c.cfg.NodeID,
		LeaderEpoch: leaderEpoch, PartitionEpoch: partitionEpoch, ISR: isr,
	}})
	return err
}

// joinGroup adds a member living on this node and returns the
// generation it joined.
func (c *Cluster) joinGroup(ctx context.Context, group, member string, topics []string) (int64, error) {
	out, err := c.propose(ctx, &command{JoinGroup: &cmdJoinGroup{Group: group, Member: member, Node: c.cfg.NodeID, Topics: topics}})
	return out.generation, err
}

// leaveGroup removes a member.
func (c *Cluster) leaveGroup(ctx context.Context, group, member string) error {
	_, err := c.propose(ctx, &command{LeaveGroup: &cmdLeaveGroup{Group: group, Member: member}})
	return err
}

// syncGroup records the group leader's assignment for a generation.
func (c *Cluster) syncGroup(ctx context.Context, group, leader string, generation int64, assignments map[string][]TopicPartition) error {
	_, err := c.propose(ctx, &command{SyncGroup: &cmdSyncGroup{Group: group, Member: leader, Generation: generation, Assignments: assignments}})
	return err
}

// commitOffsets commits a member's offsets (member "" for a group
// without members).
func (c *Cluster) commitOffsets(ctx context.Context, group, member string, generation int64, offsets map[TopicPartition]OffsetAndMetadata) error {
	co := &cmdCommitOffsets{Group: group, Member: member, Generation: generation, Offsets: map[string]map[int32]committedMeta{}}
	for tp, o := range offsets {
		if co.Offsets[tp.Topic] == nil {
			co.Offsets[tp.Topic] = map[int32]committedMeta{}
		}
		co.Offsets[tp.Topic][tp.Partition] = committedMeta{Offset: o.Offset, Metadata: o.Metadata}
	}
	_, err := c.propose(ctx, &command{CommitOffsets: co})
	return err
}

// committed returns a group's committed offsets.
func (c *Cluster) committed(group string) (map[TopicPartition]OffsetAndMetadata, error) {
	out := map[TopicPartition]OffsetAndMetadata{}
	var err error
	c.node.read(func(sm *controller, _ uint64) {
		g, ok := sm.st.Groups[group]
		if !ok {
			err = errorf("stream: group %s: %w", group, ErrUnknownGroup)
			return
		}
		for topic, parts := range g.Offsets {
			for p, o := range parts {
				out[TopicPartition{Topic: topic, Partition: p}] = OffsetAndMetadata{Offset: o.Offset, Metadata: o.Metadata, Generation: g.Generation}
			}
		}
	})
	return out, err
}
