package kafkaproto

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/instream/stream"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Config configures Serve. Its zero value works: every zero field takes
// the default its comment gives. Serve never writes to it.
type Config struct {
	// NodeID is the broker ID Metadata and FindCoordinator report for
	// this node. Default 0. Kafka: node.id / broker.id.
	NodeID int32
	// AdvertisedAddr is the host:port clients are told to connect to.
	// Default: the listener's address. Kafka: advertised.listeners.
	AdvertisedAddr string
	// Brokers gives, on a clustered Stream (Options.Cluster), the
	// advertised host:port of the other nodes' listeners by node ID, so
	// that Metadata lists each live node as one broker; this node's is
	// AdvertisedAddr. A node missing here is left out of Metadata.
	// There NodeID defaults to the cluster's node ID and must be it.
	// Must be empty on a single node.
	Brokers map[stream.NodeID]string
	// ClusterID is reported by Metadata. Default "stream".
	ClusterID string
	// MaxRequestBytes bounds one request frame; a client announcing a
	// larger one is disconnected. It also bounds the requests a
	// connection has read ahead: one holds at most about twice this in
	// memory. Default 100 MiB. Kafka: socket.request.max.bytes.
	MaxRequestBytes int32
	// MaxConnections bounds the open connections; one past it is closed
	// at once. Default 1024. Kafka: max.connections.
	MaxConnections int
	// MaxInFlight is how many requests of one connection are read ahead
	// of the one being answered; the connection is not read further
	// until one is answered. Default 16. Kafka:
	// queued.max.requests, per connection.
	MaxInFlight int
	// IdleTimeout closes a connection that sends no request this long.
	// Default 10 minutes. Kafka: connections.max.idle.ms.
	IdleTimeout time.Duration
	// ReadTimeout bounds reading one request once its first bytes
	// arrived, and WriteTimeout writing one response: a slow or stuck
	// client is disconnected. Default 30 seconds each.
	ReadTimeout, WriteTimeout time.Duration
	// Authenticate, when set, turns on SASL/PLAIN: every connection
	// must authenticate with a user name and password it accepts before
	// any request but ApiVersions. It is called from the connections'
	// goroutines, concurrently. PLAIN sends passwords in the clear: serve
	// it over TLS (a tls.Listener). nil: no authentication.
	Authenticate func(user, password string) bool
	// SCRAMPassword, when set, turns on SASL/SCRAM-SHA-256 and
	// SCRAM-SHA-512 (alongside PLAIN if Authenticate is set too): it
	// returns a user's password, ok false for an unknown user. SCRAM
	// never sends the password. Called concurrently.
	SCRAMPassword func(user string) (password string, ok bool)
	// Logger receives connection and request errors. nil: discard.
	Logger *slog.Logger
}

