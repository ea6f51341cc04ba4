package stream_test

// Benchmarks of bounded resources; none runs by default (they build
// thousands of files). Run them one at a time, with -benchtime=1x for
// clean RSS figures:
//
//	go test -run '^$' -bench 'ReadAllSegments' -benchtime=3x .
//	go test -run '^$' -bench 'Open10kPartitions' -benchtime=3x .

import (
	"bufio"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/instream/stream"
)

// rssMiB returns the process's resident set (VmRSS) in MiB.
func rssMiB(b *testing.B) float64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		b.Skipf("no /proc/self/status: %v", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			return kb / 1024
		}
	}
	return 0
}

// BenchmarkReadAllSegments reads a partition of 3,000 sealed segments from
// end to end after a reopen, one record at a time, and reports the most
// files open under the directory during the read: with default Options
// (MaxOpenFiles 1000, so the read cycles each segment through the file
// cache), and with a cache that holds every file ("all-open"), whose time
// is the baseline of the cache's cost.
func BenchmarkReadAllSegments(b *testing.B) {
	dir := b.TempDir()
	opts := &stream.Options{Sync: stream.SyncNever, SegmentBytes: stream.KiB, IndexIntervalBytes: 256}
	s, err := stream.Open(dir, opts)
	if err != nil {
		b.Fatal(err)
	}
	tp, err := s.CreateTopic("t", stream.TopicConfig{Retention: -1})
	if err != nil {
		b.Fatal(err)
	}
	p, _ := tp.Partition(0)
	val := make([]byte, 400)
	for s.Stats().Segments < 3000 {
		if _, err := p.Append(&stream.Record{Value: val}); err != nil {
			b.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct {
		name    string
		maxOpen int
	}{{"default", 0}, {"all-open", 10000}} {
		b.Run(bc.name, func(b *testing.B) {
			o := *opts
			o.MaxOpenFiles = bc.maxOpen
			s, err := stream.Open(dir, &o)
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			tp, _ := s.Topic("t")
			p, _ := tp.Partition(0)
			most := 0
			for b.Loop() {
				for next := int64(0); next < p.HighWatermark(); {
					recs, err := p.Read(next, 1)
					if err != nil {
						b.Fatal(err)
					}
					next = recs[len(recs)-1].Offset + 1
					if next%8 == 0 {
						b.StopTimer()
						most = max(most, openFilesUnder(b, dir))
						b.StartTimer()
					}
				}
			}
			b.ReportMetric(float64(s.Stats().Segments), "segments")
			b.ReportMetric(float64(most), "max-open-files")
		})
	}
}

// BenchmarkOpen10kPartitions opens a directory of 10,000 partitions (one
// topic, a few records in each) after a clean Close, and after a crash
// (simulated: the clean-shutdown marker removed, so Open recovers every
// partition as after kill -9), and reports the time of one Open, the RSS
// after it, and the files then open under the directory: the file cache
// (Options.MaxOpenFiles, default 1000) holds every segment's files, the
// active ones' included, so 10,000 partitions open within the default
// RLIMIT_NOFILE.
func BenchmarkOpen10kPartitions(b *testing.B) {
	const partitions = 10000
	dir := b.TempDir()
	s, err := stream.Open(dir, &stream.Options{Sync: stream.SyncNever})
	if err != nil {
		b.Fatal(err)
	}
	tp, err := s.CreateTopic("t", stream.TopicConfig{Partitions: partitions})
	if err != nil {
		b.Fatal(err)
	}
	var batch stream.Batch
	for range 20 {
		batch.Add(nil, make([]byte, 100))
	}
	for i := range int32(partitions) {
		p, _ := tp.Partition(i)
		for range 5 {
			if _, err := p.AppendBatch(&batch); err != nil {
				b.Fatal(err)
			}
		}
	}
	if err := s.Close(); err != nil {
		b.Fatal(err)
	}
	for _, mode := range []string{"clean", "crash"} {
		b.Run(mode, func(b *testing.B) {
			var rss float64
			files := 0
			for b.Loop() {
				if mode == "crash" {
					b.StopTimer()
					os.Remove(filepath.Join(dir, "topics", ".clean_shutdown"))
					b.StartTimer()
				}
				s, err := stream.Open(dir, nil)
				if err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				runtime.GC()
				rss = max(rss, rssMiB(b))
				files = max(files, openFilesUnder(b, dir))
				if err := s.Close(); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
			}
			b.ReportMetric(rss, "RSS-MiB")
			b.ReportMetric(float64(files), "open-files")
			b.ReportMetric(float64(partitions), "partitions")
		})
	}
}
