package stream

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

// Commands, built tersely for the tables.

func hb(n NodeID) *command {
	return &command{Heartbeat: &cmdHeartbeat{Node: n, Session: 3, Time: int64(n)}}
}
func tick() *command { return &command{Tick: &cmdTick{}} }
func down(n NodeID) *command {
	return &command{NodeDown: &cmdNodeDown{Node: n}}
}
func mkTopic(name string, parts, rf int) *command {
	return &command{CreateTopic: &cmdCreateTopic{Name: name, Config: TopicConfig{Partitions: parts, ReplicationFactor: rf, MinInSyncReplicas: 1}}}
}
func mkUncleanTopic(name string, parts, rf int) *command {
	c := mkTopic(name, parts, rf)
	c.CreateTopic.Unclean = true
	return c
}
func alter(topic string, p int32, leader NodeID, le, pe int32, isr ...NodeID) *command {
	return &command{AlterPartition: &cmdAlterPartition{Topic: topic, Partition: p, Leader: leader, LeaderEpoch: le, PartitionEpoch: pe, ISR: isr}}
}
func join(g, m string, n NodeID, topics ...string) *command {
	return &command{JoinGroup: &cmdJoinGroup{Group: g, Member: m, Node: n, Topics: topics}}
}
func commit(g, m string, gen int64, topic string, p int32, off int64) *command {
	return &command{CommitOffsets: &cmdCommitOffsets{Group: g, Member: m, Generation: gen,
		Offsets: map[string]map[int32]committedMeta{topic: {p: {Offset: off}}}}}
}

// three live nodes.
var threeNodes = []*command{hb(1), hb(2), hb(3)}

func applyAll(t *testing.T, c *controller, cmds []*command) {
	t.Helper()
	for i, cmd := range cmds {
		if out := c.apply(cmd); out.err != nil {
			t.Fatalf("setup command %d: %v", i, out.err)
		}
	}
}

func part(t *testing.T, c *controller, topic string, i int32) partitionMeta {
	t.Helper()
	_, p, err := c.partition(topic, i)
	if err != nil {
		t.Fatal(err)
	}
	return p.clone()
}

