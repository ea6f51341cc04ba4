package stream_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/instream/stream"
)

// Two nodes on an in-memory network, then a partition between them.
func ExampleNewMemNetwork() {
	net := stream.NewMemNetwork(42) // print the seed in a simulation, to replay it
	a, b := net.Transport(1), net.Transport(2)
	defer a.Close()
	defer b.Close()
	b.Serve(func(ctx context.Context, req []byte) []byte {
		return append([]byte("pong: "), req...)
	})

	reply, err := a.Call(context.Background(), 2, []byte("ping"))
	fmt.Println(string(reply), err)

	net.Cut(1, 2)
	_, err = a.Call(context.Background(), 2, []byte("ping"))
	fmt.Println(errors.Is(err, stream.ErrUnreachable))

	net.Heal()
	reply, err = a.Call(context.Background(), 2, []byte("again"))
	fmt.Println(string(reply), err)
	// Output:
	// pong: ping <nil>
	// true
	// pong: again <nil>
}

// Two nodes over TCP on loopback. In a real cluster each process creates
// its own transport with every node's address in Peers (and a TLS
// configuration between machines).
func ExampleNewTCPTransport() {
	srv, err := stream.NewTCPTransport(stream.TCPConfig{}) // a free loopback port
	if err != nil {
		panic(err)
	}
	defer srv.Close()
	srv.Serve(func(ctx context.Context, req []byte) []byte {
		return append([]byte("pong: "), req...)
	})

	cli, err := stream.NewTCPTransport(stream.TCPConfig{
		Peers: map[stream.NodeID]string{2: srv.Addr().String()},
	})
	if err != nil {
		panic(err)
	}
	defer cli.Close()
	reply, err := cli.Call(context.Background(), 2, []byte("ping"))
	fmt.Println(string(reply), err)
	// Output: pong: ping <nil>
}
