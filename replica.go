package stream

// Replication: the seams a single node already has, where replication
// between peers plugs in.
//
// Today a Stream is one node: CreateTopic refuses a ReplicationFactor
// above 1 with ErrNotEnoughReplicas, and a partition's high watermark is
// the end of its durable log. The design this file grows into is in
// DESIGN.md, Kafka's for data and etcd's raft for metadata:
//
//   - a Transport: a small, byte-oriented request/response interface that
//     users implement over gRPC, HTTP or NATS, with an in-memory transport
//     that injects faults (drop, delay, partition) and a TCP one shipped
//     here;
//   - followers fetch batches from the leader exactly as they lie in its
//     segments (Kafka's RecordBatch v2), append them unchanged, and report
//     their log end; the leader keeps the in-sync replica set and moves
//     the high watermark to the smallest log end among them;
//   - every batch carries the partitionLeaderEpoch field (outside the CRC,
//     so the leader stamps it without recomputing anything), and a
//     follower that rejoins truncates to the end of the last epoch it
//     shares with the leader (KIP-101);
//   - a controller, a pure state machine driven by go.etcd.io/raft/v3 over
//     the same Transport, owns nodes, leaders, ISRs, leader epochs, topic
//     configs and group coordinators.
//
// What already waits for it: acknowledgements go through waitAcked, which
// is where AcksAll will wait for the in-sync replicas and honour
// MinInSyncReplicas; readers only ever see records below the high
// watermark (Partition.hw), which replication lowers to what every
// in-sync replica holds.

// waitAcked returns once the records below end may be acknowledged: they
// are below the high watermark. On one node under SyncAlways that is when
// they are fsynced; the other policies make them visible as they are
// written. Replication adds the in-sync replicas here.
func (p *Partition) waitAcked(end int64) error {
	if p.cfg.sync == SyncAlways {
		return p.syncTo(end)
	}
	return nil
}
