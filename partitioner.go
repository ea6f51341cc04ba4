package stream

import (
	"encoding/binary"
	"math"
	"math/rand/v2"
	"sync"
	"sync/atomic"
)

// Partitioner chooses the partition a producer sends a record to. It
// mirrors the Java client's partitioner.class; ProducerConfig.Partitioner
// defaults to HashPartitioner, Kafka's default.
//
// Partition is called with the record (whose Topic is set) and the topic's
// partition count, at least 1. It must be safe for concurrent use and
// return a partition in [0, numPartitions); the producer fails a record
// given any other value, alone, with an error. A partitioner should not
// modify the record.
//
// Users can plug in their own: any type with this method will do.
type Partitioner interface {
	Partition(r *Record, numPartitions int) int32
}

// The built-in partitioners. Each is safe for concurrent use. A producer
// configured with HashPartitioner or RoundRobinPartitioner keeps its own
// sticky partitions and counters, as each Kafka producer does, so
// producers sharing one of these values do not disturb one another.
var (
	// HashPartitioner is Kafka's default partitioner
	// (partitioner.class unset): a record with a key goes to
	// murmur2(key) made positive, modulo the partition count, exactly
	// the partition the Java client and librdkafka's murmur2_random
	// pick, so keys land where a Kafka user expects. An empty key is a
	// key; only a nil key counts as none.
	//
	// Records with a nil key use the sticky partitioner of KIP-480
	// (Kafka 2.4 to 3.2): they all go to one partition of their topic,
	// chosen at random, until the producer seals the batch there, and
	// then to another. Batches fill faster and latency drops, while
	// keyless load still spreads evenly over time.
	HashPartitioner Partitioner = newHashPartitioner()

	// RoundRobinPartitioner sends each record of a topic, keyed or not,
	// to the next partition in turn, as Kafka's RoundRobinPartitioner.
	// Batches being sealed never make it skip a partition, as they do
	// Kafka's in some versions (KAFKA-9965).
	RoundRobinPartitioner Partitioner = newRoundRobinPartitioner()

	// RandomPartitioner sends each record to a partition chosen
	// uniformly at random, keyed or not.
	RandomPartitioner Partitioner = randomPartitioner{}

	// ManualPartitioner sends each record to the partition in its
	// Partition field, as a Java ProducerRecord built with an explicit
	// partition. It returns the field as it is; the producer fails a
	// record whose partition is out of range, and only that record.
	ManualPartitioner Partitioner = manualPartitioner{}
)

// stickyPartitioner is implemented by partitioners that keep records on
// one partition until the producer seals the batch there (KIP-480). The
// producer calls onNewBatch whenever it seals a batch of topic on
// prevPartition, whether because the batch filled or its linger expired.
//
// onNewBatch moves the topic's sticky partition elsewhere only if it is
// still prevPartition, so that several sealed batches, or several
// goroutines reporting one, move it once. It is safe for concurrent use.
type stickyPartitioner interface {
	onNewBatch(topic string, prevPartition int32, numPartitions int)
}

// partitionerForProducer returns the partitioner a new producer should
// use for p: a fresh instance of the built-ins that keep state (sticky
// partitions, round-robin counters), so that producers do not share it,
// and p itself otherwise.
func partitionerForProducer(p Partitioner) Partitioner {
	// A type switch, not ==: comparing a user's partitioner of an
	// uncomparable type would panic. Users cannot build these types, so
	// any value of them is one of the package's.
	switch p.(type) {
	case nil, *hashPartitioner:
		return newHashPartitioner()
	case *roundRobinPartitioner:
		return newRoundRobinPartitioner()
	}
	return p
}

// validPartitionCount reports whether n partitions can be addressed by an
// int32 partition number.
func validPartitionCount(n int) bool { return n >= 1 && n <= math.MaxInt32 }

// murmur2 is the 32-bit MurmurHash2 variant of Kafka's Utils.murmur2: seed
// 0x9747b28c, the key read as little-endian 4-byte words, the tail folded
// in before the final avalanche. Kafka works on signed ints; the bits are
// the same in uint32.
func murmur2(key []byte) uint32 {
	const (
		seed = 0x9747b28c
		m    = 0x5bd1e995
		r    = 24
	)
	h := uint32(seed) ^ uint32(len(key))
	body := len(key) &^ 3
	for i := 0; i < body; i += 4 {
		k := binary.LittleEndian.Uint32(key[i:])
		k *= m
		k ^= k >> r
		k *= m
		h *= m
		h ^= k
	}
	switch tail := key[body:]; len(tail) {
	case 3:
		h ^= uint32(tail[2]) << 16
		fallthrough
	case 2:
		h ^= uint32(tail[1]) << 8
		fallthrough
	case 1:
		h ^= uint32(tail[0])
		h *= m
	}
	h ^= h >> 13
	h *= m
	h ^= h >> 15
	return h
}

