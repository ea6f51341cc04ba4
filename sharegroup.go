package stream

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"reflect"
	"slices"
	"strconv"
	"sync"
	"time"

	"go.etcd.io/bbolt"
)

// Share groups: queue semantics on the logs (Kafka 4's share groups,
// KIP-932; NATS JetStream's explicit acknowledgements). Any number of
// members read any number of partitions together; each record is
// acquired by one member at a time, under a lock, and acknowledged on
// its own: accepted, released for redelivery, or rejected.
//
// The group's state is its share-partitions (sharegroup_state.go), all
// guarded by ShareGroup.mu; members (sharegroup_member.go) acquire and
// acknowledge under it. Lock expiry is lazy: a record whose lock has
// passed is taken back by the next scan that meets it, or by its
// holder's acknowledgement, which then fails; pollers that wait arm a
// timer at the earliest lock or backoff end they saw. The log is read
// outside the lock (fill), and so are the dead-letter appends and the
// meta.db transactions, which one goroutine per group (the committer)
// writes for every member at once.

// ShareGroup is a named queue over the records of its topics: members
// (Join) acquire records, each held by one member at a time until its
// acquisition lock ends, and acknowledge each one. Its state lives in
// meta.db and survives restarts. Get one from Stream.ShareGroup; all
// methods are safe for concurrent use.
type ShareGroup struct {
	s   *Stream
	id  string
	log *slog.Logger

	// mu guards the fields below and every share-partition's.
	mu      sync.Mutex
	cfg     ShareGroupConfig
	parts   map[TopicPartition]*sharePartition
	order   []*sharePartition // parts sorted by topic and partition
	members map[*ShareMember]struct{}
	nextID  int
	changed chan struct{} // closed and replaced when records may have become available
	batch   *shareBatch   // the committer's next transaction
	lanes   map[string]struct{}
	closed  bool

	kick chan struct{} // wakes the committer
	stop chan struct{} // closed to stop the committer
	done chan struct{} // closed when the committer returned
}

// shareRegistry holds a Stream's open share groups so Close can close
// them.
type shareRegistry struct {
	// mu guards the fields below. It is taken before ShareGroup.mu and
	// Stream.mu.
	mu     sync.Mutex
	closed bool
	groups map[string]*ShareGroup
}

// closeAll closes every share group: members get ErrClosed, and what
// changed is stored.
func (r *shareRegistry) closeAll() {
	r.mu.Lock()
	r.closed = true
	groups := slices.Collect(maps.Values(r.groups))
	r.groups = nil
	r.mu.Unlock()
	for _, g := range groups {
		g.shutdown()
	}
}

// ShareGroup opens the share group id (creating it on first use) with cfg
// (zero fields: defaults). With no Topics it opens the group with the
// configuration stored in meta.db (ErrUnknownGroup if there is none);
// otherwise cfg replaces the stored one. Within a Stream a group is one
// object: a second call returns it if cfg is the same or has no Topics,
// and fails with ErrInvalidConfig otherwise. Names follow the rule for
// topics (ErrInvalidName); every topic must exist (ErrUnknownTopic).
//
// A topic the group has no state for starts at cfg.StartAt; partitions
// added to a topic later start at their first record.
func (s *Stream) ShareGroup(id string, cfg ShareGroupConfig) (*ShareGroup, error) {
	if err := validName("group", id); err != nil {
		return nil, err
	}
	c, err := cfg.withDefaults()
	if err != nil {
		return nil, errorf("stream: share group %s: %w", id, err)
	}
	r := &s.shares
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil, errorf("stream: share group %s: %w", id, ErrClosed)
	}
	if g := r.groups[id]; g != nil {
		g.mu.Lock()
		defer g.mu.Unlock()
		if len(c.Topics) == 0 || shareConfigEqual(g.cfg, c) {
			return g, nil
		}
		return nil, errorf("stream: share group %s is open with another configuration (topics %v): %w", id, g.cfg.Topics, ErrInvalidConfig)
	}
	stored, states, err := s.readShareState(id)
	if err != nil {
		return nil, err
	}
	if len(c.Topics) == 0 {
		if stored == nil {
			return nil, errorf("stream: share group %s: %w", id, ErrUnknownGroup)
		}
		if err := json.Unmarshal(stored, &c); err != nil {
			return nil, errorf("stream: share group %s: stored configuration: %v: %w", id, err, ErrCorrupt)
		}
		if c, err = c.withDefaults(); err != nil {
			return nil, errorf("stream: share group %s: stored configuration: %w", id, err)
		}
	}
	g := &ShareGroup{
		s: s, id: id, cfg: c,
		log:     s.log.With("share_group", id),
		parts:   map[TopicPartition]*sharePartition{},
		members: map[*ShareMember]struct{}{},
		changed: make(chan struct{}),
		batch:   newShareBatch(),
		lanes:   map[string]struct{}{},
		kick:    make(chan struct{}, 1),
		stop:    make(chan struct{}),
		done:    make(chan struct{}),
	}
	if err := g.load(states); err != nil {
		return nil, err
	}
	if r.groups == nil {
		r.groups = map[string]*ShareGroup{}
	}
	r.groups[id] = g
	go g.run()
	return g, nil
}

