package kafkaproto

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/instream/stream"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// roundTrip sends req on rc and decodes the answer into resp.
func (rc *rawClient) roundTrip(req kmsg.Request) kmsg.Response {
	rc.t.Helper()
	rc.send(rc.frame(req))
	resp := req.ResponseKind()
	rc.read(resp)
	return resp
}

// joinGroup joins group as memberID ("" first: MEMBER_ID_REQUIRED hands
// one out) and returns the answer.
func (rc *rawClient) joinGroup(group, memberID string, session time.Duration) *kmsg.JoinGroupResponse {
	rc.t.Helper()
	for {
		req := kmsg.NewPtrJoinGroupRequest()
		req.SetVersion(5)
		req.Group, req.MemberID, req.ProtocolType = group, memberID, "consumer"
		req.SessionTimeoutMillis = int32(session.Milliseconds())
		req.RebalanceTimeoutMillis = int32(session.Milliseconds())
		p := kmsg.NewJoinGroupRequestProtocol()
		p.Name, p.Metadata = "range", []byte("meta")
		req.Protocols = append(req.Protocols, p)
		resp := rc.roundTrip(req).(*kmsg.JoinGroupResponse)
		if resp.ErrorCode != errMemberIDRequired {
			return resp
		}
		memberID = resp.MemberID
	}
}

func (rc *rawClient) syncGroup(group, memberID string, gen int32, assign map[string][]byte) *kmsg.SyncGroupResponse {
	req := kmsg.NewPtrSyncGroupRequest()
	req.SetVersion(3)
	req.Group, req.MemberID, req.Generation = group, memberID, gen
	for m, a := range assign {
		ga := kmsg.NewSyncGroupRequestGroupAssignment()
		ga.MemberID, ga.MemberAssignment = m, a
		req.GroupAssignment = append(req.GroupAssignment, ga)
	}
	return rc.roundTrip(req).(*kmsg.SyncGroupResponse)
}

func (rc *rawClient) heartbeat(group, memberID string, gen int32) int16 {
	req := kmsg.NewPtrHeartbeatRequest()
	req.SetVersion(3)
	req.Group, req.MemberID, req.Generation = group, memberID, gen
	return rc.roundTrip(req).(*kmsg.HeartbeatResponse).ErrorCode
}

func (rc *rawClient) commit(group, memberID string, gen int32, topic string, offset int64) int16 {
	req := kmsg.NewPtrOffsetCommitRequest()
	req.SetVersion(7)
	req.Group, req.MemberID, req.Generation = group, memberID, gen
	rt := kmsg.NewOffsetCommitRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewOffsetCommitRequestTopicPartition()
	rp.Offset = offset
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	return rc.roundTrip(req).(*kmsg.OffsetCommitResponse).Topics[0].Partitions[0].ErrorCode
}

