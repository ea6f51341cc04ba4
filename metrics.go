package stream

import (
	"cmp"
	"slices"
	"sync/atomic"
	"time"

	"go.etcd.io/bbolt"
)

// Metrics is a snapshot of a Stream's state and counters, for a scraper
// or an operator's page. Building one takes each partition's read lock
// briefly and reads meta.db once per consumer group, so calling it every
// second is cheap (BenchmarkMetrics: 100 partitions).
//
// Counters (Fsyncs, WriteErrors, the histogram) count since Open; they
// restart at zero when the directory is reopened.
type Metrics struct {
	Time       time.Time          // when the snapshot was taken
	Partitions []PartitionMetrics // sorted by topic, then partition
	Groups     []GroupMetrics     // sorted by group ID
	Producers  []ProducerMetrics  // the producers open in this process, oldest first
	Totals     TotalMetrics
}

// TotalMetrics sums a Metrics over its partitions and groups.
type TotalMetrics struct {
	Topics           int
	Partitions       int
	Segments         int
	Bytes            ByteSize // of record batches on disk
	Records          int64    // kept records: the sum of HighWatermark - StartOffset
	Fsyncs           uint64
	WriteErrors      uint64
	FailedPartitions int // partitions refusing writes until reopened
	Groups           int
	Producers        int
	// OpenFiles and Maps are the segment files and memory maps the
	// partitions hold open (Options.MaxOpenFiles bounds the sealed
	// segments' share).
	OpenFiles int
	Maps      int
	// UnderReplicated counts the partitions this node leads whose ISR is
	// smaller than their replica set (Kafka: UnderReplicatedPartitions).
	UnderReplicated int
	LeaderChanges   uint64
}

// PartitionMetrics is one partition's share of Metrics.
type PartitionMetrics struct {
	Topic     string
	Partition int32

	StartOffset   int64 // the first record kept (log start offset)
	EndOffset     int64 // the next offset to assign (log end offset)
	HighWatermark int64 // records below it are visible to consumers
	Bytes         ByteSize
	Segments      int

	Fsyncs       uint64    // fsyncs of the active segment by group commit
	FsyncLatency Histogram // their durations
	WriteErrors  uint64    // failed writes or syncs; the first makes the partition fail
	// Failed is the error that made the partition refuse writes until
	// reopened (see Durability in the package doc); "" while healthy.
	Failed string

	OpenFiles int // of its segments: .log, .index and .timeindex files open
	Maps      int // memory maps of its segments

	// Replication is nil on a single node.
	Replication *ReplicationMetrics `json:",omitempty"`
}

// ReplicationMetrics is a replicated partition's state as this node sees
// it.
type ReplicationMetrics struct {
	Leader      NodeID // 0 while none
	LeaderEpoch int32
	Replicas    []NodeID
	ISR         []NodeID
	Leading     bool // this node leads the partition
	// UnderReplicated: this node leads and the ISR is smaller than the
	// replica set.
	UnderReplicated bool
	// LeaderChanges counts the new leaders this node has seen since Open.
	LeaderChanges uint64
	// Followers, on the leader: each other replica's fetch position.
	Followers []FollowerMetrics `json:",omitempty"`
}

// FollowerMetrics is what a partition's leader knows of one follower.
type FollowerMetrics struct {
	Node      NodeID
	EndOffset int64 // its durable log end; -1 before its first fetch
	// Lag is the leader's log end minus EndOffset, in records (Kafka's
	// replica lag).
	Lag int64
	// CaughtUp is when it last fetched up to the leader's log end.
	CaughtUp time.Time
	InSync   bool
}

// ProducerMetrics is one Producer's share of Metrics.
type ProducerMetrics struct {
	// ID is the producer ID of an idempotent producer; -1 when
	// idempotence is disabled.
	ID      int64
	Records uint64 // acknowledged
	Batches uint64 // acknowledged
	Retries uint64 // appends attempted again after a retriable failure
	Errors  uint64 // batches that failed for good (their records got the error)
	// BufferedBytes is the buffer reserved by records not yet
	// delivered, of BufferBytes (ProducerConfig.BufferBytes).
	BufferedBytes ByteSize
	BufferBytes   ByteSize
	// AckLatency is the time from a batch's first record sent to its
	// acknowledgement (or failure): linger, queueing, retries and the
	// append with its fsync.
	AckLatency Histogram
}