func (c Config) withDefaults(ln net.Listener) Config {
	if c.AdvertisedAddr == "" {
		c.AdvertisedAddr = ln.Addr().String()
	}
	if c.ClusterID == "" {
		c.ClusterID = "stream"
	}
	if c.MaxRequestBytes <= 0 {
		c.MaxRequestBytes = 100 << 20
	}
	if c.MaxConnections <= 0 {
		c.MaxConnections = 1024
	}
	if c.MaxInFlight <= 0 {
		c.MaxInFlight = 16
	}
	if c.IdleTimeout <= 0 {
		c.IdleTimeout = 10 * time.Minute
	}
	if c.ReadTimeout <= 0 {
		c.ReadTimeout = 30 * time.Second
	}
	if c.WriteTimeout <= 0 {
		c.WriteTimeout = 30 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// server is the state of one Serve call.
type server struct {
	s    *stream.Stream
	cfg  Config
	log  *slog.Logger
	host string
	port int32
	// addrs holds the brokers' advertised addresses by node ID on a
	// cluster node (cluster.go); empty on a single node.
	addrs map[int32]address

	groups *coordinator

	// mu guards conns.
	mu    sync.Mutex
	conns map[net.Conn]struct{}
}

// Serve answers Kafka clients on ln with the topics of s until ctx is
// done, then closes ln and every connection, waits for their goroutines
// and returns nil. A listener closed under it returns that error the same
// way; other accept errors (out of file descriptors) are logged and
// retried with a backoff.
// s stays open: closing it is the caller's job, after Serve returns.
func Serve(ctx context.Context, ln net.Listener, s *stream.Stream, cfg Config) error {
	if ln == nil || s == nil {
		return fmt.Errorf("kafkaproto: Serve needs a listener and a stream: %w", stream.ErrInvalidConfig)
	}
	if ctx == nil {
		return fmt.Errorf("kafkaproto: Serve needs a context: %w", stream.ErrInvalidConfig)
	}
	cfg = cfg.withDefaults(ln)
	self, err := parseAddress(cfg.AdvertisedAddr)
	if err != nil {
		return fmt.Errorf("kafkaproto: advertised address %q: %v: %w", cfg.AdvertisedAddr, err, stream.ErrInvalidConfig)
	}
	addrs, err := clusterConfig(&cfg, s, self)
	if err != nil {
		return err
	}
	srv := &server{
		s: s, cfg: cfg, log: cfg.Logger, host: self.host, port: self.port, addrs: addrs,
		conns: map[net.Conn]struct{}{},
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	srv.groups = newCoordinator(srv)
	var wg sync.WaitGroup
	wg.Go(func() { srv.groups.run(ctx) })
	wg.Go(func() {
		<-ctx.Done()
		ln.Close()
		srv.mu.Lock()
		for c := range srv.conns {
			c.Close()
		}
		srv.mu.Unlock()
	})
	var acceptErr error
	var backoff time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			if errors.Is(err, net.ErrClosed) {
				acceptErr = fmt.Errorf("kafkaproto: accept: %w", err)
				break
			}
			// Out of file descriptors and the like: wait and retry, as
			// net/http does, rather than stop serving everyone.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			srv.log.Error("kafka accept failed; retrying", "error", err, "in", backoff)
			select {
			case <-time.After(backoff):
			case <-ctx.Done():
			}
			continue
		}
		backoff = 0
		if !srv.track(nc) {
			srv.log.Warn("kafka connection refused: too many connections", "remote", nc.RemoteAddr(), "max", cfg.MaxConnections)
			nc.Close()
			continue
		}
		wg.Go(func() {
			defer srv.untrack(nc)
			newConn(srv, nc).serve(ctx)
		})
	}
	cancel()
	wg.Wait()
	return acceptErr
}

func (srv *server) track(nc net.Conn) bool {
	srv.mu.Lock()
	defer srv.mu.Unlock()
	if len(srv.conns) >= srv.cfg.MaxConnections {
		return false
	}
	srv.conns[nc] = struct{}{}
	return true
}

func (srv *server) untrack(nc net.Conn) {
	srv.mu.Lock()
	defer srv.mu.Unlock()
	delete(srv.conns, nc)
	nc.Close()
}

// conn is one client connection: a reader goroutine reads request frames
// ahead (up to MaxInFlight), and serve answers them one at a time, in
// order, as Kafka requires.
type conn struct {
	srv *server
	nc  net.Conn
	log *slog.Logger

	// queued is the size of the frames read and not yet answered; the
	// reader reads no frame that would take it past MaxRequestBytes
	// (unless none is queued), so a connection holds at most about
	// twice MaxRequestBytes of requests. drained is signalled when
	// queued shrinks.
	queued  atomic.Int64
	drained chan struct{}

	// SASL state, used by the answering goroutine only, but authed,
	// which the reader reads too.
	saslMech   string      // the mechanism a SaslHandshake accepted
	scram      *scramState // between SCRAM's two rounds
	authed     atomic.Bool // SaslAuthenticate succeeded
	closeAfter bool        // close once the response is written (a failed authentication)
}

func newConn(srv *server, nc net.Conn) *conn {
	return &conn{srv: srv, nc: nc, log: srv.log.With("remote", nc.RemoteAddr().String()), drained: make(chan struct{}, 1)}
}

// request is one decoded request frame.
type request struct {
	size         int64 // of the frame
	key, version int16
	correlation  int32
	clientID     string
	req          kmsg.Request
}

// errDisconnect ends a connection after its log line was written.
var errDisconnect = errors.New("disconnect")

func (c *conn) serve(ctx context.Context) {
	ctx, cancel := context.WithCancel(ctx)
	reqs := make(chan *request, c.srv.cfg.MaxInFlight)
	var wg sync.WaitGroup
	defer func() {
		// Unblock the reader wherever it is (reading, queueing, waiting
		// for the queue to drain), then wait for it.
		c.nc.Close()
		cancel()
		wg.Wait()
	}()
	wg.Go(func() {
		defer close(reqs)
		defer cancel() // a client gone: stop waiting on its behalf
		r := bufio.NewReaderSize(c.nc, 64<<10)
		for {
			req, err := c.readRequest(ctx, r)
			if err != nil {
				if !errors.Is(err, errDisconnect) && !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) && ctx.Err() == nil {
					c.log.Info("kafka connection closed", "error", err)
				}
				return
			}
			select {
			case reqs <- req:
			case <-ctx.Done():
				return
			}
		}
	})
	var out []byte
	for req := range reqs {
		resp, err := c.handle(ctx, req)
		c.queued.Add(-req.size)
		select {
		case c.drained <- struct{}{}:
		default:
		}
		if err != nil {
			if !errors.Is(err, errDisconnect) && ctx.Err() == nil {
				c.log.Warn("kafka request failed; closing the connection", "api", kmsg.NameForKey(req.key), "version", req.version, "client", req.clientID, "error", err)
			}
			return
		}
		if resp == nil {
			continue // Produce with acks=0: no response
		}
		out = c.encode(out[:0], req, resp)
		c.nc.SetWriteDeadline(time.Now().Add(c.srv.cfg.WriteTimeout))
		if _, err := c.nc.Write(out); err != nil {
			if ctx.Err() == nil {
				c.log.Info("kafka connection closed: write", "error", err)
			}
			return
		}
		if c.closeAfter {
			return
		}
		if cap(out) > 1<<20 {
			out = nil // do not keep a large fetch's buffer per idle connection
		}
	}
}

