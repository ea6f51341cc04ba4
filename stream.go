// Package stream is an embeddable, in-process streaming engine modelled on
// Apache Kafka: topics split into partitions, each partition an ordered,
// durable, segmented log on local disk in Kafka's own RecordBatch v2
// format. A Go service imports it the way it imports bbolt: no broker to
// run, one directory on disk.
//
// # Basics
//
// Open a directory, create a topic, append and read:
//
//	s, err := stream.Open("data", nil) // nil: defaults
//	if err != nil { ... }
//	defer s.Close()
//	t, err := s.CreateTopic("events", stream.TopicConfig{Partitions: 4})
//	p, _ := t.Partition(0)
//	off, err := p.Append(&stream.Record{Key: []byte("k"), Value: []byte("v")})
//	recs, err := p.Read(off, 1<<20)
//
// A Partition is the embedded-log fast path: Append and AppendBatch assign
// consecutive offsets; Read, Scan (a Go iterator that follows the tail)
// and Wait read them back (Read returns what its maxBytes asks for and
// no more: Read(off, 1) decodes the one record at off, not its batch); ForEach replays a range without allocating per
// record (the Record it lends is reused); OffsetForTime finds the first
// record at or after a time, for replay. Each partition is a directory
// DIR/topics/<topic>-<partition> of segments: a .log of record batches
// byte for byte as Kafka writes them, a sparse .index and a .timeindex;
// its recovery-point file says which segments Open need not validate.
// DIR/meta.db (bbolt) holds the topics' configurations, the producer ID
// sequence and the consumer groups' committed offsets; DIR/LOCK the
// directory lock.
//
// # Durability
//
// Options.Sync says when an append is acknowledged, and so what survives
// a crash of the process (kill -9: the page cache survives it) and a
// power loss (the page cache is lost). Each promise names the test that
// checks it. The kill -9 tests re-execute the test binary and SIGKILL it;
// the power-loss tests run the engine on an in-memory file system that,
// after a random number of operations, forgets every byte not fsynced
// and every directory entry whose directory was not fsynced.
//
//   - SyncAlways (the default): after fsync. Concurrent appenders to a
//     partition share one fsync (group commit), so many small appends
//     from many goroutines cost few fsyncs. An acknowledged append
//     survives kill -9 (TestCrashSIGKILL, TestCrashProducer) and power
//     loss (TestPowerCut/always). The high watermark is the fsynced end:
//     no reader sees a record that a power loss can erase (TestPowerCut/
//     always compares the high watermark before and after the cut).
//   - SyncPeriodic: after the write; every Options.SyncInterval a
//     background goroutine fsyncs. The high watermark is the written
//     end. An acknowledged append survives kill -9
//     (TestCrashSyncPeriodic); a power loss takes what was appended
//     after the last completed sync, records readers may have seen
//     included (TestPowerCut/periodic checks that what was appended
//     before each Sync survives).
//   - SyncNever: after the write; the operating system flushes when it
//     likes. An acknowledged append survives kill -9 (TestCrashSIGKILL/
//     SyncNever); a power loss takes what was appended after the last
//     Sync or Close (TestPowerCut/never).
//
// Under every policy, once Sync or Close returns nil everything appended
// before the call is durable, and after Close every .log holds exactly
// its batches (TestPowerCut: some of its rounds cut the power right after
// Close, with appends racing it, and check both).
//
// A failed write or fsync makes the partition refuse writes until it is
// reopened (TestFailedSyncIsSticky): retrying and acknowledging would lie.
// After a failed fsync the kernel may have marked the unwritten pages
// clean (fsyncgate), so a failed partition never retries an fsync, its
// Close returns the failure and cuts each unfinished segment back to
// what its last successful fsync covered, and a reopen in the same
// process never serves those pages (TestReopenAfterFailedFsync). Under
// SyncPeriodic and SyncNever that cut takes the appends acknowledged
// since the last successful sync. TestInjectedFaults fails one write,
// fsync, directory fsync, rename or allocation (EIO, ENOSPC) at a random
// point of a busy workload and checks the same promises.
//
// On Open each partition recovers. Its recovery point (a small file,
// written at every roll's finalization and at Close) names the first
// segment not yet synced, trimmed and indexed for good; the segments
// below it are trusted. After it every batch is checked, as Kafka does:
// the log is cut at the first batch a power loss tore, later segments
// are removed, and appends go on from there (TestPowerCut,
// TestRecoveryReportsTornTail). A batch in the last segment that fails
// its check but has valid batches chained after it, and no page of it
// reading as zeros (as a page a power cut lost does), is damage, not a
// torn tail: it is kept, with every batch after it
// (TestFlippedByteInActiveSegmentKeepsLaterBatches); with a page of
// zeros it is a torn tail, cut however valid what follows
// (TestTornBatchBeforeValidOnesIsCut). Damage is never
// skipped: reads that reach it fail with a *CorruptError (ErrCorrupt)
// naming the file and byte position (TestFlippedBitSealedSegment,
// TestDamageBeforeTheLastSegmentIsNeverTruncated). Missing or damaged
// indexes are rebuilt
// (TestDamagedIndexes); index entries are written only for fsynced data,
// so recovery's scan, which starts at the last one, never skips a torn
// region. Stream.Recovery lists every cut and every damage Open found,
// and Verify (the stream verify command) checks a closed directory.
//
// A Close that closed every partition cleanly leaves a marker,
// DIR/topics/.clean_shutdown, as Kafka's .kafka_cleanshutdown. The next
// Open removes it, durably, before anything can append, and trusts each
// active segment as Close left it: it reads the index files and the
// batch headers after the last index entry, not the batches
// (TestCleanShutdownSkipsValidation); after a crash the marker is gone
// and Open validates what follows the recovery point, as above
// (TestCleanShutdownMarkerGoesAtOpen).
//
// What this does not cover: meta.db (topics, committed offsets, producer
// IDs) is bbolt, and the power-loss tests keep it on the real disk, so
// they do not test losing its writes. What is relied on there instead:
// bbolt's own fsync discipline (every Update fsyncs its pages, then its
// meta page, before it returns; NoSync is never set), and Open fsyncing
// DIR after it creates meta.db, so that its directory entry survives a
// power cut. A byte the
// disk flips in the last batches of a segment, with no valid batch after
// it, looks like a torn tail and is cut; Stream.Recovery reports the cut.
//
// Retention deletes whole sealed segments, oldest first, once their newest
// record is older than TopicConfig.Retention or the partition is larger
// than TopicConfig.RetentionBytes; StartOffset advances. The active
// segment is never deleted.
//
// Sealed segments hold no file while nobody reads them: a read opens a
// segment's three files (and maps its indexes) through a cache shared by
// the Stream's partitions, which closes the least recently used past
// Options.MaxOpenFiles descriptors, as Pebble's table cache; a segment
// in use by a read is closed only once the read is done
// (TestMaxOpenFilesBound, TestFileCacheRace). The active segments'
// files, and those of segments waiting for their finalization, are in
// that cache too: appends and reads of them go through their memory
// mapping, which needs no descriptor, and a sync, a growth or the
// finalization opens the files again when the cache closed them, so
// the descriptors stay within MaxOpenFiles however many partitions there
// are (TestMaxOpenFilesManyPartitions). The mapping keeps the file open
// in the kernel, so an fsync through a reopened descriptor still reports
// a write-back error (file_cache.go).
//
// # Consumer groups
//
// A Consumer reads records with Poll, the pull loop: up to
// ConsumerConfig.MaxPollRecords, round robin across its partitions so a
// busy one never starves the others, waiting up to FetchMaxWait for
// FetchMinBytes (then an empty slice and a nil error), woken by appends,
// never past the high watermark. A group-less consumer (NewConsumer)
// reads the partitions it Assigns from positions it Seeks; a position
// outside the log is ErrOffsetOutOfRange, never silently clamped.
//
// A ConsumerGroup shares the partitions of its topics among its members
// and keeps their committed offsets (the next offset to read) in meta.db:
//
//	g, err := s.ConsumerGroup("workers", stream.GroupConfig{Topics: []string{"jobs"}})
//	c, err := g.Join(ctx, stream.ConsumerConfig{})
//	defer c.Close()
//	err = c.Run(ctx, func(ctx context.Context, r *stream.Record) error {
//		return process(r) // committed once accepted
//	})
//
// Join returns at once. Partitions move at each member's next Poll: the
// GroupConfig.Assignor computes a target assignment at every rebalance
// (join, leave, eviction), a moving partition is first revoked by its
// owner (auto-commit, then OnRevoked, in that member's Poll) — or its
// owner closes or is evicted — and only then does its new owner receive it
// (OnAssigned). No partition ever has two owners. RangeAssignor and
// RoundRobinAssignor are eager (every member revokes everything at each
// rebalance, as Kafka's eager protocol); CooperativeStickyAssignor revokes
// only the partitions that move (KIP-429).
//
// Liveness is as in Kafka. A member's consumer heartbeats from its own
// goroutine; one whose heartbeats stop for GroupConfig.SessionTimeout is
// evicted. Progress is Poll: a member that does not Poll again within
// ConsumerConfig.MaxPollInterval (5 minutes), or does not give up what a
// rebalance asks within it (stuck in OnRevoked), is evicted; it hears of
// it at its next Poll (OnLost) and rejoins. A static member
// (ConsumerConfig.InstanceID) that closes keeps its partitions for
// SessionTimeout, and coming back with the same ID within it gets them
// back without a rebalance; one whose ID another consumer took is fenced
// for good (ErrFenced). GroupConfig.InitialRebalanceDelay lets workers
// started together share the partitions from the start. Groups follow
// their topics: a deleted topic's partitions go through OnLost and the
// group rebalances onto the others (with none left, Poll returns
// ErrTopicDeleted); a recreated or grown topic is picked up at the next
// Poll. DeleteTopic deletes the topic's committed offsets.
//
// Poll's records are the caller's to keep; Run lends each record to its
// handler, valid only until the handler returns (copy what you keep), and
// allocates nothing per record.
//
// Delivery is at least once. Poll auto-commits the positions of the
// records returned so far every GroupConfig.CommitInterval, and members
// commit before revoking and on Close (CommitInterval < 0: only Commit,
// CommitOffsets and Run commit). Run commits what its handler accepted;
// it stops within one record of its context's end or Close, and when the
// handler fails (after ConsumerConfig.Retry's attempts, if any; then a
// dead-letter topic or OnGiveUp may take the record) it commits up to the
// failed record, rewinds to it and returns the error. Close waits for
// Run's record in flight (CloseContext bounds the wait) and never commits
// a record the handler did not accept. Commits are fenced: only the
// current owner of a partition can commit it, so a member evicted or
// rebalanced away gets ErrFenced and changes nothing. Committed offsets
// never move backwards by themselves; only CommitOffsets and
// ResetOffsets move one back. A member starts where its group committed,
// or by GroupConfig.StartAt when nothing is committed or retention
// passed the committed offset (logged).
//
// Administration: Stream.Groups, Stream.DeleteGroup, ConsumerGroup.Lag,
// Committed, ResetOffsets and ResetOffsetsToTime (the last three need a
// group without members: ErrGroupNotEmpty). For offline loading, a
// consumer's ReadToEnd reads from its positions up to the high
// watermarks of the moment and stops; Commit saves how far it got.
//
// # Share groups
//
// A ShareGroup (Stream.ShareGroup) reads the same logs as a queue, as
// Kafka 4's share groups (KIP-932): any number of members (Join) over any
// number of partitions, each record acquired by one member at a time
// under a lock of ShareGroupConfig.AcquisitionLock (30s), and
// acknowledged on its own:
//
//	g, err := s.ShareGroup("workers", stream.ShareGroupConfig{Topics: []string{"jobs"}})
//	m, err := g.Join(ctx, stream.ShareMemberConfig{})
//	defer m.Close()
//	err = m.Run(ctx, func(ctx context.Context, a *stream.Acquired) error {
//		return process(&a.Record) // nil: accepted; an error: released
//	})
//
// Poll acquires records; Accept finishes them; Release gives them back,
// to be delivered again after a backoff (ReleaseBackoff, doubling with
// each delivery); Reject finishes them as unprocessable. After
// MaxDeliveries deliveries a record released, or whose lock expired, is
// rejected; rejected records are copied to the DeadLetterTopic, if set,
// with the headers stream.dlt.topic, .partition, .offset, .error, .group
// and .deliveries. Acknowledging a record the member no longer holds (its
// lock expired: another member may have it) fails with a *ShareAckError
// (ErrNotAcquired) and changes nothing, so a member that took too long
// learns it instead of double-processing silently. OrderedByKey makes
// each key a lane: a key's records are acquired in order, never two at
// once. MaxInFlightPerMember bounds what a member holds.
//
// The group's state is, per partition, a start offset below which every
// record is finished and a window of in-flight records with their states
// and delivery counts (at most MaxPartitionLocks), kept in meta.db as runs
// of offsets. One goroutine per group (started by Stream.ShareGroup,
// stopped by Close) commits the changes of every member in one bbolt
// transaction; Accept, Reject and Poll return once theirs is committed.
// After a crash (kill -9: TestShareGroupCrashSIGKILL) accepted and
// rejected records are never delivered again; records acquired and not
// yet accepted are delivered again, their delivery counts going on
// (at least once); released records keep their counts. Retention by age
// does not delete a segment holding records a share group has not
// finished, unless the group sets IgnoreRetention (retention by size
// still does; the records lost are logged). Stats, Reset and
// Stream.DeleteShareGroup administer groups; "stream groups" lists them.
//
// # Producers
//
// A Producer (Stream.NewProducer) is Kafka's KafkaProducer: it routes
// each record to a partition, batches records per partition, appends
// whole batches and reports every record to a callback exactly once.
//
//	p, err := s.NewProducer(stream.ProducerConfig{}) // zero value: defaults
//	r := &stream.Record{Topic: "events", Key: k, Value: v}
//	err = p.Send(ctx, r)  // waits for the ack; sets r.Partition, r.Offset
//	p.SendAsync(r, done)  // batched; done(r, err) once per record
//	err = p.Flush(ctx)    // everything sent so far delivered
//	err = p.Close()       // flush, then refuse sends; CloseContext(ctx) bounds the wait
//
// ProducerConfig maps onto the Java client's settings:
//
//	linger.ms            Linger              5ms; NoLinger for 0
//	batch.size           BatchBytes          64 KiB
//	buffer.memory        BufferBytes         32 MiB; sends block when full, never drop
//	max.block.ms         MaxBlock            60s; then the send fails with ErrBufferFull
//	acks                 Acks                AcksAll (all), AcksLeader (1), AcksNone (0)
//	enable.idempotence   DisableIdempotence  idempotent unless set
//	compression.type     Compression         CompressNone, Gzip, Snappy, LZ4, Zstd
//	delivery.timeout.ms  DeliveryTimeout     2m
//	retry.backoff.ms     RetryBackoff        100ms
//	partitioner.class    Partitioner         HashPartitioner: murmur2 of the key, sticky for none
//
// A partition's batch is written when it reaches BatchBytes or Linger
// after it opened, whichever comes first, or, once it holds a record of
// Send (whose caller waits anyway), as soon as the partition is free;
// records sent while the previous batch of the partition is being
// written and fsynced gather into the next one, so many concurrent Sends
// share fsyncs. Callbacks run
// in send order within a partition.
//
// Cost: a send encodes its record straight into the partition's batch,
// as Batch.Add does, and the batch is appended whole, so SendAsync costs
// about what the AppendBatch it makes costs (BenchmarkProducerOverhead
// compares the two). A producer recycles its delivered batches, up to
// what BufferBytes can hold, and Send its waiters: once warm, neither
// SendAsync nor Send allocates per record beyond what the caller passes.
//
// Acks: on one node AcksAll and AcksLeader both acknowledge a record once
// it is below the high watermark, durable under Options.Sync (fsynced
// under SyncAlways). They will differ once partitions are replicated:
// AcksAll waits for the in-sync replicas, AcksLeader for the leader only.
// AcksNone calls back as soon as the record is accepted, with Offset -1,
// as Kafka's acks=0.
//
// Failures: a failed append is retried every RetryBackoff until
// DeliveryTimeout, then the records fail with ErrTimeout wrapping the
// last error. Errors retrying cannot fix fail the record at once, alone:
// ErrRecordTooLarge, ErrUnknownTopic (also for a partition out of range
// from ManualPartitioner), ErrInvalidConfig. A missing topic is created
// with Options.DefaultTopic when Options.AutoCreateTopics is set.
//
// Idempotence (Kafka's KIP-98) is on by default: each producer gets an ID
// from meta.db and numbers its records per partition in the batch
// headers, so a batch retried after a lost acknowledgement is answered
// with its original offsets instead of being appended twice, however
// much others appended meanwhile. A partition forgets a producer not
// heard from for Options.ProducerIDExpiration (24 h, Kafka's
// producer.id.expiration.ms) and rebuilds what it knows of producers
// from its active segment on Open: a producer whose last batch lies in an
// older segment is forgotten at a restart (Kafka keeps producer-state
// snapshots for that; not done yet).
//
// Compressed batches are Kafka's: the codec in the batch attributes, the
// header in the clear, the CRC over the compressed records. Reads
// decompress transparently.
//
// Shutdown and callbacks: Close delivers everything sent before it,
// retrying for up to DeliveryTimeout; CloseContext(ctx) gives up when ctx
// ends, and then every record not yet written fails with ErrClosed (its
// callback runs; nothing is dropped silently). Callbacks may call the
// producer back: SendAsync works (failing at once with ErrBufferFull
// rather than waiting for room its own goroutine must free), Close
// returns at once and the rest is still delivered, and Send and Flush
// fail with ErrInCallback instead of deadlocking.
//
// TypedProducer and Decode send and read Go values through a Codec (JSON,
// String, Bytes, or your own), as Kafka's serializers.
//
// # Replication
//
// Options.Cluster makes a Stream one node of a cluster: every process
// runs the library with the same Peers and its own NodeID, over a
// Transport (NewTCPTransport between processes, NewMemNetwork in one).
// Nothing else runs: no broker, no ZooKeeper. Open recovers the local
// state and returns without waiting for a quorum; Close hands this node's
// partitions over, stops the metadata node, the data plane and the
// Transport, and waits for every goroutine. Stream.Cluster returns the
// node's view (nil on a single node): Controller, Nodes, Topics and
// PartitionState, on every node.
//
// On a cluster, CreateTopic, DeleteTopic and CreatePartitions work on
// any node: they go through the raft-held metadata (below) and return
// once every partition has a leader (or the topic is gone here), within
// RequestTimeout, else ErrTimeout. A ReplicationFactor above the number
// of Peers fails at once with ErrNotEnoughReplicas; one above the number
// of live nodes fails so once RequestTimeout has passed without enough
// of them (just after start, nodes register within a SessionTimeout).
// Every node then applies the metadata to its own directory: it creates,
// grows or deletes the topic, and each replica follows or leads as the
// controller says. Every node keeps a Partition for every partition
// (Topic.Partition answers the same everywhere), but only the replicas
// hold records: on another node the partition stays empty and refuses
// appends with ErrNotLeader. A directory holding topics created without
// Options.Cluster cannot be opened as a node, nor a node's directory
// holding topics without it (ErrInvalidConfig: appends there would fork
// the replicas).
//
// Partition.Append and AppendBatch work on the partition's leader only;
// elsewhere they fail with ErrNotLeader naming the leader. A Producer
// works on every node: a batch for a partition led elsewhere goes to the
// leader over the Transport, and an ErrNotLeader (leadership moved) is
// retried, towards the new leader, until DeliveryTimeout; idempotence,
// whose state every replica rebuilds from the batches it holds, keeps a
// retried batch from being written twice, and producer IDs embed the
// node ID so that producers on two nodes never share one.
//
// A Consumer works on every node: it reads a partition from this node's
// replica when that leads or is in the ISR (below the high watermark the
// replica knows), and otherwise from the leader over the Transport
// (below the leader's). A consumer group spans nodes: its members,
// generations, assignment, ownership and committed offsets are in the
// raft-held metadata (cluster_group.go), so members on any nodes share
// its partitions, every node answers Committed, Lag (from the
// partitions' bounds as this node knows them), Members and DeleteGroup,
// and the commits survive losing any minority of nodes, the controller's
// included. Rebalances are Kafka's eager protocol: at a new generation
// every member commits and gives up what it holds, and the assignment
// (computed by the leader member's Assignor) is handed out once nobody
// holds anything, so no two members hold a partition at once; a commit
// is accepted only from the member holding the partition. Each node
// evicts its own members that stop heartbeating or polling (their leave
// goes through raft); a node that dies takes its members with it when
// its lease runs out. Each change is a raft commit: a waited commit costs
// a quorum's fsyncs (BenchmarkClusterGroupCommit: about a quarter of a
// single node's commit rate).
//
// Not yet done on a cluster: static membership (InstanceID is ignored),
// InitialRebalanceDelay and incremental cooperative rebalancing (the
// cooperative assignor's assignment is used, eagerly); ReadToEnd reads
// this node's replica only; a member on a node cut off from the majority
// keeps the partitions it holds for a third of the cluster's
// SessionTimeout (its commits fail; at its first Poll after that it
// counts them lost, as a Kafka consumer that lost its coordinator; the
// others take them once its node's lease runs out, later);
// membership is fixed at first start. An append on a leader cut off from
// every other node is never acknowledged: it fails with ErrTimeout after
// RequestTimeout (Kafka's REQUEST_TIMED_OUT), or with ErrNotLeader when
// the new metadata reaches it first. The
// stream command's node runs a node over TCP from flags.
//
// What the data plane does, in Kafka's and Redpanda's vocabulary:
// followers fetch from the partition leader with long polls, and append
// the batches it returns byte for byte, at the leader's offsets, with
// their partitionLeaderEpoch and CRC (checked on the way in). The leader
// stamps its epoch in every batch it writes (the field is outside the
// CRC, so stamping costs a store), and every replica keeps a leader-epoch
// cache (epoch to start offset, the file leader-epoch-checkpoint in the
// partition directory). A replica that becomes a follower first asks the
// leader where its own newest epoch ends in the leader's log and
// truncates there (KIP-101, KIP-279), durably, so a deposed leader drops
// the suffix it wrote but nobody acknowledged. The high watermark is the
// smallest durable log end over the ISR, the leader's included (durable:
// fsynced under SyncAlways, so an acknowledgement under the defaults
// means "on the disks of every in-sync replica", stronger than Kafka's
// "in the memory of every in-sync replica", like Redpanda's); a
// follower's is the smaller of the leader's and its own durable end.
// Readers see records below the high watermark only, on every replica:
// acknowledged data, never a suffix that a failover can erase. A replica
// that restarts shows readers nothing until replication raises its high
// watermark again (there is no high-watermark checkpoint file yet, as
// Kafka's replication-offset-checkpoint).
//
// On the leader an append returns once the high watermark passes it
// (AcksAll). With an ISR smaller than MinInSyncReplicas it fails with
// ErrNotEnoughReplicas and appends nothing; when the ISR shrinks below
// it while the append waits, the append fails with ErrNotEnoughReplicas
// too, though the records are in the log (Kafka's
// NOT_ENOUGH_REPLICAS_AFTER_APPEND); when the leader loses its
// leadership first, with ErrNotLeader. On a follower an append fails at
// once with ErrNotLeader, naming the leader. The leader asks the
// controller to drop a follower from the ISR when it has not caught up
// for ReplicaLagTime (it keeps acknowledging without it, if
// MinInSyncReplicas allows), and to add it back once its durable log end
// reaches the high watermark: a node back from a crash re-enters the ISR
// only after catching up. The logs of the replicas are byte-identical
// below the high watermark; the tests check it, and that no acknowledged
// record is lost and no high watermark goes down across a leader change.
//
// Nodes talk through a Transport: Call sends bytes to a node and
// returns its reply, Serve answers requests, each in its own goroutine.
// Implement it over any network; the package ships two. NewTCPTransport
// frames requests with a length prefix and a request ID, so many calls
// share each of a few pooled connections at once; the caller's deadline
// and cancellation travel to the handler's ctx, a reply that comes after
// its call gave up is dropped, lost connections are redialled with
// backoff, TLS is one *tls.Config away, frames over MaxFrameBytes are
// refused (an error reply or a closed connection, and a log line, never
// a panic), a handler that panics is recovered (an error reply and a
// log line, on any Transport), connections past TCPConfig.MaxConns are
// closed as they come, and it binds loopback unless told otherwise. A
// follower whose log ends below the leader's log start (retention
// deleted what it needed) restarts its log there, as Kafka's does.
// Operators see a running cluster with the stream command's cluster
// (QueryNode asks any node for its NodeStatus). NewMemNetwork
// connects transports in memory for tests and simulation: Cut, Isolate
// and Heal partition it, and SetFaults drops, delays, duplicates and
// reorders messages, drawn from its seed (delays are timers, so
// testing/synctest runs them on its fake clock). A node that cannot be
// reached fails the call with ErrUnreachable. Requests are versioned: a
// node of protocol version v accepts v and v-1 and answers any other
// with an error naming the versions it speaks (*VersionError), so two
// adjacent releases can run side by side during a rolling upgrade.
//
// The metadata half: a Cluster (cluster.go) is one node of a raft group
// driven by
// go.etcd.io/raft/v3 over the Transport, its log, hard state and
// snapshots in meta.db's raft buckets. The raft leader is the controller,
// as in KRaft. The state every node applies from that log holds the
// nodes and their liveness, the topics with each partition's replicas,
// leader, leader epoch and ISR, and the consumer groups with their
// members, generations, assignments and committed offsets. What it
// promises:
//
//   - Every node applies the same commands in the same order and holds
//     the same state: the state machine (controller.go) is pure and
//     deterministic, and takes time only from the log (the controller
//     proposes a metadata tick every SessionTimeout/9; each node renews a
//     lease of 9 ticks with a heartbeat every 3). Any node answers
//     Topics, PartitionState and Nodes from what it has applied, which
//     may trail the controller by a moment.
//   - A node that is closed tells the controller, and its partitions
//     fail over at once; one that crashes or is cut off is declared dead
//     when its lease runs out, about SessionTimeout later. A new leader
//     is the first replica, in replica order, that is alive and in the
//     ISR; the leader epoch grows, fencing the old leader. With no such
//     replica the partition stays leaderless until an in-sync one
//     returns, unless UncleanLeaderElection lets any live replica lead
//     (acknowledged records may then be lost, as in Kafka). A node
//     restarted before its lease runs out is a new incarnation (its
//     heartbeat carries a new boot number, as Kafka's broker epoch,
//     KIP-380): it leaves every ISR, what it led moves to a new leader
//     epoch, and it leads or follows only once the metadata knows it.
//   - Replicas of a new topic are spread round-robin over the live
//     nodes; a ReplicationFactor above their number fails with
//     ErrNotEnoughReplicas.
//   - Only a partition's leader changes its ISR, quoting its leader epoch
//     and the partition epoch it last saw (Kafka's AlterPartition); a
//     stale request fails with ErrFenced. A dead node leaves every ISR;
//     a node back from a crash re-enters one only when its leader asks.
//   - A change waits for its command to apply on the node that asked, up
//     to RequestTimeout (ErrTimeout; the change may still apply later).
//     Lost proposals are proposed again, across controller changes, and
//     apply once.
//   - Raft's own safety: a majority of the Peers must be up for any
//     change; a minority keeps answering reads from what it has.
//
// # Kafka clients
//
// Package kafkaproto (and "stream serve -kafka") serves a Stream to
// Kafka clients over Kafka's wire protocol. It builds on a few methods
// meant for such front ends: Partition.AppendRaw appends a client's
// RecordBatch as it was sent (checked, offsets assigned, idempotent
// batches deduplicated), Partition.ReadRaw returns stored batches byte
// for byte for a fetch, Stream.NewProducerID hands out producer IDs,
// Stream.TopicOrCreate creates topics as a Producer does, and
// ConsumerGroup.StoreOffsets lets a coordinator that fences its own
// members commit a group's offsets, shared with the Go API's Committed
// and Lag.
//
// # Observability
//
// Stream.Metrics returns a snapshot of every partition (offsets, size,
// fsync count and latency histogram, write errors, failure) and consumer
// group (members, generation, committed offsets, lag), cheap enough to
// take every second. Package debughttp serves it, with a record browser,
// as a read-only page to mount next to net/http/pprof ("stream serve
// -http" serves it for a directory); the exporters/prometheus module
// exports it to Prometheus.
//
// # Concurrency
//
// Every method is safe for concurrent use. An append takes its
// partition's lock for one short critical section (assign offsets, copy
// the batch into the memory-mapped active segment, index it); fsync
// happens outside it. A roll creates the next segment inside it (one
// directory fsync); the old segment is fsynced, trimmed and indexed
// outside it, by the appenders waiting for its records under SyncAlways
// and by the flusher otherwise. Readers do not block appenders while
// they copy and decode. Waiters (Wait, Scan, long polls) wake when the high watermark
// moves, without polling.
//
// Lock order, outermost first: Consumer.pollMu; the groups registry;
// ConsumerGroup.mu; the share groups registry; ShareGroup.mu; Stream.mu; replica.mu; replicaManager.mu;
// Partition.finalizeMu; Partition.mu; fileCache.mu; segment.mu.
// Consumer.mu is taken with no group lock held, before Partition locks.
// The cluster's locks (raftNode.mu over the applied metadata,
// raftStorage.mu over the raft log's cached bounds) are leaves: nothing
// else is taken while one is held. User callbacks (OnAssigned, OnRevoked,
// Run's handler) run with no lock of the package held except
// Consumer.pollMu. A
// Producer's locks (its mu and each partition accumulator's) are never
// held while taking any other.
//
// Each background job is one goroutine started by Open and stopped by
// Close: retention, and (under SyncPeriodic and SyncNever) the flusher
// that fsyncs partitions and finalizes rolled segments. Each consumer
// group has one coordinator goroutine, started by Stream.ConsumerGroup,
// that evicts members whose session expired. A Producer runs one
// goroutine per partition with batches to write, while it has some. A
// Cluster runs its raft driver and one sender per peer; its close stops
// them and waits.
// Stream.Close first closes open producers (they deliver what they hold),
// then consumers (they commit and leave) and groups, and waits for them
// all. No goroutine outlives Close.
//
// # Caveats
//
//   - One process at a time: Open takes an exclusive lock on the
//     directory (DIR/LOCK, which holds the process ID), and a second Open
//     fails at once naming the directory and the process holding it.
//   - Unix systems only (Linux, macOS, the BSDs): the active segment is
//     memory-mapped and preallocated, never more than SegmentBytes ahead
//     of its data. Linux gets fallocate, fdatasync and page population
//     in one call (for writing under SyncPeriodic and SyncNever; under
//     SyncAlways that would make every fsync write zeros ahead of the
//     data, so pages are populated read-only); elsewhere preallocation
//     writes zeros and syncs are full fsyncs.
//   - Offsets are contiguous; there is no log compaction.
//   - Records returned by Read and Scan share memory with their batch:
//     holding one keeps its batch's buffer alive.
//   - Bad arguments are errors, never panics: a nil record, batch,
//     context, function or codec, a negative size, an empty directory
//     name wrap ErrInvalidConfig; offsets outside a partition wrap
//     ErrOffsetOutOfRange; sizes read from files are checked against the
//     file before anything is allocated for them. FuzzAPIModel
//     (model_test.go) drives the API with random operations against an
//     in-memory model to keep it so.
package stream

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.etcd.io/bbolt"
	"golang.org/x/sys/unix"
)

