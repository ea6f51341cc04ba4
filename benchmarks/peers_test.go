package benchmarks_test

// The comparison with peers, in the style of zap's benchmarks: one
// Benchmark per workload, one sub-benchmark per engine doing the same
// work on the same machine, so that
//
//	go test -run '^$' -bench . -benchmem
//
// prints them side by side (run.sh repeats them and makes the table of
// README.md). Every workload writes or reads records with a 100-byte
// value and no key; one benchmark op is one record, so ns/op, ns/record,
// B/op and allocs/op are all per record and MB/s counts values.
//
// Writes append to a fresh log or database in a temporary directory;
// reads go over 100,000 records written beforehand (from the page
// cache), starting over at the first record when a benchmark wants more.
// The engines, and what each guarantees in each mode, are described in
// README.md.

import (
	"os"
	"runtime"
	"sync"
	"testing"
)

const (
	valueSize   = 100     // bytes of each record's value
	batchSize   = 100     // records per batch in the batched writes
	readRecords = 100_000 // records the read benchmarks go over
	writers     = 64      // goroutines in the concurrent writes
)

var value = func() []byte {
	v := make([]byte, valueSize)
	for i := range v {
		v[i] = byte('a' + i%26)
	}
	return v
}()

// start begins the timed part of a benchmark of records of valueSize.
// It returns the allocation counters for done.
func start(b *testing.B) runtime.MemStats {
	b.SetBytes(valueSize)
	b.ReportAllocs()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	b.ResetTimer()
	return m
}

// done ends it, reporting per record: ns/record (the same as ns/op,
// but explicit), and B/record and allocs/record, the allocations of the
// whole process (as B/op and allocs/op, which round down to an integer:
// an allocation per batch of 100 shows as 0 allocs/op, 0.01 allocs/record).
func done(b *testing.B, before runtime.MemStats) {
	b.StopTimer()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	n := float64(b.N)
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/n, "ns/record")
	b.ReportMetric(float64(m.TotalAlloc-before.TotalAlloc)/n, "B/record")
	b.ReportMetric(float64(m.Mallocs-before.Mallocs)/n, "allocs/record")
}

func syncName(fsync bool) string {
	if fsync {
		return "sync"
	}
	return "nosync"
}

// BenchmarkWriteBatch appends batches of 100 records: stream's
// Partition.AppendBatch, tidwall/wal's WriteBatch, one bbolt transaction
// of 100 Puts, franz-go's ProduceSync of 100 records to kfake. With sync,
// each batch is fsynced before the call returns.
func BenchmarkWriteBatch(b *testing.B) {
	for _, fsync := range []bool{false, true} {
		b.Run(syncName(fsync), func(b *testing.B) {
			b.Run("stream", func(b *testing.B) { streamWriteBatch(b, fsync) })
			b.Run("tidwall-wal", func(b *testing.B) { walWriteBatch(b, fsync) })
			b.Run("bbolt", func(b *testing.B) { boltWriteBatch(b, fsync) })
			if !fsync { // kfake keeps records in memory
				b.Run("kgo-kfake", func(b *testing.B) { kgoProduceBatch(b) })
			}
		})
	}
}

// BenchmarkWriteSingle appends one record per call, waiting for it:
// stream's Partition.Append, tidwall/wal's Write, one bbolt transaction
// per Put, JetStream's Publish (waits for the PubAck), franz-go's
// ProduceSync of one record to kfake. With sync, each record is fsynced
// before the call returns.
func BenchmarkWriteSingle(b *testing.B) {
	for _, fsync := range []bool{false, true} {
		b.Run(syncName(fsync), func(b *testing.B) {
			b.Run("stream", func(b *testing.B) { streamWriteSingle(b, fsync) })
			b.Run("tidwall-wal", func(b *testing.B) { walWriteSingle(b, fsync) })
			b.Run("bbolt", func(b *testing.B) { boltWriteSingle(b, fsync) })
			b.Run("nats-jetstream", func(b *testing.B) { natsPublish(b, fsync) })
			if !fsync {
				b.Run("kgo-kfake", func(b *testing.B) { kgoProduceSingle(b) })
			}
		})
	}
}