// GroupMetrics is one consumer group's share of Metrics: every group with
// committed offsets in meta.db, and every group open in this process.
type GroupMetrics struct {
	Group      string
	Open       bool     // a *ConsumerGroup is open in this process
	Members    int      // members of an open group; 0 otherwise
	MemberIDs  []string `json:",omitempty"` // their IDs, sorted
	Generation int64
	Partitions []GroupPartitionMetrics // sorted by topic, then partition
	Lag        int64                   // the sum of Partitions' Lag
	// Rebalances, CommitLatency and CommitErrors count since the group
	// was opened in this process (zero for a group not open).
	Rebalances    uint64
	CommitLatency Histogram // of the meta.db transactions of commits
	CommitErrors  uint64
}

// GroupPartitionMetrics is a group's position on one partition.
type GroupPartitionMetrics struct {
	Topic     string
	Partition int32
	Committed int64 // the next offset the group reads; -1: nothing committed
	// CommittedAt is when Committed was committed; zero when nothing is.
	CommittedAt time.Time
	// Lag is the high watermark minus Committed. Where nothing usable is
	// committed it counts from where a member would start, as
	// ConsumerGroup.Lag does (from the log start for a group not open).
	Lag int64
}

// Histogram is a latency distribution over fixed buckets: Counts[i]
// counts observations at most Bounds[i], and the last count those above
// every bound. Counts are not cumulative.
type Histogram struct {
	Bounds []time.Duration // upper bounds, ascending; shared, do not modify
	Counts []uint64        // len(Bounds)+1
	Count  uint64
	Sum    time.Duration
}

// latencyBounds are the buckets of every latency histogram: fsyncs take
// from tens of microseconds (a page cache that lies) to seconds (a
// failing disk).
var latencyBounds = []time.Duration{
	50 * time.Microsecond, 100 * time.Microsecond, 250 * time.Microsecond,
	500 * time.Microsecond, time.Millisecond, 2500 * time.Microsecond,
	5 * time.Millisecond, 10 * time.Millisecond, 25 * time.Millisecond,
	50 * time.Millisecond, 100 * time.Millisecond, 250 * time.Millisecond,
	500 * time.Millisecond, time.Second, 2500 * time.Millisecond,
}

// latencyHistogram records durations with atomic adds, no lock: a
// concurrent snapshot may see a count without its sum, never a torn
// value.
type latencyHistogram struct {
	counts [16]atomic.Uint64 // len(latencyBounds)+1
	sum    atomic.Int64      // nanoseconds
}

func (h *latencyHistogram) observe(d time.Duration) {
	i, _ := slices.BinarySearch(latencyBounds, d)
	h.counts[i].Add(1)
	h.sum.Add(int64(d))
}

func (h *latencyHistogram) snapshot() Histogram {
	out := Histogram{Bounds: latencyBounds, Counts: make([]uint64, len(h.counts))}
	for i := range h.counts {
		n := h.counts[i].Load()
		out.Counts[i] = n
		out.Count += n
	}
	out.Sum = time.Duration(h.sum.Load())
	return out
}

// partitionCounters are a partition's counters since Open. Each is
// updated with atomic adds only, off the append fast path (fsyncs,
// failures).
type partitionCounters struct {
	fsyncs      atomic.Uint64
	fsync       latencyHistogram
	writeErrors atomic.Uint64
	// leaderChanges counts new leaders of a replicated partition seen
	// by this node (hooks.go, replica.reassigned).
	leaderChanges atomic.Uint64
}

// groupCounters are a consumer group's counters since it was opened in
// this process.
type groupCounters struct {
	rebalances   atomic.Uint64
	commit       latencyHistogram // meta.db transactions of commits
	commitErrors atomic.Uint64
}

// metrics returns the partition's share of Metrics.
func (p *Partition) metrics() PartitionMetrics {
	m := PartitionMetrics{Topic: p.topic, Partition: p.id}
	p.mu.RLock()
	p.segs.Ascend(func(s *segment) bool {
		m.Segments++
		m.Bytes += ByteSize(s.size)
		return true
	})
	m.EndOffset = p.leo
	if p.err != nil {
		m.Failed = p.err.Error()
	}
	p.mu.RUnlock()
	m.StartOffset = p.StartOffset()
	m.HighWatermark = p.HighWatermark()
	m.Fsyncs = p.counters.fsyncs.Load()
	m.FsyncLatency = p.counters.fsync.snapshot()
	m.WriteErrors = p.counters.writeErrors.Load()
	m.OpenFiles, m.Maps = p.openFiles()
	m.Replication = p.replicationMetrics()
	return m
}

