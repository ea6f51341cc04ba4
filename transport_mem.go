package stream

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"
)

// MemFaults are the faults a MemNetwork injects into every message, each
// drawn from the network's seed. The zero value injects none.
type MemFaults struct {
	// Drop is the probability that a request, and separately its reply,
	// is lost. The Call then waits for its ctx, as over a real network.
	Drop float64
	// Duplicate is the probability that a request is delivered twice,
	// each copy with its own delay: the handler runs twice and the
	// caller gets the first reply. The copy may arrive long after the
	// caller has moved on, as an old message does on a real network.
	Duplicate float64
	// Delay: every request and every reply waits a random time in
	// [0, Delay] before delivery.
	Delay time.Duration
	// Reorder is the probability that a request is held back a further
	// 2×Delay to 4×Delay (at least a millisecond), so requests sent
	// after it overtake it.
	Reorder float64
}

// MemNetwork is an in-process network of Transports for tests and
// simulation: Cut, Isolate and Heal partition it, SetFaults drops, delays,
// duplicates and reorders messages. Every fault is drawn from a random
// stream per directed link seeded by the network's seed, so a test that
// sends on each link from one goroutine at a time sees the same faults
// for the same seed. Delays are timers, so tests run under
// testing/synctest see them on its fake clock.
//
// A Call over a cut link, or to a node that is unknown, closed or not
// serving, fails at once with ErrUnreachable (as a connection refused);
// a link cut while a message travels loses it, and the Call then fails
// with ErrUnreachable too. A handler's ctx carries the caller's deadline
// and cancellation, as over TCPTransport, and ends when its node's
// Transport closes.
type MemNetwork struct {
	seed int64

	// mu guards the fields below.
	mu       sync.Mutex
	nodes    map[NodeID]*memTransport
	cut      map[[2]NodeID]bool // unordered pairs, the smaller ID first
	isolated map[NodeID]bool
	faults   MemFaults
	links    map[[2]NodeID]*rand.Rand // per directed link {from, to}
}

// NewMemNetwork returns an empty network whose faults derive from seed.
func NewMemNetwork(seed int64) *MemNetwork {
	return &MemNetwork{
		seed:     seed,
		nodes:    make(map[NodeID]*memTransport),
		cut:      make(map[[2]NodeID]bool),
		isolated: make(map[NodeID]bool),
		links:    make(map[[2]NodeID]*rand.Rand),
	}
}

// Seed returns the seed the network was made with, for a test to print.
func (n *MemNetwork) Seed() int64 { return n.seed }

// Transport returns node id's Transport: the open one if there is one,
// otherwise a new one (a node restarting after its Transport was closed
// gets a fresh one).
func (n *MemNetwork) Transport(id NodeID) Transport {
	n.mu.Lock()
	defer n.mu.Unlock()
	if t := n.nodes[id]; t != nil && t.ctx.Err() == nil {
		return t
	}
	ctx, cancel := context.WithCancel(context.Background())
	t := &memTransport{net: n, id: id, ctx: ctx, cancel: cancel}
	n.nodes[id] = t
	return t
}

// Cut drops every message between a and b, both ways, until Heal.
func (n *MemNetwork) Cut(a, b NodeID) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.cut[pairKey(a, b)] = true
}

// Isolate cuts id from every other node until Heal.
func (n *MemNetwork) Isolate(id NodeID) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.isolated[id] = true
}

// Heal undoes every Cut and Isolate. Faults set by SetFaults stay.
func (n *MemNetwork) Heal() {
	n.mu.Lock()
	defer n.mu.Unlock()
	clear(n.cut)
	clear(n.isolated)
}

// SetFaults sets the faults injected into messages sent from now on;
// MemFaults{} turns them off.
func (n *MemNetwork) SetFaults(f MemFaults) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.faults = f
}

func pairKey(a, b NodeID) [2]NodeID {
	if a > b {
		a, b = b, a
	}
	return [2]NodeID{a, b}
}

// linkedLocked reports whether messages pass between a and b.
func (n *MemNetwork) linkedLocked(a, b NodeID) bool {
	if a == b {
		return true
	}
	return !n.cut[pairKey(a, b)] && !n.isolated[a] && !n.isolated[b]
}

func (n *MemNetwork) linked(a, b NodeID) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.linkedLocked(a, b)
}

// memFate is what happens to one Call's messages.
type memFate struct {
	dropReq, dropReply, dup bool
	reqDelay, dupDelay      time.Duration
	replyDelay              time.Duration
}

// route finds the node a call from→to goes to and draws its fate.
func (n *MemNetwork) route(from, to NodeID) (*memTransport, memFate, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	dst := n.nodes[to]
	if dst == nil {
		return nil, memFate{}, fmt.Errorf("%w: node %d is unknown", ErrUnreachable, to)
	}
	if !n.linkedLocked(from, to) {
		return nil, memFate{}, fmt.Errorf("%w: node %d is cut off from node %d", ErrUnreachable, to, from)
	}
	key := [2]NodeID{from, to}
	r := n.links[key]
	if r == nil {
		r = rand.New(rand.NewPCG(uint64(n.seed), uint64(uint32(from))<<32|uint64(uint32(to))))
		n.links[key] = r
	}
	// Always draw the same number of values, so one fault setting does
	// not shift the stream the others see.
	f := n.faults
	var u [7]float64
	for i := range u {
		u[i] = r.Float64()
	}
	fate := memFate{
		dropReq:    u[0] < f.Drop,
		dropReply:  u[1] < f.Drop,
		dup:        u[2] < f.Duplicate,
		reqDelay:   time.Duration(u[3] * float64(f.Delay)),
		dupDelay:   time.Duration(u[4] * float64(f.Delay)),
		replyDelay: time.Duration(u[5] * float64(f.Delay)),
	}
	if u[6] < f.Reorder {
		// Held back by [1, 2) × 2×Delay: held messages overtake one
		// another too, and never tie (a tie would make their order the
		// scheduler's, not the seed's).
		fate.reqDelay += time.Duration(float64(max(2*f.Delay, time.Millisecond)) * (1 + u[6]/f.Reorder))
	}
	return dst, fate, nil
}

