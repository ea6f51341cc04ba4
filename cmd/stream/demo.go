package main

import (
	"cmp"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"path/filepath"
	"sync"
	"time"

	"github.com/dustin/go-humanize"
	"github.com/instream/stream"
)

var demoCommand = &command{
	name:    "demo",
	summary: "write a realistic workload, read it all back verified, print rates and sizes",
	help: `Demo opens the directory, creates (or reuses) the topic "demo" and runs:

  produce  -records records sent through a Producer with SendAsync, keyed
           (murmur2 partitioning), batched per partition (-batch), under
           the -sync policy; each record's produce→ack latency is timed;
  sync     Stream.Sync, making the produce phase durable (skipped under
           -sync always, where every batch already was);
  append   -appends records written one at a time with Partition.Append
           by -writers goroutines under SyncAlways, which share fsyncs
           (group commit);
  open     the directory reopened: every partition recovered;
  scan     every record this run wrote read back with Scan and checked:
           offsets contiguous and equal to what the acknowledgements and
           appends returned, keys and values byte for byte, none twice;
  read     random offsets read back with Read and checked;
  group    every record this run wrote consumed by a consumer group of
           -members members, joining at once, that share the partitions:
           each record checked, none missing, duplicates counted;
  close    Close: sync, trim the active segments, release the directory.

It prints the rate of each phase, the produce latency percentiles and
what is on disk, or the same figures as JSON with -json. While it runs, a
progress bar on a terminal (stderr), or a line per phase elsewhere
(except with -json). Records written by earlier runs are kept and counted
but not verified. The exit status is 1 if anything fails to verify.`,
}

func init() { demoCommand.run = runDemo } // runDemo refers to demoCommand

// demoConfig holds the demo's flags.
type demoConfig struct {
	dir          string
	records      int
	size         stream.ByteSize
	partitions   int
	batch        stream.ByteSize
	sync         syncFlag
	appends      int
	writers      int
	reads        int
	segmentBytes stream.ByteSize
	members      int
	json         bool
}

const (
	demoTopic   = "demo"
	demoKeySize = 8 // every key is a big-endian uint64 record id
)

func runDemo(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
	var cfg demoConfig
	fs := demoCommand.newFlagSet(stderr, &cfg.dir)
	fs.IntVar(&cfg.records, "records", 500_000, "records to send through a Producer")
	fs.TextVar(&cfg.size, "size", stream.ByteSize(100), "value size of each record in `BYTES` (\"100\", \"1KiB\"); keys are 8 bytes")
	fs.IntVar(&cfg.partitions, "partitions", 4, "partitions of the demo topic when it is created")
	fs.TextVar(&cfg.batch, "batch", stream.DefaultBatchBytes, "producer batch size in `BYTES` (batch.size)")
	cfg.sync = syncFlag(stream.SyncNever)
	fs.Var(&cfg.sync, "sync", "sync `policy` of the produce phase: always, periodic or never")
	fs.IntVar(&cfg.appends, "appends", 20_000, "records to write one at a time with Append under SyncAlways (0: skip)")
	fs.IntVar(&cfg.writers, "writers", 64, "concurrent appenders in the append phase")
	fs.IntVar(&cfg.reads, "reads", 10_000, "random-offset Reads to check (0: skip)")
	fs.TextVar(&cfg.segmentBytes, "segment", stream.DefaultSegmentBytes, "roll segments at this many `BYTES`")
	fs.IntVar(&cfg.members, "members", 3, "members of the consumer group of the group phase (0: skip)")
	fs.BoolVar(&cfg.json, "json", false, "print the figures as JSON")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError(fs, "unexpected arguments %q", fs.Args())
	}
	explicit := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { explicit[f.Name] = true })
	if err := cfg.validate(); err != nil {
		return usageError(fs, "%v", err)
	}

	rep, err := demo(ctx, cfg, explicit["partitions"], newProgress(stderr, cfg.json))
	if err != nil {
		return err
	}
	if cfg.json {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	rep.print(stdout)
	return nil
}