func TestControllerCommands(t *testing.T) {
	with := func(cmds ...[]*command) []*command { return slices.Concat(cmds...) }
	cases := []struct {
		name    string
		setup   []*command
		cmd     *command
		wantErr error
		check   func(t *testing.T, c *controller, out applied)
	}{
		{name: "heartbeat registers a node", cmd: hb(7), check: func(t *testing.T, c *controller, out applied) {
			n := c.st.Nodes[7]
			if n == nil || !n.Alive || n.Expires != 3 || n.LastHeard != 7 {
				t.Fatalf("node 7 = %+v", n)
			}
			if len(out.effects) != 1 || out.effects[0].Kind != effectNodeAlive {
				t.Fatalf("effects %+v", out.effects)
			}
		}},
		{name: "heartbeat with bad node ID", cmd: hb(0), wantErr: ErrInvalidConfig},
		{name: "heartbeat with no session", cmd: &command{Heartbeat: &cmdHeartbeat{Node: 1}}, wantErr: ErrInvalidConfig},
		{name: "a lease runs out after its ticks", setup: with([]*command{hb(1), tick(), tick()}), cmd: tick(), check: func(t *testing.T, c *controller, out applied) {
			if c.st.Nodes[1].Alive || c.st.Tick != 3 {
				t.Fatalf("node 1 = %+v at tick %d", c.st.Nodes[1], c.st.Tick)
			}
		}},
		{name: "a heartbeat renews the lease", setup: with([]*command{hb(1), tick(), tick(), hb(1)}), cmd: tick(), check: func(t *testing.T, c *controller, out applied) {
			if !c.st.Nodes[1].Alive {
				t.Fatal("node 1 died despite its heartbeat")
			}
		}},
		{name: "node down of an unknown node", cmd: down(9), wantErr: ErrInvalidConfig},
		{name: "create topic spreads replicas", setup: threeNodes, cmd: mkTopic("t", 3, 2), check: func(t *testing.T, c *controller, out applied) {
			leaders := map[NodeID]int{}
			for i := range int32(3) {
				p := part(t, c, "t", i)
				if len(p.Replicas) != 2 || p.Replicas[0] == p.Replicas[1] || p.Leader != p.Replicas[0] || !slices.Equal(p.ISR, p.Replicas) {
					t.Fatalf("partition %d = %+v", i, p)
				}
				leaders[p.Leader]++
			}
			if len(leaders) != 3 {
				t.Fatalf("leaders not spread: %v", leaders)
			}
			if len(out.effects) != 3 || out.effects[2].Kind != effectPartition || out.effects[2].Partition != 2 {
				t.Fatalf("effects %+v", out.effects)
			}
		}},
		{name: "create topic with RF above live nodes", setup: threeNodes, cmd: mkTopic("t", 1, 4), wantErr: ErrNotEnoughReplicas},
		{name: "create topic counts only live nodes", setup: with(threeNodes, []*command{down(3)}), cmd: mkTopic("t", 1, 3), wantErr: ErrNotEnoughReplicas},
		{name: "create topic twice", setup: with(threeNodes, []*command{mkTopic("t", 1, 1)}), cmd: mkTopic("t", 1, 1), wantErr: ErrTopicExists},
		{name: "create topic with a bad name", setup: threeNodes, cmd: mkTopic("a/b", 1, 1), wantErr: ErrInvalidName},
		{name: "create topic with no partitions", setup: threeNodes, cmd: mkTopic("t", 0, 1), wantErr: ErrInvalidConfig},
		{name: "create topic with RF 0", setup: threeNodes, cmd: mkTopic("t", 1, 0), wantErr: ErrInvalidConfig},
		{name: "create topic with min ISR above RF", setup: threeNodes, cmd: &command{CreateTopic: &cmdCreateTopic{Name: "t", Config: TopicConfig{Partitions: 1, ReplicationFactor: 2, MinInSyncReplicas: 3}}}, wantErr: ErrInvalidConfig},
		{name: "create topic with min ISR 0", setup: threeNodes, cmd: &command{CreateTopic: &cmdCreateTopic{Name: "t", Config: TopicConfig{Partitions: 1, ReplicationFactor: 2}}}, wantErr: ErrInvalidConfig},
		{name: "delete topic", setup: with(threeNodes, []*command{mkTopic("t", 2, 3)}), cmd: &command{DeleteTopic: &cmdDeleteTopic{Name: "t"}}, check: func(t *testing.T, c *controller, out applied) {
			if _, ok := c.st.Topics["t"]; ok || len(out.effects) != 1 || out.effects[0].Kind != effectTopicDeleted {
				t.Fatalf("topic still there or effects %+v", out.effects)
			}
		}},
		{name: "delete unknown topic", cmd: &command{DeleteTopic: &cmdDeleteTopic{Name: "t"}}, wantErr: ErrUnknownTopic},
		{name: "recreated topic has a new ID", setup: with(threeNodes, []*command{mkTopic("t", 1, 1), {DeleteTopic: &cmdDeleteTopic{Name: "t"}}}), cmd: mkTopic("t", 1, 1), check: func(t *testing.T, c *controller, out applied) {
			if c.st.Topics["t"].ID != 2 {
				t.Fatalf("topic ID %d, want 2", c.st.Topics["t"].ID)
			}
		}},
		{name: "create partitions", setup: with(threeNodes, []*command{mkTopic("t", 1, 3)}), cmd: &command{CreatePartitions: &cmdCreatePartitions{Topic: "t", Count: 3}}, check: func(t *testing.T, c *controller, out applied) {
			if len(c.st.Topics["t"].Partitions) != 3 || len(out.effects) != 2 || c.st.Topics["t"].Config.Partitions != 3 {
				t.Fatalf("partitions %d, effects %d", len(c.st.Topics["t"].Partitions), len(out.effects))
			}
		}},
		{name: "create partitions cannot shrink", setup: with(threeNodes, []*command{mkTopic("t", 2, 1)}), cmd: &command{CreatePartitions: &cmdCreatePartitions{Topic: "t", Count: 2}}, wantErr: ErrInvalidConfig},
		{name: "create partitions of unknown topic", cmd: &command{CreatePartitions: &cmdCreatePartitions{Topic: "t", Count: 2}}, wantErr: ErrUnknownTopic},
		{name: "create partitions with too few live nodes", setup: with(threeNodes, []*command{mkTopic("t", 1, 3), down(2)}), cmd: &command{CreatePartitions: &cmdCreatePartitions{Topic: "t", Count: 2}}, wantErr: ErrNotEnoughReplicas},
		{name: "leader shrinks the ISR", setup: with(threeNodes, []*command{mkTopic("t", 1, 3)}), cmd: alter("t", 0, 1, 0, 0, 1, 3), check: func(t *testing.T, c *controller, out applied) {
			p := part(t, c, "t", 0)
			if !slices.Equal(p.ISR, []NodeID{1, 3}) || p.PartitionEpoch != 1 || p.LeaderEpoch != 0 {
				t.Fatalf("partition %+v", p)
			}
		}},
		{name: "leader grows the ISR back", setup: with(threeNodes, []*command{mkTopic("t", 1, 3), alter("t", 0, 1, 0, 0, 1)}), cmd: alter("t", 0, 1, 0, 1, 3, 1), check: func(t *testing.T, c *controller, out applied) {
			if p := part(t, c, "t", 0); !slices.Equal(p.ISR, []NodeID{1, 3}) || p.PartitionEpoch != 2 {
				t.Fatalf("partition %+v", p)
			}
		}},
		{name: "stale partition epoch is fenced", setup: with(threeNodes, []*command{mkTopic("t", 1, 3), alter("t", 0, 1, 0, 0, 1, 2)}), cmd: alter("t", 0, 1, 0, 0, 1), wantErr: ErrFenced},
		{name: "stale leader epoch is fenced", setup: with(threeNodes, []*command{mkTopic("t", 1, 3), down(1)}), cmd: alter("t", 0, 1, 0, 1, 1), wantErr: ErrFenced},
		{name: "a non-leader cannot alter", setup: with(threeNodes, []*command{mkTopic("t", 1, 3)}), cmd: alter("t", 0, 2, 0, 0, 2), wantErr: ErrFenced},
		{name: "ISR without the leader", setup: with(threeNodes, []*command{mkTopic("t", 1, 3)}), cmd: alter("t", 0, 1, 0, 0, 2, 3), wantErr: ErrInvalidConfig},
		{name: "ISR with a non-replica", setup: with(threeNodes, []*command{mkTopic("t", 1, 2)}), cmd: alter("t", 0, 1, 0, 0, 1, 3), wantErr: ErrInvalidConfig},
		{name: "ISR with a duplicate", setup: with(threeNodes, []*command{mkTopic("t", 1, 3)}), cmd: alter("t", 0, 1, 0, 0, 1, 1), wantErr: ErrInvalidConfig},
		{name: "a dead node cannot rejoin the ISR", setup: with(threeNodes, []*command{mkTopic("t", 1, 3), down(3)}), cmd: alter("t", 0, 1, 0, 1, 1, 2, 3), wantErr: ErrInvalidConfig},
		{name: "alter unknown partition", setup: with(threeNodes, []*command{mkTopic("t", 1, 3)}), cmd: alter("t", 5, 1, 0, 0, 1), wantErr: ErrUnknownTopic},
		{name: "leader death elects from the ISR", setup: with(threeNodes, []*command{mkTopic("t", 1, 3), alter("t", 0, 1, 0, 0, 1, 3)}), cmd: down(1), check: func(t *testing.T, c *controller, out applied) {
			p := part(t, c, "t", 0)
			if p.Leader != 3 || p.LeaderEpoch != 1 || !slices.Equal(p.ISR, []NodeID{3}) {
				t.Fatalf("partition %+v: want leader 3 (2 is out of sync)", p)
			}
			if len(out.effects) != 2 || out.effects[1].Kind != effectPartition || out.effects[1].State.Leader != 3 {
				t.Fatalf("effects %+v", out.effects)
			}
		}},
		{name: "follower death shrinks the ISR", setup: with(threeNodes, []*command{mkTopic("t", 1, 3)}), cmd: down(2), check: func(t *testing.T, c *controller, out applied) {
			if p := part(t, c, "t", 0); p.Leader != 1 || p.LeaderEpoch != 0 || !slices.Equal(p.ISR, []NodeID{1, 3}) {
				t.Fatalf("partition %+v", p)
			}
		}},
		{name: "no in-sync replica left: leaderless, not unclean", setup: with(threeNodes, []*command{mkTopic("t", 1, 3), alter("t", 0, 1, 0, 0, 1)}), cmd: down(1), check: func(t *testing.T, c *controller, out applied) {
			if p := part(t, c, "t", 0); p.Leader != 0 || p.LeaderEpoch != 1 || !slices.Equal(p.ISR, []NodeID{1}) {
				t.Fatalf("partition %+v", p)
			}
		}},
		{name: "unclean election when configured", setup: with(threeNodes, []*command{mkUncleanTopic("t", 1, 3), alter("t", 0, 1, 0, 0, 1)}), cmd: down(1), check: func(t *testing.T, c *controller, out applied) {
			if p := part(t, c, "t", 0); p.Leader != 2 || !slices.Equal(p.ISR, []NodeID{2}) {
				t.Fatalf("partition %+v", p)
			}
		}},
		{name: "last in-sync replica returns and leads", setup: with(threeNodes, []*command{mkTopic("t", 1, 3), alter("t", 0, 1, 0, 0, 1), down(1)}), cmd: hb(1), check: func(t *testing.T, c *controller, out applied) {
			if p := part(t, c, "t", 0); p.Leader != 1 || p.LeaderEpoch != 2 {
				t.Fatalf("partition %+v", p)
			}
		}},
		{name: "preferred leader election", setup: with(threeNodes, []*command{mkTopic("t", 1, 3), down(1), hb(1), alter("t", 0, 2, 1, 1, 2, 3, 1)}), cmd: &command{ElectLeader: &cmdElectLeader{Topic: "t"}}, check: func(t *testing.T, c *controller, out applied) {
			if p := part(t, c, "t", 0); p.Leader != 1 || p.LeaderEpoch != 2 {
				t.Fatalf("partition %+v", p)
			}
		}},
		{name: "preferred leader out of sync", setup: with(threeNodes, []*command{mkTopic("t", 1, 3), down(1)}), cmd: &command{ElectLeader: &cmdElectLeader{Topic: "t"}}, wantErr: ErrNotEnoughReplicas},
		{name: "join group", setup: threeNodes, cmd: join("g", "m1", 1, "t"), check: func(t *testing.T, c *controller, out applied) {
			g := c.st.Groups["g"]
			if out.generation != 1 || g.Leader != "m1" || len(g.Members) != 1 {
				t.Fatalf("group %+v, generation %d", g, out.generation)
			}
		}},
		{name: "join again unchanged keeps the generation", setup: with(threeNodes, []*command{join("g", "m1", 1, "t")}), cmd: join("g", "m1", 1, "t"), check: func(t *testing.T, c *controller, out applied) {
			if out.generation != 1 || len(out.effects) != 0 {
				t.Fatalf("generation %d, effects %v", out.generation, out.effects)
			}
		}},
		{name: "join from a dead node", setup: with(threeNodes, []*command{down(2)}), cmd: join("g", "m", 2), wantErr: ErrInvalidConfig},
		{name: "join with empty member", setup: threeNodes, cmd: join("g", "", 1), wantErr: ErrInvalidConfig},
		{name: "join with a bad group name", setup: threeNodes, cmd: join("", "m", 1), wantErr: ErrInvalidName},
		{name: "leave group", setup: with(threeNodes, []*command{join("g", "m1", 1), join("g", "m2", 2)}), cmd: &command{LeaveGroup: &cmdLeaveGroup{Group: "g", Member: "m1"}}, check: func(t *testing.T, c *controller, out applied) {
			if g := c.st.Groups["g"]; g.Generation != 3 || g.Leader != "m2" {
				t.Fatalf("group %+v", g)
			}
		}},
		{name: "leave unknown group", cmd: &command{LeaveGroup: &cmdLeaveGroup{Group: "g", Member: "m"}}, wantErr: ErrUnknownGroup},
		{name: "sync group", setup: with(threeNodes, []*command{join("g", "m1", 1), join("g", "m2", 2)}), cmd: &command{SyncGroup: &cmdSyncGroup{Group: "g", Member: "m1", Generation: 2, Assignments: map[string][]TopicPartition{"m2": {{Topic: "t"}}}}}, check: func(t *testing.T, c *controller, out applied) {
			if a := c.st.Groups["g"].Members["m2"].Assignment; len(a) != 1 {
				t.Fatalf("assignment %v", a)
			}
		}},
		{name: "sync from an old generation", setup: with(threeNodes, []*command{join("g", "m1", 1), join("g", "m2", 2)}), cmd: &command{SyncGroup: &cmdSyncGroup{Group: "g", Member: "m1", Generation: 1}}, wantErr: ErrFenced},
		{name: "sync from a non-leader", setup: with(threeNodes, []*command{join("g", "m1", 1), join("g", "m2", 2)}), cmd: &command{SyncGroup: &cmdSyncGroup{Group: "g", Member: "m2", Generation: 2}}, wantErr: ErrFenced},
		{name: "sync for an unknown member", setup: with(threeNodes, []*command{join("g", "m1", 1)}), cmd: &command{SyncGroup: &cmdSyncGroup{Group: "g", Member: "m1", Generation: 1, Assignments: map[string][]TopicPartition{"x": nil}}}, wantErr: ErrInvalidConfig},
		{name: "commit from a member", setup: with(threeNodes, []*command{join("g", "m1", 1)}), cmd: commit("g", "m1", 1, "t", 0, 42), check: func(t *testing.T, c *controller, out applied) {
			if o := c.st.Groups["g"].Offsets["t"][0].Offset; o != 42 {
				t.Fatalf("offset %d", o)
			}
		}},
		{name: "commit from an old generation", setup: with(threeNodes, []*command{join("g", "m1", 1), join("g", "m2", 2)}), cmd: commit("g", "m1", 1, "t", 0, 42), wantErr: ErrFenced},
		{name: "commit from a member that left", setup: with(threeNodes, []*command{join("g", "m1", 1), join("g", "m2", 2), {LeaveGroup: &cmdLeaveGroup{Group: "g", Member: "m1"}}}), cmd: commit("g", "m1", 3, "t", 0, 42), wantErr: ErrFenced},
		{name: "commit to an unknown group", cmd: commit("g", "m1", 1, "t", 0, 1), wantErr: ErrUnknownGroup},
		{name: "memberless commit to an empty group", cmd: commit("g", "", 0, "t", 3, 7), check: func(t *testing.T, c *controller, out applied) {
			if o := c.st.Groups["g"].Offsets["t"][3].Offset; o != 7 {
				t.Fatalf("offset %d", o)
			}
		}},
		{name: "memberless commit to a group with members", setup: with(threeNodes, []*command{join("g", "m1", 1)}), cmd: commit("g", "", 0, "t", 0, 1), wantErr: ErrGroupNotEmpty},
		{name: "negative offset", cmd: commit("g", "", 0, "t", 0, -1), wantErr: ErrInvalidConfig},
		{name: "node death removes its members", setup: with(threeNodes, []*command{join("g", "m1", 1), join("g", "m2", 2)}), cmd: down(1), check: func(t *testing.T, c *controller, out applied) {
			if g := c.st.Groups["g"]; len(g.Members) != 1 || g.Generation != 3 || g.Leader != "m2" {
				t.Fatalf("group %+v", g)
			}
		}},
		{name: "delete group", setup: with(threeNodes, []*command{commit("g", "", 0, "t", 0, 1)}), cmd: &command{DeleteGroup: &cmdDeleteGroup{Group: "g"}}, check: func(t *testing.T, c *controller, out applied) {
			if _, ok := c.st.Groups["g"]; ok {
				t.Fatal("group still there")
			}
		}},
		{name: "delete group with members", setup: with(threeNodes, []*command{join("g", "m1", 1)}), cmd: &command{DeleteGroup: &cmdDeleteGroup{Group: "g"}}, wantErr: ErrGroupNotEmpty},
		{name: "delete unknown group", cmd: &command{DeleteGroup: &cmdDeleteGroup{Group: "g"}}, wantErr: ErrUnknownGroup},
		{name: "command with no operation", cmd: &command{}, wantErr: ErrInvalidConfig},
		{name: "noop", cmd: &command{Noop: &struct{}{}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := newController()
			applyAll(t, c, tc.setup)
			before, _ := c.snapshot()
			out := c.apply(tc.cmd)
			if tc.wantErr != nil {
				if !errors.Is(out.err, tc.wantErr) {
					t.Fatalf("err = %v, want %v", out.err, tc.wantErr)
				}
				if after, _ := c.snapshot(); !bytes.Equal(before, after) {
					t.Fatalf("a rejected command changed the state:\n%s\n%s", before, after)
				}
				return
			}
			if out.err != nil {
				t.Fatal(out.err)
			}
			if tc.check != nil {
				tc.check(t, c, out)
			}
		})
	}
}

