package stream_test

import (
	"cmp"
	"flag"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/instream/stream"
)

var assignorSeed = flag.Uint64("assignor.seed", 0, "seed of the assignor property tests; 0: from the clock")

// testSeed returns the seed for a property test and logs it, so a failure
// can be replayed with -assignor.seed.
func testSeed(t *testing.T) uint64 {
	t.Helper()
	seed := *assignorSeed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("replay with: go test -run '^%s$' -assignor.seed=%d", t.Name(), seed)
		}
	})
	return seed
}

// parts parses "t0p0 t0p1 t1p0" into topic-partitions; the partition
// number follows the last "p".
func parts(t testing.TB, s string) []stream.TopicPartition {
	t.Helper()
	var out []stream.TopicPartition
	for _, f := range strings.Fields(s) {
		i := strings.LastIndexByte(f, 'p')
		n, err := strconv.Atoi(f[i+1:])
		if i <= 0 || err != nil {
			t.Fatalf("bad partition %q", f)
		}
		out = append(out, stream.TopicPartition{Topic: f[:i], Partition: int32(n)})
	}
	return out
}

func format(tps []stream.TopicPartition) string {
	var b strings.Builder
	for i, tp := range tps {
		if i > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "%sp%d", tp.Topic, tp.Partition)
	}
	return b.String()
}

func member(id string, topics ...string) stream.GroupMember {
	return stream.GroupMember{ID: id, Topics: topics}
}

func owning(t testing.TB, m stream.GroupMember, owned string) stream.GroupMember {
	m.Owned = parts(t, owned)
	return m
}

type assignCase struct {
	name       string
	members    []stream.GroupMember
	partitions map[string]int32
	want       map[string]string // member ID → its partitions as for parts; "" idle
}

func runAssignCases(t *testing.T, a stream.Assignor, cases []assignCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := a.Assign(tc.members, tc.partitions)
			if err := checkAssignment(tc.members, tc.partitions, got); err != nil {
				t.Error(err)
			}
			if len(got) != len(tc.want) {
				t.Errorf("got %d members, want %d: %v", len(got), len(tc.want), got)
			}
			for id, want := range tc.want {
				tps, ok := got[id]
				if !ok {
					t.Errorf("member %s missing from the result", id)
					continue
				}
				if g := format(tps); g != want {
					t.Errorf("member %s: got %q, want %q", id, g, want)
				}
			}
		})
	}
}

func TestAssignorNames(t *testing.T) {
	for a, want := range map[stream.Assignor]string{
		stream.RangeAssignor:             "range",
		stream.RoundRobinAssignor:        "roundrobin",
		stream.CooperativeStickyAssignor: "cooperative-sticky",
	} {
		if got := a.Name(); got != want {
			t.Errorf("Name() = %q, want %q", got, want)
		}
	}
}

