package main

import (
	"bufio"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/instream/stream"
)

var dumpCommand = &command{
	name:    "dump",
	args:    "FILE.log",
	summary: "decode a segment file batch by batch, like kafka-dump-log",
	help: `Dump decodes a segment's .log file batch by batch, as Kafka's
kafka-dump-log does, without opening the stream: the file may belong to a
directory in use. For each batch it prints the byte position, base and
last offset, record count, size in bytes, base and max timestamps (UTC),
compression codec, producer id, epoch and base sequence (-1: not
idempotent), partition leader epoch, CRC-32C and its verdict. -records
adds each record: offset, timestamp, key and value (quoted when printable
text, else hex; "null" for Kafka's null), and headers.

At the first damaged batch (torn by a crash, or failing its length,
magic or CRC check) dump prints the batches before it, then the damaged
one with what is wrong, and exits with status 1. An all-zero tail, the
preallocated space of an active segment, ends the data.

-json prints one JSON document; keys and values are base64, as Go's
encoding/json writes []byte. With -dir, as every other command takes, a
relative FILE names a file under DIR/topics, for example
"stream dump -dir data events-0/00000000000000000000.log". Flags may
follow the file name.`,
}

func init() { dumpCommand.run = runDump }

// dumpConfig holds dump's flags.
type dumpConfig struct {
	records  bool
	maxBytes int
	json     bool
}

func runDump(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
	var cfg dumpConfig
	var dir string
	fs := dumpCommand.newFlagSet(stderr, &dir)
	fs.BoolVar(&cfg.records, "records", false, "print every record of each batch")
	fs.IntVar(&cfg.maxBytes, "max-bytes", 128, "with -records, print at most this many bytes of each key and value (0: all; not with -json)")
	fs.BoolVar(&cfg.json, "json", false, "print the batches as JSON")
	files, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(files) != 1 {
		return usageError(fs, "want one segment file (.log), got %d arguments", len(files))
	}
	if ext := filepath.Ext(files[0]); ext == ".index" || ext == ".timeindex" {
		return usageError(fs, "%s is an index: dump decodes the segment's .log file", files[0])
	}
	if cfg.maxBytes < 0 {
		return usageError(fs, "-max-bytes %d: must be 0 or more", cfg.maxBytes)
	}
	fs.Visit(func(f *flag.Flag) {
		if f.Name == "dir" && !filepath.IsAbs(files[0]) {
			files[0] = filepath.Join(dir, "topics", files[0])
		}
	})
	sf, err := stream.OpenSegmentFile(files[0])
	if err != nil {
		return err
	}
	defer sf.Close()
	size, err := fileSize(files[0])
	if err != nil {
		return err
	}

	w := bufio.NewWriter(stdout)
	var out dumpOutput = newDumpText(w, cfg)
	if cfg.json {
		out = &dumpJSON{w: w}
	}
	out.begin(files[0], size)
	var sum dumpSummary
	var damage error
	for b, err := range sf.Batches() {
		if err != nil {
			w.Flush()
			return err
		}
		var recs []*stream.Record
		if b.Err == nil && cfg.records {
			if recs, err = sf.Records(b); err != nil {
				b.Err = err // a batch whose CRC holds but whose records do not decode
			}
		}
		out.batch(b, recs)
		if b.Err != nil {
			damage = b.Err
			sum.damaged = b.Position
			break
		}
		if sum.batches == 0 {
			sum.first = b.BaseOffset
		}
		sum.batches++
		sum.records += int64(b.Count)
		sum.last = b.LastOffset
		sum.end = b.Position + b.Size
	}
	sum.size = size
	out.end(sum, damage)
	if err := w.Flush(); err != nil {
		return err
	}
	return damage
}

// dumpSummary is what a dump found.
type dumpSummary struct {
	batches     int
	records     int64
	first, last int64 // offsets, when batches > 0
	end         int64 // position after the last good batch
	size        int64 // of the file
	damaged     int64 // position of the damaged batch, when there is one
}

// dumpOutput prints a dump as it goes: a segment can hold millions of
// batches, so nothing is held back.
type dumpOutput interface {
	begin(file string, size int64)
	batch(b stream.SegmentBatch, recs []*stream.Record)
	end(sum dumpSummary, damage error)
}

// dumpText prints a dump for people, in columns of fixed widths (wide
// enough for a 2 GiB segment) so it can print each batch as it comes.
type dumpText struct {
	w      *bufio.Writer
	cfg    dumpConfig
	cols   *table // columns only: no rows are kept
	widths []int
}