// Sentinel errors, matched with errors.Is. Returned errors wrap them with
// the context a caller needs (topic, partition, offset, file, position).
var (
	// ErrClosed is returned by the calls that return an error, on a
	// closed Stream, Producer, Consumer or Partition (or a partition of a
	// deleted topic); calls without an error result report a zero or last
	// value instead (Stream.Topics returns nil, Stream.Stats a zero Stats).
	// Records a producer gave up on (CloseContext) fail with it too.
	ErrClosed = errors.New("stream: closed")
	// ErrUnknownTopic is returned by Topic, DeleteTopic, CreatePartitions
	// and producers for a topic that does not exist (and is not
	// auto-created), and by Topic.Partition and producers for a
	// partition the topic does not have.
	ErrUnknownTopic = errors.New("stream: unknown topic")
	// ErrTopicExists is returned by CreateTopic for a name already taken,
	// and by CreateTopic and CreatePartitions when a partition directory
	// they would create already exists (it is never adopted).
	ErrTopicExists = errors.New("stream: topic already exists")
	// ErrInvalidName is returned for topic and group names outside Kafka's
	// rule: 1 to 249 characters of [a-zA-Z0-9._-], not "." or "..".
	ErrInvalidName = errors.New("stream: invalid name")
	// ErrInvalidConfig is returned by Open, CreateTopic, NewProducer,
	// ConsumerGroup and NewConsumer for a bad configuration field, which
	// the error names, by CreatePartitions for a count that does not grow
	// the topic, and by any call given a bad argument: a nil
	// context, record, batch, function or codec, a negative size, an
	// empty directory name.
	ErrInvalidConfig = errors.New("stream: invalid configuration")
	// ErrOffsetOutOfRange is returned by Read, Seek and Poll for an offset
	// below the partition's start or above its high watermark.
	ErrOffsetOutOfRange = errors.New("stream: offset out of range")
	// ErrRecordTooLarge is returned by appends and sends of a batch larger
	// than Options.MaxRecordBytes; nothing is written.
	ErrRecordTooLarge = errors.New("stream: record too large")
	// ErrCorrupt is returned by reads that meet a damaged batch, and by
	// Open for damage recovery cannot repair; the error names the file
	// and byte position.
	ErrCorrupt = errors.New("stream: corrupt data")
	// ErrFenced is returned by commits from a consumer group member that
	// was evicted or rebalanced away (the commit changes nothing), and
	// by every call of a static member whose InstanceID another consumer
	// took.
	ErrFenced = errors.New("stream: fenced by a newer group generation")
	// ErrNotLeader is returned by appends to a replica that is not the
	// partition's leader; the error names the leader. A single node is
	// the leader of every partition, so on one node no call returns it.
	// Producers retry it (see Replication).
	ErrNotLeader = errors.New("stream: not the partition leader")
	// ErrNotEnoughReplicas is returned by CreateTopic for a
	// ReplicationFactor above the number of nodes (1 without
	// Options.Cluster), and by appends to the leader of a replicated partition whose ISR
	// is below MinInSyncReplicas (before appending, or after: see
	// Replication).
	ErrNotEnoughReplicas = errors.New("stream: not enough replicas")
	// ErrTimeout is what a producer's records fail with when
	// ProducerConfig.DeliveryTimeout passes before they are delivered; it
	// wraps the last append error. Calls that take a context return the
	// context's error instead.
	ErrTimeout = errors.New("stream: timed out")
	// ErrUnreachable is returned by Transport.Call when the node cannot
	// be reached: unknown, not serving, closed, cut off, or its
	// connection lost with the request in flight (which then may or may
	// not have been handled).
	ErrUnreachable = errors.New("stream: node unreachable")
	// ErrMessageTooLarge is returned by TCPTransport.Call for a request
	// or reply larger than TCPConfig.MaxFrameBytes; an oversized request
	// is never sent.
	ErrMessageTooLarge = errors.New("stream: message too large")
	// ErrBadRequest is returned for a request a node cannot parse:
	// a malformed frame or envelope, or an unknown message kind.
	ErrBadRequest = errors.New("stream: bad request")
	// ErrUnsupportedVersion is returned for a request in a protocol
	// version the receiving node does not speak; the *VersionError
	// carrying it names the versions it does.
	ErrUnsupportedVersion = errors.New("stream: unsupported protocol version")
	// ErrGroupNotEmpty is returned by ConsumerGroup.ResetOffsets,
	// ResetOffsetsToTime and Stream.DeleteGroup while the group has
	// members.
	ErrGroupNotEmpty = errors.New("stream: consumer group has members")
	// ErrUnknownGroup is returned by Stream.DeleteGroup for a group that
	// does not exist.
	ErrUnknownGroup = errors.New("stream: unknown consumer group")
	// ErrBufferFull is returned (to the callback, for SendAsync) by sends
	// that found the producer's buffer (ProducerConfig.BufferBytes) full
	// for ProducerConfig.MaxBlock, and at once by a SendAsync from a
	// producer callback that finds it full: the callback's goroutine is
	// the one that would free room. Nothing was sent.
	ErrBufferFull = errors.New("stream: producer buffer full")
	// ErrInCallback is returned by Producer.Send and Flush called from
	// one of the producer's delivery callbacks, which they would wait for,
	// and by Consumer.Close and CloseContext called from the consumer's
	// OnAssigned, OnRevoked or OnLost, which run inside its Poll.
	ErrInCallback = errors.New("stream: called from a producer callback")
	// ErrTopicDeleted is returned by Poll, Run and commits of a consumer
	// whose partitions belong to a topic deleted since they were
	// assigned (a group member whose group has no topic left), and by
	// CommitOffsets naming a deleted topic.
	ErrTopicDeleted = errors.New("stream: topic deleted")
	// ErrNotAcquired is returned (in a *ShareAckError) by ShareMember's
	// Accept, Release and Reject for a record the member does not hold:
	// its acquisition lock expired, or it was acknowledged already.
	ErrNotAcquired = errors.New("stream: record not acquired")
)

