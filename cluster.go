package stream

import "time"

// ClusterConfig makes a Stream one node of a cluster (Options.Cluster).
// Every node runs the same library; nothing else runs.
type ClusterConfig struct {
	// NodeID is this node's ID, > 0. Required.
	NodeID NodeID
	// Peers lists every voting node, this one included: the same list on
	// every node at first start. Required.
	Peers []NodeID
	// Transport carries requests between nodes. Required.
	Transport Transport
	// SessionTimeout: a node silent this long is dead and its partitions
	// fail over. Default 9s.
	SessionTimeout time.Duration
	// ReplicaLagTime: a follower this far behind its leader leaves the
	// ISR (Kafka's replica.lag.time.max.ms). Default 10s.
	ReplicaLagTime time.Duration
	// RequestTimeout bounds cluster operations (CreateTopic, forwarded
	// appends). Default 30s.
	RequestTimeout time.Duration
	// UncleanLeaderElection lets a replica outside the ISR lead when no
	// in-sync one is alive (Kafka's unclean.leader.election.enable),
	// trading acknowledged records for availability. Default false.
	UncleanLeaderElection bool
}

// PartitionState is a partition's replication state as the cluster's
// metadata holds it.
type PartitionState struct {
	Leader        NodeID // 0 while none
	LeaderEpoch   int32
	Replicas, ISR []NodeID
	HighWatermark int64
}
