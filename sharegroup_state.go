package stream

import (
	"context"
	"encoding/binary"
	"fmt"
	"maps"
	"slices"
	"time"

	"go.etcd.io/bbolt"
)

// The state of a share group on one partition (a share-partition, in
// KIP-932's words), and how it is kept in meta.db.
//
// A share-partition is a window over the log: every record below start
// is finished (accepted or rejected); entries hold the records from
// start up to the window's end, each with its state and delivery count;
// records past the end have not been read yet. The window is read from
// the log as members need records, at most MaxPartitionLocks long, and
// its start moves up as its first records finish.
//
// In meta.db each share-partition is one value: start, the totals, and
// the entries that differ from "available, never delivered" as runs of
// consecutive offsets with the same state and delivery count. It is
// written whole by the group's committer, which gathers the changes of
// every member into one transaction (shareBatch): Accept and Reject
// return, and Poll hands out its records, only once the transaction
// holding them is committed, so no bbolt write is made per record.
// Acquired records are stored as available with their delivery count:
// after a crash they are delivered again, and still count against
// MaxDeliveries.

// shareState is the state of a record in a share-partition's window.
type shareState uint8

const (
	shareAvailable     shareState = iota // may be acquired once until has passed
	shareAcquired                        // held by owner until until
	shareDeadLettering                   // rejected; its dead-letter copy is being written
	shareAccepted                        // finished
	shareRejected                        // finished
)

func (st shareState) finished() bool { return st >= shareAccepted }

// shareEntry is one record of a window.
type shareEntry struct {
	rec        *Record
	owner      *ShareMember // while acquired
	until      time.Time    // acquired: the lock's end; available: the release backoff's end
	deliveries uint16       // acquisitions so far
	state      shareState
}

// storedEntry is the stored state of an offset past the window, recovered
// from meta.db and not yet read back from the log.
type storedEntry struct {
	state      shareState // shareAvailable, shareAccepted or shareRejected
	deliveries uint16
}

// sharePartition is a share group's state on one partition. Its fields
// are guarded by ShareGroup.mu.
type sharePartition struct {
	tp TopicPartition
	p  *Partition

	// Invariant: every offset below start is finished; entries[i] is
	// the record at start+i; no entry is finished at entries[0].
	start   int64
	entries []shareEntry
	// stored holds what meta.db said about offsets past the window; fill
	// applies and deletes each as it reads the record back.
	stored map[int64]storedEntry

	filling bool // a fill reads the log outside the lock
	dirty   bool // changed since the committer last took it

	// Totals since the group began on the partition (or was reset).
	accepted, rejected, deadLettered int64
}

// end is the offset after the window.
func (sp *sharePartition) end() int64 { return sp.start + int64(len(sp.entries)) }

// entry returns the window's entry at off, or nil.
func (sp *sharePartition) entry(off int64) *shareEntry {
	i := off - sp.start
	if i < 0 || i >= int64(len(sp.entries)) {
		return nil
	}
	return &sp.entries[i]
}

// advance moves start past the finished records at the window's start.
func (sp *sharePartition) advance() {
	n := 0
	for n < len(sp.entries) && sp.entries[n].state.finished() {
		n++
	}
	if n == 0 {
		return
	}
	clear(sp.entries[:n]) // let the records go
	sp.entries = sp.entries[n:]
	sp.start += int64(n)
	if len(sp.entries) == 0 {
		sp.entries = sp.entries[:0:0] // drop the array rather than reslicing its end forever
	}
	sp.dirty = true
}

// maxPartitionLocks bounds ShareGroupConfig.MaxPartitionLocks, and so
// the entries a stored share-partition may hold.
const maxPartitionLocks = 1 << 20

// stateVersion is the first byte of a stored share-partition.
const stateVersion = 1

