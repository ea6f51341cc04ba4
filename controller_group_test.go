package stream

import (
	"errors"
	"slices"
	"testing"
)

// The controller's group protocol (controller_group.go), without I/O:
// ownership moves only through release and hand-out, commits are fenced
// by ownership, and members leave with their node.

func release(g, m string, gen int64) *command {
	return &command{ReleaseGroup: &cmdReleaseGroup{Group: g, Member: m, Generation: gen}}
}

func syncG(g, leader string, gen int64, a map[string][]TopicPartition) *command {
	return &command{SyncGroup: &cmdSyncGroup{Group: g, Member: leader, Generation: gen, Assignments: a}}
}

func ownedCommit(g, m string, implicit bool, topic string, p int32, off int64) *command {
	c := commit(g, m, 0, topic, p, off)
	c.CommitOffsets.ByOwner, c.CommitOffsets.Implicit = true, implicit
	return c
}

func mustApply(t *testing.T, c *controller, cmd *command) applied {
	t.Helper()
	out := c.apply(cmd)
	if out.err != nil {
		t.Fatalf("apply %+v: %v", cmd, out.err)
	}
	return out
}

func owned(c *controller, g, m string) []TopicPartition {
	gm := c.st.Groups[g]
	if gm == nil || gm.Members[m] == nil {
		return nil
	}
	return gm.Members[m].Owned
}

func TestControllerGroupOwnershipMoves(t *testing.T) {
	c := newController()
	applyAll(t, c, slices.Concat(threeNodes, []*command{mkTopic("t", 2, 1)}))
	tp0, tp1 := TopicPartition{Topic: "t", Partition: 0}, TopicPartition{Topic: "t", Partition: 1}

	mustApply(t, c, join("g", "a", 1, "t"))
	mustApply(t, c, syncG("g", "a", 1, map[string][]TopicPartition{"a": {tp0, tp1}}))
	if got := owned(c, "g", "a"); !slices.Equal(got, []TopicPartition{tp0, tp1}) {
		t.Fatalf("a alone owns %v after the sync, want both partitions", got)
	}
	mustApply(t, c, ownedCommit("g", "a", true, "t", 1, 10))

	// b joins: generation 2. a keeps what it owns until it releases, and
	// may still commit it (its revocation commit).
	if out := mustApply(t, c, join("g", "b", 2, "t")); out.generation != 2 {
		t.Fatalf("b joined generation %d", out.generation)
	}
	mustApply(t, c, syncG("g", "a", 2, map[string][]TopicPartition{"a": {tp0}, "b": {tp1}}))
	if got := owned(c, "g", "b"); len(got) != 0 {
		t.Fatalf("b owns %v while a has not released", got)
	}
	mustApply(t, c, ownedCommit("g", "a", true, "t", 1, 12))
	if out := c.apply(ownedCommit("g", "b", false, "t", 1, 99)); !errors.Is(out.err, ErrFenced) {
		t.Fatalf("commit by b before it owns t-1: %v, want ErrFenced", out.err)
	}
	if out := c.apply(syncG("g", "a", 2, nil)); !errors.Is(out.err, ErrFenced) {
		t.Fatalf("a second sync of generation 2: %v, want ErrFenced", out.err)
	}
	if out := mustApply(t, c, release("g", "a", 2)); len(out.effects) != 1 || out.effects[0].Kind != effectGroup {
		t.Fatalf("the release that completes generation 2 had effects %+v", out.effects)
	}
	if a, b := owned(c, "g", "a"), owned(c, "g", "b"); !slices.Equal(a, []TopicPartition{tp0}) || !slices.Equal(b, []TopicPartition{tp1}) {
		t.Fatalf("after the hand-out a owns %v, b %v", a, b)
	}
	// A late or repeated release changes nothing.
	before, _ := c.snapshot()
	mustApply(t, c, release("g", "a", 2))
	mustApply(t, c, release("g", "b", 1))
	if after, _ := c.snapshot(); string(before) != string(after) {
		t.Fatal("a stale release changed the state")
	}
	if out := c.apply(ownedCommit("g", "a", false, "t", 1, 13)); !errors.Is(out.err, ErrFenced) {
		t.Fatalf("commit by a of the partition it gave up: %v, want ErrFenced", out.err)
	}
	// b starts where a committed; an implicit commit never goes back.
	if o := c.st.Groups["g"].Offsets["t"][1].Offset; o != 12 {
		t.Fatalf("committed offset of t-1 %d, want 12", o)
	}
	mustApply(t, c, ownedCommit("g", "b", true, "t", 1, 5))
	if o := c.st.Groups["g"].Offsets["t"][1].Offset; o != 12 {
		t.Fatalf("an implicit commit moved t-1 back to %d", o)
	}
	mustApply(t, c, ownedCommit("g", "b", false, "t", 1, 5))
	if o := c.st.Groups["g"].Offsets["t"][1].Offset; o != 5 {
		t.Fatalf("an explicit commit of t-1 to 5 left %d", o)
	}
}

