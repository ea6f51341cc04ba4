// Package benchmarks holds what checks stream against other software, in
// a module of its own so that users of stream never download any of it.
//
// kafkaformat_test.go proves that stream's segment files are Kafka
// RecordBatch v2 byte for byte, with franz-go's decoder and a fake Kafka
// broker (kfake) as the independent judges; kafkalog_test.go, that stream
// reads the batches Kafka's encoder writes. They run with go test.
//
// peers_test.go and the engine_*_test.go files compare stream with
// tidwall/wal, bbolt, NATS JetStream (embedded) and franz-go on kfake,
// doing the same work on the same machine; run.sh repeats them and prints
// the tables of README.md.
//
// The package has no code of its own; everything is in _test.go files.
package benchmarks
