package stream

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"log/slog"
	"maps"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Consumer reads records from partitions: either as a member of a
// ConsumerGroup (ConsumerGroup.Join), which assigns it partitions and
// keeps its committed offsets, or on its own (Stream.NewConsumer), reading
// the partitions it is given with Assign from positions it sets with Seek.
//
// Poll is the pull loop; Run wraps it with commits. One goroutine should
// Poll at a time; every other method is safe to call from any goroutine,
// including from OnAssigned, OnRevoked and OnLost (except Close).
type Consumer struct {
	s   *Stream
	g   *ConsumerGroup // nil: group-less
	cfg ConsumerConfig
	log *slog.Logger

	// pollMu is held by Poll, by ReadToEnd's group sync and by Close's
	// revocation: one of them at a time. It is taken before
	// ConsumerGroup.mu and Consumer.mu.
	pollMu sync.Mutex

	closing chan struct{} // closed by Close: a waiting Poll returns
	hbDone  chan struct{} // closed when the heartbeat goroutine (members only) returns
	hbStop  chan struct{} // tests: closed to stop the heartbeats

	// mu guards the fields below. It is taken after ConsumerGroup.mu
	// (join holds both) and before Partition locks (fetches read under
	// it); ConsumerGroup.mu is never taken while it is held.
	mu       sync.Mutex
	memberID string
	parts    map[TopicPartition]*fetchState // assigned partitions
	order    []TopicPartition               // keys of parts, sorted
	rr       int                            // where the next Poll starts its round robin
	closed   bool                           // Close began: Poll refuses
	left     bool                           // Close ended: everything refuses
	autoNext time.Time                      // next auto-commit
	// Run's batch in flight: the records its handler has not accepted
	// yet, in order (commits stop at the first of each partition); a
	// channel closed when Run stops working on the batch; and the
	// cancellation of the handler's context, for a Close that stops
	// waiting.
	pending []*Record
	// accepted is how many records of pending the handler accepted:
	// Run counts them without taking mu (readers use pendingLocked).
	accepted atomic.Int64
	runRecs  []*Record // the slice Run's batches are taken into, reused
	running  chan struct{}
	stopRun  context.CancelCauseFunc
	// runG and callbackG are the IDs of the goroutines running Run and
	// a rebalance callback (0: none), so that a Close from inside them
	// neither waits for itself nor deadlocks on pollMu.
	runG, callbackG atomic.Uint64
	// gone are partitions dropped because their topic was deleted, not
	// yet reported (OnLost, or Poll's ErrTopicDeleted).
	gone []TopicPartition
	// fenced is set when another consumer took the member's InstanceID:
	// every later call fails with it.
	fenced error
	// Long polls on partition leaders (cluster_fetch.go): cancelled by
	// remoteStop and waited for by Close.
	remoteCtx  context.Context
	remoteStop context.CancelFunc
	remoteWG   sync.WaitGroup
}

// fence marks the consumer fenced for good by err.
func (c *Consumer) fence(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.fenced == nil {
		c.fenced = err
	}
}

func (c *Consumer) fencedErr() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.fenced
}

// fetchState is the consumer's state for one assigned partition.
type fetchState struct {
	p   *Partition
	pos int64 // the next offset Poll returns
	// Records read ahead: offsets in [pos, end), in order. Invariant:
	// buf empty implies pos == end.
	buf      []*Record
	bufBytes int
	end      int64
	back     []*Record  // buf's backing array, reused from its start
	slab     recordSlab // what buf's records are carved from
	// committed is the offset this consumer last knew committed, -1 if
	// none; Commit skips partitions at it.
	committed int64
	remote    *remoteFetch // read from the leader (cluster_fetch.go); nil: from p
}

func (st *fetchState) seek(off int64) {
	clear(st.buf)
	st.buf, st.bufBytes = st.buf[:0], 0
	st.slab.seeked()
	st.pos, st.end = off, off
}

