package stream_test

// Power-cut tests: the crash tests' other mode. kill -9 (crash_test.go)
// keeps the page cache, so it cannot tell an fsync from none; here the
// topics live on an in-memory file system (MemFS, through export_test.go)
// that forgets, when the power is cut, every byte not fsynced and every
// directory entry whose directory was not fsynced. A workload runs in
// process — appenders on several partitions through rolls, retention,
// topic creation and deletion, Sync and Close — the power goes after a
// random number of file-system operations, and the directory as the next
// boot finds it must open, hold every durable acknowledged record, and
// keep offsets contiguous. meta.db stays on the real disk (bbolt fsyncs
// its own commits), so these tests do not cover losing meta.db's writes.

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/instream/stream"
)

const (
	pcTopic    = "pc"    // no retention: every durable ack must stay
	pcRetTopic = "pcret" // retention by size: acks below StartOffset may go
)

func powerCutOptions(policy stream.SyncPolicy) *stream.Options {
	return &stream.Options{
		Sync:                   policy,
		SyncInterval:           3 * time.Millisecond,
		SegmentBytes:           4 * stream.KiB,
		IndexIntervalBytes:     512,
		RetentionCheckInterval: 2 * time.Millisecond,
		DefaultTopic:           stream.TopicConfig{Retention: -1},
		// One segment's files open at a time: the active segments'
		// descriptors are closed and reopened all along, and every
		// promise must hold through that (file_cache.go).
		MaxOpenFiles: 3,
		// Batches here are a few KiB; each active segment maps room
		// for the largest (8 MiB by default), which MemFS allocates.
		MaxRecordBytes: 64 * stream.KiB,
	}
}

// pcModel is what the workload was told, across rounds: the appends
// acknowledged per partition, and of those, the ones made durable (under
// SyncAlways, every acknowledged append; otherwise those acknowledged
// before a Sync or Close that returned nil started).
type pcModel struct {
	mu      sync.Mutex
	pending map[stream.TopicPartition][]ackedAppend // acknowledged this round, in order
	covered map[stream.TopicPartition]int           // how many of pending a Sync made durable
	durable map[stream.TopicPartition][]ackedAppend
	acked   int // acknowledged appends, durable or not
	// Under SyncAlways, each partition's high watermark when the power
	// went: every record a reader could see must survive.
	visible map[stream.TopicPartition]int64
}

func newPCModel() *pcModel {
	return &pcModel{
		pending: map[stream.TopicPartition][]ackedAppend{},
		covered: map[stream.TopicPartition]int{},
		durable: map[stream.TopicPartition][]ackedAppend{},
		visible: map[stream.TopicPartition]int64{},
	}
}

func (m *pcModel) ack(tp stream.TopicPartition, a ackedAppend, policy stream.SyncPolicy) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.acked++
	if policy == stream.SyncAlways {
		m.durable[tp] = append(m.durable[tp], a)
		return
	}
	m.pending[tp] = append(m.pending[tp], a)
}

// mark returns how many acks are pending per partition: a Sync starting
// now covers them.
func (m *pcModel) mark() map[stream.TopicPartition]int {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := map[stream.TopicPartition]int{}
	for tp, p := range m.pending {
		n[tp] = len(p)
	}
	return n
}

// promote makes the acks counted by mark durable.
func (m *pcModel) promote(n map[stream.TopicPartition]int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for tp, k := range n {
		m.covered[tp] = max(m.covered[tp], k)
	}
}

// endRound keeps the acks made durable and forgets the others: the
// power cut may have taken them.
func (m *pcModel) endRound() {
	m.mu.Lock()
	defer m.mu.Unlock()
	for tp, p := range m.pending {
		m.durable[tp] = append(m.durable[tp], p[:m.covered[tp]]...)
	}
	clear(m.pending)
	clear(m.covered)
}

