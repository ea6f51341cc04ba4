package stream_test

// The torture suite's history checker, after Jepsen's: every write
// carries a unique value; a run records what writers were told (the
// offset of an acknowledged write, the failure of a failed one) and what
// readers saw (consumer polls, committed offsets, and a final read of
// every replica once the faults stop), and Check counts the anomaly
// classes of issue #14 in that history. The checker knows nothing of the
// engine: it judges the history alone, and its own tests
// (TestTortureChecker, torture_checker_unit_test.go) feed it handmade
// histories holding each anomaly.

import (
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/instream/stream"
)

// writeOutcome is what a writer was told about a write.
type writeOutcome int

const (
	outcomePending   writeOutcome = iota // no answer (in flight at a crash): ambiguous
	outcomeAcked                         // acknowledged at an offset
	outcomeFailed                        // failed, documented as not written
	outcomeAmbiguous                     // failed, but may have been written (a timeout, a lost ack)
)

type tortureWrite struct {
	value      string
	tp         stream.TopicPartition
	offset     int64 // when acknowledged
	outcome    writeOutcome
	idempotent bool // from an idempotent producer: never duplicated
}

func (w *tortureWrite) outcomeString() string {
	switch w.outcome {
	case outcomeAcked:
		return fmt.Sprintf("acknowledged at %s-%d@%d", w.tp.Topic, w.tp.Partition, w.offset)
	case outcomeFailed:
		return "failed"
	case outcomeAmbiguous:
		return "failed, ambiguous"
	}
	return "no answer"
}

// tortureObs is one observation of a value at an offset.
type tortureObs struct {
	tp     stream.TopicPartition
	offset int64
	value  string
}

// finalRead is a fault-free read of one replica of a partition, from its
// start to its high watermark. Offsets that failed with ErrCorrupt are
// listed in corrupt.
type finalRead struct {
	replica string
	tp      stream.TopicPartition
	start   int64
	hw      int64
	recs    []tortureObs
	corrupt []int64
}

// excuse is a range of offsets of a partition that planted damage may
// have taken: what the package doc says such damage may cost.
type excuse struct {
	tp       stream.TopicPartition
	from, to int64 // [from, to)
	why      string
}

// tortureHistory is a run's history. Every method is safe for
// concurrent use: writers and readers record as they go.
type tortureHistory struct {
	mu       sync.Mutex
	writes   map[string]*tortureWrite
	obs      []tortureObs // acks, polls and final reads, as (tp, offset, value)
	polls    map[string][]tortureObs
	commits  map[string][]int64 // by group/topic/partition, in the order observed
	finals   []finalRead
	excuses  []excuse
	refused  bool     // the final Open failed with ErrCorrupt naming the damage: no final read
	extra    []string // anomalies a mode checks itself (ack after a failed fsync, Open errors)
	extraCls map[string]int
}

func newTortureHistory() *tortureHistory {
	return &tortureHistory{
		writes:   map[string]*tortureWrite{},
		polls:    map[string][]tortureObs{},
		commits:  map[string][]int64{},
		extraCls: map[string]int{},
	}
}

// invoke records a write about to be sent.
func (h *tortureHistory) invoke(value string, tp stream.TopicPartition, idempotent bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.writes[value]; ok {
		panic("torture: value written twice by the workload: " + value)
	}
	h.writes[value] = &tortureWrite{value: value, tp: tp, offset: -1, idempotent: idempotent}
}

// ack records that value was acknowledged at tp/offset (a producer may
// have chosen the partition: tp is the acknowledged one).
func (h *tortureHistory) ack(value string, tp stream.TopicPartition, offset int64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	w := h.writes[value]
	if w == nil {
		panic("torture: ack of a value never invoked: " + value)
	}
	w.tp, w.offset, w.outcome = tp, offset, outcomeAcked
	h.obs = append(h.obs, tortureObs{tp, offset, value})
}

// fail records a failed write; definite says it is documented as not
// written.
func (h *tortureHistory) fail(value string, definite bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	w := h.writes[value]
	if w == nil {
		panic("torture: failure of a value never invoked: " + value)
	}
	w.outcome = outcomeAmbiguous
	if definite {
		w.outcome = outcomeFailed
	}
}

// assigned records that member (re)starts reading tp from a new
// position: a new ownership, whose offsets need not follow the last.
func (h *tortureHistory) assigned(member string, tp stream.TopicPartition) {
	h.mu.Lock()
	defer h.mu.Unlock()
	key := member + "|" + tp.Topic + "|" + fmt.Sprint(tp.Partition)
	h.polls[key] = append(h.polls[key], tortureObs{tp: tp, offset: -1})
}

// polled records a record a member's Poll returned.
func (h *tortureHistory) polled(member string, tp stream.TopicPartition, offset int64, value string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	key := member + "|" + tp.Topic + "|" + fmt.Sprint(tp.Partition)
	o := tortureObs{tp, offset, value}
	h.polls[key] = append(h.polls[key], o)
	h.obs = append(h.obs, o)
}