// TestControllerProposalsApplyOnce: a proposal its node retried applies
// once; one from an earlier incarnation of its node not at all.
func TestControllerProposalsApplyOnce(t *testing.T) {
	c := newController()
	applyAll(t, c, threeNodes)
	cmd := commit("g", "", 0, "t", 0, 5)
	cmd.Origin, cmd.Boot, cmd.Seq = 2, 7, 1
	if out := c.apply(cmd); out.err != nil {
		t.Fatal(out.err)
	}
	later := commit("g", "", 0, "t", 0, 9)
	later.Origin, later.Boot, later.Seq = 2, 7, 2
	if out := c.apply(later); out.err != nil {
		t.Fatal(out.err)
	}
	before, _ := c.snapshot()
	if out := c.apply(cmd); !errors.Is(out.err, errDuplicateProposal) {
		t.Fatalf("retried proposal: %v", out.err)
	}
	stale := commit("g", "", 0, "t", 0, 1)
	stale.Origin, stale.Boot, stale.Seq = 2, 6, 99
	if out := c.apply(stale); !errors.Is(out.err, errDuplicateProposal) {
		t.Fatalf("proposal from an earlier boot: %v", out.err)
	}
	if after, _ := c.snapshot(); !bytes.Equal(before, after) {
		t.Fatal("a refused proposal changed the state")
	}
	if o := c.st.Groups["g"].Offsets["t"][0].Offset; o != 9 {
		t.Fatalf("committed offset %d, want 9: a retry regressed it", o)
	}
	for seq := uint64(3); seq < 3+proposerWindow+10; seq++ {
		hb := hb(2)
		hb.Origin, hb.Boot, hb.Seq = 2, 7, seq
		if out := c.apply(hb); out.err != nil {
			t.Fatal(out.err)
		}
	}
	if pm := c.st.Proposers[2]; len(pm.Seqs) != proposerWindow || pm.Floor != 12 {
		t.Fatalf("proposer window: %d seqs, floor %d", len(pm.Seqs), pm.Floor)
	}
}