func (c *demoConfig) validate() error {
	switch {
	case c.records < 0:
		return fmt.Errorf("-records %d: must be 0 or more", c.records)
	case c.size < 0 || c.size > 4*stream.MiB:
		return fmt.Errorf("-size %v: must be between 0 and 4 MiB", c.size)
	case c.partitions < 1:
		return fmt.Errorf("-partitions %d: must be 1 or more", c.partitions)
	case c.batch < 1:
		return fmt.Errorf("-batch %v: must be 1 byte or more", c.batch)
	case c.members < 0 || c.members > 1024:
		return fmt.Errorf("-members %d: must be between 0 and 1024", c.members)
	case c.appends < 0:
		return fmt.Errorf("-appends %d: must be 0 or more", c.appends)
	case c.writers < 1 || c.writers > 1<<16:
		return fmt.Errorf("-writers %d: must be between 1 and 65536", c.writers)
	case c.reads < 0:
		return fmt.Errorf("-reads %d: must be 0 or more", c.reads)
	}
	return nil
}

// syncFlag is a stream.SyncPolicy as a flag: always, periodic or never.
type syncFlag stream.SyncPolicy

func (f syncFlag) String() string { return stream.SyncPolicy(f).String() }

func (f *syncFlag) Set(s string) error {
	for _, p := range []stream.SyncPolicy{stream.SyncAlways, stream.SyncPeriodic, stream.SyncNever} {
		if s == p.String() {
			*f = syncFlag(p)
			return nil
		}
	}
	return fmt.Errorf("want always, periodic or never")
}

// demoReport is what the demo did; printed as a table or as JSON.
type demoReport struct {
	Dir          string         `json:"dir"`
	Topic        string         `json:"topic"`
	Created      bool           `json:"created"` // false: an existing topic was reused
	Partitions   int            `json:"partitions"`
	KeyBytes     int            `json:"key_bytes"`
	ValueBytes   int            `json:"value_bytes"`
	BatchBytes   int64          `json:"batch_bytes"`
	Sync         string         `json:"sync"` // policy of the produce phase
	Writers      int            `json:"append_writers"`
	Phases       []*demoPhase   `json:"phases"`
	Latency      latencySummary `json:"produce_latency"`  // SendAsync to acknowledgement
	Verified     int64          `json:"verified_records"` // by the scan phase
	Group        *demoGroup     `json:"group,omitempty"`  // the group phase
	Disk         demoDiskUsage  `json:"disk"`
	totalElapsed time.Duration
}

// demoGroup is what the consumer group consumed.
type demoGroup struct {
	Members    int   `json:"members"`
	Consumed   int64 `json:"consumed"`   // records, duplicates included
	Verified   int64 `json:"verified"`   // distinct records, each checked
	Duplicates int64 `json:"duplicates"` // records delivered more than once
}

// demoPhase is one timed step.
type demoPhase struct {
	Name            string  `json:"name"`
	Records         int64   `json:"records"`
	Bytes           int64   `json:"bytes"` // of keys and values
	Seconds         float64 `json:"seconds"`
	RecordsPerSec   float64 `json:"records_per_second,omitempty"`
	BytesPerSec     float64 `json:"bytes_per_second,omitempty"`
	NanosPerRecord  float64 `json:"ns_per_record,omitempty"`
	Note            string  `json:"note"`
	elapsed         time.Duration
	recordsRelevant bool
}

// demoDiskUsage is what the directory holds at the end.
type demoDiskUsage struct {
	LogBytes     int64 `json:"log_bytes"`     // record batches, Stats.Bytes
	Segments     int   `json:"segments"`      // Stats.Segments
	DirBytes     int64 `json:"dir_bytes"`     // every file, indexes and meta.db included
	RecordsKept  int64 `json:"records_kept"`  // in the topic, earlier runs included
	RecordsAdded int64 `json:"records_added"` // by this run
}

