package stream

// The sticky hook the producer calls (onNewBatch) and murmur2 are
// unexported, so this file tests from inside the package; everything
// else goes through the exported Partitioner values.

import (
	"fmt"
	"math"
	"sync"
	"testing"
)

// javaHashVectors are murmur2 results of the Java client, as signed ints:
//   - Kafka's own clients/src/test/java/org/apache/kafka/common/utils/
//     UtilsTest.java, testMurmur2 (the first six);
//   - librdkafka's src/rdmurmur2.c, unittest_murmur2, whose table is
//     "java_murmur2_results" (the rest), which adds keys whose length is
//     1 mod 4 and the empty key.
var javaHashVectors = []struct {
	key  string
	hash int32
}{
	{"21", -973932308},
	{"foobar", -790332482},
	{"a-little-bit-long-string", -985981536},
	{"a-little-bit-longer-string", -1486304829},
	{"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971},
	{"abc", 479470107},

	{"kafka", -798503068},              // 0xd067cf64
	{"giberish123456789", -1890243828}, // 0x8f552b0c
	{"1234", -1614185708},              // 0x9fc97b14
	{"234", -406844982},                // 0xe7c009ca
	{"34", -2026295078},                // 0x873930da
	{"4", 1514888353},                  // 0x5a4b5ca1
	{"PreAmbleWillBeRemoved,ThePrePartThatIs", 2017611548}, // 0x78424f1c
	{"reAmbleWillBeRemoved,ThePrePartThatIs", 1247982455},  // 0x4a62b377
	{"eAmbleWillBeRemoved,ThePrePartThatIs", -521871202},   // 0xe0e4e09e
	{"AmbleWillBeRemoved,ThePrePartThatIs", 1656271935},    // 0x62b8b43f
	{"", 275646681}, // 0x106e08d9
}

func TestMurmur2JavaVectors(t *testing.T) {
	for _, v := range javaHashVectors {
		if got := int32(murmur2([]byte(v.key))); got != v.hash {
			t.Errorf("murmur2(%q) = %d, want %d (Kafka's Utils.murmur2)", v.key, got, v.hash)
		}
	}
}

// Partitions the Java client picks for a keyed record. The partition is
// toPositive(hash) % n, where toPositive clears the sign bit: the wanted
// values below are worked out by hand from the Java hashes above (for
// "21": -973932308 & 0x7fffffff = 1173551340, which is 0 mod 3, 3 mod 7,
// 0 mod 12 and 40 mod 100), not with the code under test. The 1000-
// partition rows are kafka-python's test_murmur2_java_compatibility,
// recorded there from Kafka's Java DefaultPartitioner.
func TestHashPartitionerKafkaPartitions(t *testing.T) {
	tests := []struct {
		key  string
		n    int
		want int32
	}{
		{"21", 1, 0},
		{"21", 3, 0},
		{"21", 7, 3},
		{"21", 12, 0},
		{"21", 100, 40},
		{"foobar", 7, 0},
		{"foobar", 12, 6},
		{"foobar", 100, 66},
		{"a-little-bit-long-string", 3, 2},
		{"a-little-bit-long-string", 12, 8},
		{"a-little-bit-long-string", 100, 12},
		{"a-little-bit-longer-string", 12, 11},
		{"a-little-bit-longer-string", 100, 19},
		{"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", 7, 3},
		{"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", 100, 77},
		{"abc", 7, 4},
		{"abc", 12, 3},
		// A negative hash is made positive by clearing the sign bit,
		// not by abs: abs(-798503068) % 10 would be 8.
		{"kafka", 10, 0},
		// kafka-python, test_murmur2_java_compatibility, 1000 partitions.
		{"", 1000, 681},
		{"a", 1000, 524},
		{"ab", 1000, 434},
		{"abc", 1000, 107},
		{"123456789", 1000, 566},
		{"\x00 ", 1000, 742},
	}
	for _, tt := range tests {
		r := &Record{Topic: "t", Key: []byte(tt.key)}
		if got := HashPartitioner.Partition(r, tt.n); got != tt.want {
			t.Errorf("HashPartitioner: key %q over %d partitions = %d, want %d", tt.key, tt.n, got, tt.want)
		}
	}
}

// With 2^31-1 partitions the partition is the positive hash itself, which
// checks 31 bits of every Java vector through the exported API.
func TestHashPartitionerMaxPartitions(t *testing.T) {
	for _, v := range javaHashVectors {
		want := v.hash & math.MaxInt32
		if want == math.MaxInt32 {
			want = 0
		}
		r := &Record{Topic: "t", Key: []byte(v.key)}
		if got := HashPartitioner.Partition(r, math.MaxInt32); got != want {
			t.Errorf("key %q over 2^31-1 partitions = %d, want %d", v.key, got, want)
		}
	}
}

// An empty key is a key, as in Kafka: only nil is keyless.
func TestHashPartitionerEmptyKeyIsHashed(t *testing.T) {
	p := newHashPartitioner()
	for range 20 {
		if got := p.Partition(&Record{Topic: "t", Key: []byte{}}, 1000); got != 681 {
			t.Fatalf("empty key over 1000 partitions = %d, want 681 (Kafka's murmur2 of no bytes)", got)
		}
	}
}

func TestPartitionersInvalidCount(t *testing.T) {
	for _, tt := range []struct {
		name string
		p    Partitioner
	}{
		{"hash", HashPartitioner},
		{"round robin", RoundRobinPartitioner},
		{"random", RandomPartitioner},
	} {
		for _, n := range []int{0, -1, math.MaxInt32 + 1} {
			for _, key := range [][]byte{nil, []byte("k")} {
				if got := tt.p.Partition(&Record{Topic: "t", Key: key}, n); got != -1 {
					t.Errorf("%s over %d partitions = %d, want -1", tt.name, n, got)
				}
			}
		}
	}
}

// KIP-480: keyless records stay on one partition until the batch there is
// sealed, then move to another; each topic has its own.
func TestHashPartitionerSticky(t *testing.T) {
	p := newHashPartitioner()
	const n = 8
	first := p.Partition(&Record{Topic: "a"}, n)
	if first < 0 || first >= n {
		t.Fatalf("sticky partition %d out of range", first)
	}
	for i := range 100 {
		if got := p.Partition(&Record{Topic: "a", Value: []byte{byte(i)}}, n); got != first {
			t.Fatalf("record %d: keyless record went to %d, want sticky %d", i, got, first)
		}
	}
	// A keyed record is hashed and leaves the sticky partition alone.
	if got, want := p.Partition(&Record{Topic: "a", Key: []byte("21")}, n), int32(1173551340%n); got != want {
		t.Errorf("keyed record = %d, want %d", got, want)
	}

	// Sealing a batch on another partition changes nothing.
	p.onNewBatch("a", (first+1)%n, n)
	if got := p.Partition(&Record{Topic: "a"}, n); got != first {
		t.Fatalf("after sealing another partition's batch: %d, want still %d", got, first)
	}
	// Sealing the sticky partition's batch moves it elsewhere, every time.
	seen := map[int32]bool{first: true}
	prev := first
	for range 200 {
		p.onNewBatch("a", prev, n)
		next := p.Partition(&Record{Topic: "a"}, n)
		if next == prev {
			t.Fatalf("sticky partition stayed on %d after its batch was sealed", prev)
		}
		if next < 0 || next >= n {
			t.Fatalf("sticky partition %d out of range", next)
		}
		seen[next] = true
		prev = next
	}
	if len(seen) != n {
		t.Errorf("over 200 sealed batches the sticky partition visited %d of %d partitions", len(seen), n)
	}

	// Topics are independent.
	b := p.Partition(&Record{Topic: "b"}, n)
	p.onNewBatch("b", b, n)
	if got := p.Partition(&Record{Topic: "a"}, n); got != prev {
		t.Errorf("moving topic b's sticky partition moved a's: %d, want %d", got, prev)
	}
}

func TestHashPartitionerStickyEdges(t *testing.T) {
	p := newHashPartitioner()
	// One partition: sealing leaves it there, as there is nowhere else.
	p.onNewBatch("one", 0, 1)
	if got := p.Partition(&Record{Topic: "one"}, 1); got != 0 {
		t.Errorf("single partition: %d", got)
	}
	// A sealed batch reported before any keyless record: the first
	// pick avoids the sealed partition.
	for i := range 50 {
		topic := fmt.Sprintf("fresh-%d", i)
		p.onNewBatch(topic, 1, 2)
		if got := p.Partition(&Record{Topic: topic}, 2); got != 0 {
			t.Fatalf("after sealing partition 1 of 2 first, sticky = %d, want 0", got)
		}
	}
	// The topic shrinks from the producer's view (or a stale count):
	// a sticky partition out of range is replaced by one in range.
	big := p.Partition(&Record{Topic: "shrink"}, 1000)
	for big < 10 {
		p.onNewBatch("shrink", big, 1000)
		big = p.Partition(&Record{Topic: "shrink"}, 1000)
	}
	if got := p.Partition(&Record{Topic: "shrink"}, 10); got < 0 || got >= 10 {
		t.Errorf("sticky partition %d not re-picked within 10 partitions", got)
	}
	// Invalid counts are ignored by the hook: the sticky partition,
	// even the one it would move away from, stays where it is.
	sticky := p.Partition(&Record{Topic: "shrink"}, 10)
	for _, n := range []int{0, -5, math.MaxInt32 + 1} {
		p.onNewBatch("shrink", sticky, n)
		if got := p.Partition(&Record{Topic: "shrink"}, 10); got != sticky {
			t.Errorf("onNewBatch with partition count %d moved the sticky partition %d to %d", n, sticky, got)
		}
	}
}

// Many goroutines sending keyless records and sealing batches: the sticky
// partition moves once per sealed batch however many report it, every
// answer is in range, and -race finds nothing.
func TestHashPartitionerStickyConcurrent(t *testing.T) {
	p := newHashPartitioner()
	const n, goroutines, perG = 16, 8, 2000
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			topic := []string{"x", "y"}[g%2]
			for i := range perG {
				got := p.Partition(&Record{Topic: topic}, n)
				if got < 0 || got >= n {
					t.Errorf("partition %d out of range", got)
					return
				}
				if i%50 == 49 {
					p.onNewBatch(topic, got, n)
				}
				if i%7 == 0 { // keyed records in between
					key := []byte(fmt.Sprint(i))
					if k := p.Partition(&Record{Topic: topic, Key: key}, n); k != keyPartition(key, n) {
						t.Errorf("keyed partition changed under concurrency")
						return
					}
				}
			}
		})
	}
	wg.Wait()

	// All goroutines reporting the same sealed batch move it once: from
	// then on the sticky partition is not prev, and further reports of
	// prev change nothing.
	prev := p.Partition(&Record{Topic: "z"}, n)
	var seal sync.WaitGroup
	for range goroutines {
		seal.Go(func() { p.onNewBatch("z", prev, n) })
	}
	seal.Wait()
	moved := p.Partition(&Record{Topic: "z"}, n)
	if moved == prev {
		t.Fatalf("sticky partition did not move off %d", prev)
	}
	p.onNewBatch("z", prev, n)
	if got := p.Partition(&Record{Topic: "z"}, n); got != moved {
		t.Errorf("a late report of sealed %d moved the sticky partition from %d to %d", prev, moved, got)
	}
}

