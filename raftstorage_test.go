package stream

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"reflect"
	"testing"

	"go.etcd.io/bbolt"
	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
)

func openTestBolt(t *testing.T, path string) *bbolt.DB {
	t.Helper()
	db, err := bbolt.Open(path, 0o644, &bbolt.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	return db
}

// compareStorage checks that got answers every question as raft's
// MemoryStorage, the reference, does.
func compareStorage(t *testing.T, step string, got *raftStorage, want *raft.MemoryStorage, rng *rand.Rand) {
	t.Helper()
	gh, _, err := got.InitialState()
	wh, _, _ := want.InitialState()
	if err != nil || !reflect.DeepEqual(gh, wh) {
		t.Fatalf("%s: hard state %+v (%v), want %+v", step, gh, err, wh)
	}
	gf, _ := got.FirstIndex()
	wf, _ := want.FirstIndex()
	gl, _ := got.LastIndex()
	wl, _ := want.LastIndex()
	if gf != wf || gl != wl {
		t.Fatalf("%s: first/last %d/%d, want %d/%d", step, gf, gl, wf, wl)
	}
	for i := wf - min(wf, 2); i <= wl+2; i++ {
		gt, gerr := got.Term(i)
		wt, werr := want.Term(i)
		if gt != wt || !errors.Is(gerr, werr) {
			t.Fatalf("%s: Term(%d) = %d, %v; want %d, %v", step, i, gt, gerr, wt, werr)
		}
	}
	for range 5 {
		lo := wf - 1 + rng.Uint64N(wl-wf+3)
		hi := lo + rng.Uint64N(wl+2-lo)
		if lo >= hi {
			continue
		}
		maxSize := rng.Uint64N(200)
		ge, gerr := got.Entries(lo, hi, maxSize)
		we, werr := want.Entries(lo, hi, maxSize)
		if !errors.Is(gerr, werr) || len(ge) != len(we) || len(ge) > 0 && !reflect.DeepEqual(ge, we) {
			t.Fatalf("%s: Entries(%d, %d, %d) = %d entries, %v; want %d, %v", step, lo, hi, maxSize, len(ge), gerr, len(we), werr)
		}
	}
	gs, err := got.Snapshot()
	ws, _ := want.Snapshot()
	if err != nil || !reflect.DeepEqual(gs.Metadata, ws.Metadata) || !bytes.Equal(gs.Data, ws.Data) {
		t.Fatalf("%s: snapshot %+v (%v), want %+v", step, gs.Metadata, err, ws.Metadata)
	}
}

// TestRaftStorageMatchesMemoryStorage drives raftStorage and raft's
// MemoryStorage with the same random appends, truncations, hard states,
// snapshots and compactions, reopening the bbolt file now and then, and
// compares every answer.
func TestRaftStorageMatchesMemoryStorage(t *testing.T) {
	for seed := range uint64(8) {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 1))
			path := filepath.Join(t.TempDir(), "meta.db")
			db := openTestBolt(t, path)
			defer func() { db.Close() }()
			got, err := openRaftStorage(db, nil)
			if err != nil {
				t.Fatal(err)
			}
			want := raft.NewMemoryStorage()
			term := uint64(1)
			for step := range 300 {
				first, _ := want.FirstIndex()
				last, _ := want.LastIndex()
				var desc string
				switch op := rng.IntN(10); {
				case op < 5: // append, possibly overwriting a suffix above the snapshot (what it holds is committed)
					snap, _ := want.Snapshot()
					lo := max(first, snap.Metadata.Index+1)
					if lo > last+1 {
						continue
					}
					from := lo + rng.Uint64N(last+2-lo)
					if rng.IntN(4) == 0 {
						term++
					}
					var ents []raftpb.Entry
					for i := range rng.Uint64N(6) + 1 {
						ents = append(ents, raftpb.Entry{Index: from + i, Term: term, Data: []byte(fmt.Sprint("e", from+i, "t", term))})
					}
					desc = fmt.Sprintf("append %d..%d", from, from+uint64(len(ents))-1)
					check2(t, desc, got.Append(ents), want.Append(ents))
				case op == 5:
					hs := raftpb.HardState{Term: term, Vote: rng.Uint64N(3), Commit: rng.Uint64N(last + 1)}
					desc = fmt.Sprintf("hard state %+v", hs)
					check2(t, desc, got.SetHardState(hs), want.SetHardState(hs))
				case op == 6: // snapshot somewhere in the log
					snap, _ := want.Snapshot()
					if last <= snap.Metadata.Index {
						continue
					}
					i := snap.Metadata.Index + 1 + rng.Uint64N(last-snap.Metadata.Index)
					cs := &raftpb.ConfState{Voters: []uint64{1, 2, 3}}
					data := []byte(fmt.Sprint("state@", i))
					desc = fmt.Sprintf("create snapshot %d", i)
					_, gerr := got.CreateSnapshot(i, cs, data)
					_, werr := want.CreateSnapshot(i, cs, data)
					check2(t, desc, gerr, werr)
				case op == 7: // compact up to the snapshot
					snap, _ := want.Snapshot()
					if snap.Metadata.Index < first {
						continue
					}
					i := first + rng.Uint64N(snap.Metadata.Index-first+1)
					desc = fmt.Sprintf("compact %d", i)
					check2(t, desc, got.Compact(i), want.Compact(i))
				case op == 8: // a leader's snapshot replaces the log
					snap, _ := want.Snapshot()
					idx := snap.Metadata.Index + rng.Uint64N(last+5-snap.Metadata.Index) + 1
					term++
					s := raftpb.Snapshot{Data: []byte(fmt.Sprint("remote@", idx)), Metadata: raftpb.SnapshotMetadata{Index: idx, Term: term, ConfState: raftpb.ConfState{Voters: []uint64{1, 2}}}}
					desc = fmt.Sprintf("apply snapshot %d", idx)
					check2(t, desc, got.ApplySnapshot(s), want.ApplySnapshot(s))
				case op == 9:
					desc = "reopen"
					if err := db.Close(); err != nil {
						t.Fatal(err)
					}
					db = openTestBolt(t, path)
					if got, err = openRaftStorage(db, nil); err != nil {
						t.Fatal(err)
					}
				}
				compareStorage(t, fmt.Sprintf("step %d (%s)", step, desc), got, want, rng)
			}
		})
	}
}