func shareConfigEqual(a, b ShareGroupConfig) bool {
	return reflect.DeepEqual(a, b)
}

// load builds the group's share-partitions from what meta.db holds and
// stores the configuration and the start of every new share-partition
// before the group hands out anything, so that a restart starts where
// this one did. A partition with no state, of a topic the group has
// state for, was added since: it starts at its first record, as at run
// time (refresh).
func (g *ShareGroup) load(states map[TopicPartition][]byte) error {
	known := map[string]bool{}
	for tp := range states {
		known[tp.Topic] = true
	}
	for _, name := range g.cfg.Topics {
		t, err := g.s.Topic(name)
		if err != nil {
			return errorf("stream: share group %s: %w", g.id, err)
		}
		for _, p := range t.partitionList() {
			tp := TopicPartition{name, p.id}
			sp := &sharePartition{tp: tp, p: p}
			if v, ok := states[tp]; ok {
				if err := sp.decode(v); err != nil {
					return errorf("stream: share group %s: %w", g.id, err)
				}
				if hw := p.HighWatermark(); sp.start > hw {
					// Only a power loss under SyncPeriodic or SyncNever
					// takes records the group saw from the log.
					g.log.Warn("share group state is ahead of the log; starting at its end", "topic", name, "partition", p.id,
						"start", sp.start, "high_watermark", hw)
					sp.start, sp.stored, sp.dirty = hw, nil, true
				}
			} else {
				sp.start = p.HighWatermark()
				if g.cfg.StartAt == StartEarliest || known[name] {
					sp.start = p.StartOffset()
				}
				sp.dirty = true
			}
			g.addLocked(sp)
		}
	}
	config, err := json.Marshal(g.cfg)
	if err != nil {
		return errorf("stream: share group %s: %w", g.id, err)
	}
	var puts []sharePut
	for _, sp := range g.order {
		if sp.dirty {
			sp.dirty = false
			puts = append(puts, sharePut{sp.tp, sp.encode()})
		}
	}
	return g.writeState(puts, config)
}

// addLocked adds a share-partition.
func (g *ShareGroup) addLocked(sp *sharePartition) {
	g.parts[sp.tp] = sp
	i, _ := slices.BinarySearchFunc(g.order, sp.tp, func(a *sharePartition, tp TopicPartition) int {
		return compareTP(a.tp, tp)
	})
	g.order = slices.Insert(g.order, i, sp)
}

func compareTP(a, b TopicPartition) int {
	if a.Topic != b.Topic {
		if a.Topic < b.Topic {
			return -1
		}
		return 1
	}
	return int(a.Partition) - int(b.Partition)
}

