package stream

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	"go.etcd.io/bbolt"
)

// Consumer groups: membership, the rebalance state machine, session
// timeouts, generation-fenced commits in meta.db, lag and admin.
//
// The coordinator of a group is its mutex-guarded state (ConsumerGroup.mu)
// plus one goroutine that evicts members whose session expired. Members
// drive everything else from their Poll: heartbeat, revoke, acquire.
//
// Ownership is the safety property: owner[tp] names the one member that
// holds tp (it received it through OnAssigned and has not revoked it).
// A rebalance only changes targets; a partition moves when its owner
// releases it (after OnRevoked and the auto-commit) or leaves or is
// evicted, and only then can the member whose target holds it acquire it.
// A commit is accepted only from the current owner of every partition it
// names, checked and written under ConsumerGroup.mu, so a member evicted
// or rebalanced away changes nothing.

var (
	bucketGroups  = []byte("groups")  // group id → bucket
	bucketOffsets = []byte("offsets") // in a group's bucket: topic → bucket of partition → committedRecord
)

// OffsetAndMetadata is a committed offset: the next offset the group
// reads, an optional metadata string, and, set by the coordinator, the
// generation and time of the commit. Kafka: OffsetAndMetadata.
type OffsetAndMetadata struct {
	Offset     int64     `json:"offset"`
	Metadata   string    `json:"metadata,omitempty"`
	Generation int64     `json:"generation"` // ignored by commits
	Time       time.Time `json:"time"`       // ignored by commits
}

// ConsumerGroup is a named group of consumers sharing the partitions of
// its topics; get one from Stream.ConsumerGroup and add members with Join.
// Its committed offsets live in meta.db and survive restarts. All methods
// are safe for concurrent use.
type ConsumerGroup struct {
	s   *Stream
	id  string
	log *slog.Logger

	// mu guards the fields below. Commits and resets hold it across their
	// meta.db transaction, so ownership cannot change between the fence
	// check and the write.
	mu         sync.Mutex
	cfg        GroupConfig
	generation int64
	members    map[string]*member // by member ID
	instances  map[string]*member // static members, by InstanceID
	// Invariant: owner[tp] == m if and only if m.owned[tp]; at most one
	// member owns a partition.
	owner map[TopicPartition]*member
	// committing counts the commits in flight (in their transaction,
	// outside mu) of each partition; acquire skips those partitions.
	committing map[TopicPartition]int
	changed    chan struct{}         // closed and replaced when members must look again
	meta       map[string]groupTopic // the topics the assignment was computed for
	nextID     int
	timerAt    time.Time // when run's timer fires; zero: not set
	// The initial rebalance delay: no partition is handed out before
	// delayUntil (zero: no delay running), which joins extend up to
	// delayMax.
	delayUntil, delayMax time.Time
	closed               bool // deleted or the Stream closed

	stop chan struct{} // closed to stop run
	done chan struct{} // closed when run returns
	wake chan struct{} // a deadline appeared: run re-arms its timer

	commitFault func() // tests: called inside every commit's transaction

	counters groupCounters // for Metrics (metrics.go); atomic

	cl *clusterGroup // nil on a single node; else the group spans the cluster (cluster_group.go)
}

// member is one member of a group.
type member struct {
	id         string
	instanceID string
	consumer   *Consumer // nil while a static member is away (closed)
	target     []TopicPartition
	owned      map[TopicPartition]bool
	gen        int64 // the generation whose revocations the member completed
	polling    bool  // inside Poll
	maxPoll    time.Duration
	// Liveness deadlines (group_liveness.go): deadline is the session's
	// (heartbeats extend it), pollDeadline the next Poll's (while not
	// polling), revokeBy the rebalance timeout's (zero: nothing to give
	// up).
	deadline     time.Time
	pollDeadline time.Time
	revokeBy     time.Time
}