func check2(t *testing.T, step string, got, want error) {
	t.Helper()
	if !errors.Is(got, want) {
		t.Fatalf("%s: err %v, want %v", step, got, want)
	}
}

// TestRaftStorageSemantics spells out the answers raft relies on.
func TestRaftStorageSemantics(t *testing.T) {
	path := filepath.Join(t.TempDir(), "meta.db")
	db := openTestBolt(t, path)
	s, err := openRaftStorage(db, []NodeID{1, 2, 3})
	if err != nil {
		t.Fatal(err)
	}
	if _, cs, _ := s.InitialState(); !reflect.DeepEqual(cs.Voters, []uint64{1, 2, 3}) {
		t.Fatalf("initial voters %v", cs.Voters)
	}
	if f, _ := s.FirstIndex(); f != 1 {
		t.Fatalf("FirstIndex of an empty log = %d, want 1", f)
	}
	if l, _ := s.LastIndex(); l != 0 {
		t.Fatalf("LastIndex of an empty log = %d, want 0", l)
	}
	if _, err := s.Entries(1, 2, 100); !errors.Is(err, raft.ErrUnavailable) {
		t.Fatalf("Entries of an empty log: %v", err)
	}
	var ents []raftpb.Entry
	for i := uint64(1); i <= 10; i++ {
		ents = append(ents, raftpb.Entry{Index: i, Term: 1 + i/5, Data: []byte{byte(i)}})
	}
	hs := raftpb.HardState{Term: 3, Vote: 2, Commit: 8}
	if err := s.save(hs, ents, raftpb.Snapshot{}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateSnapshot(6, nil, []byte("state")); err != nil {
		t.Fatal(err)
	}
	if err := s.Compact(7); err == nil {
		t.Fatal("compacted past the snapshot")
	}
	if err := s.Compact(5); err != nil {
		t.Fatal(err)
	}
	if err := s.Append([]raftpb.Entry{{Index: 13, Term: 3}}); err == nil {
		t.Fatal("appended with a gap")
	}
	if _, err := s.CreateSnapshot(11, nil, nil); err == nil {
		t.Fatal("snapshot past the last index")
	}
	if _, err := s.CreateSnapshot(6, nil, nil); !errors.Is(err, raft.ErrSnapOutOfDate) {
		t.Fatalf("snapshot again at 6: %v", err)
	}

	db.Close()
	db = openTestBolt(t, path)
	defer db.Close()
	if s, err = openRaftStorage(db, []NodeID{9}); err != nil {
		t.Fatal(err)
	}
	if s.boot != 2 {
		t.Fatalf("boot %d after a reopen, want 2", s.boot)
	}
	gotHS, cs, _ := s.InitialState()
	if gotHS != hs || !reflect.DeepEqual(cs.Voters, []uint64{1, 2, 3}) {
		t.Fatalf("after reopen: hard state %+v, voters %v", gotHS, cs.Voters)
	}
	if f, _ := s.FirstIndex(); f != 6 {
		t.Fatalf("FirstIndex = %d, want 6", f)
	}
	if l, _ := s.LastIndex(); l != 10 {
		t.Fatalf("LastIndex = %d, want 10", l)
	}
	if term, err := s.Term(5); err != nil || term != 2 {
		t.Fatalf("Term(5), the compact index = %d, %v; want 2", term, err)
	}
	if _, err := s.Term(4); !errors.Is(err, raft.ErrCompacted) {
		t.Fatalf("Term(4): %v, want ErrCompacted", err)
	}
	if _, err := s.Term(11); !errors.Is(err, raft.ErrUnavailable) {
		t.Fatalf("Term(11): %v, want ErrUnavailable", err)
	}
	if _, err := s.Entries(5, 8, 1000); !errors.Is(err, raft.ErrCompacted) {
		t.Fatalf("Entries(5, 8): %v, want ErrCompacted", err)
	}
	if _, err := s.Entries(6, 12, 1000); !errors.Is(err, raft.ErrUnavailable) {
		t.Fatalf("Entries(6, 12): %v, want ErrUnavailable", err)
	}
	if e, err := s.Entries(6, 11, 0); err != nil || len(e) != 1 || e[0].Index != 6 {
		t.Fatalf("Entries(6, 11, 0) = %v, %v; want entry 6 alone", e, err)
	}
	if snap, err := s.Snapshot(); err != nil || snap.Metadata.Index != 6 || snap.Metadata.Term != 2 || string(snap.Data) != "state" {
		t.Fatalf("snapshot %+v, %v", snap.Metadata, err)
	}
	// Overwriting a suffix drops what followed.
	if err := s.Append([]raftpb.Entry{{Index: 8, Term: 4, Data: []byte("x")}}); err != nil {
		t.Fatal(err)
	}
	if l, _ := s.LastIndex(); l != 8 {
		t.Fatalf("LastIndex after overwrite = %d, want 8", l)
	}
}
