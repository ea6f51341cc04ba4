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
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

// serveSASL serves a fresh Stream with topic "private" under cfg and
// returns it and a function producing one record with kgo and opts.
func serveSASL(t *testing.T, cfg kafkaproto.Config) (*stream.Stream, func(...kgo.Opt) error) {
	t.Helper()
	s, err := stream.Open(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateTopic("private", stream.TopicConfig{}); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	cfg.Logger = slog.New(slog.DiscardHandler)
	go func() { done <- kafkaproto.Serve(ctx, ln, s, cfg) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
		s.Close()
	})
	return s, func(opts ...kgo.Opt) error {
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
}

func written(t *testing.T, s *stream.Stream) int64 {
	t.Helper()
	tp, _ := s.Topic("private")
	p, _ := tp.Partition(0)
	return p.HighWatermark()
}

// TestSASLPlain: with Config.Authenticate, kgo with the right password
// produces; with a wrong one it gets SASL_AUTHENTICATION_FAILED; without
// SASL it is disconnected and produces nothing.
func TestSASLPlain(t *testing.T) {
	s, produce := serveSASL(t, kafkaproto.Config{
		Authenticate: func(user, password string) bool { return user == "alice" && password == "s3cret" },
	})
	if err := produce(kgo.SASL(plain.Auth{User: "alice", Pass: "s3cret"}.AsMechanism())); err != nil {
		t.Fatalf("with the right password: %v", err)
	}
	if err := produce(kgo.SASL(plain.Auth{User: "alice", Pass: "wrong"}.AsMechanism())); !errors.Is(err, kerr.SaslAuthenticationFailed) {
		t.Fatalf("with a wrong password: %v, want SASL_AUTHENTICATION_FAILED", err)
	}
	if err := produce(); err == nil {
		t.Fatal("without SASL: the produce succeeded")
	}
	if n := written(t, s); n != 1 {
		t.Fatalf("%d records written, want 1 (the authenticated one)", n)
	}
}

// TestSASLSCRAM: with Config.SCRAMPassword, kgo's SCRAM-SHA-256 and
// SCRAM-SHA-512 with the right password produce (kgo checks the
// server's signature, so the server proved it knows the password too);
// a wrong password, an unknown user and PLAIN (not turned on) are
// refused and write nothing.
func TestSASLSCRAM(t *testing.T) {
	s, produce := serveSASL(t, kafkaproto.Config{
		SCRAMPassword: func(user string) (string, bool) { return "s3cret=,x", user == "bob,=" },
	})
	right := scram.Auth{User: "bob,=", Pass: "s3cret=,x"}
	wrong := scram.Auth{User: "bob,=", Pass: "s3cret"}
	unknown := scram.Auth{User: "carol", Pass: "s3cret=,x"}
	if err := produce(kgo.SASL(right.AsSha256Mechanism())); err != nil {
		t.Fatalf("SCRAM-SHA-256 with the right password: %v", err)
	}
	if err := produce(kgo.SASL(right.AsSha512Mechanism())); err != nil {
		t.Fatalf("SCRAM-SHA-512 with the right password: %v", err)
	}
	for name, opt := range map[string]kgo.Opt{
		"a wrong password": kgo.SASL(wrong.AsSha256Mechanism()),
		"an unknown user":  kgo.SASL(unknown.AsSha512Mechanism()),
	} {
		if err := produce(opt); !errors.Is(err, kerr.SaslAuthenticationFailed) {
			t.Errorf("with %s: %v, want SASL_AUTHENTICATION_FAILED", name, err)
		}
	}
	if err := produce(kgo.SASL(plain.Auth{User: "bob,=", Pass: "s3cret=,x"}.AsMechanism())); err == nil {
		t.Error("PLAIN, not turned on: the produce succeeded")
	}
	if n := written(t, s); n != 2 {
		t.Fatalf("%d records written, want 2 (the authenticated ones)", n)
	}
}
