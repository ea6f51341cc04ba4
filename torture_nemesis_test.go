package stream_test

// The torture suite's disk mode: one node on MemFS, in process. Each
// cycle opens the directory, runs writers (direct appends and an
// idempotent Producer) and a consumer group of two members, and ends
// with a nemesis drawn from the seed: a power cut after a random number
// of file-system operations, an EIO or ENOSPC on one write or fsync of a
// partition's files (then Close), or a clean Close. Members may stall
// past their session timeout or poll interval on the way. The last cycle
// of a run may plant damage in the closed directory: a flipped bit or a
// truncation in a segment, an index, a time index, or the loss of a
// recovery point. Then Open must succeed, or fail with ErrCorrupt naming
// the damaged file, and never panic; a final fault-free read feeds the
// checker.
//
// What the package doc promises, and so what is checked (SyncAlways):
// every acknowledged append survives a power cut and a failed fsync;
// after a failed write or fsync the partition acknowledges nothing more
// until it is reopened; consumers never see a record a power cut can
// erase (readers stop at the fsynced high watermark, so their polls feed
// the inconsistent and duplicate checks). What planted damage may take:
// a flipped bit or a truncation in a .log costs at most the records
// from the damaged batch to the end of that segment (reads of them fail
// with ErrCorrupt, or, in the last segment, the tail is cut as torn),
// never a record of another segment and never a wrong value; damage to
// indexes and recovery points costs nothing (they are rebuilt).

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/instream/stream"
)

const (
	tortureTopic     = "t"
	tortureMaxRecord = 16 << 10 // Options.MaxRecordBytes
)

// tortureValue is the unique value a record carries: its bytes up to a
// '|' (oversized records pad theirs after one).
func tortureValue(b []byte) string {
	if i := slices.Index(b, '|'); i >= 0 {
		b = b[:i]
	}
	return string(b)
}

func tortureDiskOptions() *stream.Options {
	return &stream.Options{
		Sync:                   stream.SyncAlways,
		SegmentBytes:           4 * stream.KiB,
		IndexIntervalBytes:     512,
		RetentionCheckInterval: time.Hour,
		DefaultTopic:           stream.TopicConfig{Retention: -1},
		MaxRecordBytes:         tortureMaxRecord,
		Logger:                 slog.New(slog.DiscardHandler),
	}
}

// tortureGroupConfig: short timeouts, so that stalls evict members.
func tortureGroupConfig() stream.GroupConfig {
	return stream.GroupConfig{Topics: []string{tortureTopic}, SessionTimeout: 250 * time.Millisecond, CommitInterval: 20 * time.Millisecond}
}

func tortureDisk(t *testing.T, seed uint64, long bool) (int, tortureResult) {
	rng := rand.New(rand.NewPCG(seed, 14))
	h := newTortureHistory()
	dir := t.TempDir()
	fsys := stream.NewMemFS()
	fsys.MkdirAllDurable(dir)
	cycles := 3
	if long {
		cycles = 4 + rng.IntN(5)
	}
	for c := range cycles {
		s := tortureOpen(t, h, fsys, dir, "", nil)
		if s == nil {
			return c, h.Check()
		}
		tortureReadAll(h, s, "interim", false)
		end := rng.IntN(3)
		desc := tortureDiskCycle(h, s, fsys, rng, fmt.Sprintf("s%d-c%d", seed, c), end)
		t.Logf("cycle %d: %s", c, desc)
		if fsys.Dead() {
			fsys = fsys.Restart(rng.Uint64())
		}
	}
	// Damage, planted in the closed directory (the last cycle closed it
	// or cut the power).
	var damaged []string
	if rng.IntN(2) == 0 {
		damaged = tortureDamage(t, h, fsys, dir, rng)
	}
	metaDamaged := rng.IntN(6) == 0
	if metaDamaged {
		damaged = append(damaged, tortureDamageMeta(t, dir, rng))
	}
	s := tortureOpen(t, h, fsys, dir, "after damage "+strings.Join(damaged, ", "), damaged)
	if s != nil {
		tortureReadAll(h, s, "final", len(damaged) > 0)
		if !metaDamaged {
			// bbolt checksums its meta pages only: a flipped bit in
			// a page of committed offsets can change one unnoticed.
			tortureObserveCommits(h, s)
		}
		if err := s.Close(); err != nil {
			h.anomaly("close-error", "final Close: %v", err)
		}
	}
	return cycles, h.Check()
}

