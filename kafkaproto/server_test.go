package kafkaproto

import (
	"bytes"
	"context"
	"encoding/binary"
	"io"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/instream/stream"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// startServer serves a fresh Stream with cfg on a loopback port.
func startServer(t *testing.T, cfg Config) (*stream.Stream, string) {
	t.Helper()
	s, err := stream.Open(t.TempDir(), &stream.Options{Sync: stream.SyncNever})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, ln, s, cfg) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
		s.Close()
	})
	return s, ln.Addr().String()
}

// rawClient speaks the protocol by hand, to send what a real client
// would not.
type rawClient struct {
	t    *testing.T
	c    net.Conn
	corr int32
}

func dial(t *testing.T, addr string) *rawClient {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(20 * time.Second))
	return &rawClient{t: t, c: c}
}

// frame encodes req as a request frame with the next correlation ID.
func (rc *rawClient) frame(req kmsg.Request) []byte {
	rc.corr++
	b := []byte{0, 0, 0, 0}
	b = binary.BigEndian.AppendUint16(b, uint16(req.Key()))
	b = binary.BigEndian.AppendUint16(b, uint16(req.GetVersion()))
	b = binary.BigEndian.AppendUint32(b, uint32(rc.corr))
	b = binary.BigEndian.AppendUint16(b, 4)
	b = append(b, "test"...)
	if req.IsFlexible() {
		b = append(b, 0)
	}
	b = req.AppendTo(b)
	binary.BigEndian.PutUint32(b, uint32(len(b)-4))
	return b
}

func (rc *rawClient) send(b []byte) {
	rc.t.Helper()
	if _, err := rc.c.Write(b); err != nil {
		rc.t.Fatal(err)
	}
}

// read reads one response frame into resp and returns its correlation ID.
func (rc *rawClient) read(resp kmsg.Response) int32 {
	rc.t.Helper()
	body, err := rc.readFrame()
	if err != nil {
		rc.t.Fatalf("read response: %v", err)
	}
	corr := int32(binary.BigEndian.Uint32(body))
	body = body[4:]
	if resp.IsFlexible() && resp.Key() != apiVersionsKey {
		body = body[1:]
	}
	if err := resp.ReadFrom(body); err != nil {
		rc.t.Fatalf("decode %T: %v", resp, err)
	}
	return corr
}

func (rc *rawClient) readFrame() ([]byte, error) {
	var size [4]byte
	if _, err := io.ReadFull(rc.c, size[:]); err != nil {
		return nil, err
	}
	body := make([]byte, binary.BigEndian.Uint32(size[:]))
	_, err := io.ReadFull(rc.c, body)
	return body, err
}

// closed reports whether the server closed the connection.
func (rc *rawClient) closed() bool {
	rc.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, err := rc.readFrame()
	return err != nil
}

func (rc *rawClient) apiVersions(version int16) *kmsg.ApiVersionsResponse {
	req := kmsg.NewPtrApiVersionsRequest()
	req.SetVersion(version)
	req.ClientSoftwareName, req.ClientSoftwareVersion = "test", "1"
	rc.send(rc.frame(req))
	resp := kmsg.NewPtrApiVersionsResponse()
	resp.SetVersion(version)
	rc.read(resp)
	return resp
}

func TestApiVersions(t *testing.T) {
	_, addr := startServer(t, Config{})
	rc := dial(t, addr)
	resp := rc.apiVersions(2)
	if resp.ErrorCode != 0 || len(resp.ApiKeys) != len(versions) {
		t.Fatalf("ApiVersions v2: error %d, %d keys", resp.ErrorCode, len(resp.ApiKeys))
	}
	// A version newer than served: answered at v0 with UNSUPPORTED_VERSION
	// and the list, on the same connection.
	req := kmsg.NewPtrApiVersionsRequest()
	req.SetVersion(3)
	b := rc.frame(req)
	binary.BigEndian.PutUint16(b[6:], 9)
	rc.send(b)
	old := kmsg.NewPtrApiVersionsResponse()
	old.SetVersion(0)
	rc.read(old)
	if old.ErrorCode != errUnsupportedVersion || len(old.ApiKeys) != len(versions) {
		t.Fatalf("ApiVersions v9: error %d, %d keys; want UNSUPPORTED_VERSION and the list", old.ErrorCode, len(old.ApiKeys))
	}
	if resp := rc.apiVersions(0); resp.ErrorCode != 0 {
		t.Fatalf("the connection does not serve after a too-new ApiVersions: %d", resp.ErrorCode)
	}
}

