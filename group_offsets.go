package stream

import (
	"encoding/json"
	"fmt"
	"time"

	"go.etcd.io/bbolt"
)

// Committed offsets in meta.db: fenced commits (written outside the group
// lock), and their deletion with a topic.

// commit writes offs in one meta.db transaction if member id owns every
// partition named, and fails with ErrFenced otherwise, writing nothing.
// An implicit commit (Commit, auto-commit, Run) never moves an offset
// backwards; an explicit one (CommitOffsets) may.
//
// The fence is checked under g.mu, but the transaction and its fsync run
// outside it, so heartbeats and other members' commits do not wait for
// them. Ownership may still change meanwhile (an eviction): the
// partitions stay marked in g.committing until the write is done, and
// acquire hands none of them to a new owner before that, so a new owner
// never reads a committed offset that an old owner's write then changes.
func (g *ConsumerGroup) commit(id string, offs map[TopicPartition]OffsetAndMetadata, implicit bool) error {
	if g.cl != nil {
		return g.cl.commit(id, offs, implicit)
	}
	g.mu.Lock()
	if g.closed {
		g.mu.Unlock()
		return errorf("stream: group %s: commit: %w", g.id, ErrClosed)
	}
	m := g.members[id]
	if m == nil || m.consumer == nil {
		g.mu.Unlock()
		return errorf("stream: group %s: commit by member %s, which was evicted or left: %w", g.id, id, ErrFenced)
	}
	for tp := range offs {
		if g.owner[tp] != m {
			g.mu.Unlock()
			return errorf("stream: group %s: commit of %s-%d by member %s, which does not own it in generation %d: %w",
				g.id, tp.Topic, tp.Partition, id, g.generation, ErrFenced)
		}
	}
	if len(offs) == 0 {
		g.mu.Unlock()
		return nil
	}
	for tp := range offs {
		g.committing[tp]++
	}
	gen, fault := g.generation, g.commitFault
	g.mu.Unlock()

	began := time.Now()
	err := g.writeOffsets(offs, implicit, gen, began.UTC(), fault)
	g.committedBy(id, offs, began, err)

	g.mu.Lock()
	defer g.mu.Unlock()
	moved := false
	for tp := range offs {
		if g.committing[tp]--; g.committing[tp] == 0 {
			delete(g.committing, tp)
		}
		moved = moved || g.owner[tp] != m
	}
	if moved {
		g.notifyLocked() // a member waiting to acquire one of them may go on
	}
	return err
}

// writeOffsets writes committed offsets in one transaction, stamped with
// generation gen and time now; with implicit, an offset lower than or
// equal to the stored one is skipped. Offsets of a topic that no longer
// exists are skipped (implicit) or fail with ErrTopicDeleted, inside the
// transaction, so a commit racing DeleteTopic never brings the deleted
// topic's offsets back.
func (g *ConsumerGroup) writeOffsets(offs map[TopicPartition]OffsetAndMetadata, implicit bool, gen int64, now time.Time, fault func()) error {
	if g.cl != nil {
		return g.cl.writeOffsets(offs)
	}
	err := g.s.db.Update(func(tx *bbolt.Tx) error {
		if fault != nil {
			fault()
		}
		groups := tx.Bucket(bucketGroups)
		var gb *bbolt.Bucket
		if groups != nil {
			gb = groups.Bucket([]byte(g.id))
		}
		if gb == nil {
			return fmt.Errorf("the group was deleted: %w", ErrClosed)
		}
		ob, err := gb.CreateBucketIfNotExists(bucketOffsets)
		if err != nil {
			return err
		}
		topics := tx.Bucket(bucketTopics)
		for tp, o := range offs {
			if !topicLive(topics, tp.Topic) {
				if implicit {
					continue
				}
				return fmt.Errorf("%s-%d: %w", tp.Topic, tp.Partition, ErrTopicDeleted)
			}
			tb, err := ob.CreateBucketIfNotExists([]byte(tp.Topic))
			if err != nil {
				return err
			}
			key := partitionKey(tp.Partition)
			if implicit {
				if v := tb.Get(key); v != nil {
					var old OffsetAndMetadata
					if json.Unmarshal(v, &old) == nil && old.Offset >= o.Offset {
						continue
					}
				}
			}
			o.Generation, o.Time = gen, now
			v, _ := json.Marshal(o)
			if err := tb.Put(key, v); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return errorf("stream: group %s: commit: %w", g.id, err)
	}
	return nil
}

// topicLive reports whether the topics bucket holds name, not marked for
// deletion.
func topicLive(topics *bbolt.Bucket, name string) bool {
	if topics == nil {
		return false
	}
	v := topics.Get([]byte(name))
	if v == nil {
		return false
	}
	var rec topicRecord
	return json.Unmarshal(v, &rec) == nil && !rec.Deleting
}

// deleteTopicOffsetsTx deletes every group's committed offsets of topic, and
// every share group's stored progress on it,
// in DeleteTopic's transaction: a topic recreated under the same name is
// read from its start (by StartAt), as in Kafka.
func deleteTopicOffsetsTx(tx *bbolt.Tx, topic string) error {
	if groups := tx.Bucket(bucketGroups); groups != nil {
		err := groups.ForEachBucket(func(id []byte) error {
			ob := groups.Bucket(id).Bucket(bucketOffsets)
			if ob == nil || ob.Bucket([]byte(topic)) == nil {
				return nil
			}
			return ob.DeleteBucket([]byte(topic))
		})
		if err != nil {
			return err
		}
	}
	// Share groups' stored progress on the topic (sharegroup_state.go).
	if shares := tx.Bucket(bucketShareGroups); shares != nil {
		return shares.ForEachBucket(func(id []byte) error {
			sb := shares.Bucket(id).Bucket(bucketShareState)
			if sb == nil || sb.Bucket([]byte(topic)) == nil {
				return nil
			}
			return sb.DeleteBucket([]byte(topic))
		})
	}
	return nil
}

// committed reads the group's committed offsets.
func (g *ConsumerGroup) committed() (map[TopicPartition]OffsetAndMetadata, error) {
	if g.cl != nil {
		return g.cl.committed()
	}
	out := map[TopicPartition]OffsetAndMetadata{}
	err := g.s.db.View(func(tx *bbolt.Tx) error {
		groups := tx.Bucket(bucketGroups)
		if groups == nil {
			return nil
		}
		gb := groups.Bucket([]byte(g.id))
		if gb == nil {
			return nil
		}
		ob := gb.Bucket(bucketOffsets)
		if ob == nil {
			return nil
		}
		return forEachCommitted(ob, func(tp TopicPartition, o OffsetAndMetadata) { out[tp] = o })
	})
	if err != nil {
		return nil, errorf("stream: group %s: read committed offsets: %w", g.id, err)
	}
	return out, nil
}