func newDumpText(w *bufio.Writer, cfg dumpConfig) *dumpText {
	cols := newTable("position>", "base offset>", "last offset>", "count>", "size>", "base timestamp",
		"max timestamp", "compression", "producer id>", "epoch>", "sequence>", "leader epoch>", "crc", "verdict")
	widths := cols.widths()
	copy(widths, []int{10, 11, 11, 6, 8, 24, 24, 11, 11, 5, 10, 12, 8})
	return &dumpText{w: w, cfg: cfg, cols: cols, widths: widths}
}

func (d *dumpText) begin(file string, size int64) {
	fmt.Fprintf(d.w, "%s: %d bytes\n\n", file, size)
	d.w.WriteString(d.cols.line(d.widths, d.cols.header()))
}

func (d *dumpText) batch(b stream.SegmentBatch, recs []*stream.Record) {
	verdict := "ok"
	if b.Err != nil {
		verdict = "DAMAGED"
	}
	itoa := func(n int64) string { return strconv.FormatInt(n, 10) }
	if b.Size == 0 { // the header itself is torn: nothing else is known
		d.w.WriteString(d.cols.line(d.widths, []string{itoa(b.Position), 13: verdict}))
	} else {
		d.w.WriteString(d.cols.line(d.widths, []string{
			itoa(b.Position), itoa(b.BaseOffset), itoa(b.LastOffset), itoa(int64(b.Count)), itoa(b.Size),
			formatTime(b.BaseTimestamp), formatTime(b.MaxTimestamp), b.Compression.String(), itoa(b.ProducerID),
			itoa(int64(b.ProducerEpoch)), itoa(int64(b.BaseSequence)), itoa(int64(b.LeaderEpoch)),
			fmt.Sprintf("%08x", b.CRC), verdict,
		}))
	}
	if b.Err != nil {
		fmt.Fprintf(d.w, "  ^ at byte %d: %v\n", b.Position, cause(b.Err))
	}
	for _, r := range recs {
		fmt.Fprintf(d.w, "  | offset %d  %s  key %s  value %s", r.Offset, formatTime(r.Timestamp),
			formatBytes(r.Key, d.cfg.maxBytes), formatBytes(r.Value, d.cfg.maxBytes))
		for i, h := range r.Headers {
			sep := ","
			if i == 0 {
				sep = "  headers"
			}
			fmt.Fprintf(d.w, "%s %s=%s", sep, strconv.Quote(h.Key), formatBytes(h.Value, d.cfg.maxBytes))
		}
		d.w.WriteByte('\n')
	}
}

func (d *dumpText) end(sum dumpSummary, damage error) {
	fmt.Fprintln(d.w)
	what := plural(sum.batches, "batch")
	if sum.batches != 1 {
		what = strings.TrimSuffix(what, "s") + "es"
	}
	if sum.batches > 0 {
		what += fmt.Sprintf(", %s, offsets %d to %d, %s bytes", plural(sum.records, "record"), sum.first, sum.last,
			strconv.FormatInt(sum.end, 10))
	}
	switch {
	case damage != nil:
		fmt.Fprintf(d.w, "DAMAGED at byte %d, after %s\n", sum.damaged, what)
	case sum.end < sum.size:
		fmt.Fprintf(d.w, "%s; then %d bytes of zeros from byte %d, the preallocated tail of an active segment\n",
			what, sum.size-sum.end, sum.end)
	default:
		fmt.Fprintln(d.w, what)
	}
}

// dumpJSON prints a dump as one JSON document, a batch a line.
type dumpJSON struct {
	w *bufio.Writer
	n int // batches written
}

type dumpBatchJSON struct {
	Position      int64            `json:"position"`
	Size          int64            `json:"size"`
	BaseOffset    int64            `json:"base_offset"`
	LastOffset    int64            `json:"last_offset"`
	Count         int              `json:"count"`
	BaseTimestamp time.Time        `json:"base_timestamp"`
	MaxTimestamp  time.Time        `json:"max_timestamp"`
	Compression   string           `json:"compression"`
	ProducerID    int64            `json:"producer_id"`
	ProducerEpoch int16            `json:"producer_epoch"`
	BaseSequence  int32            `json:"base_sequence"`
	LeaderEpoch   int32            `json:"leader_epoch"`
	CRC           uint32           `json:"crc"`
	Valid         bool             `json:"valid"`
	Error         string           `json:"error,omitempty"`
	Records       []dumpRecordJSON `json:"records,omitempty"`
}

type dumpRecordJSON struct {
	Offset    int64            `json:"offset"`
	Timestamp time.Time        `json:"timestamp"`
	Key       []byte           `json:"key"`
	Value     []byte           `json:"value"`
	Headers   []dumpHeaderJSON `json:"headers,omitempty"`
}