// TestFlexibleVersions: flexible requests (KIP-482) are decoded and
// answered with their response header's tagged fields, ApiVersions v3's
// excepted; a request header carrying a tagged field is read past.
func TestFlexibleVersions(t *testing.T) {
	s, addr := startServer(t, Config{})
	if _, err := s.CreateTopic("t", stream.TopicConfig{Partitions: 2}); err != nil {
		t.Fatal(err)
	}
	rc := dial(t, addr)
	if resp := rc.apiVersions(3); resp.ErrorCode != 0 || len(resp.ApiKeys) != len(versions) {
		t.Fatalf("ApiVersions v3: error %d, %d keys", resp.ErrorCode, len(resp.ApiKeys))
	}
	req := kmsg.NewPtrMetadataRequest()
	req.SetVersion(9)
	rt := kmsg.NewMetadataRequestTopic()
	rt.Topic = kmsg.StringPtr("t")
	req.Topics = append(req.Topics, rt)
	b := rc.frame(req)
	// The header's tagged fields (after the 4-byte client ID "test"):
	// one field, tag 0, of 3 bytes.
	at := 4 + 10 + 4
	if b[at] != 0 {
		t.Fatalf("frame has %d header tags", b[at])
	}
	b = append(b[:at:at], append([]byte{1, 0, 3, 'a', 'b', 'c'}, b[at+1:]...)...)
	binary.BigEndian.PutUint32(b, uint32(len(b)-4))
	rc.send(b)
	resp := kmsg.NewPtrMetadataResponse()
	resp.SetVersion(9)
	rc.read(resp)
	if len(resp.Topics) != 1 || resp.Topics[0].ErrorCode != 0 || len(resp.Topics[0].Partitions) != 2 || len(resp.Brokers) != 1 {
		t.Fatalf("Metadata v9: %+v", resp)
	}
}

// TestPipelinedInOrder: requests sent back to back, a long-polling fetch
// first, are answered in the order sent.
func TestPipelinedInOrder(t *testing.T) {
	s, addr := startServer(t, Config{})
	if _, err := s.CreateTopic("t", stream.TopicConfig{}); err != nil {
		t.Fatal(err)
	}
	rc := dial(t, addr)
	fetch := kmsg.NewPtrFetchRequest()
	fetch.SetVersion(11)
	fetch.MaxWaitMillis, fetch.MinBytes, fetch.MaxBytes = 300, 1, 1<<20
	ft := kmsg.NewFetchRequestTopic()
	ft.Topic = "t"
	fp := kmsg.NewFetchRequestTopicPartition()
	fp.PartitionMaxBytes = 1 << 20
	ft.Partitions = append(ft.Partitions, fp)
	fetch.Topics = append(fetch.Topics, ft)
	meta := kmsg.NewPtrMetadataRequest()
	meta.SetVersion(8)
	var all []byte
	all = append(all, rc.frame(fetch)...)
	all = append(all, rc.frame(meta)...)
	all = append(all, rc.frame(fetch)...)
	rc.send(all)
	fr := kmsg.NewPtrFetchResponse()
	fr.SetVersion(11)
	mr := kmsg.NewPtrMetadataResponse()
	mr.SetVersion(8)
	for i, resp := range []kmsg.Response{fr, mr, fr} {
		if corr := rc.read(resp); corr != int32(i+1) {
			t.Fatalf("response %d has correlation ID %d", i+1, corr)
		}
	}
	if len(mr.Topics) != 1 || *mr.Topics[0].Topic != "t" {
		t.Fatalf("metadata: %+v", mr.Topics)
	}
}

// TestBadInputDisconnects: each kind of bad frame ends its connection
// with a log line, and a client on another connection is served
// meanwhile.
func TestBadInputDisconnects(t *testing.T) {
	var buf bytes.Buffer
	logs := &lockedWriter{w: &buf}
	logger := slog.New(slog.NewTextHandler(logs, nil))
	_, addr := startServer(t, Config{MaxRequestBytes: 1 << 10, Logger: logger})
	good := dial(t, addr)
	good.apiVersions(2)

	frameOf := func(body []byte) []byte {
		return append(binary.BigEndian.AppendUint32(nil, uint32(len(body))), body...)
	}
	header := func(key, version int16) []byte {
		b := binary.BigEndian.AppendUint16(nil, uint16(key))
		b = binary.BigEndian.AppendUint16(b, uint16(version))
		b = binary.BigEndian.AppendUint32(b, 1)
		return binary.BigEndian.AppendUint16(b, 0xffff) // null client ID
	}
	cases := map[string][]byte{
		"oversized":           binary.BigEndian.AppendUint32(nil, 1<<20),
		"negative size":       binary.BigEndian.AppendUint32(nil, 0xffffffff),
		"short":               frameOf([]byte{0, 1}),
		"unknown key":         frameOf(header(999, 0)),
		"unsupported version": frameOf(header(produceKey, 0)),
		"truncated body":      frameOf(append(header(metadataKey, 1), 0, 0, 0, 5)),
		"garbage":             frameOf(append(header(fetchKey, 4), bytes.Repeat([]byte{0x7f}, 40)...)),
	}
	for name, b := range cases {
		t.Run(name, func(t *testing.T) {
			rc := dial(t, addr)
			rc.send(b)
			if !rc.closed() {
				t.Fatal("the connection stayed open")
			}
			if resp := good.apiVersions(2); resp.ErrorCode != 0 {
				t.Fatal("the good connection stopped being served")
			}
		})
	}
	logs.mu.Lock()
	defer logs.mu.Unlock()
	if n := bytes.Count(buf.Bytes(), []byte("kafka connection closed")); n < len(cases) {
		t.Errorf("%d log lines for %d bad connections:\n%s", n, len(cases), buf.String())
	}
}