func (r *demoReport) phase(name string, records int64, recordBytes int64, elapsed time.Duration, note string) {
	p := &demoPhase{Name: name, Records: records, Bytes: records * recordBytes, Seconds: elapsed.Seconds(),
		Note: note, elapsed: elapsed, recordsRelevant: records > 0}
	if records > 0 && elapsed > 0 {
		p.RecordsPerSec = float64(records) / elapsed.Seconds()
		p.BytesPerSec = float64(p.Bytes) / elapsed.Seconds()
		p.NanosPerRecord = float64(elapsed.Nanoseconds()) / float64(records)
	}
	r.Phases = append(r.Phases, p)
	r.totalElapsed += elapsed
}

// demoRun is the state of one demo run shared by its phases.
type demoRun struct {
	cfg    demoConfig
	opts   stream.Options
	values valueSource

	// per partition: the offsets this run writes are [start, end)
	start, end []int64
	// produced[i] is where the acknowledgement of produced record i put
	// it; set by the delivery callbacks, read once the producer closed
	produced []demoPlace
	// appended[w][i] is the offset Append returned for writer w's record i
	appended [][]int64
}

// demoPlace is a record's partition and offset.
type demoPlace struct {
	partition int32
	offset    int64
}

// Record ids, stored as 8-byte big-endian keys. A produced record's id
// is its sequence number in the produce phase; an append-phase id has the
// top bit set, the writer in bits 32-62 and the writer's sequence number
// in bits 0-31.
const appendID = 1 << 63

func writerSeqID(w, i int) uint64 { return appendID | uint64(w)<<32 | uint64(i) }

