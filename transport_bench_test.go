package stream_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/instream/stream"
)

// BenchmarkTransportCall measures request/reply round trips over the
// in-memory network and TCP loopback: one caller at a time (latency) and
// many at once (throughput over the multiplexed connections). The reply
// echoes the request; SetBytes counts the request's bytes.
func BenchmarkTransportCall(b *testing.B) {
	back := func(_ context.Context, req []byte) []byte { return req }
	transports := []struct {
		name string
		make func(b *testing.B) stream.Transport
	}{
		{"mem", func(b *testing.B) stream.Transport {
			net := stream.NewMemNetwork(1)
			srv := net.Transport(2)
			srv.Serve(back)
			b.Cleanup(func() { srv.Close() })
			cli := net.Transport(1)
			b.Cleanup(func() { cli.Close() })
			return cli
		}},
		{"tcp", func(b *testing.B) stream.Transport {
			srv, err := stream.NewTCPTransport(stream.TCPConfig{})
			if err != nil {
				b.Fatal(err)
			}
			srv.Serve(back)
			b.Cleanup(func() { srv.Close() })
			cli, err := stream.NewTCPTransport(stream.TCPConfig{Peers: map[stream.NodeID]string{2: srv.Addr().String()}})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { cli.Close() })
			return cli
		}},
	}
	for _, tr := range transports {
		for _, size := range []int{100, 64 << 10} {
			for _, parallel := range []bool{false, true} {
				mode := "serial"
				if parallel {
					mode = "parallel"
				}
				b.Run(fmt.Sprintf("%s/%dB/%s", tr.name, size, mode), func(b *testing.B) {
					t := tr.make(b)
					req := make([]byte, size)
					call := func() {
						if _, err := t.Call(context.Background(), 2, req); err != nil {
							b.Fatal(err)
						}
					}
					call() // connect
					b.SetBytes(int64(size))
					b.ReportAllocs()
					start := time.Now()
					b.ResetTimer()
					if parallel {
						b.SetParallelism(8)
						b.RunParallel(func(pb *testing.PB) {
							for pb.Next() {
								call()
							}
						})
					} else {
						for b.Loop() {
							call()
						}
					}
					b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "calls/s")
				})
			}
		}
	}
}