func TestRangeAssignor(t *testing.T) {
	both := []string{"t0", "t1"}
	runAssignCases(t, stream.RangeAssignor, []assignCase{{
		// The example of Kafka's RangeAssignor documentation.
		name:       "kafka example",
		members:    []stream.GroupMember{member("C1", both...), member("C0", both...)},
		partitions: map[string]int32{"t0": 3, "t1": 3},
		want:       map[string]string{"C0": "t0p0 t0p1 t1p0 t1p1", "C1": "t0p2 t1p2"},
	}, {
		name:       "first n%m members get one more",
		members:    []stream.GroupMember{member("C0", "t"), member("C1", "t"), member("C2", "t")},
		partitions: map[string]int32{"t": 8},
		want:       map[string]string{"C0": "tp0 tp1 tp2", "C1": "tp3 tp4 tp5", "C2": "tp6 tp7"},
	}, {
		name:       "more members than partitions",
		members:    []stream.GroupMember{member("d", "t"), member("c", "t"), member("b", "t"), member("a", "t")},
		partitions: map[string]int32{"t": 2},
		want:       map[string]string{"a": "tp0", "b": "tp1", "c": "", "d": ""},
	}, {
		name:       "mixed subscriptions",
		members:    []stream.GroupMember{member("C0", "t0"), member("C1", "t0", "t1"), member("C2", "t1")},
		partitions: map[string]int32{"t0": 3, "t1": 2},
		want:       map[string]string{"C0": "t0p0 t0p1", "C1": "t0p2 t1p0", "C2": "t1p1"},
	}, {
		// Kafka's MemberInfo order: static members first, by instance
		// ID, then dynamic members by member ID.
		name: "static members first",
		members: []stream.GroupMember{
			member("a", "t"),
			{ID: "b", InstanceID: "y", Topics: []string{"t"}},
			{ID: "c", InstanceID: "x", Topics: []string{"t"}},
		},
		partitions: map[string]int32{"t": 3},
		want:       map[string]string{"c": "tp0", "b": "tp1", "a": "tp2"},
	}, {
		name:       "unknown, empty and unsubscribed topics",
		members:    []stream.GroupMember{member("C0", "t0", "ghost", "empty"), member("C1")},
		partitions: map[string]int32{"t0": 2, "empty": 0, "other": 5},
		want:       map[string]string{"C0": "t0p0 t0p1", "C1": ""},
	}, {
		name:       "no members",
		partitions: map[string]int32{"t0": 2},
		want:       map[string]string{},
	}, {
		name:       "repeated member ID",
		members:    []stream.GroupMember{member("C0", "t0"), member("C0", "t1")},
		partitions: map[string]int32{"t0": 1, "t1": 1},
		want:       map[string]string{"C0": "t0p0"},
	}})
}

func TestRoundRobinAssignor(t *testing.T) {
	both := []string{"t0", "t1"}
	runAssignCases(t, stream.RoundRobinAssignor, []assignCase{{
		// The first example of Kafka's RoundRobinAssignor documentation.
		name:       "kafka example",
		members:    []stream.GroupMember{member("C1", both...), member("C0", both...)},
		partitions: map[string]int32{"t0": 3, "t1": 3},
		want:       map[string]string{"C0": "t0p0 t0p2 t1p1", "C1": "t0p1 t1p0 t1p2"},
	}, {
		// The second example of Kafka's RoundRobinAssignor documentation:
		// members not subscribed to a topic are passed over.
		name: "kafka mixed subscriptions",
		members: []stream.GroupMember{
			member("C0", "t0"), member("C1", "t0", "t1"), member("C2", "t0", "t1", "t2"),
		},
		partitions: map[string]int32{"t0": 1, "t1": 2, "t2": 3},
		want:       map[string]string{"C0": "t0p0", "C1": "t1p0", "C2": "t1p1 t2p0 t2p1 t2p2"},
	}, {
		name:       "more members than partitions",
		members:    []stream.GroupMember{member("C2", "t"), member("C0", "t"), member("C1", "t")},
		partitions: map[string]int32{"t": 2},
		want:       map[string]string{"C0": "tp0", "C1": "tp1", "C2": ""},
	}, {
		name: "static members first",
		members: []stream.GroupMember{
			member("a", "t"),
			{ID: "b", InstanceID: "y", Topics: []string{"t"}},
			{ID: "c", InstanceID: "x", Topics: []string{"t"}},
		},
		partitions: map[string]int32{"t": 4},
		want:       map[string]string{"c": "tp0 tp3", "b": "tp1", "a": "tp2"},
	}, {
		name:       "owned is ignored",
		members:    []stream.GroupMember{owning(t, member("C0", "t"), "tp1"), owning(t, member("C1", "t"), "tp0")},
		partitions: map[string]int32{"t": 2},
		want:       map[string]string{"C0": "tp0", "C1": "tp1"},
	}})
}