// encode returns the share-partition as meta.db stores it.
func (sp *sharePartition) encode() []byte {
	b := []byte{stateVersion}
	b = binary.AppendVarint(b, sp.start)
	b = binary.AppendVarint(b, sp.accepted)
	b = binary.AppendVarint(b, sp.rejected)
	b = binary.AppendVarint(b, sp.deadLettered)
	type run struct {
		off, n int64
		e      storedEntry
	}
	var runs []run
	add := func(off int64, e storedEntry) {
		if e.state == shareAvailable && e.deliveries == 0 {
			return
		}
		if k := len(runs) - 1; k >= 0 && runs[k].off+runs[k].n == off && runs[k].e == e {
			runs[k].n++
			return
		}
		runs = append(runs, run{off, 1, e})
	}
	for i := range sp.entries {
		e := &sp.entries[i]
		st := e.state
		if !st.finished() {
			st = shareAvailable // an acquisition or a dead-lettering is done again after a crash
		}
		add(sp.start+int64(i), storedEntry{st, e.deliveries})
	}
	for _, off := range slices.Sorted(maps.Keys(sp.stored)) {
		add(off, sp.stored[off])
	}
	b = binary.AppendUvarint(b, uint64(len(runs)))
	prev := sp.start
	for _, r := range runs {
		b = binary.AppendUvarint(b, uint64(r.off-prev))
		b = binary.AppendUvarint(b, uint64(r.n))
		b = append(b, byte(r.e.state))
		b = binary.AppendUvarint(b, uint64(r.e.deliveries))
		prev = r.off + r.n
	}
	return b
}

// decode loads a stored share-partition into sp, whose window is empty.
func (sp *sharePartition) decode(b []byte) error {
	bad := func(what string) error {
		return fmt.Errorf("stored state of %s-%d: %s: %w", sp.tp.Topic, sp.tp.Partition, what, ErrCorrupt)
	}
	if len(b) == 0 || b[0] != stateVersion {
		return bad("unknown version")
	}
	b = b[1:]
	varint := func() (int64, bool) {
		v, n := binary.Varint(b)
		if n <= 0 {
			return 0, false
		}
		b = b[n:]
		return v, true
	}
	uvarint := func() (uint64, bool) {
		v, n := binary.Uvarint(b)
		if n <= 0 {
			return 0, false
		}
		b = b[n:]
		return v, true
	}
	var ok [4]bool
	sp.start, ok[0] = varint()
	sp.accepted, ok[1] = varint()
	sp.rejected, ok[2] = varint()
	sp.deadLettered, ok[3] = varint()
	if ok != [4]bool{true, true, true, true} || sp.start < 0 {
		return bad("header")
	}
	nruns, good := uvarint()
	if !good || nruns > uint64(len(b)) {
		return bad("run count")
	}
	sp.stored = make(map[int64]storedEntry)
	prev := sp.start
	for range nruns {
		gap, ok1 := uvarint()
		n, ok2 := uvarint()
		if !ok1 || !ok2 || len(b) == 0 || n > maxPartitionLocks || uint64(len(sp.stored))+n > maxPartitionLocks || gap > 1<<62 {
			return bad("run")
		}
		st := shareState(b[0])
		b = b[1:]
		d, ok3 := uvarint()
		if !ok3 || d > 1<<16-1 || (st != shareAvailable && st != shareAccepted && st != shareRejected) {
			return bad("run state")
		}
		off := prev + int64(gap)
		for i := range int64(n) {
			sp.stored[off+i] = storedEntry{st, uint16(d)}
		}
		prev = off + int64(n)
	}
	if len(b) != 0 {
		return bad("trailing bytes")
	}
	return nil
}

// meta.db layout of share groups: sharegroups → group id → {config: JSON
// of its ShareGroupConfig, state → topic → partition (4 bytes, big
// endian) → encoded share-partition}.
var (
	bucketShareGroups = []byte("sharegroups")
	bucketShareState  = []byte("state")
	keyShareConfig    = []byte("config")
)

// sharePut is one share-partition to store.
type sharePut struct {
	tp  TopicPartition
	val []byte
}

