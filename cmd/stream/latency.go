package main

import (
	"slices"
	"time"
)

// latencySummary is the distribution of produce→acknowledgement times:
// from the SendAsync of a record to its delivery callback.
type latencySummary struct {
	Records int64   `json:"records"`
	P50us   float64 `json:"p50_us"`
	P99us   float64 `json:"p99_us"`
	P999us  float64 `json:"p999_us"`
	MaxUs   float64 `json:"max_us"`
}

// summarize sorts ds and returns its percentiles (nearest rank).
func summarize(ds []time.Duration) latencySummary {
	if len(ds) == 0 {
		return latencySummary{}
	}
	slices.Sort(ds)
	at := func(q float64) float64 {
		i := int(q*float64(len(ds))+0.5) - 1
		i = min(max(i, 0), len(ds)-1)
		return float64(ds[i].Nanoseconds()) / 1e3
	}
	return latencySummary{Records: int64(len(ds)), P50us: at(0.50), P99us: at(0.99), P999us: at(0.999), MaxUs: at(1)}
}

// String prints the percentiles for people.
func (l latencySummary) String() string {
	us := func(v float64) string { return fmtDuration(time.Duration(v * 1e3)) }
	return "p50 " + us(l.P50us) + ", p99 " + us(l.P99us) + ", p99.9 " + us(l.P999us) + ", max " + us(l.MaxUs)
}
