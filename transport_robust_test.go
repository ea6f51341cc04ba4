package stream_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/instream/stream"
)

// TestTCPTransportHandlerPanic: a handler that panics costs its caller
// an error reply, and the node a log line; it keeps serving.
func TestTCPTransportHandlerPanic(t *testing.T) {
	checkNoLeaks(t)
	var logs logBuffer
	srv := newTCP(t, stream.TCPConfig{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	srv.Serve(func(_ context.Context, req []byte) []byte {
		if string(req) == "boom" {
			panic("handler bug")
		}
		return req
	})
	cli := newTCP(t, stream.TCPConfig{Peers: map[stream.NodeID]string{1: srv.Addr().String()}})
	if got, err := cli.Call(t.Context(), 1, []byte("boom")); err == nil || !strings.Contains(err.Error(), "handler bug") {
		t.Fatalf("call whose handler panics: %q, %v; want an error naming the panic", got, err)
	}
	if !strings.Contains(logs.String(), "handler panicked") {
		t.Errorf("no log line for the panic; log:\n%s", logs.String())
	}
	if got, err := cli.Call(t.Context(), 1, []byte("ok")); err != nil || string(got) != "ok" {
		t.Fatalf("call after a panic: %q, %v", got, err)
	}
}

// TestTCPTransportMaxConns: connections past MaxConns are closed as they
// are accepted, with a log line; once one closes, a new one is served.
func TestTCPTransportMaxConns(t *testing.T) {
	checkNoLeaks(t)
	var logs logBuffer
	srv := newTCP(t, stream.TCPConfig{MaxConns: 2, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	srv.Serve(func(_ context.Context, req []byte) []byte { return req })
	dial := func() net.Conn {
		t.Helper()
		nc, err := net.Dial("tcp", srv.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { nc.Close() })
		nc.SetDeadline(time.Now().Add(10 * time.Second))
		return nc
	}
	// served reports whether nc answers a request.
	served := func(nc net.Conn) bool {
		t.Helper()
		if _, err := nc.Write(rawFrame(1, 1, 1, 0, []byte("hi"))); err != nil {
			return false
		}
		typ, _, _, payload, err := readRawFrame(nc)
		return err == nil && typ == 2 && string(payload) == "hi"
	}
	a, b := dial(), dial()
	if !served(a) || !served(b) {
		t.Fatal("connections within MaxConns not served")
	}
	c := dial()
	if served(c) {
		t.Fatal("a third connection served with MaxConns 2")
	}
	if _, err := io.ReadAll(c); err != nil {
		t.Fatalf("the connection past MaxConns is not closed: %v", err)
	}
	waitFor(t, "log line", func() bool { return strings.Contains(logs.String(), "too many connections") })
	a.Close()
	waitFor(t, "a connection served after one closed", func() bool { return served(dial()) })
}
