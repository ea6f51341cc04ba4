package stream

import "context"

// NodeID names a node of a cluster, like Kafka's broker.id. Valid IDs are
// greater than zero; zero means "no node" (no leader, no controller).
type NodeID int32

// Transport carries requests between the nodes of a cluster. Implement it
// over any network (gRPC, HTTP, NATS, a service mesh): the engine puts
// everything it needs, the sender included, inside req, so an
// implementation only moves bytes. The package ships two: NewTCPTransport
// and NewMemNetwork's, for tests and simulation.
//
// Extra abilities are optional interfaces a Transport may implement, found
// by type assertion, never by growing this one.
type Transport interface {
	// Call sends req to node to and returns its reply. It honours ctx; an
	// error means the request may or may not have been handled.
	Call(ctx context.Context, to NodeID, req []byte) ([]byte, error)
	// Serve hands every request addressed to this node to h, concurrently,
	// until Close; it returns at once.
	Serve(h func(ctx context.Context, req []byte) []byte) error
	// Close stops serving and releases the transport's resources.
	Close() error
}
