package stream

import (
	"slices"
	"testing"
)

func TestDiffAssignment(t *testing.T) {
	tp := func(topic string, p int32) TopicPartition { return TopicPartition{Topic: topic, Partition: p} }
	for _, tc := range []struct {
		name                   string
		before, after          []TopicPartition
		wantRevoked, wantAdded []TopicPartition
	}{
		{name: "both empty"},
		{name: "unchanged", before: []TopicPartition{tp("a", 0), tp("b", 1)}, after: []TopicPartition{tp("b", 1), tp("a", 0)}},
		{
			name:      "first assignment",
			after:     []TopicPartition{tp("b", 0), tp("a", 2), tp("a", 1)},
			wantAdded: []TopicPartition{tp("a", 1), tp("a", 2), tp("b", 0)},
		},
		{
			name:        "everything revoked",
			before:      []TopicPartition{tp("a", 10), tp("a", 9)},
			wantRevoked: []TopicPartition{tp("a", 9), tp("a", 10)},
		},
		{
			name:        "some move, duplicates collapse",
			before:      []TopicPartition{tp("x", 0), tp("x", 1), tp("y", 0), tp("x", 1)},
			after:       []TopicPartition{tp("x", 0), tp("z", 3), tp("y", 1), tp("z", 3)},
			wantRevoked: []TopicPartition{tp("x", 1), tp("y", 0)},
			wantAdded:   []TopicPartition{tp("y", 1), tp("z", 3)},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			revoked, added := diffAssignment(tc.before, tc.after)
			if !slices.Equal(revoked, tc.wantRevoked) || !slices.Equal(added, tc.wantAdded) {
				t.Errorf("got revoked %v, added %v; want %v, %v", revoked, added, tc.wantRevoked, tc.wantAdded)
			}
			if (revoked == nil) != (len(revoked) == 0) || (added == nil) != (len(added) == 0) {
				t.Errorf("empty results must be nil: %#v, %#v", revoked, added)
			}
		})
	}
}

func TestMemberLess(t *testing.T) {
	// Kafka's MemberInfo order: static members by instance ID, then
	// dynamic members by member ID.
	ms := []GroupMember{
		{ID: "a"},
		{ID: "b", InstanceID: "y"},
		{ID: "c", InstanceID: "x"},
		{ID: "0"},
		{ID: "z", InstanceID: "x"}, // duplicate instance ID: member ID decides
	}
	slices.SortFunc(ms, func(a, b GroupMember) int { return memberLess(&a, &b) })
	var ids []string
	for _, m := range ms {
		ids = append(ids, m.ID)
	}
	if want := []string{"c", "z", "b", "0", "a"}; !slices.Equal(ids, want) {
		t.Errorf("order %v, want %v", ids, want)
	}
}
