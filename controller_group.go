package stream

import (
	"slices"
)

// Consumer groups in the controller: the part of the state machine that
// makes a group span nodes (cluster_group.go drives it). Kafka's eager
// protocol, with ownership kept in the log:
//
//   - A join, a leave, a member's node dying or restarting, or a change
//     to a subscribed topic starts a generation (rebalance): assignments
//     are cleared, but what members own (Owned) stays theirs.
//   - The group leader (the first member ID) proposes the generation's
//     assignment (cmdSyncGroup, computed on its node by its Assignor).
//   - Every member that owns partitions gives them all up
//     (cmdReleaseGroup), after committing.
//   - Once the generation is synced and no member owns anything, the
//     assignment is handed out: Owned = Assignment, all members at once.
//
// So a partition has at most one owner at any point of the log, and a
// commit fenced by ownership (cmdCommitOffsets.ByOwner) is accepted only
// from the member holding the partition: a member that revokes commits
// before it releases, and the next owner starts from that commit.

// cmdReleaseGroup: member gave up everything it owned, in answer to
// generation Generation. It is a no-op unless that generation is the
// current one and still waits to be handed out (a late or repeated
// release must not drop what was handed out since).
type cmdReleaseGroup struct {
	Group      string `json:"group"`
	Member     string `json:"member"`
	Generation int64  `json:"generation"`
}

func (c *controller) releaseGroup(r *cmdReleaseGroup) applied {
	g, ok := c.st.Groups[r.Group]
	if !ok {
		return rejectf(ErrUnknownGroup, "release in group %s", r.Group)
	}
	m, ok := g.Members[r.Member]
	if !ok {
		return rejectf(ErrFenced, "release in group %s: member %q is not in the group", r.Group, r.Member)
	}
	if r.Generation != g.Generation || g.Assigned >= g.Generation || len(m.Owned) == 0 {
		return applied{generation: g.Generation}
	}
	m.Owned = nil
	out := applied{generation: g.Generation}
	if c.handOut(g) {
		out.effects = []effect{{Kind: effectGroup, Group: r.Group, Generation: g.Generation}}
	}
	return out
}

// handOut gives every member its assignment once the generation is
// synced and nobody owns anything; it reports whether it did.
func (c *controller) handOut(g *groupMeta) bool {
	if g.Synced != g.Generation || g.Assigned >= g.Generation {
		return false
	}
	for _, id := range orderedKeys(g.Members) {
		if len(g.Members[id].Owned) > 0 {
			return false
		}
	}
	for _, id := range orderedKeys(g.Members) {
		m := g.Members[id]
		m.Owned = slices.Clone(m.Assignment)
	}
	g.Assigned = g.Generation
	return true
}

// ownsAll fences an ownership-fenced commit: m must own every partition
// co names.
func ownsAll(co *cmdCommitOffsets, m *groupMemberMeta) error {
	for _, topic := range orderedKeys(co.Offsets) {
		for _, p := range orderedKeys(co.Offsets[topic]) {
			if !slices.Contains(m.Owned, TopicPartition{Topic: topic, Partition: p}) {
				return errorf("stream: commit group %s: member %q does not own %s-%d: %w", co.Group, co.Member, topic, p, ErrFenced)
			}
		}
	}
	return nil
}

// dropStaleMembers removes the members that node's earlier incarnations
// left in groups (it restarted before its lease ran out, so it was never
// declared dead); their groups rebalance.
func (c *controller) dropStaleMembers(node NodeID, boot uint64) []effect {
	var effects []effect
	for _, name := range orderedKeys(c.st.Groups) {
		g := c.st.Groups[name]
		changed := false
		for _, id := range orderedKeys(g.Members) {
			if m := g.Members[id]; m.Node == node && m.Boot < boot {
				delete(g.Members, id)
				changed = true
			}
		}
		if changed {
			effects = append(effects, c.rebalance(name, g))
		}
	}
	return effects
}

// topicChanged rebalances the groups subscribed to topic, which was
// created, grew or (deleted) went away; a deleted topic's partitions
// leave their owners and its committed offsets go, as in Kafka.
func (c *controller) topicChanged(topic string, deleted bool) []effect {
	var effects []effect
	for _, name := range orderedKeys(c.st.Groups) {
		g := c.st.Groups[name]
		if deleted {
			delete(g.Offsets, topic)
		}
		subscribed := false
		for _, id := range orderedKeys(g.Members) {
			m := g.Members[id]
			if slices.Contains(m.Topics, topic) {
				subscribed = true
			}
			if deleted {
				m.Owned = slices.DeleteFunc(m.Owned, func(tp TopicPartition) bool { return tp.Topic == topic })
				m.Assignment = slices.DeleteFunc(m.Assignment, func(tp TopicPartition) bool { return tp.Topic == topic })
			}
		}
		if subscribed {
			effects = append(effects, c.rebalance(name, g))
		}
	}
	return effects
}
