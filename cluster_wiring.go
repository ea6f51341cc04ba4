package stream

import (
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"go.etcd.io/bbolt"
)

// The wiring of a clustered Stream (Options.Cluster): one messenger over
// the configured Transport carries the metadata raft group's messages
// (Cluster, raftnode.go) and the data plane's fetches (replicaManager,
// replica.go). The controller's decisions reach the data plane here:
//
//   - Effects applied by the raft driver only wake the applier goroutine
//     (the driver must not block). The applier reconciles, level-
//     triggered: it reads every topic from the applied metadata, deletes
//     the local topics the cluster no longer has (or has under a new
//     topic ID: a recreated name is a new topic), creates or grows the
//     ones it has, and hands each partition's leader, epochs, replicas
//     and ISR to the replica manager, which ignores what it has seen
//     already. Missing an effect therefore loses nothing: the next pass
//     sees the state.
//   - A partition leader's ISR change requests go to the controller as
//     cmdAlterPartition proposals (clusterISRSink).
//
// Every node keeps a local Partition for every partition of every topic,
// replica or not: on a node outside a partition's replicas it stays
// empty and refuses appends with ErrNotLeader naming the leader, so that
// Topic.Partition(i) answers the same way on every node.

// clusterNode is a clustered Stream's cluster side.
type clusterNode struct {
	s       *Stream
	cfg     ClusterConfig // defaults filled in
	msg     *messenger
	cluster *Cluster
	rm      *replicaManager

	wake  chan struct{} // buffered(1): metadata changed, reconcile
	stopc chan struct{}
	wg    sync.WaitGroup

	// mu guards passed: closed and replaced after every reconcile pass,
	// so that operations can wait for this node to have acted.
	mu     sync.Mutex
	passed chan struct{}

	clusterGroupState // consumer groups' change notifications (cluster_group.go)
}

// validate fills a ClusterConfig's defaults and checks it.
func (c *ClusterConfig) validate() (ClusterConfig, error) {
	cc := c.withDefaults()
	cc.Peers = slices.Clone(cc.Peers)
	if cc.NodeID <= 0 {
		return cc, configError("Cluster.NodeID", cc.NodeID)
	}
	seen := map[NodeID]bool{}
	for _, p := range cc.Peers {
		if p <= 0 || seen[p] {
			return cc, configError("Cluster.Peers", cc.Peers)
		}
		seen[p] = true
	}
	if !seen[cc.NodeID] {
		return cc, errorf("stream: Cluster.Peers %v does not list Cluster.NodeID %d: %w", cc.Peers, cc.NodeID, ErrInvalidConfig)
	}
	if cc.Transport == nil {
		return cc, configError("Cluster.Transport", nil)
	}
	if cc.SessionTimeout < 90*time.Millisecond {
		return cc, configError("Cluster.SessionTimeout", cc.SessionTimeout)
	}
	if cc.ReplicaLagTime < 0 {
		return cc, configError("Cluster.ReplicaLagTime", cc.ReplicaLagTime)
	}
	if cc.RequestTimeout < 0 {
		return cc, configError("Cluster.RequestTimeout", cc.RequestTimeout)
	}
	return cc, nil
}

// refuseClusterTopics fails a single-node Open of a cluster node's
// directory: appends there would make its replicas diverge from the
// others'.
func (s *Stream) refuseClusterTopics() error {
	for name, t := range s.topics {
		if t.id != 0 {
			return errorf("stream: open %s: topic %s belongs to a cluster; open the directory with Options.Cluster: %w", s.dir, name, ErrInvalidConfig)
		}
	}
	return nil
}

// clusterISRSink sends a leader's ISR change requests to the controller.
type clusterISRSink struct{ n *clusterNode }

func (k clusterISRSink) alterISR(ctx context.Context, c isrChange) error {
	return k.n.cluster.alterISR(ctx, c.Topic, c.Partition, c.LeaderEpoch, c.PartitionEpoch, c.ISR)
}

