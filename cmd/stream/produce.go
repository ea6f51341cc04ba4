package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"sync"

	"github.com/dustin/go-humanize"
	"github.com/instream/stream"
)

var produceCommand = &command{
	name:    "produce",
	args:    "TOPIC",
	summary: "send records read from stdin, one a line, through a Producer",
	help: `Produce reads records from stdin, one a line (the newline, and a carriage
return before it, are not part of the record), and sends them to TOPIC,
which must exist, through a stream.Producer: batched per partition and
acknowledged per -acks. With -key-sep, a line "KEY<SEP>VALUE" is split at
the first SEP into a key and a value, and a line without SEP fails.
Without it every line is a value with no key. Records without a key are
spread by the sticky partitioner; records with one go to the partition
the murmur2 hash of the key chooses, as Kafka's Java client does, unless
-partition sends them all to one partition.

At the end it prints how many records were delivered, and for each
partition written the first and last offsets (unknown with -acks none).
A record that fails is reported on stderr with its line number; the others
are still sent, and the exit status is 1 if any failed. Flags may follow
the topic name.`,
}

func init() { produceCommand.run = runProduce }

// produceConfig holds produce's flags.
type produceConfig struct {
	dir         string
	keySep      string
	partition   int
	acks        acksFlag
	compression stream.Compression
	json        bool
}

// produceReport is what produce did.
type produceReport struct {
	Dir        string             `json:"dir"`
	Topic      string             `json:"topic"`
	Records    int64              `json:"records"` // lines read
	Delivered  int64              `json:"delivered"`
	Failed     int64              `json:"failed"`
	Partitions []producePartition `json:"partitions"`
	Errors     []produceError     `json:"errors"`
	acks       stream.Acks
}

// producePartition is what was delivered to one partition. The offsets
// are -1 with -acks none, where they are not known.
type producePartition struct {
	Partition   int32 `json:"partition"`
	Records     int64 `json:"records"`
	FirstOffset int64 `json:"first_offset"`
	LastOffset  int64 `json:"last_offset"`
}

type produceError struct {
	Line  int64  `json:"line"`
	Error string `json:"error"`
}

// maxLine bounds a line: the largest batch the library accepts by default.
const maxLine = int(stream.DefaultMaxRecordBytes)

func runProduce(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	var cfg produceConfig
	fs := produceCommand.newFlagSet(stderr, &cfg.dir)
	fs.StringVar(&cfg.keySep, "key-sep", "", "split each line at the first `SEP` into key and value (default: no key)")
	fs.IntVar(&cfg.partition, "partition", -1, "send every record to partition `N` (default: by key, as Kafka's partitioner)")
	fs.Var(&cfg.acks, "acks", "when a record counts as delivered: all, leader or none")
	fs.TextVar(&cfg.compression, "compression", stream.CompressNone, "batch compression: none, gzip, snappy, lz4 or zstd")
	fs.BoolVar(&cfg.json, "json", false, "print the summary as JSON")
	names, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(names) != 1 {
		return usageError(fs, "want one topic name, got %d arguments", len(names))
	}
	if cfg.partition < -1 {
		return usageError(fs, "-partition %d: must be 0 or more", cfg.partition)
	}
	s, err := openExisting(cfg.dir)
	if err != nil {
		return err
	}
	defer s.Close()
	t, err := s.Topic(names[0])
	if err != nil {
		return fmt.Errorf("%w (\"stream create -dir %s %s\" makes it)", err, cfg.dir, names[0])
	}
	if cfg.partition >= t.NumPartitions() {
		return fmt.Errorf("-partition %d: topic %s has %s", cfg.partition, t.Name(), plural(t.NumPartitions(), "partition"))
	}
	rep, err := produce(ctx, s, t.Name(), cfg, stdin, stderr)
	if err != nil {
		return err
	}
	if err := s.Close(); err != nil {
		return err
	}
	rep.Dir = cfg.dir
	if cfg.json {
		err = writeJSON(stdout, rep)
	} else {
		err = rep.print(stdout)
	}
	if err != nil {
		return err
	}
	if rep.Failed > 0 {
		return fmt.Errorf("%s of %s failed", plural(rep.Failed, "record"), humanize.Comma(rep.Records))
	}
	return nil
}