// tortureOpen opens dir on fsys: any failure but ErrCorrupt naming a
// damaged file is an anomaly, and so is a panic.
func tortureOpen(t *testing.T, h *tortureHistory, fsys *stream.MemFS, dir, when string, damaged []string) (s *stream.Stream) {
	defer func() {
		if p := recover(); p != nil {
			h.anomaly("open-panic", "Open %s panicked: %v", when, p)
			s = nil
		}
	}()
	s, err := stream.OpenOnFS(fsys, dir, tortureDiskOptions())
	if err == nil {
		return s
	}
	named := slices.ContainsFunc(damaged, func(f string) bool { return strings.Contains(err.Error(), filepath.Base(f)) })
	if errors.Is(err, stream.ErrCorrupt) && named {
		t.Logf("Open %s refused: %v", when, err)
		h.mu.Lock()
		h.refused = true
		h.mu.Unlock()
		return nil
	}
	h.anomaly("open-error", "Open %s: %v", when, err)
	return nil
}

// tortureReadAll reads every partition of the torture topic from its
// start to its high watermark. A final read feeds the lost and unseen
// checks; an interim one (after a reopen, before the next cycle) only
// the inconsistent and duplicate ones. Reads fail only with ErrCorrupt
// where damage was planted, and never skip an offset.
func tortureReadAll(h *tortureHistory, s *stream.Stream, replica string, damaged bool) {
	top, err := s.Topic(tortureTopic)
	if errors.Is(err, stream.ErrUnknownTopic) {
		top, err = s.CreateTopic(tortureTopic, stream.TopicConfig{Partitions: 3, Retention: -1})
	}
	if err != nil {
		h.anomaly("open-error", "topic: %v", err)
		return
	}
	for i := range top.NumPartitions() {
		p, _ := top.Partition(int32(i))
		f := readReplica(h, p, replica, damaged)
		if replica == "final" {
			h.final(f)
		} else {
			h.mu.Lock()
			h.obs = append(h.obs, f.recs...)
			h.mu.Unlock()
		}
	}
}

// readReplica reads p from its start to its high watermark, stepping
// over offsets that fail with ErrCorrupt (allowed only when damaged).
func readReplica(h *tortureHistory, p *stream.Partition, replica string, damaged bool) finalRead {
	tp := stream.TopicPartition{Topic: p.Topic(), Partition: p.ID()}
	f := finalRead{replica: replica, tp: tp, start: p.StartOffset(), hw: p.HighWatermark()}
	for next := f.start; next < f.hw; {
		recs, err := p.Read(next, 64<<10)
		if errors.Is(err, stream.ErrCorrupt) && damaged {
			f.corrupt = append(f.corrupt, next)
			next++
			continue
		}
		if err != nil {
			h.anomaly("read-error", "%s: %s-%d read at %d of [%d, %d): %v", replica, tp.Topic, tp.Partition, next, f.start, f.hw, err)
			return f
		}
		if len(recs) == 0 {
			h.anomaly("read-error", "%s: %s-%d read at %d of [%d, %d) returned nothing", replica, tp.Topic, tp.Partition, next, f.start, f.hw)
			return f
		}
		for _, r := range recs {
			if r.Offset != next {
				h.anomaly("read-gap", "%s: %s-%d read at %d returned offset %d: offsets skipped", replica, tp.Topic, tp.Partition, next, r.Offset)
			}
			f.recs = append(f.recs, tortureObs{tp, r.Offset, tortureValue(r.Value)})
			next = r.Offset + 1
		}
	}
	return f
}