// Stream is an open directory of topics. Open one with Open; it is safe
// for concurrent use, and Close releases it.
type Stream struct {
	dir  string
	opts Options
	fs   fileSystem // the topics' files; meta.db and LOCK are on the OS's
	log  *slog.Logger
	lock *os.File  // holds the directory's exclusive flock
	db   *bbolt.DB // meta.db

	// cache keeps the files of finalized segments, every partition's,
	// at most Options.MaxOpenFiles of them (file_cache.go).
	cache *fileCache
	// cleanStart: the last Close was clean, so the partitions Open finds
	// trust their active segments (clean_shutdown.go). Set during Open
	// only.
	cleanStart bool

	// mu guards topics, producers and closed.
	mu        sync.RWMutex
	topics    map[string]*Topic
	producers map[*Producer]struct{} // open producers, closed by Close
	closed    bool

	stop      chan struct{} // closed by Close: background jobs return
	done      sync.WaitGroup
	flushWake chan struct{} // a partition rolled: finalize sealed segments

	groups groupRegistry // consumer groups and consumers, closed by Close
	shares shareRegistry // share groups, closed by Close

	cluster *clusterNode // nil on a single node
	hooks   *hookSet     // Options.Hooks (hooks.go); nil when none
}

var (
	bucketTopics = []byte("topics")
)

