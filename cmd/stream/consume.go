package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/instream/stream"
)

var consumeCommand = &command{
	name:    "consume",
	args:    "TOPIC",
	summary: "print a topic's records; -group to consume as a consumer group, -follow to tail",
	help: `Consume prints the records of TOPIC: partition, offset, timestamp (UTC),
key and value. A key or value of printable text is printed as it is,
other bytes quoted with Go escapes when they are UTF-8 and in hex
otherwise; "null" is a missing key. Without -follow it stops at the end
of the log (the high watermarks when it starts), printing each
partition's records in offset order, partition after partition; with
-follow it waits for new records until interrupted (SIGINT, SIGTERM),
then closes cleanly.

-from says where to start:
  earliest   the oldest record kept (the default)
  latest     the end: only records appended from now on (with -follow)
  OFFSET     this offset in each partition (a partition with fewer records
             starts at its end; one whose start is past it at its start)
  TIME       the first record at or after an RFC 3339 time
             ("2025-01-02T15:04:05Z"), per partition

Without -group, consume reads as a group-less Consumer and commits
nothing. With -group ID it joins the consumer group ID as its only
member (the directory is held by one process at a time, so no other
member can be running), reads every partition from the group's
committed offsets, and commits what it printed as it goes and at the end:
running it again prints only what is new. There -from works as Kafka's
tools do: earliest and latest apply where the group has committed nothing
(auto.offset.reset); an OFFSET or TIME first resets the group's committed
offsets to it (kafka-consumer-groups --reset-offsets), which the library
allows only for a group without members. -partition cannot be used with
-group.

-json prints one JSON object a line: topic, partition, offset, timestamp,
key and value as strings (key_base64, value_base64 instead for bytes that
are not UTF-8), and headers. Flags may follow the topic name.

-url reads a running process instead, from its debug page (package
debughttp; "stream serve -http"), as a group-less consumer: -from,
-partition, -n and -follow (asking the page twice a second) work as
above; -group does not (the page is read-only).`,
}

func init() { consumeCommand.run = runConsume }

// consumeConfig holds consume's flags.
type consumeConfig struct {
	dir       string
	from      string
	group     string
	follow    bool
	n         int64
	partition int
	json      bool
	url       string // -url: a running process's debug page
}

// startFrom is a parsed -from.
type startFrom struct {
	kind   string // "earliest", "latest", "offset" or "time"
	offset int64
	time   time.Time
}

func parseFrom(s string) (startFrom, error) {
	switch s {
	case "earliest", "latest":
		return startFrom{kind: s}, nil
	}
	if off, err := strconv.ParseInt(s, 10, 64); err == nil {
		if off < 0 {
			return startFrom{}, fmt.Errorf("-from %d: an offset must be 0 or more", off)
		}
		return startFrom{kind: "offset", offset: off}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return startFrom{}, fmt.Errorf("-from %q: want earliest, latest, an offset or an RFC 3339 time (2025-01-02T15:04:05Z)", s)
	}
	return startFrom{kind: "time", time: t}, nil
}

func runConsume(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
	var cfg consumeConfig
	fs := consumeCommand.newFlagSet(stderr, &cfg.dir)
	fs.StringVar(&cfg.from, "from", "earliest", "where to start: earliest, latest, an `OFFSET` or an RFC 3339 time")
	fs.StringVar(&cfg.group, "group", "", "consume as the consumer group `ID`, committing what is printed")
	fs.BoolVar(&cfg.follow, "follow", false, "wait for new records until interrupted")
	fs.Int64Var(&cfg.n, "n", 0, "stop after `N` records (0: no limit)")
	fs.IntVar(&cfg.partition, "partition", -1, "read only partition `N` (not with -group)")
	fs.BoolVar(&cfg.json, "json", false, "print one JSON object a record")
	fs.StringVar(&cfg.url, "url", "", urlFlagUsage)
	names, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(names) != 1 {
		return usageError(fs, "want one topic name, got %d arguments", len(names))
	}
	from, err := parseFrom(cfg.from)
	if err != nil {
		return usageError(fs, "%v", err)
	}
	switch {
	case cfg.n < 0:
		return usageError(fs, "-n %d: must be 0 or more", cfg.n)
	case cfg.partition < -1:
		return usageError(fs, "-partition %d: must be 0 or more", cfg.partition)
	case cfg.partition >= 0 && cfg.group != "":
		return usageError(fs, "-partition cannot be used with -group: the group assigns the partitions")
	case cfg.url != "" && cfg.group != "":
		return usageError(fs, "-group cannot be used with -url: the debug page is read-only")
	}
	if cfg.url != "" {
		return consumeURL(ctx, cfg, names[0], from, stdout)
	}
	s, err := openExisting(cfg.dir)
	if err != nil {
		return err
	}
	defer s.Close()
	t, err := s.Topic(names[0])
	if err != nil {
		return err
	}
	if cfg.partition >= t.NumPartitions() {
		return fmt.Errorf("-partition %d: topic %s has %s", cfg.partition, t.Name(), plural(t.NumPartitions(), "partition"))
	}
	w := bufio.NewWriter(stdout)
	var out recordOutput = newRecordText(w)
	if cfg.json {
		out = &recordJSON{w: w}
	}
	c := &consumer{cfg: cfg, out: out, w: w}
	if cfg.group != "" {
		err = c.group(ctx, s, t, from)
	} else {
		err = c.plain(ctx, s, t, from)
	}
	c.out.end(c.printed)
	if ferr := w.Flush(); err == nil {
		err = ferr
	}
	if cerr := s.Close(); err == nil {
		err = cerr
	}
	return err
}

