package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/instream/stream"
)

var createCommand = &command{
	name:    "create",
	args:    "TOPIC",
	summary: "create a topic",
	help: `Create creates a topic in the directory (making the directory if it does
not exist) and prints its configuration. Flags may follow the topic name.

-retention takes a Go duration ("36h", "90m"), a number of days ("7d") or
"forever"; -retention-bytes and -segment-bytes take sizes ("64MiB", "1 GB",
"4096"). Left out, they take the library's defaults: 7 days, unlimited,
and the stream's segment size (128 MiB unless the program sets another).`,
}

func init() { createCommand.run = runCreate }

func runCreate(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
	var (
		dir    string
		cfg    stream.TopicConfig
		asJSON bool
	)
	fs := createCommand.newFlagSet(stderr, &dir)
	fs.IntVar(&cfg.Partitions, "partitions", 1, "number of partitions")
	fs.Var((*retentionFlag)(&cfg.Retention), "retention", "delete segments older than this `duration` (\"7d\", \"36h\", \"forever\"); default 7 days")
	fs.TextVar(&cfg.RetentionBytes, "retention-bytes", stream.ByteSize(0), "keep each partition under this `size` (0: unlimited)")
	fs.TextVar(&cfg.SegmentBytes, "segment-bytes", stream.ByteSize(0), "roll segments at this `size` (0: the stream's default)")
	fs.BoolVar(&asJSON, "json", false, "print the topic as JSON")
	names, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(names) != 1 {
		return usageError(fs, "want one topic name, got %d arguments", len(names))
	}
	if cfg.Partitions < 1 {
		return usageError(fs, "-partitions %d: must be 1 or more", cfg.Partitions)
	}

	s, err := stream.Open(dir, nil)
	if err != nil {
		return err
	}
	t, err := s.CreateTopic(names[0], cfg)
	if err != nil {
		s.Close()
		if errors.Is(err, stream.ErrInvalidName) || errors.Is(err, stream.ErrInvalidConfig) {
			return usageError(fs, "%v", err)
		}
		return err
	}
	info := describeTopic(t)
	if err := s.Close(); err != nil {
		return err
	}
	if err := info.measure(); err != nil {
		return err
	}
	if asJSON {
		return writeJSON(stdout, info)
	}
	c := t.Config()
	segment := "the stream's default"
	if c.SegmentBytes != 0 {
		segment = c.SegmentBytes.String()
	}
	limit := "unlimited"
	if c.RetentionBytes != 0 {
		limit = c.RetentionBytes.String() + " a partition"
	}
	_, err = fmt.Fprintf(stdout, "created topic %s in %s: %s, retention %s, retention bytes %s, segments of %s\n",
		t.Name(), dir, plural(t.NumPartitions(), "partition"), formatRetention(c.Retention), limit, segment)
	return err
}

// retentionFlag is a topic's retention as a flag: a Go duration, a number
// of days ("7d") or "forever".
type retentionFlag time.Duration

func (f *retentionFlag) String() string {
	if f == nil || *f == 0 {
		return ""
	}
	return formatRetention(time.Duration(*f))
}

func (f *retentionFlag) Set(s string) error {
	switch {
	case s == "forever" || s == "-1":
		*f = retentionFlag(-1)
		return nil
	case strings.HasSuffix(s, "d"):
		days, err := strconv.ParseUint(strings.TrimSuffix(s, "d"), 10, 16)
		if err != nil || days == 0 {
			return fmt.Errorf("want a positive whole number of days, a duration or forever")
		}
		*f = retentionFlag(time.Duration(days) * 24 * time.Hour)
		return nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return fmt.Errorf("want a positive duration (\"36h\"), days (\"7d\") or forever")
	}
	*f = retentionFlag(d)
	return nil
}