func TestCooperativeStickyAssignor(t *testing.T) {
	both := []string{"t0", "t1"}
	all := []string{"t0", "t1", "t2", "t3"}
	runAssignCases(t, stream.CooperativeStickyAssignor, []assignCase{{
		name:       "fresh group",
		members:    []stream.GroupMember{member("C1", both...), member("C0", both...)},
		partitions: map[string]int32{"t0": 3, "t1": 3},
		want:       map[string]string{"C0": "t0p0 t0p2 t1p1", "C1": "t0p1 t1p0 t1p2"},
	}, {
		name: "balanced ownership is kept",
		members: []stream.GroupMember{
			owning(t, member("C0", both...), "t0p0 t0p1 t0p2"),
			owning(t, member("C1", both...), "t1p0 t1p1 t1p2"),
		},
		partitions: map[string]int32{"t0": 3, "t1": 3},
		want:       map[string]string{"C0": "t0p0 t0p1 t0p2", "C1": "t1p0 t1p1 t1p2"},
	}, {
		// The example of Kafka's StickyAssignor documentation: C1 leaves,
		// C0 and C2 keep everything they had and share C1's partitions.
		name: "kafka example, a member leaves",
		members: []stream.GroupMember{
			owning(t, member("C0", all...), "t0p0 t1p1 t3p0"),
			owning(t, member("C2", all...), "t1p0 t2p1"),
		},
		partitions: map[string]int32{"t0": 2, "t1": 2, "t2": 2, "t3": 2},
		want:       map[string]string{"C0": "t0p0 t1p1 t2p0 t3p0", "C2": "t0p1 t1p0 t2p1 t3p1"},
	}, {
		name: "a member joins",
		members: []stream.GroupMember{
			owning(t, member("C0", "t"), "tp0 tp1 tp2"),
			owning(t, member("C1", "t"), "tp3 tp4 tp5"),
			member("C2", "t"),
		},
		partitions: map[string]int32{"t": 6},
		want:       map[string]string{"C0": "tp0 tp1", "C1": "tp3 tp4", "C2": "tp2 tp5"},
	}, {
		name: "invalid ownership is released",
		members: []stream.GroupMember{
			// t1p0: C0 does not subscribe to t1; t0p9, ghostp0: do not exist.
			owning(t, member("C0", "t0"), "t0p0 t1p0 t0p9 ghostp0"),
			owning(t, member("C1", both...), "t1p1 t1p1"),
		},
		partitions: map[string]int32{"t0": 2, "t1": 2},
		want:       map[string]string{"C0": "t0p0 t0p1", "C1": "t1p0 t1p1"},
	}, {
		// A and B both claim tp0: neither keeps it on that claim, so the
		// fill gives it to the least loaded member in order (B), and A
		// keeps only tp1.
		name: "contested partition is released",
		members: []stream.GroupMember{
			owning(t, member("A", "t"), "tp0 tp1"),
			owning(t, member("B", "t"), "tp0"),
			member("C", "t"),
		},
		partitions: map[string]int32{"t": 3},
		want:       map[string]string{"A": "tp1", "B": "tp0", "C": "tp2"},
	}, {
		name: "more members than partitions",
		members: []stream.GroupMember{
			owning(t, member("C0", "t"), "tp0"), member("C1", "t"), owning(t, member("C2", "t"), "tp1"),
		},
		partitions: map[string]int32{"t": 2},
		want:       map[string]string{"C0": "tp0", "C1": "", "C2": "tp1"},
	}, {
		// C0 stops subscribing to t0, so C1, its only subscriber, takes
		// it; balance then makes C1 give up all of t1.
		name: "unsubscribing releases",
		members: []stream.GroupMember{
			owning(t, member("C0", "t1"), "t0p0 t0p1"),
			owning(t, member("C1", "t0", "t1"), "t1p0 t1p1"),
		},
		partitions: map[string]int32{"t0": 2, "t1": 2},
		want:       map[string]string{"C0": "t1p0 t1p1", "C1": "t0p0 t0p1"},
	}})
}

