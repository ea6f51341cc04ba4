package stream

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math"
	"math/rand/v2"
	"net"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults of TCPConfig.
const (
	DefaultMaxFrameBytes = 4 << 20
	DefaultDialTimeout   = 5 * time.Second
	DefaultWriteTimeout  = 10 * time.Second
	DefaultConnsPerPeer  = 2
	DefaultMaxConns      = 1024
	// maxFrameLimit bounds MaxFrameBytes: the length word is 32 bits.
	maxFrameLimit = 1 << 30
	// maxInflightPerConn bounds the handlers running for one incoming
	// connection; past it the connection is not read (back-pressure).
	maxInflightPerConn = 1024
	backoffMin         = 50 * time.Millisecond
	backoffMax         = 5 * time.Second
)

// TCPConfig configures NewTCPTransport. The zero value listens on a free
// loopback port and knows no peers.
type TCPConfig struct {
	// Listen is the address to serve on. Default "127.0.0.1:0" (a free
	// port: see Addr). A host-less address such as ":7001" binds
	// loopback too; say "0.0.0.0:7001" or "[::]:7001" to serve other
	// machines.
	Listen string
	// Peers maps node IDs to their addresses; Call fails with
	// ErrUnreachable for a node not in it. SetPeer changes it later.
	Peers map[NodeID]string
	// TLS, when set, secures every connection both ways with this
	// configuration: Certificates for serving, RootCAs (and
	// Certificates, for mutual TLS with ClientAuth) for calling. Nil:
	// plaintext.
	TLS *tls.Config
	// MaxFrameBytes bounds a request and a reply. An oversized request
	// fails in Call with ErrMessageTooLarge before it is sent; a peer's
	// oversized frame is refused with an error reply and its connection
	// closed. Default DefaultMaxFrameBytes (4 MiB), at most 1 GiB.
	MaxFrameBytes int
	// DialTimeout bounds connecting (and the TLS handshake) to a peer.
	// Default 5s.
	DialTimeout time.Duration
	// WriteTimeout: a connection whose peer takes longer than this to
	// accept written bytes is closed, failing the calls on it with
	// ErrUnreachable. Default 10s.
	WriteTimeout time.Duration
	// ConnsPerPeer is how many connections to each peer calls spread
	// over; each carries any number of concurrent calls. Default 2.
	ConnsPerPeer int
	// Logger receives a line for each connection lost and each bad frame
	// refused. Default: discard.
	Logger *slog.Logger
	// MaxConns bounds the connections accepted and open at once; one
	// past it is closed as soon as it is accepted, with a log line, so
	// a flood of connections cannot exhaust memory or file descriptors.
	// Each node dials ConnsPerPeer connections to each peer. Default
	// DefaultMaxConns (1024).
	MaxConns int
}