// TestSlowClient: a client that starts a request and stalls is cut off
// after ReadTimeout; an idle one after IdleTimeout.
func TestSlowClient(t *testing.T) {
	_, addr := startServer(t, Config{ReadTimeout: 200 * time.Millisecond, IdleTimeout: 300 * time.Millisecond})
	stalled := dial(t, addr)
	stalled.send([]byte{0, 0, 0, 100, 0, 18})
	idle := dial(t, addr)
	if !stalled.closed() {
		t.Fatal("a stalled request kept its connection")
	}
	if !idle.closed() {
		t.Fatal("an idle connection stayed open")
	}
}

func TestMaxConnections(t *testing.T) {
	_, addr := startServer(t, Config{MaxConnections: 2})
	a, b := dial(t, addr), dial(t, addr)
	a.apiVersions(2)
	b.apiVersions(2)
	c := dial(t, addr)
	if !c.closed() {
		t.Fatal("a connection past MaxConnections was served")
	}
	a.c.Close()
	// Once the server has noticed the close, a new connection is served.
	for deadline := time.Now().Add(10 * time.Second); ; {
		d := dial(t, addr)
		d.send(d.frame(kmsg.NewPtrApiVersionsRequest()))
		if _, err := d.readFrame(); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("connections are still refused after one closed")
		}
	}
}

// TestProduceRefusals: a batch that is not one valid RecordBatch v2 gets
// CORRUPT_MESSAGE and writes nothing; a missing topic
// UNKNOWN_TOPIC_OR_PARTITION.
func TestProduceRefusals(t *testing.T) {
	s, addr := startServer(t, Config{})
	tp, err := s.CreateTopic("t", stream.TopicConfig{})
	if err != nil {
		t.Fatal(err)
	}
	var good stream.Batch
	good.Add([]byte("k"), []byte("v"))
	valid := encodeBatch(t, &good)
	badCRC := bytes.Clone(valid)
	badCRC[len(badCRC)-1] ^= 1
	twice := append(bytes.Clone(valid), valid...)
	rc := dial(t, addr)
	for name, c := range map[string]struct {
		topic   string
		records []byte
		code    int16
	}{
		"bad crc":     {"t", badCRC, errCorruptMessage},
		"two batches": {"t", twice, errCorruptMessage},
		"short":       {"t", valid[:20], errCorruptMessage},
		"no topic":    {"missing", valid, errUnknownTopicOrPartition},
		"valid":       {"t", valid, 0},
	} {
		req := kmsg.NewPtrProduceRequest()
		req.SetVersion(8)
		req.Acks, req.TimeoutMillis = -1, 5000
		rt := kmsg.NewProduceRequestTopic()
		rt.Topic = c.topic
		rp := kmsg.NewProduceRequestTopicPartition()
		rp.Records = c.records
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
		rc.send(rc.frame(req))
		resp := kmsg.NewPtrProduceResponse()
		resp.SetVersion(8)
		rc.read(resp)
		if got := resp.Topics[0].Partitions[0].ErrorCode; got != c.code {
			t.Errorf("%s: error %d, want %d", name, got, c.code)
		}
	}
	p, _ := tp.Partition(0)
	if hw := p.HighWatermark(); hw != 1 {
		t.Fatalf("%d records in the log, want the valid one alone", hw)
	}
}