// startCluster makes s a node of the cluster cfg describes: the topics it
// recovered join the replica manager (refusing appends until the
// metadata names their leader), the raft node starts, and the messenger
// serves. It does not wait for a quorum.
func (s *Stream) startCluster(cfg ClusterConfig) (err error) {
	for name, t := range s.topics {
		if t.id == 0 {
			return errorf("stream: open %s: topic %s was created outside a cluster; a clustered Stream needs a directory of its own: %w", s.dir, name, ErrInvalidConfig)
		}
	}
	n := &clusterNode{s: s, cfg: cfg, wake: make(chan struct{}, 1), stopc: make(chan struct{}), passed: make(chan struct{})}
	n.msg = newMessenger(cfg.NodeID, cfg.Transport, s.log)
	n.rm = newReplicaManager(cfg.NodeID, n.msg, clusterISRSink{n}, replicaConfig{lagTime: cfg.ReplicaLagTime, ackTimeout: cfg.RequestTimeout}, s.log)
	defer func() {
		if err != nil {
			n.rm.close()
		}
	}()
	for _, t := range s.topics {
		for _, p := range t.partitions {
			if _, err := n.rm.add(p, t.cfg.MinInSyncReplicas); err != nil {
				return err
			}
		}
	}
	n.cluster, err = newCluster(cfg, s.db, n.msg, s.log, n.onApply, 0)
	if err != nil {
		return err
	}
	n.cluster.localHW = s.localHW
	n.msg.handle(kindProduce, n.handleProduce)
	n.msg.handle(kindConsumerFetch, n.handleConsumerFetch)
	n.msg.handle(kindStatus, n.handleStatus)
	if err := n.msg.serve(); err != nil {
		n.cluster.close()
		return errorf("stream: open %s: serve the cluster transport: %w", s.dir, err)
	}
	s.cluster = n
	n.wg.Add(1)
	go n.applier()
	return nil
}

// close stops the node: the raft node (telling the controller first, so
// that leadership moves now), the applier, the data plane, then the
// transport. The partitions stay open for the Stream to close.
func (n *clusterNode) close() error {
	err := n.cluster.close()
	close(n.stopc)
	n.wg.Wait()
	n.rm.close()
	return errors.Join(err, n.cfg.Transport.Close())
}

// onApply runs on the raft driver's goroutine: it only wakes the applier.
func (n *clusterNode) onApply(_ uint64, effects []effect) {
	n.notifyGroups(effects)
	for _, e := range effects {
		switch e.Kind {
		case effectPartition, effectTopicDeleted, effectReset, effectNodeBoot:
			select {
			case n.wake <- struct{}{}:
			default:
			}
			return
		}
	}
}

// applier reconciles the local topics with the metadata at every wake.
func (n *clusterNode) applier() {
	defer n.wg.Done()
	retry := time.NewTimer(time.Hour)
	retry.Stop()
	defer retry.Stop()
	for {
		select {
		case <-n.stopc:
			return
		case <-n.wake:
		case <-retry.C:
		}
		if err := n.reconcile(); err != nil {
			n.s.log.Error("cluster: acting on metadata failed; retrying", "node", n.cfg.NodeID, "error", err)
			retry.Reset(n.cfg.SessionTimeout / 9)
		}
		n.mu.Lock()
		close(n.passed)
		n.passed = make(chan struct{})
		n.mu.Unlock()
	}
}

// clusterTopic is a topic as the metadata holds it.
type clusterTopic struct {
	id     uint64
	cfg    TopicConfig
	states []partitionMeta
}

// topics reads every topic of the applied metadata.
func (c *Cluster) topics() map[string]clusterTopic {
	out := map[string]clusterTopic{}
	c.node.read(func(sm *controller, _ uint64) {
		for name, t := range sm.st.Topics {
			ct := clusterTopic{id: t.ID, cfg: t.Config}
			for _, p := range t.Partitions {
				ct.states = append(ct.states, p.clone())
			}
			ct.cfg.Partitions = len(ct.states)
			out[name] = ct
		}
	})
	return out
}

// incarnationKnown reports whether the applied metadata has heard this
// node's current incarnation (its Boot). Until it has, what the metadata
// says this node leads was led by the previous incarnation, which may
// have lost batches the followers hold: the controller moves those
// leaderships to a new epoch when it hears the new Boot (KIP-380).
func (c *Cluster) incarnationKnown() bool {
	known := false
	c.node.read(func(sm *controller, _ uint64) {
		nm := sm.st.Nodes[c.node.cfg.ID]
		known = nm != nil && nm.Boot == c.node.storage.boot
	})
	return known
}