// TestCooperativeStickyJoinLeave: 3 members share 12 partitions; a 4th
// joins and exactly 3 partitions move, one from each; then one leaves and
// only its partitions move.
func TestCooperativeStickyJoinLeave(t *testing.T) {
	a := stream.CooperativeStickyAssignor
	counts := map[string]int32{"orders": 7, "payments": 5}
	sub := []string{"orders", "payments"}
	group := []stream.GroupMember{member("A", sub...), member("B", sub...), member("C", sub...)}
	cur := a.Assign(group, counts)
	for id, tps := range cur {
		if len(tps) != 4 {
			t.Fatalf("initial: %s owns %d partitions, want 4: %v", id, len(tps), cur)
		}
	}

	withOwned := func(ids ...string) []stream.GroupMember {
		var ms []stream.GroupMember
		for _, id := range ids {
			m := member(id, sub...)
			m.Owned = cur[id]
			ms = append(ms, m)
		}
		return ms
	}

	// D joins.
	next := a.Assign(withOwned("A", "B", "C", "D"), counts)
	if err := checkAssignment(withOwned("A", "B", "C", "D"), counts, next); err != nil {
		t.Fatal(err)
	}
	moved := 0
	for _, id := range []string{"A", "B", "C"} {
		revoked, added := diffOf(cur[id], next[id])
		if len(revoked) != 1 || len(added) != 0 {
			t.Errorf("join: %s revoked %v and added %v; want 1 revoked, none added", id, revoked, added)
		}
		moved += len(revoked)
	}
	if moved != 3 || len(next["D"]) != 3 {
		t.Errorf("join: %d partitions moved and D got %v; want 3 and 3", moved, next["D"])
	}
	cur = next

	// B leaves.
	next = a.Assign(withOwned("A", "C", "D"), counts)
	if err := checkAssignment(withOwned("A", "C", "D"), counts, next); err != nil {
		t.Fatal(err)
	}
	gained := 0
	for _, id := range []string{"A", "C", "D"} {
		revoked, added := diffOf(cur[id], next[id])
		if len(revoked) != 0 {
			t.Errorf("leave: %s lost %v; only B's partitions may move", id, revoked)
		}
		for _, tp := range added {
			if !slices.Contains(cur["B"], tp) {
				t.Errorf("leave: %s gained %v, which B did not own", id, tp)
			}
		}
		gained += len(added)
		if n := len(next[id]); n != 4 {
			t.Errorf("leave: %s owns %d, want 4", id, n)
		}
	}
	if gained != len(cur["B"]) {
		t.Errorf("leave: %d partitions moved, want B's %d", gained, len(cur["B"]))
	}
}

// diffOf is a black-box twin of diffAssignment for the tests.
func diffOf(before, after []stream.TopicPartition) (revoked, added []stream.TopicPartition) {
	for _, tp := range before {
		if !slices.Contains(after, tp) {
			revoked = append(revoked, tp)
		}
	}
	for _, tp := range after {
		if !slices.Contains(before, tp) {
			added = append(added, tp)
		}
	}
	return revoked, added
}

// checkAssignment checks what every assignor promises: every member in
// the result and nobody else; each member's partitions sorted; each
// subscribed, existing partition assigned exactly once, to a subscriber;
// nothing else assigned.
func checkAssignment(members []stream.GroupMember, partitions map[string]int32, got map[string][]stream.TopicPartition) error {
	subs := make(map[string]map[string]bool)
	anySub := make(map[string]bool)
	for _, m := range members {
		if subs[m.ID] != nil {
			continue // repeated ID: the first counts
		}
		subs[m.ID] = make(map[string]bool)
		for _, t := range m.Topics {
			subs[m.ID][t] = true
			anySub[t] = true
		}
	}
	if len(got) != len(subs) {
		return fmt.Errorf("result has %d members, input %d: %v", len(got), len(subs), got)
	}
	owner := make(map[stream.TopicPartition]string)
	for id, tps := range got {
		if subs[id] == nil {
			return fmt.Errorf("result names %q, not a member", id)
		}
		if !slices.IsSortedFunc(tps, compareTP) {
			return fmt.Errorf("member %s: partitions not sorted: %v", id, tps)
		}
		for _, tp := range tps {
			if prev, dup := owner[tp]; dup {
				return fmt.Errorf("%v assigned to both %s and %s", tp, prev, id)
			}
			owner[tp] = id
			if !subs[id][tp.Topic] {
				return fmt.Errorf("%v assigned to %s, which does not subscribe to %s", tp, id, tp.Topic)
			}
			if tp.Partition < 0 || tp.Partition >= partitions[tp.Topic] {
				return fmt.Errorf("%v assigned to %s does not exist", tp, id)
			}
		}
	}
	for topic, n := range partitions {
		if !anySub[topic] {
			continue
		}
		for p := range n {
			tp := stream.TopicPartition{Topic: topic, Partition: p}
			if _, ok := owner[tp]; !ok {
				return fmt.Errorf("%v has subscribers but is not assigned", tp)
			}
		}
	}
	return nil
}