// topicRecord is a topic's entry in meta.db.
type topicRecord struct {
	Config   TopicConfig `json:"config"`
	Created  time.Time   `json:"created"`
	Deleting bool        `json:"deleting,omitempty"`
	// TopicID is the cluster's ID of the topic (a name deleted and
	// created again is a new topic); 0 on a single node.
	TopicID uint64 `json:"topic_id,omitempty"`
}

// Open opens (creating if needed) the stream in dir, recovers every
// partition, and starts the background jobs. A nil opts means defaults. A
// directory already opened by another Stream, in this process or another,
// fails at once with an error naming it.
func Open(dir string, opts *Options) (_ *Stream, err error) {
	return openFS(osFS{}, dir, opts)
}

// openFS is Open with the topics' files on fsys (tests use an in-memory
// file system that can cut the power; meta.db stays on the OS's).
func openFS(fsys fileSystem, dir string, opts *Options) (_ *Stream, err error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	if dir == "" {
		return nil, argError("open", "empty directory name")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, errorf("stream: open %s: %w", dir, err)
	}
	if err := fsys.MkdirAll(filepath.Join(dir, "topics"), 0o755); err != nil {
		return nil, errorf("stream: open %s: %w", dir, err)
	}
	s := &Stream{
		dir: dir, opts: o, fs: fsys, log: o.Logger,
		cache:     newFileCache(o.MaxOpenFiles),
		topics:    map[string]*Topic{},
		stop:      make(chan struct{}),
		flushWake: make(chan struct{}, 1),
	}
	defer func() {
		if err != nil {
			s.closeTopics()
			if s.db != nil {
				s.db.Close()
			}
			if s.lock != nil {
				s.lock.Close()
			}
		}
	}()
	if s.lock, err = lockDir(dir); err != nil {
		return nil, err
	}
	if s.hooks, err = newHookSet(o.Hooks); err != nil {
		return nil, err
	}
	if err := checkMetaDB(filepath.Join(dir, "meta.db")); err != nil {
		return nil, errorf("stream: open %s: %w", dir, err)
	}
	s.db, err = bbolt.Open(filepath.Join(dir, "meta.db"), 0o644, &bbolt.Options{Timeout: time.Second})
	if err != nil {
		return nil, errorf("stream: open %s: %w", filepath.Join(dir, "meta.db"), err)
	}
	if err := s.db.Update(func(tx *bbolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists(bucketTopics)
		return err
	}); err != nil {
		return nil, errorf("stream: open %s: %w", dir, err)
	}
	// Make the entries of meta.db and topics durable in DIR: a power
	// cut right after the first Open must not lose them.
	if err := syncDir(dir); err != nil {
		return nil, errorf("stream: open %s: %w", dir, err)
	}
	if _, ok := fsys.(osFS); !ok {
		if err := fsys.SyncDir(dir); err != nil {
			return nil, errorf("stream: open %s: %w", dir, err)
		}
	}
	// Take the clean-shutdown marker away before anything can append, so
	// that a crash from here on is never taken for a clean shutdown.
	if s.cleanStart, err = takeCleanShutdown(fsys, filepath.Join(dir, "topics")); err != nil {
		return nil, errorf("stream: open %s: %w", dir, err)
	}
	err = s.loadTopics()
	s.cleanStart = false
	if err != nil {
		return nil, err
	}
	if o.Cluster != nil {
		if err := s.startCluster(*o.Cluster); err != nil {
			return nil, err
		}
	} else if err := s.refuseClusterTopics(); err != nil {
		return nil, err
	}
	s.done.Add(1)
	go s.retentionLoop()
	if o.Sync != SyncAlways {
		s.done.Add(1)
		go s.flushLoop()
	}
	return s, nil
}