// reconcile makes the local topics match the metadata and hands every
// partition's state to the replica manager, once the metadata knows this
// incarnation of the node (before, no partition here leads or follows).
func (n *clusterNode) reconcile() error {
	current := n.cluster.incarnationKnown()
	want := n.cluster.topics()
	s := n.s
	var errs []error
	s.mu.RLock()
	var stale []string
	for name, t := range s.topics {
		if ct, ok := want[name]; !ok || ct.id != t.id {
			stale = append(stale, name)
		}
	}
	s.mu.RUnlock()
	for _, name := range stale {
		errs = append(errs, s.deleteTopicLocal(name))
	}
	for _, name := range orderedKeys(want) {
		ct := want[name]
		t, err := s.ensureTopicLocal(name, ct)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		parts := t.partitionList()
		for i, st := range ct.states {
			if i >= len(parts) || !current {
				break
			}
			a := replicaAssignment{Leader: st.Leader, LeaderEpoch: st.LeaderEpoch, PartitionEpoch: st.PartitionEpoch,
				Replicas: st.Replicas, ISR: st.ISR}
			if err := n.rm.update(name, int32(i), a); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// ensureTopicLocal opens, creates or grows the local topic name to match
// ct, adding new partitions to the replica manager before anyone can see
// them.
func (s *Stream) ensureTopicLocal(name string, ct clusterTopic) (*Topic, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, errorf("stream: topic %s: %w", name, ErrClosed)
	}
	rm := s.cluster.rm
	t := s.topics[name]
	if t != nil && len(t.partitions) >= ct.cfg.Partitions {
		return t, nil
	}
	rec, _ := json.Marshal(topicRecord{Config: ct.cfg, Created: time.Now().UTC(), TopicID: ct.id})
	if err := s.db.Update(func(tx *bbolt.Tx) error {
		return tx.Bucket(bucketTopics).Put([]byte(name), rec)
	}); err != nil {
		return nil, errorf("stream: create topic %s: %w", name, err)
	}
	if t == nil {
		// A directory left by a topic of this name that this node deleted
		// while down is the old topic's: it goes.
		for i := range ct.cfg.Partitions {
			if err := s.fs.RemoveAll(s.partitionDir(name, i)); err != nil {
				return nil, errorf("stream: create topic %s: %w", name, err)
			}
		}
		nt, err := s.openTopic(name, ct.cfg)
		if err != nil {
			return nil, err
		}
		nt.id = ct.id
		for _, p := range nt.partitions {
			if _, err := rm.add(p, ct.cfg.MinInSyncReplicas); err != nil {
				for _, q := range nt.partitions {
					q.close()
				}
				return nil, err
			}
		}
		if err := s.fs.SyncDir(filepath.Join(s.dir, "topics")); err != nil {
			s.log.Warn("cluster: sync topics directory", "error", err)
		}
		s.topics[name] = nt
		s.log.Info("created topic", "topic", name, "partitions", ct.cfg.Partitions, "node", s.cluster.cfg.NodeID)
		return nt, nil
	}
	pc := s.partitionConfigFor(ct.cfg)
	var added []*Partition
	for i := len(t.partitions); i < ct.cfg.Partitions; i++ {
		p, err := openPartition(s.fs, s.partitionDir(name, i), name, int32(i), pc, s.log)
		if err == nil {
			_, err = rm.add(p, ct.cfg.MinInSyncReplicas)
			if err != nil {
				p.close()
			}
		}
		if err != nil {
			for _, q := range added {
				q.close()
			}
			return nil, errorf("stream: create partitions of topic %s: open partition %d: %w", name, i, err)
		}
		added = append(added, p)
	}
	t.mu.Lock()
	t.cfg = ct.cfg
	t.partitions = append(slices.Clip(t.partitions), added...)
	t.mu.Unlock()
	t.changes.Add(1)
	return t, nil
}

// deleteTopicLocal removes a topic the cluster no longer has: its
// replicas leave the replica manager, then its files go, crash-safely as
// DeleteTopic's.
func (s *Stream) deleteTopicLocal(name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	t, ok := s.topics[name]
	if !ok {
		return nil
	}
	if err := s.dropTopicLocked(t, func(p *Partition) { s.cluster.rm.remove(p.topic, p.id) }); err != nil {
		return err
	}
	s.log.Info("deleted topic", "topic", name, "node", s.cluster.cfg.NodeID)
	return nil
}

// localHW returns this node's high watermark of a partition it leads.
func (s *Stream) localHW(topic string, i int32) (int64, bool) {
	s.mu.RLock()
	t := s.topics[topic]
	s.mu.RUnlock()
	if t == nil {
		return 0, false
	}
	parts := t.partitionList()
	if i < 0 || int(i) >= len(parts) {
		return 0, false
	}
	p := parts[i]
	g := p.gate.Load()
	if g == nil || g.leader != g.self {
		return 0, false
	}
	return p.HighWatermark(), true
}

// waitFor waits until cond holds, checking again after every pass of
// the applier (cond must depend only on the applied metadata and the
// local topics, which change only with a pass), and fails with ErrTimeout
// when ctx ends first.
func (n *clusterNode) waitFor(ctx context.Context, what string, cond func() bool) error {
	for {
		// Take the channel before checking: a pass that ends after the
		// check closes it.
		n.mu.Lock()
		ch := n.passed
		n.mu.Unlock()
		if cond() {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return errorf("stream: %s: not done within Cluster.RequestTimeout: %w", what, ErrTimeout)
		case <-n.stopc:
			return errorf("stream: %s: %w", what, ErrClosed)
		}
	}
}

// clusterOp bounds a cluster operation by RequestTimeout.
func (n *clusterNode) clusterOp() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), n.cfg.RequestTimeout)
}