func TestControllerBadEntry(t *testing.T) {
	c := newController()
	for _, data := range [][]byte{nil, []byte("{"), []byte(`{"tick":1}`), []byte(`{"heartbeat":{"node":"x"}}`)} {
		if _, out := c.applyEntry(data); out.err == nil {
			t.Errorf("entry %q applied", data)
		}
	}
	if err := c.restore([]byte("not json")); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("restore of garbage: %v", err)
	}
}

// randomCommands makes a log that exercises every command, valid or not.
func randomCommands(rng *rand.Rand, n int) [][]byte {
	var log [][]byte
	topics := []string{"a", "b", "c"}
	groups := []string{"g", "h"}
	for range n {
		node := NodeID(rng.IntN(4) + 1)
		topic := topics[rng.IntN(len(topics))]
		group := groups[rng.IntN(len(groups))]
		member := fmt.Sprintf("m%d", rng.IntN(4))
		var cmd *command
		switch rng.IntN(12) {
		case 0, 1:
			cmd = hb(node)
		case 2, 3:
			cmd = tick()
		case 4:
			cmd = down(node)
		case 5:
			cmd = mkTopic(topic, rng.IntN(3)+1, rng.IntN(3)+1)
		case 6:
			cmd = &command{DeleteTopic: &cmdDeleteTopic{Name: topic}}
		case 7:
			cmd = &command{CreatePartitions: &cmdCreatePartitions{Topic: topic, Count: rng.IntN(5) + 1}}
		case 8:
			cmd = alter(topic, int32(rng.IntN(2)), node, int32(rng.IntN(3)), int32(rng.IntN(3)), node, NodeID(rng.IntN(4)+1))
		case 9:
			cmd = join(group, member, node, topic)
		case 10:
			cmd = &command{LeaveGroup: &cmdLeaveGroup{Group: group, Member: member}}
		case 11:
			cmd = commit(group, member, int64(rng.IntN(4)), topic, int32(rng.IntN(3)), rng.Int64N(100))
		}
		if rng.IntN(2) == 0 { // a retried or stale proposal now and then
			cmd.Origin, cmd.Boot, cmd.Seq = node, uint64(1+rng.IntN(2)), uint64(1+rng.IntN(50))
		}
		data, err := encodeCommand(cmd)
		if err != nil {
			panic(err)
		}
		log = append(log, data)
	}
	return log
}

