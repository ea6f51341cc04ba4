package kafkaproto

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/instream/stream"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// The group coordinator of Kafka's classic protocol: members join
// (JoinGroup), the coordinator picks a leader and a protocol, the leader
// computes the assignment on the client side and hands it over in its
// SyncGroup, the others receive theirs in theirs; Heartbeat keeps a
// member's session and tells it when to rejoin. Committed offsets go to
// the Stream (ConsumerGroup.StoreOffsets), where the Go API sees them.

type groupState int

const (
	stateEmpty groupState = iota
	statePreparing
	stateCompleting
	stateStable
)

func (s groupState) String() string {
	return [...]string{"Empty", "PreparingRebalance", "CompletingRebalance", "Stable"}[s]
}

const (
	minSessionTimeout = time.Second
	maxSessionTimeout = 30 * time.Minute
	// janitorEvery is how often sessions and rebalance timeouts are checked.
	janitorEvery = 100 * time.Millisecond
)

// coordinator holds the wire-protocol groups of one Serve.
type coordinator struct {
	srv *server
	// mu guards groups and every field of every wgroup and wmember. It
	// is held across an offset commit's write, so a member fenced by a
	// rebalance cannot commit after it.
	mu     sync.Mutex
	groups map[string]*wgroup
}

type wgroup struct {
	id           string
	state        groupState
	generation   int32
	protocolType string
	protocol     string
	leader       string
	members      map[string]*wmember
	pending      map[string]time.Time // member IDs handed out by MEMBER_ID_REQUIRED, not yet joined
	joinDeadline time.Time            // while preparing: the rebalance completes then, without the laggards
}

type wmember struct {
	id, instanceID       string
	clientID, clientHost string
	session, rebalance   time.Duration
	protocols            []kmsg.JoinGroupRequestProtocol
	assignment           []byte
	joined               bool                         // joined the rebalance in progress
	joinWait             chan *kmsg.JoinGroupResponse // its JoinGroup waiting; nil otherwise
	joinVersion          int16
	syncWait             chan syncResult // its SyncGroup waiting; nil otherwise
	deadline             time.Time       // its session expires then
}

type syncResult struct {
	code       int16
	assignment []byte
}

func newCoordinator(srv *server) *coordinator {
	return &coordinator{srv: srv, groups: map[string]*wgroup{}}
}

// run expires sessions and completes timed-out rebalances until ctx ends.
func (c *coordinator) run(ctx context.Context) {
	t := time.NewTicker(janitorEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			c.mu.Lock()
			for _, g := range c.groups {
				c.tickLocked(g, now)
			}
			c.mu.Unlock()
		}
	}
}

func (c *coordinator) tickLocked(g *wgroup, now time.Time) {
	for id, at := range g.pending {
		if now.Sub(at) > maxSessionTimeout {
			delete(g.pending, id)
		}
	}
	if g.state == statePreparing && now.After(g.joinDeadline) {
		for id, m := range g.members {
			if !m.joined {
				c.srv.log.Info("kafka group member did not rejoin in time", "group", g.id, "member", id)
				delete(g.members, id)
			}
		}
		c.completeLocked(g)
	}
	expired := false
	for id, m := range g.members {
		if m.joinWait == nil && now.After(m.deadline) {
			c.srv.log.Info("kafka group member session expired", "group", g.id, "member", id)
			c.removeLocked(g, m)
			expired = true
		}
	}
	if expired {
		c.rebalanceLocked(g, now)
	}
	if g.state == stateEmpty && len(g.members) == 0 && len(g.pending) == 0 {
		delete(c.groups, g.id)
	}
}

// removeLocked drops m from g, answering its waiting SyncGroup.
func (c *coordinator) removeLocked(g *wgroup, m *wmember) {
	delete(g.members, m.id)
	if m.syncWait != nil {
		m.syncWait <- syncResult{code: errUnknownMemberID}
		m.syncWait = nil
	}
	if m.joinWait != nil {
		r := kmsg.NewPtrJoinGroupResponse()
		r.SetVersion(m.joinVersion)
		r.ErrorCode, r.Generation = errUnknownMemberID, -1
		m.joinWait <- r
		m.joinWait = nil
	}
}