// lockDir takes an exclusive, non-blocking flock on DIR/LOCK and writes
// the process ID into it, so that a second Open can name the holder.
func lockDir(dir string) (*os.File, error) {
	path := filepath.Join(dir, "LOCK")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, errorf("stream: open %s: %w", dir, err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			holder := "another process"
			if b, err := os.ReadFile(path); err == nil {
				if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
					holder = "process " + strconv.Itoa(pid)
					if pid == os.Getpid() {
						holder += " (this one: another Stream)"
					}
				}
			}
			return nil, errorf("stream: directory %s is in use by %s, which holds %s", dir, holder, path)
		}
		return nil, errorf("stream: lock %s: %w", path, err)
	}
	if err := f.Truncate(0); err == nil {
		f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0) // for the error above; the lock works without it
	}
	return f, nil
}

// loadTopics opens every topic recorded in meta.db, finishing deletions a
// crash interrupted.
func (s *Stream) loadTopics() error {
	recs := map[string]topicRecord{}
	err := s.db.View(func(tx *bbolt.Tx) error {
		return tx.Bucket(bucketTopics).ForEach(func(k, v []byte) error {
			var r topicRecord
			if err := json.Unmarshal(v, &r); err != nil {
				return fmt.Errorf("topic %q: %w", k, err)
			}
			recs[string(k)] = r
			return nil
		})
	})
	if err != nil {
		return errorf("stream: read %s: %w", filepath.Join(s.dir, "meta.db"), err)
	}
	names := make([]string, 0, len(recs))
	for name := range recs {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		r := recs[name]
		if r.Deleting {
			s.log.Info("finishing interrupted topic deletion", "topic", name)
			if err := s.removeTopicFiles(name, r.Config.Partitions); err != nil {
				return err
			}
			continue
		}
		t, err := s.openTopic(name, r.Config)
		if err != nil {
			return err
		}
		t.id = r.TopicID
		s.topics[name] = t
	}
	s.warnStrayDirs()
	return nil
}