// TestControllerDeterministic: the same log gives byte-identical state on
// two instances, and snapshot + restore + the rest of the log gives the
// state the whole log gives.
func TestControllerDeterministic(t *testing.T) {
	for seed := range uint64(20) {
		rng := rand.New(rand.NewPCG(seed, seed))
		log := randomCommands(rng, 400)
		a, b := newController(), newController()
		var effA, effB []string
		for _, e := range log {
			_, outA := a.applyEntry(e)
			_, outB := b.applyEntry(e)
			effA = append(effA, fmt.Sprint(outA.effects, outA.err))
			effB = append(effB, fmt.Sprint(outB.effects, outB.err))
		}
		sa, _ := a.snapshot()
		sb, _ := b.snapshot()
		if !bytes.Equal(sa, sb) || !slices.Equal(effA, effB) {
			t.Fatalf("seed %d: two instances diverged", seed)
		}
		cut := rng.IntN(len(log))
		c := newController()
		for _, e := range log[:cut] {
			c.applyEntry(e)
		}
		snap, err := c.snapshot()
		if err != nil {
			t.Fatal(err)
		}
		d := newController()
		if err := d.restore(snap); err != nil {
			t.Fatal(err)
		}
		for _, e := range log[cut:] {
			d.applyEntry(e)
		}
		if sd, _ := d.snapshot(); !bytes.Equal(sa, sd) {
			t.Fatalf("seed %d: snapshot at %d + rest of log differs from the whole log:\n%s\n%s", seed, cut, sa, sd)
		}
		if len(a.st.Topics) == 0 && len(a.st.Groups) == 0 {
			t.Fatalf("seed %d: the log built nothing; the property is vacuous", seed)
		}
	}
}