// BenchmarkProduceAsync sends records one at a time without waiting,
// letting the client batch them, and waits for every acknowledgement at
// the end: stream's Producer.SendAsync (then Flush), JetStream's
// PublishAsync (then PublishAsyncComplete), franz-go's Produce (then
// Flush) to kfake.
func BenchmarkProduceAsync(b *testing.B) {
	for _, fsync := range []bool{false, true} {
		b.Run(syncName(fsync), func(b *testing.B) {
			b.Run("stream", func(b *testing.B) { streamProduceAsync(b, fsync) })
			b.Run("nats-jetstream", func(b *testing.B) { natsPublishAsync(b, fsync) })
			if !fsync {
				b.Run("kgo-kfake", func(b *testing.B) { kgoProduceAsync(b) })
			}
		})
	}
}

// BenchmarkWriteConcurrentSync appends single records from 64 goroutines,
// each waiting for its record to be fsynced: stream's group commit
// (concurrent Appends share an fsync), bbolt's DB.Batch (concurrent
// updates share a transaction), JetStream's Publish from 64 goroutines
// to a server with sync_interval: always, and tidwall/wal's Write under
// a mutex (its indexes must be written in order; it has no group commit).
func BenchmarkWriteConcurrentSync(b *testing.B) {
	b.Run("stream", streamWriteConcurrent)
	b.Run("tidwall-wal", walWriteConcurrent)
	b.Run("bbolt", boltWriteConcurrent)
	b.Run("nats-jetstream", natsPublishConcurrent)
}

// BenchmarkRead reads records back in order: stream's Partition.Scan and
// a Consumer's Poll, tidwall/wal's Read by index, a bbolt cursor,
// a JetStream ordered (pull) consumer, and a franz-go consumer of kfake.
func BenchmarkRead(b *testing.B) {
	b.Run("stream", streamScan)
	b.Run("stream-poll", streamPoll)
	b.Run("tidwall-wal", walRead)
	b.Run("bbolt", boltRead)
	b.Run("nats-jetstream", natsConsume)
	b.Run("kgo-kfake", kgoConsume)
}

// fixtures holds what the read benchmarks share within one run of the
// test binary: filled once, closed by TestMain.
var fixtures struct {
	sync.Mutex
	m       map[string]any
	closers []func()
}

// fixture returns the named fixture, making it the first time; make
// returns it and the function that releases it.
func fixture[T any](b *testing.B, name string, make func() (T, func(), error)) T {
	b.Helper()
	fixtures.Lock()
	defer fixtures.Unlock()
	if v, ok := fixtures.m[name]; ok {
		return v.(T)
	}
	v, closer, err := make()
	if err != nil {
		b.Fatalf("fixture %s: %v", name, err)
	}
	if fixtures.m == nil {
		fixtures.m = map[string]any{}
	}
	fixtures.m[name] = v
	fixtures.closers = append(fixtures.closers, closer)
	return v
}

// tempDir is a temporary directory that outlives one benchmark function,
// for fixtures; TestMain removes it.
func tempDir() (string, func(), error) {
	dir, err := os.MkdirTemp("", "stream-bench-")
	if err != nil {
		return "", nil, err
	}
	return dir, func() { os.RemoveAll(dir) }, nil
}

func TestMain(m *testing.M) {
	code := m.Run()
	fixtures.Lock()
	for i := len(fixtures.closers) - 1; i >= 0; i-- {
		fixtures.closers[i]()
	}
	fixtures.Unlock()
	os.Exit(code)
}

// inParallel splits b.N records among writers goroutines, in shares
// that differ by at most one, each running work(n) for its share, and
// waits for them.
func inParallel(b *testing.B, work func(n int) error) {
	var wg sync.WaitGroup
	var once sync.Once
	for w := range writers {
		n := b.N / writers
		if w < b.N%writers {
			n++
		}
		if n == 0 {
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := work(n); err != nil {
				once.Do(func() { b.Error(err) })
			}
		}()
	}
	wg.Wait()
}

func check(b *testing.B, err error) {
	b.Helper()
	if err != nil {
		b.Fatal(err)
	}
}