// checkLocalBalance is the balance rule of the sticky assignors (Kafka's
// AbstractStickyAssignorTest.verifyValidityAndBalance): when one member
// owns at least two more partitions than another, the other subscribes to
// none of the first one's topics. It implies that members with equal
// subscriptions own counts differing by at most one.
func checkLocalBalance(members []stream.GroupMember, got map[string][]stream.TopicPartition) error {
	for _, a := range members {
		for _, b := range members {
			if len(got[a.ID]) < len(got[b.ID])+2 {
				continue
			}
			for _, tp := range got[a.ID] {
				if slices.Contains(b.Topics, tp.Topic) {
					return fmt.Errorf("unbalanced: %s owns %d partitions including %v, %s owns %d and subscribes to %s",
						a.ID, len(got[a.ID]), tp, b.ID, len(got[b.ID]), tp.Topic)
				}
			}
		}
	}
	return nil
}

func compareTP(a, b stream.TopicPartition) int {
	if c := cmp.Compare(a.Topic, b.Topic); c != 0 {
		return c
	}
	return cmp.Compare(a.Partition, b.Partition)
}

// randomGroup builds a random group: up to 8 members with random (some
// empty) subscriptions among up to 5 topics, some of them missing from
// partitions or empty, some static members, and random, partly invalid
// and contested, ownership.
func randomGroup(r *rand.Rand) ([]stream.GroupMember, map[string]int32) {
	nTopics := 1 + r.IntN(5)
	topics := make([]string, nTopics)
	partitions := make(map[string]int32)
	for i := range topics {
		topics[i] = fmt.Sprintf("t%d", i)
		switch r.IntN(8) {
		case 0: // unknown to the cluster
		case 1:
			partitions[topics[i]] = 0
		default:
			partitions[topics[i]] = int32(1 + r.IntN(12))
		}
	}
	partitions["unsubscribed"] = 3
	var all []stream.TopicPartition
	for topic, n := range partitions {
		for p := range n + 1 { // one past the end: invalid
			all = append(all, stream.TopicPartition{Topic: topic, Partition: p})
		}
	}
	members := make([]stream.GroupMember, r.IntN(9))
	for i := range members {
		m := &members[i]
		m.ID = fmt.Sprintf("m%02d", r.IntN(100))
		if r.IntN(3) == 0 {
			m.InstanceID = fmt.Sprintf("i%02d", r.IntN(100))
		}
		for _, t := range topics {
			if r.IntN(3) > 0 {
				m.Topics = append(m.Topics, t)
			}
		}
		for _, tp := range all {
			if r.IntN(len(members)+1) == 0 {
				m.Owned = append(m.Owned, tp)
			}
		}
	}
	return members, partitions
}

// dedupe keeps the first member of each ID, as the assignors do.
func dedupe(members []stream.GroupMember) []stream.GroupMember {
	seen := make(map[string]bool)
	var out []stream.GroupMember
	for _, m := range members {
		if !seen[m.ID] {
			seen[m.ID] = true
			out = append(out, m)
		}
	}
	return out
}

