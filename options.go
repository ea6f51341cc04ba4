package stream

import (
	"fmt"
	"log/slog"
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
	// DefaultTopic is the configuration of topics created by
	// AutoCreateTopics.
	DefaultTopic TopicConfig
	// AutoCreateTopics lets producers create a missing topic with
	// DefaultTopic. Default false. Kafka: auto.create.topics.enable.
	AutoCreateTopics bool
	// Logger receives operational events (recovery, retention, rolls).
	// Default: discard.
	Logger *slog.Logger
}

// Defaults, named so documentation and tests can refer to them.
const (
	DefaultSyncInterval           = 100 * time.Millisecond
	DefaultSegmentBytes           = 128 * MiB
	DefaultSegmentAge             = 7 * 24 * time.Hour
	DefaultIndexIntervalBytes     = 4 * KiB
	DefaultMaxRecordBytes         = 8 * MiB
	DefaultRetentionCheckInterval = time.Minute
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
	if c.IndexIntervalBytes < 0 {
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
	if _, err := c.DefaultTopic.withDefaults("Options.DefaultTopic."); err != nil {
		return c, err
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
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
