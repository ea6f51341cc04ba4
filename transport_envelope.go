package stream

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"strings"
	"sync"
)

// The engine's requests and replies over a Transport are versioned
// envelopes, so that nodes of two adjacent releases can talk (a rolling
// upgrade). A request:
//
//	version uint8   the protocol version its payload is written in
//	kind    uint8   what it asks (a msgKind)
//	from    int32   the sender's NodeID, big-endian
//	payload         the kind's own encoding in that version
//
// A reply:
//
//	version uint8   the request's version
//	status  uint8   0: ok; else a wire error code, the payload its message
//	max     uint8   the highest version the replying node speaks
//	payload
//
// These header layouts never change; payloads may, with the version.
//
// The compatibility rule: a release whose protocol version is v accepts
// requests in v-1 and v, and answers each in its request's version.
// Anything else (older, newer, unknown kind) gets an error reply, never
// a panic. A node sends v until a peer refuses v with a *VersionError
// whose Max is v-1; it then sends that peer v-1 until a reply's max says
// the peer was upgraded. A change to a payload's layout bumps v, and its
// handler keeps decoding the v-1 layout for one release. A new message
// kind bumps v as well, and is sent only to peers known to speak it.
const (
	protoVersion       uint8 = 1
	envelopeHeaderSize       = 1 + 1 + 4
	replyHeaderSize          = 1 + 1 + 1
)

// msgKind says what a request asks. Values are never reused.
type msgKind uint8

const (
	// kindPing has an empty payload and an empty reply: it checks that a
	// peer is up and speaks a version this node accepts.
	kindPing msgKind = 1
	// kindFetch is a follower's fetch from a partition leader
	// (replica_fetch.go).
	kindFetch msgKind = 2
	// kindEpochEnd asks a partition leader where a leader epoch ends in
	// its log (Kafka's OffsetsForLeaderEpoch; replica_fetch.go). Kinds 2
	// and 3 joined version 1 before its first release, so no bump.
	kindEpochEnd msgKind = 3
	// kindRaft carries raft messages of the metadata group (raftnode.go):
	// the payload is each raftpb.Message as a uvarint length and its
	// bytes, all addressed from the envelope's sender to this node; the
	// reply is empty.
	kindRaft msgKind = 4
	// kindProduce is a producer's batch forwarded to the partition leader
	// (cluster_produce.go); the reply is its base offset.
	kindProduce msgKind = 5
	// kindConsumerFetch is a consumer's fetch from a partition leader
	// (cluster_fetch.go): the payload is topic, partition, topic ID,
	// offset, max bytes and max wait in milliseconds; the reply is the
	// leader's log start and high watermark, then whole batches from the
	// one holding offset, below the high watermark.
	kindConsumerFetch msgKind = 6
	// kindStatus asks any node for its NodeStatus (cluster_status.go):
	// an empty payload, a JSON reply. It joined version 1 before its
	// first release, so no bump.
	kindStatus msgKind = 7
	// The engine's other kinds (metadata queries) are added here.
)

// envelope is a decoded request.
type envelope struct {
	Version uint8
	Kind    msgKind
	From    NodeID
	Payload []byte
}

func appendEnvelope(dst []byte, e envelope) []byte {
	dst = append(dst, e.Version, byte(e.Kind))
	dst = binary.BigEndian.AppendUint32(dst, uint32(e.From))
	return append(dst, e.Payload...)
}

// decodeEnvelope decodes a request; its payload aliases b.
func decodeEnvelope(b []byte) (envelope, error) {
	if len(b) < envelopeHeaderSize {
		return envelope{}, fmt.Errorf("%w: request of %d bytes is shorter than an envelope", ErrBadRequest, len(b))
	}
	e := envelope{Version: b[0], Kind: msgKind(b[1]), From: NodeID(binary.BigEndian.Uint32(b[2:6]))}
	if len(b) > envelopeHeaderSize {
		e.Payload = b[envelopeHeaderSize:]
	}
	return e, nil
}

// VersionError is the error of a request in a protocol version the
// receiving node does not speak; errors.Is(err, ErrUnsupportedVersion)
// holds. Min and Max are the versions the node accepts.
type VersionError struct {
	Node     NodeID // the node that refused, 0 if unknown
	Version  uint8  // the request's
	Min, Max uint8
}

