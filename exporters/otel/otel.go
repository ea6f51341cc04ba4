// Package otel exports a stream.Stream's Metrics as OpenTelemetry
// metrics, through asynchronous instruments whose one callback takes a
// single Stream.Metrics snapshot per collection:
//
//	reg, err := streamotel.Register(s, otel.GetMeterProvider())
//	defer reg.Unregister()
//
// It is a module of its own so that the stream library does not depend on
// OpenTelemetry. The names follow the Prometheus exporter's (and so
// Kafka's), dotted as OpenTelemetry names are:
//
//	stream.partition.log_start_offset{topic,partition}
//	stream.partition.log_end_offset{topic,partition}
//	stream.partition.high_watermark{topic,partition}
//	stream.log.size{topic,partition}                 By
//	stream.log.segments{topic,partition}
//	stream.log.open_files{topic,partition}
//	stream.log.maps{topic,partition}
//	stream.log.fsyncs{topic,partition}               counter
//	stream.log.fsync.duration{topic,partition}       counter, s: summed over the fsyncs
//	stream.log.write_errors{topic,partition}         counter
//	stream.log.failed{topic,partition}               1 while the partition refuses writes
//	stream.partition.isr{topic,partition}            replicated partitions: ISR size
//	stream.partition.replicas{topic,partition}
//	stream.partition.under_replicated{topic,partition}  1 on a leader whose ISR is short
//	stream.partition.leader_changes{topic,partition}    counter
//	stream.partition.follower_lag{topic,partition,follower}  records, on the leader
//	stream.consumergroup.members{consumergroup}
//	stream.consumergroup.generation{consumergroup}
//	stream.consumergroup.rebalances{consumergroup}      counter
//	stream.consumergroup.commits{consumergroup}         counter
//	stream.consumergroup.commit.duration{consumergroup} counter, s
//	stream.consumergroup.current_offset{consumergroup,topic,partition}
//	stream.consumergroup.lag{consumergroup,topic,partition}
//	stream.consumergroup.lag_sum{consumergroup}
//	stream.producer.records{producer}                   counter
//	stream.producer.batches{producer}                   counter
//	stream.producer.retries{producer}                   counter
//	stream.producer.errors{producer}                    counter
//	stream.producer.buffered{producer}                  By
//	stream.producer.ack.duration{producer}              counter, s: summed over the batches
//	stream.producer.acks{producer}                      counter: batches acknowledged or failed
//
// The histograms of Metrics (fsync, commit and produce-to-ack latency)
// are exported as their sums and counts: OpenTelemetry has no
// asynchronous histogram; the Prometheus exporter has them whole.
package otel

