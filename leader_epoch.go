package stream

import (
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// The leader-epoch cache of a replicated partition (Kafka's
// LeaderEpochFileCache, KIP-101): for each leader epoch that wrote to the
// log, the offset of its first batch. It answers OffsetsForLeaderEpoch
// ("where does epoch E end in your log?"), which a replica asks the
// leader before it fetches, so that it truncates a suffix the leader
// never had instead of keeping a divergent one.
//
// It lives in the partition directory as leader-epoch-checkpoint, in
// Kafka's text layout:
//
//	0            version
//	2            number of entries
//	0 0          epoch, start offset
//	3 1200
//
// Every change is written to a temporary file, fsynced, renamed into
// place and the directory fsynced, so a crash leaves the old file or the
// new one. The log and the cache are not changed atomically together;
// the order makes every crash state safe: an entry is written before any
// batch of its epoch reaches the log, and the log is truncated before the
// cache. On load, entries at or past the log end are dropped (a crash
// between writing an entry and its first batch, or between truncating
// the log and the cache), as Kafka's truncateFromEnd(logEndOffset).
const leaderEpochFile = "leader-epoch-checkpoint"

// epochEntry is one leader epoch and the offset of its first batch.
type epochEntry struct {
	epoch int32
	start int64
}

// leaderEpochCache is a partition's epoch cache. Guarded by the
// partition's mu; its file is written while that is held (epoch changes
// are rare: one per leader change).
type leaderEpochCache struct {
	fs      fileSystem
	path    string
	entries []epochEntry // epochs and starts both strictly increasing
}

// loadLeaderEpochCache reads the cache of the partition in dir, keeping
// only entries below leo. A missing file is an empty cache.
func loadLeaderEpochCache(fsys fileSystem, dir string, leo int64) (*leaderEpochCache, error) {
	c := &leaderEpochCache{fs: fsys, path: filepath.Join(dir, leaderEpochFile)}
	ok, err := fsys.Exists(c.path)
	if err != nil || !ok {
		return c, err
	}
	b, err := readFile(fsys, c.path)
	if err != nil {
		return nil, err
	}
	entries, err := parseLeaderEpochs(b)
	if err != nil {
		return nil, corruptError(c.path, 0, err)
	}
	c.entries = entries
	if c.truncateFromEnd(leo) {
		return c, c.write()
	}
	return c, nil
}

func parseLeaderEpochs(b []byte) ([]epochEntry, error) {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) < 2 || strings.TrimSpace(lines[0]) != "0" {
		return nil, fmt.Errorf("not a version 0 leader-epoch checkpoint")
	}
	n, err := strconv.Atoi(strings.TrimSpace(lines[1]))
	if err != nil || n < 0 || n != len(lines)-2 {
		return nil, fmt.Errorf("entry count %q does not match %d lines", lines[1], len(lines)-2)
	}
	entries := make([]epochEntry, 0, n)
	for _, l := range lines[2:] {
		f := strings.Fields(l)
		if len(f) != 2 {
			return nil, fmt.Errorf("bad entry %q", l)
		}
		e, err1 := strconv.ParseInt(f[0], 10, 32)
		s, err2 := strconv.ParseInt(f[1], 10, 64)
		if err1 != nil || err2 != nil || e < 0 || s < 0 {
			return nil, fmt.Errorf("bad entry %q", l)
		}
		if k := len(entries); k > 0 && (int32(e) <= entries[k-1].epoch || s < entries[k-1].start) {
			return nil, fmt.Errorf("entry %q out of order", l)
		}
		entries = append(entries, epochEntry{epoch: int32(e), start: s})
	}
	return entries, nil
}

// write replaces the file with the entries, crash-safely.
func (c *leaderEpochCache) write() error {
	var sb strings.Builder
	fmt.Fprintf(&sb, "0\n%d\n", len(c.entries))
	for _, e := range c.entries {
		fmt.Fprintf(&sb, "%d %d\n", e.epoch, e.start)
	}
	tmp := c.path + ".tmp"
	if err := writeFileSync(c.fs, tmp, []byte(sb.String())); err != nil {
		return err
	}
	if err := c.fs.Rename(tmp, c.path); err != nil {
		return err
	}
	return c.fs.SyncDir(filepath.Dir(c.path))
}

// latest returns the newest epoch, or -1 when the cache is empty.
func (c *leaderEpochCache) latest() int32 {
	if len(c.entries) == 0 {
		return -1
	}
	return c.entries[len(c.entries)-1].epoch
}

// assign records that epoch starts at start, durably, unless an epoch at
// least as new is known already (then it is a no-op: batches of an older
// epoch never start one). A start below the newest entry's start drops
// the entries it covers, as Kafka's assign does.
func (c *leaderEpochCache) assign(epoch int32, start int64) error {
	if epoch <= c.latest() {
		return nil
	}
	i := len(c.entries)
	for i > 0 && c.entries[i-1].start >= start {
		i--
	}
	c.entries = append(c.entries[:i], epochEntry{epoch: epoch, start: start})
	return c.write()
}

// truncateFromEnd drops the entries starting at or after end; it reports
// whether any went (the caller writes the file).
func (c *leaderEpochCache) truncateFromEnd(end int64) bool {
	i := len(c.entries)
	for i > 0 && c.entries[i-1].start >= end {
		i--
	}
	if i == len(c.entries) {
		return false
	}
	c.entries = c.entries[:i]
	return true
}

// endOffsetFor answers OffsetsForLeaderEpoch for epoch on a log ending at
// leo: the largest epoch known at most epoch, and the offset where it
// ends (the start of the next epoch, or leo for the newest). With no such
// epoch it returns (-1, -1): the asker truncates to where it knows the
// log matches, its high watermark.
func (c *leaderEpochCache) endOffsetFor(epoch int32, leo int64) (int32, int64) {
	i, found := slices.BinarySearchFunc(c.entries, epoch, func(e epochEntry, t int32) int {
		return int(e.epoch) - int(t)
	})
	if !found {
		i-- // the largest epoch below
	}
	if i < 0 {
		return -1, -1
	}
	if i == len(c.entries)-1 {
		return c.entries[i].epoch, leo
	}
	return c.entries[i].epoch, c.entries[i+1].start
}