// rebalanceLocked starts a rebalance after membership changed: every
// member must rejoin (they learn it from Heartbeat), or the group is
// empty.
func (c *coordinator) rebalanceLocked(g *wgroup, now time.Time) {
	if len(g.members) == 0 {
		if g.state != stateEmpty {
			g.generation++
		}
		g.state, g.leader, g.protocol = stateEmpty, "", ""
		return
	}
	if g.state == statePreparing {
		if c.allJoinedLocked(g) {
			c.completeLocked(g)
		}
		return
	}
	g.state = statePreparing
	var longest time.Duration
	for _, m := range g.members {
		m.joined = false
		longest = max(longest, m.rebalance)
		if m.syncWait != nil {
			m.syncWait <- syncResult{code: errRebalanceInProgress}
			m.syncWait = nil
		}
	}
	g.joinDeadline = now.Add(longest)
}

func (c *coordinator) allJoinedLocked(g *wgroup) bool {
	for _, m := range g.members {
		if !m.joined {
			return false
		}
	}
	return true
}

// completeLocked ends the join phase: a new generation, a protocol every
// member supports, a leader, and an answer to every waiting JoinGroup.
func (c *coordinator) completeLocked(g *wgroup) {
	if len(g.members) == 0 {
		c.rebalanceLocked(g, time.Now())
		return
	}
	g.generation++
	ids := slices.Sorted(maps.Keys(g.members))
	if g.members[g.leader] == nil {
		g.leader = ids[0]
	}
	g.protocol = ""
	for _, p := range g.members[g.leader].protocols {
		if c.everyoneSupportsLocked(g, p.Name) {
			g.protocol = p.Name
			break
		}
	}
	g.state = stateCompleting
	now := time.Now()
	for _, id := range ids {
		m := g.members[id]
		m.deadline = now.Add(m.session)
		m.assignment = nil
		if m.joinWait == nil {
			continue
		}
		r := kmsg.NewPtrJoinGroupResponse()
		r.SetVersion(m.joinVersion)
		r.Generation, r.LeaderID, r.MemberID = g.generation, g.leader, id
		r.Protocol, r.ProtocolType = kmsg.StringPtr(g.protocol), kmsg.StringPtr(g.protocolType)
		if id == g.leader {
			for _, mid := range ids {
				o := g.members[mid]
				jm := kmsg.NewJoinGroupResponseMember()
				jm.MemberID = mid
				if o.instanceID != "" {
					jm.InstanceID = kmsg.StringPtr(o.instanceID)
				}
				for _, p := range o.protocols {
					if p.Name == g.protocol {
						jm.ProtocolMetadata = p.Metadata
					}
				}
				r.Members = append(r.Members, jm)
			}
		}
		m.joinWait <- r
		m.joinWait = nil
	}
}

func (c *coordinator) everyoneSupportsLocked(g *wgroup, protocol string) bool {
	for _, m := range g.members {
		if !slices.ContainsFunc(m.protocols, func(p kmsg.JoinGroupRequestProtocol) bool { return p.Name == protocol }) {
			return false
		}
	}
	return true
}

// goGroupBusy reports whether members that joined through the Go API are
// in group id: the two protocols cannot share one generation.
func (c *coordinator) goGroupBusy(id string) bool {
	if !slices.Contains(c.srv.s.Groups(), id) {
		return false
	}
	g, err := c.srv.s.ConsumerGroup(id, stream.GroupConfig{})
	return err == nil && g.HasMembers()
}