// warnStrayDirs logs partition directories that belong to no topic. They
// are left alone: data the stream does not know is never deleted.
func (s *Stream) warnStrayDirs() {
	entries, err := s.fs.ReadDir(filepath.Join(s.dir, "topics"))
	if err != nil {
		return
	}
	for _, e := range entries {
		i := strings.LastIndexByte(e.Name(), '-')
		if i < 0 {
			continue
		}
		n, err := strconv.Atoi(e.Name()[i+1:])
		t := s.topics[e.Name()[:i]]
		if err != nil || t == nil || n >= len(t.partitions) {
			s.log.Warn("directory belongs to no topic; leaving it", "dir", filepath.Join(s.dir, "topics", e.Name()))
		}
	}
}

func (s *Stream) partitionDir(topic string, i int) string {
	return filepath.Join(s.dir, "topics", topic+"-"+strconv.Itoa(i))
}

func (s *Stream) openTopic(name string, cfg TopicConfig) (*Topic, error) {
	t := &Topic{name: name, cfg: cfg}
	pc := s.partitionConfigFor(cfg)
	for i := range cfg.Partitions {
		p, err := openPartition(s.fs, s.partitionDir(name, i), name, int32(i), pc, s.log)
		if err != nil {
			for _, q := range t.partitions {
				q.close()
			}
			return nil, errorf("stream: open partition %s-%d: %w", name, i, err)
		}
		t.partitions = append(t.partitions, p)
	}
	return t, nil
}

