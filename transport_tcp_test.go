package stream_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/instream/stream"
)

// logBuffer collects a transport's log lines for a test to check.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// waitFor polls cond for up to 10s; the bound only keeps a broken test
// from hanging.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("still waiting for %s", what)
		}
	}
}

func newTCP(t *testing.T, cfg stream.TCPConfig) *stream.TCPTransport {
	t.Helper()
	tr, err := stream.NewTCPTransport(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Close() })
	return tr
}

// tcpNodes starts nodes 1..n on loopback, each serving echo and knowing
// the others' addresses.
func tcpNodes(t *testing.T, n int, cfg stream.TCPConfig) []*stream.TCPTransport {
	t.Helper()
	ts := make([]*stream.TCPTransport, n+1)
	for id := 1; id <= n; id++ {
		ts[id] = newTCP(t, cfg)
		if err := ts[id].Serve(echo(stream.NodeID(id))); err != nil {
			t.Fatal(err)
		}
	}
	for a := 1; a <= n; a++ {
		for b := 1; b <= n; b++ {
			if err := ts[a].SetPeer(stream.NodeID(b), ts[b].Addr().String()); err != nil {
				t.Fatal(err)
			}
		}
	}
	return ts
}

func TestTCPTransportConcurrentCalls(t *testing.T) {
	checkNoLeaks(t)
	ts := tcpNodes(t, 3, stream.TCPConfig{})
	var wg sync.WaitGroup
	for g := range 32 {
		wg.Go(func() {
			from := ts[1+g%3]
			to := stream.NodeID(1 + (g+1)%3)
			for i := range 40 {
				req := fmt.Sprintf("g%d-%d-%s", g, i, strings.Repeat("x", (g*i*997)%(100<<10)))
				got, err := from.Call(t.Context(), to, []byte(req))
				if err != nil {
					t.Error(err)
					return
				}
				if want := fmt.Sprintf("from %d: %s", to, req); string(got) != want {
					t.Errorf("g%d call %d: reply of %d bytes, want %d", g, i, len(got), len(want))
					return
				}
			}
		})
	}
	wg.Wait()
}

func TestTCPTransportDefaults(t *testing.T) {
	tr := newTCP(t, stream.TCPConfig{})
	if ip := tr.Addr().(*net.TCPAddr).IP; !ip.IsLoopback() {
		t.Errorf("default listen address %v, want loopback", tr.Addr())
	}
	tr2 := newTCP(t, stream.TCPConfig{Listen: ":0"})
	if ip := tr2.Addr().(*net.TCPAddr).IP; !ip.IsLoopback() {
		t.Errorf("listen address :0 bound %v, want loopback", tr2.Addr())
	}
	for _, cfg := range []stream.TCPConfig{
		{Listen: "nonsense"},
		{MaxFrameBytes: -1},
		{MaxFrameBytes: 2 << 30},
		{DialTimeout: -time.Second},
		{Peers: map[stream.NodeID]string{1: "no port"}},
		{Peers: map[stream.NodeID]string{0: "127.0.0.1:1"}},
	} {
		if _, err := stream.NewTCPTransport(cfg); !errors.Is(err, stream.ErrInvalidConfig) {
			t.Errorf("%+v: %v, want ErrInvalidConfig", cfg, err)
		}
	}
	// Unknown peer, peer not serving yet.
	if _, err := tr.Call(t.Context(), 7, nil); !errors.Is(err, stream.ErrUnreachable) {
		t.Errorf("call to a node with no address: %v, want ErrUnreachable", err)
	}
	tr.SetPeer(2, tr2.Addr().String())
	if _, err := tr.Call(t.Context(), 2, nil); !errors.Is(err, stream.ErrUnreachable) {
		t.Errorf("call to a node not serving yet: %v, want ErrUnreachable", err)
	}
	if err := tr2.Serve(nil); !errors.Is(err, stream.ErrInvalidConfig) {
		t.Errorf("Serve(nil): %v, want ErrInvalidConfig", err)
	}
	tr2.Serve(echo(2))
	if err := tr2.Serve(echo(2)); !errors.Is(err, stream.ErrInvalidConfig) {
		t.Errorf("second Serve: %v, want ErrInvalidConfig", err)
	}
	if got, err := tr.Call(t.Context(), 2, []byte("hi")); err != nil || string(got) != "from 2: hi" {
		t.Errorf("call once serving: %q, %v", got, err)
	}
}

