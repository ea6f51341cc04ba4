package main

import (
	"cmp"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"

	"github.com/dustin/go-humanize"
	"github.com/instream/stream"
)

// shareGroupInfo is one share group as groups reports it.
type shareGroupInfo struct {
	Group      string               `json:"group"`
	Topics     []string             `json:"topics"`
	Members    []string             `json:"members"`
	Backlog    int64                `json:"backlog"` // summed over Partitions
	Partitions []sharePartitionInfo `json:"partitions"`
}

// sharePartitionInfo is a share group's state on one partition.
type sharePartitionInfo struct {
	Topic        string `json:"topic"`
	Partition    int32  `json:"partition"`
	Start        int64  `json:"start"`
	End          int64  `json:"high_watermark"`
	InFlight     int    `json:"in_flight"`
	Acquired     int    `json:"acquired"`
	Backlog      int64  `json:"backlog"`
	Accepted     int64  `json:"accepted"`
	Rejected     int64  `json:"rejected"`
	DeadLettered int64  `json:"dead_lettered"`
}

// describeShareGroup reads a share group's state (opened with its stored
// configuration).
func describeShareGroup(s *stream.Stream, id string) (*shareGroupInfo, error) {
	g, err := s.ShareGroup(id, stream.ShareGroupConfig{})
	if err != nil {
		return nil, err
	}
	st, err := g.Stats()
	if err != nil {
		return nil, err
	}
	info := &shareGroupInfo{Group: id, Topics: g.Config().Topics, Members: g.Members(), Partitions: []sharePartitionInfo{}}
	if info.Members == nil {
		info.Members = []string{}
	}
	for _, tp := range slices.SortedFunc(maps.Keys(st), func(a, b stream.TopicPartition) int {
		return cmp.Or(cmp.Compare(a.Topic, b.Topic), cmp.Compare(a.Partition, b.Partition))
	}) {
		p := st[tp]
		info.Backlog += p.Backlog
		info.Partitions = append(info.Partitions, sharePartitionInfo{Topic: tp.Topic, Partition: tp.Partition,
			Start: p.StartOffset, End: p.HighWatermark, InFlight: p.InFlight, Acquired: p.Acquired, Backlog: p.Backlog,
			Accepted: p.Accepted, Rejected: p.Rejected, DeadLettered: p.DeadLettered})
	}
	return info, nil
}

// printShareGroups prints share groups, after a blank line if more is
// printed before.
func printShareGroups(w io.Writer, groups []*shareGroupInfo, after bool) error {
	for i, g := range groups {
		if after || i > 0 {
			fmt.Fprintln(w)
		}
		fmt.Fprintf(w, "share group %s: topics %v, %s, backlog %s\n", g.Group, g.Topics, plural(len(g.Members), "member"), humanize.Comma(g.Backlog))
		t := newTable("topic", "partition>", "start>", "end>", "in flight>", "acquired>", "backlog>", "accepted>", "rejected>", "dead-lettered>")
		for _, p := range g.Partitions {
			t.add(p.Topic, strconv.Itoa(int(p.Partition)), humanize.Comma(p.Start), humanize.Comma(p.End), strconv.Itoa(p.InFlight),
				strconv.Itoa(p.Acquired), humanize.Comma(p.Backlog), humanize.Comma(p.Accepted), humanize.Comma(p.Rejected), humanize.Comma(p.DeadLettered))
		}
		if err := t.write(w, "  "); err != nil {
			return err
		}
	}
	return nil
}