// produce sends every line of in to topic and waits for them all.
func produce(ctx context.Context, s *stream.Stream, topic string, cfg produceConfig, in io.Reader, stderr io.Writer) (*produceReport, error) {
	pc := stream.ProducerConfig{Acks: stream.Acks(cfg.acks), Compression: cfg.compression}
	if cfg.partition >= 0 {
		pc.Partitioner = stream.ManualPartitioner
	}
	p, err := s.NewProducer(pc)
	if err != nil {
		return nil, err
	}
	defer p.Close()
	rep := &produceReport{Topic: topic, Partitions: []producePartition{}, Errors: []produceError{}, acks: pc.Acks}
	var mu sync.Mutex // guards parts and rep.Errors, written by delivery callbacks
	parts := map[int32]*producePartition{}
	fail := func(line int64, err error) {
		mu.Lock()
		rep.Errors = append(rep.Errors, produceError{Line: line, Error: err.Error()})
		mu.Unlock()
	}

	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 0, 64<<10), maxLine)
	var line int64
	for sc.Scan() {
		if err := ctx.Err(); err != nil {
			break // deliver what was sent, then report the interruption
		}
		line++
		text := bytes.TrimSuffix(sc.Bytes(), []byte("\r"))
		r := &stream.Record{Topic: topic, Partition: int32(cfg.partition)}
		if cfg.keySep != "" {
			k, v, ok := bytes.Cut(text, []byte(cfg.keySep))
			if !ok {
				fail(line, fmt.Errorf("no key separator %q", cfg.keySep))
				continue
			}
			r.Key = bytes.Clone(k)
			text = v
		}
		r.Value = bytes.Clone(text)
		n := line
		p.SendAsync(r, func(r *stream.Record, err error) {
			if err != nil {
				fail(n, err)
				return
			}
			mu.Lock()
			defer mu.Unlock()
			pp := parts[r.Partition]
			if pp == nil {
				pp = &producePartition{Partition: r.Partition, FirstOffset: r.Offset}
				parts[r.Partition] = pp
			}
			pp.Records++
			pp.LastOffset = r.Offset
		})
	}
	rep.Records = line
	readErr := sc.Err()
	if errors.Is(readErr, bufio.ErrTooLong) {
		readErr = fmt.Errorf("line %d is longer than %s", line+1, humanize.IBytes(uint64(maxLine)))
	}
	// Deliver everything sent, even when interrupted: Close flushes.
	if err := p.Close(); err != nil {
		return nil, err
	}
	if readErr != nil {
		return nil, fmt.Errorf("reading stdin: %w (records sent before it were delivered)", readErr)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("interrupted after %s (all delivered or reported): %w", plural(line, "line"), err)
	}
	for _, pp := range parts {
		rep.Partitions = append(rep.Partitions, *pp)
		rep.Delivered += pp.Records
	}
	slices.SortFunc(rep.Partitions, func(a, b producePartition) int { return int(a.Partition - b.Partition) })
	slices.SortFunc(rep.Errors, func(a, b produceError) int { return int(a.Line - b.Line) })
	rep.Failed = int64(len(rep.Errors))
	for _, e := range rep.Errors {
		fmt.Fprintf(stderr, "stream produce: line %d: %s\n", e.Line, e.Error)
	}
	return rep, nil
}

func (r *produceReport) print(w io.Writer) error {
	fmt.Fprintf(w, "produced %s to %s: %s delivered, %s failed\n", plural(r.Records, "record"), r.Topic,
		humanize.Comma(r.Delivered), humanize.Comma(r.Failed))
	if len(r.Partitions) == 0 {
		return nil
	}
	fmt.Fprintln(w)
	t := newTable("partition>", "records>", "first offset>", "last offset>")
	for _, p := range r.Partitions {
		first, last := "-", "-" // acks none: not known
		if r.acks != stream.AcksNone {
			first, last = strconv.FormatInt(p.FirstOffset, 10), strconv.FormatInt(p.LastOffset, 10)
		}
		t.add(strconv.Itoa(int(p.Partition)), humanize.Comma(p.Records), first, last)
	}
	return t.write(w, "")
}

// acksFlag is a stream.Acks as a flag: all, leader or none.
type acksFlag stream.Acks

func (f acksFlag) String() string { return stream.Acks(f).String() }

func (f *acksFlag) Set(s string) error {
	for _, a := range []stream.Acks{stream.AcksAll, stream.AcksLeader, stream.AcksNone} {
		if s == a.String() {
			*f = acksFlag(a)
			return nil
		}
	}
	return fmt.Errorf("want all, leader or none")
}
