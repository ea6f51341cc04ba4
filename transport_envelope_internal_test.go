package stream

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"testing/synctest"
)

func TestEnvelopeRoundTrip(t *testing.T) {
	for _, e := range []envelope{
		{Version: 1, Kind: kindPing, From: 3},
		{Version: 7, Kind: 200, From: 1<<31 - 1, Payload: []byte("payload")},
	} {
		got, err := decodeEnvelope(appendEnvelope(nil, e))
		if err != nil || got.Version != e.Version || got.Kind != e.Kind || got.From != e.From || !bytes.Equal(got.Payload, e.Payload) {
			t.Errorf("round trip of %+v: %+v, %v", e, got, err)
		}
	}
	for n := range envelopeHeaderSize {
		if _, err := decodeEnvelope(make([]byte, n)); !errors.Is(err, ErrBadRequest) {
			t.Errorf("%d-byte envelope: %v, want ErrBadRequest", n, err)
		}
	}
}

// messengers returns messengers for nodes 1 and 2 over a MemNetwork, at
// the versions given, each serving kind 10 (echo) and kind 11 (which
// fails with the error its payload names).
func messengers(t *testing.T, net *MemNetwork, v1, v2 uint8) (a, b *messenger, seen *[]uint8) {
	t.Helper()
	seen = new([]uint8)
	ms := make([]*messenger, 3)
	for id, v := range []uint8{1: v1, 2: v2} {
		if id == 0 {
			continue
		}
		tr := net.Transport(NodeID(id))
		t.Cleanup(func() { tr.Close() })
		m := newMessengerVersion(NodeID(id), tr, v, nil)
		m.handle(10, func(_ context.Context, e envelope) ([]byte, error) {
			*seen = append(*seen, e.Version)
			return fmt.Appendf(nil, "v%d from %d: %s", e.Version, e.From, e.Payload), nil
		})
		m.handle(11, func(_ context.Context, e envelope) ([]byte, error) {
			switch string(e.Payload) {
			case "not leader":
				return nil, fmt.Errorf("%w: partition t-0 is led by node 3", ErrNotLeader)
			case "deadline":
				return nil, context.DeadlineExceeded
			}
			return nil, errors.New("disk on fire")
		})
		m.handle(12, func(context.Context, envelope) ([]byte, error) { panic("handler bug") })
		if err := m.serve(); err != nil {
			t.Fatal(err)
		}
		ms[id] = m
	}
	return ms[1], ms[2], seen
}

func TestMessengerErrors(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a, _, _ := messengers(t, NewMemNetwork(1), protoVersion, protoVersion)
		if got, err := a.call(t.Context(), 2, 10, []byte("hi")); err != nil || string(got) != "v1 from 1: hi" {
			t.Errorf("call: %q, %v", got, err)
		}
		if _, err := a.call(t.Context(), 2, kindPing, nil); err != nil {
			t.Errorf("ping: %v", err)
		}
		_, err := a.call(t.Context(), 2, 11, []byte("not leader"))
		if !errors.Is(err, ErrNotLeader) || err.Error() != "stream: not the partition leader: node 2: partition t-0 is led by node 3" {
			t.Errorf("remote ErrNotLeader: %v", err)
		}
		if _, err := a.call(t.Context(), 2, 11, []byte("deadline")); !errors.Is(err, ErrTimeout) {
			t.Errorf("remote deadline: %v, want ErrTimeout", err)
		}
		if _, err := a.call(t.Context(), 2, 11, nil); err == nil || err.Error() != "stream: node 2: disk on fire" {
			t.Errorf("remote plain error: %v", err)
		}
		if _, err := a.call(t.Context(), 2, 99, nil); !errors.Is(err, ErrBadRequest) {
			t.Errorf("unknown kind: %v, want ErrBadRequest", err)
		}
	})
}

func TestMessengerAdjacentVersions(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		net := NewMemNetwork(1)
		// Node 1 runs the new release (v3), node 2 the old one (v2).
		a, b, seen := messengers(t, net, 3, 2)
		for range 3 {
			if got, err := a.call(t.Context(), 2, 10, []byte("x")); err != nil || string(got) != "v2 from 1: x" {
				t.Fatalf("new → old: %q, %v", got, err)
			}
		}
		if got, err := b.call(t.Context(), 1, 10, []byte("y")); err != nil || string(got) != "v2 from 2: y" {
			t.Fatalf("old → new: %q, %v", got, err)
		}
		// Node 2 is upgraded: node 1 notices from a reply and speaks v3.
		net.Transport(2).Close()
		m := newMessengerVersion(2, net.Transport(2), 3, nil)
		m.handle(10, func(_ context.Context, e envelope) ([]byte, error) { return []byte{e.Version}, nil })
		m.serve()
		var got []byte
		for range 2 {
			b, err := a.call(t.Context(), 2, 10, nil)
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, b...)
		}
		if !bytes.Equal(got, []byte{2, 3}) {
			t.Errorf("versions after the upgrade: %v, want [2 3]", got)
		}
		if len(*seen) == 0 {
			t.Error("no handler ran")
		}
	})
}