// groupRegistry holds the groups and consumers of a Stream so Close can
// close them.
type groupRegistry struct {
	// mu guards the fields below. It is taken before ConsumerGroup.mu.
	mu        sync.Mutex
	closed    bool
	groups    map[string]*ConsumerGroup
	consumers map[*Consumer]struct{}
}

func (r *groupRegistry) addConsumer(c *Consumer) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return errorf("stream: new consumer: %w", ErrClosed)
	}
	if r.consumers == nil {
		r.consumers = map[*Consumer]struct{}{}
	}
	r.consumers[c] = struct{}{}
	return nil
}

func (r *groupRegistry) removeConsumer(c *Consumer) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.consumers, c)
}

// closeAll closes every consumer (they commit and leave), then stops
// every group's coordinator. Later ConsumerGroup and NewConsumer calls
// get ErrClosed.
func (r *groupRegistry) closeAll() {
	r.mu.Lock()
	r.closed = true
	consumers := slices.Collect(maps.Keys(r.consumers))
	groups := slices.Collect(maps.Values(r.groups))
	r.groups = nil
	r.mu.Unlock()
	for _, c := range consumers {
		c.Close()
	}
	for _, g := range groups {
		g.shutdown()
	}
}

// ConsumerGroup opens the consumer group id (creating it on first use) with
// cfg (zero fields: defaults). Within a Stream a group is one object: a
// second call returns it if cfg is the same or has no Topics, and fails
// with ErrInvalidConfig otherwise. Names follow the rule for topics
// (ErrInvalidName); every topic must exist (ErrUnknownTopic).
func (s *Stream) ConsumerGroup(id string, cfg GroupConfig) (*ConsumerGroup, error) {
	if err := validName("group", id); err != nil {
		return nil, err
	}
	c, err := cfg.withDefaults()
	if err != nil {
		return nil, errorf("stream: group %s: %w", id, err)
	}
	for _, t := range c.Topics {
		if _, err := s.Topic(t); err != nil {
			return nil, errorf("stream: group %s: %w", id, err)
		}
	}
	r := &s.groups
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil, errorf("stream: group %s: %w", id, ErrClosed)
	}
	if g := r.groups[id]; g != nil {
		g.mu.Lock()
		defer g.mu.Unlock()
		switch {
		case len(c.Topics) == 0 || g.cfg.equal(c):
			return g, nil
		case len(g.cfg.Topics) == 0 && len(g.members) == 0:
			g.cfg = c
			return g, nil
		}
		return nil, errorf("stream: group %s is open with another configuration (topics %v, assignor %s): %w",
			id, g.cfg.Topics, g.cfg.Assignor.Name(), ErrInvalidConfig)
	}
	var gen int64
	if s.cluster == nil {
		if gen, err = s.createGroupRecord(id); err != nil {
			return nil, err
		}
	}
	g := &ConsumerGroup{
		s: s, id: id, cfg: c, generation: gen,
		log:        s.log.With("group", id),
		members:    map[string]*member{},
		instances:  map[string]*member{},
		owner:      map[TopicPartition]*member{},
		committing: map[TopicPartition]int{},
		changed:    make(chan struct{}),
		stop:       make(chan struct{}),
		done:       make(chan struct{}),
		wake:       make(chan struct{}, 1),
	}
	if s.cluster != nil {
		g.cl = newClusterGroup(g, s.cluster)
	}
	if r.groups == nil {
		r.groups = map[string]*ConsumerGroup{}
	}
	r.groups[id] = g
	go g.run()
	return g, nil
}

// createGroupRecord creates the group's bucket in meta.db if needed and
// returns the highest generation of its committed offsets, where
// generations continue after a restart.
func (s *Stream) createGroupRecord(id string) (int64, error) {
	var gen int64
	err := s.db.Update(func(tx *bbolt.Tx) error {
		groups, err := tx.CreateBucketIfNotExists(bucketGroups)
		if err != nil {
			return err
		}
		b, err := groups.CreateBucketIfNotExists([]byte(id))
		if err != nil {
			return err
		}
		offs, err := b.CreateBucketIfNotExists(bucketOffsets)
		if err != nil {
			return err
		}
		return forEachCommitted(offs, func(_ TopicPartition, o OffsetAndMetadata) {
			gen = max(gen, o.Generation)
		})
	})
	if err != nil {
		return 0, errorf("stream: group %s: %w", id, err)
	}
	return gen, nil
}