func TestPowerCut(t *testing.T) {
	for _, policy := range []stream.SyncPolicy{stream.SyncAlways, stream.SyncPeriodic, stream.SyncNever} {
		t.Run(policy.String(), func(t *testing.T) {
			seed := crashSeed(t)
			rounds := 8
			if testing.Short() {
				rounds = 4
			}
			runPowerCuts(t, policy, seed, rounds, false)
		})
	}
}

// TestInjectedFaults runs the power-cut workload with one file-system
// operation failing (EIO or ENOSPC) per round instead of a power cut:
// writes, fsyncs, directory fsyncs, renames, allocations. Nothing may
// panic or hang, the stream must close and reopen, and every append
// acknowledged as durable must be there.
func TestInjectedFaults(t *testing.T) {
	for _, policy := range []stream.SyncPolicy{stream.SyncAlways, stream.SyncNever} {
		t.Run(policy.String(), func(t *testing.T) {
			seed := crashSeed(t)
			rounds := 10
			if testing.Short() {
				rounds = 4
			}
			runPowerCuts(t, policy, seed, rounds, true)
		})
	}
}

// pcMode is how a round of the workload ends.
type pcMode int

const (
	pcCut   pcMode = iota // the power goes after a random number of operations
	pcClose               // Close returns, then the power goes
	pcFault               // one operation fails (EIO or ENOSPC), then Close; no power cut
)

func runPowerCuts(t *testing.T, policy stream.SyncPolicy, seed uint64, rounds int, faults bool) {
	rng := rand.New(rand.NewPCG(seed, 1))
	dir := t.TempDir()
	fsys := stream.NewMemFS()
	fsys.MkdirAllDurable(dir)
	opts := powerCutOptions(policy)
	model := newPCModel()
	for round := range rounds {
		s, err := stream.OpenOnFS(fsys, dir, opts)
		if err != nil {
			t.Fatalf("round %d: open after the power cut: %v", round, err)
		}
		parts := checkPowerCut(t, s, model)
		if t.Failed() {
			for _, ev := range s.Recovery() {
				t.Logf("recovery: %v", ev)
			}
			s.Close()
			for _, path := range fsys.ListForTest(filepath.Join(dir, "topics")) {
				t.Logf("%s: %d bytes", path, len(fsys.ReadFileForTest(path)))
			}
			t.Fatalf("round %d failed (seed %d)", round, seed)
		}
		mode := pcCut
		if faults {
			mode = pcFault
		} else if rng.IntN(3) == 0 {
			mode = pcClose
		}
		desc := runPowerCutRound(t, s, fsys, parts, model, policy, rng, mode)
		if t.Failed() {
			t.Fatalf("round %d (%s) failed (seed %d)", round, desc, seed)
		}
		if mode != pcFault {
			fsys = fsys.Restart(rng.Uint64())
		}
		if mode == pcClose {
			checkExactLogs(t, fsys, dir)
		}
		t.Logf("round %d: %s", round, desc)
	}
	s, err := stream.OpenOnFS(fsys, dir, opts)
	if err != nil {
		t.Fatalf("open after the last power cut: %v", err)
	}
	checkPowerCut(t, s, model)
	if err := s.Close(); err != nil {
		t.Errorf("close: %v", err)
	}
	var n int
	for _, as := range model.durable {
		n += len(as)
	}
	t.Logf("%d rounds, %d acknowledged appends, %d of them durable", rounds, model.acked, n)
	if model.acked < 10*rounds {
		t.Errorf("only %d appends acknowledged in %d rounds: the workload did too little to test anything", model.acked, rounds)
	}
}