// partitionConfigFor returns the configuration of the partitions of a
// topic configured by cfg.
func (s *Stream) partitionConfigFor(cfg TopicConfig) partitionConfig {
	pc := partitionConfig{
		sync:           s.opts.Sync,
		segmentBytes:   int64(s.opts.SegmentBytes),
		segmentAge:     s.opts.SegmentAge,
		indexEvery:     int64(s.opts.IndexIntervalBytes),
		maxRecordBytes: int64(s.opts.MaxRecordBytes),
		producerExpiry: max(s.opts.ProducerIDExpiration, 0),
		cache:          s.cache,
		cleanStart:     s.cleanStart,
		hooks:          s.hooks,
	}
	if cfg.SegmentBytes != 0 {
		pc.segmentBytes = int64(cfg.SegmentBytes)
	}
	if s.opts.Sync != SyncAlways {
		pc.finalizeLater = s.wakeFlusher
	}
	return pc
}

func (s *Stream) wakeFlusher(*Partition) {
	select {
	case s.flushWake <- struct{}{}:
	default:
	}
}

// Close stops the background jobs, syncs and closes every partition, and
// releases the directory. Consumers are closed first, as by their Close:
// a Run handler's record in flight is waited for (close consumers with
// CloseContext first to bound that). Calls after Close return ErrClosed.
func (s *Stream) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return errorf("stream: close %s: %w", s.dir, ErrClosed)
	}
	s.closed = true
	producers := s.producers
	s.producers = nil
	s.mu.Unlock()
	for p := range producers {
		p.closeForStream() // before the partitions close: producers deliver what they hold
	}
	s.groups.closeAll() // consumers commit and leave while partitions and meta.db are open
	s.shares.closeAll()
	var err error
	if s.cluster != nil {
		err = s.cluster.close() // before the partitions: fetches and acknowledgements end first
	}
	close(s.stop)
	s.done.Wait()
	cerr := s.closeTopics()
	s.hooks.close()
	if cerr == nil && err == nil && s.partitionsHealthy() {
		// Every partition is synced and trimmed: the next Open need
		// not validate the active segments. Without the marker it
		// does, so failing to write it is no reason to fail Close.
		if merr := markCleanShutdown(s.fs, filepath.Join(s.dir, "topics")); merr != nil {
			s.log.Warn("could not mark the clean shutdown; the next Open validates the active segments", "error", merr)
		}
	}
	err = errors.Join(err, cerr, s.db.Close(), s.lock.Close())
	if err != nil {
		return errorf("stream: close %s: %w", s.dir, err)
	}
	return nil
}

func (s *Stream) closeTopics() error {
	var errs []error
	for _, t := range s.topics {
		for _, p := range t.partitions {
			errs = append(errs, p.close())
		}
	}
	return errors.Join(errs...)
}

// Sync fsyncs every partition now: for SyncPeriodic and SyncNever users
// who need a durable point.
func (s *Stream) Sync() error {
	parts, err := s.partitions()
	if err != nil {
		return err
	}
	var errs []error
	for _, p := range parts {
		errs = append(errs, p.Sync())
	}
	return errors.Join(errs...)
}

// partitions returns every partition of every topic.
func (s *Stream) partitions() ([]*Partition, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return nil, errorf("stream: %s: %w", s.dir, ErrClosed)
	}
	var parts []*Partition
	for _, t := range s.topics {
		parts = append(parts, t.partitions...)
	}
	return parts, nil
}

// CreateTopic creates a topic with cfg (zero fields: defaults). It fails
// with ErrInvalidName, ErrInvalidConfig, ErrTopicExists, or
// ErrNotEnoughReplicas for a replication factor above the number of
// nodes.
func (s *Stream) CreateTopic(name string, cfg TopicConfig) (*Topic, error) {
	if err := validName("topic", name); err != nil {
		return nil, err
	}
	cfg, err := cfg.withDefaults("TopicConfig.")
	if err != nil {
		return nil, errorf("stream: create topic %s: %w", name, err)
	}
	if s.cluster != nil {
		if s.isClosed() {
			return nil, errorf("stream: create topic %s: %w", name, ErrClosed)
		}
		return s.cluster.createTopic(name, cfg)
	}
	if cfg.ReplicationFactor > 1 {
		return nil, errorf("stream: create topic %s: replication factor %d with 1 node: %w", name, cfg.ReplicationFactor, ErrNotEnoughReplicas)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, errorf("stream: create topic %s: %w", name, ErrClosed)
	}
	if _, ok := s.topics[name]; ok {
		return nil, errorf("stream: create topic %s: %w", name, ErrTopicExists)
	}
	for i := range cfg.Partitions {
		if ok, _ := s.fs.Exists(s.partitionDir(name, i)); ok {
			return nil, errorf("stream: create topic %s: directory %s already exists and belongs to no topic; move it away first: %w",
				name, s.partitionDir(name, i), ErrTopicExists)
		}
	}
	// meta.db is the commit point: a crash after it leaves a topic whose
	// missing partition directories Open creates.
	rec, _ := json.Marshal(topicRecord{Config: cfg, Created: time.Now().UTC()})
	if err := s.db.Update(func(tx *bbolt.Tx) error {
		return tx.Bucket(bucketTopics).Put([]byte(name), rec)
	}); err != nil {
		return nil, errorf("stream: create topic %s: %w", name, err)
	}
	// A failure takes the topic back: its directories first, then its
	// meta.db entry (removeTopicFiles), so that directories that cannot be
	// removed stay a topic's, which the next Open adopts, rather than
	// belonging to none and refusing every retry.
	t, err := s.openTopic(name, cfg)
	if err == nil {
		if err = s.fs.SyncDir(filepath.Join(s.dir, "topics")); err != nil {
			for _, p := range t.partitions {
				p.close()
			}
			err = errorf("stream: create topic %s: %w", name, err)
		}
	}
	if err != nil {
		if rerr := s.removeTopicFiles(name, cfg.Partitions); rerr != nil {
			s.log.Error("create topic failed, and its files could not be removed; the next Open opens the topic", "topic", name, "error", rerr)
		}
		return nil, err
	}
	s.topics[name] = t
	s.log.Info("created topic", "topic", name, "partitions", cfg.Partitions)
	return t, nil
}