// withDefaults returns a copy of c with defaults filled in and checked.
func (c TCPConfig) withDefaults() (TCPConfig, error) {
	if c.Listen == "" {
		c.Listen = "127.0.0.1:0"
	}
	host, port, err := net.SplitHostPort(c.Listen)
	if err != nil {
		return c, fmt.Errorf("%w: TCPConfig.Listen = %q: %v", ErrInvalidConfig, c.Listen, err)
	}
	if host == "" {
		c.Listen = net.JoinHostPort("127.0.0.1", port)
	}
	c.Peers = maps.Clone(c.Peers)
	if c.Peers == nil {
		c.Peers = make(map[NodeID]string)
	}
	for id, addr := range c.Peers {
		if _, _, err := net.SplitHostPort(addr); err != nil || id <= 0 {
			return c, configError(fmt.Sprintf("TCPConfig.Peers[%d]", id), addr)
		}
	}
	if c.TLS != nil {
		c.TLS = c.TLS.Clone()
	}
	switch {
	case c.MaxFrameBytes < 0 || c.MaxFrameBytes > maxFrameLimit:
		return c, configError("TCPConfig.MaxFrameBytes", c.MaxFrameBytes)
	case c.MaxFrameBytes == 0:
		c.MaxFrameBytes = DefaultMaxFrameBytes
	}
	switch {
	case c.DialTimeout < 0:
		return c, configError("TCPConfig.DialTimeout", c.DialTimeout)
	case c.DialTimeout == 0:
		c.DialTimeout = DefaultDialTimeout
	}
	switch {
	case c.WriteTimeout < 0:
		return c, configError("TCPConfig.WriteTimeout", c.WriteTimeout)
	case c.WriteTimeout == 0:
		c.WriteTimeout = DefaultWriteTimeout
	}
	switch {
	case c.ConnsPerPeer < 0 || c.ConnsPerPeer > 64:
		return c, configError("TCPConfig.ConnsPerPeer", c.ConnsPerPeer)
	case c.ConnsPerPeer == 0:
		c.ConnsPerPeer = DefaultConnsPerPeer
	}
	switch {
	case c.MaxConns < 0:
		return c, configError("TCPConfig.MaxConns", c.MaxConns)
	case c.MaxConns == 0:
		c.MaxConns = DefaultMaxConns
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c, nil
}

// TCPTransport is the Transport over TCP (optionally TLS) that the
// package ships; NewTCPTransport makes one. Calls to a peer multiplex
// over a small pool of connections, each carrying any number of
// concurrent requests in length-prefixed frames matched to replies by
// request ID. A lost connection fails the calls in flight on it with
// ErrUnreachable and is redialled on the next call, after a backoff
// (50ms doubling to 5s) while dials keep failing; calls during the
// backoff fail at once. The caller's deadline travels with the request
// and a cancelled call cancels the handler's ctx on the peer; a reply
// arriving after its call gave up is discarded.
type TCPTransport struct {
	cfg TCPConfig
	log *slog.Logger
	ln  net.Listener
	// ctx ends on Close: it aborts dials and ends handlers' contexts.
	ctx    context.Context
	cancel context.CancelFunc
	nextID atomic.Uint64

	// mu guards the fields below; wg counts every goroutine the
	// transport starts, added only under mu while open, so Close's Wait
	// is final. The only nesting of the transport's locks is
	// tcpPeer.mu around tcpConn.mu; none is held while dialling,
	// writing or running a handler.
	mu     sync.Mutex
	closed bool
	h      func(ctx context.Context, req []byte) []byte
	peers  map[NodeID]*tcpPeer
	conns  map[*tcpConn]struct{} // open connections, both directions
	served int                   // of them, accepted ones
	wg     sync.WaitGroup
}

// NewTCPTransport listens on cfg.Listen and returns the transport. It
// accepts connections at once; requests that arrive before Serve get an
// ErrUnreachable reply.
func NewTCPTransport(cfg TCPConfig) (*TCPTransport, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, errorf("stream: new TCP transport: %w", err)
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return nil, errorf("stream: new TCP transport: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t := &TCPTransport{
		cfg: cfg, log: cfg.Logger, ln: ln, ctx: ctx, cancel: cancel,
		peers: make(map[NodeID]*tcpPeer),
		conns: make(map[*tcpConn]struct{}),
	}
	t.wg.Add(1)
	go t.accept()
	return t, nil
}

// Addr returns the address the transport listens on, with the port
// chosen when TCPConfig.Listen asked for port 0.
func (t *TCPTransport) Addr() net.Addr { return t.ln.Addr() }

// SetPeer sets (or, with addr "", removes) node id's address. Calls
// already on their way finish on the old address.
func (t *TCPTransport) SetPeer(id NodeID, addr string) error {
	if addr != "" {
		if _, _, err := net.SplitHostPort(addr); err != nil || id <= 0 {
			return errorf("stream: set peer: %w", configError(fmt.Sprintf("node %d address", id), addr))
		}
	}
	t.mu.Lock()
	if addr == "" {
		delete(t.cfg.Peers, id)
	} else {
		t.cfg.Peers[id] = addr
	}
	p := t.peers[id]
	delete(t.peers, id)
	t.mu.Unlock()
	if p != nil {
		p.closeConns(fmt.Errorf("node %d moved", id))
	}
	return nil
}

// Serve hands every request to h, each in its own goroutine, with a ctx
// that carries the caller's deadline and ends when the caller cancels,
// the connection drops or the transport closes.
func (t *TCPTransport) Serve(h func(ctx context.Context, req []byte) []byte) error {
	if h == nil {
		return fmt.Errorf("%w: Serve with a nil handler", ErrInvalidConfig)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	switch {
	case t.closed:
		return fmt.Errorf("%w: TCP transport on %s", ErrClosed, t.ln.Addr())
	case t.h != nil:
		return fmt.Errorf("%w: TCP transport on %s is already serving", ErrInvalidConfig, t.ln.Addr())
	}
	t.h = h
	return nil
}

// Close stops listening, closes every connection, fails pending calls
// with ErrClosed, and returns once every goroutine of the transport
// (handlers included: their ctx ends) has returned.
func (t *TCPTransport) Close() error {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil
	}
	t.closed = true
	conns := make([]*tcpConn, 0, len(t.conns))
	for c := range t.conns {
		conns = append(conns, c)
	}
	t.mu.Unlock()
	t.cancel()
	err := t.ln.Close()
	for _, c := range conns {
		c.fail(ErrClosed)
	}
	t.wg.Wait()
	return err
}

// goLocked starts f as a goroutine of the transport unless it is closed;
// t.mu is held.
func (t *TCPTransport) goLocked(f func()) bool {
	if t.closed {
		return false
	}
	t.wg.Add(1)
	go func() {
		defer t.wg.Done()
		f()
	}()
	return true
}

func (t *TCPTransport) accept() {
	defer t.wg.Done()
	var pause time.Duration
	for {
		nc, err := t.ln.Accept()
		if err != nil {
			if t.ctx.Err() != nil {
				return
			}
			// Out of file descriptors, say: wait and try again, as
			// net/http does.
			pause = min(max(2*pause, 5*time.Millisecond), time.Second)
			t.log.Warn("stream: transport: accept failed", "addr", t.ln.Addr(), "err", err, "retry_in", pause)
			if !sleepCtx(t.ctx, pause) {
				return
			}
			continue
		}
		pause = 0
		if t.cfg.TLS != nil {
			nc = tls.Server(nc, t.cfg.TLS)
		}
		if _, ok := t.startConn(nc, false); !ok {
			nc.Close()
			return
		}
	}
}

// startConn registers a connection and starts its goroutines: the
// reader (serving requests on an accepted one, dispatching replies on a
// dialled one) and the writer. It reports false if the transport is
// closed.
func (t *TCPTransport) startConn(nc net.Conn, dialled bool) (*tcpConn, bool) {
	c := newTCPConn(t, nc)
	c.accepted = !dialled
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return nil, false
	}
	if c.accepted {
		if t.served >= t.cfg.MaxConns {
			t.log.Warn("stream: transport: too many connections; closing a new one", "remote", c.remote, "limit", t.cfg.MaxConns)
			nc.Close()
			return nil, true
		}
		t.served++
	}
	t.conns[c] = struct{}{}
	t.goLocked(c.writeLoop)
	if dialled {
		t.goLocked(c.replyLoop)
	} else {
		t.goLocked(c.serveLoop)
	}
	return c, true
}