func TestRoundRobinPartitioner(t *testing.T) {
	p := partitionerForProducer(RoundRobinPartitioner)
	const n = 5
	for i := range 3 * n {
		// Keys do not matter to round robin.
		r := &Record{Topic: "a", Key: []byte("same")}
		if got := p.Partition(r, n); got != int32(i%n) {
			t.Fatalf("record %d of topic a went to %d, want %d", i, got, i%n)
		}
	}
	// Each topic has its own turn.
	if got := p.Partition(&Record{Topic: "b"}, n); got != 0 {
		t.Errorf("first record of topic b went to %d, want 0", got)
	}
	// Sealing batches does not make round robin skip partitions.
	if _, ok := p.(stickyPartitioner); ok {
		t.Errorf("round robin must not take sealed-batch hints (KAFKA-9965)")
	}
}

func TestRoundRobinPartitionerConcurrent(t *testing.T) {
	p := partitionerForProducer(RoundRobinPartitioner)
	const n, goroutines, perG = 7, 8, 7 * 300
	counts := make([][n]int, goroutines)
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for range perG {
				counts[g][p.Partition(&Record{Topic: "t"}, n)]++
			}
		})
	}
	wg.Wait()
	for part := range n {
		total := 0
		for g := range goroutines {
			total += counts[g][part]
		}
		if want := goroutines * perG / n; total != want {
			t.Errorf("partition %d got %d records, want exactly %d", part, total, want)
		}
	}
}