// encodeBatch returns b as a RecordBatch v2, by appending it to a
// scratch Stream and reading it back raw.
func encodeBatch(t *testing.T, b *stream.Batch) []byte {
	t.Helper()
	s, err := stream.Open(t.TempDir(), &stream.Options{Sync: stream.SyncNever})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	tp, err := s.CreateTopic("scratch", stream.TopicConfig{})
	if err != nil {
		t.Fatal(err)
	}
	p, _ := tp.Partition(0)
	if _, err := p.AppendBatch(b); err != nil {
		t.Fatal(err)
	}
	raw, _, err := p.ReadRaw(0, 1<<20, nil)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// lockedWriter serializes writes from the server's goroutines.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// TestStuckClient: a client that sends requests but never reads the
// answers is disconnected after WriteTimeout, and its connection's slot
// is freed (MaxConnections 1: the next client is served).
func TestStuckClient(t *testing.T) {
	_, addr := startServer(t, Config{WriteTimeout: 100 * time.Millisecond, MaxInFlight: 1, MaxConnections: 1})
	stuck := dial(t, addr)
	req := stuck.frame(kmsg.NewPtrApiVersionsRequest())
	batch := bytes.Repeat(req, 1000)
	writeErr := make(chan error, 1)
	go func() {
		for {
			if _, err := stuck.c.Write(batch); err != nil {
				writeErr <- err
				return
			}
		}
	}()
	if err := <-writeErr; err == nil {
		t.Fatal("unreachable")
	}
	for deadline := time.Now().Add(10 * time.Second); ; {
		d := dial(t, addr)
		d.send(d.frame(kmsg.NewPtrApiVersionsRequest()))
		if _, err := d.readFrame(); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the stuck client's connection slot was never freed")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestProduceAcksZeroFailure: a failed produce with acks=0 gets no
// answer and closes the connection, as Kafka does; a good one neither
// answers nor closes.
func TestProduceAcksZeroFailure(t *testing.T) {
	s, addr := startServer(t, Config{})
	if _, err := s.CreateTopic("t", stream.TopicConfig{}); err != nil {
		t.Fatal(err)
	}
	var good stream.Batch
	good.Add(nil, []byte("v"))
	valid := encodeBatch(t, &good)
	produce := func(rc *rawClient, topic string) {
		req := kmsg.NewPtrProduceRequest()
		req.SetVersion(7)
		req.Acks, req.TimeoutMillis = 0, 5000
		rt := kmsg.NewProduceRequestTopic()
		rt.Topic = topic
		rp := kmsg.NewProduceRequestTopicPartition()
		rp.Records = valid
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
		rc.send(rc.frame(req))
	}
	rc := dial(t, addr)
	produce(rc, "t")
	// The next answer is the ApiVersions': the produce sent none.
	rc.send(rc.frame(kmsg.NewPtrApiVersionsRequest()))
	if corr := rc.read(kmsg.NewPtrApiVersionsResponse()); corr != 2 {
		t.Fatalf("after an acks=0 produce, an answer with correlation ID %d, want 2 (ApiVersions')", corr)
	}
	produce(rc, "missing")
	if !rc.closed() {
		t.Fatal("a failed acks=0 produce left the connection open")
	}
}

// TestSASLRequired: with Authenticate set, ApiVersions is answered (and
// lists the SASL APIs) before authentication; any other request, or a
// frame past 512 KiB, closes the connection.
func TestSASLRequired(t *testing.T) {
	_, addr := startServer(t, Config{Authenticate: func(string, string) bool { return true }})
	rc := dial(t, addr)
	resp := rc.apiVersions(2)
	keys := map[int16]bool{}
	for _, k := range resp.ApiKeys {
		keys[k.ApiKey] = true
	}
	if !keys[saslHandshakeKey] || !keys[saslAuthenticateKey] {
		t.Fatalf("ApiVersions lists no SASL APIs: %v", keys)
	}
	meta := kmsg.NewPtrMetadataRequest()
	meta.SetVersion(8)
	rc.send(rc.frame(meta))
	if !rc.closed() {
		t.Fatal("a Metadata request before authentication was served")
	}
	big := dial(t, addr)
	big.send(binary.BigEndian.AppendUint32(nil, 600<<10))
	if !big.closed() {
		t.Fatal("a 600 KiB frame before authentication was read")
	}
	// Authenticated, the same Metadata request is answered.
	ok := dial(t, addr)
	hs := kmsg.NewPtrSASLHandshakeRequest()
	hs.SetVersion(1)
	hs.Mechanism = "PLAIN"
	if r := ok.roundTrip(hs).(*kmsg.SASLHandshakeResponse); r.ErrorCode != 0 {
		t.Fatalf("handshake: %d", r.ErrorCode)
	}
	auth := kmsg.NewPtrSASLAuthenticateRequest()
	auth.SetVersion(1)
	auth.SASLAuthBytes = []byte("\x00user\x00pass")
	if r := ok.roundTrip(auth).(*kmsg.SASLAuthenticateResponse); r.ErrorCode != 0 {
		t.Fatalf("authenticate: %d", r.ErrorCode)
	}
	if r := ok.roundTrip(meta).(*kmsg.MetadataResponse); len(r.Brokers) != 1 {
		t.Fatalf("metadata after authentication: %+v", r)
	}
}
