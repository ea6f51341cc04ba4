package stream

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"time"

	"github.com/dustin/go-humanize"
)

// ByteSize is a number of bytes. It prints and parses in human units
// ("64 MiB", "1.5GB", "4096") through go-humanize, so it can sit in
// configuration files read with encoding.TextUnmarshaler.
type ByteSize int64

// Common sizes.
const (
	KiB ByteSize = 1 << 10
	MiB ByteSize = 1 << 20
	GiB ByteSize = 1 << 30
)

// String formats the size in IEC units, for example "128 MiB".
func (b ByteSize) String() string {
	if b < 0 {
		return fmt.Sprintf("-%s", humanize.IBytes(uint64(-b)))
	}
	return humanize.IBytes(uint64(b))
}

// MarshalText implements encoding.TextMarshaler.
func (b ByteSize) MarshalText() ([]byte, error) { return []byte(b.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler. It accepts what
// humanize.ParseBytes accepts: "4096", "64KiB", "64 KB", "1.5 GiB".
func (b *ByteSize) UnmarshalText(text []byte) error {
	n, err := humanize.ParseBytes(string(text))
	if err != nil {
		return fmt.Errorf("%w: byte size %q: %v", ErrInvalidConfig, text, err)
	}
	if n > 1<<62 {
		return fmt.Errorf("%w: byte size %q is too large", ErrInvalidConfig, text)
	}
	*b = ByteSize(n)
	return nil
}

// SyncPolicy says when appended data is fsynced. See the package
// documentation, section Durability.
type SyncPolicy int

const (
	// SyncAlways acknowledges an append only after it is fsynced.
	// Concurrent appenders to a partition share one fsync (group commit).
	// It is the zero value and the default.
	SyncAlways SyncPolicy = iota
	// SyncPeriodic fsyncs every Options.SyncInterval. An acknowledged
	// append survives a crash of the process but may be lost with the
	// machine (power loss, kernel panic) within the interval.
	SyncPeriodic
	// SyncNever leaves flushing to the operating system (and to Sync and
	// Close). Like SyncPeriodic, an acknowledged append survives a crash of
	// the process.
	SyncNever
)

func (s SyncPolicy) String() string {
	switch s {
	case SyncAlways:
		return "always"
	case SyncPeriodic:
		return "periodic"
	case SyncNever:
		return "never"
	}
	return fmt.Sprintf("SyncPolicy(%d)", int(s))
}

// Options configure a Stream. The zero value (or a nil *Options passed to
// Open) gives the documented defaults. Open never writes to the caller's
// struct.
type Options struct {
	// Sync says when appends are fsynced. Default SyncAlways.
	// Kafka: log.flush.interval.messages=1 for SyncAlways.
	Sync SyncPolicy
	// SyncInterval is the fsync period under SyncPeriodic. Default 100ms.
	// Kafka: log.flush.interval.ms.
	SyncInterval time.Duration
	// SegmentBytes is the size at which the active segment of a partition
	// rolls. Default 128 MiB. Kafka: log.segment.bytes (1 GiB there).
	SegmentBytes ByteSize
	// SegmentAge rolls an active segment whose first record is older than
	// this, on the next append. Default 7 days. Kafka: log.roll.ms.
	SegmentAge time.Duration
	// IndexIntervalBytes is the spacing of entries in the sparse offset
	// index. Default 4 KiB. Kafka: log.index.interval.bytes.
	IndexIntervalBytes ByteSize
	// MaxRecordBytes is the largest batch an append accepts. Default
	// 8 MiB. Kafka: message.max.bytes (1 MiB there).
	MaxRecordBytes ByteSize
	// RetentionCheckInterval is how often retention runs. Default 1m.
	// Kafka: log.retention.check.interval.ms.
	RetentionCheckInterval time.Duration
	// MaxOpenFiles bounds the file descriptors that sealed segments hold,
	// three per open segment (.log, .index, .timeindex, with the indexes'
	// read-only maps): sealed segments open lazily on a read and close,
	// least recently used first, past the bound, as Pebble's table cache.
	// A segment a read is using stays open until the read is done, so
	// concurrent reads may exceed the bound by the segments they hold.
	// Each partition's active segment stays open and is not counted.
	// Default 1000; at least 3. Pebble: Options.MaxOpenFiles (Kafka has
	// such bound: it keeps every segment's log open).
	MaxOpenFiles int
	// ProducerIDExpiration is how long a partition remembers an
	// idempotent producer it has not heard from: within it, a retry of
	// one of the producer's last five batches is answered with the offset
	// it already has, however much others appended meanwhile; after it,
	// the producer's next batch is taken as a new start. Checked at each
	// roll; a restart counts every producer of the active segment as heard
	// from at Open. Default 24h; negative: never expire. Kafka:
	// producer.id.expiration.ms (1 day).
	ProducerIDExpiration time.Duration
	// DefaultTopic is the configuration of topics created by
	// AutoCreateTopics.
	DefaultTopic TopicConfig
	// AutoCreateTopics lets producers create a missing topic with
	// DefaultTopic. Default false. Kafka: auto.create.topics.enable.
	AutoCreateTopics bool
	// Logger receives operational events (recovery, retention, rolls).
	// Default: discard.
	Logger *slog.Logger
	// Cluster makes this Stream one node of a cluster whose partitions
	// are replicated between nodes (see the package doc, Replication).
	// Nil: a single node, as without it.
	Cluster *ClusterConfig
	// Hooks are called on engine events (appends, fsyncs, rolls,
	// retention, rebalances, commits, ISR changes); see Hook. Default
	// none: the hot path then pays nothing but a nil check.
	Hooks []Hook
}

// Defaults, named so documentation and tests can refer to them.
const (
	DefaultSyncInterval           = 100 * time.Millisecond
	DefaultSegmentBytes           = 128 * MiB
	DefaultSegmentAge             = 7 * 24 * time.Hour
	DefaultIndexIntervalBytes     = 4 * KiB
	DefaultMaxRecordBytes         = 8 * MiB
	DefaultRetentionCheckInterval = time.Minute
	DefaultMaxOpenFiles           = 1000
	DefaultProducerIDExpiration   = 24 * time.Hour
	DefaultRetention              = 7 * 24 * time.Hour
)

// minSegmentBytes keeps a segment large enough for a batch header and
// keeps 32-bit index positions meaningful.
const (
	minSegmentBytes = 1 * KiB
	maxSegmentBytes = 1 << 31 // index positions are uint32; Kafka caps segment.bytes at 2 GiB too
)

// withDefaults returns a private copy of o with every zero field set to its
// default, or an error wrapping ErrInvalidConfig naming the bad field.
func (o *Options) withDefaults() (Options, error) {
	var c Options
	if o != nil {
		c = *o
	}
	if c.Sync < SyncAlways || c.Sync > SyncNever {
		return c, configError("Options.Sync", c.Sync)
	}
	if c.SyncInterval < 0 {
		return c, configError("Options.SyncInterval", c.SyncInterval)
	}
	if c.SyncInterval == 0 {
		c.SyncInterval = DefaultSyncInterval
	}
	if c.SegmentBytes == 0 {
		c.SegmentBytes = DefaultSegmentBytes
	}
	if c.SegmentBytes < minSegmentBytes || c.SegmentBytes > maxSegmentBytes {
		return c, configError("Options.SegmentBytes", c.SegmentBytes)
	}
	if c.SegmentAge < 0 {
		return c, configError("Options.SegmentAge", c.SegmentAge)
	}
	if c.SegmentAge == 0 {
		c.SegmentAge = DefaultSegmentAge
	}
	if c.IndexIntervalBytes < 0 || c.IndexIntervalBytes > maxSegmentBytes {
		return c, configError("Options.IndexIntervalBytes", c.IndexIntervalBytes)
	}
	if c.IndexIntervalBytes == 0 {
		c.IndexIntervalBytes = DefaultIndexIntervalBytes
	}
	if c.MaxRecordBytes < 0 || c.MaxRecordBytes > maxSegmentBytes/2 {
		return c, configError("Options.MaxRecordBytes", c.MaxRecordBytes)
	}
	if c.MaxRecordBytes == 0 {
		c.MaxRecordBytes = DefaultMaxRecordBytes
	}
	if c.RetentionCheckInterval < 0 {
		return c, configError("Options.RetentionCheckInterval", c.RetentionCheckInterval)
	}
	if c.RetentionCheckInterval == 0 {
		c.RetentionCheckInterval = DefaultRetentionCheckInterval
	}
	if c.MaxOpenFiles < 0 || c.MaxOpenFiles > 0 && c.MaxOpenFiles < filesPerSegment {
		return c, configError("Options.MaxOpenFiles", c.MaxOpenFiles)
	}
	if c.ProducerIDExpiration == 0 {
		c.ProducerIDExpiration = DefaultProducerIDExpiration
	}
	if c.MaxOpenFiles == 0 {
		c.MaxOpenFiles = DefaultMaxOpenFiles
	}
	if _, err := c.DefaultTopic.withDefaults("Options.DefaultTopic."); err != nil {
		return c, err
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Cluster != nil {
		cc, err := c.Cluster.validate()
		if err != nil {
			return c, err
		}
		c.Cluster = &cc
	}
	return c, nil
}

// TopicConfig configures a topic. Zero fields take the documented defaults.
type TopicConfig struct {
	// Partitions is the number of partitions. Default 1. Kafka:
	// num.partitions.
	Partitions int `json:"partitions"`
	// ReplicationFactor is the number of replicas of each partition.
	// Default 1. Kafka: replication.factor. Values above 1 need
	// replication, which a single node does not have yet.
	ReplicationFactor int `json:"replication_factor"`
	// MinInSyncReplicas is how many replicas must hold a record before
	// AcksAll acknowledges it. Default 1. Kafka: min.insync.replicas.
	MinInSyncReplicas int `json:"min_insync_replicas"`
	// Retention deletes sealed segments whose newest record is older than
	// this. Default 7 days; negative keeps data forever. Kafka:
	// retention.ms.
	Retention time.Duration `json:"retention"`
	// RetentionBytes bounds the size of each partition; the oldest sealed
	// segments are deleted to stay under it. 0: unlimited. Kafka:
	// retention.bytes.
	RetentionBytes ByteSize `json:"retention_bytes"`
	// SegmentBytes overrides Options.SegmentBytes for this topic. Kafka:
	// segment.bytes.
	SegmentBytes ByteSize `json:"segment_bytes"`
}

// maxPartitions bounds Partitions; each partition holds open files and a
// mapping of its active segment.
const maxPartitions = 10000

func (c TopicConfig) withDefaults(prefix string) (TopicConfig, error) {
	if c.Partitions < 0 || c.Partitions > maxPartitions {
		return c, configError(prefix+"Partitions", c.Partitions)
	}
	if c.Partitions == 0 {
		c.Partitions = 1
	}
	if c.ReplicationFactor < 0 {
		return c, configError(prefix+"ReplicationFactor", c.ReplicationFactor)
	}
	if c.ReplicationFactor == 0 {
		c.ReplicationFactor = 1
	}
	if c.MinInSyncReplicas < 0 || c.MinInSyncReplicas > c.ReplicationFactor && c.MinInSyncReplicas != 0 {
		return c, configError(prefix+"MinInSyncReplicas", c.MinInSyncReplicas)
	}
	if c.MinInSyncReplicas == 0 {
		c.MinInSyncReplicas = 1
	}
	if c.Retention == 0 {
		c.Retention = DefaultRetention
	}
	if c.RetentionBytes < 0 {
		return c, configError(prefix+"RetentionBytes", c.RetentionBytes)
	}
	if c.SegmentBytes != 0 && (c.SegmentBytes < minSegmentBytes || c.SegmentBytes > maxSegmentBytes) {
		return c, configError(prefix+"SegmentBytes", c.SegmentBytes)
	}
	return c, nil
}

func configError(field string, v any) error {
	return fmt.Errorf("%w: %s = %v", ErrInvalidConfig, field, v)
}

// argError reports a bad argument to a call: a nil context, record,
// batch or function, or a negative size.
func argError(call, what string) error {
	return errorf("stream: %s: %s: %w", call, what, ErrInvalidConfig)
}

// checkContext refuses a nil ctx, which the standard library would
// dereference in a goroutine of ours.
func checkContext(ctx context.Context, call string) error {
	if ctx == nil {
		return argError(call, "nil context")
	}
	return ctx.Err()
}

// StartOffset says where a consumer group member starts reading a
// partition for which the group has no usable committed offset: nothing
// committed yet, or a committed offset retention has deleted. It is
// Kafka's auto.offset.reset.
type StartOffset int

const (
	// StartLatest starts at the high watermark: only records appended
	// from now on. It is the zero value and the default, as Kafka's
	// auto.offset.reset=latest.
	StartLatest StartOffset = iota
	// StartEarliest starts at the partition's StartOffset: every record
	// still kept. Kafka: auto.offset.reset=earliest.
	StartEarliest
)

func (s StartOffset) String() string {
	switch s {
	case StartLatest:
		return "latest"
	case StartEarliest:
		return "earliest"
	}
	return fmt.Sprintf("StartOffset(%d)", int(s))
}

// GroupConfig configures a consumer group. Zero fields take the documented
// defaults; Stream.ConsumerGroup never writes to the caller's struct.
type GroupConfig struct {
	// Topics are the topics every member of the group consumes; each must
	// exist. A group opened with no Topics is an admin handle (Committed,
	// Lag, ResetOffsets) that members cannot Join. Kafka: the consumer's
	// subscribe() list.
	Topics []string
	// Assignor decides which member owns which partition. Default
	// RangeAssignor. Kafka: partition.assignment.strategy.
	Assignor Assignor
	// SessionTimeout evicts a member whose heartbeats stopped for this
	// long; its partitions move to the others. A member's consumer
	// heartbeats from its own goroutine every third of it, from Join to
	// Close, whatever its handler does: progress is
	// ConsumerConfig.MaxPollInterval's business. A static member
	// (ConsumerConfig.InstanceID) that closes keeps its partitions for
	// this long. Default 10s. Kafka: session.timeout.ms.
	SessionTimeout time.Duration
	// StartAt is where a member starts on a partition with no usable
	// committed offset. Default StartLatest. Kafka: auto.offset.reset.
	StartAt StartOffset
	// InitialRebalanceDelay holds back the first assignment of an empty
	// group for this long after its first member joins, each member
	// joining meanwhile extending the wait by as much again (up to that
	// member's MaxPollInterval from the first join), so that workers
	// started together share the partitions from the start instead of
	// the first one taking them all and giving most back at its next
	// Poll. Default 0: none. Kafka: group.initial.rebalance.delay.ms
	// (3s on brokers).
	InitialRebalanceDelay time.Duration
	// CommitInterval is the auto-commit period: Poll commits the
	// positions of the records returned so far once this long has passed
	// since the last auto-commit, and a member commits before its
	// partitions are revoked and when it closes. Default 5s; negative:
	// manual commits only (Commit, CommitOffsets, Run). Kafka:
	// auto.commit.interval.ms and enable.auto.commit.
	CommitInterval time.Duration
}

// Defaults of GroupConfig and ConsumerConfig.
const (
	DefaultSessionTimeout  = 10 * time.Second
	DefaultMaxPollInterval = 5 * time.Minute
	DefaultCommitInterval  = 5 * time.Second
	DefaultMaxPollRecords  = 500
	DefaultFetchMinBytes   = 1
	DefaultFetchMaxBytes   = 50 * MiB
	DefaultFetchMaxWait    = 500 * time.Millisecond
)

func (c GroupConfig) withDefaults() (GroupConfig, error) {
	c.Topics = slices.Clone(c.Topics)
	seen := make(map[string]bool, len(c.Topics))
	for _, t := range c.Topics {
		if err := validName("topic", t); err != nil || seen[t] {
			return c, configError("GroupConfig.Topics", c.Topics)
		}
		seen[t] = true
	}
	slices.Sort(c.Topics)
	if c.Assignor == nil {
		c.Assignor = RangeAssignor
	}
	if c.SessionTimeout < 0 {
		return c, configError("GroupConfig.SessionTimeout", c.SessionTimeout)
	}
	if c.SessionTimeout == 0 {
		c.SessionTimeout = DefaultSessionTimeout
	}
	if c.StartAt != StartLatest && c.StartAt != StartEarliest {
		return c, configError("GroupConfig.StartAt", c.StartAt)
	}
	if c.InitialRebalanceDelay < 0 {
		return c, configError("GroupConfig.InitialRebalanceDelay", c.InitialRebalanceDelay)
	}
	if c.CommitInterval == 0 {
		c.CommitInterval = DefaultCommitInterval
	}
	return c, nil
}

// equal reports whether two configurations with defaults filled in are
// the same.
func (c GroupConfig) equal(d GroupConfig) bool {
	return slices.Equal(c.Topics, d.Topics) && c.Assignor.Name() == d.Assignor.Name() &&
		c.SessionTimeout == d.SessionTimeout && c.StartAt == d.StartAt && c.CommitInterval == d.CommitInterval &&
		c.InitialRebalanceDelay == d.InitialRebalanceDelay
}

// ConsumerConfig configures a Consumer, either a group member
// (ConsumerGroup.Join) or a group-less one (Stream.NewConsumer). Zero
// fields take the documented defaults; the caller's struct is never
// written to.
type ConsumerConfig struct {
	// MaxPollRecords bounds the records one Poll returns. Default 500.
	// Kafka: max.poll.records.
	MaxPollRecords int
	// FetchMinBytes is how many bytes of records (keys, values and
	// headers) Poll waits for before returning, up to FetchMaxWait.
	// Default 1: return as soon as any record is there. Kafka:
	// fetch.min.bytes.
	FetchMinBytes int
	// FetchMaxBytes bounds the bytes of records one Poll returns; a
	// single larger record is still returned. Default 50 MiB. Kafka:
	// fetch.max.bytes.
	FetchMaxBytes ByteSize
	// FetchMaxWait bounds how long Poll waits for FetchMinBytes; then it
	// returns what it has, possibly an empty slice and a nil error.
	// Default 500ms. Kafka: fetch.max.wait.ms.
	FetchMaxWait time.Duration
	// OnAssigned runs in Poll after the member receives partitions, with
	// the partitions it gained; their positions are set when it runs.
	// Kafka: ConsumerRebalanceListener.onPartitionsAssigned.
	OnAssigned func(context.Context, []TopicPartition)
	// OnRevoked runs in Poll (or Close) before partitions leave the
	// member, with the partitions it gives up: the place to commit.
	// Kafka: ConsumerRebalanceListener.onPartitionsRevoked.
	OnRevoked func(context.Context, []TopicPartition)
	// OnLost runs in Poll with partitions the member lost without giving
	// them up: after it was evicted (they may already be another
	// member's, and commits fail with ErrFenced), or because their topic
	// was deleted. Default: OnRevoked is called instead, as in Kafka.
	// Kafka: ConsumerRebalanceListener.onPartitionsLost.
	OnLost func(context.Context, []TopicPartition)
	// MaxPollInterval is the progress bound of a group member: one that
	// does not call Poll again within it after a Poll returned (its
	// handler is stuck or too slow for MaxPollRecords) is evicted, its
	// partitions go to the others, and its next Poll reports them lost
	// (OnLost) and rejoins. It is also the rebalance timeout: a member
	// that has not given up its partitions this long after a rebalance
	// asked it to (stuck in OnRevoked, or not polling) is evicted.
	// Default 5 minutes. Kafka: max.poll.interval.ms.
	MaxPollInterval time.Duration
	// Retry says what Run does when its handler fails on a record:
	// attempts, backoff, then a dead-letter topic or a callback. The
	// zero value retries nothing: Run returns the handler's error.
	Retry RetryPolicy
	// InstanceID makes the member static: when it closes it keeps its
	// partitions for GroupConfig.SessionTimeout, and a member joining
	// with the same InstanceID within that time gets them back without a
	// rebalance. A second live member with the same InstanceID fences the
	// first (its Poll returns ErrFenced). Default "" (dynamic). Kafka:
	// group.instance.id.
	InstanceID string
}

func (c ConsumerConfig) withDefaults() (ConsumerConfig, error) {
	if c.MaxPollRecords < 0 {
		return c, configError("ConsumerConfig.MaxPollRecords", c.MaxPollRecords)
	}
	if c.MaxPollRecords == 0 {
		c.MaxPollRecords = DefaultMaxPollRecords
	}
	if c.FetchMinBytes < 0 {
		return c, configError("ConsumerConfig.FetchMinBytes", c.FetchMinBytes)
	}
	if c.FetchMinBytes == 0 {
		c.FetchMinBytes = DefaultFetchMinBytes
	}
	if c.FetchMaxBytes < 0 {
		return c, configError("ConsumerConfig.FetchMaxBytes", c.FetchMaxBytes)
	}
	if c.FetchMaxBytes == 0 {
		c.FetchMaxBytes = DefaultFetchMaxBytes
	}
	if int64(c.FetchMinBytes) > int64(c.FetchMaxBytes) {
		return c, configError("ConsumerConfig.FetchMinBytes", fmt.Sprintf("%d (above FetchMaxBytes %d)", c.FetchMinBytes, c.FetchMaxBytes))
	}
	if c.FetchMaxWait < 0 {
		return c, configError("ConsumerConfig.FetchMaxWait", c.FetchMaxWait)
	}
	if c.FetchMaxWait == 0 {
		c.FetchMaxWait = DefaultFetchMaxWait
	}
	if c.MaxPollInterval < 0 {
		return c, configError("ConsumerConfig.MaxPollInterval", c.MaxPollInterval)
	}
	if c.MaxPollInterval == 0 {
		c.MaxPollInterval = DefaultMaxPollInterval
	}
	r, err := c.Retry.withDefaults()
	if err != nil {
		return c, err
	}
	c.Retry = r
	if c.InstanceID != "" {
		if err := validName("instance", c.InstanceID); err != nil {
			return c, configError("ConsumerConfig.InstanceID", fmt.Sprintf("%q", c.InstanceID))
		}
	}
	return c, nil
}

// Acks says when a producer reports a record delivered. It mirrors the
// producer setting acks; its zero value is AcksAll, Kafka's default since
// 3.0.
type Acks int8

const (
	// AcksAll reports a record once every in-sync replica holds it: the
	// partition's high watermark has passed it (acks=all, or -1). On one
	// node that is when the record is durable under Options.Sync (after
	// fsync under SyncAlways). It is the zero value and the default.
	AcksAll Acks = iota
	// AcksLeader reports a record once the partition leader has appended
	// it (acks=1). On one node, where the leader is the only replica, it
	// means the same as AcksAll; the two differ once partitions are
	// replicated, where AcksLeader does not wait for the followers and a
	// record it reported can be lost with the leader.
	AcksLeader
	// AcksNone reports a record as soon as the producer accepts it into
	// a batch, before it is written, with Offset -1 (acks=0). Failures of
	// the later append are logged to Options.Logger, not reported.
	AcksNone
)

func (a Acks) String() string {
	switch a {
	case AcksAll:
		return "all"
	case AcksLeader:
		return "leader"
	case AcksNone:
		return "none"
	}
	return fmt.Sprintf("Acks(%d)", int8(a))
}

// ProducerConfig configures a Producer (Stream.NewProducer). Zero fields
// take the documented defaults; NewProducer never writes to the caller's
// struct.
type ProducerConfig struct {
	// Acks says when a record counts as delivered: AcksAll (the zero
	// value), AcksLeader or AcksNone. Kafka: acks.
	Acks Acks
	// Linger is how long a partition's batch of SendAsync records waits
	// for more records before it is written, unless it fills first.
	// Default 5ms (Kafka's default since 4.0). A batch holding a record of
	// Send does not linger (its caller waits for the acknowledgement
	// anyway): it is written as soon as the partition is free, and Sends
	// arriving meanwhile share the next batch, so concurrent Sends batch
	// without adding Linger to each. Because zero means the default, linger.ms=0 is
	// spelled NoLinger (any negative value): a batch is written as soon
	// as the partition is free, and records arriving while the previous
	// batch of the partition is being written share the next one. Kafka:
	// linger.ms.
	Linger time.Duration
	// BatchBytes is the size at which a partition's batch is sealed and
	// written without waiting for Linger. A record larger than this gets
	// a batch of its own. Default 64 KiB; batches never exceed
	// Options.MaxRecordBytes. Kafka: batch.size (16 KiB there).
	BatchBytes ByteSize
	// BufferBytes bounds the encoded size of the records sent but not yet
	// delivered. When it is full, SendAsync and Send block until
	// deliveries free room; nothing is dropped. A record larger than it
	// fails with ErrRecordTooLarge. A producer keeps the batches it has
	// delivered for reuse, as many as BufferBytes holds, so its memory
	// stays near the most it has buffered. Default 32 MiB. Kafka:
	// buffer.memory.
	BufferBytes ByteSize
	// Partitioner chooses each record's partition. Default
	// HashPartitioner. Kafka: partitioner.class.
	Partitioner Partitioner
	// DeliveryTimeout bounds the time from a send to its callback:
	// failed appends are retried every RetryBackoff until it passes, and
	// the record then fails with ErrTimeout wrapping the last error.
	// Default 2m. Kafka: delivery.timeout.ms.
	DeliveryTimeout time.Duration
	// RetryBackoff is the pause before a failed append is retried.
	// Default 100ms. Kafka: retry.backoff.ms.
	RetryBackoff time.Duration
	// DisableIdempotence turns off the producer ID and sequence numbers
	// that keep a retried batch from being appended twice. Idempotence is
	// on by default, with any Acks. Kafka: enable.idempotence=false.
	DisableIdempotence bool
	// Compression compresses each batch's records with Kafka's codecs:
	// CompressNone (the zero value), CompressGzip, CompressSnappy,
	// CompressLZ4 or CompressZstd. A batch that does not get smaller is
	// stored uncompressed. Kafka: compression.type.
	Compression Compression
	// MaxBlock bounds how long Send and SendAsync wait for buffer room
	// when the buffer is full (BufferBytes); the record then fails with
	// ErrBufferFull. Default 60s. Kafka: max.block.ms.
	MaxBlock time.Duration
}

// NoLinger is ProducerConfig.Linger for Kafka's linger.ms=0: batches are
// written without waiting for more records.
const NoLinger time.Duration = -1

// Producer defaults, named so documentation and tests can refer to them.
const (
	DefaultLinger          = 5 * time.Millisecond
	DefaultBatchBytes      = 64 * KiB
	DefaultBufferBytes     = 32 * MiB
	DefaultDeliveryTimeout = 2 * time.Minute
	DefaultRetryBackoff    = 100 * time.Millisecond
	DefaultMaxBlock        = 60 * time.Second
)

// withDefaults returns a copy of c with every zero field set to its
// default, or an error wrapping ErrInvalidConfig naming the bad field.
func (c ProducerConfig) withDefaults() (ProducerConfig, error) {
	if c.Acks < AcksAll || c.Acks > AcksNone {
		return c, configError("ProducerConfig.Acks", c.Acks)
	}
	if c.Linger == 0 {
		c.Linger = DefaultLinger
	} else if c.Linger < 0 {
		c.Linger = 0
	}
	if c.BatchBytes < 0 {
		return c, configError("ProducerConfig.BatchBytes", c.BatchBytes)
	}
	if c.BatchBytes == 0 {
		c.BatchBytes = DefaultBatchBytes
	}
	if c.BufferBytes < 0 {
		return c, configError("ProducerConfig.BufferBytes", c.BufferBytes)
	}
	if c.BufferBytes == 0 {
		c.BufferBytes = DefaultBufferBytes
	}
	if c.Partitioner == nil {
		c.Partitioner = HashPartitioner
	}
	if c.DeliveryTimeout < 0 {
		return c, configError("ProducerConfig.DeliveryTimeout", c.DeliveryTimeout)
	}
	if c.DeliveryTimeout == 0 {
		c.DeliveryTimeout = DefaultDeliveryTimeout
	}
	if c.DeliveryTimeout < c.Linger {
		// Kafka too requires delivery.timeout.ms >= linger.ms.
		return c, configError("ProducerConfig.DeliveryTimeout", fmt.Sprintf("%v (less than Linger %v)", c.DeliveryTimeout, c.Linger))
	}
	if c.RetryBackoff < 0 {
		return c, configError("ProducerConfig.RetryBackoff", c.RetryBackoff)
	}
	if c.RetryBackoff == 0 {
		c.RetryBackoff = DefaultRetryBackoff
	}
	if !c.Compression.valid() {
		return c, configError("ProducerConfig.Compression", c.Compression)
	}
	if c.MaxBlock < 0 {
		return c, configError("ProducerConfig.MaxBlock", c.MaxBlock)
	}
	if c.MaxBlock == 0 {
		c.MaxBlock = DefaultMaxBlock
	}
	return c, nil
}

// ShareGroupConfig configures a share group (Stream.ShareGroup): a queue
// over the logs of its topics, where members acquire records one by one
// and acknowledge each. Zero fields take the documented defaults;
// Stream.ShareGroup never writes to the caller's struct. Kafka: KIP-932's
// share groups and their group.share.* settings.
type ShareGroupConfig struct {
	// Topics are the topics the group reads; each must exist. A group
	// opened with no Topics is an admin handle (Stats, Reset) on the
	// configuration last stored in meta.db; members cannot Join it.
	Topics []string
	// StartAt is where the group starts on a partition it has no state
	// for. Default StartLatest. Kafka: share.auto.offset.reset.
	StartAt StartOffset
	// AcquisitionLock is how long a member holds a record it acquired:
	// past it the record goes back to the others and the member's
	// acknowledgement fails with ErrNotAcquired. Default 30s. Kafka:
	// group.share.record.lock.duration.ms.
	AcquisitionLock time.Duration
	// MaxDeliveries is how many times a record is acquired at most: once
	// its last delivery is released or its lock expires, it is rejected
	// (and dead-lettered, with DeadLetterTopic). Default 5. Kafka:
	// group.share.delivery.count.limit.
	MaxDeliveries int
	// ReleaseBackoff is how long a released record waits before it can
	// be acquired again after its first delivery; it doubles with each
	// later delivery, up to MaxReleaseBackoff. Default 100ms.
	ReleaseBackoff time.Duration
	// MaxReleaseBackoff bounds the wait of a released record. Default 10s.
	MaxReleaseBackoff time.Duration
	// DeadLetterTopic, when set, receives a copy of each record the
	// group rejects (by Reject or the delivery limit), with the headers
	// of RetryPolicy.DeadLetterTopic (stream.dlt.topic, .partition,
	// .offset, .error) and stream.dlt.group and stream.dlt.deliveries.
	// The topic must exist when a record is rejected.
	DeadLetterTopic string
	// OrderedByKey makes every key a lane: a record is acquired only
	// once every earlier record of its key in its partition is accepted
	// or rejected, so records of one key are never in flight twice at
	// once and are processed in order. Records without a key are free.
	// Default false.
	OrderedByKey bool
	// MaxInFlightPerMember bounds the records one member holds at once.
	// Default 0: only ShareMemberConfig.MaxPollRecords per Poll.
	MaxInFlightPerMember int
	// MaxPartitionLocks bounds the in-flight window of a partition: the
	// records from the oldest unfinished one on that the group tracks.
	// A record stuck in processing holds the window's start, and no
	// record past start+MaxPartitionLocks is handed out meanwhile.
	// Default 2000, at most 1<<20. Kafka:
	// group.share.partition.max.record.locks.
	MaxPartitionLocks int
	// IgnoreRetention lets time-based retention delete records the group
	// has not finished. Default false: a segment is deleted for its age
	// only once every record in it is accepted or rejected by every
	// share group of its topic that does not set IgnoreRetention (size
	// retention, TopicConfig.RetentionBytes, still applies).
	IgnoreRetention bool
}

// Defaults of ShareGroupConfig and ShareMemberConfig.
const (
	DefaultAcquisitionLock   = 30 * time.Second
	DefaultMaxDeliveries     = 5
	DefaultReleaseBackoff    = 100 * time.Millisecond
	DefaultMaxReleaseBackoff = 10 * time.Second
	DefaultMaxPartitionLocks = 2000
)

func (c ShareGroupConfig) withDefaults() (ShareGroupConfig, error) {
	c.Topics = slices.Clone(c.Topics)
	seen := make(map[string]bool, len(c.Topics))
	for _, t := range c.Topics {
		if err := validName("topic", t); err != nil || seen[t] {
			return c, configError("ShareGroupConfig.Topics", c.Topics)
		}
		seen[t] = true
	}
	slices.Sort(c.Topics)
	if c.StartAt != StartLatest && c.StartAt != StartEarliest {
		return c, configError("ShareGroupConfig.StartAt", c.StartAt)
	}
	durations := []struct {
		name string
		v    *time.Duration
		def  time.Duration
	}{
		{"AcquisitionLock", &c.AcquisitionLock, DefaultAcquisitionLock},
		{"ReleaseBackoff", &c.ReleaseBackoff, DefaultReleaseBackoff},
		{"MaxReleaseBackoff", &c.MaxReleaseBackoff, max(DefaultMaxReleaseBackoff, c.ReleaseBackoff)},
	}
	for _, d := range durations {
		if *d.v < 0 {
			return c, configError("ShareGroupConfig."+d.name, *d.v)
		}
		if *d.v == 0 {
			*d.v = d.def
		}
	}
	if c.MaxDeliveries < 0 || c.MaxDeliveries > math.MaxUint16 {
		return c, configError("ShareGroupConfig.MaxDeliveries", c.MaxDeliveries)
	}
	if c.MaxDeliveries == 0 {
		c.MaxDeliveries = DefaultMaxDeliveries
	}
	if c.MaxInFlightPerMember < 0 {
		return c, configError("ShareGroupConfig.MaxInFlightPerMember", c.MaxInFlightPerMember)
	}
	if c.MaxPartitionLocks < 0 || c.MaxPartitionLocks > maxPartitionLocks {
		return c, configError("ShareGroupConfig.MaxPartitionLocks", c.MaxPartitionLocks)
	}
	if c.MaxPartitionLocks == 0 {
		c.MaxPartitionLocks = DefaultMaxPartitionLocks
	}
	if c.DeadLetterTopic != "" {
		if err := validName("topic", c.DeadLetterTopic); err != nil {
			return c, configError("ShareGroupConfig.DeadLetterTopic", fmt.Sprintf("%q", c.DeadLetterTopic))
		}
	}
	return c, nil
}

// ShareMemberConfig configures a member of a share group
// (ShareGroup.Join). Zero fields take the documented defaults.
type ShareMemberConfig struct {
	// MaxPollRecords bounds the records one Poll acquires. Default 500.
	// Kafka: max.poll.records.
	MaxPollRecords int
	// FetchMaxWait bounds how long Poll waits for a record to acquire;
	// then it returns an empty slice and a nil error. Default 500ms.
	FetchMaxWait time.Duration
}

func (c ShareMemberConfig) withDefaults() (ShareMemberConfig, error) {
	if c.MaxPollRecords < 0 {
		return c, configError("ShareMemberConfig.MaxPollRecords", c.MaxPollRecords)
	}
	if c.MaxPollRecords == 0 {
		c.MaxPollRecords = DefaultMaxPollRecords
	}
	if c.FetchMaxWait < 0 {
		return c, configError("ShareMemberConfig.FetchMaxWait", c.FetchMaxWait)
	}
	if c.FetchMaxWait == 0 {
		c.FetchMaxWait = DefaultFetchMaxWait
	}
	return c, nil
}