func demo(ctx context.Context, cfg demoConfig, partitionsExplicit bool, prog *progress) (*demoReport, error) {
	d := &demoRun{cfg: cfg, values: newValueSource(int(cfg.size))}
	d.opts = stream.Options{Sync: stream.SyncPolicy(cfg.sync), SegmentBytes: cfg.segmentBytes}
	rep := &demoReport{Dir: cfg.dir, Topic: demoTopic, KeyBytes: demoKeySize, ValueBytes: int(cfg.size),
		BatchBytes: int64(cfg.batch), Sync: cfg.sync.String(), Writers: cfg.writers}
	recBytes := int64(demoKeySize) + int64(cfg.size)

	// Produce phase, under the chosen sync policy.
	t0 := time.Now()
	s, err := stream.Open(cfg.dir, &d.opts)
	if err != nil {
		return nil, err
	}
	defer func() {
		if s != nil {
			s.Close()
		}
	}()
	topic, created, err := openDemoTopic(s, cfg.partitions, partitionsExplicit)
	if err != nil {
		return nil, err
	}
	rep.phase("open", 0, 0, time.Since(t0), openNote(created, topic.NumPartitions()))
	rep.Created, rep.Partitions = created, topic.NumPartitions()
	d.start = make([]int64, topic.NumPartitions())
	d.end = make([]int64, topic.NumPartitions())
	for i := range d.start {
		p, _ := topic.Partition(int32(i))
		d.start[i] = p.HighWatermark()
		d.end[i] = d.start[i]
	}

	if cfg.records > 0 {
		t0 = time.Now()
		prog.begin("produce", int64(cfg.records))
		lat, err := d.produce(ctx, s, prog)
		prog.end()
		if err != nil {
			return nil, err
		}
		rep.phase("produce", int64(cfg.records), recBytes, time.Since(t0),
			fmt.Sprintf("Producer.SendAsync, keyed, batches of %s, sync=%v, acks=all", humanize.IBytes(uint64(cfg.batch)), cfg.sync))
		rep.Latency = summarize(lat)
		d.markEnds(topic)
	}
	if stream.SyncPolicy(cfg.sync) != stream.SyncAlways {
		t0 = time.Now()
		if err := s.Sync(); err != nil {
			return nil, err
		}
		rep.phase("sync", 0, 0, time.Since(t0), "Stream.Sync: the produce phase made durable")
	}

	// Append phase, under SyncAlways: group commit.
	if cfg.appends > 0 {
		if stream.SyncPolicy(cfg.sync) != stream.SyncAlways {
			err := s.Close()
			s = nil
			if err != nil {
				return nil, err
			}
			always := d.opts
			always.Sync = stream.SyncAlways
			if s, err = stream.Open(cfg.dir, &always); err != nil {
				return nil, err
			}
			if topic, err = s.Topic(demoTopic); err != nil {
				return nil, err
			}
		}
		t0 = time.Now()
		prog.begin("append", int64(cfg.appends))
		err := d.appendRecords(ctx, topic, prog)
		prog.end()
		if err != nil {
			return nil, err
		}
		rep.phase("append", int64(cfg.appends), recBytes, time.Since(t0),
			fmt.Sprintf("Partition.Append of one record, %s concurrent writers, sync=always (group commit)", humanize.Comma(int64(cfg.writers))))
	}
	err = s.Close()
	s = nil
	if err != nil {
		return nil, err
	}

	// Reopen: recovery, then read everything back.
	t0 = time.Now()
	if s, err = stream.Open(cfg.dir, &d.opts); err != nil {
		return nil, err
	}
	if topic, err = s.Topic(demoTopic); err != nil {
		return nil, err
	}
	rep.phase("open", 0, 0, time.Since(t0), fmt.Sprintf("reopen: %d partitions recovered", topic.NumPartitions()))
	var written int64
	for i := range d.end {
		p, _ := topic.Partition(int32(i))
		if hw := p.HighWatermark(); hw != d.end[i] {
			return nil, fmt.Errorf("partition %s-%d: high watermark %d after reopen, want %d (the end of what was acknowledged)",
				demoTopic, i, hw, d.end[i])
		}
		written += d.end[i] - d.start[i]
	}

	t0 = time.Now()
	prog.begin("scan", written)
	verified, err := d.scan(ctx, topic, prog)
	prog.end()
	if err != nil {
		return nil, err
	}
	rep.Verified = verified
	rep.phase("scan", verified, recBytes, time.Since(t0), "Scan of every record written, offsets and content verified")

	if cfg.reads > 0 && verified > 0 {
		t0 = time.Now()
		n, err := d.randomReads(topic)
		if err != nil {
			return nil, err
		}
		rep.phase("read", n, recBytes, time.Since(t0), "Read at random offsets, one goroutine, verified")
	}

	if cfg.members > 0 && written > 0 {
		t0 = time.Now()
		prog.begin("group", written)
		g, err := d.consumeGroup(ctx, s, prog)
		prog.end()
		if err != nil {
			return nil, err
		}
		rep.Group = g
		rep.phase("group", g.Consumed, recBytes, time.Since(t0),
			fmt.Sprintf("consumer group of %s, Poll, every record verified, %s", plural(cfg.members, "member"), plural(g.Duplicates, "duplicate")))
	}

	st := s.Stats()
	rep.Disk.LogBytes, rep.Disk.Segments = int64(st.Bytes), st.Segments
	for i := range d.end {
		p, _ := topic.Partition(int32(i))
		rep.Disk.RecordsKept += p.HighWatermark() - p.StartOffset()
		rep.Disk.RecordsAdded += d.end[i] - d.start[i]
	}
	t0 = time.Now()
	err = s.Close()
	s = nil
	if err != nil {
		return nil, err
	}
	rep.phase("close", 0, 0, time.Since(t0), "Close: sync, trim active segments, release the directory")
	if rep.Disk.DirBytes, err = dirSize(cfg.dir); err != nil {
		return nil, err
	}
	return rep, nil
}

func openNote(created bool, partitions int) string {
	if created {
		return fmt.Sprintf("topic %s created with %d partitions", demoTopic, partitions)
	}
	return fmt.Sprintf("topic %s reused, %d partitions", demoTopic, partitions)
}

