// Command eventsourcing keeps bank accounts as an event log on stream and
// rebuilds their state by replaying it, now and as of a past time.
//
// Every change to an account is a domain event (opened, deposited,
// withdrawn) appended to the topic "accounts", keyed by account, so all
// the events of one account land in one partition, in order. Nothing
// else is stored: an account's balance is what replaying its events gives.
// The command side checks each command against the state the events
// built (a withdrawal larger than the balance is refused and writes
// nothing); the read side rebuilds the state by replaying each partition
// from offset 0, and rebuilds the state as of a past time by replaying
// each partition only up to Partition.OffsetForTime of that time.
//
// Events carry their business time as the record timestamp. The program
// writes a month of made-up activity (the same for the same -seed), then
// prints the balances now and as of -asof:
//
//	go run ./examples/eventsourcing
//	go run ./examples/eventsourcing -asof 2025-01-10T12:00:00Z
//
// With -dir the log stays on disk, and a second run with the same -dir
// writes nothing and rebuilds everything from what the first one wrote:
//
//	go run ./examples/eventsourcing -dir /tmp/bank
//	go run ./examples/eventsourcing -dir /tmp/bank -asof 2025-01-20T00:00:00Z
//
// With -check it tests itself, the way CI runs it: on a temporary
// directory it compares the replayed balances, now and as of -asof, with
// those the command side computed while writing, again after reopening
// the directory, and exits with status 0 only if they all match.
//
//	go run ./examples/eventsourcing -check
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/instream/stream"
)

// Event is a domain event, the value of a record on "accounts"; the
// record's key is the account and its timestamp the time of the event.
type Event struct {
	Type    string `json:"type"` // "opened", "deposited" or "withdrawn"
	Account string `json:"account"`
	Owner   string `json:"owner,omitempty"`  // opened
	Amount  int64  `json:"amount,omitempty"` // deposited, withdrawn: in cents
}

// Account is the state of an account: what its events add up to.
type Account struct {
	Owner   string
	Balance int64 // cents
	Events  int
}

// State is every account, by ID.
type State map[string]*Account

// Apply changes the state by one event. It never fails: events are facts,
// checked when they were decided.
func (s State) Apply(e Event) {
	a := s[e.Account]
	if a == nil {
		a = &Account{}
		s[e.Account] = a
	}
	switch e.Type {
	case "opened":
		a.Owner = e.Owner
	case "deposited":
		a.Balance += e.Amount
	case "withdrawn":
		a.Balance -= e.Amount
	}
	a.Events++
}

// Clone returns a deep copy.
func (s State) Clone() State {
	c := make(State, len(s))
	for id, a := range s {
		cp := *a
		c[id] = &cp
	}
	return c
}

const topic = "accounts"

// start is when the made-up activity begins.
var start = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

func main() {
	dir := flag.String("dir", "", "stream directory (default: a temporary one, removed at exit)")
	asofFlag := flag.String("asof", "2025-01-16T00:00:00Z", "also show the balances as of this time (RFC 3339)")
	commands := flag.Int("commands", 600, "commands to make up on a new log (refused ones write no event)")
	seed := flag.Uint64("seed", 1, "seed of the made-up activity")
	check := flag.Bool("check", false, "self-test: on a temporary directory, check the replayed balances against the command side's, exit 1 if any differs")
	flag.Parse()

	asof, err := time.Parse(time.RFC3339, *asofFlag)
	if err == nil {
		if *check {
			*dir = ""
		}
		err = run(*dir, asof, *commands, *seed, *check)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "eventsourcing:", err)
		os.Exit(1)
	}
}