func (e *VersionError) Error() string {
	return fmt.Sprintf("stream: unsupported protocol version: node %d speaks %d to %d, not %d", e.Node, e.Min, e.Max, e.Version)
}

// Is makes errors.Is(err, ErrUnsupportedVersion) true.
func (e *VersionError) Is(target error) bool { return target == ErrUnsupportedVersion }

// wireErrors are the sentinels a reply carries by code (the index).
// Codes are never reused or renumbered; append only.
var wireErrors = [...]error{
	1: ErrBadRequest, 2: ErrUnsupportedVersion, 3: ErrNotLeader, 4: ErrNotEnoughReplicas,
	5: ErrTimeout, 6: ErrUnknownTopic, 7: ErrTopicExists, 8: ErrInvalidConfig,
	9: ErrOffsetOutOfRange, 10: ErrRecordTooLarge, 11: ErrCorrupt, 12: ErrFenced,
	13: ErrUnknownGroup, 14: ErrGroupNotEmpty, 15: ErrClosed, 16: ErrInvalidName,
	17: ErrMessageTooLarge, 18: ErrUnreachable,
}

const (
	statusOK      = 0
	statusVersion = 2   // payload: min, max
	statusOther   = 255 // an error that is none of wireErrors
)

// statusOf returns the code a reply carries for err.
func statusOf(err error) uint8 {
	if errors.Is(err, context.DeadlineExceeded) {
		return 5 // ErrTimeout
	}
	for code, sentinel := range wireErrors {
		if sentinel != nil && errors.Is(err, sentinel) {
			return uint8(code)
		}
	}
	return statusOther
}

func appendReply(dst []byte, version, status, max uint8, payload []byte) []byte {
	dst = append(dst, version, status, max)
	return append(dst, payload...)
}

// errorReply encodes err as a reply in version.
func errorReply(version, max uint8, err error) []byte {
	var ve *VersionError
	if errors.As(err, &ve) {
		return appendReply(nil, version, statusVersion, max, []byte{ve.Min, ve.Max})
	}
	return appendReply(nil, version, statusOf(err), max, []byte(err.Error()))
}

// decodeReply decodes a reply from node from to a request sent in
// version sent: the payload, or the error it carries, and the highest
// version the node speaks.
func decodeReply(b []byte, from NodeID, sent uint8) (payload []byte, max uint8, err error) {
	if len(b) < replyHeaderSize {
		return nil, 0, fmt.Errorf("%w: reply of %d bytes from node %d is shorter than its header", ErrBadRequest, len(b), from)
	}
	status, max, body := b[1], b[2], b[replyHeaderSize:]
	switch {
	case status == statusOK:
		return body, max, nil
	case status == statusVersion && len(body) == 2:
		return nil, max, &VersionError{Node: from, Version: sent, Min: body[0], Max: body[1]}
	case int(status) < len(wireErrors) && wireErrors[status] != nil:
		sentinel := wireErrors[status]
		msg := strings.TrimPrefix(string(body), sentinel.Error()+": ")
		return nil, max, fmt.Errorf("%w: node %d: %s", sentinel, from, msg)
	}
	return nil, max, errorf("stream: node %d: %s", from, strings.TrimPrefix(string(body), "stream: "))
}

// envelopeHandler serves one kind of request: it returns the reply's
// payload, or an error the caller gets back (sentinels survive the trip:
// errors.Is works on the caller's side).
type envelopeHandler func(ctx context.Context, e envelope) ([]byte, error)

// messenger is the engine's side of a Transport: it wraps requests in
// envelopes, negotiates each peer's version, and dispatches incoming
// requests to a handler per kind.
type messenger struct {
	self    NodeID
	t       Transport
	version uint8 // protoVersion; tests play other releases with others
	log     *slog.Logger

	// handlers is filled by handle before serve and only read after.
	handlers map[msgKind]envelopeHandler

	// mu guards peerVer: the version to send each peer, when not ours.
	mu      sync.Mutex
	peerVer map[NodeID]uint8
}

func newMessenger(self NodeID, t Transport, log *slog.Logger) *messenger {
	return newMessengerVersion(self, t, protoVersion, log)
}

func newMessengerVersion(self NodeID, t Transport, version uint8, log *slog.Logger) *messenger {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &messenger{self: self, t: t, version: version, log: log,
		handlers: make(map[msgKind]envelopeHandler), peerVer: make(map[NodeID]uint8)}
}

