package stream

import (
	"fmt"
	"time"
)

// Record is one message of a topic: the unit producers send and consumers
// receive. Its layout on disk is a record of Kafka's RecordBatch v2.
type Record struct {
	Topic     string
	Partition int32 // set on produce; honoured only by ManualPartitioner
	Offset    int64 // set on produce and consume
	Key       []byte
	Value     []byte
	Headers   []Header
	Timestamp time.Time // zero: set at send
}

// Header is a key/value pair attached to a record, as Kafka's record
// headers.
type Header struct {
	Key   string
	Value []byte
}

// TopicPartition names one partition of a topic.
type TopicPartition struct {
	Topic     string
	Partition int32
}

// Topic is a named, partitioned log. Get one from Stream.CreateTopic or
// Stream.Topic.
type Topic struct {
	name       string
	cfg        TopicConfig
	partitions []*Partition
}

// Name returns the topic's name.
func (t *Topic) Name() string { return t.name }

// Config returns the topic's configuration, with defaults filled in.
func (t *Topic) Config() TopicConfig { return t.cfg }

// NumPartitions returns the number of partitions.
func (t *Topic) NumPartitions() int { return len(t.partitions) }

// Partition returns partition i, or an error wrapping ErrUnknownTopic when
// the topic has no such partition.
func (t *Topic) Partition(i int32) (*Partition, error) {
	if i < 0 || int(i) >= len(t.partitions) {
		return nil, fmt.Errorf("stream: topic %s has no partition %d (it has %d): %w", t.name, i, len(t.partitions), ErrUnknownTopic)
	}
	return t.partitions[i], nil
}

// validName applies Kafka's rule for topic and group names.
func validName(kind, name string) error {
	if len(name) == 0 || len(name) > 249 || name == "." || name == ".." {
		return fmt.Errorf("stream: %s name %q: must be 1 to 249 characters, not \".\" or \"..\": %w", kind, name, ErrInvalidName)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return fmt.Errorf("stream: %s name %q: character %q is not one of [a-zA-Z0-9._-]: %w", kind, name, c, ErrInvalidName)
		}
	}
	return nil
}