// forEachCommitted calls fn for every committed offset in an offsets
// bucket.
func forEachCommitted(offs *bbolt.Bucket, fn func(TopicPartition, OffsetAndMetadata)) error {
	return offs.ForEachBucket(func(topic []byte) error {
		return offs.Bucket(topic).ForEach(func(k, v []byte) error {
			var o OffsetAndMetadata
			if len(k) != 4 {
				return fmt.Errorf("committed offset of %s: bad partition key %x", topic, k)
			}
			if err := json.Unmarshal(v, &o); err != nil {
				return fmt.Errorf("committed offset of %s-%d: %w", topic, binary.BigEndian.Uint32(k), err)
			}
			fn(TopicPartition{Topic: string(topic), Partition: int32(binary.BigEndian.Uint32(k))}, o)
			return nil
		})
	})
}

func partitionKey(p int32) []byte {
	return binary.BigEndian.AppendUint32(nil, uint32(p))
}

// Groups returns the names of every consumer group, with committed
// offsets or opened since, sorted. It returns nil after Close.
func (s *Stream) Groups() []string {
	s.groups.mu.Lock()
	if s.groups.closed {
		s.groups.mu.Unlock()
		return nil
	}
	set := map[string]bool{}
	for id := range s.groups.groups {
		set[id] = true
	}
	s.groups.mu.Unlock()
	if s.cluster != nil {
		for _, id := range s.cluster.cluster.groups() {
			set[id] = true
		}
	}
	s.db.View(func(tx *bbolt.Tx) error {
		if b := tx.Bucket(bucketGroups); b != nil {
			b.ForEachBucket(func(k []byte) error { set[string(k)] = true; return nil })
		}
		return nil
	})
	return slices.Sorted(maps.Keys(set))
}

// DeleteGroup deletes a consumer group and its committed offsets. It fails
// with ErrGroupNotEmpty while the group has members (including static
// members that closed less than SessionTimeout ago), and with
// ErrUnknownGroup for a group that does not exist. An open
// *ConsumerGroup of a deleted group returns ErrClosed.
func (s *Stream) DeleteGroup(id string) error {
	if s.cluster != nil {
		return s.deleteClusterGroup(id)
	}
	r := &s.groups
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return errorf("stream: delete group %s: %w", id, ErrClosed)
	}
	g := r.groups[id]
	if g != nil {
		g.mu.Lock()
		if n := len(g.members); n > 0 {
			g.mu.Unlock()
			return errorf("stream: delete group %s: it has %d members; close them or wait for their session timeout: %w", id, n, ErrGroupNotEmpty)
		}
		g.closed = true
		g.mu.Unlock()
		delete(r.groups, id)
		g.shutdown()
	}
	found := g != nil
	err := s.db.Update(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketGroups)
		if b == nil || b.Bucket([]byte(id)) == nil {
			return nil
		}
		found = true
		return b.DeleteBucket([]byte(id))
	})
	if err != nil {
		return errorf("stream: delete group %s: %w", id, err)
	}
	if !found {
		return errorf("stream: delete group %s: %w", id, ErrUnknownGroup)
	}
	s.log.Info("deleted group", "group", id)
	return nil
}

// shutdown stops the coordinator goroutine.
func (g *ConsumerGroup) shutdown() {
	g.mu.Lock()
	g.closed = true
	g.notifyLocked()
	g.mu.Unlock()
	select {
	case <-g.stop:
	default:
		close(g.stop)
	}
	<-g.done
}

func (g *ConsumerGroup) notifyLocked() {
	close(g.changed)
	g.changed = make(chan struct{})
}

