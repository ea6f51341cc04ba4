package main

import (
	"context"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/dustin/go-humanize"
	"github.com/instream/stream"
)

var groupsCommand = &command{
	name:    "groups",
	args:    "[GROUP]",
	summary: "list consumer groups (members, generation, committed offsets, lag) and share groups",
	help: `Groups lists every consumer group of the directory, or only GROUP: its
generation and members, then a line per partition of each topic it has
committed offsets in:

  committed     the committed offset, the next offset the group reads;
                "-" where the group has committed nothing
  end           the partition's high watermark
  lag           end - committed: records the group has yet to read; "-"
                where nothing is committed (it depends on where a member
                starts: everything kept, or nothing)
  committed at  when the offset was committed (UTC)

Share groups follow, each with a line per partition: start (every record
below is accepted or rejected), end (the high watermark), the records in
flight (not finished in the group's window), acquired (held by a member
now), the backlog (not finished, up to end), and how many were accepted,
rejected and dead-lettered.

Members live in the process that has the directory open, and a directory
is open in one process at a time (a running one makes groups fail at once,
naming the directory), so the members listed are those of static members
still within their session, normally none. -json prints the same as JSON.

-url reads a running process instead, from its debug page (package
debughttp; "stream serve -http"): its groups, members and lag as it sees
them now.`,
}

func init() { groupsCommand.run = runGroups }

// groupInfo is one group as groups reports it.
type groupInfo struct {
	Group      string               `json:"group"`
	Generation int64                `json:"generation"`
	Members    []string             `json:"members"`
	Lag        int64                `json:"lag"` // summed over Partitions
	Partitions []groupPartitionInfo `json:"partitions"`
}

// groupPartitionInfo is a partition of a topic the group has committed
// in; Committed, Lag and CommittedAt are null where the group has
// committed nothing for it.
type groupPartitionInfo struct {
	Topic         string     `json:"topic"`
	Partition     int32      `json:"partition"`
	Committed     *int64     `json:"committed"`
	HighWatermark int64      `json:"high_watermark"`
	Lag           *int64     `json:"lag"`
	CommittedAt   *time.Time `json:"committed_at"`
}

func runGroups(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
	var dir, remoteURL string
	var asJSON bool
	fs := groupsCommand.newFlagSet(stderr, &dir)
	fs.BoolVar(&asJSON, "json", false, "print the groups as JSON")
	fs.StringVar(&remoteURL, "url", "", urlFlagUsage)
	names, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(names) > 1 {
		return usageError(fs, "want at most one group name, got %d arguments", len(names))
	}
	if remoteURL != "" {
		return groupsRemote(ctx, remoteURL, names, asJSON, stdout)
	}
	s, err := openExisting(dir)
	if err != nil {
		return err
	}
	defer s.Close()
	ids, shareIDs := s.Groups(), s.ShareGroups()
	if len(names) == 1 {
		isGroup, isShare := slices.Contains(ids, names[0]), slices.Contains(shareIDs, names[0])
		if !isGroup && !isShare {
			return fmt.Errorf("group %s: %w in %s", names[0], stream.ErrUnknownGroup, dir)
		}
		ids, shareIDs = nil, nil
		if isGroup {
			ids = names
		}
		if isShare {
			shareIDs = names
		}
	}
	shares := []*shareGroupInfo{}
	for _, id := range shareIDs {
		info, err := describeShareGroup(s, id)
		if err != nil {
			return err
		}
		shares = append(shares, info)
	}
	groups := []*groupInfo{}
	for _, id := range ids {
		info, err := describeGroup(ctx, s, id)
		if err != nil {
			return err
		}
		groups = append(groups, info)
	}
	if err := s.Close(); err != nil {
		return err
	}
	if asJSON {
		return writeJSON(stdout, struct {
			Dir         string            `json:"dir"`
			Groups      []*groupInfo      `json:"groups"`
			ShareGroups []*shareGroupInfo `json:"share_groups"`
		}{dir, groups, shares})
	}
	after := len(groups) > 0 || len(shares) == 0 || len(names) == 0
	if after {
		if err := printGroups(stdout, dir, groups); err != nil {
			return err
		}
	}
	return printShareGroups(stdout, shares, after)
}

// describeGroup reads a group's state through an admin handle (a
// ConsumerGroup opened with no Topics).
func describeGroup(ctx context.Context, s *stream.Stream, id string) (*groupInfo, error) {
	g, err := s.ConsumerGroup(id, stream.GroupConfig{})
	if err != nil {
		return nil, err
	}
	committed, err := g.CommittedWithMetadata(ctx)
	if err != nil {
		return nil, err
	}
	lag, err := g.Lag(ctx)
	if err != nil {
		return nil, err
	}
	info := &groupInfo{Group: id, Generation: g.Generation(), Members: g.Members(), Partitions: []groupPartitionInfo{}}
	if info.Members == nil {
		info.Members = []string{}
	}
	topics := map[string]bool{}
	for tp := range committed {
		topics[tp.Topic] = true
	}
	for _, name := range slices.Sorted(maps.Keys(topics)) {
		t, err := s.Topic(name)
		if err != nil {
			continue // a deleted topic: nothing to read, no lag
		}
		for i := range t.NumPartitions() {
			tp := stream.TopicPartition{Topic: name, Partition: int32(i)}
			p, err := t.Partition(tp.Partition)
			if err != nil {
				return nil, err
			}
			pi := groupPartitionInfo{Topic: name, Partition: tp.Partition, HighWatermark: p.HighWatermark()}
			if c, ok := committed[tp]; ok {
				l, at := lag[tp], c.Time.UTC()
				pi.Committed, pi.Lag, pi.CommittedAt = &c.Offset, &l, &at
				info.Lag += l
			}
			info.Partitions = append(info.Partitions, pi)
		}
	}
	return info, nil
}

func printGroups(w io.Writer, dir string, groups []*groupInfo) error {
	if len(groups) == 0 {
		_, err := fmt.Fprintf(w, "no consumer groups in %s\n", dir)
		return err
	}
	for i, g := range groups {
		if i > 0 {
			fmt.Fprintln(w)
		}
		members := "no members"
		if len(g.Members) > 0 {
			members = plural(len(g.Members), "member") + ": " + strings.Join(g.Members, ", ")
		}
		fmt.Fprintf(w, "group %s: generation %d, %s, lag %s\n", g.Group, g.Generation, members, humanize.Comma(g.Lag))
		if len(g.Partitions) == 0 {
			fmt.Fprintln(w, "  no committed offsets")
			continue
		}
		t := newTable("topic", "partition>", "committed>", "end>", "lag>", "committed at")
		for _, p := range g.Partitions {
			committed, lag, at := "-", "-", "-"
			if p.Committed != nil {
				committed, lag, at = humanize.Comma(*p.Committed), humanize.Comma(*p.Lag), formatTime(*p.CommittedAt)
			}
			t.add(p.Topic, strconv.Itoa(int(p.Partition)), committed, humanize.Comma(p.HighWatermark), lag, at)
		}
		if err := t.write(w, "  "); err != nil {
			return err
		}
	}
	return nil
}
