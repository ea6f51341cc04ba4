package stream_test

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"testing"

	"github.com/instream/stream"
)

// procWriteBytes returns write_bytes from /proc/self/io: the bytes this
// process caused to be written to storage (counted as pages get dirty).
func procWriteBytes(b *testing.B) int64 {
	raw, err := os.ReadFile("/proc/self/io")
	if err != nil {
		b.Skipf("no /proc/self/io: %v", err)
	}
	for _, line := range bytes.Split(raw, []byte("\n")) {
		if v, ok := bytes.CutPrefix(line, []byte("write_bytes: ")); ok {
			n, err := strconv.ParseInt(string(v), 10, 64)
			if err != nil {
				b.Fatal(err)
			}
			return n
		}
	}
	b.Skip("no write_bytes in /proc/self/io")
	return 0
}

// BenchmarkWriteAmplification appends batches of 64 KiB under SyncAlways
// (one fdatasync each) and reports the bytes written to storage per byte
// appended ("written/appended"), from /proc/self/io. Populating the
// preallocated pages for writing ahead of the data made every fdatasync
// write zeros first: about 2x.
func BenchmarkWriteAmplification(b *testing.B) {
	for _, batch := range []int{16 << 10, 64 << 10} {
		b.Run(fmt.Sprintf("%dKiB", batch>>10), func(b *testing.B) {
			_, t := openBench(b, nil, 1)
			p, _ := t.Partition(0)
			val := payload(1000)
			var bt stream.Batch
			for range batch / 1000 {
				bt.Add(nil, val)
			}
			b.SetBytes(int64(batch))
			before := procWriteBytes(b)
			b.ResetTimer()
			for range b.N {
				if _, err := p.AppendBatch(&bt); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			written := procWriteBytes(b) - before
			b.ReportMetric(float64(written)/float64(int64(b.N)*int64(batch)), "written/appended")
		})
	}
}