// refresh follows the group's topics: partitions added since are read
// from their start, and the partitions of a deleted (or deleted and
// recreated) topic are dropped, with what members held of them.
func (g *ShareGroup) refresh() {
	g.mu.Lock()
	topics := g.cfg.Topics
	g.mu.Unlock()
	for _, name := range topics {
		t, _ := g.s.Topic(name)
		var list []*Partition
		if t != nil {
			list = t.partitionList()
		}
		g.mu.Lock()
		for tp, sp := range g.parts {
			if tp.Topic == name && (int(tp.Partition) >= len(list) || list[tp.Partition] != sp.p) {
				g.dropLocked(sp)
			}
		}
		for _, p := range list {
			if g.parts[TopicPartition{name, p.id}] == nil {
				g.addLocked(&sharePartition{tp: TopicPartition{name, p.id}, p: p, start: p.StartOffset(), dirty: true})
			}
		}
		g.mu.Unlock()
	}
}

// dropLocked forgets a share-partition of a deleted topic.
func (g *ShareGroup) dropLocked(sp *sharePartition) {
	for i := range sp.entries {
		if e := &sp.entries[i]; e.state == shareAcquired {
			e.owner.held--
		}
	}
	delete(g.parts, sp.tp)
	g.order = slices.DeleteFunc(g.order, func(x *sharePartition) bool { return x == sp })
	sp.entries = nil
}

// fill reads records into the windows that have room, outside the lock.
func (g *ShareGroup) fill() {
	type job struct {
		sp       *sharePartition
		from     int64
		room     int
		maxBytes int
	}
	var jobs []job
	g.mu.Lock()
	for _, sp := range g.order {
		if sp.filling {
			continue
		}
		if ls := sp.p.StartOffset(); sp.start < ls {
			g.skipLocked(sp, ls)
		}
		room := g.cfg.MaxPartitionLocks - len(sp.entries)
		if room <= 0 || sp.end() >= sp.p.HighWatermark() {
			continue
		}
		sp.filling = true
		jobs = append(jobs, job{sp, sp.end(), room, 1 << 20})
	}
	g.mu.Unlock()
	added := false
	for _, j := range jobs {
		recs, err := j.sp.p.Read(j.from, j.maxBytes)
		g.mu.Lock()
		j.sp.filling = false
		if err != nil || j.sp.end() != j.from || g.parts[j.sp.tp] != j.sp {
			g.mu.Unlock()
			if err != nil && !errors.Is(err, ErrClosed) && !errors.Is(err, ErrOffsetOutOfRange) {
				g.log.Error("share group read", "topic", j.sp.tp.Topic, "partition", j.sp.tp.Partition, "offset", j.from, "error", err)
			}
			continue
		}
		sp := j.sp
		for _, r := range recs {
			if r.Offset < sp.end() {
				continue
			}
			if r.Offset != sp.end() || len(sp.entries) >= g.cfg.MaxPartitionLocks {
				break
			}
			e := shareEntry{rec: r}
			if st, ok := sp.stored[r.Offset]; ok {
				e.state, e.deliveries = st.state, st.deliveries
				delete(sp.stored, r.Offset)
			}
			sp.entries = append(sp.entries, e)
			added = true
		}
		sp.advance()
		g.mu.Unlock()
	}
	if added {
		g.mu.Lock()
		g.notifyLocked()
		g.mu.Unlock()
	}
}

// skipLocked moves a share-partition's start up to the log's start:
// retention deleted the records below it.
func (g *ShareGroup) skipLocked(sp *sharePartition, to int64) {
	lost := 0
	for sp.start < to && len(sp.entries) > 0 {
		e := &sp.entries[0]
		if !e.state.finished() {
			lost++
		}
		if e.state == shareAcquired {
			e.owner.held--
		}
		sp.entries = sp.entries[1:]
		sp.start++
	}
	if sp.start < to {
		for off := range sp.stored {
			if off < to {
				delete(sp.stored, off)
			}
		}
		lost += int(to - sp.start) // an upper bound: some may have been finished
		sp.start = to
	}
	sp.advance()
	sp.dirty = true
	g.log.Warn("retention deleted records the share group had not finished", "topic", sp.tp.Topic, "partition", sp.tp.Partition,
		"records", lost, "start", to)
}

