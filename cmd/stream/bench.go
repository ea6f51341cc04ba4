package main

import (
	"context"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dustin/go-humanize"
	"github.com/instream/stream"
)

var benchCommand = &command{
	name:    "bench",
	summary: "measure produce and consume throughput, and produce latency",
	help: `Bench creates a topic "bench", produces -records records through
-producers Producers (each sending its share with SendAsync from one
goroutine), then consumes them all through a consumer group of
-consumers members. It prints the throughput of each (records/s and
MB/s of keys and values; keys are 8 bytes), the produce→acknowledgement
latency percentiles (from SendAsync to the delivery callback, under -sync
and -acks all) and the size on disk.

It runs in a new temporary directory, removed at the end unless -keep;
-dir runs it in a directory of your choice (which must not hold a topic
"bench"), kept.`,
}

func init() { benchCommand.run = runBench }

// benchConfig holds bench's flags.
type benchConfig struct {
	dir        string
	keep       bool
	records    int
	size       stream.ByteSize
	partitions int
	producers  int
	consumers  int
	sync       syncFlag
	batch      stream.ByteSize
	linger     time.Duration
	json       bool
}

const benchTopic = "bench"

// benchReport is what bench measured.
type benchReport struct {
	Dir        string         `json:"dir"`
	Kept       bool           `json:"kept"`
	Records    int            `json:"records"`
	ValueBytes int            `json:"value_bytes"`
	Partitions int            `json:"partitions"`
	Producers  int            `json:"producers"`
	Consumers  int            `json:"consumers"`
	Sync       string         `json:"sync"`
	BatchBytes int64          `json:"batch_bytes"`
	LingerMs   float64        `json:"linger_ms"`
	Produce    benchRate      `json:"produce"`
	Consume    benchRate      `json:"consume"`
	Latency    latencySummary `json:"produce_latency"`
	Duplicates int64          `json:"duplicates"` // records the group delivered more than once
	LogBytes   int64          `json:"log_bytes"`  // record batches, Stats.Bytes
	Segments   int            `json:"segments"`
	DirBytes   int64          `json:"dir_bytes"` // every file, after Close
}

// benchRate is the throughput of one phase.
type benchRate struct {
	Records       int64   `json:"records"`
	Seconds       float64 `json:"seconds"`
	RecordsPerSec float64 `json:"records_per_second"`
	MBPerSec      float64 `json:"mb_per_second"` // 10^6 bytes of keys and values
}

func rate(records, recordBytes int64, d time.Duration) benchRate {
	r := benchRate{Records: records, Seconds: d.Seconds()}
	if d > 0 {
		r.RecordsPerSec = float64(records) / d.Seconds()
		r.MBPerSec = float64(records*recordBytes) / 1e6 / d.Seconds()
	}
	return r
}

