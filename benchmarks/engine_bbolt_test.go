package benchmarks_test

// go.etcd.io/bbolt used as a log: records under 8-byte big-endian
// sequence numbers in one bucket, filled to 100% (FillPercent 1, as
// bbolt advises for sequential inserts). Options are the defaults except
// NoSync; a commit without NoSync fdatasyncs the data pages, then the
// meta page.

import (
	"encoding/binary"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"

	"go.etcd.io/bbolt"
)

var boltBucket = []byte("bench")

func openBolt(dir string, fsync bool) (*bbolt.DB, error) {
	db, err := bbolt.Open(filepath.Join(dir, "bench.db"), 0o600, &bbolt.Options{NoSync: !fsync})
	if err != nil {
		return nil, err
	}
	err = db.Update(func(tx *bbolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists(boltBucket)
		return err
	})
	if err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}

func benchBolt(b *testing.B, fsync bool) *bbolt.DB {
	db, err := openBolt(b.TempDir(), fsync)
	check(b, err)
	b.Cleanup(func() { db.Close() })
	return db
}

// boltPut puts the records numbered first..first+n-1 in one transaction.
// bbolt keeps the key slices until the transaction ends, so each key has
// its own 8 bytes of keys.
func boltPut(tx *bbolt.Tx, keys []byte, first uint64, n int) error {
	bk := tx.Bucket(boltBucket)
	bk.FillPercent = 1
	for i := range n {
		k := keys[i*8 : i*8+8]
		binary.BigEndian.PutUint64(k, first+uint64(i))
		if err := bk.Put(k, value); err != nil {
			return err
		}
	}
	return nil
}

func boltWriteBatches(db *bbolt.DB, n int) error {
	keys := make([]byte, 8*batchSize)
	for done := 0; done < n; {
		k := min(batchSize, n-done)
		err := db.Update(func(tx *bbolt.Tx) error { return boltPut(tx, keys, uint64(done), k) })
		if err != nil {
			return err
		}
		done += k
	}
	return nil
}

func boltWriteBatch(b *testing.B, fsync bool) {
	db := benchBolt(b, fsync)
	m := start(b)
	check(b, boltWriteBatches(db, b.N))
	done(b, m)
}

func boltWriteSingle(b *testing.B, fsync bool) {
	db := benchBolt(b, fsync)
	keys := make([]byte, 8)
	m := start(b)
	for i := range b.N {
		if err := db.Update(func(tx *bbolt.Tx) error { return boltPut(tx, keys, uint64(i), 1) }); err != nil {
			b.Fatal(err)
		}
	}
	done(b, m)
}

// boltWriteConcurrent puts single records with DB.Batch from many
// goroutines: bbolt gathers concurrent calls into one transaction, one
// commit for all. A batch commits when it holds MaxBatchSize calls or
// MaxBatchDelay (10ms) after it opened; MaxBatchSize is set to the number
// of writers (the default, 1000, is never reached by 64 writers, so
// every batch would wait out the delay).
func boltWriteConcurrent(b *testing.B) {
	db := benchBolt(b, true)
	db.MaxBatchSize = writers
	var next atomic.Uint64
	m := start(b)
	inParallel(b, func(n int) error {
		for range n {
			seq := next.Add(1)
			err := db.Batch(func(tx *bbolt.Tx) error {
				// A fresh key: a Batch function may run more than once.
				return boltPut(tx, make([]byte, 8), seq, 1)
			})
			if err != nil {
				return err
			}
		}
		return nil
	})
	done(b, m)
}

func boltRead(b *testing.B) {
	db := fixture(b, "bbolt", func() (*bbolt.DB, func(), error) {
		dir, rm, err := tempDir()
		if err != nil {
			return nil, nil, err
		}
		db, err := openBolt(dir, false)
		if err != nil {
			rm()
			return nil, nil, err
		}
		closer := func() { db.Close(); rm() }
		if err := boltWriteBatches(db, readRecords); err != nil {
			closer()
			return nil, nil, err
		}
		if err := db.Sync(); err != nil {
			closer()
			return nil, nil, err
		}
		return db, closer, nil
	})
	m := start(b)
	err := db.View(func(tx *bbolt.Tx) error {
		c := tx.Bucket(boltBucket).Cursor()
		k, v := c.First()
		for range b.N {
			if k == nil {
				k, v = c.First()
			}
			if len(v) != valueSize {
				return fmt.Errorf("key %x: %d bytes", k, len(v))
			}
			k, v = c.Next()
		}
		return nil
	})
	check(b, err)
	done(b, m)
}