// notifyLocked wakes the pollers waiting for records.
func (g *ShareGroup) notifyLocked() {
	close(g.changed)
	g.changed = make(chan struct{})
}

// shutdown closes the group: members get ErrClosed; the committer stores
// what changed and stops.
func (g *ShareGroup) shutdown() {
	g.mu.Lock()
	if g.closed {
		g.mu.Unlock()
		<-g.done
		return
	}
	g.closed = true
	for m := range g.members {
		m.closed = true
	}
	g.notifyLocked()
	g.mu.Unlock()
	close(g.stop)
	<-g.done
}

// ID returns the group's name.
func (g *ShareGroup) ID() string { return g.id }

// Config returns the group's configuration, defaults filled in.
func (g *ShareGroup) Config() ShareGroupConfig {
	g.mu.Lock()
	defer g.mu.Unlock()
	c := g.cfg
	c.Topics = slices.Clone(c.Topics)
	return c
}

// Members returns the IDs of the group's members, sorted.
func (g *ShareGroup) Members() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	ids := make([]string, 0, len(g.members))
	for m := range g.members {
		ids = append(ids, m.id)
	}
	slices.Sort(ids)
	return ids
}

// SharePartitionStats is a share group's state on one partition.
type SharePartitionStats struct {
	// StartOffset is the share-partition start: every record below it is
	// accepted or rejected. Retention waits for it (see
	// ShareGroupConfig.IgnoreRetention).
	StartOffset int64
	// EndOffset is the end of the in-flight window: the next record the
	// group reads from the log.
	EndOffset int64
	// HighWatermark is the partition's.
	HighWatermark int64
	// InFlight counts the records of the window not finished: available
	// for (re)delivery, acquired, or being dead-lettered.
	InFlight int
	// Acquired counts the records a member holds now (lock not expired).
	Acquired int
	// Backlog counts the records not finished: InFlight plus those past
	// the window, up to the high watermark.
	Backlog int64
	// Accepted, Rejected and DeadLettered count the records finished so
	// far (since the group began on the partition, or was reset).
	Accepted, Rejected, DeadLettered int64
}

// Stats returns the group's state on each of its partitions.
func (g *ShareGroup) Stats() (map[TopicPartition]SharePartitionStats, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return nil, errorf("stream: share group %s: %w", g.id, ErrClosed)
	}
	now := time.Now()
	out := make(map[TopicPartition]SharePartitionStats, len(g.parts))
	for tp, sp := range g.parts {
		st := SharePartitionStats{
			StartOffset: sp.start, EndOffset: sp.end(), HighWatermark: sp.p.HighWatermark(),
			Accepted: sp.accepted, Rejected: sp.rejected, DeadLettered: sp.deadLettered,
		}
		for i := range sp.entries {
			e := &sp.entries[i]
			if !e.state.finished() {
				st.InFlight++
			}
			if e.state == shareAcquired && now.Before(e.until) {
				st.Acquired++
			}
		}
		st.Backlog = int64(st.InFlight) + max(0, st.HighWatermark-st.EndOffset)
		for off, e := range sp.stored {
			if off < st.HighWatermark && e.state.finished() {
				st.Backlog--
			}
		}
		out[tp] = st
	}
	return out, nil
}