// connForCall returns the pooled connection a call to node to takes,
// dialling it if needed.
func (t *TCPTransport) connForCall(ctx context.Context, to NodeID) (*tcpConn, error) {
	for {
		c, err := t.connForCallOnce(ctx, to)
		if err != errPeerReplaced {
			return c, err
		}
	}
}

// errPeerReplaced is returned by tcpPeer.conn when SetPeer replaced the
// peer meanwhile: connForCall then looks it up again.
var errPeerReplaced = errors.New("peer replaced")

func (t *TCPTransport) connForCallOnce(ctx context.Context, to NodeID) (*tcpConn, error) {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil, fmt.Errorf("%w: TCP transport on %s", ErrClosed, t.ln.Addr())
	}
	p := t.peers[to]
	if p == nil {
		addr, ok := t.cfg.Peers[to]
		if !ok {
			t.mu.Unlock()
			return nil, fmt.Errorf("%w: no address for node %d", ErrUnreachable, to)
		}
		p = &tcpPeer{id: to, addr: addr, conns: make([]*tcpConn, t.cfg.ConnsPerPeer), dialing: make([]chan struct{}, t.cfg.ConnsPerPeer)}
		t.peers[to] = p
	}
	t.mu.Unlock()
	return p.conn(ctx, t)
}

// tcpPeer is the pool of connections to one node.
type tcpPeer struct {
	id   NodeID
	addr string

	// mu guards the fields below.
	mu      sync.Mutex
	conns   []*tcpConn      // slot i: nil, open or failed
	dialing []chan struct{} // slot i: closed when its dial ends
	next    uint32          // the slot the next call takes
	fails   int             // dials failed in a row
	retryAt time.Time       // no dial before this while fails > 0
	lastErr error
	closed  bool // removed by SetPeer: its connections are not reused
}