func TestTCPTransportReconnect(t *testing.T) {
	checkNoLeaks(t)
	var logs logBuffer
	a := newTCP(t, stream.TCPConfig{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	b := newTCP(t, stream.TCPConfig{})
	b.Serve(echo(2))
	addr := b.Addr().String()
	a.SetPeer(2, addr)
	if _, err := a.Call(t.Context(), 2, []byte("1")); err != nil {
		t.Fatal(err)
	}
	b.Close()
	if _, err := a.Call(t.Context(), 2, []byte("2")); !errors.Is(err, stream.ErrUnreachable) {
		t.Fatalf("call to a stopped node: %v, want ErrUnreachable", err)
	}
	// The node comes back on the same port; calls find it again once
	// the backoff allows a dial.
	b2 := newTCP(t, stream.TCPConfig{Listen: addr})
	b2.Serve(echo(2))
	var got []byte
	waitFor(t, "a call to the restarted node", func() bool {
		var err error
		got, err = a.Call(t.Context(), 2, []byte("3"))
		if err != nil && !errors.Is(err, stream.ErrUnreachable) {
			t.Fatalf("call while reconnecting: %v, want ErrUnreachable", err)
		}
		return err == nil
	})
	if string(got) != "from 2: 3" {
		t.Errorf("reply %q", got)
	}
	if !strings.Contains(logs.String(), "dial failed") && !strings.Contains(logs.String(), "connection lost") {
		t.Errorf("no log line about the lost peer:\n%s", logs.String())
	}
}

func TestTCPTransportCancel(t *testing.T) {
	checkNoLeaks(t)
	a := newTCP(t, stream.TCPConfig{})
	b := newTCP(t, stream.TCPConfig{})
	a.SetPeer(2, b.Addr().String())
	type seen struct {
		deadline bool
		err      error
	}
	handled := make(chan seen, 10)
	release := make(chan struct{})
	b.Serve(func(ctx context.Context, req []byte) []byte {
		switch string(req) {
		case "wait":
			<-ctx.Done()
			_, ok := ctx.Deadline()
			handled <- seen{ok, ctx.Err()}
		case "ignore":
			<-release // a handler that ignores its ctx: its reply comes late
			return []byte("late")
		}
		return req
	})

	// A cancel ends the call at once and travels to the handler.
	ctx, cancel := context.WithCancel(t.Context())
	time.AfterFunc(20*time.Millisecond, cancel)
	if _, err := a.Call(ctx, 2, []byte("wait")); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled call: %v, want context.Canceled", err)
	}
	if s := <-handled; s.deadline || !errors.Is(s.err, context.Canceled) {
		t.Errorf("handler of a cancelled call: deadline %v, ctx %v; want no deadline, cancelled", s.deadline, s.err)
	}

	// A deadline travels with the request.
	ctx, cancel = context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	// The handler's ctx ends as the caller's does: the call gets the
	// timeout or, if the handler beat the caller's timer, its reply.
	if _, err := a.Call(ctx, 2, []byte("wait")); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("call past its deadline: %v, want context.DeadlineExceeded", err)
	}
	if s := <-handled; !s.deadline || !errors.Is(s.err, context.DeadlineExceeded) {
		t.Errorf("handler of a call with a deadline: deadline %v, ctx %v", s.deadline, s.err)
	}

	// A late reply is discarded; the connection serves the next call.
	ctx, cancel = context.WithTimeout(t.Context(), 20*time.Millisecond)
	defer cancel()
	if _, err := a.Call(ctx, 2, []byte("ignore")); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("call past its deadline: %v, want context.DeadlineExceeded", err)
	}
	close(release)
	for i := range 10 {
		req := fmt.Sprint("next ", i)
		if got, err := a.Call(t.Context(), 2, []byte(req)); err != nil || string(got) != req {
			t.Fatalf("call after a late reply: %q, %v; want %q", got, err, req)
		}
	}

	// A ctx already done: no request leaves.
	done, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := a.Call(done, 2, []byte("x")); !errors.Is(err, context.Canceled) {
		t.Errorf("call with a done ctx: %v, want context.Canceled", err)
	}
}