// Reset moves the group on every partition to at (StartEarliest: the
// log's start; StartLatest: its end), forgetting every record in flight
// and the totals. It needs a group without members (ErrGroupNotEmpty),
// and returns once the new state is stored.
func (g *ShareGroup) Reset(ctx context.Context, at StartOffset) error {
	if err := checkContext(ctx, "share group reset"); err != nil {
		return err
	}
	if at != StartEarliest && at != StartLatest {
		return errorf("stream: share group %s: reset: %w", g.id, configError("at", at))
	}
	g.mu.Lock()
	if g.closed {
		g.mu.Unlock()
		return errorf("stream: share group %s: reset: %w", g.id, ErrClosed)
	}
	if n := len(g.members); n > 0 {
		g.mu.Unlock()
		return errorf("stream: share group %s: reset: it has %d members: %w", g.id, n, ErrGroupNotEmpty)
	}
	for _, sp := range g.order {
		sp.entries, sp.stored = nil, nil
		sp.start = sp.p.HighWatermark()
		if at == StartEarliest {
			sp.start = sp.p.StartOffset()
		}
		sp.accepted, sp.rejected, sp.deadLettered = 0, 0, 0
		sp.dirty = true
	}
	b := g.batchLocked()
	g.mu.Unlock()
	return g.wait(ctx, b)
}

// ShareGroups returns the names of every share group stored in meta.db or
// open, sorted. It returns nil after Close.
func (s *Stream) ShareGroups() []string {
	s.shares.mu.Lock()
	if s.shares.closed {
		s.shares.mu.Unlock()
		return nil
	}
	set := map[string]bool{}
	for id := range s.shares.groups {
		set[id] = true
	}
	s.shares.mu.Unlock()
	s.db.View(func(tx *bbolt.Tx) error {
		if b := tx.Bucket(bucketShareGroups); b != nil {
			b.ForEachBucket(func(k []byte) error { set[string(k)] = true; return nil })
		}
		return nil
	})
	return slices.Sorted(maps.Keys(set))
}

// DeleteShareGroup deletes a share group and its state. It fails with
// ErrGroupNotEmpty while the group has members and ErrUnknownGroup for a
// group that does not exist. An open *ShareGroup of a deleted group
// returns ErrClosed.
func (s *Stream) DeleteShareGroup(id string) error {
	r := &s.shares
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return errorf("stream: delete share group %s: %w", id, ErrClosed)
	}
	g := r.groups[id]
	if g != nil {
		g.mu.Lock()
		n := len(g.members)
		g.mu.Unlock()
		if n > 0 {
			return errorf("stream: delete share group %s: it has %d members: %w", id, n, ErrGroupNotEmpty)
		}
		delete(r.groups, id)
		g.shutdown()
	}
	found := g != nil
	err := s.db.Update(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketShareGroups)
		if b == nil || b.Bucket([]byte(id)) == nil {
			return nil
		}
		found = true
		return b.DeleteBucket([]byte(id))
	})
	if err != nil {
		return errorf("stream: delete share group %s: %w", id, err)
	}
	if !found {
		return errorf("stream: delete share group %s: %w", id, ErrUnknownGroup)
	}
	return nil
}

// deadJob is a rejected record on its way to the dead-letter topic.
type deadJob struct {
	sp     *sharePartition
	rec    *Record
	reason string
	count  uint16
}

