package main

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/instream/stream"
	"github.com/instream/stream/debughttp"
)

// A running process's page (package debughttp, "stream serve -http")
// read as the commands read a directory: -url URL in topics, groups and
// consume. The directory lock keeps the commands out of a directory in
// use; the page's JSON is how they look into it.

// urlFlagUsage is the -url flag's help, the same in every command.
const urlFlagUsage = "read from the debug page at `URL` of a running process (http://127.0.0.1:8080/debug/stream) instead of -dir"

// remote is a debug page's JSON, read over HTTP.
type remote struct {
	base *url.URL
	hc   *http.Client
}

func newRemote(raw string) (*remote, error) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("-url %q: want http://HOST:PORT/debug/stream", raw)
	}
	return &remote{base: u, hc: &http.Client{Timeout: 30 * time.Second}}, nil
}

// get decodes the JSON of the page's view with query q into v.
func (r *remote) get(ctx context.Context, q url.Values, v any) error {
	u := *r.base
	q.Set("format", "json")
	u.RawQuery = q.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return err
	}
	resp, err := r.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 256<<20))
	if err != nil {
		return fmt.Errorf("%s: %w", r.base, err)
	}
	if resp.StatusCode != http.StatusOK {
		var e struct{ Error string }
		if json.Unmarshal(body, &e) == nil && e.Error != "" {
			return fmt.Errorf("%s: %s", r.base, e.Error)
		}
		return fmt.Errorf("%s: %s: %s", r.base, resp.Status, strings.TrimSpace(string(body)))
	}
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("%s: not a debug page's JSON: %w", r.base, err)
	}
	return nil
}

func (r *remote) metrics(ctx context.Context) (stream.Metrics, error) {
	var o debughttp.Overview
	err := r.get(ctx, url.Values{}, &o)
	return o.Metrics, err
}

// remoteTopics is topics' view of m: sizes are the record batches' (the
// index files are not counted), configurations are unknown.
func remoteTopics(m stream.Metrics) []*topicInfo {
	var topics []*topicInfo
	for _, p := range m.Partitions {
		if len(topics) == 0 || topics[len(topics)-1].Name != p.Topic {
			topics = append(topics, &topicInfo{Name: p.Topic})
		}
		t := topics[len(topics)-1]
		t.Config.Partitions++
		t.Partitions = append(t.Partitions, partitionInfo{Partition: p.Partition, StartOffset: p.StartOffset,
			HighWatermark: p.HighWatermark, Records: p.HighWatermark - p.StartOffset, Segments: p.Segments,
			LogBytes: int64(p.Bytes), Bytes: int64(p.Bytes)})
	}
	return topics
}

// remoteGroups is groups' view of m.
func remoteGroups(m stream.Metrics) []*groupInfo {
	hw := map[stream.TopicPartition]int64{}
	for _, p := range m.Partitions {
		hw[stream.TopicPartition{Topic: p.Topic, Partition: p.Partition}] = p.HighWatermark
	}
	groups := []*groupInfo{}
	for _, g := range m.Groups {
		info := &groupInfo{Group: g.Group, Generation: g.Generation, Members: g.MemberIDs, Partitions: []groupPartitionInfo{}}
		if info.Members == nil {
			info.Members = []string{}
		}
		for _, p := range g.Partitions {
			pi := groupPartitionInfo{Topic: p.Topic, Partition: p.Partition,
				HighWatermark: hw[stream.TopicPartition{Topic: p.Topic, Partition: p.Partition}]}
			if p.Committed >= 0 {
				c, lag, at := p.Committed, p.Lag, p.CommittedAt.UTC()
				pi.Committed, pi.Lag, pi.CommittedAt = &c, &lag, &at
				info.Lag += lag
			}
			info.Partitions = append(info.Partitions, pi)
		}
		groups = append(groups, info)
	}
	return groups
}

// records reads one page of the record browser, exact bytes.
func (r *remote) records(ctx context.Context, topic string, partition int32, offset int64, at *time.Time) (*debughttp.Records, error) {
	q := url.Values{"view": {"records"}, "topic": {topic}, "partition": {strconv.Itoa(int(partition))}, "as": {"base64"}}
	if at != nil {
		q.Set("time", at.Format(time.RFC3339Nano))
	} else {
		q.Set("offset", strconv.FormatInt(offset, 10))
	}
	var page debughttp.Records
	if err := r.get(ctx, q, &page); err != nil {
		return nil, err
	}
	return &page, nil
}

// decode turns a record of the browser back into the record.
func decodeRemote(topic string, partition int32, rec debughttp.Record) (*stream.Record, error) {
	b := func(x debughttp.Bytes) ([]byte, error) {
		if x.Null {
			return nil, nil
		}
		if x.Cut {
			return nil, fmt.Errorf("%s-%d at %d: %d bytes are more than the page shows (debughttp.Options.MaxValueBytes)", topic, partition, rec.Offset, x.Len)
		}
		return base64.StdEncoding.DecodeString(x.Text)
	}
	r := &stream.Record{Topic: topic, Partition: partition, Offset: rec.Offset, Timestamp: rec.Timestamp}
	var err error
	if r.Key, err = b(rec.Key); err != nil {
		return nil, err
	}
	if r.Value, err = b(rec.Value); err != nil {
		return nil, err
	}
	for _, h := range rec.Headers {
		v, err := b(h.Value)
		if err != nil {
			return nil, err
		}
		r.Headers = append(r.Headers, stream.Header{Key: h.Key, Value: v})
	}
	return r, nil
}

