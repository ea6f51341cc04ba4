package stream

import (
	"cmp"
	"slices"
)

// Assignor decides which member of a consumer group owns which partition.
// It is Kafka's partition.assignment.strategy (the Java client's
// ConsumerPartitionAssignor): the group coordinator calls Assign at every
// rebalance with the current members and the partition count of every
// topic, and hands each member its share.
//
// The package ships three: RangeAssignor (the default), RoundRobinAssignor
// and CooperativeStickyAssignor. A custom Assignor must be a pure function
// of its arguments, safe for concurrent use, and must give each partition
// to at most one member, and only to a member subscribed to its topic.
type Assignor interface {
	// Name is the strategy's name in Kafka's partition.assignment.strategy
	// terms: "range", "roundrobin" or "cooperative-sticky" for the
	// assignors of this package.
	Name() string

	// Assign maps every member's ID to the partitions it owns from now on,
	// each slice sorted by topic, then partition. partitions maps a topic
	// to its number of partitions. Every member appears in the result; an
	// idle one (nothing to own) maps to a nil slice. Each partition of a
	// topic with at least one subscriber is assigned to exactly one
	// subscriber; topics nobody subscribes to, and subscribed topics
	// missing from partitions, are left out. Assign neither modifies nor
	// retains its arguments.
	//
	// Member IDs must be distinct; a repeated ID is ignored after its
	// first occurrence.
	Assign(members []GroupMember, partitions map[string]int32) map[string][]TopicPartition
}

// GroupMember is one member of a consumer group as an Assignor sees it,
// Kafka's ConsumerPartitionAssignor.Subscription together with its member
// and group instance IDs.
type GroupMember struct {
	ID         string           // member id, unique in the group (Kafka's member.id)
	InstanceID string           // static membership id (Kafka's group.instance.id), "" if none
	Topics     []string         // topics the member subscribes to
	Owned      []TopicPartition // what it owns now; read by sticky assignors only
}

var (
	// RangeAssignor is Kafka's RangeAssignor ("range", the default
	// partition.assignment.strategy). Topic by topic, it sorts the
	// members subscribed to the topic and splits the topic's partitions
	// into contiguous ranges, one per member in that order; when the
	// partitions do not divide evenly, the first n%m members get one
	// more. With 2 members and 2 topics of 3 partitions each, the first
	// member gets partitions 0 and 1 of both topics, the second partition
	// 2 of both.
	//
	// Members are sorted as Kafka sorts them: static members (InstanceID
	// set) first, by InstanceID, then the others by ID. So a static member
	// that restarts under a new member ID gets back the same ranges.
	RangeAssignor Assignor = rangeAssignor{}

	// RoundRobinAssignor is Kafka's RoundRobinAssignor ("roundrobin"). It
	// sorts every subscribed partition by topic, then partition, and deals
	// them out one at a time to the members in turn (sorted as for
	// RangeAssignor), passing over a member that does not subscribe to
	// the partition's topic. With equal subscriptions, member counts
	// differ by at most one.
	RoundRobinAssignor Assignor = roundRobinAssignor{}

	// CooperativeStickyAssignor is Kafka's CooperativeStickyAssignor
	// ("cooperative-sticky", KIP-429 incremental cooperative
	// rebalancing, on the balance-then-stickiness rules of KIP-54's
	// StickyAssignor). It balances the group and, within that, keeps as
	// many of the partitions in GroupMember.Owned where they are as it
	// can, so a rebalance revokes only partitions that must move.
	//
	// Balanced means no partition could move from its owner to another
	// subscriber of its topic that owns at least two fewer partitions; in
	// particular, members with equal subscriptions own counts that differ
	// by at most one. With equal subscriptions the number of moved
	// partitions is the least possible: a member joining a group of m
	// that shares p partitions takes about p/(m+1) of them, and a member
	// leaving moves only its own partitions.
	//
	// An owned partition is released before assigning when its topic no
	// longer exists or has fewer partitions, when its owner no longer
	// subscribes to the topic, or when two members claim it. The result
	// depends only on the input, not on the order of members or of their
	// Topics and Owned lists.
	//
	// Assign returns the target assignment. Under KIP-429 the coordinator
	// must not hand a partition to its new owner until the old owner has
	// revoked it; diffAssignment tells what each member gives up and
	// gains.
	CooperativeStickyAssignor Assignor = cooperativeStickyAssignor{}
)

// memberLess orders members as Kafka's AbstractPartitionAssignor.MemberInfo:
// static members (with an InstanceID) before dynamic ones, static members
// by InstanceID, dynamic members by ID. Ties fall back to ID so the order
// is total.
func memberLess(a, b *GroupMember) int {
	aStatic, bStatic := a.InstanceID != "", b.InstanceID != ""
	switch {
	case aStatic && bStatic:
		if c := cmp.Compare(a.InstanceID, b.InstanceID); c != 0 {
			return c
		}
	case aStatic:
		return -1
	case bStatic:
		return 1
	}
	return cmp.Compare(a.ID, b.ID)
}

