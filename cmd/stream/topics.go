package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/dustin/go-humanize"
	"github.com/instream/stream"
)

var topicsCommand = &command{
	name:    "topics",
	summary: "list topics: partitions, offsets, records, segments and size on disk; grow a topic",
	help: `Topics opens the directory and lists every topic, a line per partition:

  start      the partition's start offset, its oldest record kept
  end        the high watermark, the offset the next record will get
  records    end - start
  segments   .log files
  size       the segments on disk: .log, .index and .timeindex files

Sizes are measured after the stream is closed, when every segment holds
exactly its batches (an open active segment is preallocated). -json adds
each topic's configuration and the exact byte counts.

-url reads a running process instead, from its debug page (package
debughttp; "stream serve -http"): sizes are then the record batches'
only, and configurations other than the partition count are unknown.

-alter TOPIC -partitions N first grows TOPIC to N partitions, as Kafka's
kafka-topics --alter --partitions (Stream.CreatePartitions): partitions
are only ever added, and keys may map to other partitions afterwards.

Opening the directory recovers it as an embedding program's Open would,
and fails at once, naming the directory, if another process holds it.`,
}

func init() { topicsCommand.run = runTopics }

// topicInfo is one topic as topics and delete report it.
type topicInfo struct {
	Name       string          `json:"name"`
	Config     topicConfigJSON `json:"config"`
	Partitions []partitionInfo `json:"partitions"`
}

// topicConfigJSON is a stream.TopicConfig in plain numbers for scripts.
type topicConfigJSON struct {
	Partitions     int   `json:"partitions"`
	RetentionMs    int64 `json:"retention_ms"`    // -1: forever
	RetentionBytes int64 `json:"retention_bytes"` // 0: unlimited
	SegmentBytes   int64 `json:"segment_bytes"`   // 0: the stream's Options.SegmentBytes
}

func configJSON(c stream.TopicConfig) topicConfigJSON {
	ms := c.Retention.Milliseconds()
	if c.Retention < 0 {
		ms = -1
	}
	return topicConfigJSON{Partitions: c.Partitions, RetentionMs: ms,
		RetentionBytes: int64(c.RetentionBytes), SegmentBytes: int64(c.SegmentBytes)}
}

// partitionInfo is one partition's offsets and files.
type partitionInfo struct {
	Partition     int32  `json:"partition"`
	StartOffset   int64  `json:"start_offset"`
	HighWatermark int64  `json:"high_watermark"`
	Records       int64  `json:"records"`
	Segments      int    `json:"segments"`
	LogBytes      int64  `json:"log_bytes"` // .log files: the record batches
	Bytes         int64  `json:"bytes"`     // .log, .index and .timeindex files
	dir           string // measured after Close
}

func runTopics(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
	var dir, alter, remoteURL string
	var asJSON bool
	var partitions int
	fs := topicsCommand.newFlagSet(stderr, &dir)
	fs.BoolVar(&asJSON, "json", false, "print the topics as JSON")
	fs.StringVar(&alter, "alter", "", "grow this topic to -partitions partitions first")
	fs.IntVar(&partitions, "partitions", 0, "with -alter: the topic's new partition count")
	fs.StringVar(&remoteURL, "url", "", urlFlagUsage)
	if err := parse(fs, args); err != nil {
		return err
	}
	if remoteURL != "" {
		return topicsRemote(ctx, fs, remoteURL, alter, asJSON, stdout)
	}
	if fs.NArg() > 0 {
		return usageError(fs, "unexpected arguments %q", fs.Args())
	}
	if (alter == "") != (partitions == 0) {
		return usageError(fs, "-alter and -partitions go together")
	}
	s, err := openExisting(dir)
	if err != nil {
		return err
	}
	if alter != "" {
		if err := s.CreatePartitions(alter, partitions); err != nil {
			s.Close()
			return err
		}
	}
	var topics []*topicInfo
	for _, name := range s.Topics() {
		t, err := s.Topic(name)
		if err != nil {
			s.Close()
			return err
		}
		topics = append(topics, describeTopic(t))
	}
	if err := s.Close(); err != nil {
		return err
	}
	for _, t := range topics {
		if err := t.measure(); err != nil {
			return err
		}
	}
	if asJSON {
		if topics == nil {
			topics = []*topicInfo{} // [] rather than null
		}
		return writeJSON(stdout, struct {
			Dir    string       `json:"dir"`
			Topics []*topicInfo `json:"topics"`
		}{dir, topics})
	}
	return printTopics(stdout, dir, topics)
}