func (p *tcpPeer) conn(ctx context.Context, t *TCPTransport) (*tcpConn, error) {
	p.mu.Lock()
	slot := int(p.next % uint32(len(p.conns)))
	p.next++
	for {
		if c := p.conns[slot]; c != nil && c.err() == nil {
			p.mu.Unlock()
			return c, nil
		}
		if ch := p.dialing[slot]; ch != nil {
			p.mu.Unlock()
			select {
			case <-ch:
			case <-ctx.Done():
				return nil, errorf("stream: call node %d: %w", p.id, ctx.Err())
			}
			p.mu.Lock()
			continue
		}
		if p.closed {
			p.mu.Unlock()
			return nil, errPeerReplaced
		}
		if p.fails > 0 && time.Now().Before(p.retryAt) {
			err := fmt.Errorf("%w: node %d at %s: %v (redial in %v)", ErrUnreachable, p.id, p.addr, p.lastErr, time.Until(p.retryAt).Round(time.Millisecond))
			p.mu.Unlock()
			return nil, err
		}
		ch := make(chan struct{})
		p.dialing[slot] = ch
		p.mu.Unlock()
		c, err := t.dial(ctx, p.addr)
		p.mu.Lock()
		p.dialing[slot] = nil
		close(ch)
		switch {
		case err == nil && p.closed: // SetPeer moved the node meanwhile
			p.mu.Unlock()
			c.fail(errPeerReplaced)
			return nil, errPeerReplaced
		case err == nil:
			p.fails = 0
			p.conns[slot] = c
		case callerGaveUp(ctx) != nil: // not the peer's fault
			p.mu.Unlock()
			return nil, errorf("stream: call node %d: %w", p.id, callerGaveUp(ctx))
		case errors.Is(err, ErrClosed):
			p.mu.Unlock()
			return nil, err
		default:
			p.fails++
			backoff := min(backoffMin<<min(p.fails-1, 20), backoffMax)
			backoff = backoff/2 + rand.N(backoff/2+1)
			p.retryAt = time.Now().Add(backoff)
			p.lastErr = err
			p.mu.Unlock()
			t.log.Warn("stream: transport: dial failed", "node", p.id, "addr", p.addr, "err", err, "retry_in", backoff)
			return nil, fmt.Errorf("%w: node %d at %s: %v", ErrUnreachable, p.id, p.addr, err)
		}
	}
}

// callerGaveUp returns ctx's error, or context.DeadlineExceeded once its
// deadline has passed: a dial bounded by the deadline can fail with an
// i/o timeout a moment before ctx's own timer marks it done.
func callerGaveUp(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if d, ok := ctx.Deadline(); ok && !time.Now().Before(d) {
		return context.DeadlineExceeded
	}
	return nil
}

// closeConns fails the peer's connections; p is being forgotten.
func (p *tcpPeer) closeConns(err error) {
	p.mu.Lock()
	p.closed = true
	conns := p.conns
	p.mu.Unlock()
	for _, c := range conns {
		if c != nil {
			c.fail(err)
		}
	}
}

// dial connects to addr (TLS included), bounded by ctx, DialTimeout and
// Close.
func (t *TCPTransport) dial(ctx context.Context, addr string) (*tcpConn, error) {
	ctx, cancel := context.WithTimeout(ctx, t.cfg.DialTimeout)
	defer cancel()
	stop := context.AfterFunc(t.ctx, cancel)
	defer stop()
	var nc net.Conn
	var err error
	if t.cfg.TLS != nil {
		d := tls.Dialer{Config: t.cfg.TLS}
		nc, err = d.DialContext(ctx, "tcp", addr)
	} else {
		var d net.Dialer
		nc, err = d.DialContext(ctx, "tcp", addr)
	}
	if err != nil {
		if t.ctx.Err() != nil {
			return nil, fmt.Errorf("%w: TCP transport on %s", ErrClosed, t.ln.Addr())
		}
		return nil, err
	}
	c, ok := t.startConn(nc, true)
	if !ok {
		nc.Close()
		return nil, fmt.Errorf("%w: TCP transport on %s", ErrClosed, t.ln.Addr())
	}
	return c, nil
}