// committed records a committed offset of group for tp, as observed now
// (a commit that returned nil, or a read of the group's offsets).
func (h *tortureHistory) committed(group string, tp stream.TopicPartition, offset int64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	key := group + "|" + tp.Topic + "|" + fmt.Sprint(tp.Partition)
	h.commits[key] = append(h.commits[key], offset)
}

// final records a fault-free read of one replica.
func (h *tortureHistory) final(f finalRead) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.finals = append(h.finals, f)
	h.obs = append(h.obs, f.recs...)
}

// excuseRange records offsets planted damage may have taken.
func (h *tortureHistory) excuseRange(e excuse) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.excuses = append(h.excuses, e)
}

// anomaly records an anomaly a mode detected itself, of class cls.
func (h *tortureHistory) anomaly(cls, format string, args ...any) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.extraCls[cls]++
	h.extra = append(h.extra, cls+": "+fmt.Sprintf(format, args...))
}

// tortureResult counts a history's anomalies.
type tortureResult struct {
	Acknowledged int
	Lost         int // acknowledged, absent from a final read that holds later offsets
	Inconsistent int // one offset, two values (across replicas too), or a value nobody wrote
	Duplicate    int // one value at two offsets
	DupIdem      int // of which from idempotent writers: an anomaly
	Skipped      int // a member's offsets jumped forward within one ownership
	NonMonotonic int // a member's offsets went back or repeated within one ownership
	FailedRead   int // a write whose writer was told it failed (definitely) was read
	CommitBack   int // a committed offset moved backwards
	Unseen       int // acknowledged, absent from a final read that holds nothing later
	Excused      int // acknowledged, absent or unreadable where planted damage may take it
	Extra        map[string]int
	Details      []string // the first anomalies, described
}

func (r *tortureResult) note(format string, args ...any) {
	if len(r.Details) < 20 {
		r.Details = append(r.Details, fmt.Sprintf(format, args...))
	}
}

// add sums o into r.
func (r *tortureResult) add(o tortureResult) {
	r.Acknowledged += o.Acknowledged
	r.Lost += o.Lost
	r.Inconsistent += o.Inconsistent
	r.Duplicate += o.Duplicate
	r.DupIdem += o.DupIdem
	r.Skipped += o.Skipped
	r.NonMonotonic += o.NonMonotonic
	r.FailedRead += o.FailedRead
	r.CommitBack += o.CommitBack
	r.Unseen += o.Unseen
	r.Excused += o.Excused
	if r.Extra == nil {
		r.Extra = map[string]int{}
	}
	for k, v := range o.Extra {
		r.Extra[k] += v
	}
	for _, d := range o.Details {
		r.note("%s", d)
	}
}

// Anomalies is the number of anomalies that break a promise: everything
// but duplicates from writers without idempotence and excused damage.
func (r *tortureResult) Anomalies() int {
	n := r.Lost + r.Inconsistent + r.DupIdem + r.Skipped + r.NonMonotonic + r.FailedRead + r.CommitBack + r.Unseen
	for _, v := range r.Extra {
		n += v
	}
	return n
}