// NewConsumer returns a consumer in no group: give it partitions with
// Assign and positions with Seek. It cannot commit. cfg's zero fields
// take defaults; OnAssigned, OnRevoked and InstanceID are for group
// members and ignored.
func (s *Stream) NewConsumer(cfg ConsumerConfig) (*Consumer, error) {
	return newConsumer(s, nil, cfg)
}

func newConsumer(s *Stream, g *ConsumerGroup, cfg ConsumerConfig) (*Consumer, error) {
	c, err := cfg.withDefaults()
	if err != nil {
		return nil, errorf("stream: new consumer: %w", err)
	}
	if g == nil {
		c.OnAssigned, c.OnRevoked, c.OnLost, c.InstanceID = nil, nil, nil, ""
	}
	cons := &Consumer{
		s: s, g: g, cfg: c, log: s.log,
		closing: make(chan struct{}),
		hbStop:  make(chan struct{}),
		parts:   map[TopicPartition]*fetchState{},
	}
	if g != nil {
		cons.log = g.log
		if g.cfg.CommitInterval > 0 {
			cons.autoNext = time.Now().Add(g.cfg.CommitInterval)
		}
	}
	if g != nil {
		cons.hbDone = make(chan struct{})
	}
	if err := s.groups.addConsumer(cons); err != nil {
		return nil, err
	}
	if g != nil {
		go cons.heartbeatLoop()
	}
	return cons, nil
}

var errNoGroup = errors.New("stream: the consumer is in no group; commits need ConsumerGroup.Join")

// MemberID returns the consumer's member ID in its group ("" for a
// group-less consumer). It changes when the member rejoins after an
// eviction.
func (c *Consumer) MemberID() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.memberID
}

// Assign sets the partitions of a group-less consumer, replacing the
// previous set. A partition it already had keeps its position; a new one
// starts at the partition's StartOffset (Seek to HighWatermark to read
// only new records). Group members get partitions from their group and
// cannot Assign.
func (c *Consumer) Assign(tps ...TopicPartition) error {
	if c.g != nil {
		return errorf("stream: Assign on a member of group %s: partitions come from the group", c.g.id)
	}
	ps := make(map[TopicPartition]*Partition, len(tps))
	for _, tp := range tps {
		p, err := c.s.partition(tp)
		if err != nil {
			return errorf("stream: assign: %w", err)
		}
		ps[tp] = p
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.left || c.closed {
		return errorf("stream: assign: %w", ErrClosed)
	}
	parts := make(map[TopicPartition]*fetchState, len(ps))
	for tp, p := range ps {
		if st := c.parts[tp]; st != nil {
			parts[tp] = st
			continue
		}
		st := &fetchState{p: p, committed: -1}
		st.seek(p.StartOffset())
		parts[tp] = st
	}
	c.parts = parts
	c.order = slices.SortedFunc(maps.Keys(parts), compareTopicPartition)
	return nil
}

// Assignment returns the partitions the consumer holds now, sorted. A
// group member holds a partition from its OnAssigned to its OnRevoked.
func (c *Consumer) Assignment() []TopicPartition {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.order)
}

// Position returns the next offset Poll returns from tp.
func (c *Consumer) Position(tp TopicPartition) (int64, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.left {
		return 0, errorf("stream: position: %w", ErrClosed)
	}
	st := c.parts[tp]
	if st == nil {
		return 0, errorf("stream: position of %s-%d: not assigned to this consumer", tp.Topic, tp.Partition)
	}
	return st.pos, nil
}

// Seek sets the next offset Poll returns from tp, which must be assigned.
// An offset outside [StartOffset, HighWatermark] fails with
// ErrOffsetOutOfRange and changes nothing.
func (c *Consumer) Seek(tp TopicPartition, offset int64) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.left {
		return errorf("stream: seek: %w", ErrClosed)
	}
	st := c.parts[tp]
	if st == nil {
		return errorf("stream: seek %s-%d: not assigned to this consumer", tp.Topic, tp.Partition)
	}
	if start, hw := c.s.bounds(st.p); offset < start || offset > hw {
		return errorf("stream: seek %s-%d to %d outside [%d, %d]: %w", tp.Topic, tp.Partition, offset, start, hw, ErrOffsetOutOfRange)
	}
	st.seek(offset)
	return nil
}

