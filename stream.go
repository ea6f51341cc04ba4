package stream

import "errors"

// Sentinel errors, matched with errors.Is. Returned errors wrap them with
// the context a caller needs (topic, partition, offset, file, position).
var (
	// ErrClosed is returned by every call on a closed Stream, Producer,
	// Consumer or Partition.
	ErrClosed = errors.New("stream: closed")
	// ErrUnknownTopic is returned by Topic, DeleteTopic and producers for
	// a topic that does not exist (and is not auto-created).
	ErrUnknownTopic = errors.New("stream: unknown topic")
	// ErrTopicExists is returned by CreateTopic for a name already taken.
	ErrTopicExists = errors.New("stream: topic already exists")
	// ErrInvalidName is returned for topic and group names outside Kafka's
	// rule: 1 to 249 characters of [a-zA-Z0-9._-], not "." or "..".
	ErrInvalidName = errors.New("stream: invalid name")
	// ErrInvalidConfig is returned by Open, CreateTopic, NewProducer,
	// ConsumerGroup and NewConsumer for a bad configuration field, which
	// the error names.
	ErrInvalidConfig = errors.New("stream: invalid configuration")
	// ErrOffsetOutOfRange is returned by Read, Seek and Poll for an offset
	// below the partition's start or above its high watermark.
	ErrOffsetOutOfRange = errors.New("stream: offset out of range")
	// ErrRecordTooLarge is returned by appends and sends of a batch larger
	// than Options.MaxRecordBytes; nothing is written.
	ErrRecordTooLarge = errors.New("stream: record too large")
	// ErrCorrupt is returned by reads that meet a damaged batch, and by
	// Open for damage recovery cannot repair; the error names the file
	// and byte position.
	ErrCorrupt = errors.New("stream: corrupt data")
	// ErrFenced is returned by commits from a consumer group member that
	// was evicted or rebalanced away; the commit changes nothing.
	ErrFenced = errors.New("stream: fenced by a newer group generation")
	// ErrNotLeader is returned by writes to a replica that is not the
	// partition's leader.
	ErrNotLeader = errors.New("stream: not the partition leader")
	// ErrNotEnoughReplicas is returned when fewer replicas than a topic
	// needs are available.
	ErrNotEnoughReplicas = errors.New("stream: not enough replicas")
	// ErrTimeout is returned when a delivery or an operation's deadline
	// passes.
	ErrTimeout = errors.New("stream: timed out")
)