// consumer prints records until the end of the log, the limit, or (with
// -follow) an interruption.
type consumer struct {
	cfg     consumeConfig
	out     recordOutput
	w       *bufio.Writer
	printed int64
	// next holds, per partition, the offset after the last record
	// printed: what a group commits.
	next map[stream.TopicPartition]int64
}

// full reports whether -n records have been printed.
func (c *consumer) full() bool { return c.cfg.n > 0 && c.printed >= c.cfg.n }

func (c *consumer) print(r *stream.Record) {
	c.out.record(r)
	c.printed++
	if c.next == nil {
		c.next = map[stream.TopicPartition]int64{}
	}
	c.next[stream.TopicPartition{Topic: r.Topic, Partition: r.Partition}] = r.Offset + 1
}

// plain reads with a group-less consumer: Assign, then Seek per -from.
func (c *consumer) plain(ctx context.Context, s *stream.Stream, t *stream.Topic, from startFrom) error {
	cons, err := s.NewConsumer(stream.ConsumerConfig{})
	if err != nil {
		return err
	}
	defer cons.Close()
	var tps []stream.TopicPartition
	for i := range t.NumPartitions() {
		if c.cfg.partition < 0 || c.cfg.partition == i {
			tps = append(tps, stream.TopicPartition{Topic: t.Name(), Partition: int32(i)})
		}
	}
	if err := cons.Assign(tps...); err != nil {
		return err
	}
	for _, tp := range tps {
		p, err := t.Partition(tp.Partition)
		if err != nil {
			return err
		}
		off, err := startOffset(p, from)
		if err != nil {
			return err
		}
		if err := cons.Seek(tp, off); err != nil {
			return err
		}
	}
	return c.read(ctx, cons, nil)
}

// startOffset returns where -from starts in p.
func startOffset(p *stream.Partition, from startFrom) (int64, error) {
	start, hw := p.StartOffset(), p.HighWatermark()
	switch from.kind {
	case "latest":
		return hw, nil
	case "offset":
		return min(max(from.offset, start), hw), nil
	case "time":
		return p.OffsetForTime(from.time)
	}
	return start, nil
}

// group reads as the only member of the consumer group, committing what
// it prints.
func (c *consumer) group(ctx context.Context, s *stream.Stream, t *stream.Topic, from startFrom) error {
	gc := stream.GroupConfig{
		Topics: []string{t.Name()},
		// Commit exactly what was printed, never what was fetched but
		// not printed (-n), so no auto-commit and no commit by Close.
		CommitInterval: -1,
	}
	if from.kind == "earliest" {
		gc.StartAt = stream.StartEarliest
	}
	g, err := s.ConsumerGroup(c.cfg.group, gc)
	if err != nil {
		return err
	}
	switch from.kind {
	case "offset":
		to := map[stream.TopicPartition]int64{}
		for i := range t.NumPartitions() {
			p, err := t.Partition(int32(i))
			if err != nil {
				return err
			}
			off, _ := startOffset(p, from)
			to[stream.TopicPartition{Topic: t.Name(), Partition: int32(i)}] = off
		}
		err = g.ResetOffsets(ctx, to)
	case "time":
		err = g.ResetOffsetsToTime(ctx, from.time)
	}
	if errors.Is(err, stream.ErrGroupNotEmpty) {
		return fmt.Errorf("-from %s needs the group's committed offsets reset, which a group with members refuses: %w", c.cfg.from, err)
	}
	if err != nil {
		return err
	}
	cons, err := g.Join(ctx, stream.ConsumerConfig{})
	if err != nil {
		return err
	}
	err = c.read(ctx, cons, func() error {
		if len(c.next) == 0 {
			return nil
		}
		return cons.CommitOffsets(context.WithoutCancel(ctx), c.next)
	})
	if cerr := cons.Close(); err == nil {
		err = cerr
	}
	return err
}