func runBench(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
	var cfg benchConfig
	fs := benchCommand.newFlagSet(stderr, nil)
	fs.StringVar(&cfg.dir, "dir", "", "run in this `directory` and keep it (default: a new temporary directory)")
	fs.BoolVar(&cfg.keep, "keep", false, "keep the temporary directory")
	fs.IntVar(&cfg.records, "records", 200_000, "records to produce and consume")
	fs.TextVar(&cfg.size, "size", stream.ByteSize(100), "value size of each record in `BYTES`")
	fs.IntVar(&cfg.partitions, "partitions", 4, "partitions of the topic")
	fs.IntVar(&cfg.producers, "producers", 1, "Producers sending concurrently")
	fs.IntVar(&cfg.consumers, "consumers", 3, "members of the consumer group")
	cfg.sync = syncFlag(stream.SyncAlways)
	fs.Var(&cfg.sync, "sync", "sync `policy`: always, periodic or never")
	fs.TextVar(&cfg.batch, "batch", stream.DefaultBatchBytes, "producer batch size in `BYTES` (batch.size)")
	fs.DurationVar(&cfg.linger, "linger", stream.DefaultLinger, "producer linger (linger.ms); 0: no linger")
	fs.BoolVar(&cfg.json, "json", false, "print the figures as JSON")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError(fs, "unexpected arguments %q", fs.Args())
	}
	switch {
	case cfg.records < 1:
		return usageError(fs, "-records %d: must be 1 or more", cfg.records)
	case cfg.size < 0 || cfg.size > 4*stream.MiB:
		return usageError(fs, "-size %v: must be between 0 and 4 MiB", cfg.size)
	case cfg.partitions < 1:
		return usageError(fs, "-partitions %d: must be 1 or more", cfg.partitions)
	case cfg.producers < 1 || cfg.producers > 1024:
		return usageError(fs, "-producers %d: must be between 1 and 1024", cfg.producers)
	case cfg.consumers < 1 || cfg.consumers > 1024:
		return usageError(fs, "-consumers %d: must be between 1 and 1024", cfg.consumers)
	case cfg.batch < 1:
		return usageError(fs, "-batch %v: must be 1 byte or more", cfg.batch)
	case cfg.linger < 0:
		return usageError(fs, "-linger %v: must be 0 or more", cfg.linger)
	}
	explicitKeep := false
	fs.Visit(func(f *flag.Flag) { explicitKeep = explicitKeep || f.Name == "keep" })
	temp := cfg.dir == ""
	if temp {
		base, err := os.MkdirTemp("", "stream-bench-")
		if err != nil {
			return err
		}
		cfg.dir = base
		if !cfg.keep {
			defer os.RemoveAll(base)
		}
	} else if explicitKeep && !cfg.keep {
		return usageError(fs, "-keep=false with -dir: bench never removes a directory it did not make")
	}
	rep, err := bench(ctx, cfg, newProgress(stderr, cfg.json))
	if err != nil {
		return err
	}
	rep.Kept = !temp || cfg.keep
	if cfg.json {
		return writeJSON(stdout, rep)
	}
	return rep.print(stdout)
}

func bench(ctx context.Context, cfg benchConfig, prog *progress) (*benchReport, error) {
	opts := stream.Options{Sync: stream.SyncPolicy(cfg.sync)}
	s, err := stream.Open(cfg.dir, &opts)
	if err != nil {
		return nil, err
	}
	defer s.Close()
	if _, err := s.Topic(benchTopic); err == nil {
		return nil, fmt.Errorf("%s already holds a topic %s: delete it (\"stream delete -dir %s %s\") or use another -dir",
			cfg.dir, benchTopic, cfg.dir, benchTopic)
	}
	if _, err := s.CreateTopic(benchTopic, stream.TopicConfig{Partitions: cfg.partitions, Retention: -1}); err != nil {
		return nil, err
	}
	if err := s.DeleteGroup(benchTopic); err != nil && !errors.Is(err, stream.ErrUnknownGroup) {
		return nil, err
	}
	rep := &benchReport{Dir: cfg.dir, Records: cfg.records, ValueBytes: int(cfg.size), Partitions: cfg.partitions,
		Producers: cfg.producers, Consumers: cfg.consumers, Sync: cfg.sync.String(), BatchBytes: int64(cfg.batch),
		LingerMs: float64(cfg.linger.Microseconds()) / 1e3}
	recBytes := int64(demoKeySize) + int64(cfg.size)
	values := newValueSource(int(cfg.size))

	linger := cfg.linger
	if linger == 0 {
		linger = stream.NoLinger
	}
	prog.begin("produce", int64(cfg.records))
	lat, elapsed, err := produceRecords(ctx, s, cfg.records, cfg.producers, prog,
		stream.ProducerConfig{BatchBytes: cfg.batch, Linger: linger}, benchTopic,
		func(r *stream.Record, id uint64) {
			r.Key = binary.BigEndian.AppendUint64(nil, id)
			r.Value = values.value(0, id)
		}, nil)
	prog.end()
	if err != nil {
		return nil, err
	}
	rep.Produce = rate(int64(cfg.records), recBytes, elapsed)
	rep.Latency = summarize(lat)

	prog.begin("consume", int64(cfg.records))
	seen := make([]atomic.Bool, cfg.records)
	consumed, dups, elapsed, err := consumeGroup(ctx, s, benchTopic, cfg.consumers, int64(cfg.records), prog,
		func(r *stream.Record) (bool, error) {
			if len(r.Key) != demoKeySize {
				return false, fmt.Errorf("%s-%d offset %d: key of %d bytes", r.Topic, r.Partition, r.Offset, len(r.Key))
			}
			id := binary.BigEndian.Uint64(r.Key)
			if id >= uint64(len(seen)) {
				return false, fmt.Errorf("%s-%d offset %d: record id %d never produced", r.Topic, r.Partition, r.Offset, id)
			}
			return !seen[id].Swap(true), nil
		})
	prog.end()
	if err != nil {
		return nil, err
	}
	rep.Consume = rate(consumed, recBytes, elapsed)
	rep.Duplicates = dups
	st := s.Stats()
	rep.LogBytes, rep.Segments = int64(st.Bytes), st.Segments
	if err := s.Close(); err != nil {
		return nil, err
	}
	if rep.DirBytes, err = dirSize(cfg.dir); err != nil {
		return nil, err
	}
	return rep, nil
}