// groupInput is the normalized input every assignor works from: members
// deduplicated and sorted by memberLess, and the topics that can be
// assigned (they exist with at least one partition and have at least one
// subscriber), sorted, with their subscribers in member order.
type groupInput struct {
	members []*GroupMember
	topics  []string // sorted
	counts  []int32  // counts[t]: partitions of topics[t], > 0
	subs    [][]int  // subs[t]: indexes into members of topics[t]'s subscribers, ascending
	topicIx map[string]int
	subSets []map[string]bool // subSets[m]: topics members[m] subscribes to
}

func newGroupInput(members []GroupMember, partitions map[string]int32) *groupInput {
	in := &groupInput{topicIx: make(map[string]int)}
	seen := make(map[string]bool, len(members))
	for i := range members {
		if seen[members[i].ID] {
			continue
		}
		seen[members[i].ID] = true
		in.members = append(in.members, &members[i])
	}
	slices.SortFunc(in.members, memberLess)

	in.subSets = make([]map[string]bool, len(in.members))
	subscribed := make(map[string]bool)
	for m, mem := range in.members {
		set := make(map[string]bool, len(mem.Topics))
		for _, t := range mem.Topics {
			set[t] = true
			subscribed[t] = true
		}
		in.subSets[m] = set
	}
	for t, n := range partitions {
		if n > 0 && subscribed[t] {
			in.topics = append(in.topics, t)
		}
	}
	slices.Sort(in.topics)
	in.counts = make([]int32, len(in.topics))
	in.subs = make([][]int, len(in.topics))
	for ti, t := range in.topics {
		in.topicIx[t] = ti
		in.counts[ti] = partitions[t]
		for m := range in.members {
			if in.subSets[m][t] {
				in.subs[ti] = append(in.subs[ti], m)
			}
		}
	}
	return in
}

// result returns a map with an entry, nil for now, for every member.
func (in *groupInput) result() map[string][]TopicPartition {
	res := make(map[string][]TopicPartition, len(in.members))
	for _, mem := range in.members {
		res[mem.ID] = nil
	}
	return res
}

type rangeAssignor struct{}

func (rangeAssignor) Name() string { return "range" }

func (rangeAssignor) Assign(members []GroupMember, partitions map[string]int32) map[string][]TopicPartition {
	in := newGroupInput(members, partitions)
	res := in.result()
	// Topics in sorted order, so each member's slice comes out sorted.
	for ti, topic := range in.topics {
		subs := in.subs[ti]
		n, m := int(in.counts[ti]), len(subs)
		per, extra := n/m, n%m
		start := 0
		for i, mi := range subs {
			size := per
			if i < extra {
				size++
			}
			id := in.members[mi].ID
			for p := start; p < start+size; p++ {
				res[id] = append(res[id], TopicPartition{Topic: topic, Partition: int32(p)})
			}
			start += size
		}
	}
	return res
}

type roundRobinAssignor struct{}

func (roundRobinAssignor) Name() string { return "roundrobin" }

func (roundRobinAssignor) Assign(members []GroupMember, partitions map[string]int32) map[string][]TopicPartition {
	in := newGroupInput(members, partitions)
	res := in.result()
	next := 0 // index into in.members of the member whose turn it is
	for ti, topic := range in.topics {
		for p := range in.counts[ti] {
			// Every topic in in.topics has a subscriber, so this ends
			// within one lap.
			for !in.subSets[next][topic] {
				next = (next + 1) % len(in.members)
			}
			id := in.members[next].ID
			res[id] = append(res[id], TopicPartition{Topic: topic, Partition: p})
			next = (next + 1) % len(in.members)
		}
	}
	return res
}

type cooperativeStickyAssignor struct{}

func (cooperativeStickyAssignor) Name() string { return "cooperative-sticky" }