// validGroupID reports whether id is a name the Stream takes for a group
// (where its offsets are kept): Kafka's rule for topic names, 1–249 of
// [a-zA-Z0-9._-], not "." or "..". Kafka itself takes any group ID; one
// outside the rule gets INVALID_GROUP_ID here.
func validGroupID(id string) bool {
	if id == "" || len(id) > 249 || id == "." || id == ".." {
		return false
	}
	for _, c := range id {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

func newMemberID(clientID string) string {
	var b [8]byte
	rand.Read(b[:])
	return clientID + "-" + hex.EncodeToString(b[:])
}

func (c *coordinator) join(ctx context.Context, h *handler, req *kmsg.JoinGroupRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.JoinGroupResponse)
	resp.Generation = -1
	session := time.Duration(req.SessionTimeoutMillis) * time.Millisecond
	rebalance := session
	if req.Version >= 1 {
		rebalance = time.Duration(req.RebalanceTimeoutMillis) * time.Millisecond
	}
	switch {
	case !validGroupID(req.Group):
		resp.ErrorCode = errInvalidGroupID
		return resp
	case session < minSessionTimeout || session > maxSessionTimeout:
		resp.ErrorCode = errInvalidSessionTimeout
		return resp
	case len(req.Protocols) == 0 || req.ProtocolType == "":
		resp.ErrorCode = errInconsistentGroupProto
		return resp
	case c.goGroupBusy(req.Group):
		c.srv.log.Info("kafka JoinGroup refused: Go API members are in the group", "group", req.Group)
		resp.ErrorCode = errInconsistentGroupProto
		return resp
	}
	rebalance = min(max(rebalance, session), maxSessionTimeout)
	c.mu.Lock()
	g := c.groups[req.Group]
	if g == nil {
		g = &wgroup{id: req.Group, members: map[string]*wmember{}, pending: map[string]time.Time{}}
		c.groups[req.Group] = g
	}
	if len(g.members) > 0 && req.ProtocolType != g.protocolType {
		c.mu.Unlock()
		resp.ErrorCode = errInconsistentGroupProto
		return resp
	}
	id := req.MemberID
	m := g.members[id]
	if id == "" {
		id = newMemberID(h.clientID)
		if req.Version >= 4 {
			g.pending[id] = time.Now()
			c.mu.Unlock()
			resp.ErrorCode, resp.MemberID = errMemberIDRequired, id
			return resp
		}
	} else if m == nil {
		if _, ok := g.pending[id]; !ok {
			c.mu.Unlock()
			resp.ErrorCode, resp.MemberID = errUnknownMemberID, id
			return resp
		}
	}
	delete(g.pending, id)
	if m == nil {
		m = &wmember{id: id}
		g.members[id] = m
	}
	if m.joinWait != nil { // a duplicate join on another connection: the old one is superseded
		r := kmsg.NewPtrJoinGroupResponse()
		r.SetVersion(m.joinVersion)
		r.ErrorCode, r.Generation = errUnknownMemberID, -1
		m.joinWait <- r
	}
	m.clientID, m.clientHost = h.clientID, h.host
	if req.InstanceID != nil {
		m.instanceID = *req.InstanceID
	}
	m.session, m.rebalance = session, rebalance
	m.protocols = slices.Clone(req.Protocols)
	if len(g.members) == 1 {
		g.protocolType = req.ProtocolType
	}
	if !c.everyoneSupportsAnyLocked(g) {
		delete(g.members, id)
		c.mu.Unlock()
		resp.ErrorCode = errInconsistentGroupProto
		return resp
	}
	wait := make(chan *kmsg.JoinGroupResponse, 1)
	m.joinWait, m.joinVersion, m.joined = wait, req.Version, true
	if g.state != statePreparing {
		c.rebalanceLocked(g, time.Now())
		m.joined = true
	}
	if c.allJoinedLocked(g) {
		c.completeLocked(g)
	}
	c.mu.Unlock()
	select {
	case r := <-wait:
		return r
	case <-ctx.Done():
		resp.ErrorCode = errRebalanceInProgress
		return resp
	}
}

// everyoneSupportsAnyLocked reports whether one protocol is common to
// every member.
func (c *coordinator) everyoneSupportsAnyLocked(g *wgroup) bool {
	for _, m := range g.members {
		for _, p := range m.protocols {
			if c.everyoneSupportsLocked(g, p.Name) {
				return true
			}
		}
		return false
	}
	return true
}

// memberLocked finds the member a request names and checks its
// generation; a nonzero code says why it cannot go on.
func (c *coordinator) memberLocked(group, id string, generation int32) (*wgroup, *wmember, int16) {
	g := c.groups[group]
	if g == nil {
		return nil, nil, errUnknownMemberID
	}
	m := g.members[id]
	if m == nil {
		return g, nil, errUnknownMemberID
	}
	if generation != g.generation {
		return g, m, errIllegalGeneration
	}
	return g, m, 0
}

func (c *coordinator) sync(ctx context.Context, req *kmsg.SyncGroupRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.SyncGroupResponse)
	c.mu.Lock()
	g, m, code := c.memberLocked(req.Group, req.MemberID, req.Generation)
	if code == 0 && g.state == statePreparing {
		code = errRebalanceInProgress
	}
	if code != 0 {
		c.mu.Unlock()
		resp.ErrorCode = code
		return resp
	}
	resp.ProtocolType, resp.Protocol = kmsg.StringPtr(g.protocolType), kmsg.StringPtr(g.protocol)
	m.deadline = time.Now().Add(m.session)
	if g.state == stateStable {
		resp.MemberAssignment = m.assignment
		c.mu.Unlock()
		return resp
	}
	if m.id == g.leader {
		for _, a := range req.GroupAssignment {
			if o := g.members[a.MemberID]; o != nil {
				o.assignment = a.MemberAssignment
			}
		}
		g.state = stateStable
		for _, o := range g.members {
			if o.syncWait != nil {
				o.syncWait <- syncResult{assignment: o.assignment}
				o.syncWait = nil
			}
		}
		resp.MemberAssignment = m.assignment
		c.mu.Unlock()
		return resp
	}
	wait := make(chan syncResult, 1)
	if m.syncWait != nil {
		m.syncWait <- syncResult{code: errRebalanceInProgress}
	}
	m.syncWait = wait
	c.mu.Unlock()
	select {
	case r := <-wait:
		resp.ErrorCode, resp.MemberAssignment = r.code, r.assignment
	case <-ctx.Done():
		resp.ErrorCode = errRebalanceInProgress
	}
	return resp
}