// checkPowerCut checks the reopened stream against the model and returns
// the partitions the next round appends to.
func checkPowerCut(t *testing.T, s *stream.Stream, model *pcModel) []*stream.Partition {
	t.Helper()
	var parts []*stream.Partition
	for _, name := range []string{pcTopic, pcRetTopic} {
		top, err := s.Topic(name)
		if errors.Is(err, stream.ErrUnknownTopic) {
			cfg := stream.TopicConfig{Partitions: 2, Retention: -1}
			if name == pcRetTopic {
				cfg = stream.TopicConfig{Partitions: 1, Retention: -1, RetentionBytes: 12 * stream.KiB}
			}
			top, err = s.CreateTopic(name, cfg)
		}
		if err != nil {
			t.Fatalf("topic %s: %v", name, err)
		}
		for i := range top.NumPartitions() {
			p, _ := top.Partition(int32(i))
			parts = append(parts, p)
			tp := stream.TopicPartition{Topic: name, Partition: int32(i)}
			start, recs := readPartitionFollowingRetention(t, p)
			model.mu.Lock()
			acks := model.durable[tp]
			model.mu.Unlock()
			if name == pcTopic && start != 0 {
				t.Errorf("%s-%d: StartOffset %d without retention", name, i, start)
			}
			if hw, seen := start+int64(len(recs)), model.visible[tp]; hw < seen {
				t.Errorf("%s-%d: high watermark %d after the power cut; readers saw records up to %d before it", name, i, hw, seen)
			}
			checkAcked(t, p, start, recs, acks)
		}
	}
	return parts
}

// runPowerCutRound runs the workload on s until the power goes (after a
// random number of operations) or, in a close round, until Close returns
// nil and the power is cut after it. It returns a description.
func runPowerCutRound(t *testing.T, s *stream.Stream, fsys *stream.MemFS, parts []*stream.Partition, model *pcModel, policy stream.SyncPolicy, rng *rand.Rand, mode pcMode) string {
	t.Helper()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var faulted atomic.Bool
	if policy == stream.SyncAlways && mode != pcFault {
		fsys.OnCut(func() {
			for _, p := range parts {
				model.visible[stream.TopicPartition{Topic: p.Topic(), Partition: p.ID()}] = p.HighWatermark()
			}
		})
	}
	for i, p := range parts {
		for w := range 2 {
			wrng := rand.New(rand.NewPCG(rng.Uint64(), uint64(i*2+w)))
			wg.Add(1)
			go func() {
				defer wg.Done()
				tp := stream.TopicPartition{Topic: p.Topic(), Partition: p.ID()}
				var b stream.Batch
				for seq := 0; ; seq++ {
					select {
					case <-stop:
						return
					default:
					}
					recs := crashRecords(wrng, fmt.Sprintf("%s-%d-w%d-%d", tp.Topic, tp.Partition, w, seq), 8)
					var base int64
					var err error
					if wrng.IntN(2) == 0 {
						base, err = p.Append(recs...)
					} else {
						b.Reset()
						for _, r := range recs {
							b.Add(r.Key, r.Value, r.Headers...)
						}
						base, err = p.AppendBatch(&b)
					}
					if err != nil {
						return // the power went, or Close
					}
					model.ack(tp, ackedAppend{base: base, count: len(recs), sum: recordsSum(recs)}, policy)
				}
			}()
		}
	}
	// Sync makes the appends acknowledged before it durable.
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			case <-time.After(time.Millisecond):
			}
			n := model.mark()
			if err := s.Sync(); err != nil {
				if !fsys.Dead() && !faulted.Load() && !errors.Is(err, stream.ErrClosed) {
					t.Errorf("Sync with the power on: %v", err)
				}
				return
			}
			model.promote(n)
		}
	}()
	// Topics come and go.
	arng := rand.New(rand.NewPCG(rng.Uint64(), 99))
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			name := fmt.Sprintf("side%d", arng.IntN(2))
			top, err := s.CreateTopic(name, stream.TopicConfig{Retention: -1})
			if err == nil {
				if p, err := top.Partition(0); err == nil {
					p.Append(&stream.Record{Value: []byte("side")})
				}
			}
			if err := s.DeleteTopic(name); err != nil && (fsys.Dead() || faulted.Load() || errors.Is(err, stream.ErrClosed)) {
				return
			}
		}
	}()
	var desc string
	switch mode {
	case pcFault:
		k := 1 + rng.IntN(800)
		errno := syscall.EIO
		if rng.IntN(2) == 0 {
			errno = syscall.ENOSPC
		}
		var n int // guarded by the file system's lock
		var failed string
		fsys.SetFault(func(op, path string) error {
			switch op {
			case "write", "sync", "syncdata", "syncdir", "rename", "allocate", "truncate", "open":
				n++
				if n == k {
					failed = op + " " + path
					faulted.Store(true)
					return errno
				}
			}
			return nil
		})
		deadline := time.Now().Add(10 * time.Second)
		for !faulted.Load() && time.Now().Before(deadline) {
			time.Sleep(200 * time.Microsecond)
		}
		time.Sleep(time.Duration(rng.IntN(5)) * time.Millisecond) // let the workload meet it
		close(stop)
		wg.Wait()
		n0 := model.mark()
		if err := s.Close(); err == nil {
			model.promote(n0)
		}
		fsys.SetFault(nil)
		desc = fmt.Sprintf("%v on operation %d (%s), then Close", errno, k, failed)
	case pcClose:
		time.Sleep(time.Duration(rng.IntN(20)) * time.Millisecond)
		err := s.Close()
		close(stop)
		wg.Wait()
		if err != nil {
			t.Errorf("Close: %v", err)
		} else {
			// Appends that returned before Close ended were in the
			// log when it synced.
			model.promote(model.mark())
		}
		fsys.CutPower()
		desc = "Close, then the power cut"
	default:
		cut := 1 + rng.IntN(1000)
		fsys.CutPowerAfter(cut)
		deadline := time.Now().Add(10 * time.Second)
		for !fsys.Dead() && time.Now().Before(deadline) {
			time.Sleep(200 * time.Microsecond)
		}
		if !fsys.Dead() {
			fsys.CutPower()
		}
		close(stop)
		wg.Wait()
		s.Close() // fails: the disk is gone; it must release meta.db and the lock
		desc = fmt.Sprintf("power cut before operation %d", cut)
	}
	model.endRound()
	return desc
}