// encode frames resp as the answer to req.
func (c *conn) encode(dst []byte, req *request, resp kmsg.Response) []byte {
	dst = append(dst, 0, 0, 0, 0)
	dst = binary.BigEndian.AppendUint32(dst, uint32(req.correlation))
	// Flexible responses carry a tagged-field section in their header,
	// except ApiVersions, whose response header is always v0 (KIP-511).
	if resp.IsFlexible() && req.key != apiVersionsKey {
		dst = append(dst, 0)
	}
	dst = resp.AppendTo(dst)
	binary.BigEndian.PutUint32(dst, uint32(len(dst)-4))
	return dst
}

// readRequest reads and decodes one request frame. A frame that cannot be
// served (too large, malformed, an unknown API or version) is logged and
// ends the connection with errDisconnect, except an ApiVersions of a
// version too new, which is answered with UNSUPPORTED_VERSION (KIP-511).
func (c *conn) readRequest(ctx context.Context, r *bufio.Reader) (*request, error) {
	c.nc.SetReadDeadline(time.Now().Add(c.srv.cfg.IdleTimeout))
	if _, err := r.Peek(1); err != nil {
		return nil, err
	}
	c.nc.SetReadDeadline(time.Now().Add(c.srv.cfg.ReadTimeout))
	var size [4]byte
	if _, err := io.ReadFull(r, size[:]); err != nil {
		return nil, err
	}
	n := int32(binary.BigEndian.Uint32(size[:]))
	limit := c.srv.cfg.MaxRequestBytes
	if c.srv.cfg.sasl() && !c.authed.Load() {
		limit = min(limit, maxUnauthenticatedBytes)
	}
	if n < 8 || n > limit {
		c.log.Warn("kafka connection closed: bad request size", "size", n, "max", limit)
		return nil, errDisconnect
	}
	for q := c.queued.Load(); q > 0 && q+int64(n) > int64(c.srv.cfg.MaxRequestBytes); q = c.queued.Load() {
		select {
		case <-c.drained:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	frame := make([]byte, n)
	if _, err := io.ReadFull(r, frame); err != nil {
		return nil, err
	}
	req, err := decodeRequest(frame)
	if err != nil {
		c.log.Warn("kafka connection closed: bad request", "error", err)
		return nil, errDisconnect
	}
	req.size = int64(n)
	c.queued.Add(req.size)
	return req, nil
}

// decodeRequest decodes one request frame (without its size prefix). It
// never panics: a frame kmsg cannot parse is an error.
func decodeRequest(frame []byte) (req *request, err error) {
	defer func() {
		if v := recover(); v != nil {
			req, err = nil, fmt.Errorf("malformed request: %v", v)
		}
	}()
	if len(frame) < 10 {
		return nil, fmt.Errorf("request of %d bytes is shorter than a header", len(frame))
	}
	be := binary.BigEndian
	req = &request{
		key:         int16(be.Uint16(frame)),
		version:     int16(be.Uint16(frame[2:])),
		correlation: int32(be.Uint32(frame[4:])),
	}
	rest := frame[8:]
	idLen := int16(be.Uint16(rest))
	rest = rest[2:]
	if idLen > 0 {
		if int(idLen) > len(rest) {
			return nil, fmt.Errorf("client ID of %d bytes with %d left", idLen, len(rest))
		}
		req.clientID, rest = string(rest[:idLen]), rest[idLen:]
	}
	k := kmsg.RequestForKey(req.key)
	lo, hi, ok := supported(req.key)
	if k == nil || !ok {
		return nil, fmt.Errorf("unsupported API key %d (%s)", req.key, kmsg.NameForKey(req.key))
	}
	if req.version < lo || req.version > hi {
		if req.key == apiVersionsKey {
			// Answered with the versions this server supports.
			req.req = nil
			return req, nil
		}
		return nil, fmt.Errorf("%s version %d outside the supported %d..%d", kmsg.NameForKey(req.key), req.version, lo, hi)
	}
	k.SetVersion(req.version)
	if k.IsFlexible() {
		// Request header v2 (KIP-482): tagged fields after the client ID.
		if rest, err = skipTags(rest); err != nil {
			return nil, fmt.Errorf("%s v%d header: %w", kmsg.NameForKey(req.key), req.version, err)
		}
	}
	if err := k.ReadFrom(rest); err != nil {
		return nil, fmt.Errorf("%s v%d: %w", kmsg.NameForKey(req.key), req.version, err)
	}
	req.req = k
	return req, nil
}

// skipTags returns b past a tagged-field section: a count, then each
// field's tag, size and bytes, as unsigned varints.
func skipTags(b []byte) ([]byte, error) {
	n, w := binary.Uvarint(b)
	if w <= 0 {
		return nil, errors.New("bad tagged-field count")
	}
	b = b[w:]
	for range n {
		if len(b) == 0 {
			return nil, errors.New("tagged fields past the end")
		}
		_, w := binary.Uvarint(b) // tag
		if w <= 0 {
			return nil, errors.New("bad tag")
		}
		b = b[w:]
		size, w := binary.Uvarint(b)
		if w <= 0 || size > uint64(len(b)-w) {
			return nil, errors.New("bad tagged-field size")
		}
		b = b[w+int(size):]
	}
	return b, nil
}

// handle answers one request; a nil response sends nothing. An error
// ends the connection. A panic in a handler is a bug: it is logged with
// its stack and ends this connection only.
func (c *conn) handle(ctx context.Context, req *request) (resp kmsg.Response, err error) {
	defer func() {
		if v := recover(); v != nil {
			c.log.Error("kafka handler panicked", "api", kmsg.NameForKey(req.key), "panic", v, "stack", string(debug.Stack()))
			resp, err = nil, errDisconnect
		}
	}()
	h := &handler{srv: c.srv, conn: c, clientID: req.clientID, host: remoteHost(c.nc)}
	return h.dispatch(ctx, req)
}

func remoteHost(nc net.Conn) string {
	host, _, err := net.SplitHostPort(nc.RemoteAddr().String())
	if err != nil {
		return nc.RemoteAddr().String()
	}
	return "/" + host
}