// describeTopic reads a topic's configuration and offsets from the open
// stream; measure adds the sizes once it is closed.
func describeTopic(t *stream.Topic) *topicInfo {
	info := &topicInfo{Name: t.Name(), Config: configJSON(t.Config())}
	for i := range t.NumPartitions() {
		p, err := t.Partition(int32(i))
		if err != nil {
			continue // cannot happen: i < NumPartitions
		}
		start, hw := p.StartOffset(), p.HighWatermark()
		info.Partitions = append(info.Partitions, partitionInfo{
			Partition: p.ID(), StartOffset: start, HighWatermark: hw, Records: hw - start, dir: p.Dir(),
		})
	}
	return info
}

// measure counts each partition's segments and sums their files' sizes.
func (t *topicInfo) measure() error {
	for i := range t.Partitions {
		p := &t.Partitions[i]
		entries, err := os.ReadDir(p.dir)
		if err != nil {
			return err
		}
		p.Segments, p.LogBytes, p.Bytes = 0, 0, 0
		for _, e := range entries {
			ext := filepath.Ext(e.Name())
			if _, err := strconv.ParseUint(strings.TrimSuffix(e.Name(), ext), 10, 64); err != nil || !e.Type().IsRegular() {
				continue
			}
			switch ext {
			case ".log", ".index", ".timeindex":
			default:
				continue
			}
			fi, err := e.Info()
			if err != nil {
				return err
			}
			p.Bytes += fi.Size()
			if ext == ".log" {
				p.Segments++
				p.LogBytes += fi.Size()
			}
		}
	}
	return nil
}

// totals sums the topic's partitions.
func (t *topicInfo) totals() (records int64, segments int, bytes int64) {
	for _, p := range t.Partitions {
		records += p.Records
		segments += p.Segments
		bytes += p.Bytes
	}
	return records, segments, bytes
}

func printTopics(w io.Writer, dir string, topics []*topicInfo) error {
	if len(topics) == 0 {
		_, err := fmt.Fprintf(w, "no topics in %s\n", dir)
		return err
	}
	tab := newTable("topic", "partition>", "start>", "end>", "records>", "segments>", "size>")
	var records, bytes int64
	var partitions, segments int
	for _, t := range topics {
		for _, p := range t.Partitions {
			tab.add(t.Name, strconv.Itoa(int(p.Partition)), humanize.Comma(p.StartOffset), humanize.Comma(p.HighWatermark),
				humanize.Comma(p.Records), humanize.Comma(int64(p.Segments)), humanize.IBytes(uint64(p.Bytes)))
		}
		r, s, b := t.totals()
		records, segments, bytes = records+r, segments+s, bytes+b
		partitions += len(t.Partitions)
	}
	if err := tab.write(w, ""); err != nil {
		return err
	}
	_, err := fmt.Fprintf(w, "\n%s, %s, %s, %s, %s on disk\n",
		plural(len(topics), "topic"), plural(partitions, "partition"), plural(records, "record"),
		plural(segments, "segment"), humanize.IBytes(uint64(bytes)))
	return err
}

// plural formats n with the noun, adding an s unless n is 1.
func plural[N int | int64](n N, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return humanize.Comma(int64(n)) + " " + noun + "s"
}

// formatRetention prints a topic's retention for people: "7 days",
// "36h0m0s", "forever".
func formatRetention(d time.Duration) string {
	switch {
	case d < 0:
		return "forever"
	case d > 0 && d%(24*time.Hour) == 0:
		return plural(int64(d/(24*time.Hour)), "day")
	}
	return d.String()
}