func TestControllerGroupMemberLeavesWithItsNode(t *testing.T) {
	c := newController()
	applyAll(t, c, slices.Concat(threeNodes, []*command{mkTopic("t", 2, 1)}))
	tp0, tp1 := TopicPartition{Topic: "t", Partition: 0}, TopicPartition{Topic: "t", Partition: 1}
	applyAll(t, c, []*command{join("g", "a", 2, "t"), join("g", "b", 3, "t"),
		syncG("g", "a", 2, map[string][]TopicPartition{"a": {tp0}, "b": {tp1}})})
	if a, b := owned(c, "g", "a"), owned(c, "g", "b"); len(a) != 1 || len(b) != 1 {
		t.Fatalf("a owns %v, b %v", a, b)
	}
	mustApply(t, c, down(3))
	g := c.st.Groups["g"]
	if _, ok := g.Members["b"]; ok || g.Generation != 3 || g.Leader != "a" {
		t.Fatalf("after node 3 died: group %+v", g)
	}
	applyAll(t, c, []*command{syncG("g", "a", 3, map[string][]TopicPartition{"a": {tp0, tp1}}), release("g", "a", 3)})
	if a := owned(c, "g", "a"); !slices.Equal(a, []TopicPartition{tp0, tp1}) {
		t.Fatalf("a owns %v, want both", a)
	}

	// A restarted node's members from before are dropped at its first
	// heartbeat of the new incarnation; a join from the old one is
	// fenced.
	join2 := join("g", "c", 2, "t")
	join2.JoinGroup.Boot = 1
	mustApply(t, c, join2)
	beat := hb(2)
	beat.Heartbeat.Boot = 2
	mustApply(t, c, beat)
	if g := c.st.Groups["g"]; len(g.Members) != 0 {
		t.Fatalf("members after node 2 restarted: %v", orderedKeys(g.Members))
	}
	if out := c.apply(join2); !errors.Is(out.err, ErrFenced) {
		t.Fatalf("join from node 2's earlier incarnation: %v, want ErrFenced", out.err)
	}
}

func TestControllerGroupTopicChanges(t *testing.T) {
	c := newController()
	applyAll(t, c, slices.Concat(threeNodes, []*command{mkTopic("t", 1, 1), mkTopic("u", 1, 1)}))
	tp, up := TopicPartition{Topic: "t"}, TopicPartition{Topic: "u"}
	applyAll(t, c, []*command{join("g", "a", 1, "t", "u"),
		syncG("g", "a", 1, map[string][]TopicPartition{"a": {tp, up}}),
		ownedCommit("g", "a", false, "t", 0, 3), ownedCommit("g", "a", false, "u", 0, 4)})
	mustApply(t, c, &command{CreatePartitions: &cmdCreatePartitions{Topic: "t", Count: 2}})
	if g := c.st.Groups["g"]; g.Generation != 2 {
		t.Fatalf("generation %d after t grew, want 2", g.Generation)
	}
	mustApply(t, c, &command{DeleteTopic: &cmdDeleteTopic{Name: "u"}})
	g := c.st.Groups["g"]
	if g.Generation != 3 || !slices.Equal(owned(c, "g", "a"), []TopicPartition{tp}) {
		t.Fatalf("after u was deleted: generation %d, a owns %v", g.Generation, owned(c, "g", "a"))
	}
	if _, ok := g.Offsets["u"]; ok || g.Offsets["t"][0].Offset != 3 {
		t.Fatalf("offsets after u was deleted: %v", g.Offsets)
	}
}