// Call sends req to node to and waits for its reply, ctx's end or Close.
func (t *TCPTransport) Call(ctx context.Context, to NodeID, req []byte) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, errorf("stream: call node %d: %w", to, err)
	}
	if len(req) > t.cfg.MaxFrameBytes {
		return nil, fmt.Errorf("%w: request of %d bytes to node %d, limit %d", ErrMessageTooLarge, len(req), to, t.cfg.MaxFrameBytes)
	}
	var arg uint32
	if dl, ok := ctx.Deadline(); ok {
		ms := (time.Until(dl) + time.Millisecond - 1) / time.Millisecond
		arg = uint32(max(1, min(int64(ms), math.MaxUint32)))
	}
	id := t.nextID.Add(1)
	res := make(chan tcpResult, 1)
	var c *tcpConn
	// A connection can fail between being picked and taking the call;
	// the request was not sent then, so one more try is safe.
	for attempt := 0; ; attempt++ {
		var err error
		if c, err = t.connForCall(ctx, to); err != nil {
			return nil, err
		}
		if err = c.send(frame{version: frameVersion, typ: frameRequest, id: id, arg: arg, payload: req}, res); err == nil {
			break
		} else if attempt == 1 {
			return nil, fmt.Errorf("%w: node %d: %v", ErrUnreachable, to, err)
		}
	}
	select {
	case r := <-res:
		if r.err != nil {
			if t.ctx.Err() != nil {
				return nil, fmt.Errorf("%w: TCP transport on %s", ErrClosed, t.ln.Addr())
			}
			return nil, fmt.Errorf("%w (node %d)", r.err, to)
		}
		return r.b, nil
	case <-ctx.Done():
		// A deadline travelled with the request and ends the handler
		// by itself; a cancellation must be sent.
		if c.forget(id) && ctx.Err() == context.Canceled {
			c.cancelRemote(id)
		}
		return nil, errorf("stream: call node %d: %w", to, ctx.Err())
	case <-t.ctx.Done():
		return nil, fmt.Errorf("%w: TCP transport on %s", ErrClosed, t.ln.Addr())
	}
}

// tcpResult is a call's outcome: a reply or an error.
type tcpResult struct {
	b   []byte
	err error
}

// tcpConn is one connection, dialled (carrying our calls) or accepted
// (carrying a peer's). A writer goroutine sends queued frames, many per
// system call; a reader goroutine reads frames. The first failure closes
// it and ends both.
type tcpConn struct {
	t        *TCPTransport
	nc       net.Conn
	remote   string
	accepted bool          // served here (counts towards MaxConns), not dialled
	wake     chan struct{} // a frame was queued (capacity 1)
	done     chan struct{} // closed by fail

	// mu guards the fields below.
	mu      sync.Mutex
	failed  error
	closing error                         // set: fail with it once the queue is written
	queue   [][]byte                      // encoded frames waiting for the writer
	pending map[uint64]chan<- tcpResult   // dialled: calls awaiting replies
	running map[uint64]context.CancelFunc // accepted: handlers by request id
}

func newTCPConn(t *TCPTransport, nc net.Conn) *tcpConn {
	return &tcpConn{
		t: t, nc: nc, remote: nc.RemoteAddr().String(),
		wake: make(chan struct{}, 1), done: make(chan struct{}),
		pending: make(map[uint64]chan<- tcpResult),
		running: make(map[uint64]context.CancelFunc),
	}
}

func (c *tcpConn) err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.failed
}

// fail closes the connection once, failing the calls pending on it with
// ErrUnreachable (ErrClosed when the transport closes) and cancelling its
// handlers.
func (c *tcpConn) fail(err error) {
	c.mu.Lock()
	if c.failed != nil {
		c.mu.Unlock()
		return
	}
	c.failed = err
	pending, running := c.pending, c.running
	c.pending, c.running, c.queue = nil, nil, nil
	close(c.done)
	c.mu.Unlock()
	c.nc.Close()
	callErr := fmt.Errorf("%w: connection to %s lost: %v", ErrUnreachable, c.remote, err)
	if errors.Is(err, ErrClosed) {
		callErr = err
	}
	for _, ch := range pending {
		ch <- tcpResult{err: callErr}
	}
	for _, cancel := range running {
		cancel()
	}
	c.t.mu.Lock()
	if _, ok := c.t.conns[c]; ok && c.accepted {
		c.t.served--
	}
	delete(c.t.conns, c)
	c.t.mu.Unlock()
}

