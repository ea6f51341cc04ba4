package main

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/instream/stream"
)

// TestGroupsShowsShareGroups: groups lists share groups after the
// consumer groups, with their state per partition, alone when named.
func TestGroupsShowsShareGroups(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	mustRun(t, "create", "-dir", dir, "-partitions", "2", "t")
	fillTopic(t, dir, "t", 1, 3)
	s, err := stream.Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	g, err := s.ShareGroup("jobs", stream.ShareGroupConfig{Topics: []string{"t"}, StartAt: stream.StartEarliest})
	if err != nil {
		t.Fatal(err)
	}
	m, err := g.Join(context.Background(), stream.ShareMemberConfig{MaxPollRecords: 2, FetchMaxWait: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	recs, err := m.Poll(context.Background()) // the first member starts at partition 1
	if err != nil || len(recs) != 2 {
		t.Fatalf("poll: %d records, %v", len(recs), err)
	}
	if err := m.Accept(context.Background(), recs[0]); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	out := mustRun(t, "groups", "-dir", dir)
	t.Logf("groups:\n%s", out)
	rows := fields(out)
	if len(rows) != 5 || strings.Join(rows[0], " ") != "no consumer groups in "+dir ||
		strings.Join(rows[1], " ") != "share group jobs: topics [t], 0 members, backlog 5" ||
		strings.Join(rows[3], " ") != "t 0 0 3 0 0 3 0 0 0" || strings.Join(rows[4], " ") != "t 1 1 3 0 0 2 1 0 0" {
		t.Errorf("groups with a share group:\n%s", out)
	}
	if named := mustRun(t, "groups", "-dir", dir, "jobs"); !strings.HasPrefix(named, "share group jobs:") {
		t.Errorf("groups jobs:\n%s", named)
	}
	var rep struct {
		ShareGroups []shareGroupInfo `json:"share_groups"`
	}
	if err := json.Unmarshal([]byte(mustRun(t, "groups", "-dir", dir, "-json")), &rep); err != nil {
		t.Fatal(err)
	}
	if len(rep.ShareGroups) != 1 || rep.ShareGroups[0].Backlog != 5 || rep.ShareGroups[0].Partitions[1].Accepted != 1 {
		t.Errorf("groups -json: %+v", rep)
	}
}
