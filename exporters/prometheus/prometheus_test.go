package prometheus_test

import (
	"context"
	"strings"
	"testing"

	"github.com/instream/stream"
	streamprom "github.com/instream/stream/exporters/prometheus"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestCollector(t *testing.T) {
	s, err := stream.Open(t.TempDir(), nil) // SyncAlways: appends fsync
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	tp, err := s.CreateTopic("orders", stream.TopicConfig{Partitions: 2})
	if err != nil {
		t.Fatal(err)
	}
	p, _ := tp.Partition(0)
	for range 4 {
		if _, err := p.Append(&stream.Record{Value: []byte("v")}); err != nil {
			t.Fatal(err)
		}
	}
	g, err := s.ConsumerGroup("billing", stream.GroupConfig{Topics: []string{"orders"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := g.ResetOffsets(context.Background(), map[stream.TopicPartition]int64{{Topic: "orders", Partition: 0}: 1}); err != nil {
		t.Fatal(err)
	}

	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(streamprom.NewCollector(s))
	want := `
# HELP stream_consumergroup_lag Records of the partition the group has yet to read.
# TYPE stream_consumergroup_lag gauge
stream_consumergroup_lag{consumergroup="billing",partition="0",topic="orders"} 3
stream_consumergroup_lag{consumergroup="billing",partition="1",topic="orders"} 0
# HELP stream_consumergroup_current_offset The group's committed offset: the next it reads.
# TYPE stream_consumergroup_current_offset gauge
stream_consumergroup_current_offset{consumergroup="billing",partition="0",topic="orders"} 1
# HELP stream_topic_partition_current_offset The partition's high watermark: records below it are visible.
# TYPE stream_topic_partition_current_offset gauge
stream_topic_partition_current_offset{partition="0",topic="orders"} 4
stream_topic_partition_current_offset{partition="1",topic="orders"} 0
# HELP stream_topic_partitions Partitions of the topic.
# TYPE stream_topic_partitions gauge
stream_topic_partitions{topic="orders"} 2
# HELP stream_log_failed 1 while the partition refuses writes after a failure (until reopened).
# TYPE stream_log_failed gauge
stream_log_failed{partition="0",topic="orders"} 0
stream_log_failed{partition="1",topic="orders"} 0
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want),
		"stream_consumergroup_lag", "stream_consumergroup_current_offset", "stream_topic_partition_current_offset",
		"stream_topic_partitions", "stream_log_failed"); err != nil {
		t.Error(err)
	}

	mfs, err := reg.Gather() // pedantic: checks every metric against its Desc
	if err != nil {
		t.Fatal(err)
	}
	var flushes uint64
	for _, mf := range mfs {
		if mf.GetName() == "stream_log_flush_seconds" {
			for _, m := range mf.GetMetric() {
				flushes += m.GetHistogram().GetSampleCount()
			}
		}
	}
	if flushes == 0 {
		t.Error("stream_log_flush_seconds counted no fsyncs after SyncAlways appends")
	}
	if n, err := testutil.GatherAndCount(reg); err != nil || n == 0 {
		t.Errorf("GatherAndCount = %d, %v", n, err)
	}
}