func TestAssignorInvariants(t *testing.T) {
	for _, a := range []stream.Assignor{stream.RangeAssignor, stream.RoundRobinAssignor, stream.CooperativeStickyAssignor} {
		t.Run(a.Name(), func(t *testing.T) {
			r := rand.New(rand.NewPCG(testSeed(t), 1))
			for i := range 400 {
				members, partitions := randomGroup(r)
				got := a.Assign(members, partitions)
				if err := checkAssignment(members, partitions, got); err != nil {
					t.Fatalf("case %d: %v\nmembers: %+v\npartitions: %v", i, err, members, partitions)
				}
				if err := checkBalance(a, dedupe(members), partitions, got); err != nil {
					t.Fatalf("case %d: %v\nmembers: %+v\npartitions: %v\ngot: %v", i, err, members, partitions, got)
				}
				// The same input in another order gives the same output.
				shuffled := slices.Clone(dedupe(members))
				r.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
				for j := range shuffled {
					m := &shuffled[j]
					m.Topics, m.Owned = slices.Clone(m.Topics), slices.Clone(m.Owned)
					r.Shuffle(len(m.Topics), func(i, j int) { m.Topics[i], m.Topics[j] = m.Topics[j], m.Topics[i] })
					r.Shuffle(len(m.Owned), func(i, j int) { m.Owned[i], m.Owned[j] = m.Owned[j], m.Owned[i] })
				}
				if again := a.Assign(shuffled, partitions); !equalAssignments(got, again) {
					t.Fatalf("case %d: order changed the result:\n%v\n%v", i, got, again)
				}
			}
		})
	}
}

// checkBalance checks each assignor's own balance rule.
func checkBalance(a stream.Assignor, members []stream.GroupMember, partitions map[string]int32, got map[string][]stream.TopicPartition) error {
	switch a.Name() {
	case "range":
		// Per topic, members get contiguous ranges whose sizes never
		// grow and differ by at most one, in Kafka's member order.
		sorted := slices.SortedFunc(slices.Values(members), func(a, b stream.GroupMember) int {
			if (a.InstanceID != "") != (b.InstanceID != "") {
				if a.InstanceID != "" {
					return -1
				}
				return 1
			}
			return cmp.Or(cmp.Compare(a.InstanceID, b.InstanceID), cmp.Compare(a.ID, b.ID))
		})
		for topic, n := range partitions {
			next := int32(0)
			var sizes []int
			for _, m := range sorted {
				if !slices.Contains(m.Topics, topic) {
					continue
				}
				size := 0
				for _, tp := range got[m.ID] {
					if tp.Topic != topic {
						continue
					}
					if tp.Partition != next {
						return fmt.Errorf("range: %s got %v, want %sp%d next", m.ID, tp, topic, next)
					}
					next++
					size++
				}
				sizes = append(sizes, size)
			}
			if len(sizes) > 0 && (sizes[0]-sizes[len(sizes)-1] > 1 || !slices.IsSortedFunc(sizes, func(a, b int) int { return b - a })) {
				return fmt.Errorf("range: topic %s (%d partitions) split as %v", topic, n, sizes)
			}
		}
	case "roundrobin":
		// With equal subscriptions, counts differ by at most one.
		for _, m := range members {
			if !slices.Equal(slices.Sorted(slices.Values(m.Topics)), slices.Sorted(slices.Values(members[0].Topics))) {
				return nil
			}
		}
		lo, hi := -1, -1
		for _, m := range members {
			n := len(got[m.ID])
			if lo < 0 || n < lo {
				lo = n
			}
			hi = max(hi, n)
		}
		if hi-lo > 1 {
			return fmt.Errorf("roundrobin: equal subscriptions, counts from %d to %d", lo, hi)
		}
	case "cooperative-sticky":
		if err := checkLocalBalance(members, got); err != nil {
			return err
		}
		// Stable: feeding the result back as ownership changes nothing.
		again := slices.Clone(members)
		for i := range again {
			again[i].Owned = got[again[i].ID]
		}
		if next := a.Assign(again, partitions); !equalAssignments(got, next) {
			return fmt.Errorf("sticky: not stable, %v became %v", got, next)
		}
	}
	return nil
}

func equalAssignments(a, b map[string][]stream.TopicPartition) bool {
	return maps.EqualFunc(a, b, func(x, y []stream.TopicPartition) bool { return slices.Equal(x, y) })
}