func TestMessengerVersionsTooFarApart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a, b, seen := messengers(t, NewMemNetwork(1), 3, 1)
		_, err := a.call(t.Context(), 2, 10, nil)
		var ve *VersionError
		if !errors.As(err, &ve) || !errors.Is(err, ErrUnsupportedVersion) || ve.Node != 2 || ve.Version != 3 || ve.Min != 1 || ve.Max != 1 {
			t.Errorf("v3 → v1: %v (%+v), want a VersionError naming 1 to 1", err, ve)
		}
		_, err = b.call(t.Context(), 1, 10, nil)
		if !errors.As(err, &ve) || ve.Node != 1 || ve.Version != 1 || ve.Min != 2 || ve.Max != 3 {
			t.Errorf("v1 → v3: %v (%+v), want a VersionError naming 2 to 3", err, ve)
		}
		if len(*seen) != 0 {
			t.Errorf("handlers ran for versions they do not speak: %v", *seen)
		}
	})
}

func TestMessengerDispatchBadInput(t *testing.T) {
	m := newMessenger(1, NewMemNetwork(1).Transport(1), nil)
	m.handle(10, func(context.Context, envelope) ([]byte, error) { return nil, nil })
	for _, tc := range []struct {
		req  []byte
		want error
	}{
		{nil, ErrBadRequest},
		{[]byte{1}, ErrBadRequest},
		{[]byte{0, 10, 0, 0, 0, 2}, ErrUnsupportedVersion},   // older than v-1
		{[]byte{255, 10, 0, 0, 0, 2}, ErrUnsupportedVersion}, // newer
		{[]byte{1, 77, 0, 0, 0, 2}, ErrBadRequest},           // unknown kind
	} {
		_, _, err := decodeReply(m.dispatch(context.Background(), tc.req), 1, 1)
		if !errors.Is(err, tc.want) {
			t.Errorf("request %v: %v, want %v", tc.req, err, tc.want)
		}
	}
	for _, reply := range [][]byte{nil, {1}, {1, 2, 1}, {1, 250, 1, 'x'}} {
		if _, _, err := decodeReply(reply, 1, 1); err == nil {
			t.Errorf("reply %v decoded without error", reply)
		}
	}
}

// FuzzEnvelope checks, for any bytes: decodeEnvelope never panics and
// what it decodes re-encodes to the same bytes; dispatch never panics
// and always returns a reply that decodes; decodeReply never panics.
func FuzzEnvelope(f *testing.F) {
	f.Add(appendEnvelope(nil, envelope{Version: protoVersion, Kind: 10, From: 1, Payload: []byte("x")}))
	f.Add([]byte{0, 10, 0, 0, 0, 2})
	f.Add([]byte{1, 77})
	m := newMessenger(1, NewMemNetwork(1).Transport(1), nil)
	m.handle(10, func(_ context.Context, e envelope) ([]byte, error) { return e.Payload, nil })
	f.Fuzz(func(t *testing.T, b []byte) {
		if e, err := decodeEnvelope(b); err == nil {
			if again := appendEnvelope(nil, e); !bytes.Equal(again, b) {
				t.Fatalf("re-encoded %x as %x", b, again)
			}
		}
		reply := m.dispatch(context.Background(), b)
		if len(reply) < replyHeaderSize {
			t.Fatalf("reply %x is shorter than a header", reply)
		}
		decodeReply(b, 2, 1)
	})
}

// Over TCP, requests in versions a node does not speak, of kinds it does
// not know, or too short to be envelopes get error replies; the node
// goes on serving.
func TestMessengerOverTCPBadRequests(t *testing.T) {
	srv, err := NewTCPTransport(TCPConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	m := newMessenger(2, srv, nil)
	m.handle(10, func(_ context.Context, e envelope) ([]byte, error) { return e.Payload, nil })
	if err := m.serve(); err != nil {
		t.Fatal(err)
	}
	cli, err := NewTCPTransport(TCPConfig{Peers: map[NodeID]string{2: srv.Addr().String()}})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	for _, tc := range []struct {
		req  []byte
		want error
	}{
		{nil, ErrBadRequest},
		{[]byte{protoVersion}, ErrBadRequest},
		{appendEnvelope(nil, envelope{Version: 0, Kind: 10, From: 1}), ErrUnsupportedVersion},
		{appendEnvelope(nil, envelope{Version: protoVersion + 1, Kind: 10, From: 1}), ErrUnsupportedVersion},
		{appendEnvelope(nil, envelope{Version: protoVersion, Kind: 250, From: 1}), ErrBadRequest},
		{appendEnvelope(nil, envelope{Version: protoVersion, Kind: 10, From: 1, Payload: []byte("ok")}), nil},
	} {
		reply, err := cli.Call(t.Context(), 2, tc.req)
		if err != nil {
			t.Fatalf("request %v: %v", tc.req, err)
		}
		payload, _, err := decodeReply(reply, 2, protoVersion)
		if !errors.Is(err, tc.want) || tc.want == nil && string(payload) != "ok" {
			t.Errorf("request %v: %q, %v; want %v", tc.req, payload, err, tc.want)
		}
	}
}

// TestMessengerHandlerPanic: a panicking handler gives its caller an
// error reply, whatever the Transport; the node keeps serving.
func TestMessengerHandlerPanic(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a, _, _ := messengers(t, NewMemNetwork(1), protoVersion, protoVersion)
		_, err := a.call(t.Context(), 2, 12, []byte("x"))
		if err == nil || !strings.Contains(err.Error(), "panicked") {
			t.Fatalf("call to a panicking handler: %v, want an error saying it panicked", err)
		}
		if got, err := a.call(t.Context(), 2, 10, []byte("after")); err != nil || !bytes.Contains(got, []byte("after")) {
			t.Fatalf("call after a panic: %q, %v", got, err)
		}
	})
}