// FuzzControllerApplyEntry feeds arbitrary log entries to a controller
// that holds nodes, topics and groups. Invariants: no panic; a rejected
// entry leaves the state byte for byte as it was; an accepted one leaves
// a state that snapshots and restores to the same bytes.
func FuzzControllerApplyEntry(f *testing.F) {
	for _, cmd := range []*command{hb(4), tick(), down(2), mkTopic("x", 2, 2), alter("t", 0, 1, 0, 0, 1),
		join("g", "m", 1, "t"), commit("g", "m", 1, "t", 0, 3), {SyncGroup: &cmdSyncGroup{Group: "g", Member: "m1", Generation: 1}}} {
		data, _ := encodeCommand(cmd)
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c := newController()
		applyAll(t, c, slices.Concat(threeNodes, []*command{mkTopic("t", 2, 3), join("g", "m1", 1, "t")}))
		before, _ := c.snapshot()
		_, out := c.applyEntry(data)
		after, err := c.snapshot()
		if err != nil {
			t.Fatal(err)
		}
		if out.err != nil && !bytes.Equal(before, after) {
			t.Fatalf("rejected entry %q (%v) changed the state", data, out.err)
		}
		d := newController()
		if err := d.restore(after); err != nil {
			t.Fatal(err)
		}
		if again, _ := d.snapshot(); !bytes.Equal(again, after) {
			t.Fatalf("state after %q does not survive a snapshot", data)
		}
	})
}

