package benchmarks_test

// NATS JetStream, embedded: a nats-server in this process with JetStream
// file storage in a temporary directory and no network listener; the
// nats.go client (its jetstream package) talks to it over an in-process
// connection (nats.InProcessServer). One stream "bench" on subject
// "bench". Without sync the server's defaults hold: the file store
// leaves writes to the OS and fsyncs every 2 minutes (sync_interval);
// with sync the server runs with SyncAlways (sync_interval: always):
// every stored message is fsynced before its PubAck.

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

type natsEngine struct {
	srv *server.Server
	nc  *nats.Conn
	js  jetstream.JetStream

	mu     sync.Mutex
	ackErr error // the first failed async publish
}

func (e *natsEngine) close() {
	e.nc.Close()
	e.srv.Shutdown()
	e.srv.WaitForShutdown()
}

func (e *natsEngine) asyncErr() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.ackErr
}

func startNATS(dir string, fsync bool) (*natsEngine, error) {
	srv, err := server.NewServer(&server.Options{
		JetStream:  true,
		StoreDir:   dir,
		SyncAlways: fsync,
		DontListen: true,
		NoLog:      true,
		NoSigs:     true,
	})
	if err != nil {
		return nil, err
	}
	srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		srv.Shutdown()
		return nil, errors.New("nats-server did not start")
	}
	e := &natsEngine{srv: srv}
	e.nc, err = nats.Connect(nats.DefaultURL, nats.InProcessServer(srv))
	if err != nil {
		srv.Shutdown()
		return nil, err
	}
	e.js, err = jetstream.New(e.nc,
		jetstream.WithPublishAsyncMaxPending(4096),
		jetstream.WithPublishAsyncTimeout(time.Minute),
		jetstream.WithPublishAsyncErrHandler(func(_ jetstream.JetStream, _ *nats.Msg, err error) {
			e.mu.Lock()
			defer e.mu.Unlock()
			if e.ackErr == nil {
				e.ackErr = err
			}
		}))
	if err != nil {
		e.close()
		return nil, err
	}
	_, err = e.js.CreateStream(context.Background(), jetstream.StreamConfig{
		Name:     "bench",
		Subjects: []string{"bench"},
		Storage:  jetstream.FileStorage,
	})
	if err != nil {
		e.close()
		return nil, err
	}
	return e, nil
}

func benchNATS(b *testing.B, fsync bool) *natsEngine {
	e, err := startNATS(b.TempDir(), fsync)
	check(b, err)
	b.Cleanup(e.close)
	return e
}

// stallWait lets PublishAsync wait for room among the pending acks as
// long as an fsynced store needs, instead of failing after 200ms.
var stallWait = []jetstream.PublishOpt{jetstream.WithStallWait(time.Minute)}

// publishAsync publishes n messages without waiting, then waits for all
// their acks.
func (e *natsEngine) publishAsync(n int) error {
	for range n {
		if _, err := e.js.PublishAsync("bench", value, stallWait...); err != nil {
			return err
		}
	}
	select {
	case <-e.js.PublishAsyncComplete():
	case <-time.After(5 * time.Minute):
		return errors.New("PublishAsync: acks still pending after 5 minutes")
	}
	return e.asyncErr()
}

func natsPublish(b *testing.B, fsync bool) {
	e := benchNATS(b, fsync)
	ctx := context.Background()
	m := start(b)
	for range b.N {
		if _, err := e.js.Publish(ctx, "bench", value); err != nil {
			b.Fatal(err)
		}
	}
	done(b, m)
}

func natsPublishAsync(b *testing.B, fsync bool) {
	e := benchNATS(b, fsync)
	m := start(b)
	check(b, e.publishAsync(b.N))
	done(b, m)
}

func natsPublishConcurrent(b *testing.B) {
	e := benchNATS(b, true)
	ctx := context.Background()
	m := start(b)
	inParallel(b, func(n int) error {
		for range n {
			if _, err := e.js.Publish(ctx, "bench", value); err != nil {
				return err
			}
		}
		return nil
	})
	done(b, m)
}

// natsConsume reads the stream from the start with an ordered consumer:
// an ephemeral pull consumer without acks, flow controlled, the
// JetStream way to read a stream in order.
func natsConsume(b *testing.B) {
	e := fixture(b, "nats", func() (*natsEngine, func(), error) {
		dir, rm, err := tempDir()
		if err != nil {
			return nil, nil, err
		}
		e, err := startNATS(dir, false)
		if err != nil {
			rm()
			return nil, nil, err
		}
		closer := func() { e.close(); rm() }
		if err := e.publishAsync(readRecords); err != nil {
			closer()
			return nil, nil, err
		}
		return e, closer, nil
	})
	ctx := context.Background()
	m := start(b)
	for read := 0; read < b.N; {
		cons, err := e.js.OrderedConsumer(ctx, "bench", jetstream.OrderedConsumerConfig{})
		check(b, err)
		it, err := cons.Messages(jetstream.PullMaxMessages(1000))
		check(b, err)
		for pass := 0; pass < readRecords && read < b.N; pass++ {
			msg, err := it.Next()
			if err != nil {
				b.Fatal(err)
			}
			if len(msg.Data()) != valueSize {
				b.Fatalf("message %d: %d bytes", pass, len(msg.Data()))
			}
			read++
		}
		it.Stop()
	}
	done(b, m)
}
