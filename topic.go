package stream

import (
	"encoding/json"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/bbolt"
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
// Stream.Topic. Its partitions only grow (Stream.CreatePartitions); a
// deleted topic's Topic keeps its last state, and a topic recreated under
// the same name is a new Topic.
type Topic struct {
	name string
	id   uint64 // the cluster's topic ID; 0 on a single node

	// mu guards cfg and partitions. Their writers (CreatePartitions) also
	// hold Stream.mu, so code holding Stream.mu may read them without mu.
	mu         sync.RWMutex
	cfg        TopicConfig
	partitions []*Partition // never shrinks; a grown topic gets a new slice

	// changes counts the changes producers must notice: partitions added,
	// the topic deleted. Producers compare it with the value they saw at
	// each send, without a lock.
	changes atomic.Uint64
}

// Name returns the topic's name.
func (t *Topic) Name() string { return t.name }

// Config returns the topic's configuration, with defaults filled in.
func (t *Topic) Config() TopicConfig {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.cfg
}

// NumPartitions returns the number of partitions, which grows when
// Stream.CreatePartitions adds some.
func (t *Topic) NumPartitions() int {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return len(t.partitions)
}

// Partition returns partition i, or an error wrapping ErrUnknownTopic when
// the topic has no such partition.
func (t *Topic) Partition(i int32) (*Partition, error) {
	parts := t.partitionList()
	if i < 0 || int(i) >= len(parts) {
		return nil, errorf("stream: topic %s has no partition %d (it has %d): %w", t.name, i, len(parts), ErrUnknownTopic)
	}
	return parts[i], nil
}

// partitionList returns the topic's partitions: a slice never written
// again, safe to read without a lock.
func (t *Topic) partitionList() []*Partition {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.partitions
}

// CreatePartitions grows topic to total partitions, as Kafka's
// CreatePartitions (kafka-topics --alter --partitions): the existing
// partitions and their records stay as they are, the new ones start
// empty, and producers route records over every partition from their
// next send (so a key may map to a different partition than before, as
// in Kafka). Partitions are never removed: a total not above the current
// count fails with ErrInvalidConfig. It fails with ErrUnknownTopic,
// ErrClosed, or ErrTopicExists when a new partition's directory already
// exists (left by something else; it is never adopted).
//
// It is crash-safe: the new count is committed to meta.db first, and Open
// creates the directories of partitions a crash left without one. A
// failure after the commit takes the new partitions back, unless their
// directories cannot be removed: then the new count stays committed, and
// the next Open completes it.
func (s *Stream) CreatePartitions(topic string, total int) error {
	if s.cluster != nil {
		if s.isClosed() {
			return errorf("stream: create partitions of topic %s: %w", topic, ErrClosed)
		}
		return s.cluster.createPartitions(topic, total)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errorf("stream: create partitions of topic %s: %w", topic, ErrClosed)
	}
	t, ok := s.topics[topic]
	if !ok {
		return errorf("stream: create partitions of topic %s: %w", topic, ErrUnknownTopic)
	}
	have := len(t.partitions)
	if total <= have {
		return errorf("stream: create partitions of topic %s: it has %d partitions, and can only grow (asked for %d): %w", topic, have, total, ErrInvalidConfig)
	}
	cfg := t.cfg
	cfg.Partitions = total
	if _, err := cfg.withDefaults("TopicConfig."); err != nil {
		return errorf("stream: create partitions of topic %s: %w", topic, err)
	}
	for i := have; i < total; i++ {
		if ok, _ := s.fs.Exists(s.partitionDir(topic, i)); ok {
			return errorf("stream: create partitions of topic %s: directory %s already exists and belongs to no topic; move it away first: %w",
				topic, s.partitionDir(topic, i), ErrTopicExists)
		}
	}
	// meta.db is the commit point, as for CreateTopic.
	var old []byte
	err := s.db.Update(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketTopics)
		old = slices.Clone(b.Get([]byte(topic)))
		var rec topicRecord
		if err := json.Unmarshal(old, &rec); err != nil {
			return err
		}
		rec.Config = cfg
		v, _ := json.Marshal(rec)
		return b.Put([]byte(topic), v)
	})
	if err != nil {
		return errorf("stream: create partitions of topic %s: %w", topic, err)
	}
	var added []*Partition
	// undo takes the new partitions back after a failure: their
	// directories first, then the count in meta.db. A directory that
	// cannot be removed keeps the new count committed, so that the next
	// Open adopts what is on disk rather than meeting directories that
	// belong to no topic (which would refuse every retry).
	undo := func() {
		for _, p := range added {
			p.close()
		}
		for i := have; i < total; i++ {
			if err := s.fs.RemoveAll(s.partitionDir(topic, i)); err != nil {
				s.log.Error("create partitions failed, and its directories could not be removed; the next Open completes it",
					"topic", topic, "partitions", total, "error", err)
				return
			}
		}
		if err := s.fs.SyncDir(filepath.Join(s.dir, "topics")); err != nil {
			s.log.Error("create partitions failed, and the removal of its directories could not be synced; the next Open completes it",
				"topic", topic, "partitions", total, "error", err)
			return
		}
		s.db.Update(func(tx *bbolt.Tx) error { return tx.Bucket(bucketTopics).Put([]byte(topic), old) })
	}
	pc := s.partitionConfigFor(cfg)
	for i := have; i < total; i++ {
		p, err := openPartition(s.fs, s.partitionDir(topic, i), topic, int32(i), pc, s.log)
		if err != nil {
			undo()
			return errorf("stream: create partitions of topic %s: open partition %d: %w", topic, i, err)
		}
		added = append(added, p)
	}
	if err := s.fs.SyncDir(filepath.Join(s.dir, "topics")); err != nil {
		undo()
		return errorf("stream: create partitions of topic %s: %w", topic, err)
	}
	t.mu.Lock()
	t.cfg = cfg
	t.partitions = append(slices.Clip(t.partitions), added...)
	t.mu.Unlock()
	t.changes.Add(1)
	s.log.Info("created partitions", "topic", topic, "partitions", total, "were", have)
	return nil
}

// validName applies Kafka's rule for topic and group names.
func validName(kind, name string) error {
	if len(name) == 0 || len(name) > 249 || name == "." || name == ".." {
		return errorf("stream: %s name %q: must be 1 to 249 characters, not \".\" or \"..\": %w", kind, name, ErrInvalidName)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return errorf("stream: %s name %q: character %q is not one of [a-zA-Z0-9._-]: %w", kind, name, c, ErrInvalidName)
		}
	}
	return nil
}