func hbBoot(n NodeID, boot uint64) *command {
	return &command{Heartbeat: &cmdHeartbeat{Node: n, Session: 3, Time: int64(n), Boot: boot}}
}

// TestControllerRestartedNodeLeavesISRs: a node heard with a new
// incarnation (a higher Boot) within its session is a restarted node
// that may have lost what it had not fsynced (KIP-380's broker epoch):
// it leaves every ISR, and what it led moves to a new leader epoch, to
// another in-sync replica or, when it is the only one, to itself again.
// Its first Boot and a repeated Boot change nothing.
func TestControllerRestartedNodeLeavesISRs(t *testing.T) {
	c := newController()
	applyAll(t, c, []*command{hbBoot(1, 1), hbBoot(2, 1), hbBoot(3, 1), mkTopic("t", 3, 3), mkTopic("solo", 3, 1), hbBoot(1, 1)})
	before := map[string][]partitionMeta{}
	for _, topic := range []string{"t", "solo"} {
		for i := range int32(3) {
			before[topic] = append(before[topic], part(t, c, topic, i))
		}
	}
	out := c.apply(hbBoot(1, 2))
	if out.err != nil {
		t.Fatal(out.err)
	}
	led, soloLed := 0, 0
	for _, topic := range []string{"t", "solo"} {
		for i := range int32(3) {
			was, now := before[topic][i], part(t, c, topic, i)
			switch {
			case was.Leader == 1 && topic == "t":
				led++
				if now.Leader == 1 || now.Leader == 0 || now.LeaderEpoch != was.LeaderEpoch+1 || slices.Contains(now.ISR, 1) {
					t.Errorf("%s-%d led by the restarted node: now %+v, was %+v; want another leader, a new epoch, node 1 out of the ISR", topic, i, now, was)
				}
			case was.Leader == 1:
				soloLed++
				if now.Leader != 1 || now.LeaderEpoch != was.LeaderEpoch+1 || !slices.Equal(now.ISR, []NodeID{1}) {
					t.Errorf("%s-%d, node 1 its only replica: now %+v, was %+v; want node 1 leading a new epoch", topic, i, now, was)
				}
			case slices.Contains(was.ISR, 1):
				if now.Leader != was.Leader || now.LeaderEpoch != was.LeaderEpoch || now.PartitionEpoch <= was.PartitionEpoch || slices.Contains(now.ISR, 1) {
					t.Errorf("%s-%d followed by the restarted node: now %+v, was %+v; want node 1 out of the ISR, same leader and epoch", topic, i, now, was)
				}
			default:
				if now.LeaderEpoch != was.LeaderEpoch || now.PartitionEpoch != was.PartitionEpoch {
					t.Errorf("%s-%d without node 1 changed: now %+v, was %+v", topic, i, now, was)
				}
			}
		}
	}
	if led == 0 || soloLed == 0 {
		t.Fatalf("node 1 led %d partitions of t and %d of solo; the test needs one of each", led, soloLed)
	}
	if !c.alive(1) {
		t.Error("the restarted node is not alive")
	}
	if !slices.ContainsFunc(out.effects, func(e effect) bool { return e.Kind == effectNodeBoot && e.Node == 1 }) {
		t.Errorf("effects %+v: no effectNodeBoot for node 1", out.effects)
	}
	// The same incarnation again changes nothing.
	snap, _ := c.snapshot()
	if out := c.apply(hbBoot(1, 2)); out.err != nil || len(out.effects) != 0 {
		t.Errorf("a repeated heartbeat: effects %+v, error %v", out.effects, out.err)
	}
	if again, _ := c.snapshot(); !bytes.Equal(snap, again) {
		t.Errorf("a repeated heartbeat changed the state:\n%s\n%s", snap, again)
	}
}