// openFiles counts the files and memory maps of p's segments.
func (p *Partition) openFiles() (files, maps int) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	p.segs.Ascend(func(s *segment) bool {
		s.mu.RLock()
		for _, f := range [...]vfsFile{s.f, s.idx, s.tidx} {
			if f != nil {
				files++
			}
		}
		for _, m := range [...][]byte{s.m, s.idxMap, s.tidxMap} {
			if m != nil {
				maps++
			}
		}
		s.mu.RUnlock()
		return true
	})
	return files, maps
}

// replicationMetrics reads p's replica state; nil on a single node.
func (p *Partition) replicationMetrics() *ReplicationMetrics {
	g := p.gate.Load()
	if g == nil || g.r == nil {
		return nil
	}
	leo, _ := p.logEnds()
	r := g.r
	r.mu.Lock()
	defer r.mu.Unlock()
	rm := &ReplicationMetrics{Leader: r.a.Leader, LeaderEpoch: r.a.LeaderEpoch,
		Replicas: slices.Clone(r.a.Replicas), ISR: slices.Clone(r.a.ISR), Leading: r.leading(),
		LeaderChanges: p.counters.leaderChanges.Load()}
	rm.UnderReplicated = rm.Leading && len(rm.ISR) < len(rm.Replicas)
	if rm.Leading {
		for _, id := range rm.Replicas {
			f := r.followers[id]
			if id == r.m.self || f == nil {
				continue
			}
			fm := FollowerMetrics{Node: id, EndOffset: f.end, CaughtUp: f.lastCaughtUp, InSync: slices.Contains(rm.ISR, id)}
			fm.Lag = leo - max(f.end, 0)
			rm.Followers = append(rm.Followers, fm)
		}
	}
	return rm
}

// producerCounters are a producer's counters since NewProducer, updated
// once per batch by its drain goroutines (accumulator.deliver).
type producerCounters struct {
	records, batches, retries, errors atomic.Uint64
	ack                               latencyHistogram
}

// delivered counts a batch of n records delivered (err nil) or failed
// after attempts appends, sent since created.
func (c *producerCounters) delivered(n, attempts int, created time.Time, err error) {
	if attempts > 1 {
		c.retries.Add(uint64(attempts - 1))
	}
	c.ack.observe(time.Since(created))
	if err != nil {
		c.errors.Add(1)
		return
	}
	c.batches.Add(1)
	c.records.Add(uint64(n))
}

// metrics returns the producer's share of Metrics.
func (p *Producer) metrics() ProducerMetrics {
	return ProducerMetrics{
		ID: p.id, Records: p.counters.records.Load(), Batches: p.counters.batches.Load(),
		Retries: p.counters.retries.Load(), Errors: p.counters.errors.Load(),
		BufferedBytes: ByteSize(p.buffered.Load()), BufferBytes: p.cfg.BufferBytes,
		AckLatency: p.counters.ack.snapshot(),
	}
}

// Metrics returns a snapshot of the stream's partitions, groups and
// counters. It is zero after Close.
func (s *Stream) Metrics() Metrics {
	m := Metrics{Time: time.Now()}
	s.mu.RLock()
	if s.closed {
		s.mu.RUnlock()
		return Metrics{}
	}
	m.Totals.Topics = len(s.topics)
	for _, t := range s.topics {
		for _, p := range t.partitions {
			m.Partitions = append(m.Partitions, p.metrics())
		}
	}
	for p := range s.producers {
		m.Producers = append(m.Producers, p.metrics())
	}
	s.mu.RUnlock()
	slices.SortFunc(m.Producers, func(a, b ProducerMetrics) int { return cmp.Compare(a.ID, b.ID) })
	m.Totals.Producers = len(m.Producers)
	slices.SortFunc(m.Partitions, func(a, b PartitionMetrics) int {
		return cmp.Or(cmp.Compare(a.Topic, b.Topic), cmp.Compare(a.Partition, b.Partition))
	})
	for _, pm := range m.Partitions {
		t := &m.Totals
		t.Partitions++
		t.Segments += pm.Segments
		t.Bytes += pm.Bytes
		t.Records += pm.HighWatermark - pm.StartOffset
		t.Fsyncs += pm.Fsyncs
		t.WriteErrors += pm.WriteErrors
		if pm.Failed != "" {
			t.FailedPartitions++
		}
		t.OpenFiles += pm.OpenFiles
		t.Maps += pm.Maps
		if r := pm.Replication; r != nil {
			if r.UnderReplicated {
				t.UnderReplicated++
			}
			t.LeaderChanges += r.LeaderChanges
		}
	}
	m.Groups = s.groupMetrics(m.Partitions)
	m.Totals.Groups = len(m.Groups)
	return m
}