import (
	"context"
	"strconv"

	"github.com/instream/stream"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// ScopeName is the instrumentation scope of the meter Register uses.
const ScopeName = "github.com/instream/stream/exporters/otel"

type gauge = metric.Int64ObservableGauge
type counter = metric.Int64ObservableCounter
type fcounter = metric.Float64ObservableCounter

// instruments are the exporter's instruments.
type instruments struct {
	start, end, hw, size, segments, openFiles, maps, failed gauge
	fsyncs, writeErrors                                     counter
	fsyncTime                                               fcounter
	isr, replicas, underReplicated, followerLag             gauge
	leaderChanges                                           counter
	members, generation, groupOffset, lag, lagSum           gauge
	rebalances, commits                                     counter
	commitTime                                              fcounter
	buffered                                                gauge
	records, batches, retries, errors, acks                 counter
	ackTime                                                 fcounter
}

// Register creates the instruments on mp's meter for ScopeName and a
// callback reading s.Metrics once per collection. Unregister the
// returned registration to stop it; a closed Stream reports nothing.
func Register(s *stream.Stream, mp metric.MeterProvider) (metric.Registration, error) {
	m := mp.Meter(ScopeName)
	var in instruments
	var errs []error
	g := func(dst *gauge, name, unit, desc string) {
		var err error
		*dst, err = m.Int64ObservableGauge(name, metric.WithUnit(unit), metric.WithDescription(desc))
		errs = append(errs, err)
	}
	c := func(dst *counter, name, unit, desc string) {
		var err error
		*dst, err = m.Int64ObservableCounter(name, metric.WithUnit(unit), metric.WithDescription(desc))
		errs = append(errs, err)
	}
	fc := func(dst *fcounter, name, desc string) {
		var err error
		*dst, err = m.Float64ObservableCounter(name, metric.WithUnit("s"), metric.WithDescription(desc))
		errs = append(errs, err)
	}
	g(&in.start, "stream.partition.log_start_offset", "{offset}", "The first offset kept in the partition.")
	g(&in.end, "stream.partition.log_end_offset", "{offset}", "The next offset the partition assigns.")
	g(&in.hw, "stream.partition.high_watermark", "{offset}", "Records below it are visible to consumers.")
	g(&in.size, "stream.log.size", "By", "Bytes of record batches on disk.")
	g(&in.segments, "stream.log.segments", "{segment}", "Segments of the partition.")
	g(&in.openFiles, "stream.log.open_files", "{file}", "Segment files the partition holds open.")
	g(&in.maps, "stream.log.maps", "{map}", "Memory maps of the partition's segments.")
	g(&in.failed, "stream.log.failed", "1", "1 while the partition refuses writes after a failure.")
	c(&in.fsyncs, "stream.log.fsyncs", "{fsync}", "Fsyncs of the partition's group commit since open.")
	fc(&in.fsyncTime, "stream.log.fsync.duration", "Time spent in those fsyncs.")
	c(&in.writeErrors, "stream.log.write_errors", "{error}", "Failed writes or syncs since open.")
	g(&in.isr, "stream.partition.isr", "{replica}", "In-sync replicas of a replicated partition.")
	g(&in.replicas, "stream.partition.replicas", "{replica}", "Replicas of a replicated partition.")
	g(&in.underReplicated, "stream.partition.under_replicated", "1", "1 on the leader of a partition whose ISR is smaller than its replicas.")
	g(&in.followerLag, "stream.partition.follower_lag", "{record}", "The leader's log end minus a follower's.")
	c(&in.leaderChanges, "stream.partition.leader_changes", "{change}", "New leaders seen by this node since open.")
	g(&in.members, "stream.consumergroup.members", "{member}", "Members of the group open in this process.")
	g(&in.generation, "stream.consumergroup.generation", "{generation}", "The group's generation.")
	c(&in.rebalances, "stream.consumergroup.rebalances", "{rebalance}", "Rebalances since the group was opened.")
	c(&in.commits, "stream.consumergroup.commits", "{commit}", "Offset commits since the group was opened.")
	fc(&in.commitTime, "stream.consumergroup.commit.duration", "Time spent in those commits.")
	g(&in.groupOffset, "stream.consumergroup.current_offset", "{offset}", "The group's committed offset: the next it reads.")
	g(&in.lag, "stream.consumergroup.lag", "{record}", "Records of the partition the group has yet to read.")
	g(&in.lagSum, "stream.consumergroup.lag_sum", "{record}", "The group's lag over all its partitions.")
	c(&in.records, "stream.producer.records", "{record}", "Records the producer got acknowledged.")
	c(&in.batches, "stream.producer.batches", "{batch}", "Batches the producer got acknowledged.")
	c(&in.retries, "stream.producer.retries", "{retry}", "Appends attempted again after a retriable failure.")
	c(&in.errors, "stream.producer.errors", "{batch}", "Batches that failed for good.")
	g(&in.buffered, "stream.producer.buffered", "By", "Buffer reserved by records not yet delivered.")
	c(&in.acks, "stream.producer.acks", "{batch}", "Batches acknowledged or failed: the count of stream.producer.ack.duration.")
	fc(&in.ackTime, "stream.producer.ack.duration", "Summed time from each batch's first send to its acknowledgement.")
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	obs := []metric.Observable{in.start, in.end, in.hw, in.size, in.segments, in.openFiles, in.maps, in.failed,
		in.fsyncs, in.fsyncTime, in.writeErrors, in.isr, in.replicas, in.underReplicated, in.followerLag, in.leaderChanges,
		in.members, in.generation, in.rebalances, in.commits, in.commitTime, in.groupOffset, in.lag, in.lagSum,
		in.records, in.batches, in.retries, in.errors, in.buffered, in.acks, in.ackTime}
	return m.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		in.observe(o, s.Metrics())
		return nil
	}, obs...)
}