// openDemoTopic returns the demo topic, creating it with the given
// number of partitions when it does not exist.
func openDemoTopic(s *stream.Stream, partitions int, explicit bool) (*stream.Topic, bool, error) {
	t, err := s.Topic(demoTopic)
	if errors.Is(err, stream.ErrUnknownTopic) {
		t, err = s.CreateTopic(demoTopic, stream.TopicConfig{Partitions: partitions, Retention: -1})
		return t, true, err
	}
	if err != nil {
		return nil, false, err
	}
	if explicit && t.NumPartitions() != partitions {
		return nil, false, fmt.Errorf("topic %s already has %d partitions, not %d: use another -dir, or leave -partitions out to reuse it",
			demoTopic, t.NumPartitions(), partitions)
	}
	return t, false, nil
}

// produce sends cfg.records records through a Producer, record i with
// key i, and remembers where each acknowledgement put it. It returns the
// records' produce→ack latencies.
func (d *demoRun) produce(ctx context.Context, s *stream.Stream, prog *progress) ([]time.Duration, error) {
	d.produced = make([]demoPlace, d.cfg.records)
	var mu sync.Mutex // guards problem
	var problem error
	lat, _, err := produceRecords(ctx, s, d.cfg.records, 1, prog,
		stream.ProducerConfig{BatchBytes: d.cfg.batch},
		demoTopic,
		func(r *stream.Record, id uint64) {
			r.Key = binary.BigEndian.AppendUint64(nil, id)
			r.Value = d.values.value(0, id)
		},
		func(r *stream.Record, id uint64) {
			if r.Partition < 0 || int(r.Partition) >= len(d.start) || r.Offset < d.start[r.Partition] {
				mu.Lock()
				problem = cmp.Or(problem, fmt.Errorf("record %d acknowledged at %s-%d offset %d, before this run's start %v",
					id, demoTopic, r.Partition, r.Offset, d.start))
				mu.Unlock()
				return
			}
			d.produced[id] = demoPlace{partition: r.Partition, offset: r.Offset}
		})
	if err != nil {
		return nil, err
	}
	return lat, problem
}

// markEnds sets each partition's end to its high watermark, once this
// run's writers are done.
func (d *demoRun) markEnds(topic *stream.Topic) {
	for i := range d.end {
		p, _ := topic.Partition(int32(i))
		d.end[i] = p.HighWatermark()
	}
}

