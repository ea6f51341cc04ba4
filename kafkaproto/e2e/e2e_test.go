// Package e2e tests package kafkaproto against Kafka clients nobody here
// wrote: franz-go's kgo and kadm, kcat, and KafkaJS (kafkajs/, run
// with node). It is a module of its own so the library's go.mod keeps
// only kmsg.
package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"slices"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/instream/stream"
	"github.com/instream/stream/kafkaproto"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// broker is a Stream served on a loopback port.
type broker struct {
	s    *stream.Stream
	addr string
}

func startBroker(t testing.TB, opts *stream.Options) *broker {
	t.Helper()
	if opts == nil {
		opts = &stream.Options{}
	}
	s, err := stream.Open(t.TempDir(), opts)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	go func() { done <- kafkaproto.Serve(ctx, ln, s, kafkaproto.Config{Logger: logger}) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return &broker{s: s, addr: ln.Addr().String()}
}

func (b *broker) client(t testing.TB, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(b.addr)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

func (b *broker) createTopic(t testing.TB, name string, partitions int) {
	t.Helper()
	if _, err := b.s.CreateTopic(name, stream.TopicConfig{Partitions: partitions}); err != nil {
		t.Fatal(err)
	}
}

func testContext(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// sample returns n records with keys, headers and distinct millisecond
// timestamps in the past.
func sample(topic string, n int) []*kgo.Record {
	base := time.Now().Add(-time.Hour).Truncate(time.Millisecond)
	out := make([]*kgo.Record, n)
	for i := range out {
		out[i] = &kgo.Record{
			Topic:     topic,
			Key:       fmt.Appendf(nil, "key-%d", i%7),
			Value:     fmt.Appendf(nil, "value-%d", i),
			Headers:   []kgo.RecordHeader{{Key: "h", Value: fmt.Appendf(nil, "%d", i)}, {Key: "empty"}},
			Timestamp: base.Add(time.Duration(i) * time.Millisecond),
		}
	}
	if n > 0 {
		out[0].Key = nil // a null key
	}
	return out
}

func sameRecord(t *testing.T, want *kgo.Record, got *stream.Record) {
	t.Helper()
	if !bytes.Equal(want.Key, got.Key) || (want.Key == nil) != (got.Key == nil) {
		t.Errorf("offset %d: key %q, want %q", got.Offset, got.Key, want.Key)
	}
	if !bytes.Equal(want.Value, got.Value) {
		t.Errorf("offset %d: value %q, want %q", got.Offset, got.Value, want.Value)
	}
	if !got.Timestamp.Equal(want.Timestamp) {
		t.Errorf("offset %d: timestamp %v, want %v", got.Offset, got.Timestamp, want.Timestamp)
	}
	if len(got.Headers) != len(want.Headers) {
		t.Fatalf("offset %d: headers %v, want %v", got.Offset, got.Headers, want.Headers)
	}
	for i, h := range want.Headers {
		if got.Headers[i].Key != h.Key || !bytes.Equal(got.Headers[i].Value, h.Value) {
			t.Errorf("offset %d: header %d = %v, want %v", got.Offset, i, got.Headers[i], h)
		}
	}
}

// TestProduceKgoReadGoAPI: records produced by kgo (idempotent, the
// default, with each compression codec) read back through the Go API
// with keys, headers and timestamps intact, at the offsets kgo was told.
func TestProduceKgoReadGoAPI(t *testing.T) {
	b := startBroker(t, nil)
	codecs := map[string]kgo.CompressionCodec{
		"none": kgo.NoCompression(), "gzip": kgo.GzipCompression(), "snappy": kgo.SnappyCompression(),
		"lz4": kgo.Lz4Compression(), "zstd": kgo.ZstdCompression(),
	}
	for name, codec := range codecs {
		t.Run(name, func(t *testing.T) {
			topic := "kgo-" + name
			b.createTopic(t, topic, 1)
			cl := b.client(t, kgo.ProducerBatchCompression(codec), kgo.DefaultProduceTopic(topic))
			recs := sample(topic, 200)
			if err := cl.ProduceSync(testContext(t), recs...).FirstErr(); err != nil {
				t.Fatal(err)
			}
			tp, err := b.s.Topic(topic)
			if err != nil {
				t.Fatal(err)
			}
			p, _ := tp.Partition(0)
			var got []*stream.Record
			for off := int64(0); off < p.HighWatermark(); {
				rs, err := p.Read(off, 1<<20)
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, rs...)
				off = rs[len(rs)-1].Offset + 1
			}
			if len(got) != len(recs) {
				t.Fatalf("read %d records, want %d", len(got), len(recs))
			}
			for i, r := range recs {
				if r.Offset != got[i].Offset {
					t.Errorf("record %d: kgo was told offset %d, the log has %d", i, r.Offset, got[i].Offset)
				}
				sameRecord(t, r, got[i])
			}
		})
	}
}

// TestProduceAcks: acks=0, 1 and -1 all land every record once.
func TestProduceAcks(t *testing.T) {
	b := startBroker(t, nil)
	for _, acks := range []struct {
		name string
		acks kgo.Acks
	}{{"none", kgo.NoAck()}, {"leader", kgo.LeaderAck()}, {"all", kgo.AllISRAcks()}} {
		t.Run(acks.name, func(t *testing.T) {
			topic := "acks-" + acks.name
			b.createTopic(t, topic, 3)
			opts := []kgo.Opt{kgo.RequiredAcks(acks.acks), kgo.DefaultProduceTopic(topic)}
			if acks.name != "all" {
				opts = append(opts, kgo.DisableIdempotentWrite())
			}
			cl := b.client(t, opts...)
			if err := cl.ProduceSync(testContext(t), sample(topic, 300)...).FirstErr(); err != nil {
				t.Fatal(err)
			}
			tp, _ := b.s.Topic(topic)
			deadline := time.Now().Add(10 * time.Second)
			for {
				var total int64
				for i := range int32(3) {
					p, _ := tp.Partition(i)
					total += p.HighWatermark()
				}
				if total == 300 {
					return
				}
				if total > 300 || time.Now().After(deadline) {
					t.Fatalf("%d records in the log, want 300", total)
				}
				time.Sleep(10 * time.Millisecond) // acks=0: no answer to wait for
			}
		})
	}
}

// TestGoAPIProduceKgoConsume: records appended through the Go API are
// fetched by kgo as they were written.
func TestGoAPIProduceKgoConsume(t *testing.T) {
	b := startBroker(t, nil)
	b.createTopic(t, "events", 2)
	prod, err := b.s.NewProducer(stream.ProducerConfig{Compression: stream.CompressLZ4})
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	want := map[string]*stream.Record{}
	base := time.Now().Add(-time.Minute).Truncate(time.Millisecond)
	ctx := testContext(t)
	for i := range 500 {
		r := &stream.Record{
			Topic: "events", Key: fmt.Appendf(nil, "k%d", i), Value: fmt.Appendf(nil, "v%d", i),
			Headers:   []stream.Header{{Key: "i", Value: fmt.Appendf(nil, "%d", i)}},
			Timestamp: base.Add(time.Duration(i) * time.Millisecond),
		}
		if err := prod.Send(ctx, r); err != nil {
			t.Fatal(err)
		}
		want[string(r.Value)] = r
	}
	cl := b.client(t, kgo.ConsumeTopics("events"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	got := 0
	for got < len(want) {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("fetched %d of %d: %v", got, len(want), err)
		}
		fs.EachError(func(topic string, p int32, err error) { t.Fatalf("fetch %s-%d: %v", topic, p, err) })
		fs.EachRecord(func(r *kgo.Record) {
			w := want[string(r.Value)]
			if w == nil {
				t.Fatalf("unexpected record %q", r.Value)
			}
			if r.Partition != w.Partition || r.Offset != w.Offset || !bytes.Equal(r.Key, w.Key) || !r.Timestamp.Equal(w.Timestamp) ||
				len(r.Headers) != 1 || r.Headers[0].Key != "i" || !bytes.Equal(r.Headers[0].Value, w.Headers[0].Value) {
				t.Fatalf("kgo got %+v, want %+v", r, w)
			}
			got++
		})
	}
}

// TestFetchLongPoll: a fetch at the end waits for a record appended
// later and returns it, well before its max wait.
func TestFetchLongPoll(t *testing.T) {
	b := startBroker(t, nil)
	b.createTopic(t, "tail", 1)
	cl := b.client(t, kgo.ConsumeTopics("tail"), kgo.FetchMaxWait(20*time.Second))
	ctx := testContext(t)
	go func() {
		time.Sleep(300 * time.Millisecond)
		tp, _ := b.s.Topic("tail")
		p, _ := tp.Partition(0)
		p.Append(&stream.Record{Value: []byte("late")})
	}()
	start := time.Now()
	for {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatal(ctx.Err())
		}
		if recs := fs.Records(); len(recs) > 0 {
			if string(recs[0].Value) != "late" {
				t.Fatalf("got %q", recs[0].Value)
			}
			break
		}
	}
	if d := time.Since(start); d > 15*time.Second {
		t.Fatalf("the long poll returned after %v: it waited for its max wait, not the record", d)
	}
}

// TestKgoGroup: three kgo group members share a topic; every record is
// consumed once, and the group's commits are the Go API's Committed.
func TestKgoGroup(t *testing.T) {
	b := startBroker(t, nil)
	const topic, group, n = "jobs", "workers", 3000
	b.createTopic(t, topic, 6)
	ctx := testContext(t)
	prod := b.client(t, kgo.DefaultProduceTopic(topic))
	if err := prod.ProduceSync(ctx, sample(topic, n)...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	seen := map[string]int{}
	var members []*kgo.Client
	for range 3 {
		members = append(members, b.client(t,
			kgo.ConsumerGroup(group), kgo.ConsumeTopics(topic),
			kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
			kgo.DisableAutoCommit(), kgo.HeartbeatInterval(200*time.Millisecond),
		))
	}
	var wg sync.WaitGroup
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for _, cl := range members {
		wg.Go(func() {
			for cctx.Err() == nil {
				// A bounded poll, so a member with nothing left to read
				// still gets round to committing.
				pctx, pcancel := context.WithTimeout(cctx, 200*time.Millisecond)
				fs := cl.PollFetches(pctx)
				pcancel()
				fs.EachError(func(_ string, _ int32, err error) {
					if !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
						t.Errorf("poll: %v", err)
					}
				})
				mu.Lock()
				fs.EachRecord(func(r *kgo.Record) { seen[string(r.Value)]++ })
				total := len(seen)
				mu.Unlock()
				if err := cl.CommitUncommittedOffsets(cctx); err != nil && cctx.Err() == nil {
					// A commit racing a rebalance may be refused; the
					// next one carries it.
					t.Logf("commit: %v", err)
				}
				if total >= n && committedSum(cctx, b.s, group) == n {
					cancel()
				}
			}
		})
	}
	wg.Wait()
	if ctx.Err() != nil {
		t.Fatalf("consumed %d of %d distinct records before the timeout", len(seen), n)
	}
	for _, cl := range members {
		cl.Close() // leaves the group
	}
	// The commits are the engine's: the Go API sees them.
	cg, err := b.s.ConsumerGroup(group, stream.GroupConfig{})
	if err != nil {
		t.Fatal(err)
	}
	committed, err := cg.Committed(ctx)
	if err != nil {
		t.Fatal(err)
	}
	tp, _ := b.s.Topic(topic)
	var sum int64
	for i := range int32(6) {
		p, _ := tp.Partition(i)
		off, ok := committed[stream.TopicPartition{Topic: topic, Partition: i}]
		if off != p.HighWatermark() || !ok && p.HighWatermark() != 0 {
			t.Errorf("partition %d: committed %d (%v), want the high watermark %d", i, off, ok, p.HighWatermark())
		}
		sum += off
	}
	if sum != n {
		t.Errorf("committed offsets sum to %d, want %d", sum, n)
	}
	// And kadm describes the group through the wire protocol.
	adm := kadm.NewClient(b.client(t))
	lag, err := adm.Lag(ctx, group)
	if err != nil {
		t.Fatal(err)
	}
	if err := lag.Error(); err != nil {
		t.Fatal(err)
	}
	if total := lag[group].Lag.Total(); total != 0 {
		t.Errorf("kadm lag %d, want 0", total)
	}
	listed, err := adm.ListGroups(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(listed.Groups(), group) {
		t.Errorf("kadm ListGroups: %v", listed.Groups())
	}
	described, err := adm.DescribeGroups(ctx, group)
	if err != nil {
		t.Fatal(err)
	}
	if d := described[group]; d.Err != nil || d.State != "Empty" || len(d.Members) != 0 {
		t.Errorf("kadm DescribeGroups after every member left: %+v", d)
	}
}

// committedSum is the sum of group's committed offsets, read through the
// Go API.
func committedSum(ctx context.Context, s *stream.Stream, group string) int64 {
	if !slices.Contains(s.Groups(), group) {
		return 0
	}
	cg, err := s.ConsumerGroup(group, stream.GroupConfig{})
	if err != nil {
		return 0
	}
	committed, err := cg.Committed(ctx)
	if err != nil {
		return 0
	}
	var sum int64
	for _, off := range committed {
		sum += off
	}
	return sum
}

// TestGoAPICommitsSeenByKgo: offsets committed by the Go API's group are
// where a kgo member of the same group starts.
func TestGoAPICommitsSeenByKgo(t *testing.T) {
	b := startBroker(t, nil)
	b.createTopic(t, "shared", 1)
	tp, _ := b.s.Topic("shared")
	p, _ := tp.Partition(0)
	for i := range 10 {
		if _, err := p.Append(&stream.Record{Value: fmt.Appendf(nil, "%d", i)}); err != nil {
			t.Fatal(err)
		}
	}
	ctx := testContext(t)
	cg, err := b.s.ConsumerGroup("g", stream.GroupConfig{Topics: []string{"shared"}, StartAt: stream.StartEarliest})
	if err != nil {
		t.Fatal(err)
	}
	if err := cg.ResetOffsets(ctx, map[stream.TopicPartition]int64{{Topic: "shared", Partition: 0}: 7}); err != nil {
		t.Fatal(err)
	}
	cl := b.client(t, kgo.ConsumerGroup("g"), kgo.ConsumeTopics("shared"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	for {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatal(ctx.Err())
		}
		if recs := fs.Records(); len(recs) > 0 {
			if recs[0].Offset != 7 {
				t.Fatalf("kgo started at %d, want the Go API's committed 7", recs[0].Offset)
			}
			return
		}
	}
}

// TestKadm: create, list, describe configs, list offsets (start, end, by
// time), partition growth (and a refused shrink), and delete.
func TestKadm(t *testing.T) {
	b := startBroker(t, nil)
	ctx := testContext(t)
	adm := kadm.NewClient(b.client(t))
	created, err := adm.CreateTopics(ctx, 3, 1, map[string]*string{"retention.ms": kadm.StringPtr("3600000")}, "a", "b")
	if err != nil {
		t.Fatal(err)
	}
	if err := created.Error(); err != nil {
		t.Fatal(err)
	}
	again, err := adm.CreateTopic(ctx, 1, 1, nil, "a")
	if !errors.Is(err, kerr.TopicAlreadyExists) && !errors.Is(again.Err, kerr.TopicAlreadyExists) {
		t.Fatalf("creating an existing topic: %v / %v, want TOPIC_ALREADY_EXISTS", err, again.Err)
	}
	ta, _ := b.s.Topic("a")
	if ta.NumPartitions() != 3 || ta.Config().Retention != time.Hour {
		t.Fatalf("topic a: %d partitions, retention %v", ta.NumPartitions(), ta.Config().Retention)
	}
	list, err := adm.ListTopics(ctx)
	if err != nil {
		t.Fatal(err)
	}
	names := list.Names()
	sort.Strings(names)
	if !slices.Equal(names, []string{"a", "b"}) {
		t.Fatalf("topics %v", names)
	}
	rc, err := adm.DescribeTopicConfigs(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := rc.On("a", nil)
	if err != nil || cfg.Err != nil {
		t.Fatalf("describe configs: %v %v", err, cfg.Err)
	}
	found := false
	for _, c := range cfg.Configs {
		if c.Key == "retention.ms" && c.MaybeValue() == "3600000" {
			found = true
		}
	}
	if !found {
		t.Errorf("retention.ms not described: %+v", cfg.Configs)
	}

	p, _ := ta.Partition(0)
	base := time.Now().Add(-time.Hour).Truncate(time.Millisecond)
	for i := range 10 {
		if _, err := p.Append(&stream.Record{Value: []byte("x"), Timestamp: base.Add(time.Duration(i) * time.Second)}); err != nil {
			t.Fatal(err)
		}
	}
	start, err := adm.ListStartOffsets(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	end, err := adm.ListEndOffsets(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	at, err := adm.ListOffsetsAfterMilli(ctx, base.Add(4500*time.Millisecond).UnixMilli(), "a")
	if err != nil {
		t.Fatal(err)
	}
	if o, _ := start.Lookup("a", 0); o.Offset != 0 || o.Err != nil {
		t.Errorf("start offset %+v", o)
	}
	if o, _ := end.Lookup("a", 0); o.Offset != 10 || o.Err != nil {
		t.Errorf("end offset %+v", o)
	}
	if o, _ := at.Lookup("a", 0); o.Offset != 5 || o.Timestamp != base.Add(5*time.Second).UnixMilli() || o.Err != nil {
		t.Errorf("offset after %v: %+v, want 5", base.Add(4500*time.Millisecond), o)
	}

	grow, err := adm.CreatePartitions(ctx, 2, "a")
	if err != nil {
		t.Fatal(err)
	}
	if r := grow["a"]; r.Err != nil {
		t.Errorf("CreatePartitions a +2: %v", r.Err)
	}
	if n := ta.NumPartitions(); n != 5 {
		t.Errorf("topic a after CreatePartitions +2: %d partitions, want 5", n)
	}
	shrink, err := adm.UpdatePartitions(ctx, 1, "a")
	if err != nil {
		t.Fatal(err)
	}
	if r := shrink["a"]; !errors.Is(r.Err, kerr.InvalidPartitions) {
		t.Errorf("UpdatePartitions a to 1: %v, want INVALID_PARTITIONS", r.Err)
	}

	del, err := adm.DeleteTopics(ctx, "b", "missing")
	if err != nil {
		t.Fatal(err)
	}
	if r := del["b"]; r.Err != nil {
		t.Errorf("delete b: %v", r.Err)
	}
	if r := del["missing"]; !errors.Is(r.Err, kerr.UnknownTopicOrPartition) {
		t.Errorf("delete missing: %v, want UNKNOWN_TOPIC_OR_PARTITION", r.Err)
	}
	if got := b.s.Topics(); !slices.Equal(got, []string{"a"}) {
		t.Errorf("topics after delete: %v", got)
	}
}

// TestAutoCreate: with Options.AutoCreateTopics, a kgo producer's
// Metadata creates the topic; without it, the produce fails with
// UNKNOWN_TOPIC_OR_PARTITION.
func TestAutoCreate(t *testing.T) {
	b := startBroker(t, &stream.Options{AutoCreateTopics: true, DefaultTopic: stream.TopicConfig{Partitions: 2}})
	cl := b.client(t, kgo.AllowAutoTopicCreation())
	if err := cl.ProduceSync(testContext(t), &kgo.Record{Topic: "auto", Value: []byte("v")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	if tp, err := b.s.Topic("auto"); err != nil || tp.NumPartitions() != 2 {
		t.Fatalf("auto-created topic: %v", err)
	}

	off := startBroker(t, nil)
	cl = off.client(t, kgo.RecordRetries(2), kgo.RecordDeliveryTimeout(2*time.Second))
	err := cl.ProduceSync(testContext(t), &kgo.Record{Topic: "nope", Value: []byte("v")}).FirstErr()
	if !errors.Is(err, kerr.UnknownTopicOrPartition) && !errors.Is(err, kgo.ErrRecordTimeout) {
		t.Fatalf("produce to a missing topic: %v", err)
	}
}