// handle registers h for kind; call it before serve.
func (m *messenger) handle(kind msgKind, h envelopeHandler) { m.handlers[kind] = h }

// serve starts serving the registered kinds (kindPing included).
func (m *messenger) serve() error {
	if m.handlers[kindPing] == nil {
		m.handlers[kindPing] = func(context.Context, envelope) ([]byte, error) { return nil, nil }
	}
	return m.t.Serve(m.dispatch)
}

// minVersion is the oldest version this node accepts.
func (m *messenger) minVersion() uint8 { return max(m.version, 2) - 1 }

// dispatch decodes one request and runs its kind's handler. Whatever the
// bytes, it returns a reply and never panics.
func (m *messenger) dispatch(ctx context.Context, req []byte) []byte {
	e, err := decodeEnvelope(req)
	if err != nil {
		m.log.Warn("stream: transport: bad request refused", "err", err)
		return errorReply(m.version, m.version, err)
	}
	if e.Version < m.minVersion() || e.Version > m.version {
		m.log.Warn("stream: transport: request in an unsupported protocol version refused",
			"from", e.From, "version", e.Version, "min", m.minVersion(), "max", m.version)
		return errorReply(e.Version, m.version, &VersionError{Node: m.self, Version: e.Version, Min: m.minVersion(), Max: m.version})
	}
	h := m.handlers[e.Kind]
	if h == nil {
		err := fmt.Errorf("%w: unknown message kind %d in version %d", ErrBadRequest, e.Kind, e.Version)
		m.log.Warn("stream: transport: bad request refused", "from", e.From, "err", err)
		return errorReply(e.Version, m.version, err)
	}
	payload, err := m.runHandler(h, ctx, e)
	if err != nil {
		return errorReply(e.Version, m.version, err)
	}
	return appendReply(make([]byte, 0, replyHeaderSize+len(payload)), e.Version, statusOK, m.version, payload)
}

// runHandler runs h, turning a panic into an error reply and a log
// line: a bug in one handler (or a request that finds one) must not take
// the node down, whatever Transport carries the request.
func (m *messenger) runHandler(h envelopeHandler, ctx context.Context, e envelope) (payload []byte, err error) {
	defer func() {
		if v := recover(); v != nil {
			m.log.Error("stream: transport: handler panicked", "from", e.From, "kind", e.Kind, "panic", v, "stack", string(debug.Stack()))
			err = fmt.Errorf("%w: kind %d: %v", errHandlerPanic, e.Kind, v)
		}
	}()
	return h(ctx, e)
}

// call sends kind with payload to node to and returns the reply's
// payload, or the error the peer replied with.
func (m *messenger) call(ctx context.Context, to NodeID, kind msgKind, payload []byte) ([]byte, error) {
	return m.callVersioned(ctx, to, kind, func(uint8) []byte { return payload })
}

// callVersioned is call for a payload whose layout depends on the
// version: encode writes it in the version given.
func (m *messenger) callVersioned(ctx context.Context, to NodeID, kind msgKind, encode func(version uint8) []byte) ([]byte, error) {
	v := m.versionFor(to)
	for attempt := 0; ; attempt++ {
		req := appendEnvelope(nil, envelope{Version: v, Kind: kind, From: m.self, Payload: encode(v)})
		b, err := m.t.Call(ctx, to, req)
		if err != nil {
			return nil, err
		}
		payload, peerMax, err := decodeReply(b, to, v)
		var ve *VersionError
		if errors.As(err, &ve) && attempt == 0 && ve.Max < v && ve.Max >= m.minVersion() {
			// An older peer: speak its version from now on.
			m.setVersion(to, ve.Max)
			v = ve.Max
			continue
		}
		if err == nil || !errors.As(err, &ve) {
			m.setVersion(to, peerMax)
		}
		return payload, err
	}
}

// versionFor returns the version to send node to.
func (m *messenger) versionFor(to NodeID) uint8 {
	m.mu.Lock()
	defer m.mu.Unlock()
	if v, ok := m.peerVer[to]; ok {
		return v
	}
	return m.version
}

// setVersion records that node to speaks up to peerMax.
func (m *messenger) setVersion(to NodeID, peerMax uint8) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if peerMax >= m.version || peerMax < m.minVersion() {
		delete(m.peerVer, to)
	} else {
		m.peerVer[to] = peerMax
	}
}