// releaseAllLocked frees every partition m owns.
func (g *ConsumerGroup) releaseAllLocked(m *member) {
	for tp := range m.owned {
		delete(g.owner, tp)
	}
	clear(m.owned)
}

// removeLocked takes m out of the group, freeing its partitions.
func (g *ConsumerGroup) removeLocked(m *member) {
	g.releaseAllLocked(m)
	delete(g.members, m.id)
	if m.instanceID != "" && g.instances[m.instanceID] == m {
		delete(g.instances, m.instanceID)
	}
}

// rebalanceLocked starts a new generation: the assignor computes every
// member's target, and members move towards it at their next Poll.
func (g *ConsumerGroup) rebalanceLocked(reason string) {
	g.generation++
	g.meta = g.topicMeta()
	counts := make(map[string]int32, len(g.meta))
	for name, tm := range g.meta {
		counts[name] = tm.n
	}
	ms := make([]GroupMember, 0, len(g.members))
	for _, m := range g.members {
		ms = append(ms, GroupMember{ID: m.id, InstanceID: m.instanceID, Topics: g.cfg.Topics, Owned: m.target})
	}
	assignment := g.cfg.Assignor.Assign(ms, counts)
	now := time.Now()
	for id, m := range g.members {
		m.target = assignment[id]
		if m.revokeBy.IsZero() && g.needsRevokeLocked(m) {
			m.revokeBy = now.Add(m.maxPoll)
			g.wakeLocked(m.revokeBy)
		}
	}
	g.notifyLocked()
	g.rebalanced(reason)
	g.log.Info("rebalance", "reason", reason, "generation", g.generation, "members", len(g.members))
}

// groupTopic is what a group's assignment depends on of one topic.
type groupTopic struct {
	t *Topic // a topic deleted and recreated is another *Topic
	n int32  // partitions
}

// topicMeta returns the metadata of every existing topic of the group:
// heartbeats compare it with the one the assignment was computed for,
// and rebalance when a topic was deleted, recreated or grew.
func (g *ConsumerGroup) topicMeta() map[string]groupTopic {
	g.s.mu.RLock()
	defer g.s.mu.RUnlock()
	meta := make(map[string]groupTopic, len(g.cfg.Topics))
	for _, name := range g.cfg.Topics {
		if t, ok := g.s.topics[name]; ok {
			meta[name] = groupTopic{t, int32(t.NumPartitions())}
		}
	}
	return meta
}

// partitionCounts returns the partition count of every existing topic of
// the group. It reads the topic table directly so that it works while the
// Stream closes.
func (g *ConsumerGroup) partitionCounts() map[string]int32 {
	g.s.mu.RLock()
	defer g.s.mu.RUnlock()
	counts := make(map[string]int32, len(g.cfg.Topics))
	for _, name := range g.cfg.Topics {
		if t, ok := g.s.topics[name]; ok {
			counts[name] = int32(len(t.partitions))
		}
	}
	return counts
}

// cooperative reports whether the group's assignor uses incremental
// cooperative rebalancing (KIP-429); the others are eager: every member
// revokes everything at each rebalance.
func (g *ConsumerGroup) cooperative() bool {
	return g.cfg.Assignor.Name() == CooperativeStickyAssignor.Name()
}