func run(dir string, asof time.Time, commands int, seed uint64, check bool) (err error) {
	if dir == "" {
		tmp, err := os.MkdirTemp("", "eventsourcing-")
		if err != nil {
			return err
		}
		defer func() { err = errors.Join(err, os.RemoveAll(tmp)) }()
		dir = tmp
	}
	s, err := stream.Open(dir, nil)
	if err != nil {
		return err
	}
	defer func() {
		if s != nil {
			err = errors.Join(err, s.Close())
		}
	}()

	// An event log keeps its events forever (Retention < 0): they are
	// the only copy of the data.
	t, err := s.CreateTopic(topic, stream.TopicConfig{Partitions: 3, Retention: -1})
	var now, then State // what the command side computed, with -check
	switch {
	case errors.Is(err, stream.ErrTopicExists):
		if check {
			return errors.New("-check needs a new directory")
		}
		if t, err = s.Topic(topic); err != nil {
			return err
		}
		fmt.Printf("%s: topic %s exists: rebuilding from what is there\n", dir, topic)
	case err != nil:
		return err
	default:
		now, then, err = writeActivity(s, commands, seed, asof)
		if err != nil {
			return err
		}
	}

	// The read side: rebuild the state from the log.
	current, ranges, err := rebuild(t, time.Time{})
	if err != nil {
		return err
	}
	fmt.Printf("\nbalances now, replaying %s:\n", ranges)
	printState(current)
	past, ranges, err := rebuild(t, asof)
	if err != nil {
		return err
	}
	fmt.Printf("\nbalances as of %s, replaying up to OffsetForTime: %s:\n", asof.Format(time.RFC3339), ranges)
	printState(past)
	if !check {
		return nil
	}

	// The check: the replays match the command side, also after a
	// restart that rebuilds everything from the files.
	mismatch := errors.Join(compare("now", now, current), compare("as of "+asof.Format(time.RFC3339), then, past))
	err = s.Close()
	s = nil
	if err != nil {
		return err
	}
	if s, err = stream.Open(dir, nil); err != nil {
		return err
	}
	if t, err = s.Topic(topic); err != nil {
		return err
	}
	current, _, err = rebuild(t, time.Time{})
	if err != nil {
		return err
	}
	past, _, err = rebuild(t, asof)
	if err != nil {
		return err
	}
	mismatch = errors.Join(mismatch, compare("now, after reopening", now, current), compare("as of, after reopening", then, past))
	if mismatch != nil {
		return fmt.Errorf("check failed:\n%w", mismatch)
	}
	fmt.Printf("\ncheck passed: %d accounts; balances now and as of %s match the command side, before and after reopening\n",
		len(now), asof.Format(time.RFC3339))
	return nil
}

// writeActivity is the command side: it makes up a month of commands,
// checks each against the current state, and appends the events of the
// accepted ones. It returns the state at the end and as of asof.
func writeActivity(s *stream.Stream, commands int, seed uint64, asof time.Time) (now, then State, err error) {
	p, err := s.NewProducer(stream.ProducerConfig{})
	if err != nil {
		return nil, nil, err
	}
	defer func() { err = errors.Join(err, p.Close()) }()
	out := stream.NewTypedProducer(p, stream.String, stream.JSON[Event]())

	rng := rand.New(rand.NewPCG(seed, seed))
	owners := []string{"Ada", "Grace", "Alan", "Edsger", "Barbara", "Ken", "Frances", "Niklaus"}
	state := State{}
	var (
		mu      sync.Mutex // guards sendErr: callbacks of different partitions run concurrently
		sendErr error
	)
	refused := 0
	step := 30 * 24 * time.Hour / time.Duration(commands)
	for i := range commands {
		at := start.Add(time.Duration(i) * step)
		if then == nil && !at.Before(asof) {
			then = state.Clone() // every event before asof is applied
		}
		// Decide: turn a made-up command into an event, or refuse it.
		n := rng.IntN(len(owners))
		id := fmt.Sprintf("acct-%02d", n+1)
		var e Event
		switch a := state[id]; {
		case a == nil:
			e = Event{Type: "opened", Account: id, Owner: owners[n]}
		case rng.IntN(2) == 0:
			e = Event{Type: "deposited", Account: id, Amount: rng.Int64N(50000)}
		default:
			amount := rng.Int64N(80000)
			if amount > a.Balance {
				refused++ // insufficient funds: no event
				continue
			}
			e = Event{Type: "withdrawn", Account: id, Amount: amount}
		}
		r, err := out.Record(topic, id, e)
		if err != nil {
			return nil, nil, err
		}
		r.Timestamp = at // business time
		// Keyed by account: each account's events stay in order in
		// their partition.
		p.SendAsync(r, func(r *stream.Record, err error) {
			if err != nil {
				mu.Lock()
				sendErr = errors.Join(sendErr, fmt.Errorf("append %s event of %s: %w", e.Type, e.Account, err))
				mu.Unlock()
			}
		})
		state.Apply(e)
	}
	if then == nil {
		then = state.Clone()
	}
	if err := p.Flush(context.Background()); err != nil {
		return nil, nil, err
	}
	mu.Lock()
	defer mu.Unlock()
	if sendErr != nil { // callbacks have all run: Flush returned
		return nil, nil, sendErr
	}
	fmt.Printf("wrote %d events on topic %s from %s to %s; refused %d withdrawals for insufficient funds\n",
		commands-refused, topic, start.Format(time.DateOnly), start.Add(30*24*time.Hour).Format(time.DateOnly), refused)
	return state, then, nil
}