// send queues f; when res is not nil, f is a request and res gets its
// outcome.
func (c *tcpConn) send(f frame, res chan<- tcpResult) error {
	b := appendFrame(make([]byte, 0, 4+frameHeaderSize+len(f.payload)), f)
	c.mu.Lock()
	if c.failed != nil {
		err := c.failed
		c.mu.Unlock()
		return err
	}
	if res != nil {
		c.pending[f.id] = res
	}
	c.queue = append(c.queue, b)
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
	return nil
}

// forget drops a pending call's entry, so its late reply is discarded;
// it reports whether the call was still pending.
func (c *tcpConn) forget(id uint64) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.pending[id]
	delete(c.pending, id)
	return ok
}

// cancelRemote tells the peer to cancel request id's handler. Best
// effort: a lost cancel leaves the handler to its deadline.
func (c *tcpConn) cancelRemote(id uint64) {
	c.send(frame{version: frameVersion, typ: frameCancel, id: id}, nil)
}

func (c *tcpConn) writeLoop() {
	for {
		select {
		case <-c.wake:
		case <-c.done:
			return
		}
		c.mu.Lock()
		q := c.queue
		c.queue = nil
		c.mu.Unlock()
		if len(q) > 0 {
			c.nc.SetWriteDeadline(time.Now().Add(c.t.cfg.WriteTimeout))
			bufs := net.Buffers(q)
			if _, err := bufs.WriteTo(c.nc); err != nil {
				c.logLost("write", err)
				c.fail(err)
				return
			}
		}
		c.mu.Lock()
		closing := c.closing
		if len(c.queue) > 0 {
			closing = nil // more to write first
		}
		c.mu.Unlock()
		if closing != nil {
			c.fail(closing)
			return
		}
	}
}

// logLost logs a connection's failure, unless the transport or the
// connection was closing anyway.
func (c *tcpConn) logLost(op string, err error) {
	if c.t.ctx.Err() != nil || c.err() != nil {
		return
	}
	c.t.log.Warn("stream: transport: connection lost", "remote", c.remote, "op", op, "err", err)
}

func (c *tcpConn) reader() *bufio.Reader { return bufio.NewReaderSize(c.nc, 64<<10) }

// replyLoop reads the replies on a dialled connection and hands each to
// its call; replies whose call gave up are discarded.
func (c *tcpConn) replyLoop() {
	r := c.reader()
	for {
		f, err := readFrame(r, c.t.cfg.MaxFrameBytes)
		if err == nil && f.typ != frameReply && f.typ != frameError {
			err = fmt.Errorf("unexpected frame type %d from a server", f.typ)
		}
		if err != nil {
			var fe *badFrameError
			if errors.As(err, &fe) || f.typ != 0 {
				c.t.log.Warn("stream: transport: bad frame from peer; closing the connection", "remote", c.remote, "err", err)
			} else if !isClosedErr(err) {
				c.logLost("read", err)
			}
			c.fail(err)
			return
		}
		c.mu.Lock()
		ch := c.pending[f.id]
		delete(c.pending, f.id)
		c.mu.Unlock()
		if ch == nil {
			continue // its call gave up
		}
		if f.typ == frameError {
			ch <- tcpResult{err: fmt.Errorf("%w: %s", errCode(f.arg).err(), f.payload)}
		} else {
			ch <- tcpResult{b: f.payload}
		}
	}
}

// isClosedErr reports whether err is the end of a connection rather
// than a fault worth a log line.
func isClosedErr(err error) bool {
	return errors.Is(err, net.ErrClosed) || errors.Is(err, context.Canceled)
}