// consumeRemote is consume -url: each partition (or -partition) from
// -from up to the high watermark it had at the start, or, with -follow,
// on until ctx is done, asking the page again every pollEvery.
func (c *consumer) consumeRemote(ctx context.Context, r *remote, topic string, from startFrom) error {
	m, err := r.metrics(ctx)
	if err != nil {
		return err
	}
	var parts []stream.PartitionMetrics
	for _, p := range m.Partitions {
		if p.Topic == topic && (c.cfg.partition < 0 || int(p.Partition) == c.cfg.partition) {
			parts = append(parts, p)
		}
	}
	if len(parts) == 0 {
		if c.cfg.partition >= 0 {
			return fmt.Errorf("-partition %d: no such partition of topic %s at %s", c.cfg.partition, topic, r.base)
		}
		return fmt.Errorf("topic %s: %w at %s", topic, stream.ErrUnknownTopic, r.base)
	}
	next := make([]int64, len(parts))
	for i, p := range parts {
		switch from.kind {
		case "earliest":
			next[i] = p.StartOffset
		case "latest":
			next[i] = p.HighWatermark
		case "offset":
			next[i] = min(max(from.offset, p.StartOffset), p.HighWatermark)
		case "time":
			page, err := r.records(ctx, topic, p.Partition, 0, &from.time)
			if err != nil {
				return err
			}
			next[i] = page.Offset
		}
	}
	for {
		progressed := false
		for i, p := range parts {
			end := p.HighWatermark
			for (c.cfg.follow || next[i] < end) && !c.full() {
				page, err := r.records(ctx, topic, p.Partition, next[i], nil)
				if err != nil {
					return err
				}
				for _, rec := range page.Records {
					if !c.cfg.follow && rec.Offset >= end || c.full() {
						break
					}
					sr, err := decodeRemote(topic, p.Partition, rec)
					if err != nil {
						return err
					}
					c.print(sr)
					next[i] = rec.Offset + 1
					progressed = true
				}
				if len(page.Records) == 0 {
					next[i] = max(next[i], page.Offset) // retention moved the start: go on from there
					break
				}
			}
		}
		if !c.cfg.follow || c.full() {
			return nil
		}
		if !progressed {
			if err := c.w.Flush(); err != nil {
				return err
			}
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(pollEvery):
			}
		}
	}
}

// pollEvery is how often consume -url -follow asks for new records.
const pollEvery = 500 * time.Millisecond

// topicsRemote is topics -url.
func topicsRemote(ctx context.Context, fs *flag.FlagSet, raw, alter string, asJSON bool, stdout io.Writer) error {
	if alter != "" {
		return usageError(fs, "-alter cannot be used with -url: the debug page is read-only")
	}
	r, err := newRemote(raw)
	if err != nil {
		return err
	}
	m, err := r.metrics(ctx)
	if err != nil {
		return err
	}
	topics := remoteTopics(m)
	if asJSON {
		if topics == nil {
			topics = []*topicInfo{}
		}
		return writeJSON(stdout, struct {
			URL    string       `json:"url"`
			Topics []*topicInfo `json:"topics"`
		}{raw, topics})
	}
	return printTopics(stdout, raw, topics)
}

// groupsRemote is groups -url.
func groupsRemote(ctx context.Context, raw string, names []string, asJSON bool, stdout io.Writer) error {
	r, err := newRemote(raw)
	if err != nil {
		return err
	}
	m, err := r.metrics(ctx)
	if err != nil {
		return err
	}
	groups := remoteGroups(m)
	if len(names) == 1 {
		var one []*groupInfo
		for _, g := range groups {
			if g.Group == names[0] {
				one = append(one, g)
			}
		}
		if one == nil {
			return fmt.Errorf("group %s: %w at %s", names[0], stream.ErrUnknownGroup, raw)
		}
		groups = one
	}
	if asJSON {
		return writeJSON(stdout, struct {
			URL    string       `json:"url"`
			Groups []*groupInfo `json:"groups"`
		}{raw, groups})
	}
	return printGroups(stdout, raw, groups)
}

// consumeURL is consume -url.
func consumeURL(ctx context.Context, cfg consumeConfig, topic string, from startFrom, stdout io.Writer) error {
	r, err := newRemote(cfg.url)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(stdout)
	var out recordOutput = newRecordText(w)
	if cfg.json {
		out = &recordJSON{w: w}
	}
	c := &consumer{cfg: cfg, out: out, w: w}
	err = c.consumeRemote(ctx, r, topic, from)
	c.out.end(c.printed)
	if ferr := w.Flush(); err == nil {
		err = ferr
	}
	return err
}