// TestGroupProtocol: the leader's assignment reaches each member; a
// member that stops heartbeating is evicted after its session timeout
// and the other is told to rejoin; a commit from the old generation is
// refused and changes nothing.
func TestGroupProtocol(t *testing.T) {
	s, addr := startServer(t, Config{})
	if _, err := s.CreateTopic("t", stream.TopicConfig{}); err != nil {
		t.Fatal(err)
	}
	a, b := dial(t, addr), dial(t, addr)
	ja := a.joinGroup("g", "", time.Second)
	if ja.ErrorCode != 0 || ja.LeaderID != ja.MemberID || ja.Generation != 1 {
		t.Fatalf("first join: %+v", ja)
	}
	if sa := a.syncGroup("g", ja.MemberID, 1, map[string][]byte{ja.MemberID: []byte("all")}); sa.ErrorCode != 0 || string(sa.MemberAssignment) != "all" {
		t.Fatalf("leader sync: %+v", sa)
	}
	// b joins: a learns of the rebalance from its heartbeat and rejoins.
	joined := make(chan *kmsg.JoinGroupResponse, 1)
	go func() { joined <- b.joinGroup("g", "", time.Second) }()
	deadline := time.Now().Add(10 * time.Second)
	for a.heartbeat("g", ja.MemberID, 1) != errRebalanceInProgress {
		if time.Now().After(deadline) {
			t.Fatal("the leader was never told to rejoin")
		}
		time.Sleep(10 * time.Millisecond)
	}
	ja2 := a.joinGroup("g", ja.MemberID, time.Second)
	jb := <-joined
	if ja2.ErrorCode != 0 || jb.ErrorCode != 0 || ja2.Generation != 2 || jb.Generation != 2 {
		t.Fatalf("rejoin: %+v / %+v", ja2, jb)
	}
	if ja2.LeaderID != ja.MemberID || len(ja2.Members) != 2 || len(jb.Members) != 0 {
		t.Fatalf("the leader gets the members, the follower not: %d, %d", len(ja2.Members), len(jb.Members))
	}
	synced := make(chan *kmsg.SyncGroupResponse, 1)
	go func() { synced <- b.syncGroup("g", jb.MemberID, 2, nil) }()
	a.syncGroup("g", ja.MemberID, 2, map[string][]byte{ja.MemberID: []byte("A"), jb.MemberID: []byte("B")})
	if sb := <-synced; sb.ErrorCode != 0 || string(sb.MemberAssignment) != "B" {
		t.Fatalf("follower sync: %+v", sb)
	}
	if code := a.commit("g", ja.MemberID, 1, "t", 5); code != errIllegalGeneration {
		t.Fatalf("a commit from generation 1: %d, want ILLEGAL_GENERATION", code)
	}
	if code := b.commit("g", jb.MemberID, 2, "t", 0); code != 0 {
		t.Fatalf("a commit from generation 2: %d", code)
	}
	// a goes silent; b keeps heartbeating until told to rejoin.
	for code := b.heartbeat("g", jb.MemberID, 2); code != errRebalanceInProgress; code = b.heartbeat("g", jb.MemberID, 2) {
		if code != 0 || time.Now().After(deadline.Add(10*time.Second)) {
			t.Fatalf("heartbeat: %d; the silent member was never evicted", code)
		}
		time.Sleep(50 * time.Millisecond)
	}
	jb3 := b.joinGroup("g", jb.MemberID, time.Second)
	if jb3.ErrorCode != 0 || jb3.LeaderID != jb.MemberID || len(jb3.Members) != 1 {
		t.Fatalf("after the eviction: %+v", jb3)
	}
	if code := a.heartbeat("g", ja.MemberID, 2); code != errUnknownMemberID {
		t.Fatalf("the evicted member's heartbeat: %d, want UNKNOWN_MEMBER_ID", code)
	}
}

// TestGroupSharedWithGoAPI: a Kafka member cannot join a group the Go
// API's members hold; offsets committed over the wire are the Go API's.
func TestGroupSharedWithGoAPI(t *testing.T) {
	s, addr := startServer(t, Config{})
	if _, err := s.CreateTopic("t", stream.TopicConfig{}); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	g, err := s.ConsumerGroup("go", stream.GroupConfig{Topics: []string{"t"}})
	if err != nil {
		t.Fatal(err)
	}
	c, err := g.Join(ctx, stream.ConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	rc := dial(t, addr)
	for _, bad := range []string{"", "a group", "..", strings.Repeat("g", 250)} {
		if j := rc.joinGroup(bad, "", time.Second); j.ErrorCode != errInvalidGroupID {
			t.Errorf("join %q: %d, want INVALID_GROUP_ID", bad, j.ErrorCode)
		}
		if code := rc.commit(bad, "", -1, "t", 0); code != errInvalidGroupID {
			t.Errorf("commit to %q: %d, want INVALID_GROUP_ID", bad, code)
		}
	}
	if j := rc.joinGroup("go", "", time.Second); j.ErrorCode != errInconsistentGroupProto {
		t.Fatalf("join beside a Go API member: %d, want INCONSISTENT_GROUP_PROTOCOL", j.ErrorCode)
	}
	if code := rc.commit("go", "", -1, "t", 0); code != errInconsistentGroupProto {
		t.Fatalf("commit beside a Go API member: %d, want INCONSISTENT_GROUP_PROTOCOL", code)
	}
	c.Close()
	if code := rc.commit("go", "", -1, "t", 0); code != 0 {
		t.Fatalf("commit once the Go API member left: %d", code)
	}
	committed, err := g.Committed(ctx)
	if err != nil || committed[stream.TopicPartition{Topic: "t"}] != 0 || len(committed) != 1 {
		t.Fatalf("Go API sees %v, %v", committed, err)
	}
	fetch := kmsg.NewPtrOffsetFetchRequest()
	fetch.SetVersion(5)
	fetch.Group = "go"
	resp := rc.roundTrip(fetch).(*kmsg.OffsetFetchResponse)
	if len(resp.Topics) != 1 || resp.Topics[0].Partitions[0].Offset != 0 {
		t.Fatalf("OffsetFetch of every partition: %+v", resp.Topics)
	}
}
