package stream_test

// Bounded resources: sealed segments hold their files only while the
// Stream's file cache keeps them (Options.MaxOpenFiles), and a clean
// Close lets the next Open trust the active segments.

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/instream/stream"
)

// openFilesUnder counts this process's file descriptors open on files
// under dir (/proc/self/fd), or skips the test where /proc is missing.
func openFilesUnder(tb testing.TB, dir string) int {
	tb.Helper()
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		tb.Skipf("no /proc/self/fd: %v", err)
	}
	n := 0
	for _, fd := range fds {
		target, err := os.Readlink(filepath.Join("/proc/self/fd", fd.Name()))
		if err == nil && strings.HasPrefix(target, dir+string(filepath.Separator)) {
			n++
		}
	}
	return n
}

// fillSegments appends records of about 400 bytes to p until it has at
// least n segments, calling check after each append.
func fillSegments(t *testing.T, s *stream.Stream, p *stream.Partition, n int, check func()) int {
	t.Helper()
	val := make([]byte, 400)
	i := 0
	for s.Stats().Segments < n {
		copy(val, value(i))
		if _, err := p.Append(&stream.Record{Value: val}); err != nil {
			t.Fatal(err)
		}
		i++
		check()
	}
	return i
}

// TestMaxOpenFilesBound: a partition of 200 segments, written and then
// read in full after a reopen, never holds more than MaxOpenFiles
// descriptors for its sealed segments (the active one holds three more;
// meta.db and LOCK two), where it held three per segment before the file
// cache.
func TestMaxOpenFilesBound(t *testing.T) {
	dir := t.TempDir()
	const maxOpen = 16
	opts := &stream.Options{SegmentBytes: stream.KiB, IndexIntervalBytes: 256, MaxOpenFiles: maxOpen}
	const bound = maxOpen + 3 + 2
	most := 0
	check := func() {
		if n := openFilesUnder(t, dir); n > most {
			most = n
		}
	}
	s, err := stream.Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	p := partition(t, s, "t", stream.TopicConfig{Retention: -1})
	n := fillSegments(t, s, p, 200, check)
	if most > bound {
		t.Fatalf("%d files open under %s while appending %d segments, want at most %d", most, dir, s.Stats().Segments, bound)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if got := openFilesUnder(t, dir); got != 0 {
		t.Fatalf("%d files open after Close", got)
	}

	most = 0
	s, err = stream.Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	check()
	p = existing(t, s, "t", 0)
	for next := int64(0); next < p.HighWatermark(); {
		recs, err := p.Read(next, 1)
		if err != nil {
			t.Fatalf("Read(%d): %v", next, err)
		}
		if got, want := string(recs[0].Value[:12]), string(value(int(next))); got != want {
			t.Fatalf("record %d: value %q, want %q", next, got, want)
		}
		next++
		check()
	}
	if p.HighWatermark() != int64(n) {
		t.Fatalf("high watermark %d, want %d", p.HighWatermark(), n)
	}
	// ForEach and OffsetForTime go through the cache too.
	count := 0
	if err := p.ForEach(0, -1, func(*stream.Record) error { count++; check(); return nil }); err != nil || count != n {
		t.Fatalf("ForEach: %d records, %v; want %d", count, err, n)
	}
	if off, err := p.OffsetForTime(time.UnixMilli(0)); err != nil || off != 0 {
		t.Fatalf("OffsetForTime(0) = %d, %v", off, err)
	}
	check()
	t.Logf("%d segments, at most %d files open (bound %d)", s.Stats().Segments, most, bound)
	if most > bound {
		t.Fatalf("%d files open under %s reading %d segments, want at most %d", most, dir, s.Stats().Segments, bound)
	}
}

// TestFileCacheRace: readers of every kind, appenders rolling the log,
// retention deleting segments and Close, all at once, over a cache that
// keeps one segment open: every record read is the one appended at its
// offset, and each call either succeeds or fails with ErrClosed or (a
// segment retention took) ErrOffsetOutOfRange. Run it with -race.
func TestFileCacheRace(t *testing.T) {
	checkNoLeaks(t)
	for _, policy := range []stream.SyncPolicy{stream.SyncAlways, stream.SyncNever} {
		t.Run(policy.String(), func(t *testing.T) {
			dir := t.TempDir()
			s, err := stream.Open(dir, &stream.Options{
				Sync: policy, SegmentBytes: stream.KiB, IndexIntervalBytes: 128,
				MaxOpenFiles: 3, RetentionCheckInterval: time.Millisecond,
			})
			if err != nil {
				t.Fatal(err)
			}
			tp, err := s.CreateTopic("t", stream.TopicConfig{Partitions: 2, Retention: -1, RetentionBytes: 8 * stream.KiB})
			if err != nil {
				t.Fatal(err)
			}
			var ps []*stream.Partition
			for i := range int32(2) {
				p, err := tp.Partition(i)
				if err != nil {
					t.Fatal(err)
				}
				ps = append(ps, p)
			}
			tolerable := func(err error) bool {
				return err == nil || errors.Is(err, stream.ErrClosed) || errors.Is(err, stream.ErrOffsetOutOfRange)
			}
			var wg sync.WaitGroup
			var failed atomic.Value
			fail := func(format string, err error) {
				failed.CompareAndSwap(nil, format+": "+err.Error())
			}
			var appended atomic.Int64
			for _, p := range ps {
				wg.Add(1)
				go func() { // appender: values name their offsets
					defer wg.Done()
					val := make([]byte, 200)
					// Bounded: under SyncNever nothing bounds the
					// segments sealed ahead of the flusher.
					for i := 0; i < 500; i++ {
						copy(val, value(i))
						off, err := p.Append(&stream.Record{Value: val})
						if err != nil {
							if !errors.Is(err, stream.ErrClosed) {
								fail("append", err)
							}
							return
						}
						if off != int64(i) {
							fail("append", errors.New("offset "+strconv.FormatInt(off, 10)+", want "+strconv.Itoa(i)))
							return
						}
						appended.Add(1)
					}
				}()
				for r := range 3 {
					wg.Add(1)
					go func() { // reader: Read, ForEach, OffsetForTime at random offsets
						defer wg.Done()
						rng := rand.New(rand.NewPCG(uint64(r), 7))
						for {
							start, hw := p.StartOffset(), p.HighWatermark()
							off := start
							if hw > start {
								off += rng.Int64N(hw - start)
							}
							var err error
							switch rng.IntN(3) {
							case 0:
								var recs []*stream.Record
								recs, err = p.Read(off, 1+rng.IntN(2000))
								for _, rec := range recs {
									if got, want := string(rec.Value[:12]), string(value(int(rec.Offset))); got != want {
										fail("read", errors.New("offset "+strconv.FormatInt(rec.Offset, 10)+": "+got+", want "+want))
									}
								}
							case 1:
								err = p.ForEach(off, min(hw, off+20), func(rec *stream.Record) error {
									if got, want := string(rec.Value[:12]), string(value(int(rec.Offset))); got != want {
										fail("ForEach", errors.New("offset "+strconv.FormatInt(rec.Offset, 10)+": "+got+", want "+want))
									}
									return nil
								})
							case 2:
								_, err = p.OffsetForTime(time.Now().Add(-time.Duration(rng.IntN(100)) * time.Millisecond))
							}
							if errors.Is(err, stream.ErrClosed) {
								return
							}
							if !tolerable(err) {
								fail("read", err)
								return
							}
						}
					}()
				}
			}
			for appended.Load() < 600 && failed.Load() == nil {
				time.Sleep(time.Millisecond)
			}
			if err := s.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
			wg.Wait()
			if msg := failed.Load(); msg != nil {
				t.Fatal(msg)
			}
			if n := openFilesUnder(t, dir); n != 0 {
				t.Fatalf("%d files open after Close", n)
			}
		})
	}
}

// countLogReads opens the stream in dir on fsys and counts the reads of
// .log files that Open makes (reads through the active segment's map do
// not count).
func countLogReads(t *testing.T, fsys *stream.MemFS, dir string, opts *stream.Options) (*stream.Stream, int) {
	t.Helper()
	var reads atomic.Int64
	fsys.Trace(func(op, path string, ok bool) {
		if op == "read" && strings.HasSuffix(path, ".log") {
			reads.Add(1)
		}
	})
	s, err := stream.OpenOnFS(fsys, dir, opts)
	fsys.Trace(nil)
	if err != nil {
		t.Fatal(err)
	}
	return s, int(reads.Load())
}

// TestCleanShutdownSkipsValidation: after a clean Close, Open reads the
// active segment only after its last index entry (the batch headers that
// find the end of the log); without the marker (a crash) it validates the
// segment from its index entries on.
func TestCleanShutdownSkipsValidation(t *testing.T) {
	dir := t.TempDir()
	fsys := stream.NewMemFS()
	fsys.MkdirAllDurable(dir)
	opts := &stream.Options{IndexIntervalBytes: 256}
	s, err := stream.OpenOnFS(fsys, dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	p := partition(t, s, "t", stream.TopicConfig{})
	appendN(t, p, 0, 300) // one segment, ~60 index entries
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	marker := filepath.Join(dir, "topics", ".clean_shutdown")
	if !slices.Contains(fsys.ListForTest(filepath.Join(dir, "topics")), marker) {
		t.Fatalf("no %s after a clean Close: %v", marker, fsys.ListForTest(filepath.Join(dir, "topics")))
	}

	s, clean := countLogReads(t, fsys, dir, opts)
	if ok, _ := fsys.Exists(marker); ok {
		t.Fatalf("%s still there after Open", marker)
	}
	p = existing(t, s, "t", 0)
	checkValues(t, readAll(t, p, 0), 0)
	appendN(t, p, 300, 10)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	// The same directory without the marker: as after a crash.
	if err := fsys.Remove(marker); err != nil {
		t.Fatal(err)
	}
	s, crashed := countLogReads(t, fsys, dir, opts)
	defer s.Close()
	p = existing(t, s, "t", 0)
	checkValues(t, readAll(t, p, 0), 0)
	t.Logf(".log reads at Open: %d after a clean Close, %d after a crash", clean, crashed)
	if clean > 8 || crashed <= 2*clean {
		t.Fatalf(".log reads at Open: %d after a clean Close (want at most 8), %d after a crash (want well over)", clean, crashed)
	}
}

// TestCleanShutdownMarkerGoesAtOpen: Open removes the marker durably
// before anything can append, so a power cut right after a reopen is not
// taken for a clean shutdown; and a Close after a failed fsync leaves no
// marker.
func TestCleanShutdownMarkerGoesAtOpen(t *testing.T) {
	dir := t.TempDir()
	fsys := stream.NewMemFS()
	fsys.MkdirAllDurable(dir)
	opts := &stream.Options{Sync: stream.SyncNever, IndexIntervalBytes: 256}
	s, err := stream.OpenOnFS(fsys, dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	appendN(t, partition(t, s, "t", stream.TopicConfig{}), 0, 50)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	marker := filepath.Join(dir, "topics", ".clean_shutdown")

	s, err = stream.OpenOnFS(fsys, dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	appendN(t, existing(t, s, "t", 0), 50, 50) // not synced
	fsys.CutPower()
	s.Close()
	fsys = fsys.Restart(1)
	if ok, _ := fsys.Exists(marker); ok {
		t.Fatalf("%s survived a power cut after Open", marker)
	}
	s, err = stream.OpenOnFS(fsys, dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	p := existing(t, s, "t", 0)
	if hw := p.HighWatermark(); hw < 50 || hw > 100 {
		t.Fatalf("high watermark %d after the power cut, want in [50, 100]", hw)
	}
	checkValues(t, readAll(t, p, 0), 0)

	// A partition whose fsync failed closes without the marker.
	fsys.SetFault(func(op, path string) error {
		if op == "syncdata" {
			return syscall.EIO
		}
		return nil
	})
	appendN(t, p, int(p.HighWatermark()), 1)
	if err := s.Sync(); err == nil {
		t.Fatal("Sync succeeded with failing fsyncs")
	}
	fsys.SetFault(nil)
	s.Close()
	if ok, _ := fsys.Exists(marker); ok {
		t.Fatalf("%s after closing a failed partition", marker)
	}
}

// TestMaxOpenFilesManyPartitions: 200 partitions share a file cache of 16
// descriptors. Every segment's files, the active ones' and those of
// segments awaiting finalization included, live in the cache, so the
// files open at once stay within MaxOpenFiles plus the pins of the calls
// in flight, through appends, rolls, reads, Close, reopen and (SyncAlways)
// a power cut; before, each partition held three for its active segment
// (and three more per sealed segment awaiting the flusher), 600 here.
func TestMaxOpenFilesManyPartitions(t *testing.T) {
	const maxOpen, partitions, rounds = 16, 200, 6
	// Beyond the cache: a segment pinned by the appender, one by the
	// flusher, and a new segment's files before the cache takes it.
	const bound = maxOpen + 3*3
	for _, policy := range []stream.SyncPolicy{stream.SyncAlways, stream.SyncPeriodic, stream.SyncNever} {
		t.Run(policy.String(), func(t *testing.T) {
			fsys := stream.NewMemFS()
			dir := t.TempDir()
			fsys.MkdirAllDurable(dir)
			opts := &stream.Options{
				Sync: policy, SyncInterval: 50 * time.Millisecond, SegmentBytes: stream.KiB,
				IndexIntervalBytes: 128, MaxOpenFiles: maxOpen,
				// Each active segment maps room for the largest batch:
				// 8 MiB by default, which MemFS allocates.
				MaxRecordBytes: 2 * stream.KiB,
			}
			s, err := stream.OpenOnFS(fsys, dir, opts)
			if err != nil {
				t.Fatal(err)
			}
			tp, err := s.CreateTopic("t", stream.TopicConfig{Partitions: partitions, Retention: -1})
			if err != nil {
				t.Fatal(err)
			}
			val := func(p, i int) []byte {
				v := make([]byte, 300)
				copy(v, fmt.Sprintf("p%03d-r%04d", p, i))
				return v
			}
			appendRounds := func(tp *stream.Topic, from, to int) {
				t.Helper()
				for i := from; i < to; i++ {
					for id := range partitions {
						p, err := tp.Partition(int32(id))
						if err != nil {
							t.Fatal(err)
						}
						if off, err := p.Append(&stream.Record{Value: val(id, i)}); err != nil || off != int64(i) {
							t.Fatalf("partition %d: Append = %d, %v; want offset %d", id, off, err, i)
						}
					}
				}
			}
			readAll := func(tp *stream.Topic, n int) {
				t.Helper()
				for id := range partitions {
					p, err := tp.Partition(int32(id))
					if err != nil {
						t.Fatal(err)
					}
					for i := range n {
						recs, err := p.Read(int64(i), 1)
						if err != nil || len(recs) != 1 || string(recs[0].Value) != string(val(id, i)) {
							t.Fatalf("partition %d: Read(%d) = %d records, %v (high watermark %d)", id, i, len(recs), err, p.HighWatermark())
						}
					}
				}
			}
			checkPeak := func(what string) {
				t.Helper()
				if peak := fsys.PeakOpenFiles(); peak > bound {
					t.Fatalf("%s: %d files open at once, want at most %d", what, peak, bound)
				}
				fsys.ResetPeakOpenFiles()
			}
			appendRounds(tp, 0, rounds)
			if segs := s.Stats().Segments; segs < 2*partitions {
				t.Fatalf("%d segments, want rolls in every partition", segs)
			}
			checkPeak("appending")
			readAll(tp, rounds)
			checkPeak("reading")
			if policy == stream.SyncAlways {
				// Every append was acknowledged durable: a power cut
				// keeps them, though the appends synced through
				// descriptors reopened after the cache closed them.
				fsys.CutPower()
				s.Close() // fails: the disk is gone
				fsys = fsys.Restart(1)
			} else if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			if n := fsys.OpenFiles(); n != 0 {
				t.Fatalf("%d files open after Close", n)
			}
			s, err = stream.OpenOnFS(fsys, dir, opts)
			if err != nil {
				t.Fatal(err)
			}
			tp, err = s.Topic("t")
			if err != nil {
				t.Fatal(err)
			}
			checkPeak("opening")
			readAll(tp, rounds)
			appendRounds(tp, rounds, rounds+2)
			readAll(tp, rounds+2)
			checkPeak("reopened")
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			if n := fsys.OpenFiles(); n != 0 {
				t.Fatalf("%d files open after Close", n)
			}
		})
	}
}