// ready reports whether topic is local with the metadata's topic ID and
// every one of its partitions (at least atLeast) has a leader.
func (n *clusterNode) ready(name string, atLeast int) bool {
	ct, ok := n.cluster.topics()[name]
	if !ok || len(ct.states) < atLeast {
		return false
	}
	for _, st := range ct.states {
		if st.Leader == 0 {
			return false
		}
	}
	n.s.mu.RLock()
	t := n.s.topics[name]
	n.s.mu.RUnlock()
	return t != nil && t.id == ct.id && t.NumPartitions() >= len(ct.states)
}

// createTopic is CreateTopic on a clustered Stream.
func (n *clusterNode) createTopic(name string, cfg TopicConfig) (*Topic, error) {
	if cfg.ReplicationFactor > len(n.cfg.Peers) {
		return nil, errorf("stream: create topic %s: replication factor %d with %d nodes: %w", name, cfg.ReplicationFactor, len(n.cfg.Peers), ErrNotEnoughReplicas)
	}
	ctx, cancel := n.clusterOp()
	defer cancel()
	// Too few live nodes may only mean that some have not registered
	// yet (just after the cluster starts) or are restarting: try again
	// until RequestTimeout, then say what was missing.
	for {
		err := n.cluster.createTopic(ctx, name, cfg)
		if err == nil {
			break
		}
		if !errors.Is(err, ErrNotEnoughReplicas) {
			return nil, err
		}
		t := time.NewTimer(n.cfg.SessionTimeout / 9)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return nil, err
		case <-n.stopc:
			t.Stop()
			return nil, err
		}
	}
	if err := n.waitFor(ctx, "create topic "+name, func() bool { return n.ready(name, 1) }); err != nil {
		return nil, err
	}
	return n.s.Topic(name)
}

// deleteTopic is DeleteTopic on a clustered Stream.
func (n *clusterNode) deleteTopic(name string) error {
	ctx, cancel := n.clusterOp()
	defer cancel()
	if err := n.cluster.deleteTopic(ctx, name); err != nil {
		return err
	}
	return n.waitFor(ctx, "delete topic "+name, func() bool {
		n.s.mu.RLock()
		defer n.s.mu.RUnlock()
		_, ok := n.s.topics[name]
		return !ok
	})
}

// createPartitions is CreatePartitions on a clustered Stream.
func (n *clusterNode) createPartitions(topic string, total int) error {
	ctx, cancel := n.clusterOp()
	defer cancel()
	if _, err := n.cluster.propose(ctx, &command{CreatePartitions: &cmdCreatePartitions{Topic: topic, Count: total}}); err != nil {
		return err
	}
	return n.waitFor(ctx, "create partitions of topic "+topic, func() bool { return n.ready(topic, total) })
}

// Cluster returns the cluster as this node sees it, or nil when the
// Stream is a single node (Options.Cluster nil).
func (s *Stream) Cluster() *Cluster {
	if s.cluster == nil {
		return nil
	}
	return s.cluster.cluster
}

// isClosed reports whether Close has begun.
func (s *Stream) isClosed() bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.closed
}
