// Package kafkaproto serves a stream.Stream to Kafka clients over
// Kafka's wire protocol: kcat, franz-go, KafkaJS, librdkafka-based clients,
// Kafka's own tools and UIs point at it as at a one-broker cluster, with
// no broker to run.
//
//	ln, err := net.Listen("tcp", "127.0.0.1:9092")
//	...
//	err = kafkaproto.Serve(ctx, ln, s, kafkaproto.Config{})
//
// The command line does the same with "stream serve -kafka
// 127.0.0.1:9092 -dir DIR". Requests are decoded and responses encoded
// by franz-go's kmsg.
//
// # What is served
//
// ApiVersions (v0–v3) advertises exactly the versions below; a client
// that asks for ApiVersions at a newer version is answered with
// UNSUPPORTED_VERSION and the list, as Kafka does (KIP-511), and
// retries at one listed. Each API is served up to its first "flexible"
// version (KIP-482, tagged fields), which franz-go and Kafka's Java
// clients use, and down to the versions older clients speak (KafkaJS
// and librdkafka negotiate non-flexible ones). Tagged fields a client
// sends are read past.
//
//   - Produce v3–v9: each partition's RecordBatch v2 is appended as the
//     client sent it (Partition.AppendRaw), after its CRC and every
//     record's framing are checked; the partition assigns the offsets.
//     Compression (gzip, snappy, lz4, zstd) is kept as sent. acks=0 gets
//     no response, and a failure closes the connection so the producer
//     notices, as in Kafka; acks=1 and acks=-1 are both answered once the Stream
//     acknowledges the append under its sync policy (under SyncAlways,
//     once fsynced: stronger than Kafka's acks=1). Idempotent producers
//     work: InitProducerId hands out producer IDs from the Stream, and
//     the partition deduplicates retried batches and refuses gaps
//     (OUT_OF_ORDER_SEQUENCE_NUMBER) as for the Go API's producers.
//     Transactions are not supported: a transactional produce or
//     InitProducerId gets INVALID_REQUEST.
//   - Fetch v4–v12: the stored batches are served byte for byte as they
//     lie in the segments (Partition.ReadRaw), never re-encoded; the
//     first batch may start before the offset asked for, as in Kafka. A
//     fetch long-polls: while fewer than MinBytes are ready it waits up
//     to MaxWaitMillis (at most 30s) for any of its partitions to grow.
//     Fetch sessions (KIP-227) are not kept: every answer is a full one
//     with session ID 0, which clients take as sessions off.
//   - ListOffsets v1–v6: earliest (-2), latest (-1, the high
//     watermark), and the first offset at or after a timestamp.
//   - Metadata v1–v9: on a single node, one broker, this node, leading
//     every partition; on a cluster node, see Clusters below. A missing
//     topic is created when the Stream was opened with
//     Options.AutoCreateTopics (with Options.DefaultTopic) and the
//     client allows it, as Kafka's auto.create.topics.enable.
//   - CreateTopics v0–v5 (configs retention.ms, retention.bytes,
//     segment.bytes, min.insync.replicas and cleanup.policy=delete; a
//     replication factor above the number of nodes gets
//     INVALID_REPLICATION_FACTOR),
//     DeleteTopics v0–v4, DescribeConfigs v0–v4 (a topic's settings;
//     read-only), CreatePartitions v0–v2 (grow only, no manual
//     replica assignment).
//   - Consumer groups: FindCoordinator v0–v3 (this node; on a cluster,
//     see below), JoinGroup
//     v0–v6, SyncGroup v0–v4, Heartbeat v0–v4, LeaveGroup v0–v4,
//     OffsetCommit v2–v8, OffsetFetch v1–v7, DescribeGroups v0–v5,
//     ListGroups v0–v3.
//
// Any other API (transactions, ACLs, quotas, KRaft and inter-broker
// APIs, DescribeCluster, DeleteRecords, OffsetDelete, ...) is not
// advertised; a request for one, or for a version outside the ranges
// above, is logged and the connection closed, as Kafka closes a
// connection on a request it cannot parse.
//
// # Consumer groups
//
// Kafka's group protocol assigns partitions on the client side (the
// leader member runs the assignor) while the Go API's ConsumerGroup
// assigns them in the engine, so the two cannot share one generation.
// kafkaproto runs Kafka's classic group coordinator itself — join with
// MEMBER_ID_REQUIRED (KIP-394), a leader and a protocol every member
// supports, SyncGroup, heartbeats, session and rebalance timeouts — and
// keeps its membership in memory: after a restart, members rejoin.
//
// What is shared with the Go API is the committed offsets: OffsetCommit
// stores them in the Stream's group of the same name
// (ConsumerGroup.StoreOffsets), and OffsetFetch reads them from it, so a
// group can move between Kafka clients and the Go API and resume where
// the other committed, and ConsumerGroup.Committed and Lag, "stream
// groups" and kadm all see the same offsets. Members of one group must
// not use both at once: a JoinGroup while Go API members are in the
// group, and a commit then, get INCONSISTENT_GROUP_PROTOCOL; the Go API
// does not see Kafka members, and DescribeGroups shows a Go API group as
// Empty or Stable without its members. Static membership (group
// instance IDs) is accepted but not treated specially. Group IDs follow
// the Stream's naming rule (1–249 of [a-zA-Z0-9._-]); another gets
// INVALID_GROUP_ID.
//
// # Clusters
//
// On a clustered Stream (Options.Cluster) each node's listener is one
// broker, its ID the node's, and Kafka clients see a multi-broker
// cluster: Metadata lists every live node whose advertised address
// Config.Brokers gives (this node's is AdvertisedAddr), the metadata raft
// leader as the controller, and each partition's leader, leader epoch,
// replicas, ISR and offline replicas as Cluster.PartitionState has them
// (LEADER_NOT_AVAILABLE while none leads). Produce, Fetch and ListOffsets
// for a partition this node does not lead get NOT_LEADER_OR_FOLLOWER, so
// clients refresh their metadata and follow failover; a produce is
// answered once the high watermark passes it, whatever its acks (the
// cluster's AcksAll). CreateTopics takes a replication factor up to the
// number of nodes. Groups are coordinated by one node, the live one
// with the smallest ID, which FindCoordinator names and which alone
// answers group requests (the others answer NOT_COORDINATOR), keeping
// membership in memory and committed offsets in its Stream's group of
// that name: when that node changes, members rejoin at the next one,
// and find there the offsets its Stream has for the group.
//
// # Connections
//
// Each connection's requests are answered one at a time, in order, as
// Kafka requires; up to Config.MaxInFlight more (and no more than
// Config.MaxRequestBytes of them) are read ahead. A long
// poll or a JoinGroup waits on its own connection only: every
// connection has its goroutines, and one client never stalls another.
// A request frame larger than Config.MaxRequestBytes, one that does not
// decode, an unknown API key or an unsupported version is logged and
// ends the connection; a client that sends nothing for
// Config.IdleTimeout, takes longer than Config.ReadTimeout to send a
// request it started, or does not read a response within
// Config.WriteTimeout is disconnected. Connections past
// Config.MaxConnections are closed at once. A handler that panics (a
// bug) is logged with its stack and ends only its connection.
//
// # Caveats
//
// By default there is no authentication: bind to loopback (the
// command's default) or a trusted network. For TLS (Kafka's SSL
// listener), pass Serve a tls.NewListener; "stream serve" does with
// -tls-cert and -tls-key. Config.Authenticate turns on SASL/PLAIN
// (SaslHandshake v0–v1, SaslAuthenticate v0–v2): a connection must
// authenticate before any request but ApiVersions, its requests are
// limited to 512 KiB until then, and a failed authentication is answered
// SASL_AUTHENTICATION_FAILED and closes the connection; PLAIN sends the
// password as it is, so pair it with TLS. Config.SCRAMPassword turns on
// SASL/SCRAM-SHA-256 and SCRAM-SHA-512 the same way (RFC 5802, KIP-84;
// 4096 PBKDF2 iterations, no channel binding), which never sends the
// password. There is no authorization: an
// authenticated user may do everything. Topic IDs
// (Metadata v10+, Fetch v13+) are not served, so clients use topic
// names. ListOffsets' max-timestamp query (v7), KIP-848's consumer
// group protocol and share groups are not served.
package kafkaproto
