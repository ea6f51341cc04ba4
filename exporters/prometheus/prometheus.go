// Package prometheus exports a stream.Stream's Metrics to Prometheus, as
// a prometheus.Collector:
//
//	reg.MustRegister(streamprom.NewCollector(s))
//
// It is a module of its own so that the stream library does not depend on
// client_golang. Each scrape takes one Stream.Metrics snapshot. The names
// follow Kafka's (as kafka_exporter and the JMX exporter print them) with
// the stream_ prefix:
//
//	stream_topic_partitions{topic}
//	stream_topic_partition_oldest_offset{topic,partition}     log start offset
//	stream_topic_partition_log_end_offset{topic,partition}    the next offset to assign
//	stream_topic_partition_current_offset{topic,partition}    high watermark
//	stream_log_size_bytes{topic,partition}
//	stream_log_segments{topic,partition}
//	stream_log_flush_seconds{topic,partition}                 histogram of fsyncs (Kafka: LogFlushRateAndTimeMs)
//	stream_log_write_errors_total{topic,partition}
//	stream_log_failed{topic,partition}                        1 while the partition refuses writes
//	stream_consumergroup_members{consumergroup}
//	stream_consumergroup_generation{consumergroup}
//	stream_consumergroup_current_offset{consumergroup,topic,partition}  committed; absent when nothing is
//	stream_consumergroup_lag{consumergroup,topic,partition}
//	stream_consumergroup_lag_sum{consumergroup}
package prometheus

import (
	"strconv"

	"github.com/instream/stream"
	"github.com/prometheus/client_golang/prometheus"
)

// Collector collects a Stream's metrics. A closed Stream reports nothing.
type Collector struct {
	s *stream.Stream

	topicPartitions, oldest, logEnd, current, size, segments, flush, writeErrors, failed *prometheus.Desc
	members, generation, groupOffset, lag, lagSum                                        *prometheus.Desc
}

// NewCollector returns a Collector of s.
func NewCollector(s *stream.Stream) *Collector {
	tp := []string{"topic", "partition"}
	gtp := []string{"consumergroup", "topic", "partition"}
	g := []string{"consumergroup"}
	d := prometheus.NewDesc
	return &Collector{
		s:               s,
		topicPartitions: d("stream_topic_partitions", "Partitions of the topic.", []string{"topic"}, nil),
		oldest:          d("stream_topic_partition_oldest_offset", "The first offset kept in the partition (log start offset).", tp, nil),
		logEnd:          d("stream_topic_partition_log_end_offset", "The next offset the partition assigns (log end offset).", tp, nil),
		current:         d("stream_topic_partition_current_offset", "The partition's high watermark: records below it are visible.", tp, nil),
		size:            d("stream_log_size_bytes", "Bytes of record batches on disk.", tp, nil),
		segments:        d("stream_log_segments", "Segment files of the partition.", tp, nil),
		flush:           d("stream_log_flush_seconds", "Durations of the fsyncs of the partition's group commit.", tp, nil),
		writeErrors:     d("stream_log_write_errors_total", "Failed writes or syncs of the partition since open.", tp, nil),
		failed:          d("stream_log_failed", "1 while the partition refuses writes after a failure (until reopened).", tp, nil),
		members:         d("stream_consumergroup_members", "Members of the consumer group open in this process.", g, nil),
		generation:      d("stream_consumergroup_generation", "The consumer group's generation.", g, nil),
		groupOffset:     d("stream_consumergroup_current_offset", "The group's committed offset: the next it reads.", gtp, nil),
		lag:             d("stream_consumergroup_lag", "Records of the partition the group has yet to read.", gtp, nil),
		lagSum:          d("stream_consumergroup_lag_sum", "The group's lag over all its partitions.", g, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.topicPartitions, c.oldest, c.logEnd, c.current, c.size, c.segments,
		c.flush, c.writeErrors, c.failed, c.members, c.generation, c.groupOffset, c.lag, c.lagSum} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	m := c.s.Metrics()
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	perTopic := map[string]int{}
	var topics []string
	for _, p := range m.Partitions {
		if perTopic[p.Topic] == 0 {
			topics = append(topics, p.Topic)
		}
		perTopic[p.Topic]++
		part := strconv.Itoa(int(p.Partition))
		gauge(c.oldest, float64(p.StartOffset), p.Topic, part)
		gauge(c.logEnd, float64(p.EndOffset), p.Topic, part)
		gauge(c.current, float64(p.HighWatermark), p.Topic, part)
		gauge(c.size, float64(p.Bytes), p.Topic, part)
		gauge(c.segments, float64(p.Segments), p.Topic, part)
		ch <- prometheus.MustNewConstMetric(c.writeErrors, prometheus.CounterValue, float64(p.WriteErrors), p.Topic, part)
		failed := 0.0
		if p.Failed != "" {
			failed = 1
		}
		gauge(c.failed, failed, p.Topic, part)
		h := p.FsyncLatency
		buckets := make(map[float64]uint64, len(h.Bounds))
		var cum uint64
		for i, b := range h.Bounds {
			cum += h.Counts[i]
			buckets[b.Seconds()] = cum
		}
		ch <- prometheus.MustNewConstHistogram(c.flush, h.Count, h.Sum.Seconds(), buckets, p.Topic, part)
	}
	for _, t := range topics {
		gauge(c.topicPartitions, float64(perTopic[t]), t)
	}
	for _, g := range m.Groups {
		gauge(c.members, float64(g.Members), g.Group)
		gauge(c.generation, float64(g.Generation), g.Group)
		gauge(c.lagSum, float64(g.Lag), g.Group)
		for _, p := range g.Partitions {
			part := strconv.Itoa(int(p.Partition))
			if p.Committed >= 0 {
				gauge(c.groupOffset, float64(p.Committed), g.Group, p.Topic, part)
			}
			gauge(c.lag, float64(p.Lag), g.Group, p.Topic, part)
		}
	}
}
