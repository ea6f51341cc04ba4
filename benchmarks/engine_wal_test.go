package benchmarks_test

// github.com/tidwall/wal: an append-only log of entries numbered from 1,
// in segment files. Options are its defaults (binary format, 20 MB
// segments, Read copies the entry) except NoSync.

import (
	"sync"
	"testing"

	"github.com/tidwall/wal"
)

func openWAL(dir string, fsync bool) (*wal.Log, error) {
	return wal.Open(dir, &wal.Options{NoSync: !fsync})
}

func benchWAL(b *testing.B, fsync bool) *wal.Log {
	l, err := openWAL(b.TempDir(), fsync)
	check(b, err)
	b.Cleanup(func() { l.Close() })
	return l
}

// walWriteBatches writes n entries from index first on, batchSize a
// WriteBatch.
func walWriteBatches(l *wal.Log, first uint64, n int) error {
	var batch wal.Batch
	idx := first
	for done := 0; done < n; {
		batch.Clear()
		k := min(batchSize, n-done)
		for range k {
			batch.Write(idx, value)
			idx++
		}
		if err := l.WriteBatch(&batch); err != nil {
			return err
		}
		done += k
	}
	return nil
}

func walWriteBatch(b *testing.B, fsync bool) {
	l := benchWAL(b, fsync)
	m := start(b)
	check(b, walWriteBatches(l, 1, b.N))
	done(b, m)
}

func walWriteSingle(b *testing.B, fsync bool) {
	l := benchWAL(b, fsync)
	m := start(b)
	for i := range b.N {
		if err := l.Write(uint64(i)+1, value); err != nil {
			b.Fatal(err)
		}
	}
	done(b, m)
}

// walWriteConcurrent writes from many goroutines. Entries must be written
// in index order, so each takes the next index and writes under one
// mutex: every Write is its own fsync.
func walWriteConcurrent(b *testing.B) {
	l := benchWAL(b, true)
	var mu sync.Mutex
	next := uint64(1)
	m := start(b)
	inParallel(b, func(n int) error {
		for range n {
			mu.Lock()
			err := l.Write(next, value)
			next++
			mu.Unlock()
			if err != nil {
				return err
			}
		}
		return nil
	})
	done(b, m)
}

func walRead(b *testing.B) {
	l := fixture(b, "tidwall-wal", func() (*wal.Log, func(), error) {
		dir, rm, err := tempDir()
		if err != nil {
			return nil, nil, err
		}
		l, err := openWAL(dir, false)
		if err != nil {
			rm()
			return nil, nil, err
		}
		closer := func() { l.Close(); rm() }
		if err := walWriteBatches(l, 1, readRecords); err != nil {
			closer()
			return nil, nil, err
		}
		if err := l.Sync(); err != nil {
			closer()
			return nil, nil, err
		}
		return l, closer, nil
	})
	m := start(b)
	for i := range b.N {
		v, err := l.Read(uint64(i%readRecords) + 1)
		if err != nil {
			b.Fatal(err)
		}
		if len(v) != valueSize {
			b.Fatalf("entry %d: %d bytes", i%readRecords+1, len(v))
		}
	}
	done(b, m)
}