// join adds c to the group and sets its member ID. A static member
// rejoining within its session timeout takes its slot back, with its
// assignment and without a rebalance. It fails with ErrClosed once c's
// Close began: c.mu is held across, so Close either sees the member ID
// and leaves, or join sees Close and adds nothing.
func (g *ConsumerGroup) join(c *Consumer) error {
	if g.cl != nil {
		return g.cl.join(c)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return errorf("stream: group %s: %w", g.id, ErrClosed)
	}
	if len(g.cfg.Topics) == 0 {
		return errorf("stream: join group %s: %w: GroupConfig.Topics is empty", g.id, ErrInvalidConfig)
	}
	inst := c.cfg.InstanceID
	old := g.instances[inst]
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return errorf("stream: join group %s: consumer: %w", g.id, ErrClosed)
	}
	if inst != "" && old != nil && old.consumer != nil && old.consumer != c {
		// Another consumer's lock under c's: consumers never lock each
		// other otherwise, and join runs under g.mu, one at a time.
		old.consumer.fence(errorf("stream: group %s: member %s: another consumer joined with instance id %q: %w", g.id, old.id, inst, ErrFenced))
	}
	g.nextID++
	prefix := "consumer"
	if inst != "" {
		prefix = inst
	}
	id := fmt.Sprintf("%s-%d", prefix, g.nextID)
	c.memberID = id
	now := time.Now()
	deadline, pollDeadline := now.Add(g.cfg.SessionTimeout), now.Add(c.cfg.MaxPollInterval)
	if d := g.cfg.InitialRebalanceDelay; d > 0 {
		switch {
		case len(g.members) == 0:
			g.delayUntil, g.delayMax = now.Add(d), now.Add(c.cfg.MaxPollInterval)
		case !g.delayUntil.IsZero():
			g.delayUntil = now.Add(d)
			if g.delayUntil.After(g.delayMax) {
				g.delayUntil = g.delayMax
			}
		}
		if !g.delayUntil.IsZero() {
			g.wakeLocked(g.delayUntil)
		}
	}
	if m := old; inst != "" && m != nil {
		if m.consumer != nil {
			g.log.Warn("static member replaced by a new consumer with its instance id; the old one is fenced", "instance", inst, "old", m.id)
		}
		g.releaseAllLocked(m)
		delete(g.members, m.id)
		m.id, m.consumer, m.polling, m.maxPoll = id, c, false, c.cfg.MaxPollInterval
		m.deadline, m.pollDeadline, m.revokeBy = deadline, pollDeadline, time.Time{}
		g.members[id] = m
		g.notifyLocked()
		g.wakeLocked(deadline)
		g.log.Info("static member rejoined", "member", id, "instance", inst, "generation", g.generation)
		return nil
	}
	m := &member{
		id: id, instanceID: inst, consumer: c, owned: map[TopicPartition]bool{},
		maxPoll: c.cfg.MaxPollInterval, deadline: deadline, pollDeadline: pollDeadline,
	}
	g.members[id] = m
	if inst != "" {
		g.instances[inst] = m
	}
	g.rebalanceLocked("member joined")
	g.wakeLocked(deadline)
	return nil
}