func (in *instruments) observe(o metric.Observer, m stream.Metrics) {
	b2i := func(b bool) int64 {
		if b {
			return 1
		}
		return 0
	}
	for _, p := range m.Partitions {
		at := metric.WithAttributes(attribute.String("topic", p.Topic), attribute.Int("partition", int(p.Partition)))
		o.ObserveInt64(in.start, p.StartOffset, at)
		o.ObserveInt64(in.end, p.EndOffset, at)
		o.ObserveInt64(in.hw, p.HighWatermark, at)
		o.ObserveInt64(in.size, int64(p.Bytes), at)
		o.ObserveInt64(in.segments, int64(p.Segments), at)
		o.ObserveInt64(in.openFiles, int64(p.OpenFiles), at)
		o.ObserveInt64(in.maps, int64(p.Maps), at)
		o.ObserveInt64(in.failed, b2i(p.Failed != ""), at)
		o.ObserveInt64(in.fsyncs, int64(p.Fsyncs), at)
		o.ObserveFloat64(in.fsyncTime, p.FsyncLatency.Sum.Seconds(), at)
		o.ObserveInt64(in.writeErrors, int64(p.WriteErrors), at)
		if r := p.Replication; r != nil {
			o.ObserveInt64(in.isr, int64(len(r.ISR)), at)
			o.ObserveInt64(in.replicas, int64(len(r.Replicas)), at)
			o.ObserveInt64(in.underReplicated, b2i(r.UnderReplicated), at)
			o.ObserveInt64(in.leaderChanges, int64(r.LeaderChanges), at)
			for _, f := range r.Followers {
				o.ObserveInt64(in.followerLag, f.Lag, metric.WithAttributes(attribute.String("topic", p.Topic),
					attribute.Int("partition", int(p.Partition)), attribute.Int("follower", int(f.Node))))
			}
		}
	}
	for _, g := range m.Groups {
		at := metric.WithAttributes(attribute.String("consumergroup", g.Group))
		o.ObserveInt64(in.members, int64(g.Members), at)
		o.ObserveInt64(in.generation, g.Generation, at)
		o.ObserveInt64(in.rebalances, int64(g.Rebalances), at)
		o.ObserveInt64(in.commits, int64(g.CommitLatency.Count), at)
		o.ObserveFloat64(in.commitTime, g.CommitLatency.Sum.Seconds(), at)
		o.ObserveInt64(in.lagSum, g.Lag, at)
		for _, p := range g.Partitions {
			pat := metric.WithAttributes(attribute.String("consumergroup", g.Group),
				attribute.String("topic", p.Topic), attribute.Int("partition", int(p.Partition)))
			if p.Committed >= 0 {
				o.ObserveInt64(in.groupOffset, p.Committed, pat)
			}
			o.ObserveInt64(in.lag, p.Lag, pat)
		}
	}
	for _, p := range m.Producers {
		at := metric.WithAttributes(attribute.String("producer", strconv.FormatInt(p.ID, 10)))
		o.ObserveInt64(in.records, int64(p.Records), at)
		o.ObserveInt64(in.batches, int64(p.Batches), at)
		o.ObserveInt64(in.retries, int64(p.Retries), at)
		o.ObserveInt64(in.errors, int64(p.Errors), at)
		o.ObserveInt64(in.buffered, int64(p.BufferedBytes), at)
		o.ObserveInt64(in.acks, int64(p.AckLatency.Count), at)
		o.ObserveFloat64(in.ackTime, p.AckLatency.Sum.Seconds(), at)
	}
}