// Poll returns the next records of the consumer's partitions: up to
// MaxPollRecords and about FetchMaxBytes, taken round robin across the
// partitions that have some, starting one partition further at each call,
// so a busy partition never starves the others. It waits until
// FetchMinBytes are there or FetchMaxWait passes, and then returns what
// there is: possibly an empty slice and a nil error. It wakes when a
// partition's high watermark moves, and returns only records below it.
// Positions advance past the records returned.
//
// For a group member, Poll is also where the group happens: it shows
// progress (MaxPollInterval; liveness is the consumer's own heartbeat),
// auto-commits every CommitInterval, revokes partitions that move away
// (auto-commit, then OnRevoked), and takes partitions that reach the
// member (OnAssigned). A member that was evicted rejoins under a new
// member ID (OnLost first reports what it lost); so are partitions whose
// topic was deleted, and with every topic of the group deleted Poll
// returns ErrTopicDeleted. A static member whose InstanceID another
// consumer took gets ErrFenced, for good.
//
// A group-less consumer whose position is outside the log (retention
// passed it) gets ErrOffsetOutOfRange and must Seek, and one whose
// partition's topic was deleted gets ErrTopicDeleted once (the partition
// leaves its assignment); a group member is reset by GroupConfig.StartAt
// and the reset is logged. Poll returns ctx.Err() when ctx has ended,
// even with records waiting, and ErrClosed after Close.
func (c *Consumer) Poll(ctx context.Context) ([]*Record, error) {
	if ctx == nil {
		return nil, argError("poll", "nil context")
	}
	return c.poll(ctx, false)
}

// poll is Poll; forRun registers the records returned as Run's batch in
// flight (c.pending, c.running) in the same critical section that moves
// the positions past them, so a Close in between never commits them.
func (c *Consumer) poll(ctx context.Context, forRun bool) ([]*Record, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	c.pollMu.Lock()
	defer c.pollMu.Unlock()
	if err := c.checkPolling(); err != nil {
		return nil, err
	}
	if c.g != nil {
		defer func() { c.g.pollDone(c.MemberID()) }()
	}
	timer := time.NewTimer(c.cfg.FetchMaxWait)
	defer timer.Stop()
	expired, resync := false, true
	var groupCh <-chan struct{}
	var cases []reflect.SelectCase
	for {
		if c.g != nil && resync {
			ch, err := c.syncGroup(ctx)
			if err != nil {
				return nil, err
			}
			groupCh, resync = ch, false
		}
		recs, wait, again, err := c.fetch(expired, forRun)
		if err != nil || recs != nil {
			return recs, err
		}
		if again {
			if c.g != nil {
				resync = true // syncGroup reports and releases gone partitions
			} else if gone := c.takeGone(); len(gone) > 0 {
				return nil, errorf("stream: poll %s-%d: %w", gone[0].Topic, gone[0].Partition, ErrTopicDeleted)
			}
			continue
		}
		if expired {
			return []*Record{}, nil
		}
		if c.g == nil && len(wait) == 0 && len(c.Assignment()) == 0 {
			return nil, errors.New("stream: poll: no partitions assigned; call Assign")
		}
		// Wait for any of: a high watermark, the group, the timer, ctx,
		// Close.
		cases = append(cases[:0],
			reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(ctx.Done())},
			reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(c.closing)},
			reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(timer.C)},
			reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(groupCh)},
		)
		for _, ch := range wait {
			cases = append(cases, reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(ch)})
		}
		switch i, _, _ := reflect.Select(cases); i {
		case 0:
			return nil, ctx.Err()
		case 1:
			return nil, errorf("stream: poll: %w", ErrClosed)
		case 2:
			expired = true
		case 3:
			resync = true
		}
	}
}

func (c *Consumer) checkPolling() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return errorf("stream: poll: %w", ErrClosed)
	}
	return nil
}

