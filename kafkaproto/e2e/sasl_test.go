package e2e

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/instream/stream"
	"github.com/instream/stream/kafkaproto"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/plain"
)

// TestSASLPlain: with Config.Authenticate, kgo with the right password
// produces; with a wrong one it gets SASL_AUTHENTICATION_FAILED; without
// SASL it is disconnected and produces nothing.
func TestSASLPlain(t *testing.T) {
	s, err := stream.Open(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.CreateTopic("private", stream.TopicConfig{}); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	cfg := kafkaproto.Config{
		Authenticate: func(user, password string) bool { return user == "alice" && password == "s3cret" },
		Logger:       slog.New(slog.DiscardHandler),
	}
	go func() { done <- kafkaproto.Serve(ctx, ln, s, cfg) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	}()
	produce := func(opts ...kgo.Opt) error {
		cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(ln.Addr().String()),
			kgo.RecordDeliveryTimeout(3 * time.Second), kgo.RequestRetries(1)}, opts...)...)
		if err != nil {
			return err
		}
		defer cl.Close()
		pctx, pcancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer pcancel()
		return cl.ProduceSync(pctx, &kgo.Record{Topic: "private", Value: []byte("v")}).FirstErr()
	}
	if err := produce(kgo.SASL(plain.Auth{User: "alice", Pass: "s3cret"}.AsMechanism())); err != nil {
		t.Fatalf("with the right password: %v", err)
	}
	if err := produce(kgo.SASL(plain.Auth{User: "alice", Pass: "wrong"}.AsMechanism())); !errors.Is(err, kerr.SaslAuthenticationFailed) {
		t.Fatalf("with a wrong password: %v, want SASL_AUTHENTICATION_FAILED", err)
	}
	if err := produce(); err == nil {
		t.Fatal("without SASL: the produce succeeded")
	}
	tp, _ := s.Topic("private")
	p, _ := tp.Partition(0)
	if hw := p.HighWatermark(); hw != 1 {
		t.Fatalf("%d records written, want 1 (the authenticated one)", hw)
	}
}