// read prints records from cons: up to the high watermarks of the start
// with ReadToEnd, or with -follow with Poll until ctx ends. commit, when
// not nil, commits what was printed; it runs after every Poll and at the
// end.
func (c *consumer) read(ctx context.Context, cons *stream.Consumer, commit func() error) error {
	if commit == nil {
		commit = func() error { return nil }
	}
	if !c.cfg.follow {
		for r, err := range cons.ReadToEnd(ctx) {
			if err != nil {
				return errors.Join(err, commit())
			}
			c.print(r)
			if c.full() {
				break
			}
		}
		return commit()
	}
	for !c.full() {
		recs, err := cons.Poll(ctx)
		if err != nil {
			if ctx.Err() != nil {
				err = nil // interrupted: the way -follow ends
			}
			return errors.Join(err, commit())
		}
		for _, r := range recs {
			c.print(r)
			if c.full() {
				break
			}
		}
		if err := commit(); err != nil {
			return err
		}
		if err := c.w.Flush(); err != nil { // a tail shows records as they come
			return err
		}
	}
	return nil
}

// recordOutput prints consumed records as they come.
type recordOutput interface {
	record(r *stream.Record)
	end(printed int64)
}

// recordText prints records for people in columns of fixed widths, so it
// can print each as it comes; a longer key pushes its value right.
type recordText struct {
	w      *bufio.Writer
	cols   *table // columns only: no rows are kept
	widths []int
	header bool
}

func newRecordText(w *bufio.Writer) *recordText {
	cols := newTable("partition>", "offset>", "timestamp", "key", "value")
	widths := cols.widths()
	copy(widths, []int{9, 8, 24, 8})
	return &recordText{w: w, cols: cols, widths: widths}
}

func (o *recordText) record(r *stream.Record) {
	if !o.header {
		o.w.WriteString(o.cols.line(o.widths, o.cols.header()))
		o.header = true
	}
	o.w.WriteString(o.cols.line(o.widths, []string{strconv.Itoa(int(r.Partition)), strconv.FormatInt(r.Offset, 10),
		formatTime(r.Timestamp), showBytes(r.Key), showBytes(r.Value)}))
}

func (o *recordText) end(printed int64) {
	if printed == 0 {
		o.w.WriteString("no records\n")
	}
}

// showBytes prints a key or value in consume's table: printable text as
// it is, other UTF-8 quoted with Go escapes, anything else in hex, and
// "null" for a missing key. Text that would be read as one of the others
// ("", "null", text starting with a quote or "0x") is quoted.
func showBytes(b []byte) string {
	switch {
	case b == nil:
		return "null"
	case printableText(b) && len(b) > 0 && string(b) != "null" && !strings.HasPrefix(string(b), `"`) && !strings.HasPrefix(string(b), "0x"):
		return string(b)
	}
	return formatBytes(b, 0)
}

// recordJSON prints one JSON object a record (JSON Lines).
type recordJSON struct {
	w *bufio.Writer
}

type consumedRecordJSON struct {
	Topic       string            `json:"topic"`
	Partition   int32             `json:"partition"`
	Offset      int64             `json:"offset"`
	Timestamp   time.Time         `json:"timestamp"`
	Key         *string           `json:"key"` // null: no key
	KeyBase64   []byte            `json:"key_base64,omitempty"`
	Value       *string           `json:"value"`
	ValueBase64 []byte            `json:"value_base64,omitempty"`
	Headers     map[string]string `json:"headers,omitempty"`
}

func (o *recordJSON) record(r *stream.Record) {
	j := consumedRecordJSON{Topic: r.Topic, Partition: r.Partition, Offset: r.Offset, Timestamp: r.Timestamp.UTC()}
	j.Key, j.KeyBase64 = jsonBytes(r.Key)
	j.Value, j.ValueBase64 = jsonBytes(r.Value)
	for _, h := range r.Headers {
		if j.Headers == nil {
			j.Headers = map[string]string{}
		}
		j.Headers[h.Key] = string(h.Value)
	}
	line, _ := json.Marshal(j) // plain data: cannot fail
	o.w.Write(line)
	o.w.WriteByte('\n')
}

func (o *recordJSON) end(int64) {}

// jsonBytes returns b as a JSON string when it is UTF-8, else as base64.
func jsonBytes(b []byte) (*string, []byte) {
	switch {
	case b == nil:
		return nil, nil
	case utf8.Valid(b):
		s := string(b)
		return &s, nil
	}
	return nil, b
}
