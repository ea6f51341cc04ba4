package stream

import "time"

// Record is one message of a topic: the unit producers send and consumers
// receive. Its layout on disk is a record of Kafka's RecordBatch v2.
type Record struct {
	Topic     string
	Partition int32 // set on produce; honoured only by ManualPartitioner
	Offset    int64 // set on produce and consume
	Key       []byte
	Value     []byte
	Headers   []Header
	Timestamp time.Time // zero: set at send
}

// Header is a key/value pair attached to a record, as Kafka's record
// headers.
type Header struct {
	Key   string
	Value []byte
}

// TopicPartition names one partition of a topic.
type TopicPartition struct {
	Topic     string
	Partition int32
}