// fetch reads ahead on every partition and, once FetchMinBytes are
// buffered (or on the final call, any), hands records out round robin.
// Otherwise it returns the channels to wait on: each partition's next
// high-watermark move; or again when data arrived meanwhile.
func (c *Consumer) fetch(final, forRun bool) (out []*Record, wait []<-chan struct{}, again bool, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, nil, false, errorf("stream: poll: %w", ErrClosed)
	}
	buffered := 0
	for _, st := range c.parts {
		buffered += st.bufBytes
	}
	total := 0
	want := max(readAhead, c.cfg.FetchMinBytes)
	for _, tp := range c.order {
		st := c.parts[tp]
		// Read ahead when the buffer runs low, and whenever the whole is
		// short of FetchMinBytes (so the wait below is for new data).
		if (st.bufBytes < want/2 || buffered < c.cfg.FetchMinBytes) && c.hwLocked(st) > st.end {
			if err := c.refillLocked(tp, st, want-st.bufBytes); err != nil {
				if c.goneLocked(tp, st, err) {
					return nil, nil, true, nil
				}
				return nil, nil, false, err
			}
		}
		total += st.bufBytes
		if len(st.buf) > 0 && st.bufBytes == 0 {
			total++ // empty records count as present
		}
	}
	if total >= c.cfg.FetchMinBytes || final && total > 0 {
		out = c.takeLocked(forRun)
		if forRun && len(out) > 0 {
			c.pending, c.running = out, make(chan struct{})
			c.accepted.Store(0)
		}
		return out, nil, false, nil
	}
	for _, tp := range c.order {
		st := c.parts[tp]
		ch, err := c.hwChangedLocked(st)
		if err != nil {
			if c.goneLocked(tp, st, err) {
				return nil, nil, true, nil
			}
			return nil, nil, false, err
		}
		if c.hwLocked(st) > st.end {
			return nil, nil, true, nil // arrived meanwhile
		}
		wait = append(wait, ch)
	}
	return nil, wait, false, nil
}

// goneLocked reports whether err, from st's partition, means its topic
// was deleted (the partition closed, and the Stream no longer holds it);
// it then drops the partition, to be reported by the next Poll.
func (c *Consumer) goneLocked(tp TopicPartition, st *fetchState, err error) bool {
	if !errors.Is(err, ErrClosed) {
		return false
	}
	p, err := c.s.partition(tp)
	if p == st.p || errors.Is(err, ErrClosed) {
		return false // the Stream is closing
	}
	delete(c.parts, tp)
	c.order = slices.DeleteFunc(c.order, func(o TopicPartition) bool { return o == tp })
	c.gone = append(c.gone, tp)
	return true
}

// splitGone splits held partitions into those still live and those whose
// topic was deleted (or deleted and recreated) since they were assigned.
func (c *Consumer) splitGone(tps []TopicPartition) (live, gone []TopicPartition) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, tp := range tps {
		st := c.parts[tp]
		if st == nil {
			continue
		}
		if p, err := c.s.partition(tp); errors.Is(err, ErrUnknownTopic) || err == nil && p != st.p {
			gone = append(gone, tp)
		} else {
			live = append(live, tp)
		}
	}
	return live, gone
}

// takeGone returns and forgets the partitions dropped by goneLocked.
func (c *Consumer) takeGone() []TopicPartition {
	c.mu.Lock()
	defer c.mu.Unlock()
	gone := c.gone
	c.gone = nil
	return gone
}

