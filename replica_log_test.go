package stream

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"testing"
)

// The Partition hooks replication uses: the leader-epoch cache,
// truncation (durable, crash-safe), appends of a leader's raw batches.

func TestLeaderEpochCacheEndOffsetFor(t *testing.T) {
	c := &leaderEpochCache{entries: []epochEntry{{0, 0}, {2, 100}, {5, 250}}}
	const leo = 300
	for _, tc := range []struct {
		epoch     int32
		wantEpoch int32
		wantEnd   int64
	}{
		{0, 0, 100},
		{1, 0, 100}, // unknown: the largest epoch below, ending where 2 starts
		{2, 2, 250},
		{4, 2, 250},
		{5, 5, leo}, // the newest ends at the log end
		{9, 5, leo},
		{-1, -1, -1}, // below every epoch: undefined
	} {
		e, end := c.endOffsetFor(tc.epoch, leo)
		if e != tc.wantEpoch || end != tc.wantEnd {
			t.Errorf("endOffsetFor(%d) = %d, %d; want %d, %d", tc.epoch, e, end, tc.wantEpoch, tc.wantEnd)
		}
	}
}

func TestLeaderEpochCacheFile(t *testing.T) {
	fs := NewMemFS()
	fs.MkdirAllDurable("/p")
	c, err := loadLeaderEpochCache(fs, "/p", 0)
	if err != nil || len(c.entries) != 0 {
		t.Fatalf("empty cache: %v, %v", c.entries, err)
	}
	for _, e := range []epochEntry{{0, 0}, {3, 40}, {3, 50}, {1, 60}, {4, 70}, {6, 70}} {
		if err := c.assign(e.epoch, e.start); err != nil {
			t.Fatal(err)
		}
	}
	// An older or equal epoch never starts again; a new epoch at the
	// same start replaces one that wrote nothing.
	want := []epochEntry{{0, 0}, {3, 40}, {6, 70}}
	if !slices.Equal(c.entries, want) {
		t.Fatalf("entries %v, want %v", c.entries, want)
	}
	// Durable: the power goes, the file stays.
	fs.CutPower()
	fs = fs.Restart(0)
	c, err = loadLeaderEpochCache(fs, "/p", 100)
	if err != nil || !slices.Equal(c.entries, want) {
		t.Fatalf("after a power cut: %v, %v; want %v", c.entries, err, want)
	}
	// Entries at or past the log end go on load (a crash between an
	// entry and its first batch, or between a log truncation and the
	// cache's), and the file follows.
	c, err = loadLeaderEpochCache(fs, "/p", 70)
	if err != nil || !slices.Equal(c.entries, want[:2]) {
		t.Fatalf("loaded with log end 70: %v, %v; want %v", c.entries, err, want[:2])
	}
	c, _ = loadLeaderEpochCache(fs, "/p", 100)
	if !slices.Equal(c.entries, want[:2]) {
		t.Fatalf("reloaded: %v, want %v", c.entries, want[:2])
	}
	// Damage is reported, not guessed around.
	for _, bad := range []string{"garbage", "0\n2\n0 0\n", "0\n2\n3 10\n1 20\n", "0\n1\n-1 0\n"} {
		fs.WriteFileForTest("/p/"+leaderEpochFile, []byte(bad))
		if _, err := loadLeaderEpochCache(fs, "/p", 100); !errors.Is(err, ErrCorrupt) {
			t.Errorf("load of %q: %v, want ErrCorrupt", bad, err)
		}
	}
}