// memTransport is one node's end of a MemNetwork.
type memTransport struct {
	net *MemNetwork
	id  NodeID
	// ctx ends on Close: it stops this node's calls, deliveries and
	// handlers.
	ctx    context.Context
	cancel context.CancelFunc

	// mu guards h and closed; wg counts the goroutines delivering to
	// this node (Add only under mu while open, so Close's Wait is final).
	mu     sync.Mutex
	h      func(ctx context.Context, req []byte) []byte
	closed bool
	wg     sync.WaitGroup
}

// memReply is one delivery's outcome for the caller: a reply, or the
// error of a message lost to a cut.
type memReply struct {
	b   []byte
	err error
}

func (t *memTransport) Call(ctx context.Context, to NodeID, req []byte) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("stream: call node %d: %w", to, err)
	}
	if t.ctx.Err() != nil {
		return nil, fmt.Errorf("%w: transport of node %d", ErrClosed, t.id)
	}
	dst, fate, err := t.net.route(t.id, to)
	if err != nil {
		return nil, err
	}
	out := make(chan memReply, 2)
	if !fate.dropReq && !dst.deliver(ctx, t.id, req, fate.reqDelay, fate.dropReply, fate.replyDelay, out) {
		return nil, fmt.Errorf("%w: node %d is not serving", ErrUnreachable, to)
	}
	if fate.dup {
		dst.deliver(ctx, t.id, req, fate.dupDelay, fate.dropReply, fate.replyDelay, out)
	}
	select {
	case r := <-out:
		return r.b, r.err
	case <-ctx.Done():
		return nil, fmt.Errorf("stream: call node %d: %w", to, ctx.Err())
	case <-t.ctx.Done():
		return nil, fmt.Errorf("%w: transport of node %d", ErrClosed, t.id)
	case <-dst.ctx.Done():
		return nil, fmt.Errorf("%w: node %d closed", ErrUnreachable, to)
	}
}

// deliver hands req from node from to this node's handler after delay,
// and its reply back after replyDelay, unless dropReply. It reports
// false, delivering nothing, if this node is closed or not serving. The
// request travels even once the caller's ctx is done (a late copy); the
// handler's ctx then is too.
func (t *memTransport) deliver(callerCtx context.Context, from NodeID, req []byte, delay time.Duration, dropReply bool, replyDelay time.Duration, out chan<- memReply) bool {
	t.mu.Lock()
	h := t.h
	if t.closed || h == nil {
		t.mu.Unlock()
		return false
	}
	t.wg.Add(1)
	t.mu.Unlock()
	// Copies, as a network makes: the caller may reuse req once Call
	// returns (a late copy may not), and neither side can change what
	// the other holds.
	req = bytes.Clone(req)
	go func() {
		defer t.wg.Done()
		if !sleepCtx(t.ctx, delay) {
			return
		}
		if !t.net.linked(from, t.id) {
			sendReply(out, memReply{err: fmt.Errorf("%w: node %d was cut off from node %d", ErrUnreachable, t.id, from)})
			return
		}
		var ctx context.Context
		var cancel context.CancelFunc
		if dl, ok := callerCtx.Deadline(); ok {
			ctx, cancel = context.WithDeadline(t.ctx, dl)
		} else {
			ctx, cancel = context.WithCancel(t.ctx)
		}
		stop := context.AfterFunc(callerCtx, func() {
			if callerCtx.Err() != context.DeadlineExceeded { // else ctx's own deadline ends it, reporting so
				cancel()
			}
		})
		reply := h(ctx, req)
		stop()
		cancel()
		if dropReply || !sleepCtx(t.ctx, replyDelay) {
			return
		}
		if !t.net.linked(t.id, from) {
			sendReply(out, memReply{err: fmt.Errorf("%w: node %d was cut off from node %d", ErrUnreachable, t.id, from)})
			return
		}
		sendReply(out, memReply{b: bytes.Clone(reply)})
	}()
	return true
}

// sendReply offers r to a caller that may have gone: out has room for
// both copies of a duplicated request, so it never blocks.
func sendReply(out chan<- memReply, r memReply) {
	select {
	case out <- r:
	default:
	}
}

// sleepCtx waits d, or less if ctx ends first; it reports whether d passed.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-tm.C:
		return true
	case <-ctx.Done():
		return false
	}
}

func (t *memTransport) Serve(h func(ctx context.Context, req []byte) []byte) error {
	if h == nil {
		return fmt.Errorf("%w: Serve with a nil handler", ErrInvalidConfig)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return fmt.Errorf("%w: transport of node %d", ErrClosed, t.id)
	}
	if t.h != nil {
		return fmt.Errorf("%w: node %d is already serving", ErrInvalidConfig, t.id)
	}
	t.h = h
	return nil
}

// Close stops serving, fails this node's pending calls with ErrClosed and
// calls to it with ErrUnreachable, and waits for its handlers to return.
func (t *memTransport) Close() error {
	t.mu.Lock()
	t.closed = true
	t.mu.Unlock()
	t.cancel()
	t.wg.Wait()
	return nil
}