func (c *coordinator) heartbeat(req *kmsg.HeartbeatRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.HeartbeatResponse)
	c.mu.Lock()
	defer c.mu.Unlock()
	g, m, code := c.memberLocked(req.Group, req.MemberID, req.Generation)
	if code == 0 {
		m.deadline = time.Now().Add(m.session)
		if g.state == statePreparing {
			code = errRebalanceInProgress
		}
	}
	resp.ErrorCode = code
	return resp
}

func (c *coordinator) leave(req *kmsg.LeaveGroupRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.LeaveGroupResponse)
	ids := []string{req.MemberID}
	if req.Version >= 3 {
		ids = ids[:0]
		for _, m := range req.Members {
			ids = append(ids, m.MemberID)
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	g := c.groups[req.Group]
	left := false
	for i, id := range ids {
		code := errUnknownMemberID
		if g != nil {
			if m := g.members[id]; m != nil {
				c.removeLocked(g, m)
				code, left = 0, true
			}
		}
		if req.Version >= 3 {
			rm := kmsg.NewLeaveGroupResponseMember()
			rm.MemberID, rm.InstanceID, rm.ErrorCode = id, req.Members[i].InstanceID, code
			resp.Members = append(resp.Members, rm)
		} else {
			resp.ErrorCode = code
		}
	}
	if left {
		c.rebalanceLocked(g, time.Now())
	}
	return resp
}

// engineGroup returns the Stream's group id, for its committed offsets.
func (c *coordinator) engineGroup(id string) (*stream.ConsumerGroup, error) {
	return c.srv.s.ConsumerGroup(id, stream.GroupConfig{})
}

func (c *coordinator) offsetCommit(ctx context.Context, req *kmsg.OffsetCommitRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.OffsetCommitResponse)
	c.mu.Lock()
	defer c.mu.Unlock()
	var code int16
	if req.Version == 0 || (req.Generation < 0 && req.MemberID == "") {
		// A commit outside any generation (kadm, a consumer that assigns
		// itself): allowed while the group has no wire members.
		if g := c.groups[req.Group]; g != nil && len(g.members) > 0 {
			code = errUnknownMemberID
		}
	} else {
		var g *wgroup
		var m *wmember
		g, m, code = c.memberLocked(req.Group, req.MemberID, req.Generation)
		if code == 0 && g.state == statePreparing {
			code = errRebalanceInProgress
		}
		if code == 0 {
			m.deadline = time.Now().Add(m.session)
		}
	}
	if !validGroupID(req.Group) {
		code = errInvalidGroupID
	}
	codes := map[stream.TopicPartition]int16{}
	offs := map[stream.TopicPartition]stream.OffsetAndMetadata{}
	for _, rt := range req.Topics {
		t, terr := c.srv.s.Topic(rt.Topic)
		for _, rp := range rt.Partitions {
			tp := stream.TopicPartition{Topic: rt.Topic, Partition: rp.Partition}
			switch {
			case code != 0:
				codes[tp] = code
			case terr != nil || rp.Partition < 0 || int(rp.Partition) >= t.NumPartitions():
				codes[tp] = errUnknownTopicOrPartition
			default:
				o := stream.OffsetAndMetadata{Offset: rp.Offset}
				if rp.Metadata != nil {
					o.Metadata = *rp.Metadata
				}
				offs[tp] = o
			}
		}
	}
	if len(offs) > 0 {
		var err error
		if cg, gerr := c.engineGroup(req.Group); gerr != nil {
			err = gerr
		} else {
			err = cg.StoreOffsets(ctx, offs)
		}
		if err != nil {
			ec := errorCode(err)
			if errors.Is(err, stream.ErrGroupNotEmpty) {
				ec = errInconsistentGroupProto // Go API members hold the group
			}
			c.srv.log.Info("kafka offset commit failed", "group", req.Group, "error", err)
			for tp := range offs {
				codes[tp] = ec
			}
		}
	}
	for _, rt := range req.Topics {
		out := kmsg.NewOffsetCommitResponseTopic()
		out.Topic = rt.Topic
		for _, rp := range rt.Partitions {
			po := kmsg.NewOffsetCommitResponseTopicPartition()
			po.Partition = rp.Partition
			po.ErrorCode = codes[stream.TopicPartition{Topic: rt.Topic, Partition: rp.Partition}]
			out.Partitions = append(out.Partitions, po)
		}
		resp.Topics = append(resp.Topics, out)
	}
	return resp
}

