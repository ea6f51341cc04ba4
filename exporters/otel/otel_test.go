package otel_test

import (
	"context"
	"testing"

	"github.com/instream/stream"
	streamotel "github.com/instream/stream/exporters/otel"
	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
)

// TestRegister collects from a real SDK through a ManualReader: every
// documented instrument of a single node reports, with the values of
// Stream.Metrics, and nothing after Unregister.
func TestRegister(t *testing.T) {
	s, err := stream.Open(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	tp, err := s.CreateTopic("orders", stream.TopicConfig{Partitions: 2})
	if err != nil {
		t.Fatal(err)
	}
	p, _ := tp.Partition(1)
	for range 5 {
		if _, err := p.Append(&stream.Record{Value: []byte("x")}); err != nil {
			t.Fatal(err)
		}
	}
	ctx := context.Background()
	g, err := s.ConsumerGroup("billing", stream.GroupConfig{Topics: []string{"orders"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := g.ResetOffsets(ctx, map[stream.TopicPartition]int64{{Topic: "orders", Partition: 1}: 2}); err != nil {
		t.Fatal(err)
	}
	pr, err := s.NewProducer(stream.ProducerConfig{Partitioner: stream.ManualPartitioner})
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	if err := pr.Send(ctx, &stream.Record{Topic: "orders", Partition: 0, Value: []byte("y")}); err != nil {
		t.Fatal(err)
	}

	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	defer mp.Shutdown(ctx)
	reg, err := streamotel.Register(s, mp)
	if err != nil {
		t.Fatal(err)
	}
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(ctx, &rm); err != nil {
		t.Fatal(err)
	}
	got := points(t, rm)
	orders1 := attrs("topic", "orders", "partition", 1)
	billing := attrs("consumergroup", "billing")
	for _, w := range []struct {
		name  string
		at    string
		value float64
	}{
		{"stream.partition.log_start_offset", orders1, 0},
		{"stream.partition.log_end_offset", orders1, 5},
		{"stream.partition.high_watermark", orders1, 5},
		{"stream.log.segments", orders1, 1},
		{"stream.log.failed", orders1, 0},
		{"stream.log.write_errors", orders1, 0},
		{"stream.consumergroup.members", billing, 0},
		{"stream.consumergroup.lag_sum", billing, 3},
		{"stream.consumergroup.lag", attrs("consumergroup", "billing", "topic", "orders", "partition", 1), 3},
		{"stream.consumergroup.current_offset", attrs("consumergroup", "billing", "topic", "orders", "partition", 1), 2},
		{"stream.producer.records", attrs("producer", "1"), 1},
		{"stream.producer.batches", attrs("producer", "1"), 1},
		{"stream.producer.errors", attrs("producer", "1"), 0},
		{"stream.producer.acks", attrs("producer", "1"), 1},
	} {
		v, ok := got[w.name][w.at]
		if !ok || v != w.value {
			t.Errorf("%s{%s} = %v (reported: %v), want %v; all: %v", w.name, w.at, v, ok, w.value, got[w.name])
		}
	}
	for _, name := range []string{"stream.log.size", "stream.log.fsyncs", "stream.log.fsync.duration", "stream.log.open_files"} {
		if v := got[name][orders1]; v <= 0 {
			t.Errorf("%s{%s} = %v, want > 0", name, orders1, v)
		}
	}
	if v := got["stream.producer.ack.duration"][attrs("producer", "1")]; v <= 0 {
		t.Errorf("stream.producer.ack.duration = %v, want > 0", v)
	}

	if err := reg.Unregister(); err != nil {
		t.Fatal(err)
	}
	rm = metricdata.ResourceMetrics{}
	if err := reader.Collect(ctx, &rm); err != nil {
		t.Fatal(err)
	}
	if n := len(points(t, rm)); n != 0 {
		t.Errorf("after Unregister: %d instruments reported", n)
	}
}

// attrs renders key/value pairs as points' keys do.
func attrs(kv ...any) string {
	var list []attribute.KeyValue
	for i := 0; i < len(kv); i += 2 {
		k := kv[i].(string)
		switch v := kv[i+1].(type) {
		case string:
			list = append(list, attribute.String(k, v))
		case int:
			list = append(list, attribute.Int(k, v))
		}
	}
	set := attribute.NewSet(list...)
	return set.Encoded(attribute.DefaultEncoder())
}

// points maps instrument name → attributes → value.
func points(t *testing.T, rm metricdata.ResourceMetrics) map[string]map[string]float64 {
	t.Helper()
	out := map[string]map[string]float64{}
	for _, sm := range rm.ScopeMetrics {
		if sm.Scope.Name != streamotel.ScopeName {
			t.Errorf("scope %q, want %q", sm.Scope.Name, streamotel.ScopeName)
		}
		for _, m := range sm.Metrics {
			vals := map[string]float64{}
			switch d := m.Data.(type) {
			case metricdata.Gauge[int64]:
				for _, p := range d.DataPoints {
					vals[p.Attributes.Encoded(attribute.DefaultEncoder())] = float64(p.Value)
				}
			case metricdata.Sum[int64]:
				if !d.IsMonotonic {
					t.Errorf("%s: a counter that is not monotonic", m.Name)
				}
				for _, p := range d.DataPoints {
					vals[p.Attributes.Encoded(attribute.DefaultEncoder())] = float64(p.Value)
				}
			case metricdata.Sum[float64]:
				for _, p := range d.DataPoints {
					vals[p.Attributes.Encoded(attribute.DefaultEncoder())] = p.Value
				}
			default:
				t.Errorf("%s: unexpected data %T", m.Name, m.Data)
			}
			if len(vals) > 0 {
				out[m.Name] = vals
			}
		}
	}
	return out
}