// Check counts the anomalies of the history.
func (h *tortureHistory) Check() tortureResult {
	h.mu.Lock()
	defer h.mu.Unlock()
	var r tortureResult
	r.Extra = maps.Clone(h.extraCls)
	for _, e := range h.extra {
		r.note("%s", e)
	}

	// Inconsistent: per offset, the values observed; a value nobody
	// wrote counts too (a read that returned bytes nobody wrote).
	type key struct {
		tp  stream.TopicPartition
		off int64
	}
	byOffset := map[key]map[string]bool{}
	byValue := map[string]map[key]bool{}
	for _, o := range h.obs {
		k := key{o.tp, o.offset}
		if byOffset[k] == nil {
			byOffset[k] = map[string]bool{}
		}
		byOffset[k][o.value] = true
		if byValue[o.value] == nil {
			byValue[o.value] = map[key]bool{}
		}
		byValue[o.value][k] = true
	}
	for _, k := range sortedKeys(byOffset, func(a, b key) bool {
		return a.tp.Topic < b.tp.Topic || a.tp.Topic == b.tp.Topic && (a.tp.Partition < b.tp.Partition || a.tp.Partition == b.tp.Partition && a.off < b.off)
	}) {
		vals := byOffset[k]
		if len(vals) > 1 {
			r.Inconsistent++
			r.note("inconsistent: %s-%d offset %d holds %q", k.tp.Topic, k.tp.Partition, k.off, slices.Sorted(maps.Keys(vals)))
			continue
		}
		for v := range vals {
			if h.writes[v] == nil {
				r.Inconsistent++
				r.note("inconsistent: %s-%d offset %d holds %q, which nobody wrote", k.tp.Topic, k.tp.Partition, k.off, v)
			}
		}
	}

	// Duplicate: one value at two offsets. Failed read: a value read
	// whose writer was told it was not written.
	for _, v := range slices.Sorted(maps.Keys(byValue)) {
		w := h.writes[v]
		if w == nil {
			continue
		}
		if n := len(byValue[v]); n > 1 {
			r.Duplicate++
			if w.idempotent {
				r.DupIdem++
				var at []string
				for k := range byValue[v] {
					at = append(at, fmt.Sprintf("%s-%d@%d", k.tp.Topic, k.tp.Partition, k.off))
				}
				slices.Sort(at)
				r.note("duplicate: %q (idempotent; %s) at %s", v, w.outcomeString(), strings.Join(at, ", "))
			}
		}
		if w.outcome == outcomeFailed {
			r.FailedRead++
			r.note("failed read: %q was read, its writer was told it failed", v)
		}
	}

	// Lost and unseen: every acknowledged write must be in every final
	// read of its partition, unless planted damage may have taken it.
	type replicaRead struct {
		*finalRead
		values map[string]bool
		last   int64 // the highest offset read
	}
	finals := map[stream.TopicPartition][]replicaRead{}
	for i := range h.finals {
		f := replicaRead{finalRead: &h.finals[i], values: map[string]bool{}, last: -1}
		for _, o := range f.recs {
			f.values[o.value] = true
			f.last = max(f.last, o.offset)
		}
		finals[f.tp] = append(finals[f.tp], f)
	}
	excused := func(tp stream.TopicPartition, off int64) bool {
		for _, e := range h.excuses {
			if e.tp == tp && off >= e.from && off < e.to {
				return true
			}
		}
		return false
	}
	for _, v := range slices.Sorted(maps.Keys(h.writes)) {
		w := h.writes[v]
		if w.outcome != outcomeAcked {
			continue
		}
		r.Acknowledged++
		if h.refused {
			continue
		}
		lost, unseen, gone := false, false, false
		for _, f := range finals[w.tp] {
			found, later := f.values[v], f.last > w.offset
			switch {
			case found:
			case excused(w.tp, w.offset):
				gone = true
			case later:
				lost = true
				r.note("lost: %q acknowledged at %s-%d offset %d, not in %s's final read [%d, %d)", v, w.tp.Topic, w.tp.Partition, w.offset, f.replica, f.start, f.hw)
			default:
				unseen = true
				r.note("unseen: %q acknowledged at %s-%d offset %d, not in %s's final read [%d, %d)", v, w.tp.Topic, w.tp.Partition, w.offset, f.replica, f.start, f.hw)
			}
		}
		switch {
		case lost:
			r.Lost++
		case unseen:
			r.Unseen++
		case gone:
			r.Excused++
		}
	}

	// Skipped and non-monotonic: within one ownership of a partition, a
	// member's polls return consecutive offsets.
	for _, k := range slices.Sorted(maps.Keys(h.polls)) {
		prev := int64(-1)
		for _, o := range h.polls[k] {
			if o.offset < 0 {
				prev = -1 // a new ownership
				continue
			}
			if prev >= 0 {
				switch {
				case o.offset <= prev:
					r.NonMonotonic++
					r.note("non-monotonic: %s polled offset %d after %d", k, o.offset, prev)
				case o.offset > prev+1:
					r.Skipped++
					r.note("skipped: %s polled offset %d after %d", k, o.offset, prev)
				}
			}
			prev = o.offset
		}
	}

	// Committed offsets never move backwards.
	for _, k := range slices.Sorted(maps.Keys(h.commits)) {
		hi := int64(-1)
		for _, c := range h.commits[k] {
			if c < hi {
				r.CommitBack++
				r.note("commit backwards: %s committed %d after %d", k, c, hi)
			}
			hi = max(hi, c)
		}
	}
	return r
}

func sortedKeys[K comparable, V any](m map[K]V, less func(a, b K) bool) []K {
	ks := slices.Collect(maps.Keys(m))
	sort.Slice(ks, func(i, j int) bool { return less(ks[i], ks[j]) })
	return ks
}

// summary is the run's last line, as issue #14 gives it.
func (r *tortureResult) summary(seed uint64, cycles int) string {
	return fmt.Sprintf("torture: seed %d, %d cycles, %d acknowledged, lost %d, inconsistent %d, duplicate %d, skipped %d, unseen %d",
		seed, cycles, r.Acknowledged, r.Lost, r.Inconsistent, r.Duplicate, r.Skipped+r.NonMonotonic, r.Unseen)
}

// classes is the line before it: the classes the summary folds or
// leaves out.
func (r *tortureResult) classes() string {
	var extra []string
	for _, k := range slices.Sorted(maps.Keys(r.Extra)) {
		extra = append(extra, fmt.Sprintf(", %s %d", k, r.Extra[k]))
	}
	return fmt.Sprintf("torture: non-monotonic %d, skipped %d, failed-read %d, commit-backwards %d, duplicate-idempotent %d, excused-by-damage %d%s",
		r.NonMonotonic, r.Skipped, r.FailedRead, r.CommitBack, r.DupIdem, r.Excused, strings.Join(extra, ""))
}