// writeState stores share-partitions, and the group's configuration when
// config is not nil, in one transaction.
func (g *ShareGroup) writeState(puts []sharePut, config []byte) error {
	err := g.s.db.Update(func(tx *bbolt.Tx) error {
		root, err := tx.CreateBucketIfNotExists(bucketShareGroups)
		if err != nil {
			return err
		}
		var gb *bbolt.Bucket
		if config != nil {
			if gb, err = root.CreateBucketIfNotExists([]byte(g.id)); err != nil {
				return err
			}
			if err := gb.Put(keyShareConfig, config); err != nil {
				return err
			}
		} else if gb = root.Bucket([]byte(g.id)); gb == nil {
			return fmt.Errorf("the group was deleted: %w", ErrClosed)
		}
		sb, err := gb.CreateBucketIfNotExists(bucketShareState)
		if err != nil {
			return err
		}
		for _, p := range puts {
			tb, err := sb.CreateBucketIfNotExists([]byte(p.tp.Topic))
			if err != nil {
				return err
			}
			if err := tb.Put(partitionKey(p.tp.Partition), p.val); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return errorf("stream: share group %s: store state: %w", g.id, err)
	}
	return nil
}

// readState returns the stored configuration (nil if none) and
// share-partitions of group id.
func (s *Stream) readShareState(id string) (config []byte, parts map[TopicPartition][]byte, err error) {
	parts = map[TopicPartition][]byte{}
	err = s.db.View(func(tx *bbolt.Tx) error {
		root := tx.Bucket(bucketShareGroups)
		if root == nil {
			return nil
		}
		gb := root.Bucket([]byte(id))
		if gb == nil {
			return nil
		}
		config = slices.Clone(gb.Get(keyShareConfig))
		sb := gb.Bucket(bucketShareState)
		if sb == nil {
			return nil
		}
		return sb.ForEachBucket(func(topic []byte) error {
			return sb.Bucket(topic).ForEach(func(k, v []byte) error {
				if len(k) != 4 {
					return fmt.Errorf("share state of %s: bad partition key %x: %w", topic, k, ErrCorrupt)
				}
				tp := TopicPartition{Topic: string(topic), Partition: int32(binary.BigEndian.Uint32(k))}
				parts[tp] = slices.Clone(v)
				return nil
			})
		})
	})
	if err != nil {
		return nil, nil, errorf("stream: share group %s: read state: %w", id, err)
	}
	return config, parts, nil
}

// shareBatch is one transaction of the committer: the changes made while
// it was the group's current batch. done is closed once it is written,
// err set before.
type shareBatch struct {
	done chan struct{}
	err  error
}

func newShareBatch() *shareBatch { return &shareBatch{done: make(chan struct{})} }

// batchLocked returns the batch that will store the changes made so far
// and wakes the committer. g.mu is held. Once the group is closed the
// committer is gone: the batch returned has failed with ErrClosed (the
// committer's last transaction may still have stored the changes).
func (g *ShareGroup) batchLocked() *shareBatch {
	if g.closed {
		b := newShareBatch()
		b.err = errorf("stream: share group %s: %w", g.id, ErrClosed)
		close(b.done)
		return b
	}
	select {
	case g.kick <- struct{}{}:
	default:
	}
	return g.batch
}

// run is the group's committer: it stores what changed, one transaction
// for every change made while the previous one was written, until the
// group closes (then it stores the rest once more).
func (g *ShareGroup) run() {
	defer close(g.done)
	for {
		select {
		case <-g.kick:
			g.flush()
		case <-g.stop:
			g.flush()
			return
		}
	}
}

// flush writes the current batch.
func (g *ShareGroup) flush() {
	g.mu.Lock()
	b := g.batch
	g.batch = newShareBatch()
	var puts []sharePut
	var parts []*sharePartition
	for _, sp := range g.order {
		if sp.dirty {
			sp.dirty = false
			puts = append(puts, sharePut{sp.tp, sp.encode()})
			parts = append(parts, sp)
		}
	}
	g.mu.Unlock()
	if len(puts) > 0 {
		b.err = g.writeState(puts, nil)
	}
	if b.err != nil {
		g.log.Error("storing share group state", "error", b.err)
		g.mu.Lock()
		for _, sp := range parts {
			sp.dirty = true // the next transaction tries again
		}
		g.mu.Unlock()
	}
	close(b.done)
}

// wait waits for b to be written. The changes it holds may be stored even
// when ctx ends first.
func (g *ShareGroup) wait(ctx context.Context, b *shareBatch) error {
	if b == nil {
		return nil
	}
	select {
	case <-b.done:
		return b.err
	case <-ctx.Done():
		return ctx.Err()
	}
}