// syncGroup is a member's step of the group protocol at Poll: heartbeat,
// rejoin after an eviction, revoke (auto-commit, OnRevoked, release),
// acquire (positions, OnAssigned), auto-commit. It returns a channel
// closed when the group changes again.
func (c *Consumer) syncGroup(ctx context.Context) (<-chan struct{}, error) {
	for {
		if err := c.fencedErr(); err != nil {
			if lost := c.dropPartitions(nil); len(lost) > 0 {
				c.log.Warn("static member fenced: another consumer joined with its instance id", "error", err.Error())
				c.onLost(ctx, lost)
			}
			return nil, err
		}
		id := c.MemberID()
		if gone := c.takeGone(); len(gone) > 0 {
			c.g.release(id, gone, 0)
			c.log.Info("partitions lost: their topic was deleted", "member", id, "partitions", fmt.Sprint(gone))
			c.onLost(ctx, gone)
		}
		res, err := c.g.heartbeat(c, id)
		if err != nil {
			return nil, err
		}
		if res.lost {
			if lost := c.dropPartitions(nil); len(lost) > 0 {
				c.log.Warn("member was evicted; its partitions are lost", "member", id, "partitions", len(lost))
				c.onLost(ctx, lost)
			}
			if err := c.g.join(c); err != nil {
				return nil, err
			}
			continue
		}
		if len(res.revoke) > 0 {
			live, gone := c.splitGone(res.revoke)
			if len(live) > 0 {
				if c.g.cfg.CommitInterval > 0 {
					if err := c.commitPositions(context.WithoutCancel(ctx), live); err != nil && !errors.Is(err, ErrFenced) {
						c.log.Error("auto-commit before revoking", "member", id, "error", oneLine(err))
					}
				}
				c.onRevoked(ctx, live)
			}
			if len(gone) > 0 {
				c.log.Info("partitions lost: their topic was deleted", "member", id, "partitions", fmt.Sprint(gone))
				c.onLost(ctx, gone)
			}
			c.dropPartitions(res.revoke)
			c.g.release(id, res.revoke, res.gen)
		}
		if added := c.g.acquire(id); len(added) > 0 {
			pos, committed, err := c.g.startPositions(added)
			if err != nil {
				c.g.release(id, added, 0)
				return nil, err
			}
			if added = c.addPartitions(added, pos, committed); len(added) > 0 {
				c.onAssigned(ctx, added)
			}
		}
		if res.noTopics {
			return nil, errorf("stream: group %s: every topic of the group (%s) was deleted: %w",
				c.g.id, strings.Join(c.g.cfg.Topics, ", "), ErrTopicDeleted)
		}
		if iv := c.g.cfg.CommitInterval; iv > 0 {
			now := time.Now()
			c.mu.Lock()
			due := !now.Before(c.autoNext)
			if due {
				c.autoNext = now.Add(iv)
			}
			c.mu.Unlock()
			if due {
				// A commit is a local transaction: it runs even when ctx
				// has just ended, so a clean shutdown is not an error.
				if err := c.commitPositions(context.WithoutCancel(ctx), nil); err != nil && !errors.Is(err, ErrFenced) {
					c.log.Error("auto-commit", "member", id, "error", oneLine(err))
				}
			}
		}
		return res.changed, nil
	}
}

func (c *Consumer) onRevoked(ctx context.Context, tps []TopicPartition) {
	c.callback(ctx, c.cfg.OnRevoked, tps)
}

func (c *Consumer) onLost(ctx context.Context, tps []TopicPartition) {
	if c.cfg.OnLost != nil {
		c.callback(ctx, c.cfg.OnLost, tps)
		return
	}
	c.callback(ctx, c.cfg.OnRevoked, tps)
}

func (c *Consumer) onAssigned(ctx context.Context, tps []TopicPartition) {
	c.callback(ctx, c.cfg.OnAssigned, tps)
}

// callback runs a rebalance callback, marking its goroutine so that a
// Close from inside it fails fast instead of deadlocking.
func (c *Consumer) callback(ctx context.Context, fn func(context.Context, []TopicPartition), tps []TopicPartition) {
	if fn == nil {
		return
	}
	prev := c.callbackG.Swap(goroutineID())
	defer c.callbackG.Store(prev)
	fn(ctx, slices.Clone(tps))
}

// dropPartitions removes tps (nil: all) from the assignment and returns
// those it held.
func (c *Consumer) dropPartitions(tps []TopicPartition) []TopicPartition {
	c.mu.Lock()
	defer c.mu.Unlock()
	if tps == nil {
		tps = c.order
	}
	var dropped []TopicPartition
	for _, tp := range tps {
		if _, ok := c.parts[tp]; ok {
			delete(c.parts, tp)
			dropped = append(dropped, tp)
		}
	}
	c.order = slices.SortedFunc(maps.Keys(c.parts), compareTopicPartition)
	return dropped
}