func (c *coordinator) offsetFetch(ctx context.Context, req *kmsg.OffsetFetchRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.OffsetFetchResponse)
	committed := map[stream.TopicPartition]stream.OffsetAndMetadata{}
	if slices.Contains(c.srv.s.Groups(), req.Group) {
		cg, err := c.engineGroup(req.Group)
		if err == nil {
			committed, err = cg.CommittedWithMetadata(ctx)
		}
		if err != nil {
			resp.ErrorCode = errorCode(err)
			return resp
		}
	}
	topics := req.Topics
	if topics == nil { // v2+: every committed partition
		byTopic := map[string][]int32{}
		for tp := range committed {
			byTopic[tp.Topic] = append(byTopic[tp.Topic], tp.Partition)
		}
		for _, t := range slices.Sorted(maps.Keys(byTopic)) {
			topics = append(topics, kmsg.OffsetFetchRequestTopic{Topic: t, Partitions: slices.Sorted(slices.Values(byTopic[t]))})
		}
	}
	for _, rt := range topics {
		out := kmsg.NewOffsetFetchResponseTopic()
		out.Topic = rt.Topic
		for _, p := range rt.Partitions {
			po := kmsg.NewOffsetFetchResponseTopicPartition()
			po.Partition, po.Offset, po.LeaderEpoch = p, -1, -1
			if o, ok := committed[stream.TopicPartition{Topic: rt.Topic, Partition: p}]; ok {
				po.Offset = o.Offset
				po.Metadata = kmsg.StringPtr(o.Metadata)
			}
			out.Partitions = append(out.Partitions, po)
		}
		resp.Topics = append(resp.Topics, out)
	}
	return resp
}

func (c *coordinator) describe(req *kmsg.DescribeGroupsRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.DescribeGroupsResponse)
	engine := c.srv.s.Groups()
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, id := range req.Groups {
		out := kmsg.NewDescribeGroupsResponseGroup()
		out.Group = id
		g := c.groups[id]
		switch {
		case g != nil:
			out.State, out.ProtocolType, out.Protocol = g.state.String(), g.protocolType, g.protocol
			for _, mid := range slices.Sorted(maps.Keys(g.members)) {
				m := g.members[mid]
				dm := kmsg.NewDescribeGroupsResponseGroupMember()
				dm.MemberID, dm.ClientID, dm.ClientHost = mid, m.clientID, m.clientHost
				if m.instanceID != "" {
					dm.InstanceID = kmsg.StringPtr(m.instanceID)
				}
				for _, p := range m.protocols {
					if p.Name == g.protocol {
						dm.ProtocolMetadata = p.Metadata
					}
				}
				dm.MemberAssignment = m.assignment
				out.Members = append(out.Members, dm)
			}
		case slices.Contains(engine, id):
			// A group of the Go API, or one with only committed offsets:
			// its members (if any) are not Kafka clients.
			out.State, out.ProtocolType = "Empty", "consumer"
			if c.goGroupBusy(id) {
				out.State = "Stable"
			}
		default:
			out.State = "Dead"
		}
		resp.Groups = append(resp.Groups, out)
	}
	return resp
}

func (c *coordinator) list(req *kmsg.ListGroupsRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.ListGroupsResponse)
	engine := c.srv.s.Groups()
	c.mu.Lock()
	defer c.mu.Unlock()
	states := map[string]string{}
	types := map[string]string{}
	for _, id := range engine {
		states[id], types[id] = "Empty", "consumer"
	}
	for id, g := range c.groups {
		states[id], types[id] = g.state.String(), g.protocolType
	}
	for _, id := range slices.Sorted(maps.Keys(states)) {
		if len(req.StatesFilter) > 0 && !slices.Contains(req.StatesFilter, states[id]) {
			continue
		}
		lg := kmsg.NewListGroupsResponseGroup()
		lg.Group, lg.ProtocolType, lg.GroupState = id, types[id], states[id]
		resp.Groups = append(resp.Groups, lg)
	}
	return resp
}