// rebuild replays every partition of t from offset 0: all of it if asof is
// zero, else the events before asof. It returns the state and the offsets
// it replayed.
func rebuild(t *stream.Topic, asof time.Time) (State, string, error) {
	state := State{}
	var ranges []string
	for i := range t.NumPartitions() {
		p, err := t.Partition(int32(i))
		if err != nil {
			return nil, "", err
		}
		end := p.HighWatermark()
		if !asof.IsZero() {
			// The first event at or after asof (the high watermark if
			// none): replaying up to it gives the state as of asof.
			// This holds because each partition's timestamps only grow.
			if end, err = p.OffsetForTime(asof); err != nil {
				return nil, "", err
			}
		}
		ranges = append(ranges, fmt.Sprintf("%s-%d [%d, %d)", t.Name(), i, p.StartOffset(), end))
		// ForEach replays [start, end) lending each record to the
		// function (nothing kept past it): no allocation per record but
		// the decoded event.
		err = p.ForEach(p.StartOffset(), end, func(r *stream.Record) error {
			_, e, err := stream.Decode(r, stream.String, stream.JSON[Event]())
			if err != nil {
				return err
			}
			state.Apply(e)
			return nil
		})
		if err != nil {
			return nil, "", err
		}
	}
	return state, strings.Join(ranges, ", "), nil
}

func printState(s State) {
	w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(w, "account\towner\tbalance\tevents\t")
	total := int64(0)
	for _, id := range slices.Sorted(maps.Keys(s)) {
		a := s[id]
		fmt.Fprintf(w, "%s\t%s\t%s\t%d\t\n", id, a.Owner, money(a.Balance), a.Events)
		total += a.Balance
	}
	fmt.Fprintf(w, "total\t\t%s\t\t\n", money(total))
	w.Flush() // writes to stdout: nothing to do about an error
}

func money(cents int64) string {
	return fmt.Sprintf("%d.%02d", cents/100, cents%100)
}

// compare reports every account whose replayed state differs from want.
func compare(what string, want, got State) error {
	var errs []error
	for _, id := range slices.Sorted(maps.Keys(want)) {
		w, g := want[id], got[id]
		if g == nil || *g != *w {
			errs = append(errs, fmt.Errorf("  %s: %s: replayed %+v, want %+v", what, id, g, *w))
		}
	}
	for id := range got {
		if want[id] == nil {
			errs = append(errs, fmt.Errorf("  %s: %s: replayed an account the command side never opened", what, id))
		}
	}
	return errors.Join(errs...)
}
