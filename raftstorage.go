package stream

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sync"

	"go.etcd.io/bbolt"
	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
)

// raftStorage is raft.Storage over bbolt: the metadata raft group's log,
// hard state and snapshot. It lives in meta.db beside the topic configs
// ("raft state when clustered"), so one fsync'd bbolt transaction makes a
// Ready's hard state, entries and snapshot durable together, and a node's
// metadata and its raft state can never come from two different points in
// time.
//
// Layout: bucket "raft" holds the keys below; bucket "raft.log" holds
// entries keyed by their index, 8 bytes big-endian, so a cursor walks
// them in order.
//
// Like raft's MemoryStorage, the log is (compact index, compact term)
// followed by the entries after it: FirstIndex is compact index + 1, and
// Term answers for the compact index itself so raft can match the entry
// before the first one. The snapshot's index is at or above the compact
// index.
type raftStorage struct {
	db *bbolt.DB

	boot uint64 // this incarnation's number: 1 on the first open, +1 on every open after

	// mu guards st, which mirrors what is on disk after the last
	// committed transaction.
	mu sync.Mutex
	st raftDiskState
}

// raftDiskState is what raftStorage caches of its bucket. A write works on
// a copy and installs it once its transaction has committed.
type raftDiskState struct {
	hard         raftpb.HardState
	snap         raftpb.SnapshotMetadata // the latest snapshot's metadata; its data stays on disk
	compactIndex uint64
	compactTerm  uint64
	last         uint64 // index of the last entry; compactIndex when there is none
}

var (
	bucketRaft    = []byte("raft")
	bucketRaftLog = []byte("raft.log")

	keyHardState = []byte("hardstate")
	keySnapshot  = []byte("snapshot") // a marshalled raftpb.Snapshot, data included
	keyCompact   = []byte("compact")  // compact index, compact term: 16 bytes
	keyBoot      = []byte("boot")
)

var errRaftStorageRange = errors.New("stream: raft storage: index out of range")

// openRaftStorage opens the raft state in db, creating it on first use
// with peers as the voters: every node starts from the same empty log and
// configuration, as raft's own tests do, so no bootstrap entries are
// needed.
func openRaftStorage(db *bbolt.DB, peers []NodeID) (*raftStorage, error) {
	s := &raftStorage{db: db}
	err := db.Update(func(tx *bbolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucketRaft)
		if err != nil {
			return err
		}
		if _, err := tx.CreateBucketIfNotExists(bucketRaftLog); err != nil {
			return err
		}
		if v := b.Get(keyBoot); len(v) == 8 {
			s.boot = binary.BigEndian.Uint64(v)
		}
		s.boot++
		if err := b.Put(keyBoot, binary.BigEndian.AppendUint64(nil, s.boot)); err != nil {
			return err
		}
		if v := b.Get(keySnapshot); v == nil {
			var snap raftpb.Snapshot
			for _, p := range peers {
				snap.Metadata.ConfState.Voters = append(snap.Metadata.ConfState.Voters, uint64(p))
			}
			data, err := snap.Marshal()
			if err != nil {
				return err
			}
			if err := b.Put(keySnapshot, data); err != nil {
				return err
			}
		}
		return s.st.loadTx(tx)
	})
	if err != nil {
		return nil, errorf("stream: open raft storage: %w", err)
	}
	return s, nil
}

// loadTx fills the cache from disk.
func (s *raftDiskState) loadTx(tx *bbolt.Tx) error {
	b := tx.Bucket(bucketRaft)
	if v := b.Get(keyHardState); v != nil {
		if err := s.hard.Unmarshal(v); err != nil {
			return fmt.Errorf("hard state: %w: %v", ErrCorrupt, err)
		}
	}
	var snap raftpb.Snapshot
	if err := snap.Unmarshal(b.Get(keySnapshot)); err != nil {
		return fmt.Errorf("snapshot: %w: %v", ErrCorrupt, err)
	}
	s.snap = snap.Metadata
	if v := b.Get(keyCompact); v != nil {
		if len(v) != 16 {
			return fmt.Errorf("compact index: %w: %d bytes", ErrCorrupt, len(v))
		}
		s.compactIndex, s.compactTerm = binary.BigEndian.Uint64(v), binary.BigEndian.Uint64(v[8:])
	}
	s.last = s.compactIndex
	if k, _ := tx.Bucket(bucketRaftLog).Cursor().Last(); k != nil {
		if len(k) != 8 {
			return fmt.Errorf("log key: %w: %d bytes", ErrCorrupt, len(k))
		}
		s.last = binary.BigEndian.Uint64(k)
	}
	return nil
}

func logKey(i uint64) []byte { return binary.BigEndian.AppendUint64(nil, i) }

// InitialState implements raft.Storage.
func (s *raftStorage) InitialState() (raftpb.HardState, raftpb.ConfState, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.st.hard, s.st.snap.ConfState, nil
}