// serveLoop reads requests on an accepted connection and runs the
// handler for each in its own goroutine, at most maxInflightPerConn at
// once.
func (c *tcpConn) serveLoop() {
	if tc, ok := c.nc.(*tls.Conn); ok {
		ctx, cancel := context.WithTimeout(c.t.ctx, c.t.cfg.DialTimeout)
		err := tc.HandshakeContext(ctx)
		cancel()
		if err != nil {
			if c.t.ctx.Err() == nil {
				c.t.log.Warn("stream: transport: TLS handshake failed", "remote", c.remote, "err", err)
			}
			c.fail(err)
			return
		}
	}
	var h func(context.Context, []byte) []byte // set once Serve was called
	sem := make(chan struct{}, maxInflightPerConn)
	var handlers sync.WaitGroup
	defer handlers.Wait()
	r := c.reader()
	for {
		f, err := readFrame(r, c.t.cfg.MaxFrameBytes)
		if err != nil {
			var fe *badFrameError
			switch {
			case errors.As(err, &fe):
				c.t.log.Warn("stream: transport: bad frame refused", "remote", c.remote, "err", err, "closing", !fe.resync)
				if fe.hasID {
					c.send(frame{version: frameVersion, typ: frameError, id: fe.id, arg: uint32(fe.code), payload: []byte(fe.msg)}, nil)
				}
				if fe.resync {
					continue
				}
			case err == errTruncated:
				c.t.log.Warn("stream: transport: truncated frame; closing the connection", "remote", c.remote)
			case err != io.EOF && !isClosedErr(err): // EOF: the caller closed its end
				c.logLost("read", err)
			}
			c.closeAfterFlush(err)
			return
		}
		switch f.typ {
		case frameCancel:
			c.mu.Lock()
			cancel := c.running[f.id]
			c.mu.Unlock()
			if cancel != nil {
				cancel()
			}
			continue
		case frameRequest:
		default:
			c.t.log.Warn("stream: transport: bad frame refused", "remote", c.remote, "err", fmt.Sprintf("frame type %d sent to a server", f.typ))
			c.send(frame{version: frameVersion, typ: frameError, id: f.id, arg: uint32(codeBadRequest),
				payload: fmt.Appendf(nil, "frame type %d sent to a server", f.typ)}, nil)
			continue
		}
		if h == nil {
			c.t.mu.Lock()
			h = c.t.h
			c.t.mu.Unlock()
		}
		if h == nil {
			c.send(frame{version: frameVersion, typ: frameError, id: f.id, arg: uint32(codeNotServing), payload: []byte("not serving yet")}, nil)
			continue
		}
		select {
		case sem <- struct{}{}:
		case <-c.done:
			return
		}
		// The handler's ctx ends with the caller's deadline, its
		// cancel frame, the connection (fail cancels it) or Close.
		var ctx context.Context
		var cancel context.CancelFunc
		if f.arg > 0 {
			ctx, cancel = context.WithTimeout(c.t.ctx, time.Duration(f.arg)*time.Millisecond)
		} else {
			ctx, cancel = context.WithCancel(c.t.ctx)
		}
		c.mu.Lock()
		if c.running == nil { // failed meanwhile
			c.mu.Unlock()
			cancel()
			return
		}
		c.running[f.id] = cancel
		c.mu.Unlock()
		handlers.Add(1)
		go func() {
			defer handlers.Done()
			defer func() { <-sem }()
			reply, panicked := c.runHandler(h, ctx, f.payload)
			c.mu.Lock()
			if c.running != nil {
				delete(c.running, f.id)
			}
			c.mu.Unlock()
			cancel()
			if panicked != nil {
				c.send(frame{version: frameVersion, typ: frameError, id: f.id, arg: uint32(codeHandlerPanic),
					payload: fmt.Appendf(nil, "handler panicked: %v", panicked)}, nil)
				return
			}
			if len(reply) > c.t.cfg.MaxFrameBytes {
				c.t.log.Warn("stream: transport: reply too large; sending an error instead", "remote", c.remote, "bytes", len(reply), "limit", c.t.cfg.MaxFrameBytes)
				c.send(frame{version: frameVersion, typ: frameError, id: f.id, arg: uint32(codeTooLarge),
					payload: fmt.Appendf(nil, "reply of %d bytes exceeds the limit of %d", len(reply), c.t.cfg.MaxFrameBytes)}, nil)
				return
			}
			c.send(frame{version: frameVersion, typ: frameReply, id: f.id, payload: reply}, nil)
		}()
	}
}

// runHandler runs h on one request, recovering a panic: the node keeps
// serving, the panic and its stack go to the log, and the caller gets
// an error reply.
func (c *tcpConn) runHandler(h func(context.Context, []byte) []byte, ctx context.Context, req []byte) (reply []byte, panicked any) {
	defer func() {
		if v := recover(); v != nil {
			panicked = v
			c.t.log.Error("stream: transport: handler panicked", "remote", c.remote, "panic", v, "stack", string(debug.Stack()))
		}
	}()
	return h(ctx, req), nil
}

// closeAfterFlush has the writer send what is queued (error replies,
// say), then fail the connection with err.
func (c *tcpConn) closeAfterFlush(err error) {
	c.mu.Lock()
	if c.closing == nil {
		c.closing = err
	}
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
}