// groupMetrics builds GroupMetrics for every group, from the partitions'
// snapshot parts (sorted).
func (s *Stream) groupMetrics(parts []PartitionMetrics) []GroupMetrics {
	find := func(tp TopicPartition) (PartitionMetrics, bool) {
		i, ok := slices.BinarySearchFunc(parts, tp, func(pm PartitionMetrics, tp TopicPartition) int {
			return cmp.Or(cmp.Compare(pm.Topic, tp.Topic), cmp.Compare(pm.Partition, tp.Partition))
		})
		if !ok {
			return PartitionMetrics{}, false
		}
		return parts[i], true
	}
	s.groups.mu.Lock()
	open := make(map[string]*ConsumerGroup, len(s.groups.groups))
	for id, g := range s.groups.groups {
		open[id] = g
	}
	s.groups.mu.Unlock()

	var out []GroupMetrics
	for _, id := range s.Groups() {
		gm := GroupMetrics{Group: id}
		committed := map[TopicPartition]OffsetAndMetadata{}
		s.db.View(func(tx *bbolt.Tx) error {
			if ob := groupOffsetsBucket(tx, id); ob != nil {
				forEachCommitted(ob, func(tp TopicPartition, o OffsetAndMetadata) { committed[tp] = o })
			}
			return nil
		})
		for _, o := range committed {
			gm.Generation = max(gm.Generation, o.Generation)
		}
		startAt := StartEarliest
		tps := map[TopicPartition]bool{}
		for tp := range committed {
			tps[tp] = true
		}
		if g := open[id]; g != nil {
			g.mu.Lock()
			gm.Open = !g.closed
			gm.Members = len(g.members)
			for id := range g.members {
				gm.MemberIDs = append(gm.MemberIDs, id)
			}
			slices.Sort(gm.MemberIDs)
			gm.Generation = g.generation
			startAt = g.cfg.StartAt
			g.mu.Unlock()
			gm.Rebalances = g.counters.rebalances.Load()
			gm.CommitLatency = g.counters.commit.snapshot()
			gm.CommitErrors = g.counters.commitErrors.Load()
			for topic, n := range g.partitionCounts() {
				for i := range n {
					tps[TopicPartition{Topic: topic, Partition: i}] = true
				}
			}
		}
		for tp := range tps {
			pm, ok := find(tp)
			if !ok {
				continue // a deleted topic: no lag to report
			}
			gp := GroupPartitionMetrics{Topic: tp.Topic, Partition: tp.Partition, Committed: -1}
			from := int64(-1)
			if c, ok := committed[tp]; ok {
				gp.Committed, gp.CommittedAt = c.Offset, c.Time
				from = c.Offset
			}
			if from < pm.StartOffset || from > pm.HighWatermark {
				from = pm.HighWatermark
				if startAt == StartEarliest {
					from = pm.StartOffset
				}
			}
			gp.Lag = pm.HighWatermark - from
			gm.Lag += gp.Lag
			gm.Partitions = append(gm.Partitions, gp)
		}
		slices.SortFunc(gm.Partitions, func(a, b GroupPartitionMetrics) int {
			return cmp.Or(cmp.Compare(a.Topic, b.Topic), cmp.Compare(a.Partition, b.Partition))
		})
		out = append(out, gm)
	}
	return out
}

// groupOffsetsBucket returns the committed offsets bucket of group id, or
// nil.
func groupOffsetsBucket(tx *bbolt.Tx, id string) *bbolt.Bucket {
	groups := tx.Bucket(bucketGroups)
	if groups == nil {
		return nil
	}
	gb := groups.Bucket([]byte(id))
	if gb == nil {
		return nil
	}
	return gb.Bucket(bucketOffsets)
}

// refusingWrites reports whether p failed and refuses writes until
// reopened. failLocked logged the failure, with its cause, once: the
// background jobs that meet the sticky error again log nothing.
func (p *Partition) refusingWrites() bool {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.err != nil
}

// observeFsync counts one fsync that took d.
func (c *partitionCounters) observeFsync(d time.Duration) {
	c.fsyncs.Add(1)
	c.fsync.observe(d)
}