func tortureObserveCommits(h *tortureHistory, s *stream.Stream) {
	g, err := s.ConsumerGroup("g", tortureGroupConfig())
	if err != nil {
		h.anomaly("group-error", "ConsumerGroup: %v", err)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	offs, err := g.Committed(ctx)
	if err != nil {
		h.anomaly("group-error", "Committed: %v", err)
		return
	}
	for tp, off := range offs {
		h.committed("g", tp, off)
	}
}

// tortureDiskCycle runs the workload on s until its end: 0 a power cut
// after a random number of operations, 1 one failed write or fsync then
// Close, 2 a clean Close. It returns a description.
func tortureDiskCycle(h *tortureHistory, s *stream.Stream, fsys *stream.MemFS, rng *rand.Rand, tag string, end int) string {
	top, err := s.Topic(tortureTopic)
	if err != nil {
		h.anomaly("open-error", "topic: %v", err)
		s.Close()
		return "no topic"
	}
	tortureObserveCommits(h, s)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	// The fault end: the moment a partition's write or fsync failed,
	// on a logical clock every append reads at its start.
	var clock atomic.Int64
	var faultAt atomic.Int64 // 0: no fault yet
	var faultDir atomic.Value
	var fired atomic.Bool
	ackedAfterFault := func(tp stream.TopicPartition, start int64, v string) {
		at := faultAt.Load()
		if at == 0 || start <= at {
			return
		}
		if d, _ := faultDir.Load().(string); d == fmt.Sprintf("%s-%d", tp.Topic, tp.Partition) {
			h.anomaly("ack-after-failed-fsync", "%q acknowledged at %s-%d, appended after the partition's write or fsync failed", v, tp.Topic, tp.Partition)
		}
	}

	// Writers: direct appends, one goroutine per partition.
	for i := range top.NumPartitions() {
		p, _ := top.Partition(int32(i))
		tp := stream.TopicPartition{Topic: tortureTopic, Partition: int32(i)}
		wrng := rand.New(rand.NewPCG(rng.Uint64(), uint64(i)))
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				recs := make([]*stream.Record, 1+wrng.IntN(3))
				vals := make([]string, len(recs))
				tooLarge := n%100 == 99
				for j := range recs {
					vals[j] = fmt.Sprintf("%s-a%d-%d-%d", tag, i, n, j)
					h.invoke(vals[j], tp, true)
					recs[j] = &stream.Record{Value: []byte(vals[j])}
					if tooLarge {
						recs[j].Value = append(recs[j].Value, make([]byte, tortureMaxRecord)...)
						recs[j].Value[len(vals[j])] = '|'
					}
				}
				start := clock.Add(1)
				base, err := p.Append(recs...)
				if tooLarge && !errors.Is(err, stream.ErrRecordTooLarge) {
					h.anomaly("too-large-accepted", "an append of %d bytes past MaxRecordBytes returned %v", tortureMaxRecord, err)
				}
				for j, v := range vals {
					if err != nil {
						// Only ErrRecordTooLarge says nothing was
						// written. Any other failure is ambiguous: an
						// append whose fsync succeeded fails when the
						// index write after it does, and stays.
						h.fail(v, errors.Is(err, stream.ErrRecordTooLarge))
						continue
					}
					h.ack(v, tp, base+int64(j))
					ackedAfterFault(tp, start, v)
				}
				if err != nil && !tooLarge {
					if errors.Is(err, stream.ErrClosed) {
						return
					}
					time.Sleep(time.Millisecond)
				}
			}
		}()
	}
	// An idempotent producer, choosing partitions itself.
	prod, err := s.NewProducer(stream.ProducerConfig{Linger: time.Millisecond, DeliveryTimeout: 300 * time.Millisecond, RetryBackoff: 5 * time.Millisecond})
	if err != nil {
		h.anomaly("producer-error", "NewProducer: %v", err)
	} else {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				v := fmt.Sprintf("%s-p-%d", tag, n)
				h.invoke(v, stream.TopicPartition{}, true)
				start := clock.Add(1)
				prod.SendAsync(&stream.Record{Topic: tortureTopic, Key: []byte(fmt.Sprint(n % 7)), Value: []byte(v)}, func(r *stream.Record, err error) {
					if err != nil {
						h.fail(v, false) // retried, timed out: ambiguous
						return
					}
					tp := stream.TopicPartition{Topic: r.Topic, Partition: r.Partition}
					h.ack(v, tp, r.Offset)
					ackedAfterFault(tp, start, v)
				})
				if n%50 == 49 {
					ctx, cancel := context.WithTimeout(context.Background(), time.Second)
					prod.Flush(ctx)
					cancel()
				}
			}
		}()
	}
	// The group: two members polling; one may stall.
	stall := -1
	if rng.IntN(2) == 0 {
		stall = rng.IntN(2)
	}
	g, err := s.ConsumerGroup("g", tortureGroupConfig())
	if err != nil {
		h.anomaly("group-error", "ConsumerGroup: %v", err)
	}
	var members sync.WaitGroup
	for m := range 2 {
		if g == nil {
			break
		}
		members.Add(1)
		go func() {
			defer members.Done()
			tortureMember(h, g, stop, fmt.Sprintf("%s-m%d", tag, m), m == stall)
		}()
	}

	var desc string
	switch end {
	case 0:
		cut := 1 + rng.IntN(3000)
		fsys.CutPowerAfter(cut)
		waitUntil(10*time.Second, fsys.Dead)
		if !fsys.Dead() {
			fsys.CutPower()
		}
		desc = fmt.Sprintf("power cut before operation %d", cut)
	case 1:
		k := 1 + rng.IntN(400)
		errno := syscall.EIO
		if rng.IntN(2) == 0 {
			errno = syscall.ENOSPC
		}
		var n int // guarded by the file system's lock
		var failed string
		fsys.SetFault(func(op, path string) error {
			switch op {
			case "write", "sync", "syncdata":
			default:
				return nil
			}
			pdir := filepath.Base(filepath.Dir(path)) // t-0 for topics/t-0/…
			if !strings.HasPrefix(pdir, tortureTopic+"-") {
				return nil // only a partition's files
			}
			if n++; n != k {
				return nil
			}
			failed = op + " " + path
			fired.Store(true)
			// A partition's data, its segments and indexes, stops
			// the partition. A failed write or fsync of its recovery
			// point need not: the new point is renamed into place
			// only once synced, and a stale one only costs Open more
			// validation.
			if strings.HasSuffix(path, ".log") || strings.HasSuffix(path, "index") {
				faultDir.Store(pdir)
				faultAt.Store(clock.Add(1))
			}
			return errno
		})
		waitUntil(10*time.Second, fired.Load)
		time.Sleep(time.Duration(5+rng.IntN(20)) * time.Millisecond) // let the workload meet it
		desc = fmt.Sprintf("%v on the %dth write or fsync of a partition (%s), then Close", errno, k, failed)
	default:
		time.Sleep(time.Duration(20+rng.IntN(100)) * time.Millisecond)
		desc = "clean Close"
	}
	if stall >= 0 {
		desc += fmt.Sprintf("; member %d stalled", stall)
	}
	close(stop)
	if prod != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		prod.CloseContext(ctx)
		cancel()
	}
	members.Wait()
	wg.Wait()
	err = s.Close()
	fsys.SetFault(nil)
	if end == 2 && err != nil {
		h.anomaly("close-error", "clean Close: %v", err)
	}
	return desc
}