// Topic returns the named topic, or ErrUnknownTopic.
func (s *Stream) Topic(name string) (*Topic, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return nil, errorf("stream: topic %s: %w", name, ErrClosed)
	}
	t, ok := s.topics[name]
	if !ok {
		return nil, errorf("stream: topic %s: %w", name, ErrUnknownTopic)
	}
	return t, nil
}

// Topics returns the names of all topics, sorted. It returns nil after
// Close.
func (s *Stream) Topics() []string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return nil
	}
	names := make([]string, 0, len(s.topics))
	for name := range s.topics {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}

// DeleteTopic deletes a topic and its files. Users of its partitions get
// ErrClosed. The deletion is crash-safe: it is first recorded in meta.db,
// and Open finishes one a crash interrupted.
func (s *Stream) DeleteTopic(name string) error {
	if s.cluster != nil {
		if s.isClosed() {
			return errorf("stream: delete topic %s: %w", name, ErrClosed)
		}
		return s.cluster.deleteTopic(name)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errorf("stream: delete topic %s: %w", name, ErrClosed)
	}
	t, ok := s.topics[name]
	if !ok {
		return errorf("stream: delete topic %s: %w", name, ErrUnknownTopic)
	}
	if err := s.dropTopicLocked(t, nil); err != nil {
		return err
	}
	s.log.Info("deleted topic", "topic", name)
	return nil
}

// dropTopicLocked deletes topic t here, crash-safely: it marks t
// deleting in meta.db with its groups' committed offsets gone, forgets
// it, closes its partitions (each first handed to release, when set) and
// removes its files. s.mu is held.
func (s *Stream) dropTopicLocked(t *Topic, release func(*Partition)) error {
	name := t.name
	rec, _ := json.Marshal(topicRecord{Config: t.cfg, Deleting: true, TopicID: t.id})
	if err := s.db.Update(func(tx *bbolt.Tx) error {
		if err := deleteTopicOffsetsTx(tx, name); err != nil {
			return err
		}
		return tx.Bucket(bucketTopics).Put([]byte(name), rec)
	}); err != nil {
		return errorf("stream: delete topic %s: %w", name, err)
	}
	delete(s.topics, name)
	t.changes.Add(1) // producers look the name up again
	for _, p := range t.partitions {
		if release != nil {
			release(p)
		}
		p.close()
	}
	return s.removeTopicFiles(name, len(t.partitions))
}

// removeTopicFiles removes the partition directories of a topic marked
// for deletion, then its meta.db entry.
func (s *Stream) removeTopicFiles(name string, partitions int) error {
	for i := range partitions {
		if err := s.fs.RemoveAll(s.partitionDir(name, i)); err != nil {
			return errorf("stream: delete topic %s: %w", name, err)
		}
	}
	if err := s.fs.SyncDir(filepath.Join(s.dir, "topics")); err != nil {
		return errorf("stream: delete topic %s: %w", name, err)
	}
	if err := s.db.Update(func(tx *bbolt.Tx) error {
		return tx.Bucket(bucketTopics).Delete([]byte(name))
	}); err != nil {
		return errorf("stream: delete topic %s: %w", name, err)
	}
	return nil
}

// Recovery returns what Open repaired in the partitions' logs, or found
// damaged and left in place, one RecoveryEvent each, in topic and
// partition order: torn tails cut after the recovery point (records a
// power cut took before they were synced; under SyncAlways never an
// acknowledged one, unless the disk damaged it) and damage below it,
// which reads report as ErrCorrupt. Empty after a clean shutdown. Topics
// created after Open have none.
func (s *Stream) Recovery() []RecoveryEvent {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var evs []RecoveryEvent
	for _, t := range s.topics {
		for _, p := range t.partitions {
			evs = append(evs, p.recovery...)
		}
	}
	slices.SortStableFunc(evs, func(a, b RecoveryEvent) int {
		if c := strings.Compare(a.Topic, b.Topic); c != 0 {
			return c
		}
		return int(a.Partition) - int(b.Partition)
	})
	return evs
}

// Stats is a snapshot of a Stream's size.
type Stats struct {
	Topics     int
	Partitions int
	Segments   int
	Bytes      ByteSize // of record batches on disk
	Records    int64    // kept records: the sum of HighWatermark - StartOffset
}

// Stats returns a snapshot of the stream's size. It is zero after Close.
func (s *Stream) Stats() Stats {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var st Stats
	if s.closed {
		return st
	}
	st.Topics = len(s.topics)
	for _, t := range s.topics {
		for _, p := range t.partitions {
			ps := p.stats()
			st.Partitions++
			st.Segments += ps.segments
			st.Bytes += ByteSize(ps.bytes)
			st.Records += p.HighWatermark() - p.StartOffset()
		}
	}
	return st
}

// retentionLoop runs retention every RetentionCheckInterval until Close.
func (s *Stream) retentionLoop() {
	defer s.done.Done()
	t := time.NewTicker(s.opts.RetentionCheckInterval)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case now := <-t.C:
			s.enforceRetention(now)
		}
	}
}

// enforceRetention applies every topic's retention once.
func (s *Stream) enforceRetention(now time.Time) {
	s.mu.RLock()
	topics := make([]*Topic, 0, len(s.topics))
	for _, t := range s.topics {
		topics = append(topics, t)
	}
	s.mu.RUnlock()
	floors := s.shareRetentionFloors() // read from meta.db at the first call
	for _, t := range topics {
		cfg := t.Config()
		for _, p := range t.partitionList() {
			floor := int64(math.MaxInt64)
			if cfg.Retention >= 0 {
				floor = floors(t.name, p.id)
			}
			if _, err := p.enforceRetention(now, cfg.Retention, int64(cfg.RetentionBytes), floor); err != nil {
				s.log.Error("retention", "topic", t.name, "partition", p.id, "error", err)
			}
		}
	}
}

// flushLoop is the background flusher under SyncPeriodic and SyncNever:
// it finalizes rolled segments when woken and, under SyncPeriodic, syncs
// every partition each SyncInterval.
func (s *Stream) flushLoop() {
	defer s.done.Done()
	var tick <-chan time.Time
	if s.opts.Sync == SyncPeriodic {
		t := time.NewTicker(s.opts.SyncInterval)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case <-s.stop:
			return
		case <-s.flushWake:
			parts, _ := s.partitions()
			for _, p := range parts {
				if err := p.finalizeSealed(); err != nil && !errors.Is(err, ErrClosed) && !p.refusingWrites() {
					s.log.Error("finalize segments", "topic", p.topic, "partition", p.id, "error", err)
				}
			}
		case <-tick:
			parts, _ := s.partitions()
			for _, p := range parts {
				if err := p.Sync(); err != nil && !errors.Is(err, ErrClosed) && !p.refusingWrites() {
					s.log.Error("periodic sync", "topic", p.topic, "partition", p.id, "error", err)
				}
			}
		}
	}
}