// minMoves is the fewest previously owned partitions any balanced
// assignment must move when every member subscribes to every partition
// and owned holds no invalid or contested claims: the quota q+1 goes to
// the r members owning the most, q to the rest, and every partition over
// quota moves.
func minMoves(owned []int, total int) int {
	m := len(owned)
	q, r := total/m, total%m
	sorted := slices.Sorted(slices.Values(owned))
	slices.Reverse(sorted)
	moves := 0
	for i, o := range sorted {
		quota := q
		if i < r {
			quota++
		}
		moves += max(0, o-quota)
	}
	return moves
}

// TestCooperativeStickyMinimalMovement walks random groups with equal
// subscriptions through joins, leaves, partition additions and arbitrary
// (unbalanced) ownership, and checks each rebalance moves exactly the
// partitions a balanced assignment must move.
func TestCooperativeStickyMinimalMovement(t *testing.T) {
	a := stream.CooperativeStickyAssignor
	r := rand.New(rand.NewPCG(testSeed(t), 2))
	topics := []string{"a", "b", "c"}
	for run := range 40 {
		partitions := map[string]int32{"a": int32(1 + r.IntN(10)), "b": int32(r.IntN(10)), "c": int32(1 + r.IntN(10))}
		owned := map[string][]stream.TopicPartition{}
		nextID := 0
		join := func() {
			owned[fmt.Sprintf("m%03d", nextID)] = nil
			nextID++
		}
		for range 1 + r.IntN(6) {
			join()
		}
		for step := range 30 {
			switch ids := slices.Sorted(maps.Keys(owned)); r.IntN(6) {
			case 0, 1:
				join()
			case 2:
				if len(ids) > 1 {
					delete(owned, ids[r.IntN(len(ids))])
				}
			case 3:
				partitions[topics[r.IntN(3)]] += int32(r.IntN(4))
			case 4: // scramble: arbitrary, unbalanced ownership
				for id := range owned {
					owned[id] = nil
				}
				for topic, n := range partitions {
					for p := range n {
						if r.IntN(3) > 0 {
							id := ids[r.IntN(1+r.IntN(len(ids)))] // skewed to the first
							owned[id] = append(owned[id], stream.TopicPartition{Topic: topic, Partition: p})
						}
					}
				}
			}
			var members []stream.GroupMember
			var counts []int
			total := 0
			for _, n := range partitions {
				total += int(n)
			}
			for _, id := range slices.Sorted(maps.Keys(owned)) {
				members = append(members, stream.GroupMember{ID: id, Topics: topics, Owned: owned[id]})
				counts = append(counts, len(owned[id]))
			}
			got := a.Assign(members, partitions)
			if err := checkAssignment(members, partitions, got); err != nil {
				t.Fatalf("run %d step %d: %v", run, step, err)
			}
			if err := checkLocalBalance(members, got); err != nil {
				t.Fatalf("run %d step %d: %v", run, step, err)
			}
			moved := 0
			for _, m := range members {
				revoked, _ := diffOf(m.Owned, got[m.ID])
				moved += len(revoked)
			}
			if want := minMoves(counts, total); moved != want {
				t.Fatalf("run %d step %d: %d owned partitions moved, want the minimum %d\nowned: %v\ngot: %v",
					run, step, moved, want, owned, got)
			}
			owned = got
		}
	}
}

// brokenAssignor violates one promise, to show the checks can fail.
type brokenAssignor struct {
	name  string
	apply func(map[string][]stream.TopicPartition)
}

func (b brokenAssignor) Name() string { return b.name }

func (b brokenAssignor) Assign(ms []stream.GroupMember, ps map[string]int32) map[string][]stream.TopicPartition {
	res := stream.RoundRobinAssignor.Assign(ms, ps)
	b.apply(res)
	return res
}