// tortureMember is one member of the group: it polls until stop,
// rejoining when evicted; stalled, it stops polling (and heartbeating)
// past the group's timeouts once, then goes on.
func tortureMember(h *tortureHistory, g *stream.ConsumerGroup, stop <-chan struct{}, name string, stall bool) {
	for join := 0; ; join++ {
		id := fmt.Sprintf("%s-j%d", name, join)
		ctx, cancel := context.WithCancel(context.Background())
		c, err := g.Join(ctx, stream.ConsumerConfig{
			MaxPollRecords:  50,
			FetchMaxWait:    20 * time.Millisecond,
			MaxPollInterval: 400 * time.Millisecond,
			OnAssigned: func(_ context.Context, tps []stream.TopicPartition) {
				for _, tp := range tps {
					h.assigned(id, tp)
				}
			},
		})
		if err != nil {
			cancel()
			return // the stream is closing
		}
		rejoin := false
		for polls := 0; !rejoin; polls++ {
			select {
			case <-stop:
				c.Close()
				cancel()
				return
			default:
			}
			if stall && polls == 20 {
				stall = false
				if join%2 == 0 {
					stream.StopHeartbeats(c)
				}
				time.Sleep(600 * time.Millisecond)
				rejoin = join%2 == 0 // no heartbeats: a new member
			}
			pctx, pcancel := context.WithTimeout(ctx, 200*time.Millisecond)
			recs, err := c.Poll(pctx)
			pcancel()
			for _, r := range recs {
				h.polled(id, stream.TopicPartition{Topic: r.Topic, Partition: r.Partition}, r.Offset, tortureValue(r.Value))
			}
			if err != nil && !errors.Is(err, context.DeadlineExceeded) {
				rejoin = true // fenced, evicted, or closing
			}
		}
		c.Close()
		cancel()
	}
}