// addPartitions adds tps at positions pos and returns those added: a
// partition whose topic was deleted meanwhile is not (the group learns
// of the deletion at the next heartbeat).
func (c *Consumer) addPartitions(tps []TopicPartition, pos map[TopicPartition]startPos, committed map[TopicPartition]int64) []TopicPartition {
	c.mu.Lock()
	defer c.mu.Unlock()
	var added []TopicPartition
	for _, tp := range tps {
		p := pos[tp].p
		if p == nil {
			c.gone = append(c.gone, tp)
			continue
		}
		added = append(added, tp)
		st := &fetchState{p: p, committed: -1}
		if off, ok := committed[tp]; ok {
			st.committed = off
		}
		st.seek(pos[tp].off)
		c.parts[tp] = st
	}
	c.order = slices.SortedFunc(maps.Keys(c.parts), compareTopicPartition)
	return added
}

// Commit commits, for every partition the member holds, the position: the
// offset after the last record Poll returned (or the offset Seek set). It
// never moves a committed offset backwards: a partition whose committed
// offset is at or past its position is left alone. A member that was
// evicted or rebalanced away gets ErrFenced and nothing changes.
// Group-less consumers cannot commit.
func (c *Consumer) Commit(ctx context.Context) error {
	if ctx == nil {
		return argError("commit", "nil context")
	}
	return c.commitPositions(ctx, nil)
}

// commitPositions commits the positions of tps (nil: all held).
func (c *Consumer) commitPositions(ctx context.Context, tps []TopicPartition) error {
	if c.g == nil {
		return errNoGroup
	}
	c.mu.Lock()
	if tps == nil {
		tps = c.order
	}
	offs := map[TopicPartition]OffsetAndMetadata{}
	for _, tp := range tps {
		if pos, ok := c.acceptedLocked(tp); ok {
			offs[tp] = OffsetAndMetadata{Offset: pos}
		}
	}
	c.mu.Unlock()
	return c.commit(ctx, offs, true)
}

// pendingLocked returns the records of Run's batch in flight that its
// handler has not accepted yet.
func (c *Consumer) pendingLocked() []*Record {
	return c.pending[min(int(c.accepted.Load()), len(c.pending)):]
}

// acceptedLocked returns the offset to commit for tp: its position, or,
// while Run's handler has not accepted a record of tp that Poll returned,
// that record's offset. It reports false when there is nothing new to
// commit.
func (c *Consumer) acceptedLocked(tp TopicPartition) (int64, bool) {
	st := c.parts[tp]
	if st == nil {
		return 0, false
	}
	pos := st.pos
	for _, r := range c.pendingLocked() {
		if r.Partition == tp.Partition && r.Topic == tp.Topic {
			pos = min(pos, r.Offset)
			break
		}
	}
	return pos, pos > st.committed
}

// CommitOffsets commits offs (for each partition, the next offset to
// read) as given, which may move a committed offset backwards. Every
// partition must be held by the member, else ErrFenced and nothing
// changes. The commit is one meta.db transaction.
func (c *Consumer) CommitOffsets(ctx context.Context, offs map[TopicPartition]int64) error {
	m := make(map[TopicPartition]OffsetAndMetadata, len(offs))
	for tp, off := range offs {
		m[tp] = OffsetAndMetadata{Offset: off}
	}
	return c.CommitWithMetadata(ctx, m)
}

// CommitWithMetadata is CommitOffsets with a metadata string per
// partition (Kafka's OffsetAndMetadata), read back with
// ConsumerGroup.CommittedWithMetadata. Generation and Time are set by the
// group.
func (c *Consumer) CommitWithMetadata(ctx context.Context, offs map[TopicPartition]OffsetAndMetadata) error {
	if ctx == nil {
		return argError("commit", "nil context")
	}
	if c.g == nil {
		return errNoGroup
	}
	for tp, o := range offs {
		if o.Offset < 0 {
			return errorf("stream: commit %s-%d at %d: %w", tp.Topic, tp.Partition, o.Offset, ErrOffsetOutOfRange)
		}
	}
	return c.commit(ctx, offs, false)
}