// Entries implements raft.Storage.
func (s *raftStorage) Entries(lo, hi, maxSize uint64) ([]raftpb.Entry, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if lo <= s.st.compactIndex {
		return nil, raft.ErrCompacted
	}
	if hi > s.st.last+1 || lo >= hi {
		return nil, raft.ErrUnavailable
	}
	var ents []raftpb.Entry
	var size uint64
	err := s.db.View(func(tx *bbolt.Tx) error {
		c := tx.Bucket(bucketRaftLog).Cursor()
		for k, v := c.Seek(logKey(lo)); k != nil && binary.BigEndian.Uint64(k) < hi; k, v = c.Next() {
			var e raftpb.Entry
			if err := e.Unmarshal(v); err != nil {
				return errorf("stream: raft log entry %d: %w: %v", binary.BigEndian.Uint64(k), ErrCorrupt, err)
			}
			if e.Index != lo+uint64(len(ents)) {
				return errorf("stream: raft log: entry %d where %d belongs: %w", e.Index, lo+uint64(len(ents)), ErrCorrupt)
			}
			size += uint64(e.Size())
			if len(ents) > 0 && size > maxSize {
				break
			}
			ents = append(ents, e)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(ents) == 0 {
		return nil, raft.ErrUnavailable
	}
	return ents, nil
}

// Term implements raft.Storage.
func (s *raftStorage) Term(i uint64) (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.termLocked(i)
}

func (s *raftStorage) termLocked(i uint64) (uint64, error) {
	if i < s.st.compactIndex {
		return 0, raft.ErrCompacted
	}
	if i == s.st.compactIndex {
		return s.st.compactTerm, nil
	}
	if i > s.st.last {
		return 0, raft.ErrUnavailable
	}
	var term uint64
	err := s.db.View(func(tx *bbolt.Tx) error {
		v := tx.Bucket(bucketRaftLog).Get(logKey(i))
		var e raftpb.Entry
		if err := e.Unmarshal(v); err != nil || v == nil {
			return errorf("stream: raft log entry %d: %w", i, ErrCorrupt)
		}
		term = e.Term
		return nil
	})
	return term, err
}

// LastIndex implements raft.Storage.
func (s *raftStorage) LastIndex() (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.st.last, nil
}

// FirstIndex implements raft.Storage.
func (s *raftStorage) FirstIndex() (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.st.compactIndex + 1, nil
}

// Snapshot implements raft.Storage.
func (s *raftStorage) Snapshot() (raftpb.Snapshot, error) {
	var snap raftpb.Snapshot
	err := s.db.View(func(tx *bbolt.Tx) error {
		if err := snap.Unmarshal(tx.Bucket(bucketRaft).Get(keySnapshot)); err != nil {
			return errorf("stream: raft snapshot: %w: %v", ErrCorrupt, err)
		}
		return nil
	})
	return snap, err
}

// save makes one Ready durable in one transaction: the snapshot (which
// replaces the log), then the entries (which replace any conflicting
// suffix), then the hard state.
func (s *raftStorage) save(hard raftpb.HardState, ents []raftpb.Entry, snap raftpb.Snapshot) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if raft.IsEmptyHardState(hard) && len(ents) == 0 && raft.IsEmptySnap(snap) {
		return nil
	}
	next := s.st
	err := s.db.Update(func(tx *bbolt.Tx) error {
		if !raft.IsEmptySnap(snap) {
			if err := next.applySnapshotTx(tx, snap); err != nil {
				return err
			}
		}
		if err := next.appendTx(tx, ents); err != nil {
			return err
		}
		if !raft.IsEmptyHardState(hard) {
			data, err := hard.Marshal()
			if err != nil {
				return err
			}
			if err := tx.Bucket(bucketRaft).Put(keyHardState, data); err != nil {
				return err
			}
			next.hard = hard
		}
		return nil
	})
	if err != nil {
		return errorf("stream: raft storage: save: %w", err)
	}
	s.st = next
	return nil
}

// ApplySnapshot replaces the whole log with snap.
func (s *raftStorage) ApplySnapshot(snap raftpb.Snapshot) error {
	return s.save(raftpb.HardState{}, nil, snap)
}

// Append appends entries, replacing any entries from the first one's
// index on; entries at or below the compact index are skipped.
func (s *raftStorage) Append(ents []raftpb.Entry) error {
	return s.save(raftpb.HardState{}, ents, raftpb.Snapshot{})
}

// SetHardState saves the hard state.
func (s *raftStorage) SetHardState(hard raftpb.HardState) error {
	return s.save(hard, nil, raftpb.Snapshot{})
}

// applySnapshotTx runs in save's transaction on next, a copy of the cache.
func (next *raftDiskState) applySnapshotTx(tx *bbolt.Tx, snap raftpb.Snapshot) error {
	if snap.Metadata.Index <= next.snap.Index {
		return raft.ErrSnapOutOfDate
	}
	data, err := snap.Marshal()
	if err != nil {
		return err
	}
	if err := tx.Bucket(bucketRaft).Put(keySnapshot, data); err != nil {
		return err
	}
	if err := deleteLogFrom(tx, 0); err != nil {
		return err
	}
	next.snap = snap.Metadata
	return next.setCompactTx(tx, snap.Metadata.Index, snap.Metadata.Term, snap.Metadata.Index)
}

func (next *raftDiskState) setCompactTx(tx *bbolt.Tx, index, term, last uint64) error {
	v := binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint64(nil, index), term)
	if err := tx.Bucket(bucketRaft).Put(keyCompact, v); err != nil {
		return err
	}
	next.compactIndex, next.compactTerm, next.last = index, term, last
	return nil
}

func (next *raftDiskState) appendTx(tx *bbolt.Tx, ents []raftpb.Entry) error {
	if len(ents) == 0 {
		return nil
	}
	first := ents[0].Index
	if first <= next.compactIndex {
		skip := next.compactIndex + 1 - first
		if skip >= uint64(len(ents)) {
			return nil
		}
		ents, first = ents[skip:], next.compactIndex+1
	}
	if first > next.last+1 {
		return fmt.Errorf("%w: append at %d after last index %d leaves a gap", errRaftStorageRange, first, next.last)
	}
	for i, e := range ents {
		if e.Index != first+uint64(i) {
			return fmt.Errorf("%w: entry %d where %d belongs", errRaftStorageRange, e.Index, first+uint64(i))
		}
	}
	if first <= next.last {
		if err := deleteLogFrom(tx, first); err != nil {
			return err
		}
	}
	b := tx.Bucket(bucketRaftLog)
	for _, e := range ents {
		data, err := e.Marshal()
		if err != nil {
			return err
		}
		if err := b.Put(logKey(e.Index), data); err != nil {
			return err
		}
	}
	next.last = ents[len(ents)-1].Index
	return nil
}

// deleteLogFrom deletes the entries at index from and above.
func deleteLogFrom(tx *bbolt.Tx, from uint64) error {
	b := tx.Bucket(bucketRaftLog)
	var keys [][]byte
	c := b.Cursor()
	for k, _ := c.Seek(logKey(from)); k != nil; k, _ = c.Next() {
		keys = append(keys, slices.Clone(k))
	}
	for _, k := range keys {
		if err := b.Delete(k); err != nil {
			return err
		}
	}
	return nil
}

// CreateSnapshot records data as the state machine's state at index i,
// which must be applied (so at or below the last index) and above the
// current snapshot's. The log is left alone; Compact trims it.
func (s *raftStorage) CreateSnapshot(i uint64, cs *raftpb.ConfState, data []byte) (raftpb.Snapshot, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if i <= s.st.snap.Index {
		return raftpb.Snapshot{}, raft.ErrSnapOutOfDate
	}
	if i > s.st.last {
		return raftpb.Snapshot{}, fmt.Errorf("%w: snapshot at %d after last index %d", errRaftStorageRange, i, s.st.last)
	}
	term, err := s.termLocked(i)
	if err != nil {
		return raftpb.Snapshot{}, err
	}
	snap := raftpb.Snapshot{Data: data, Metadata: raftpb.SnapshotMetadata{Index: i, Term: term, ConfState: s.st.snap.ConfState}}
	if cs != nil {
		snap.Metadata.ConfState = *cs
	}
	enc, err := snap.Marshal()
	if err != nil {
		return raftpb.Snapshot{}, err
	}
	err = s.db.Update(func(tx *bbolt.Tx) error { return tx.Bucket(bucketRaft).Put(keySnapshot, enc) })
	if err != nil {
		return raftpb.Snapshot{}, errorf("stream: raft storage: create snapshot: %w", err)
	}
	s.st.snap = snap.Metadata
	return snap, nil
}

// Compact discards the entries up to and including i, keeping i's term.
// i must not pass the snapshot: what is discarded must be in it.
func (s *raftStorage) Compact(i uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if i <= s.st.compactIndex {
		return raft.ErrCompacted
	}
	if i > s.st.snap.Index {
		return fmt.Errorf("%w: compact to %d past the snapshot at %d", errRaftStorageRange, i, s.st.snap.Index)
	}
	term, err := s.termLocked(i)
	if err != nil {
		return err
	}
	next := s.st
	err = s.db.Update(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketRaftLog)
		var keys [][]byte
		c := b.Cursor()
		for k, _ := c.First(); k != nil && binary.BigEndian.Uint64(k) <= i; k, _ = c.Next() {
			keys = append(keys, slices.Clone(k))
		}
		for _, k := range keys {
			if err := b.Delete(k); err != nil {
				return err
			}
		}
		return next.setCompactTx(tx, i, term, next.last)
	})
	if err != nil {
		return errorf("stream: raft storage: compact: %w", err)
	}
	s.st = next
	return nil
}