func TestRandomPartitioner(t *testing.T) {
	const n, records = 4, 4000
	var counts [n]int
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			var local [n]int
			for range records / 4 {
				got := RandomPartitioner.Partition(&Record{Topic: "t", Key: []byte("k")}, n)
				if got < 0 || got >= n {
					t.Errorf("partition %d out of range", got)
					return
				}
				local[got]++
			}
			mu.Lock()
			for i := range local {
				counts[i] += local[i]
			}
			mu.Unlock()
		})
	}
	wg.Wait()
	// Expect 1000 each; 700 is over 10 standard deviations away.
	for i, c := range counts {
		if c < 700 {
			t.Errorf("partition %d got %d of %d records: not uniform (%v)", i, c, records, counts)
		}
	}
}

func TestManualPartitioner(t *testing.T) {
	for _, tt := range []struct {
		partition int32
		n         int
	}{
		{0, 1},
		{3, 4},
		{9, 4},  // out of range: returned as is, the producer rejects it
		{-1, 4}, // likewise
	} {
		r := &Record{Topic: "t", Partition: tt.partition, Key: []byte("k")}
		if got := ManualPartitioner.Partition(r, tt.n); got != tt.partition {
			t.Errorf("ManualPartitioner with Partition %d = %d", tt.partition, got)
		}
	}
}