func (c *Consumer) commit(ctx context.Context, offs map[TopicPartition]OffsetAndMetadata, implicit bool) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c.mu.Lock()
	id, left, fenced := c.memberID, c.left, c.fenced
	c.mu.Unlock()
	if left {
		return errorf("stream: commit: %w", ErrClosed)
	}
	if fenced != nil {
		return fenced
	}
	if err := c.g.commit(id, offs, implicit); err != nil {
		return err
	}
	c.mu.Lock()
	for tp, o := range offs {
		if st := c.parts[tp]; st != nil && (!implicit || o.Offset > st.committed) {
			st.committed = o.Offset
		}
	}
	c.mu.Unlock()
	return nil
}

// ReadToEnd is the offline batch loader: it reads the consumer's
// partitions from their positions up to the high watermarks they had when
// it was called, partition by partition, and stops there without waiting
// for more. Positions advance with each record yielded (a record counts
// as read once the loop body has it), so a Commit after the loop, or
// after breaking out of it, saves exactly what was read, and the next run
// continues from there.
//
// A group member first syncs with its group as Poll does (run the loader
// as the group's only member to get every partition; use StartAt
// StartEarliest to load everything the first time). It keeps its session
// alive while it reads and does not take part in rebalances until its next
// Poll. Errors end the iteration: ErrOffsetOutOfRange for a group-less
// consumer whose position retention passed, ErrFenced for an evicted
// member, ctx.Err().
//
//	for r, err := range c.ReadToEnd(ctx) {
//		if err != nil {
//			return err
//		}
//		load(r)
//	}
//	return c.Commit(ctx)
func (c *Consumer) ReadToEnd(ctx context.Context) iter.Seq2[*Record, error] {
	return func(yield func(*Record, error) bool) {
		if ctx == nil {
			yield(nil, argError("read to end", "nil context"))
			return
		}
		ends, err := c.endMarks(ctx)
		if err != nil {
			yield(nil, err)
			return
		}
		for _, tp := range slices.SortedFunc(maps.Keys(ends), compareTopicPartition) {
			end := ends[tp]
			for {
				if err := ctx.Err(); err != nil {
					yield(nil, err)
					return
				}
				recs, next, err := c.readUpTo(tp, end)
				if err != nil {
					yield(nil, err)
					return
				}
				if recs == nil && next < 0 {
					break
				}
				for _, r := range recs {
					c.advance(tp, r.Offset+1)
					if !yield(r, nil) {
						return
					}
				}
				c.advance(tp, next)
			}
		}
	}
}

