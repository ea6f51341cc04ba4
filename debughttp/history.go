package debughttp

import (
	"fmt"
	"html/template"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/instream/stream"
)

// Sample is one point of the page's history: the stream's totals at
// Time, and each group's lag.
type Sample struct {
	Time    time.Time
	Records int64            // appended since the topics were created: the sum of log end offsets
	Bytes   stream.ByteSize  // on disk
	Lag     map[string]int64 // by group
}

// history is a ring of samples, oldest first once full.
type history struct {
	mu      sync.Mutex // guards samples and next
	samples []Sample
	next    int // where the next sample goes once the ring is full
	max     int
}

func (h *history) add(m stream.Metrics) {
	if m.Time.IsZero() {
		return // the stream is closed
	}
	s := Sample{Time: m.Time, Bytes: m.Totals.Bytes, Lag: make(map[string]int64, len(m.Groups))}
	for _, p := range m.Partitions {
		s.Records += p.EndOffset
	}
	for _, g := range m.Groups {
		s.Lag[g.Group] = g.Lag
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.samples) < h.max {
		h.samples = append(h.samples, s)
		return
	}
	h.samples[h.next] = s
	h.next = (h.next + 1) % h.max
}

// list returns the samples, oldest first.
func (h *history) list() []Sample {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append(slices.Clone(h.samples[h.next:]), h.samples[:h.next]...)
}

// sampler adds a sample every interval until stop is closed.
func (p *Page) sampler(interval time.Duration) {
	defer close(p.done)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-p.stop:
			return
		case <-t.C:
			p.hist.add(p.s.Metrics())
		}
	}
}

// Charts are the page's two charts of its history, as inline SVG.
type Charts struct {
	Throughput template.HTML // records appended per second
	Lag        template.HTML // each group's lag
	Span       time.Duration // from the oldest sample to the newest
	Samples    int
}

// chart sizes, in SVG units.
const (
	chartW, chartH = 600.0, 140.0
	chartPad       = 4.0
)

var chartColors = []string{"#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"}

// charts draws the samples.
func charts(samples []Sample) Charts {
	c := Charts{Samples: len(samples)}
	if len(samples) < 2 {
		return c
	}
	c.Span = samples[len(samples)-1].Time.Sub(samples[0].Time).Round(time.Second)
	var rate []float64
	for i := 1; i < len(samples); i++ {
		dt := samples[i].Time.Sub(samples[i-1].Time).Seconds()
		d := float64(samples[i].Records - samples[i-1].Records)
		if dt <= 0 || d < 0 { // a deleted topic
			d = 0
		}
		if dt <= 0 {
			dt = 1
		}
		rate = append(rate, d/dt)
	}
	c.Throughput = svg("records/s", []series{{"appended", rate}})
	groups := map[string]bool{}
	for _, s := range samples {
		for g := range s.Lag {
			groups[g] = true
		}
	}
	var lags []series
	for _, g := range slices.Sorted(func(yield func(string) bool) {
		for g := range groups {
			if !yield(g) {
				return
			}
		}
	}) {
		v := make([]float64, len(samples))
		for i, s := range samples {
			v[i] = float64(s.Lag[g])
		}
		lags = append(lags, series{g, v})
	}
	if len(lags) > len(chartColors) {
		lags = lags[:len(chartColors)]
	}
	c.Lag = svg("records of lag", lags)
	return c
}

type series struct {
	name   string
	values []float64
}

// svg draws series as polylines on a shared scale from 0, with the
// maximum and a legend.
func svg(unit string, ss []series) template.HTML {
	top := 0.0
	for _, s := range ss {
		for _, v := range s.values {
			top = max(top, v)
		}
	}
	if top == 0 {
		top = 1
	}
	var b strings.Builder
	fmt.Fprintf(&b, `<svg class="chart" viewBox="0 0 %g %g" width="%g" height="%g" role="img" aria-label="%s">`,
		chartW, chartH+20, chartW, chartH+20, template.HTMLEscapeString(unit))
	fmt.Fprintf(&b, `<rect x="0" y="0" width="%g" height="%g" fill="#fafafa" stroke="#ccc"/>`, chartW, chartH)
	fmt.Fprintf(&b, `<text x="%g" y="12" font-size="11" fill="#555">max %s %s</text>`, chartPad, formatNumber(top), template.HTMLEscapeString(unit))
	legend := chartPad
	for i, s := range ss {
		color := chartColors[i%len(chartColors)]
		var pts strings.Builder
		n := len(s.values)
		for j, v := range s.values {
			x := chartPad
			if n > 1 {
				x += float64(j) / float64(n-1) * (chartW - 2*chartPad)
			}
			y := chartH - chartPad - v/top*(chartH-2*chartPad-14)
			fmt.Fprintf(&pts, "%.1f,%.1f ", x, y)
		}
		fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="1.5" points="%s"/>`, color, strings.TrimSpace(pts.String()))
		fmt.Fprintf(&b, `<text x="%g" y="%g" font-size="11" fill="%s">■ %s</text>`, legend, chartH+15, color, template.HTMLEscapeString(s.name))
		legend += 14 + 7*float64(len(s.name)+2)
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}

func formatNumber(v float64) string {
	switch {
	case v >= 1e6:
		return fmt.Sprintf("%.1fM", v/1e6)
	case v >= 1e4:
		return fmt.Sprintf("%.0fk", v/1e3)
	case v == float64(int64(v)):
		return fmt.Sprintf("%d", int64(v))
	}
	return fmt.Sprintf("%.1f", v)
}
