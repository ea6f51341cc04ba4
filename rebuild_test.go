package stream

import (
	"encoding/binary"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestIndexRebuildOutsidePartitionLock: a read that meets a damaged index
// entry of a sealed segment rebuilds the segment's index files from its
// log. The scan of the log and the writes of the index files run without
// the partition's lock, so appends, and reads of other segments, go on
// meanwhile: at every file operation of the rebuild, the partition's lock
// is free, and an Append and a Read of another segment made from inside
// the operation succeed. Both read paths that rebuild are covered: Read
// (a damaged .index entry) and OffsetForTime (a damaged .timeindex entry).
func TestIndexRebuildOutsidePartitionLock(t *testing.T) {
	for _, tc := range []struct {
		name, ext string
		entry     int
		damage    func(b []byte) // of the middle entry of the file
		read      func(p *Partition, base int64, entries []byte) error
	}{
		{"Read", ".index", indexEntrySize,
			func(b []byte) { binary.BigEndian.PutUint32(b[4:], binary.BigEndian.Uint32(b[4:])+1) },
			func(p *Partition, base int64, orig []byte) error {
				mid := len(orig) / indexEntrySize / 2 * indexEntrySize
				off := base + int64(binary.BigEndian.Uint32(orig[mid:]))
				recs, err := p.Read(off, 1)
				if err == nil && (len(recs) == 0 || recs[0].Offset != off) {
					t.Errorf("Read(%d) = %d records, first %v", off, len(recs), recs)
				}
				return err
			}},
		{"OffsetForTime", ".timeindex", timeEntrySize,
			func(b []byte) { binary.BigEndian.PutUint32(b[8:], binary.BigEndian.Uint32(b[8:])+1) },
			func(p *Partition, base int64, orig []byte) error {
				mid := len(orig) / timeEntrySize / 2 * timeEntrySize
				ts := int64(binary.BigEndian.Uint64(orig[mid:])) + 1
				off, err := p.OffsetForTime(time.UnixMilli(ts))
				// Record i has timestamp i; the damaged entry is the
				// last below ts.
				if err == nil && off != ts {
					t.Errorf("OffsetForTime(%d) = %d, want %d", ts, off, ts)
				}
				return err
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fsys := NewMemFS()
			dir := t.TempDir()
			// SyncAlways and no retention run: no background job
			// takes the partition's lock (the test checks it is free).
			opts := &Options{Sync: SyncAlways, SegmentBytes: 8 * KiB, IndexIntervalBytes: 256, RetentionCheckInterval: 24 * time.Hour}
			s, err := OpenOnFS(fsys, dir, opts)
			if err != nil {
				t.Fatal(err)
			}
			tp, err := s.CreateTopic("t", TopicConfig{Partitions: 1, Retention: -1})
			if err != nil {
				t.Fatal(err)
			}
			p, _ := tp.Partition(0)
			val := make([]byte, 100)
			for i := range 1000 {
				if _, err := p.Append(&Record{Value: val, Timestamp: time.UnixMilli(int64(i))}); err != nil {
					t.Fatal(err)
				}
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			// The segment holding offset 1000 on: damage its middle
			// entry, which Open does not check.
			var logs []string
			for _, f := range fsys.ListForTest(p.Dir()) {
				if strings.HasSuffix(f, ".log") {
					logs = append(logs, strings.TrimSuffix(f, ".log"))
				}
			}
			if len(logs) < 3 {
				t.Fatalf("want 3 segments at least: %v", logs)
			}
			victim := logs[1]
			base, err := strconv.ParseInt(filepath.Base(victim), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			orig := fsys.ReadFileForTest(victim + tc.ext)
			if len(orig) < 3*tc.entry {
				t.Fatalf("%s%s: %d bytes, want 3 entries at least", victim, tc.ext, len(orig))
			}
			damaged := slices.Clone(orig)
			mid := len(orig) / tc.entry / 2 * tc.entry
			tc.damage(damaged[mid:])
			fsys.WriteFileForTest(victim+tc.ext, damaged)

			s, err = OpenOnFS(fsys, dir, opts)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			tp, _ = s.Topic("t")
			p, _ = tp.Partition(0)
			var mu sync.Mutex
			var ops, rewrites, appended int
			var inside bool
			fsys.Hook(func(op, path string) {
				// The rebuild's operations: it reads the log and
				// rewrites the indexes. (A lookup reads a small index
				// under the partition's read lock, as it would fault
				// its pages in from a mapping.)
				if !strings.HasPrefix(path, victim) || op == "read" && !strings.HasSuffix(path, ".log") {
					return
				}
				mu.Lock()
				if inside {
					mu.Unlock()
					return // the operations of the calls below
				}
				inside = true
				mu.Unlock()
				defer func() { mu.Lock(); inside = false; mu.Unlock() }()
				ops++
				if op == "truncate" {
					rewrites++
				}
				if !p.mu.TryLock() {
					t.Errorf("%s %s with the partition's lock held", op, filepath.Base(path))
					return
				}
				p.mu.Unlock()
				if _, err := p.Append(&Record{Value: []byte("during"), Timestamp: time.UnixMilli(5000)}); err != nil {
					t.Errorf("Append during %s %s: %v", op, filepath.Base(path), err)
				}
				if recs, err := p.Read(0, 1); err != nil || len(recs) != 1 || recs[0].Offset != 0 {
					t.Errorf("Read(0) during %s %s: %v, %v", op, filepath.Base(path), recs, err)
				}
				appended++
			})
			err = tc.read(p, base, orig)
			fsys.Hook(nil)
			if err != nil {
				t.Fatal(err)
			}
			if rewrites == 0 {
				t.Fatalf("no rebuild of %s%s (%d operations on its files)", victim, tc.ext, ops)
			}
			if got := fsys.ReadFileForTest(victim + tc.ext); !slices.Equal(got, orig) {
				t.Errorf("rebuilt %s%s differs from the original", victim, tc.ext)
			}
			if hw := p.HighWatermark(); hw != 1000+int64(appended) {
				t.Errorf("high watermark %d after %d appends during the rebuild, want %d", hw, appended, 1000+appended)
			}
		})
	}
}