type userPartitioner struct{ m map[string]int32 } // not comparable

func (u userPartitioner) Partition(r *Record, _ int) int32 { return u.m[r.Topic] }

func TestPartitionerForProducer(t *testing.T) {
	// The built-ins with state get a fresh instance per producer.
	h1, h2 := partitionerForProducer(HashPartitioner), partitionerForProducer(HashPartitioner)
	if h1 == HashPartitioner || h1 == h2 {
		t.Errorf("HashPartitioner not copied per producer")
	}
	if _, ok := h1.(stickyPartitioner); !ok {
		t.Errorf("per-producer HashPartitioner lost the sticky hook")
	}
	if _, ok := partitionerForProducer(nil).(*hashPartitioner); !ok {
		t.Errorf("nil partitioner does not default to HashPartitioner")
	}
	if partitionerForProducer(RoundRobinPartitioner) == RoundRobinPartitioner {
		t.Errorf("RoundRobinPartitioner not copied per producer")
	}
	// Stateless ones and users' own are used as given, even if their
	// type is not comparable.
	if partitionerForProducer(ManualPartitioner) != ManualPartitioner {
		t.Errorf("ManualPartitioner replaced")
	}
	u := userPartitioner{m: map[string]int32{"t": 2}}
	if got := partitionerForProducer(u).Partition(&Record{Topic: "t"}, 3); got != 2 {
		t.Errorf("user partitioner not kept: %d", got)
	}

	// Producers do not share sticky partitions.
	h1.(stickyPartitioner).onNewBatch("t", h1.Partition(&Record{Topic: "t"}, 2), 2)
	before := h2.Partition(&Record{Topic: "t"}, 2)
	h1.(stickyPartitioner).onNewBatch("t", h1.Partition(&Record{Topic: "t"}, 2), 2)
	if after := h2.Partition(&Record{Topic: "t"}, 2); after != before {
		t.Errorf("one producer's sealed batch moved another's sticky partition")
	}
}

func BenchmarkHashPartitioner(b *testing.B) {
	p := newHashPartitioner()
	keyed := &Record{Topic: "t", Key: []byte("user-1234567")}
	keyless := &Record{Topic: "t"}
	b.Run("keyed", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			p.Partition(keyed, 64)
		}
	})
	b.Run("sticky", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			p.Partition(keyless, 64)
		}
	})
}