// produceRecords sends n records to topic (ids 0 to n-1, key and value
// filled in by fill) through producers Producers, each sending its share
// from one goroutine with SendAsync, and waits for every
// acknowledgement; acked, when not nil, is called with each acknowledged
// record, from the producers' goroutines. It returns each record's
// produce→ack latency and the time it all took.
func produceRecords(ctx context.Context, s *stream.Stream, n, producers int, prog *progress, pc stream.ProducerConfig,
	topic string, fill, acked func(r *stream.Record, id uint64)) ([]time.Duration, time.Duration, error) {
	lat := make([]time.Duration, n)
	var failed atomic.Pointer[error]
	ps := make([]*stream.Producer, producers)
	for i := range ps {
		p, err := s.NewProducer(pc)
		if err != nil {
			return nil, 0, err
		}
		defer p.Close()
		ps[i] = p
	}
	start := time.Now()
	var wg sync.WaitGroup
	for i, p := range ps {
		wg.Go(func() {
			for id := i; id < n; id += producers {
				if ctx.Err() != nil || failed.Load() != nil {
					return
				}
				r := &stream.Record{Topic: topic}
				fill(r, uint64(id))
				t0 := time.Now()
				p.SendAsync(r, func(r *stream.Record, err error) {
					if err != nil {
						failed.CompareAndSwap(nil, &err)
						return
					}
					lat[id] = time.Since(t0)
					if acked != nil {
						acked(r, uint64(id))
					}
					prog.add(1)
				})
			}
		})
	}
	wg.Wait()
	for _, p := range ps {
		if err := p.Flush(ctx); err != nil {
			return nil, 0, err
		}
	}
	elapsed := time.Since(start)
	if err := failed.Load(); err != nil {
		return nil, 0, *err
	}
	if err := ctx.Err(); err != nil {
		return nil, 0, err
	}
	return lat, elapsed, nil
}

