package stream_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/instream/stream"
)

// TestFlippedByteInActiveSegmentKeepsLaterBatches: one flipped byte in a
// batch in the middle of the active segment, with fsynced, acknowledged
// batches after it, is damage, not a torn tail: Open keeps every batch,
// reports the damage in Stream.Recovery, and reads of the damaged batch
// fail with a *CorruptError while the batches after it read back.
func TestFlippedByteInActiveSegmentKeepsLaterBatches(t *testing.T) {
	dir := t.TempDir()
	// No index entries: recovery scans the active segment from its start.
	opts := &stream.Options{IndexIntervalBytes: 1 << 20}
	s := reopen(t, dir, opts)
	p := partition(t, s, "t", stream.TopicConfig{})
	appendN(t, p, 0, 50)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	logs, _ := filepath.Glob(filepath.Join(p.Dir(), "*.log"))
	if len(logs) != 1 {
		t.Fatalf("%d segments, want 1", len(logs))
	}
	sf, err := stream.OpenSegmentFile(logs[0])
	if err != nil {
		t.Fatal(err)
	}
	var victim stream.SegmentBatch
	for b := range sf.Batches() {
		if b.BaseOffset == 20 {
			victim = b
		}
	}
	sf.Close()
	flipByte(t, logs[0], victim.Position+victim.Size-3) // in the record, under the CRC
	size := fileSize(t, logs[0])

	// After the clean Close, Open trusts the active segment and does
	// not read the damaged batch; it keeps every batch, and a read of
	// the damaged one still reports it.
	s = reopen(t, dir, opts)
	p = existing(t, s, "t", 0)
	if hw, evs := p.HighWatermark(), s.Recovery(); hw != 50 || len(evs) != 0 {
		t.Fatalf("after a clean Close: high watermark %d, Recovery() = %v; want 50 and nothing", hw, evs)
	}
	if _, err := p.Read(20, 1); !errors.Is(err, stream.ErrCorrupt) {
		t.Fatalf("Read of the damaged batch after a clean Close: %v, want ErrCorrupt", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// As after a crash: Open validates the active segment.
	if err := os.Remove(filepath.Join(dir, "topics", ".clean_shutdown")); err != nil {
		t.Fatal(err)
	}

	s = reopen(t, dir, opts)
	p = existing(t, s, "t", 0)
	if hw := p.HighWatermark(); hw != 50 {
		t.Fatalf("high watermark %d after reopen, want 50: acknowledged batches after the damage were dropped", hw)
	}
	evs := s.Recovery()
	if len(evs) != 1 || evs[0].Truncated || evs[0].Offset != 20 || evs[0].Position != victim.Position || evs[0].File != logs[0] {
		t.Fatalf("Recovery() = %v, want one damage event (not truncated) at %s:%d, offset 20", evs, logs[0], victim.Position)
	}
	_, err = p.Read(20, 1)
	var ce *stream.CorruptError
	if !errors.As(err, &ce) || ce.Position != victim.Position {
		t.Fatalf("Read of the damaged batch: %v, want a CorruptError at byte %d", err, victim.Position)
	}
	// A read past the damage skips the damaged batch on its header (the
	// chain of base offsets still holds) and returns the intact record
	// asked for; the damaged batch's own records are never returned.
	if recs, err := p.Read(21, 1); err != nil || len(recs) != 1 || recs[0].Offset != 21 || !bytes.Equal(recs[0].Value, value(21)) {
		t.Fatalf("Read past the damage in its index interval = %v, %v; want record 21 intact", recs, err)
	}
	if off, err := p.Append(&stream.Record{Value: value(50)}); err != nil || off != 50 {
		t.Fatalf("Append after recovery = %d, %v; want 50", off, err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if got := fileSize(t, logs[0]); got < size {
		t.Fatalf("the segment shrank from %d to %d bytes", size, got)
	}
}

// TestRecoveryReportsTornTail: under SyncNever, a power cut loses what was
// appended after the last Sync; Open cuts the log at the first batch that
// did not survive, after the recovery point, removes the later segments,
// and says so in Stream.Recovery. Everything synced survives.
// (TestPowerCut checks the same at random points.)
func TestRecoveryReportsTornTail(t *testing.T) {
	dir := t.TempDir()
	fsys := stream.NewMemFS()
	fsys.MkdirAllDurable(dir)
	opts := &stream.Options{Sync: stream.SyncNever, SegmentBytes: 2 * stream.KiB, IndexIntervalBytes: 256}
	s, err := stream.OpenOnFS(fsys, dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	p := partition(t, s, "t", stream.TopicConfig{})
	appendN(t, p, 0, 30)
	if err := s.Sync(); err != nil {
		t.Fatal(err)
	}
	appendN(t, p, 30, 200) // several rolls, never synced
	fsys.CutPower()
	s.Close()

	fsys = fsys.Restart(0)
	s, err = stream.OpenOnFS(fsys, dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	p = existing(t, s, "t", 0)
	hw := p.HighWatermark()
	if hw < 30 || hw >= 230 {
		t.Fatalf("high watermark %d after the power cut, want in [30, 230)", hw)
	}
	checkValues(t, readAll(t, p, 0), 0)
	// The flusher finalizes rolled segments in the background: the cut
	// is in the first segment it had not reached. (When it had reached
	// the last, nothing of the active segment was on disk: no cut.)
	evs := s.Recovery()
	if len(evs) > 1 || len(evs) == 1 && (!evs[0].Truncated || evs[0].Offset != hw) {
		t.Fatalf("Recovery() = %v, want at most one truncation, at offset %d", evs, hw)
	}
	t.Logf("high watermark %d, %v", hw, evs)
}

// TestRetentionRacingDeleteAndCreateTopic: retention deleting a topic's
// oldest segment while the topic is deleted and created again under the
// same name must not delete the new topic's files (whose first segment
// has the same name): a closed partition never touches the file system.
func TestRetentionRacingDeleteAndCreateTopic(t *testing.T) {
	dir := t.TempDir()
	fsys := stream.NewMemFS()
	fsys.MkdirAllDurable(dir)
	s, err := stream.OpenOnFS(fsys, dir, &stream.Options{
		SegmentBytes: 1 * stream.KiB, RetentionCheckInterval: time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	cfg := stream.TopicConfig{Retention: -1, RetentionBytes: 2 * stream.KiB}
	p := partition(t, s, "r", cfg)
	firstLog := filepath.Join(p.Dir(), "00000000000000000000.log")
	removing := make(chan struct{})
	release := make(chan struct{})
	firstTimeIndex := strings.TrimSuffix(firstLog, ".log") + ".timeindex"
	removedLog := make(chan struct{})
	var once, onceAfter sync.Once
	fsys.Hook(func(op, path string) {
		if op == "remove" && path == firstLog {
			once.Do(func() {
				close(removing)
				<-release // hold retention between its decision and the removal
			})
		}
		if op == "remove" && path == firstTimeIndex {
			onceAfter.Do(func() { close(removedLog) }) // the .log removal is done
		}
	})
	// About 5 segments: retention starts deleting. Under SyncAlways the
	// appenders finalize rolled segments, which waits for retention: append
	// in the background, until the deletion closes the partition.
	appended := make(chan struct{})
	go func() {
		defer close(appended)
		for i := 0; ; i++ {
			if _, err := p.Append(&stream.Record{Value: value(i)}); err != nil {
				return
			}
		}
	}()
	<-removing
	recreated := make(chan error, 1)
	go func() {
		if err := s.DeleteTopic("r"); err != nil {
			recreated <- err
			return
		}
		_, err := s.CreateTopic("r", cfg)
		recreated <- err
	}()
	// Let the deletion and re-creation run (with the fix they wait for
	// retention to finish with the old partition), then let retention go.
	select {
	case err := <-recreated:
		close(release)
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(200 * time.Millisecond):
		t.Log("deletion waits for retention")
		close(release)
		if err := <-recreated; err != nil {
			t.Fatal(err)
		}
	}
	select {
	case <-removedLog:
	case <-time.After(10 * time.Second):
		t.Fatal("retention did not go on")
	}
	<-appended
	fsys.Hook(nil)
	p = existing(t, s, "r", 0)
	if fsys.ReadFileForTest(firstLog) == nil {
		t.Fatalf("retention of the deleted topic removed the new topic's %s", firstLog)
	}
	appendN(t, p, 0, 3)
	checkValues(t, readAll(t, p, 0), 0)
}

// TestReopenAfterFailedFsync: after an fsync fails, the partition refuses
// writes until reopened, and the reopen (in the same process, the page
// cache intact) does not serve the batch whose fsync failed: the kernel
// may have dropped its pages (fsyncgate), so Close cut it. The records
// acknowledged before are all there, and appends go on after them.
func TestReopenAfterFailedFsync(t *testing.T) {
	dir := t.TempDir()
	fsys := stream.NewMemFS()
	fsys.MkdirAllDurable(dir)
	s, err := stream.OpenOnFS(fsys, dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	p := partition(t, s, "f", stream.TopicConfig{})
	appendN(t, p, 0, 10)
	fsys.SetFault(func(op, path string) error {
		if op == "syncdata" && strings.HasSuffix(path, ".log") {
			return stream.ErrInjected
		}
		return nil
	})
	if _, err := p.Append(&stream.Record{Value: value(10)}); err == nil {
		t.Fatal("append whose fsync failed succeeded")
	}
	fsys.SetFault(nil)
	if _, err := p.Append(&stream.Record{Value: value(10)}); err == nil {
		t.Fatal("append after a failed fsync succeeded: the failure must stick until reopen")
	}
	if hw := p.HighWatermark(); hw != 10 {
		t.Fatalf("high watermark %d after the failed fsync, want 10", hw)
	}
	s.Close()

	s, err = stream.OpenOnFS(fsys, dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	p = existing(t, s, "f", 0)
	if hw := p.HighWatermark(); hw != 10 {
		t.Fatalf("high watermark %d after reopen, want 10: the batch whose fsync failed came back from the page cache", hw)
	}
	checkValues(t, readAll(t, p, 0), 0)
	appendN(t, p, 10, 5)
	checkValues(t, readAll(t, p, 0), 0)
}

// TestPreallocationWithinSegmentBytes: the active segment's file never
// grows past SegmentBytes ahead of its data, so RetentionBytes bounds
// the disk a partition takes (a topic with 4 KiB segments held 64 KiB
// files).
func TestPreallocationWithinSegmentBytes(t *testing.T) {
	s, _ := open(t, &stream.Options{SegmentBytes: 4 * stream.KiB})
	p := partition(t, s, "small", stream.TopicConfig{})
	for i := range 200 {
		appendN(t, p, i, 1)
		logs, _ := filepath.Glob(filepath.Join(p.Dir(), "*.log"))
		for _, l := range logs {
			if n := fileSize(t, l); n > int64(4*stream.KiB) {
				t.Fatalf("after %d appends %s holds %d bytes, over SegmentBytes (4 KiB)", i+1, filepath.Base(l), n)
			}
		}
	}
	// A batch larger than SegmentBytes gets a segment of its own, sized
	// to it.
	big := make([]byte, 10*stream.KiB)
	if _, err := p.Append(&stream.Record{Value: big}); err != nil {
		t.Fatal(err)
	}
	logs, _ := filepath.Glob(filepath.Join(p.Dir(), "*.log"))
	if n := fileSize(t, logs[len(logs)-1]); n > int64(11*stream.KiB) {
		t.Fatalf("the segment of a 10 KiB batch holds %d bytes", n)
	}
}

// TestTornBatchBeforeValidOnesIsCut: a power cut during an fsync can
// persist a later page of the active segment before an earlier one,
// leaving a batch with a page of zeros followed by valid (never
// acknowledged) batches. That is a torn tail, not damage: Open cuts the
// log at the torn batch and reports the cut.
func TestTornBatchBeforeValidOnesIsCut(t *testing.T) {
	dir := t.TempDir()
	opts := &stream.Options{IndexIntervalBytes: 1 << 20}
	s := reopen(t, dir, opts)
	p := partition(t, s, "t", stream.TopicConfig{})
	for i := range 20 {
		v := make([]byte, 1500)
		for j := range v {
			v[j] = byte(i + j%250 + 1)
		}
		if _, err := p.Append(&stream.Record{Value: v}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	logs, _ := filepath.Glob(filepath.Join(p.Dir(), "*.log"))
	sf, err := stream.OpenSegmentFile(logs[0])
	if err != nil {
		t.Fatal(err)
	}
	var victim stream.SegmentBatch
	for b := range sf.Batches() {
		boundary := (b.Position/4096 + 1) * 4096
		if b.BaseOffset >= 8 && b.Position+b.Size > boundary && victim.Size == 0 {
			victim = b
		}
	}
	sf.Close()
	// The page after the boundary did not reach the disk: zeros, up to
	// the end of the batch.
	boundary := (victim.Position/4096 + 1) * 4096
	f, err := os.OpenFile(logs[0], os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(make([]byte, victim.Position+victim.Size-boundary), boundary); err != nil {
		t.Fatal(err)
	}
	f.Close()
	// A torn page is what a crash leaves, not a clean Close: without the
	// clean-shutdown marker Open validates the active segment.
	if err := os.Remove(filepath.Join(dir, "topics", ".clean_shutdown")); err != nil {
		t.Fatal(err)
	}

	s = reopen(t, dir, opts)
	p = existing(t, s, "t", 0)
	if hw := p.HighWatermark(); hw != victim.BaseOffset {
		t.Fatalf("high watermark %d after reopen, want %d: the torn batch was kept", hw, victim.BaseOffset)
	}
	evs := s.Recovery()
	if len(evs) != 1 || !evs[0].Truncated || evs[0].Offset != victim.BaseOffset {
		t.Fatalf("Recovery() = %v, want one cut at offset %d", evs, victim.BaseOffset)
	}
}