// appendRecords writes cfg.appends records one at a time with Append from
// cfg.writers goroutines; writer w appends to partition w mod n and
// remembers the offset of every record.
func (d *demoRun) appendRecords(ctx context.Context, topic *stream.Topic, prog *progress) error {
	n := len(d.start)
	w := d.cfg.writers
	d.appended = make([][]int64, w)
	errs := make([]error, w)
	var wg sync.WaitGroup
	for j := range w {
		count := d.cfg.appends / w
		if j < d.cfg.appends%w {
			count++
		}
		p, err := topic.Partition(int32(j % n))
		if err != nil {
			return err
		}
		d.appended[j] = make([]int64, count)
		wg.Go(func() {
			key := make([]byte, demoKeySize)
			for i := range count {
				if err := ctx.Err(); err != nil {
					errs[j] = err
					return
				}
				id := writerSeqID(j, i)
				binary.BigEndian.PutUint64(key, id)
				r := &stream.Record{Key: key, Value: d.values.value(j%n, id)}
				off, err := p.Append(r)
				if err != nil {
					errs[j] = err
					return
				}
				if off != r.Offset {
					errs[j] = fmt.Errorf("partition %s-%d: Append returned offset %d but set Record.Offset to %d", demoTopic, j%n, off, r.Offset)
					return
				}
				d.appended[j][i] = off
				prog.add(1)
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	d.markEnds(topic)
	return nil
}

// demoSeen tracks which of the records this run wrote a reader has
// seen, to catch a record read twice or never.
type demoSeen struct {
	mu       sync.Mutex
	produced []bool   // by produce sequence number
	appended [][]bool // by append writer and sequence number
}

func (d *demoRun) newSeen() *demoSeen {
	s := &demoSeen{produced: make([]bool, len(d.produced)), appended: make([][]bool, len(d.appended))}
	for w := range d.appended {
		s.appended[w] = make([]bool, len(d.appended[w]))
	}
	return s
}

// mark records that the record with id (which check accepted) was seen,
// and reports whether it was the first time.
func (s *demoSeen) mark(id uint64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	var seen *bool
	if id&appendID == 0 {
		seen = &s.produced[id]
	} else {
		seen = &s.appended[id>>32&0x7fffffff][uint32(id)]
	}
	first := !*seen
	*seen = true
	return first
}

// missing returns an error naming the first record written but not seen.
func (s *demoSeen) missing(d *demoRun) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, ok := range s.produced {
		if !ok {
			p := d.produced[i]
			return fmt.Errorf("produced record %d (%s-%d offset %d) was not read back", i, demoTopic, p.partition, p.offset)
		}
	}
	for w := range s.appended {
		for seq, ok := range s.appended[w] {
			if !ok {
				return fmt.Errorf("record %d of append writer %d (offset %d) was not read back", seq, w, d.appended[w][seq])
			}
		}
	}
	return nil
}

// scan reads every record this run wrote with Scan, one goroutine per
// partition, and checks offsets, keys and values, and that each was read
// once. It returns how many records it verified.
func (d *demoRun) scan(ctx context.Context, topic *stream.Topic, prog *progress) (int64, error) {
	n := len(d.start)
	errs := make([]error, n)
	counts := make([]int64, n)
	seen := d.newSeen()
	var wg sync.WaitGroup
	for i := range n {
		p, err := topic.Partition(int32(i))
		if err != nil {
			return 0, err
		}
		if d.end[i] == d.start[i] {
			continue
		}
		wg.Go(func() {
			ctx, cancel := context.WithCancel(ctx)
			defer cancel()
			next := d.start[i]
			for r, err := range p.Scan(ctx, d.start[i]) {
				if err != nil {
					errs[i] = fmt.Errorf("partition %s-%d: scan at offset %d: %w", demoTopic, i, next, err)
					return
				}
				if r.Offset != next {
					errs[i] = fmt.Errorf("partition %s-%d: scan returned offset %d, want %d", demoTopic, i, r.Offset, next)
					return
				}
				id, err := d.check(i, r)
				if err != nil {
					errs[i] = err
					return
				}
				if !seen.mark(id) {
					errs[i] = fmt.Errorf("partition %s-%d: offset %d: record id %#x read twice", demoTopic, i, r.Offset, id)
					return
				}
				counts[i]++
				prog.add(1)
				next++
				if next == d.end[i] {
					return
				}
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return 0, err
	}
	if err := seen.missing(d); err != nil {
		return 0, err
	}
	var total int64
	for i := range n {
		total += counts[i]
	}
	return total, nil
}

// check verifies one record read from partition i against what the
// demo wrote at its offset, and returns its id.
func (d *demoRun) check(i int, r *stream.Record) (uint64, error) {
	fail := func(format string, args ...any) (uint64, error) {
		return 0, fmt.Errorf("partition %s-%d: offset %d: %s", demoTopic, i, r.Offset, fmt.Sprintf(format, args...))
	}
	if len(r.Key) != demoKeySize {
		return fail("key of %d bytes, want %d", len(r.Key), demoKeySize)
	}
	id := binary.BigEndian.Uint64(r.Key)
	valuePartition := i
	if id&appendID == 0 {
		if id >= uint64(len(d.produced)) {
			return fail("key holds id %d, but this run produced %d records", id, len(d.produced))
		}
		if want := d.produced[id]; want.partition != int32(i) || want.offset != r.Offset {
			return fail("produced record %d is here, but its acknowledgement put it at %s-%d offset %d",
				id, demoTopic, want.partition, want.offset)
		}
		valuePartition = 0 // the producer chose the partition after the value was made
	} else {
		w, seq := int(id>>32&0x7fffffff), int(uint32(id))
		if w >= len(d.appended) || seq >= len(d.appended[w]) || w%len(d.start) != i {
			return fail("key holds id %#x, which no append writer of this partition wrote", id)
		}
		if want := d.appended[w][seq]; want != r.Offset {
			return fail("record %d of writer %d is here, but Append returned offset %d for it", seq, w, want)
		}
	}
	if want := d.values.value(valuePartition, id); string(r.Value) != string(want) {
		return fail("value differs from what was written (%d bytes, want %d)", len(r.Value), len(want))
	}
	return id, nil
}

// consumeGroup consumes every record this run wrote through a consumer
// group of cfg.members members, which join at once and share the
// partitions as the group rebalances. The group "demo" is first reset to
// this run's start offsets (it has no members: this process holds the
// directory). Every record is checked; one delivered again (a partition
// that moved before its owner committed) is counted as a duplicate, and
// one never delivered fails the demo.
func (d *demoRun) consumeGroup(ctx context.Context, s *stream.Stream, prog *progress) (*demoGroup, error) {
	g, err := s.ConsumerGroup(demoTopic, stream.GroupConfig{Topics: []string{demoTopic}, StartAt: stream.StartEarliest})
	if err != nil {
		return nil, err
	}
	to := map[stream.TopicPartition]int64{}
	var want int64
	for i := range d.start {
		to[stream.TopicPartition{Topic: demoTopic, Partition: int32(i)}] = d.start[i]
		want += d.end[i] - d.start[i]
	}
	if err := g.ResetOffsets(ctx, to); err != nil {
		return nil, err
	}
	seen := d.newSeen()
	consumed, dups, _, err := consumeGroup(ctx, s, demoTopic, d.cfg.members, want, prog, func(r *stream.Record) (bool, error) {
		i := int(r.Partition)
		if i < 0 || i >= len(d.start) || r.Offset < d.start[i] || r.Offset >= d.end[i] {
			return false, fmt.Errorf("group: %s-%d offset %d is outside what this run wrote", demoTopic, i, r.Offset)
		}
		id, err := d.check(i, r)
		if err != nil {
			return false, fmt.Errorf("group: %w", err)
		}
		return seen.mark(id), nil
	})
	if err != nil {
		return nil, err
	}
	if err := seen.missing(d); err != nil {
		return nil, fmt.Errorf("group: %w", err)
	}
	return &demoGroup{Members: d.cfg.members, Consumed: consumed, Verified: want, Duplicates: dups}, nil
}

// randomReads reads cfg.reads records at random offsets among those this
// run wrote, with Read, and checks each.
func (d *demoRun) randomReads(topic *stream.Topic) (int64, error) {
	rng := rand.New(rand.NewPCG(1, 2))
	var parts []int
	for i := range d.start {
		if d.end[i] > d.start[i] {
			parts = append(parts, i)
		}
	}
	recs := []*stream.Record(nil)
	for range d.cfg.reads {
		i := parts[rng.IntN(len(parts))]
		off := d.start[i] + rng.Int64N(d.end[i]-d.start[i])
		p, err := topic.Partition(int32(i))
		if err != nil {
			return 0, err
		}
		if recs, err = p.Read(off, 1); err != nil {
			return 0, err
		}
		if len(recs) == 0 || recs[0].Offset != off {
			return 0, fmt.Errorf("partition %s-%d: Read(%d) returned %d records starting at %v", demoTopic, i, off, len(recs), firstOffset(recs))
		}
		if _, err := d.check(i, recs[0]); err != nil {
			return 0, err
		}
	}
	return int64(d.cfg.reads), nil
}

func firstOffset(recs []*stream.Record) any {
	if len(recs) == 0 {
		return "none"
	}
	return recs[0].Offset
}

// valueSource makes the value of each record from its partition and id
// without allocating: a window into a fixed pseudo-random block, at an
// offset that depends on both.
type valueSource struct {
	size  int
	block []byte
}

const valueWindows = 251

func newValueSource(size int) valueSource {
	block := make([]byte, size+valueWindows)
	rng := rand.New(rand.NewPCG(42, 42))
	for i := range block {
		block[i] = byte(rng.Uint32())
	}
	return valueSource{size: size, block: block}
}

func (v valueSource) value(partition int, id uint64) []byte {
	h := (id*0x9E3779B97F4A7C15 + uint64(partition)*0xC2B2AE3D27D4EB4F) >> 32 % valueWindows
	return v.block[h : h+uint64(v.size)]
}

// dirSize sums the sizes of the files under dir.
func dirSize(dir string) (int64, error) {
	var n int64
	err := filepath.WalkDir(dir, func(path string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if e.Type().IsRegular() {
			info, err := e.Info()
			if err != nil {
				return err
			}
			n += info.Size()
		}
		return nil
	})
	return n, err
}

// print writes the report as aligned lines for people.
func (r *demoReport) print(w io.Writer) {
	fmt.Fprintf(w, "stream demo: %s, topic %s, %d partitions\n", r.Dir, r.Topic, r.Partitions)
	fmt.Fprintf(w, "records: %d-byte keys, %s values\n\n", r.KeyBytes, humanize.IBytes(uint64(r.ValueBytes)))
	fmt.Fprintf(w, "%-7s %11s %9s %13s %11s %10s  %s\n", "phase", "records", "time", "records/s", "data/s", "per record", "what")
	for _, p := range r.Phases {
		records, rate, bytes, per := "", "", "", ""
		if p.recordsRelevant {
			records = humanize.Comma(p.Records)
			if p.elapsed > 0 {
				rate = humanize.Comma(int64(p.RecordsPerSec))
				bytes = humanize.IBytes(uint64(p.BytesPerSec)) + "/s"
				per = fmtDuration(time.Duration(p.NanosPerRecord))
			}
		}
		fmt.Fprintf(w, "%-7s %11s %9s %13s %11s %10s  %s\n", p.Name, records, fmtDuration(p.elapsed), rate, bytes, per, p.Note)
	}
	fmt.Fprintln(w)
	if r.Latency.Records > 0 {
		fmt.Fprintf(w, "latency:  produce→ack %s\n", r.Latency)
	}
	fmt.Fprintf(w, "verified: %s records read back, every offset, key and value as written\n", humanize.Comma(r.Verified))
	if g := r.Group; g != nil {
		fmt.Fprintf(w, "group:    %s consumed by %s, %s distinct, each verified; %s\n", humanize.Comma(g.Consumed),
			plural(g.Members, "member"), humanize.Comma(g.Verified), plural(g.Duplicates, "duplicate"))
	}
	fmt.Fprintf(w, "on disk:  %s of record batches in %s segments; %s in %s (indexes and meta.db included)\n",
		humanize.IBytes(uint64(r.Disk.LogBytes)), humanize.Comma(int64(r.Disk.Segments)),
		humanize.IBytes(uint64(r.Disk.DirBytes)), r.Dir)
	fmt.Fprintf(w, "topic:    %s records kept, %s added by this run\n",
		humanize.Comma(r.Disk.RecordsKept), humanize.Comma(r.Disk.RecordsAdded))
	fmt.Fprintf(w, "total:    %s\n", fmtDuration(r.totalElapsed))
}

// fmtDuration rounds d to three significant digits or so.
func fmtDuration(d time.Duration) string {
	switch {
	case d >= 10*time.Second:
		d = d.Round(100 * time.Millisecond)
	case d >= time.Second:
		d = d.Round(10 * time.Millisecond)
	case d >= 100*time.Millisecond:
		d = d.Round(time.Millisecond)
	case d >= 10*time.Millisecond:
		d = d.Round(100 * time.Microsecond)
	case d >= time.Millisecond:
		d = d.Round(10 * time.Microsecond)
	case d >= time.Microsecond:
		d = d.Round(10 * time.Nanosecond)
	}
	return d.String()
}