// consumeGroup joins members members to the group named after topic
// (StartAt earliest) and consumes with Poll until want distinct records
// have arrived. check is called for every record and reports whether it
// is new; a record that is not counts as a duplicate. It returns the
// records consumed (duplicates included), the duplicates and the time it
// took; members commit and close before it returns.
func consumeGroup(ctx context.Context, s *stream.Stream, topic string, members int, want int64, prog *progress,
	check func(*stream.Record) (bool, error)) (consumed, dups int64, elapsed time.Duration, err error) {
	g, err := s.ConsumerGroup(topic, stream.GroupConfig{Topics: []string{topic}, StartAt: stream.StartEarliest})
	if err != nil {
		return 0, 0, 0, err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var distinct, total, dup atomic.Int64
	errs := make([]error, members)
	start := time.Now()
	// Join every member before any polls: a first member that consumed
	// everything would cancel ctx under a later Join.
	consumers := make([]*stream.Consumer, members)
	for m := range consumers {
		c, err := g.Join(ctx, stream.ConsumerConfig{})
		if err != nil {
			for _, c := range consumers[:m] {
				c.Close()
			}
			return 0, 0, 0, err
		}
		consumers[m] = c
	}
	var wg sync.WaitGroup
	for m, c := range consumers {
		wg.Go(func() {
			defer func() {
				if err := c.Close(); err != nil && errs[m] == nil {
					errs[m] = err
				}
			}()
			for distinct.Load() < want {
				recs, err := c.Poll(ctx)
				if err != nil {
					if ctx.Err() == nil {
						errs[m] = err
						cancel()
					}
					return
				}
				for _, r := range recs {
					fresh, err := check(r)
					if err != nil {
						errs[m] = err
						cancel()
						return
					}
					total.Add(1)
					if !fresh {
						dup.Add(1)
						continue
					}
					prog.add(1)
					if distinct.Add(1) == want {
						cancel() // wake the members waiting in Poll
					}
				}
			}
		})
	}
	wg.Wait()
	elapsed = time.Since(start)
	if err := errors.Join(errs...); err != nil {
		return 0, 0, 0, err
	}
	if distinct.Load() < want {
		if err := context.Cause(ctx); err != nil && !errors.Is(err, context.Canceled) {
			return 0, 0, 0, err
		}
		return 0, 0, 0, fmt.Errorf("consumed %d distinct records of %d: %w", distinct.Load(), want, ctx.Err())
	}
	return total.Load(), dup.Load(), elapsed, nil
}

func (r *benchReport) print(w io.Writer) error {
	where := r.Dir + " (removed)"
	if r.Kept {
		where = r.Dir
	}
	fmt.Fprintf(w, "stream bench: %s records of %s values (8-byte keys), %s, %s, sync=%s, batch %s, linger %s\n\n",
		humanize.Comma(int64(r.Records)), humanize.IBytes(uint64(r.ValueBytes)), plural(r.Partitions, "partition"),
		plural(r.Producers, "producer"), r.Sync, humanize.IBytes(uint64(r.BatchBytes)),
		time.Duration(r.LingerMs*1e6))
	t := newTable("phase", "records>", "time>", "records/s>", "MB/s>", "")
	for _, p := range []struct {
		name string
		rate benchRate
		note string
	}{
		{"produce", r.Produce, fmt.Sprintf("%s, SendAsync, acks=all", plural(r.Producers, "Producer"))},
		{"consume", r.Consume, fmt.Sprintf("consumer group of %s, Poll", plural(r.Consumers, "member"))},
	} {
		t.add(p.name, humanize.Comma(p.rate.Records), fmtDuration(time.Duration(p.rate.Seconds*1e9)),
			humanize.Comma(int64(p.rate.RecordsPerSec)), fmt.Sprintf("%.1f", p.rate.MBPerSec), p.note)
	}
	if err := t.write(w, ""); err != nil {
		return err
	}
	fmt.Fprintf(w, "\nproduce latency: %s\n", r.Latency)
	fmt.Fprintf(w, "duplicates:      %s\n", humanize.Comma(r.Duplicates))
	_, err := fmt.Fprintf(w, "on disk:         %s of record batches in %s; %s in %s\n",
		humanize.IBytes(uint64(r.LogBytes)), plural(r.Segments, "segment"), humanize.IBytes(uint64(r.DirBytes)), where)
	return err
}