// Assign works in three steps:
//
//  1. Keep: every owned partition that is still valid (it exists, its
//     owner subscribes to its topic, and no other member claims it) stays
//     with its owner.
//  2. Fill: each remaining partition, those with the fewest possible owners
//     first, goes to the subscriber that owns the fewest partitions.
//  3. Balance: while some partition could move from its owner to another
//     subscriber owning at least two fewer, move one, choosing the pair
//     with the largest gap and preferring a partition the giver did not
//     own before this rebalance.
//
// Each move in step 3 lowers the sum of the squared member counts, so the
// loop ends. With equal subscriptions, step 2 leaves every member that
// received a partition within one of the minimum, so step 3 takes only
// from members above their share, the largest first: exactly the moves
// any balanced assignment must make.
func (cooperativeStickyAssignor) Assign(members []GroupMember, partitions map[string]int32) map[string][]TopicPartition {
	in := newGroupInput(members, partitions)
	res := in.result()
	if len(in.topics) == 0 {
		return res
	}

	// owner[t][p] is the member index owning partition p of topics[t], or
	// -1; prev[t][p] the member that owned it validly before this call.
	owner := make([][]int, len(in.topics))
	prev := make([][]int, len(in.topics))
	for ti, n := range in.counts {
		owner[ti] = make([]int, n)
		prev[ti] = make([]int, n)
		for p := range owner[ti] {
			owner[ti][p], prev[ti][p] = -1, -1
		}
	}
	count := make([]int, len(in.members)) // partitions owned, per member
	// held[m][t]: partitions of topics[t] owned by member m.
	held := make([][]int, len(in.members))
	for m := range held {
		held[m] = make([]int, len(in.topics))
	}

	// 1. Keep. A claim is valid if the partition exists and the claimant
	// subscribes; two members claiming one partition both lose it.
	const contested = -2
	for m, mem := range in.members {
		for _, tp := range mem.Owned {
			ti, ok := in.topicIx[tp.Topic]
			if !ok || tp.Partition < 0 || tp.Partition >= in.counts[ti] || !in.subSets[m][tp.Topic] {
				continue
			}
			switch cur := prev[ti][tp.Partition]; cur {
			case -1:
				prev[ti][tp.Partition] = m
			case m, contested: // listed twice by m, or already contested
			default:
				prev[ti][tp.Partition] = contested
			}
		}
	}
	for ti := range prev {
		for p, m := range prev[ti] {
			if m == contested {
				prev[ti][p] = -1
				continue
			}
			if m >= 0 {
				owner[ti][p] = m
				count[m]++
				held[m][ti]++
			}
		}
	}

	// 2. Fill, the most constrained partitions first.
	type freePartition struct{ ti, p int }
	var free []freePartition
	for ti := range owner {
		for p, m := range owner[ti] {
			if m < 0 {
				free = append(free, freePartition{ti, p})
			}
		}
	}
	slices.SortStableFunc(free, func(a, b freePartition) int {
		return cmp.Compare(len(in.subs[a.ti]), len(in.subs[b.ti]))
	})
	for _, f := range free {
		best := -1
		for _, m := range in.subs[f.ti] {
			if best < 0 || count[m] < count[best] {
				best = m
			}
		}
		owner[f.ti][f.p] = best
		count[best]++
		held[best][f.ti]++
	}

	// 3. Balance.
	for {
		giver, taker, topic := -1, -1, -1
		gap := 1
		for ti, subs := range in.subs {
			g, t := -1, -1
			for _, m := range subs {
				if held[m][ti] > 0 && (g < 0 || count[m] > count[g]) {
					g = m
				}
				if t < 0 || count[m] < count[t] {
					t = m
				}
			}
			if g >= 0 && count[g]-count[t] > gap {
				giver, taker, topic, gap = g, t, ti, count[g]-count[t]
			}
		}
		if giver < 0 {
			break
		}
		// Move the giver's highest partition of the topic, preferring one
		// it did not own before.
		move := -1
		for p := len(owner[topic]) - 1; p >= 0; p-- {
			if owner[topic][p] != giver {
				continue
			}
			if prev[topic][p] != giver {
				move = p
				break
			}
			if move < 0 {
				move = p
			}
		}
		owner[topic][move] = taker
		count[giver]--
		held[giver][topic]--
		count[taker]++
		held[taker][topic]++
	}

	for ti, topic := range in.topics {
		for p, m := range owner[ti] {
			id := in.members[m].ID
			res[id] = append(res[id], TopicPartition{Topic: topic, Partition: int32(p)})
		}
	}
	return res
}

// diffAssignment compares a member's assignment before and after a
// rebalance: revoked holds what before has and after lacks, added what
// after has and before lacks, both sorted by topic, then partition,
// without duplicates, and nil when empty. Under cooperative rebalancing (KIP-429) the
// coordinator has the member revoke the first set (OnRevoked, commit)
// before any other member receives it, and assigns the second.
func diffAssignment(before, after []TopicPartition) (revoked, added []TopicPartition) {
	inBefore := make(map[TopicPartition]bool, len(before))
	for _, tp := range before {
		inBefore[tp] = true
	}
	inAfter := make(map[TopicPartition]bool, len(after))
	for _, tp := range after {
		inAfter[tp] = true
	}
	for tp := range inBefore {
		if !inAfter[tp] {
			revoked = append(revoked, tp)
		}
	}
	for tp := range inAfter {
		if !inBefore[tp] {
			added = append(added, tp)
		}
	}
	slices.SortFunc(revoked, compareTopicPartition)
	slices.SortFunc(added, compareTopicPartition)
	return revoked, added
}

// compareTopicPartition orders by topic, then partition.
func compareTopicPartition(a, b TopicPartition) int {
	if c := cmp.Compare(a.Topic, b.Topic); c != 0 {
		return c
	}
	return cmp.Compare(a.Partition, b.Partition)
}