// finishDead copies rejected records to the dead-letter topic (if any),
// outside the lock, then marks them rejected. A record whose copy failed
// goes back to available, to be rejected again after MaxReleaseBackoff.
// It returns the batch storing the outcome.
func (g *ShareGroup) finishDead(jobs []deadJob) *shareBatch {
	g.mu.Lock()
	topic := g.cfg.DeadLetterTopic
	g.mu.Unlock()
	errs := make([]error, len(jobs))
	if topic != "" {
		for i, j := range jobs {
			errs[i] = g.deadLetter(topic, j)
		}
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	now := time.Now()
	for i, j := range jobs {
		e := j.sp.entry(j.rec.Offset)
		if g.parts[j.sp.tp] != j.sp || e == nil || e.state != shareDeadLettering {
			continue // reset or deleted meanwhile
		}
		if errs[i] != nil {
			g.log.Error("share group could not dead-letter a record; trying again later", "topic", j.rec.Topic,
				"partition", j.rec.Partition, "offset", j.rec.Offset, "error", errs[i])
			e.state, e.until = shareAvailable, now.Add(g.cfg.MaxReleaseBackoff)
			continue
		}
		e.state = shareRejected
		j.sp.rejected++
		if topic != "" {
			j.sp.deadLettered++
		}
		g.log.Warn("share group rejected a record", "topic", j.rec.Topic, "partition", j.rec.Partition, "offset", j.rec.Offset,
			"deliveries", j.count, "reason", j.reason, "dead_letter_topic", topic)
	}
	for _, j := range jobs {
		j.sp.advance()
		j.sp.dirty = true
	}
	g.notifyLocked()
	return g.batchLocked()
}

// deadLetter appends a copy of a rejected record, with why, to the
// dead-letter topic: the headers of RetryPolicy.DeadLetterTopic plus
// stream.dlt.group and stream.dlt.deliveries.
func (g *ShareGroup) deadLetter(name string, j deadJob) error {
	r := j.rec
	t, err := g.s.Topic(name)
	if err != nil {
		return errorf("stream: share group %s: dead-letter topic %s for %s-%d at %d: %w", g.id, name, r.Topic, r.Partition, r.Offset, err)
	}
	err = appendDeadLetter(t, r, j.reason,
		Header{Key: "stream.dlt.group", Value: []byte(g.id)},
		Header{Key: "stream.dlt.deliveries", Value: strconv.AppendInt(nil, int64(j.count), 10)})
	if err != nil {
		return errorf("stream: share group %s: dead-letter %s-%d at %d: %w", g.id, r.Topic, r.Partition, r.Offset, err)
	}
	return nil
}

// shareRetentionFloors returns, for each partition, the offset below which
// time-based retention may delete: the smallest stored start of the
// share groups that hold retention on its topic (math.MaxInt64: none
// does). A partition such a group has no stored state for yet is held
// from 0.
func (s *Stream) shareRetentionFloors() func(topic string, partition int32) int64 {
	load := sync.OnceValue(s.loadShareRetentionFloors)
	return func(topic string, partition int32) int64 { return load()(topic, partition) }
}

// loadShareRetentionFloors reads the floors of shareRetentionFloors.
func (s *Stream) loadShareRetentionFloors() func(topic string, partition int32) int64 {
	held := map[string]bool{}             // topics some group holds
	floors := map[TopicPartition]int64{}  // the smallest stored start
	counted := map[string]map[int32]int{} // topic → partition → groups with state
	groupsOf := map[string]int{}          // topic → groups holding it
	s.db.View(func(tx *bbolt.Tx) error {
		root := tx.Bucket(bucketShareGroups)
		if root == nil {
			return nil
		}
		return root.ForEachBucket(func(id []byte) error {
			gb := root.Bucket(id)
			var cfg ShareGroupConfig
			if json.Unmarshal(gb.Get(keyShareConfig), &cfg) != nil || cfg.IgnoreRetention {
				return nil
			}
			sb := gb.Bucket(bucketShareState)
			for _, t := range cfg.Topics {
				held[t] = true
				groupsOf[t]++
				if sb == nil || sb.Bucket([]byte(t)) == nil {
					continue
				}
				sb.Bucket([]byte(t)).ForEach(func(k, v []byte) error {
					if len(k) != 4 {
						return nil
					}
					sp := sharePartition{tp: TopicPartition{Topic: t, Partition: int32(binary.BigEndian.Uint32(k))}}
					if sp.decode(v) != nil {
						return nil
					}
					if f, ok := floors[sp.tp]; !ok || sp.start < f {
						floors[sp.tp] = sp.start
					}
					if counted[t] == nil {
						counted[t] = map[int32]int{}
					}
					counted[t][sp.tp.Partition]++
					return nil
				})
			}
			return nil
		})
	})
	return func(topic string, partition int32) int64 {
		if !held[topic] {
			return 1<<63 - 1
		}
		if counted[topic][partition] < groupsOf[topic] {
			return 0 // a holding group has not started on it
		}
		return floors[TopicPartition{topic, partition}]
	}
}

// String describes the group for logs.
func (g *ShareGroup) String() string { return fmt.Sprintf("share group %s", g.id) }