func TestTCPTransportFrameLimit(t *testing.T) {
	checkNoLeaks(t)
	var logs logBuffer
	var handled atomic.Int32
	big := func(_ context.Context, req []byte) []byte {
		handled.Add(1)
		if string(req) == "big reply" {
			return make([]byte, 2000)
		}
		return req
	}
	// The server's limit is smaller than the client's: the server must
	// refuse what the client lets through.
	a := newTCP(t, stream.TCPConfig{MaxFrameBytes: 4000})
	b := newTCP(t, stream.TCPConfig{MaxFrameBytes: 1000, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	b.Serve(big)
	a.SetPeer(2, b.Addr().String())
	b.SetPeer(1, a.Addr().String())
	a.Serve(big)

	if _, err := b.Call(t.Context(), 1, make([]byte, 1001)); !errors.Is(err, stream.ErrMessageTooLarge) {
		t.Errorf("request over the caller's limit: %v, want ErrMessageTooLarge", err)
	}
	if handled.Load() != 0 {
		t.Errorf("an oversized request reached a handler")
	}
	if _, err := a.Call(t.Context(), 2, []byte("big reply")); !errors.Is(err, stream.ErrMessageTooLarge) {
		t.Errorf("reply over the server's limit: %v, want ErrMessageTooLarge", err)
	}
	if _, err := a.Call(t.Context(), 2, make([]byte, 3000)); !errors.Is(err, stream.ErrMessageTooLarge) {
		t.Errorf("request over the server's limit: %v, want ErrMessageTooLarge", err)
	}
	if handled.Load() != 1 {
		t.Errorf("%d requests handled, want 1 (the big reply's)", handled.Load())
	}
	if !strings.Contains(logs.String(), "exceeds the limit") {
		t.Errorf("no log line for the oversized frames:\n%s", logs.String())
	}
	// The caller recovers: the next call redials if it must.
	waitFor(t, "a call after the refused frame", func() bool {
		got, err := a.Call(t.Context(), 2, []byte("small"))
		return err == nil && string(got) == "small"
	})
}

// rawFrame encodes a frame of the TCP transport's wire format by hand.
func rawFrame(version, typ byte, id uint64, arg uint32, payload []byte) []byte {
	b := binary.BigEndian.AppendUint32(nil, uint32(14+len(payload)))
	b = append(b, version, typ)
	b = binary.BigEndian.AppendUint64(b, id)
	b = binary.BigEndian.AppendUint32(b, arg)
	return append(b, payload...)
}

// readRawFrame reads one frame: its type, id, arg and payload.
func readRawFrame(r io.Reader) (typ byte, id uint64, arg uint32, payload []byte, err error) {
	var hdr [18]byte
	if _, err = io.ReadFull(r, hdr[:]); err != nil {
		return
	}
	payload = make([]byte, binary.BigEndian.Uint32(hdr[:4])-14)
	_, err = io.ReadFull(r, payload)
	return hdr[5], binary.BigEndian.Uint64(hdr[6:14]), binary.BigEndian.Uint32(hdr[14:]), payload, err
}

func TestTCPTransportBadInput(t *testing.T) {
	checkNoLeaks(t)
	var logs logBuffer
	srv := newTCP(t, stream.TCPConfig{MaxFrameBytes: 1 << 10, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	srv.Serve(func(_ context.Context, req []byte) []byte { return req })
	const (
		errFrame       = 3
		codeTooLarge   = 1
		codeBadRequest = 2
		codeBadVersion = 3
	)
	tests := []struct {
		name  string
		input []byte
		// want: the error frame's code and whether the connection
		// survives it (then a valid request is answered after it).
		code   uint32
		stays  bool
		logged string
	}{
		{"truncated header", []byte{0, 0, 0, 40, 1, 1, 0}, 0, false, "truncated"},
		{"truncated payload", rawFrame(1, 1, 9, 0, []byte("0123456789"))[:20], 0, false, "truncated"},
		{"oversized", rawFrame(1, 1, 9, 0, nil)[:18], codeTooLarge, false, "exceeds the limit"},
		{"length below a header", []byte{0, 0, 0, 3, 1, 1, 1}, 0, false, "shorter than a header"},
		{"garbage", []byte("GET / HTTP/1.1\r\nHost: example\r\n\r\n"), codeBadVersion, false, "frame version 47"},
		{"old version", rawFrame(0, 1, 9, 0, []byte("hello")), codeBadVersion, true, "frame version 0"},
		{"newer version", rawFrame(200, 1, 9, 0, []byte("hello")), codeBadVersion, true, "frame version 200"},
		{"unknown type", rawFrame(1, 77, 9, 0, []byte("hello")), codeBadRequest, true, "unknown frame type 77"},
		{"reply sent to a server", rawFrame(1, 2, 9, 0, []byte("hello")), codeBadRequest, true, "frame type 2 sent to a server"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			nc, err := net.Dial("tcp", srv.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer nc.Close()
			nc.SetDeadline(time.Now().Add(10 * time.Second))
			in := tc.input
			if tc.name == "oversized" {
				binary.BigEndian.PutUint32(in, 1<<31)
			}
			nc.Write(in)
			if tc.code == 0 {
				nc.(*net.TCPConn).CloseWrite()
			}
			if tc.stays {
				nc.Write(rawFrame(1, 1, 10, 0, []byte("still there")))
			}
			var got []string
			for !tc.stays || len(got) < 2 { // a connection that stays is not closed by the server
				typ, id, arg, payload, err := readRawFrame(nc)
				if err != nil {
					break
				}
				got = append(got, fmt.Sprintf("type %d id %d arg %d %q", typ, id, arg, payload))
			}
			var want []string
			if tc.code != 0 {
				id := 9
				if tc.name == "garbage" {
					id = int(binary.BigEndian.Uint64(in[6:14]))
				}
				want = append(want, fmt.Sprintf("type %d id %d arg %d", errFrame, id, tc.code))
			}
			if tc.stays {
				want = append(want, `type 2 id 10 arg 0 "still there"`)
			}
			if len(got) != len(want) {
				t.Fatalf("frames back:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
			for i := range want {
				if !strings.HasPrefix(got[i], want[i]) {
					t.Errorf("frame %d: %s, want %s…", i, got[i], want[i])
				}
			}
			waitFor(t, "log line "+tc.logged, func() bool { return strings.Contains(logs.String(), tc.logged) })
		})
	}
	// The server still serves.
	cli := newTCP(t, stream.TCPConfig{Peers: map[stream.NodeID]string{1: srv.Addr().String()}})
	if got, err := cli.Call(t.Context(), 1, []byte("ok")); err != nil || string(got) != "ok" {
		t.Errorf("call after bad input: %q, %v", got, err)
	}
}

// selfSigned returns a TLS configuration that serves and trusts one
// self-signed certificate for 127.0.0.1.
func selfSigned(t *testing.T) *tls.Config {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "stream test"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &tls.Config{
		Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}},
		RootCAs:      pool,
		ClientCAs:    pool,
		ClientAuth:   tls.RequireAndVerifyClientCert,
		MinVersion:   tls.VersionTLS13,
	}
}

func TestTCPTransportTLS(t *testing.T) {
	checkNoLeaks(t)
	var logs logBuffer
	cfg := selfSigned(t)
	ts := tcpNodes(t, 2, stream.TCPConfig{TLS: cfg, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if got, err := ts[1].Call(t.Context(), 2, []byte("secret")); err != nil || string(got) != "from 2: secret" {
		t.Fatalf("call over TLS: %q, %v", got, err)
	}
	// A plaintext peer cannot talk to a TLS one, either way round.
	plain := newTCP(t, stream.TCPConfig{Peers: map[stream.NodeID]string{2: ts[2].Addr().String()}})
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if _, err := plain.Call(ctx, 2, []byte("hi")); !errors.Is(err, stream.ErrUnreachable) {
		t.Errorf("plaintext call to a TLS node: %v, want ErrUnreachable", err)
	}
	waitFor(t, "a log line for the failed handshake", func() bool { return strings.Contains(logs.String(), "TLS handshake failed") })
	// A client without a certificate the server trusts is refused.
	noCert := cfg.Clone()
	noCert.Certificates = nil
	anon := newTCP(t, stream.TCPConfig{TLS: noCert, Peers: map[stream.NodeID]string{2: ts[2].Addr().String()}})
	if _, err := anon.Call(ctx, 2, []byte("hi")); !errors.Is(err, stream.ErrUnreachable) {
		t.Errorf("call without a client certificate: %v, want ErrUnreachable", err)
	}
}

func TestTCPTransportClose(t *testing.T) {
	checkNoLeaks(t)
	ts := tcpNodes(t, 2, stream.TCPConfig{})
	started := make(chan struct{}, 1)
	ended := make(chan error, 1)
	c := newTCP(t, stream.TCPConfig{Peers: map[stream.NodeID]string{2: ts[2].Addr().String()}})
	c.SetPeer(3, c.Addr().String())
	c.Serve(func(ctx context.Context, req []byte) []byte {
		started <- struct{}{}
		<-ctx.Done()
		ended <- ctx.Err()
		return nil
	})

	// A call pending on a transport that closes fails with ErrClosed;
	// Close waits for the handler, whose ctx ends.
	errc := make(chan error)
	go func() { _, err := c.Call(t.Context(), 3, []byte("x")); errc <- err }()
	<-started
	if err := c.Close(); err != nil {
		t.Error(err)
	}
	select {
	case err := <-ended:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("handler ctx after Close: %v, want context.Canceled", err)
		}
	default:
		t.Error("Close returned before the handler")
	}
	if err := <-errc; !errors.Is(err, stream.ErrClosed) {
		t.Errorf("call pending across Close: %v, want ErrClosed", err)
	}
	if err := c.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := c.Call(t.Context(), 2, nil); !errors.Is(err, stream.ErrClosed) {
		t.Errorf("call after Close: %v, want ErrClosed", err)
	}
	if err := c.Serve(echo(3)); !errors.Is(err, stream.ErrClosed) {
		t.Errorf("Serve after Close: %v, want ErrClosed", err)
	}
	// A call to a closed node fails with ErrUnreachable.
	ts[2].Close()
	if _, err := ts[1].Call(t.Context(), 2, nil); !errors.Is(err, stream.ErrUnreachable) {
		t.Errorf("call to a closed node: %v, want ErrUnreachable", err)
	}
}

func TestTCPTransportSetPeerMoves(t *testing.T) {
	checkNoLeaks(t)
	ts := tcpNodes(t, 3, stream.TCPConfig{})
	if got, err := ts[1].Call(t.Context(), 2, []byte("a")); err != nil || string(got) != "from 2: a" {
		t.Fatalf("call: %q, %v", got, err)
	}
	// Node 2 moves to node 3's address while connections to its old
	// one are open: calls follow it.
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := ts[1].SetPeer(2, ts[3].Addr().String()); err != nil {
			t.Error(err)
		}
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("SetPeer hangs")
	}
	if got, err := ts[1].Call(t.Context(), 2, []byte("b")); err != nil || string(got) != "from 3: b" {
		t.Errorf("call after the move: %q, %v", got, err)
	}
	ts[1].SetPeer(2, "")
	if _, err := ts[1].Call(t.Context(), 2, nil); !errors.Is(err, stream.ErrUnreachable) {
		t.Errorf("call to a removed peer: %v, want ErrUnreachable", err)
	}
	if err := ts[1].SetPeer(2, "no port"); !errors.Is(err, stream.ErrInvalidConfig) {
		t.Errorf("SetPeer with a bad address: %v, want ErrInvalidConfig", err)
	}
}

// Calls that give up at random while others go on: every reply a call
// gets is its own, never one meant for a call that gave up.
func TestTCPTransportRepliesNeverCross(t *testing.T) {
	checkNoLeaks(t)
	a := newTCP(t, stream.TCPConfig{ConnsPerPeer: 1})
	b := newTCP(t, stream.TCPConfig{})
	a.SetPeer(2, b.Addr().String())
	b.Serve(func(ctx context.Context, req []byte) []byte {
		// Ignore ctx: replies come late for calls that gave up.
		time.Sleep(time.Duration(req[0]%4) * time.Millisecond)
		return req
	})
	var wg sync.WaitGroup
	var ok, gaveUp atomic.Int32
	for g := range 16 {
		wg.Go(func() {
			for i := range 50 {
				req := fmt.Appendf(nil, "%c g%d call %d", byte(g+i), g, i)
				ctx, cancel := context.WithTimeout(t.Context(), time.Duration(i%3)*time.Millisecond)
				got, err := a.Call(ctx, 2, req)
				cancel()
				switch {
				case err == nil:
					ok.Add(1)
					if !bytes.Equal(got, req) {
						t.Errorf("call %q got the reply %q", req, got)
					}
				case errors.Is(err, context.DeadlineExceeded):
					gaveUp.Add(1)
				default:
					t.Errorf("call %q: %v", req, err)
				}
			}
		})
	}
	wg.Wait()
	t.Logf("%d replies, %d calls gave up", ok.Load(), gaveUp.Load())
}

// A peer that stops reading: once WriteTimeout passes with bytes
// unwritten, the connection closes and the calls on it fail.
func TestTCPTransportWriteTimeout(t *testing.T) {
	checkNoLeaks(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		nc, err := ln.Accept()
		if err == nil {
			accepted <- nc // never read
		}
	}()
	var logs logBuffer
	a := newTCP(t, stream.TCPConfig{
		WriteTimeout: 50 * time.Millisecond, ConnsPerPeer: 1,
		Peers:  map[stream.NodeID]string{2: ln.Addr().String()},
		Logger: slog.New(slog.NewTextHandler(&logs, nil)),
	})
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for range 16 { // 64 MiB: more than the socket buffers hold
		wg.Go(func() {
			_, err := a.Call(t.Context(), 2, make([]byte, 4<<20))
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if !errors.Is(err, stream.ErrUnreachable) {
			t.Errorf("call to a peer that does not read: %v, want ErrUnreachable", err)
		}
	}
	if !strings.Contains(logs.String(), "connection lost") {
		t.Errorf("no log line for the stuck connection:\n%s", logs.String())
	}
	(<-accepted).Close()
}