// checkExactLogs checks that after a Close every segment file holds
// exactly its batches: no preallocated tail, no torn batch.
func checkExactLogs(t *testing.T, fsys *stream.MemFS, dir string) {
	t.Helper()
	for _, path := range fsys.ListForTest(filepath.Join(dir, "topics")) {
		if !strings.HasSuffix(path, ".log") {
			continue
		}
		b := fsys.ReadFileForTest(path)
		for pos := 0; pos < len(b); {
			_, size, _, _, err := stream.DecodeBatchForTest(b[pos:])
			if err != nil {
				t.Errorf("after Close, %s at byte %d of %d: %v", path, pos, len(b), err)
				break
			}
			pos += int(size)
		}
	}
}

// readPartitionFollowingRetention is readPartition on a partition whose
// retention may move StartOffset meanwhile: it starts over from the new
// start when that happens.
func readPartitionFollowingRetention(t *testing.T, p *stream.Partition) (start int64, recs []*stream.Record) {
	t.Helper()
	start, hw := p.StartOffset(), p.HighWatermark()
	for next := start; next < hw; {
		got, err := p.Read(next, 256<<10)
		if errors.Is(err, stream.ErrOffsetOutOfRange) && p.StartOffset() > next {
			start, recs = p.StartOffset(), nil
			next = start
			continue
		}
		if err != nil {
			t.Errorf("%s-%d: read at %d of [%d, %d): %v (corrupt: %v)", p.Topic(), p.ID(), next, start, hw, err, errors.Is(err, stream.ErrCorrupt))
			return start, recs
		}
		if len(got) == 0 {
			t.Errorf("%s-%d: read at %d of [%d, %d) returned nothing", p.Topic(), p.ID(), next, start, hw)
			return start, recs
		}
		for _, r := range got {
			if r.Offset != next {
				t.Errorf("%s-%d: offset %d, want %d (offsets must be contiguous)", p.Topic(), p.ID(), r.Offset, next)
				return start, recs
			}
			recs = append(recs, r)
			next++
		}
	}
	return start, recs
}
