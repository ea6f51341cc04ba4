package stream_test

import (
	"strings"
	"testing"

	"github.com/instream/stream"
)

// TestTortureChecker feeds the history checker handmade histories, each
// holding one anomaly (or a lookalike that is not one), and checks that
// it counts exactly that: a checker that cannot fail checks nothing.
func TestTortureChecker(t *testing.T) {
	tp := stream.TopicPartition{Topic: "t", Partition: 0}
	tp1 := stream.TopicPartition{Topic: "t", Partition: 1}
	// base: a, b, c acknowledged at 0, 1, 2 and read back by one replica.
	base := func(h *tortureHistory) {
		for i, v := range []string{"a", "b", "c"} {
			h.invoke(v, tp, true)
			h.ack(v, tp, int64(i))
		}
	}
	read := func(replica string, vals ...string) finalRead {
		f := finalRead{replica: replica, tp: tp, hw: int64(len(vals))}
		for i, v := range vals {
			f.recs = append(f.recs, tortureObs{tp, int64(i), v})
		}
		return f
	}
	cases := []struct {
		name  string
		build func(h *tortureHistory)
		want  tortureResult // the counts compared; Acknowledged too
	}{
		{"clean", func(h *tortureHistory) {
			base(h)
			h.final(read("n1", "a", "b", "c"))
			h.final(read("n2", "a", "b", "c"))
		}, tortureResult{Acknowledged: 3}},
		{"lost: a later offset was read", func(h *tortureHistory) {
			base(h)
			f := read("n1", "a", "b", "c")
			f.recs = append(f.recs[:1], f.recs[2:]...) // b missing, c read
			h.final(f)
		}, tortureResult{Acknowledged: 3, Lost: 1}},
		{"lost on one replica only", func(h *tortureHistory) {
			base(h)
			h.final(read("n1", "a", "b", "c"))
			f := read("n2", "a", "b", "c")
			f.recs = f.recs[1:]
			h.final(f)
		}, tortureResult{Acknowledged: 3, Lost: 1}},
		{"unseen: the tail is gone", func(h *tortureHistory) {
			base(h)
			h.final(read("n1", "a"))
		}, tortureResult{Acknowledged: 3, Unseen: 2}},
		{"inconsistent: an ack and a read disagree", func(h *tortureHistory) {
			base(h)
			h.invoke("x", tp, true)
			h.fail("x", false) // ambiguous: may be read
			h.final(read("n1", "a", "x", "b", "c"))
		}, tortureResult{Acknowledged: 3, Inconsistent: 2, Duplicate: 2, DupIdem: 2}},
		{"inconsistent across replicas", func(h *tortureHistory) {
			h.invoke("a", tp, true)
			h.ack("a", tp, 0)
			h.invoke("y", tp, true)
			h.invoke("z", tp, true)
			h.final(read("n1", "a", "y"))
			h.final(read("n2", "a", "z"))
		}, tortureResult{Acknowledged: 1, Inconsistent: 1}},
		{"inconsistent: bytes nobody wrote", func(h *tortureHistory) {
			base(h)
			h.final(read("n1", "a", "b", "c", "garbage"))
		}, tortureResult{Acknowledged: 3, Inconsistent: 1}},
		{"duplicate from an idempotent writer", func(h *tortureHistory) {
			base(h)
			h.final(read("n1", "a", "b", "c", "c"))
		}, tortureResult{Acknowledged: 3, Duplicate: 1, DupIdem: 1}},
		{"duplicate without idempotence is counted, not an anomaly", func(h *tortureHistory) {
			h.invoke("a", tp, false)
			h.ack("a", tp, 0)
			h.final(read("n1", "a", "a"))
		}, tortureResult{Acknowledged: 1, Duplicate: 1}},
		{"failed write read", func(h *tortureHistory) {
			base(h)
			h.invoke("f", tp, true)
			h.fail("f", true)
			h.final(read("n1", "a", "b", "c", "f"))
		}, tortureResult{Acknowledged: 3, FailedRead: 1}},
		{"ambiguous write read is fine", func(h *tortureHistory) {
			base(h)
			h.invoke("f", tp, true)
			h.fail("f", false)
			h.invoke("g", tp, true) // pending: in flight at a crash
			h.final(read("n1", "a", "b", "c", "f", "g"))
		}, tortureResult{Acknowledged: 3}},
		{"skip within a member", func(h *tortureHistory) {
			base(h)
			h.assigned("m1", tp)
			h.polled("m1", tp, 0, "a")
			h.polled("m1", tp, 2, "c")
			h.final(read("n1", "a", "b", "c"))
		}, tortureResult{Acknowledged: 3, Skipped: 1}},
		{"non-monotonic poll within a member", func(h *tortureHistory) {
			base(h)
			h.assigned("m1", tp)
			h.polled("m1", tp, 0, "a")
			h.polled("m1", tp, 1, "b")
			h.polled("m1", tp, 1, "b")
			h.final(read("n1", "a", "b", "c"))
		}, tortureResult{Acknowledged: 3, NonMonotonic: 1}},
		{"rereading after a new assignment is fine", func(h *tortureHistory) {
			base(h)
			h.assigned("m1", tp)
			h.polled("m1", tp, 0, "a")
			h.polled("m1", tp, 1, "b")
			h.assigned("m1", tp)
			h.polled("m1", tp, 1, "b")
			h.polled("m1", tp, 2, "c")
			h.assigned("m2", tp1) // another partition's polls are apart
			h.final(read("n1", "a", "b", "c"))
		}, tortureResult{Acknowledged: 3}},
		{"committed offset backwards", func(h *tortureHistory) {
			base(h)
			h.committed("g", tp, 1)
			h.committed("g", tp, 3)
			h.committed("g", tp1, 0)
			h.committed("g", tp, 2)
			h.final(read("n1", "a", "b", "c"))
		}, tortureResult{Acknowledged: 3, CommitBack: 1}},
		{"damage excuses what it may take, and nothing else", func(h *tortureHistory) {
			base(h)
			h.excuseRange(excuse{tp: tp, from: 1, to: 2, why: "flip"})
			f := read("n1", "a", "b", "c")
			f.recs = f.recs[:1] // b excused; c not
			f.corrupt = []int64{1}
			h.final(f)
		}, tortureResult{Acknowledged: 3, Excused: 1, Unseen: 1}},
		{"anomalies a mode counts itself", func(h *tortureHistory) {
			base(h)
			h.anomaly("ack-after-failed-fsync", "append acknowledged after the fsync failed")
			h.final(read("n1", "a", "b", "c"))
		}, tortureResult{Acknowledged: 3, Extra: map[string]int{"ack-after-failed-fsync": 1}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := newTortureHistory()
			c.build(h)
			got := h.Check()
			g, w := got, c.want
			g.Details = nil
			if w.Extra == nil {
				w.Extra = map[string]int{}
			}
			if g.Acknowledged != w.Acknowledged || g.Lost != w.Lost || g.Inconsistent != w.Inconsistent ||
				g.Duplicate != w.Duplicate || g.DupIdem != w.DupIdem || g.Skipped != w.Skipped ||
				g.NonMonotonic != w.NonMonotonic || g.FailedRead != w.FailedRead || g.CommitBack != w.CommitBack ||
				g.Unseen != w.Unseen || g.Excused != w.Excused || len(g.Extra) != len(w.Extra) || g.Extra["ack-after-failed-fsync"] != w.Extra["ack-after-failed-fsync"] {
				t.Errorf("got %+v\nwant %+v\ndetails:\n%s", g, w, strings.Join(got.Details, "\n"))
			}
			if wantBad := w.Lost + w.Inconsistent + w.DupIdem + w.Skipped + w.NonMonotonic + w.FailedRead + w.CommitBack + w.Unseen + len(w.Extra); (got.Anomalies() > 0) != (wantBad > 0) {
				t.Errorf("Anomalies() = %d, want %d", got.Anomalies(), wantBad)
			}
			if got.Anomalies() > 0 && len(got.Details) == 0 {
				t.Errorf("anomalies counted but none described")
			}
		})
	}
}

// TestTortureSummaryLine: the run's last line is the one issue #14 gives.
func TestTortureSummaryLine(t *testing.T) {
	r := tortureResult{Acknowledged: 12, Duplicate: 2, Skipped: 1, NonMonotonic: 1}
	const want = "torture: seed 7, 3 cycles, 12 acknowledged, lost 0, inconsistent 0, duplicate 2, skipped 2, unseen 0"
	if got := r.summary(7, 3); got != want {
		t.Fatalf("summary\n%s\nwant\n%s", got, want)
	}
}