// leave handles Close: a dynamic member leaves and the group rebalances;
// a static member keeps its slot, with nothing owned, until its session
// timeout.
func (g *ConsumerGroup) leave(id string) {
	if g.cl != nil {
		g.cl.leave(id)
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	m := g.members[id]
	if m == nil {
		return
	}
	if m.instanceID != "" {
		g.releaseAllLocked(m)
		m.consumer, m.polling, m.revokeBy = nil, false, time.Time{}
		m.deadline = time.Now().Add(g.cfg.SessionTimeout)
		g.notifyLocked()
		g.wakeLocked(m.deadline)
		return
	}
	g.removeLocked(m)
	if !g.closed {
		g.rebalanceLocked("member left")
	}
}

// heartbeatResult tells a polling member what to do.
type heartbeatResult struct {
	revoke []TopicPartition // give these up (OnRevoked, commit, release)
	gen    int64            // the generation revoke was computed for
	lost   bool             // the member was evicted: drop everything, rejoin
	// noTopics: every topic of the group was deleted
	noTopics bool
	changed  <-chan struct{} // closed when the group changes again
}

// heartbeat marks member id as polling and says what it must revoke.
func (g *ConsumerGroup) heartbeat(c *Consumer, id string) (heartbeatResult, error) {
	if g.cl != nil {
		return g.cl.heartbeat(c, id)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	res := heartbeatResult{changed: g.changed, gen: g.generation}
	if g.closed {
		return res, errorf("stream: group %s: %w", g.id, ErrClosed)
	}
	m := g.members[id]
	if m == nil {
		if inst := c.cfg.InstanceID; inst != "" && g.instances[inst] != nil {
			return res, errorf("stream: group %s: member %s: another consumer joined with instance id %q: %w", g.id, id, inst, ErrFenced)
		}
		res.lost = true
		return res, nil
	}
	if meta := g.topicMeta(); !maps.Equal(meta, g.meta) {
		g.rebalanceLocked("topics changed")
		res.changed, res.gen = g.changed, g.generation
	}
	res.noTopics = len(g.meta) == 0
	m.polling = true
	m.deadline = time.Now().Add(g.cfg.SessionTimeout)
	if g.cooperative() {
		for _, tp := range sortedKeys(m.owned) {
			if !slices.Contains(m.target, tp) {
				res.revoke = append(res.revoke, tp)
			}
		}
	} else if m.gen < g.generation {
		res.revoke = sortedKeys(m.owned)
	}
	if len(res.revoke) == 0 {
		m.gen = g.generation
		m.revokeBy = time.Time{}
	}
	return res, nil
}

// release frees partitions member id has revoked; gen is the generation
// the revocation was for (0: not a revocation).
func (g *ConsumerGroup) release(id string, tps []TopicPartition, gen int64) {
	if g.cl != nil {
		g.cl.release(id, tps, gen)
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	m := g.members[id]
	if m == nil {
		return
	}
	for _, tp := range tps {
		if g.owner[tp] == m {
			delete(g.owner, tp)
			delete(m.owned, tp)
		}
	}
	m.gen = max(m.gen, gen)
	if !g.needsRevokeLocked(m) {
		m.revokeBy = time.Time{}
	}
	g.notifyLocked()
}

// acquire hands member id the partitions of its target that nobody owns.
func (g *ConsumerGroup) acquire(id string) []TopicPartition {
	if g.cl != nil {
		return g.cl.acquire(id)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	m := g.members[id]
	if m == nil || !g.cooperative() && m.gen < g.generation || !g.delayUntil.IsZero() {
		return nil
	}
	var added []TopicPartition
	for _, tp := range m.target {
		if g.owner[tp] == nil && g.committing[tp] == 0 {
			g.owner[tp] = m
			m.owned[tp] = true
			added = append(added, tp)
		}
	}
	return added
}

// startPos is where a member starts on a newly acquired partition.
type startPos struct {
	p   *Partition // nil: its topic was deleted
	off int64
}

// startPositions returns where a member starts on newly acquired
// partitions: the committed offset when it is inside the log, otherwise
// by StartAt (logged when a committed offset was out of range). It also
// returns the committed offsets found.
func (g *ConsumerGroup) startPositions(tps []TopicPartition) (pos map[TopicPartition]startPos, committed map[TopicPartition]int64, err error) {
	all, err := g.committed()
	if err != nil {
		return nil, nil, err
	}
	pos = make(map[TopicPartition]startPos, len(tps))
	committed = make(map[TopicPartition]int64, len(tps))
	for _, tp := range tps {
		p, err := g.s.partition(tp)
		if errors.Is(err, ErrUnknownTopic) {
			pos[tp] = startPos{}
			continue
		}
		if err != nil {
			return nil, nil, err
		}
		c, ok := all[tp]
		pos[tp] = startPos{p, g.resolve(tp, p, c.Offset, ok)}
		if ok {
			committed[tp] = c.Offset
		}
	}
	return pos, committed, nil
}

// resolve returns the committed offset if it is inside p's log, and
// otherwise where StartAt says, logging a committed offset out of range.
func (g *ConsumerGroup) resolve(tp TopicPartition, p *Partition, committed int64, ok bool) int64 {
	start, hw := g.s.bounds(p)
	if ok && committed >= start && (committed <= hw || g.cl != nil) {
		// On a cluster the local high watermark may be behind the one
		// the offset was committed against: wait for it, do not reset.
		return committed
	}
	to := hw
	if g.cfg.StartAt == StartEarliest {
		to = start
	}
	if ok {
		g.log.Warn("committed offset outside the log (retention passed it); resetting by StartAt",
			"topic", tp.Topic, "partition", tp.Partition, "committed", committed,
			"start", start, "high_watermark", hw, "start_at", g.cfg.StartAt, "offset", to)
	}
	return to
}

// partition returns the partition tp names.
func (s *Stream) partition(tp TopicPartition) (*Partition, error) {
	t, err := s.Topic(tp.Topic)
	if err != nil {
		return nil, err
	}
	return t.Partition(tp.Partition)
}

// ID returns the group's name.
func (g *ConsumerGroup) ID() string { return g.id }

// Config returns the group's configuration, with defaults filled in.
func (g *ConsumerGroup) Config() GroupConfig {
	g.mu.Lock()
	defer g.mu.Unlock()
	c := g.cfg
	c.Topics = slices.Clone(c.Topics)
	return c
}

// Join adds a member to the group and returns it at once, without waiting
// for the other members: partitions reach it at its Poll calls, as their
// current owners give them up. cfg's zero fields take defaults
// (ErrInvalidConfig names a bad one). The group rebalances, except for a
// static member (cfg.InstanceID) taking back its slot within the session
// timeout.
func (g *ConsumerGroup) Join(ctx context.Context, cfg ConsumerConfig) (*Consumer, error) {
	if err := checkContext(ctx, "join group "+g.id); err != nil {
		return nil, err
	}
	c, err := newConsumer(g.s, g, cfg)
	if err != nil {
		return nil, errorf("stream: join group %s: %w", g.id, err)
	}
	if err := g.join(c); err != nil {
		c.Close() // stops its heartbeat goroutine
		return nil, err
	}
	return c, nil
}

// Members returns the member IDs of the group, sorted, including static
// members that closed less than SessionTimeout ago.
func (g *ConsumerGroup) Members() []string {
	if g.cl != nil {
		return g.cl.n.cluster.groupView(g.id, "", false).memberIDs
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	return slices.Sorted(maps.Keys(g.members))
}

// Generation returns the group's generation: it grows by one at every
// rebalance and continues from the committed offsets after a restart.
func (g *ConsumerGroup) Generation() int64 {
	if g.cl != nil {
		return g.cl.n.cluster.groupView(g.id, "", false).generation
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.generation
}

// Committed returns the group's committed offsets: for each partition, the
// next offset the group reads.
func (g *ConsumerGroup) Committed(ctx context.Context) (map[TopicPartition]int64, error) {
	all, err := g.CommittedWithMetadata(ctx)
	if err != nil {
		return nil, err
	}
	out := make(map[TopicPartition]int64, len(all))
	for tp, o := range all {
		out[tp] = o.Offset
	}
	return out, nil
}

// CommittedWithMetadata returns the group's committed offsets with their
// metadata, generation and time.
func (g *ConsumerGroup) CommittedWithMetadata(ctx context.Context) (map[TopicPartition]OffsetAndMetadata, error) {
	if err := checkContext(ctx, "group "+g.id); err != nil {
		return nil, err
	}
	if err := g.checkOpen(); err != nil {
		return nil, err
	}
	return g.committed()
}

func (g *ConsumerGroup) checkOpen() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return errorf("stream: group %s: %w", g.id, ErrClosed)
	}
	return nil
}

// Lag returns, for every partition of the group's topics and every
// partition with a committed offset, how many records the group has yet
// to read: the high watermark minus the committed offset. Where nothing
// usable is committed it counts from where a member would start
// (StartAt): the whole log with StartEarliest, nothing with StartLatest.
func (g *ConsumerGroup) Lag(ctx context.Context) (map[TopicPartition]int64, error) {
	all, err := g.CommittedWithMetadata(ctx)
	if err != nil {
		return nil, err
	}
	tps := map[TopicPartition]bool{}
	for tp := range all {
		tps[tp] = true
	}
	for topic, n := range g.partitionCounts() {
		for i := range n {
			tps[TopicPartition{Topic: topic, Partition: i}] = true
		}
	}
	lag := make(map[TopicPartition]int64, len(tps))
	for tp := range tps {
		p, err := g.s.partition(tp)
		if err != nil {
			continue // a deleted topic: no lag to report
		}
		c, ok := all[tp]
		start, hw := g.s.bounds(p)
		from := c.Offset
		if !ok || from < start || from > hw {
			from = hw
			if g.cfg.StartAt == StartEarliest {
				from = start
			}
		}
		lag[tp] = hw - from
	}
	return lag, nil
}

// ResetOffsets sets the group's committed offsets to to (the next offset
// to read, inside [StartOffset, HighWatermark] of each partition, else
// ErrOffsetOutOfRange): replay, or skip ahead. The group must have no
// members; otherwise it fails with ErrGroupNotEmpty and changes nothing.
// Offsets may move backwards.
func (g *ConsumerGroup) ResetOffsets(ctx context.Context, to map[TopicPartition]int64) error {
	if err := checkContext(ctx, "group "+g.id); err != nil {
		return err
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if err := g.resettableLocked(); err != nil {
		return err
	}
	offs := make(map[TopicPartition]OffsetAndMetadata, len(to))
	for tp, off := range to {
		p, err := g.s.partition(tp)
		if err != nil {
			return errorf("stream: group %s: reset offsets: %w", g.id, err)
		}
		if start, hw := g.s.bounds(p); off < start || off > hw {
			return errorf("stream: group %s: reset %s-%d to %d outside [%d, %d]: %w", g.id, tp.Topic, tp.Partition, off, start, hw, ErrOffsetOutOfRange)
		}
		offs[tp] = OffsetAndMetadata{Offset: off}
	}
	if len(offs) == 0 {
		return nil
	}
	if err := g.writeOffsets(offs, false, g.generation, time.Now().UTC(), nil); err != nil {
		return err
	}
	g.log.Info("reset offsets", "partitions", len(offs))
	return nil
}

// ResetOffsetsToTime sets the committed offset of every partition of the
// group's topics to its first record at or after t (the high watermark if
// none), as Kafka's kafka-consumer-groups --reset-offsets --to-datetime:
// replay from a point in time, after a bug fix. The group must have no
// members (ErrGroupNotEmpty).
func (g *ConsumerGroup) ResetOffsetsToTime(ctx context.Context, t time.Time) error {
	if err := checkContext(ctx, "group "+g.id); err != nil {
		return err
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if err := g.resettableLocked(); err != nil {
		return err
	}
	offs := map[TopicPartition]OffsetAndMetadata{}
	for topic, n := range g.partitionCounts() {
		for i := range n {
			tp := TopicPartition{Topic: topic, Partition: i}
			p, err := g.s.partition(tp)
			if err != nil {
				return errorf("stream: group %s: reset offsets: %w", g.id, err)
			}
			off, err := p.OffsetForTime(t)
			if err != nil {
				return errorf("stream: group %s: reset offsets: %w", g.id, err)
			}
			offs[tp] = OffsetAndMetadata{Offset: off}
		}
	}
	if len(offs) == 0 {
		return nil
	}
	if err := g.writeOffsets(offs, false, g.generation, time.Now().UTC(), nil); err != nil {
		return err
	}
	g.log.Info("reset offsets to time", "time", t, "partitions", len(offs))
	return nil
}

func (g *ConsumerGroup) resettableLocked() error {
	if g.closed {
		return errorf("stream: group %s: %w", g.id, ErrClosed)
	}
	if n := len(g.members); n > 0 {
		return errorf("stream: group %s: reset offsets: the group has %d members; close them or wait for their session timeout: %w", g.id, n, ErrGroupNotEmpty)
	}
	return nil
}

func sortedKeys(m map[TopicPartition]bool) []TopicPartition {
	if len(m) == 0 {
		return nil
	}
	return slices.SortedFunc(maps.Keys(m), compareTopicPartition)
}