// keyPartition is Kafka's BuiltInPartitioner.partitionForKey:
// toPositive(murmur2(key)) % numPartitions, where toPositive clears the
// sign bit (it is not abs).
func keyPartition(key []byte, numPartitions int) int32 {
	return int32((murmur2(key) & 0x7fffffff) % uint32(numPartitions))
}

// hashPartitioner is HashPartitioner: murmur2 for keys, sticky otherwise.
type hashPartitioner struct {
	// sticky maps a topic name to its *atomic.Int32 sticky partition,
	// -1 until the first keyless record of the topic picks one. Entries
	// are added, never removed: a producer sends to few topics.
	sticky sync.Map
}

func newHashPartitioner() *hashPartitioner { return &hashPartitioner{} }

// Partition implements Partitioner.
func (p *hashPartitioner) Partition(r *Record, numPartitions int) int32 {
	if !validPartitionCount(numPartitions) {
		return -1
	}
	if r.Key != nil {
		return keyPartition(r.Key, numPartitions)
	}
	cur := p.topic(r.Topic)
	for {
		old := cur.Load()
		if old >= 0 && int(old) < numPartitions {
			return old
		}
		// None yet, or the topic has fewer partitions than when it was
		// picked: pick anew.
		next := int32(rand.IntN(numPartitions))
		if cur.CompareAndSwap(old, next) {
			return next
		}
	}
}

// onNewBatch implements stickyPartitioner, as Kafka's
// StickyPartitionCache.nextPartition: a new random partition other than
// prevPartition, set only if the sticky one is still prevPartition.
func (p *hashPartitioner) onNewBatch(topic string, prevPartition int32, numPartitions int) {
	if !validPartitionCount(numPartitions) {
		return
	}
	cur := p.topic(topic)
	old := cur.Load()
	if old != prevPartition && old >= 0 && int(old) < numPartitions {
		return // already moved on, by another sealed batch
	}
	cur.CompareAndSwap(old, randomPartitionExcept(prevPartition, numPartitions))
}

// topic returns the sticky partition cell of topic, creating it.
func (p *hashPartitioner) topic(topic string) *atomic.Int32 {
	if v, ok := p.sticky.Load(topic); ok {
		return v.(*atomic.Int32)
	}
	cell := new(atomic.Int32)
	cell.Store(-1)
	v, _ := p.sticky.LoadOrStore(topic, cell)
	return v.(*atomic.Int32)
}

// randomPartitionExcept returns a partition in [0, n) chosen uniformly
// among those other than prev, or 0 when there is no other.
func randomPartitionExcept(prev int32, n int) int32 {
	if n == 1 {
		return 0
	}
	if prev < 0 || int(prev) >= n {
		return int32(rand.IntN(n))
	}
	next := int32(rand.IntN(n - 1))
	if next >= prev {
		next++
	}
	return next
}

// roundRobinPartitioner is RoundRobinPartitioner.
type roundRobinPartitioner struct {
	// next maps a topic name to its *atomic.Uint32 count of records
	// partitioned so far.
	next sync.Map
}

func newRoundRobinPartitioner() *roundRobinPartitioner { return &roundRobinPartitioner{} }

// Partition implements Partitioner.
func (p *roundRobinPartitioner) Partition(r *Record, numPartitions int) int32 {
	if !validPartitionCount(numPartitions) {
		return -1
	}
	v, ok := p.next.Load(r.Topic)
	if !ok {
		v, _ = p.next.LoadOrStore(r.Topic, new(atomic.Uint32))
	}
	n := v.(*atomic.Uint32).Add(1) - 1
	return int32(n % uint32(numPartitions))
}

// randomPartitioner is RandomPartitioner.
type randomPartitioner struct{}

// Partition implements Partitioner.
func (randomPartitioner) Partition(_ *Record, numPartitions int) int32 {
	if !validPartitionCount(numPartitions) {
		return -1
	}
	return int32(rand.IntN(numPartitions))
}

// manualPartitioner is ManualPartitioner.
type manualPartitioner struct{}

// Partition implements Partitioner.
func (manualPartitioner) Partition(r *Record, _ int) int32 { return r.Partition }