// endMarks syncs a member with its group and returns the high watermark
// of every held partition.
func (c *Consumer) endMarks(ctx context.Context) (map[TopicPartition]int64, error) {
	c.pollMu.Lock()
	defer c.pollMu.Unlock()
	if err := c.checkPolling(); err != nil {
		return nil, err
	}
	if c.g != nil {
		defer func() { c.g.pollDone(c.MemberID()) }()
		if _, err := c.syncGroup(ctx); err != nil {
			return nil, err
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	ends := make(map[TopicPartition]int64, len(c.parts))
	for tp, st := range c.parts {
		ends[tp] = st.p.HighWatermark()
		st.seek(st.pos)
	}
	return ends, nil
}

// readUpTo reads the next records of tp below end. It returns next < 0
// when the position has reached end.
func (c *Consumer) readUpTo(tp TopicPartition, end int64) ([]*Record, int64, error) {
	c.mu.Lock()
	st, id, left := c.parts[tp], c.memberID, c.left
	c.mu.Unlock()
	if left {
		return nil, 0, errorf("stream: read: %w", ErrClosed)
	}
	if st == nil {
		return nil, -1, nil // no longer held
	}
	if c.g != nil && !c.g.touch(id) {
		return nil, 0, errorf("stream: group %s: member %s was evicted: %w", c.g.id, id, ErrFenced)
	}
	c.mu.Lock()
	pos := st.pos
	c.mu.Unlock()
	if pos >= end {
		return nil, -1, nil
	}
	recs, next, err := st.p.read(pos, scanChunk, nil)
	if errors.Is(err, ErrOffsetOutOfRange) && c.g != nil {
		pos = c.g.resolve(tp, st.p, pos, true)
		c.advance(tp, pos)
		if pos >= end {
			return nil, -1, nil
		}
		recs, next, err = st.p.read(pos, scanChunk, nil)
	}
	if err != nil {
		return nil, 0, errorf("stream: read %s-%d at %d: %w", tp.Topic, tp.Partition, pos, err)
	}
	i := len(recs)
	for i > 0 && recs[i-1].Offset >= end {
		i--
	}
	return recs[:i], min(next, end), nil
}

// advance moves tp's position forward to off.
func (c *Consumer) advance(tp TopicPartition, off int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if st := c.parts[tp]; st != nil && off > st.pos {
		st.pos, st.end = off, off
	}
}

// Close ends the consumer: CloseContext without a bound on the wait.
func (c *Consumer) Close() error {
	return c.CloseContext(context.Background())
}

// CloseContext ends the consumer. A Poll waiting in another goroutine
// returns ErrClosed, and a Run stops after the record its handler works
// on: CloseContext waits for that record until ctx ends, and then cancels
// the handler's context (its cause wraps ErrClosed) and goes on without
// it, returning ctx's error once closed. A group member then commits the
// positions of the records handed out and, under Run, accepted by the
// handler (unless CommitInterval < 0), runs OnRevoked for what it holds,
// and leaves the group, which rebalances at once; a static member instead
// keeps its slot and partitions for SessionTimeout, for a consumer with
// the same InstanceID to take back.
//
// From Run's handler it does not wait for the handler (itself): the
// handler returns, Run returns ErrClosed, and what it accepted is
// committed. From OnAssigned, OnRevoked or OnLost, which run inside
// Poll, it fails at once with ErrInCallback and changes nothing: close
// after Poll returns.
func (c *Consumer) CloseContext(ctx context.Context) error {
	if ctx == nil {
		return argError("close consumer", "nil context")
	}
	self := goroutineID()
	if self == c.callbackG.Load() {
		return errorf("stream: close consumer from its OnAssigned, OnRevoked or OnLost callback: %w", ErrInCallback)
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return errorf("stream: close consumer: %w", ErrClosed)
	}
	c.closed = true
	close(c.closing)
	running, stopRun := c.running, c.stopRun
	c.mu.Unlock()
	var waitErr error
	if running != nil && ctx.Value(runCtxKey{}) != c && self != c.runG.Load() {
		select {
		case <-running:
		case <-ctx.Done():
			waitErr = errorf("stream: close consumer: Run's handler did not return: %w", ctx.Err())
			if stopRun != nil { // nil: Run has not started the batch, and will not
				stopRun(errorf("stream: consumer closed: %w", ErrClosed))
			}
		}
	}
	c.pollMu.Lock()
	defer c.pollMu.Unlock()
	var err error
	if c.g != nil && c.fencedErr() != nil {
		if lost := c.dropPartitions(nil); len(lost) > 0 {
			c.onLost(context.Background(), lost)
		}
	} else if c.g != nil {
		ctx := context.Background()
		held := c.Assignment()
		if len(held) > 0 {
			// Run's abandoned handler cannot commit what it accepted:
			// Close does, as Run would have.
			if c.g.cfg.CommitInterval > 0 || waitErr != nil {
				if cerr := c.commitPositions(ctx, held); cerr != nil && !errors.Is(cerr, ErrFenced) {
					err = cerr
				}
			}
			c.onRevoked(ctx, held)
		}
		c.g.leave(c.MemberID())
	}
	c.mu.Lock()
	c.left = true
	c.parts, c.order = map[TopicPartition]*fetchState{}, nil
	if c.remoteStop != nil {
		c.remoteStop()
	}
	c.mu.Unlock()
	c.remoteWG.Wait()
	c.s.groups.removeConsumer(c)
	if c.hbDone != nil {
		<-c.hbDone
	}
	if waitErr != nil {
		return waitErr
	}
	return err
}