type dumpHeaderJSON struct {
	Key   string `json:"key"`
	Value []byte `json:"value"`
}

func (d *dumpJSON) begin(file string, size int64) {
	name, _ := json.Marshal(file)
	fmt.Fprintf(d.w, "{\n  \"file\": %s,\n  \"size\": %d,\n  \"batches\": [", name, size)
}

func (d *dumpJSON) batch(b stream.SegmentBatch, recs []*stream.Record) {
	j := dumpBatchJSON{
		Position: b.Position, Size: b.Size, BaseOffset: b.BaseOffset, LastOffset: b.LastOffset, Count: b.Count,
		BaseTimestamp: b.BaseTimestamp.UTC(), MaxTimestamp: b.MaxTimestamp.UTC(), Compression: b.Compression.String(),
		ProducerID: b.ProducerID, ProducerEpoch: b.ProducerEpoch, BaseSequence: b.BaseSequence,
		LeaderEpoch: b.LeaderEpoch, CRC: b.CRC, Valid: b.Err == nil,
	}
	if b.Err != nil {
		j.Error = cause(b.Err).Error()
	}
	for _, r := range recs {
		rj := dumpRecordJSON{Offset: r.Offset, Timestamp: r.Timestamp.UTC(), Key: r.Key, Value: r.Value}
		for _, h := range r.Headers {
			rj.Headers = append(rj.Headers, dumpHeaderJSON{Key: h.Key, Value: h.Value})
		}
		j.Records = append(j.Records, rj)
	}
	var line []byte
	if b.Size == 0 { // a torn header: only where it is and what is wrong are known
		line, _ = json.Marshal(struct {
			Position int64  `json:"position"`
			Valid    bool   `json:"valid"`
			Error    string `json:"error"`
		}{b.Position, false, j.Error})
	} else {
		line, _ = json.Marshal(j) // plain data: cannot fail
	}
	if d.n > 0 {
		d.w.WriteByte(',')
	}
	d.n++
	fmt.Fprintf(d.w, "\n    %s", line)
}

// end closes the batches and adds the summary: good_batches, records,
// end (the position after the last good batch), and either zero_tail
// (bytes of preallocated zeros after it) or damaged_at (the position of
// the damaged batch, the last one listed).
func (d *dumpJSON) end(sum dumpSummary, damage error) {
	if d.n > 0 {
		d.w.WriteString("\n  ")
	}
	fmt.Fprintf(d.w, "],\n  \"good_batches\": %d,\n  \"records\": %d,\n  \"end\": %d,\n", sum.batches, sum.records, sum.end)
	if damage != nil {
		fmt.Fprintf(d.w, "  \"damaged\": true,\n  \"damaged_at\": %d\n}\n", sum.damaged)
	} else {
		fmt.Fprintf(d.w, "  \"zero_tail\": %d,\n  \"damaged\": false\n}\n", sum.size-sum.end)
	}
}

// cause strips a *stream.CorruptError of the file name and position dump
// prints already.
func cause(err error) error {
	var ce *stream.CorruptError
	if errors.As(err, &ce) {
		return ce.Err
	}
	return err
}

// formatTime prints a timestamp in UTC with milliseconds, Kafka's
// precision.
func formatTime(t time.Time) string {
	return t.UTC().Format("2006-01-02T15:04:05.000Z07:00")
}

// formatBytes prints a key, value or header value: quoted when it is
// printable text, hex otherwise, "null" for nil. At most limit bytes are
// shown (0: all), followed by the full length when cut.
func formatBytes(b []byte, limit int) string {
	if b == nil {
		return "null"
	}
	shown := b
	if limit > 0 && len(b) > limit {
		shown = b[:limit]
	}
	var s string
	if text := printableText(b); text {
		for !utf8.Valid(shown) { // cut inside a character: back off to its start
			shown = shown[:len(shown)-1]
		}
		s = strconv.Quote(string(shown))
	} else {
		s = "0x" + hex.EncodeToString(shown)
	}
	if len(shown) < len(b) {
		s += fmt.Sprintf("...(%d bytes)", len(b))
	}
	return s
}

// printableText reports whether b is UTF-8 text of printable characters
// and spaces.
func printableText(b []byte) bool {
	if !utf8.Valid(b) {
		return false
	}
	for _, r := range string(b) {
		if !unicode.IsPrint(r) && r != ' ' && r != '\t' {
			return false
		}
	}
	return true
}

func fileSize(path string) (int64, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return 0, err
	}
	return fi.Size(), nil
}