func TestAssignmentChecksCatchViolations(t *testing.T) {
	members := []stream.GroupMember{member("A", "t", "u"), member("B", "t"), member("C", "t")}
	partitions := map[string]int32{"t": 6, "u": 1}
	for _, b := range []brokenAssignor{
		{"drops", func(m map[string][]stream.TopicPartition) { m["A"] = m["A"][1:] }},
		{"duplicates", func(m map[string][]stream.TopicPartition) {
			m["B"] = append(m["B"], m["A"][0])
			slices.SortFunc(m["B"], compareTP)
		}},
		{"unsubscribed", func(m map[string][]stream.TopicPartition) {
			m["B"] = append(m["B"], m["A"][len(m["A"])-1])
			m["A"] = m["A"][:len(m["A"])-1]
		}},
		{"unsorted", func(m map[string][]stream.TopicPartition) { slices.Reverse(m["A"]) }},
		{"nonexistent", func(m map[string][]stream.TopicPartition) {
			m["C"] = append(m["C"], stream.TopicPartition{Topic: "t", Partition: 6})
		}},
		{"stranger", func(m map[string][]stream.TopicPartition) { m["Z"] = nil }},
		{"missing member", func(m map[string][]stream.TopicPartition) { m["C"] = append(m["C"], m["B"]...); delete(m, "B") }},
	} {
		if err := checkAssignment(members, partitions, b.Assign(members, partitions)); err == nil {
			t.Errorf("%s: checkAssignment passed", b.name)
		}
	}
	unbalanced := map[string][]stream.TopicPartition{"A": parts(t, "tp0 tp1 tp2 tp3 up0"), "B": parts(t, "tp4"), "C": parts(t, "tp5")}
	if err := checkLocalBalance(members, unbalanced); err == nil {
		t.Error("checkLocalBalance passed an unbalanced assignment")
	}
	// A owns 2 more than B, but only of u, which B does not subscribe to.
	heavy := []stream.GroupMember{member("A", "u"), member("B", "t")}
	if err := checkLocalBalance(heavy, map[string][]stream.TopicPartition{"A": parts(t, "up0 up1"), "B": nil}); err != nil {
		t.Errorf("checkLocalBalance: %v", err)
	}
	if got := minMoves([]int{4, 4, 4, 0}, 12); got != 3 {
		t.Errorf("minMoves = %d, want 3", got)
	}
}

func ExampleCooperativeStickyAssignor() {
	topics := []string{"orders"}
	partitions := map[string]int32{"orders": 6}
	// Two members share the topic; a third joins.
	first := stream.CooperativeStickyAssignor.Assign([]stream.GroupMember{
		{ID: "a", Topics: topics},
		{ID: "b", Topics: topics},
	}, partitions)
	second := stream.CooperativeStickyAssignor.Assign([]stream.GroupMember{
		{ID: "a", Topics: topics, Owned: first["a"]},
		{ID: "b", Topics: topics, Owned: first["b"]},
		{ID: "c", Topics: topics},
	}, partitions)
	for _, id := range []string{"a", "b", "c"} {
		fmt.Println(id, format(first[id]), "->", format(second[id]))
	}
	// Output:
	// a ordersp0 ordersp2 ordersp4 -> ordersp0 ordersp2
	// b ordersp1 ordersp3 ordersp5 -> ordersp1 ordersp3
	// c  -> ordersp4 ordersp5
}

// BenchmarkAssignors rebalances a group of 8 members sharing 4 topics of
// 64 partitions after a 9th joins; for the sticky assignor, with the 8
// owning a balanced assignment.
func BenchmarkAssignors(b *testing.B) {
	topics := []string{"a", "b", "c", "d"}
	partitions := map[string]int32{"a": 64, "b": 64, "c": 64, "d": 64}
	var members []stream.GroupMember
	for i := range 8 {
		members = append(members, member(fmt.Sprintf("m%d", i), topics...))
	}
	owned := stream.CooperativeStickyAssignor.Assign(members, partitions)
	for i := range members {
		members[i].Owned = owned[members[i].ID]
	}
	members = append(members, member("m8", topics...))
	for _, a := range []stream.Assignor{stream.RangeAssignor, stream.RoundRobinAssignor, stream.CooperativeStickyAssignor} {
		b.Run(a.Name(), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				a.Assign(members, partitions)
			}
		})
	}
}