func openTestPartition(t testing.TB, fs *MemFS) *Partition {
	t.Helper()
	p, err := openPartition(fs, "/data/t-0", rtTopic, 0, replTestConfig, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// fillLog appends n one-record batches of about 200 bytes (several 4 KiB
// segments for n of 100) and returns their values.
func fillLog(t testing.TB, p *Partition, n int) []string {
	t.Helper()
	var vals []string
	for i := range n {
		v := fmt.Sprintf("record %03d %0190d", i, i)
		if _, err := p.Append(&Record{Value: []byte(v)}); err != nil {
			t.Fatal(err)
		}
		vals = append(vals, v)
	}
	return vals
}

func checkLog(t testing.TB, p *Partition, vals []string) {
	t.Helper()
	if leo, _ := p.logEnds(); leo != int64(len(vals)) {
		t.Fatalf("log end %d, want %d", leo, len(vals))
	}
	for i, v := range vals {
		got, err := p.Read(int64(i), 1)
		if err != nil || len(got) != 1 || string(got[0].Value) != v {
			t.Fatalf("offset %d: %v, %v; want %q", i, got, err, v)
		}
	}
}

func TestTruncateToAcrossSegments(t *testing.T) {
	for _, cut := range []int64{0, 1, 37, 99, 100, 150} {
		t.Run(fmt.Sprint(cut), func(t *testing.T) {
			fs := NewMemFS()
			fs.MkdirAllDurable("/data")
			p := openTestPartition(t, fs)
			vals := fillLog(t, p, 100)
			if n := p.stats().segments; n < 4 {
				t.Fatalf("%d segments, want several", n)
			}
			p.mu.Lock()
			c, err := p.epochCacheLocked()
			p.mu.Unlock()
			if err != nil {
				t.Fatal(err)
			}
			if err := p.assignEpoch(1); err != nil { // epoch 1 from 100 on
				t.Fatal(err)
			}
			if err := p.truncateTo(cut); err != nil {
				t.Fatal(err)
			}
			keep := vals[:min(cut, 100)]
			checkLog(t, p, keep)
			if hw := p.HighWatermark(); hw != int64(len(keep)) {
				t.Fatalf("high watermark %d, want %d", hw, len(keep))
			}
			if cut < 100 && c.latest() >= 1 {
				t.Fatalf("epoch cache %v after truncating to %d, want epoch 1 gone", c.entries, cut)
			}
			// Appends continue at the cut, across new segments.
			fillLog(t, p, 30)
			// Durable: the power goes now, everything comes back.
			fs.CutPower()
			for seed := range uint64(4) {
				q := openTestPartition(t, fs.Restart(seed))
				want := slices.Concat(vals[:min(cut, 100)], fillValues(30))
				checkLog(t, q, want)
				if err := q.close(); err != nil {
					t.Fatal(err)
				}
			}
			p.close()
		})
	}
}

func fillValues(n int) []string {
	var vals []string
	for i := range n {
		vals = append(vals, fmt.Sprintf("record %03d %0190d", i, i))
	}
	return vals
}

// TestTruncateToPowerCut cuts the power at every file-system operation
// of a truncation: whatever survives is a prefix of the old log no
// shorter than the cut, that opens and appends.
func TestTruncateToPowerCut(t *testing.T) {
	for k := 1; ; k++ {
		fs := NewMemFS()
		fs.MkdirAllDurable("/data")
		p := openTestPartition(t, fs)
		vals := fillLog(t, p, 100)
		fs.CutPowerAfter(k)
		err := p.truncateTo(37)
		fs.CutPower()
		p.close()
		q := openTestPartition(t, fs.Restart(uint64(k)))
		leo, _ := q.logEnds()
		if leo < 37 || leo > 100 {
			t.Fatalf("cut at op %d: log end %d after a truncation to 37", k, leo)
		}
		checkLog(t, q, vals[:leo])
		if err == nil && leo != 37 {
			t.Fatalf("truncation returned, then the power cut left log end %d, want 37", leo)
		}
		if _, err := q.Append(&Record{Value: []byte("after")}); err != nil {
			t.Fatalf("cut at op %d: append after recovery: %v", k, err)
		}
		if err := q.close(); err != nil {
			t.Fatal(err)
		}
		if err == nil {
			t.Logf("truncation takes %d file-system operations", k-1)
			return
		}
	}
}

func TestAppendReplicated(t *testing.T) {
	fs := NewMemFS()
	fs.MkdirAllDurable("/data")
	src := openTestPartition(t, fs)
	defer src.close()
	vals := fillLog(t, src, 20)
	raw := logBytes(t, src, 20)
	// A leader's log: epoch 0, then epoch 3 from offset 10 (the field
	// is outside the CRC: the batches stay valid).
	for pos := 0; pos < len(raw); {
		h, _ := parseBatchHeader(raw[pos:])
		if h.BaseOffset >= 10 {
			binary.BigEndian.PutUint32(raw[pos+offLeaderEpoch:], 3)
		}
		pos += int(h.Size())
	}

	fs2 := NewMemFS()
	fs2.MkdirAllDurable("/data")
	dst := openTestPartition(t, fs2)
	defer dst.close()

	// A flipped byte: refused, nothing appended.
	bad := slices.Clone(raw)
	bad[len(bad)-3] ^= 1
	if _, err := dst.appendReplicated(bad); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("batches with a bad CRC: %v, want ErrCorrupt", err)
	}
	// Not at the log end: refused.
	first, _ := parseBatchHeader(raw)
	if _, err := dst.appendReplicated(raw[first.Size():]); !errors.Is(err, errDiverged) {
		t.Fatalf("batches starting at offset 1 on an empty log: %v, want errDiverged", err)
	}
	if leo, _ := dst.logEnds(); leo != 0 {
		t.Fatalf("log end %d after refused appends", leo)
	}
	end, err := dst.appendReplicated(raw)
	if err != nil || end != 20 {
		t.Fatalf("appendReplicated: %d, %v", end, err)
	}
	dst.raiseHW(20)
	checkLog(t, dst, vals)
	if got := logBytes(t, dst, 20); !slices.Equal(got, raw) {
		t.Fatal("replica's bytes differ from the leader's")
	}
	// The follower's epoch cache learned the epochs from the batches.
	dst.mu.Lock()
	entries := slices.Clone(dst.epochs.entries)
	dst.mu.Unlock()
	if want := []epochEntry{{0, 0}, {3, 10}}; !slices.Equal(entries, want) {
		t.Fatalf("follower's epoch cache %v, want %v", entries, want)
	}
}

// TestTruncateFullyPowerCut cuts the power at every file-system
// operation of restarting a log at offset 500 (a follower below its
// leader's log start): whatever survives opens and appends, and is
// either a suffix of the old log (a prefix of it gone, as retention
// would) or the empty log at 500; once the call returned, the latter.
func TestTruncateFullyPowerCut(t *testing.T) {
	for k := 1; ; k++ {
		fs := NewMemFS()
		fs.MkdirAllDurable("/data")
		p := openTestPartition(t, fs)
		vals := fillLog(t, p, 100)
		fs.CutPowerAfter(k)
		err := p.truncateFullyAndStartAt(500)
		if err == nil {
			if start, hw := p.StartOffset(), p.HighWatermark(); start != 500 || hw != 500 {
				t.Fatalf("after the restart: log start %d, high watermark %d, want 500", start, hw)
			}
		}
		fs.CutPower()
		p.close()
		q := openTestPartition(t, fs.Restart(uint64(k)))
		leo, _ := q.logEnds()
		start := q.StartOffset()
		switch {
		case start == 500 && leo == 500:
		case err == nil:
			t.Fatalf("cut at op %d: the restart returned, then the power cut left [%d, %d), want [500, 500)", k, start, leo)
		case leo != 100 || start > 100:
			t.Fatalf("cut at op %d: log [%d, %d), want a suffix of [0, 100) or [500, 500)", k, start, leo)
		default:
			for off := start; off < leo; off++ {
				got, rerr := q.Read(off, 1)
				if rerr != nil || len(got) != 1 || string(got[0].Value) != vals[off] {
					t.Fatalf("cut at op %d: offset %d: %v, %v", k, off, got, rerr)
				}
			}
		}
		off, aerr := q.Append(&Record{Value: []byte("after")})
		if aerr != nil || off != leo {
			t.Fatalf("cut at op %d: append after recovery: offset %d, %v; want %d", k, off, aerr, leo)
		}
		if err := q.close(); err != nil {
			t.Fatal(err)
		}
		if err == nil {
			t.Logf("a restart takes %d file-system operations", k-1)
			return
		}
	}
}