// waitUntil polls cond every 200µs until it holds or d passes.
func waitUntil(d time.Duration, cond func() bool) {
	deadline := time.Now().Add(d)
	for !cond() && time.Now().Before(deadline) {
		time.Sleep(200 * time.Microsecond)
	}
}

// tortureDamage plants one or two kinds of damage in the closed
// directory and records what each may cost. It returns the damaged
// files.
func tortureDamage(t *testing.T, h *tortureHistory, fsys *stream.MemFS, dir string, rng *rand.Rand) []string {
	var files []string
	for _, f := range fsys.ListForTest(filepath.Join(dir, "topics")) {
		if strings.Contains(f, "/"+tortureTopic+"-") {
			files = append(files, f)
		}
	}
	if len(files) == 0 {
		return nil
	}
	var damaged []string
	for range 1 + rng.IntN(2) {
		f := files[rng.IntN(len(files))]
		b := fsys.ReadFileForTest(f)
		orig := slices.Clone(b)
		base := filepath.Base(f)
		pdir := filepath.Base(filepath.Dir(f))
		var part int32
		fmt.Sscanf(pdir[strings.LastIndex(pdir, "-")+1:], "%d", &part)
		tp := stream.TopicPartition{Topic: tortureTopic, Partition: part}
		truncate := rng.IntN(3) == 0
		if len(b) == 0 {
			continue
		}
		pos := rng.IntN(len(b))
		what := ""
		if truncate {
			fsys.WriteFileForTest(f, b[:pos])
			what = fmt.Sprintf("%s truncated to %d of %d bytes", f, pos, len(b))
		} else {
			bit := rng.IntN(8)
			b[pos] ^= 1 << bit
			fsys.WriteFileForTest(f, b)
			what = fmt.Sprintf("%s: bit %d of byte %d flipped", f, bit, pos)
		}
		damaged = append(damaged, f)
		t.Logf("damage: %s", what)
		if !strings.HasSuffix(base, ".log") {
			continue // indexes and recovery points are rebuilt: nothing excused
		}
		// The batch holding pos, and every later one of the segment,
		// may be gone (a torn tail) or unreadable (ErrCorrupt).
		var from int64
		fmt.Sscanf(strings.TrimSuffix(base, ".log"), "%d", &from)
		for p := 0; p < len(orig); {
			_, size, _, last, err := stream.DecodeBatchForTest(orig[p:])
			if err != nil || int64(p)+size > int64(pos) {
				break
			}
			from = last + 1
			p += int(size)
		}
		h.excuseRange(excuse{tp: tp, from: from, to: segmentEnd(files, f), why: what})
	}
	return damaged
}

// tortureDamageMeta flips a bit in meta.db or truncates it (it is on
// the real disk, beside the MemFS). Open must then succeed or fail with
// ErrCorrupt naming meta.db, never panic or crash.
func tortureDamageMeta(t *testing.T, dir string, rng *rand.Rand) string {
	path := filepath.Join(dir, "meta.db")
	b, err := os.ReadFile(path)
	if err != nil || len(b) == 0 {
		t.Fatalf("meta.db: %v", err)
	}
	pos := rng.IntN(len(b))
	if rng.IntN(2) == 0 {
		b = b[:pos]
		t.Logf("damage: %s truncated to %d bytes", path, pos)
	} else {
		bit := rng.IntN(8)
		b[pos] ^= 1 << bit
		t.Logf("damage: %s: bit %d of byte %d flipped", path, bit, pos)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// segmentEnd is the base offset of the segment after f (the end of f's
// offsets), or a huge number when f is the last one.
func segmentEnd(files []string, f string) int64 {
	dir := filepath.Dir(f)
	var bases []int64
	for _, g := range files {
		if filepath.Dir(g) == dir && strings.HasSuffix(g, ".log") {
			var b int64
			fmt.Sscanf(strings.TrimSuffix(filepath.Base(g), ".log"), "%d", &b)
			bases = append(bases, b)
		}
	}
	slices.Sort(bases)
	var mine int64
	fmt.Sscanf(strings.TrimSuffix(filepath.Base(f), ".log"), "%d", &mine)
	for _, b := range bases {
		if b > mine {
			return b
		}
	}
	return 1 << 62
}
