// Command scaleplot draws the scale curves of benchmarks/scale.sh: it
// reads the `stream bench -json` reports the script collected, writes an
// SVG with one panel a sweep (throughput and p99 produce latency against
// partitions, producers, consumers and value size, both axes
// logarithmic) and prints a Markdown table a sweep.
//
//	go run ./scaleplot -in scale/results.json -svg scale/scale.svg
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"math"
	"os"
	"strings"
)

// point is one run of a sweep: the fields of stream bench's report used
// here.
type point struct {
	Sweep  string  `json:"sweep"`
	X      float64 `json:"x"`
	Report struct {
		Records int `json:"records"`
		Produce struct {
			RecordsPerSec float64 `json:"records_per_second"`
			MBPerSec      float64 `json:"mb_per_second"`
		} `json:"produce"`
		Consume struct {
			RecordsPerSec float64 `json:"records_per_second"`
			MBPerSec      float64 `json:"mb_per_second"`
		} `json:"consume"`
		Latency struct {
			P99us float64 `json:"p99_us"`
		} `json:"produce_latency"`
	} `json:"report"`
}

// sweep says how a panel reads its points.
type sweep struct {
	name, xLabel string
	mb           bool // throughput in MB/s rather than records/s
}

var sweeps = []sweep{
	{"partitions", "partitions of the topic", false},
	{"producers", "producers (64 partitions)", false},
	{"consumers", "consumers in one group (64 partitions)", false},
	{"size", "value size, bytes (4 partitions)", true},
}

func main() {
	in := flag.String("in", "scale/results.json", "the reports `file` scale.sh wrote")
	svg := flag.String("svg", "scale/scale.svg", "the SVG `file` to write")
	flag.Parse()
	pts, err := readPoints(*in)
	if err != nil {
		log.Fatal(err)
	}
	bySweep := map[string][]point{}
	for _, p := range pts {
		bySweep[p.Sweep] = append(bySweep[p.Sweep], p)
	}
	var b strings.Builder
	drawSVG(&b, bySweep)
	if err := os.WriteFile(*svg, []byte(b.String()), 0o644); err != nil {
		log.Fatal(err)
	}
	printTables(os.Stdout, bySweep)
}

func readPoints(path string) ([]point, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var pts []point
	dec := json.NewDecoder(f)
	for {
		var p point
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			return pts, nil
		} else if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		pts = append(pts, p)
	}
}

// throughput returns a point's produce and consume throughput in the
// panel's unit.
func (s sweep) throughput(p point) (produce, consume float64) {
	if s.mb {
		return p.Report.Produce.MBPerSec, p.Report.Consume.MBPerSec
	}
	return p.Report.Produce.RecordsPerSec, p.Report.Consume.RecordsPerSec
}

func (s sweep) unit() string {
	if s.mb {
		return "MB/s"
	}
	return "records/s"
}

func printTables(w io.Writer, bySweep map[string][]point) {
	for _, s := range sweeps {
		pts := bySweep[s.name]
		if len(pts) == 0 {
			continue
		}
		fmt.Fprintf(w, "\n| %s | records | produce %s | consume %s | p99 produce→ack |\n|--:|--:|--:|--:|--:|\n", s.name, s.unit(), s.unit())
		for _, p := range pts {
			pr, co := s.throughput(p)
			fmt.Fprintf(w, "| %s | %d | %s | %s | %s |\n", xText(p.X), p.Report.Records, num(pr), num(co), ms(p.Report.Latency.P99us))
		}
	}
}

func xText(x float64) string {
	switch {
	case x >= 1<<20 && math.Mod(x, 1<<20) == 0:
		return fmt.Sprintf("%g Mi", x/(1<<20))
	case x >= 1e6 && math.Mod(x, 1e6) == 0:
		return fmt.Sprintf("%g M", x/1e6)
	case x >= 1000 && math.Mod(x, 1000) == 0:
		return fmt.Sprintf("%g k", x/1000)
	}
	return fmt.Sprintf("%g", x)
}

func num(v float64) string {
	switch {
	case v >= 1e6:
		return fmt.Sprintf("%.2f M", v/1e6)
	case v >= 1e4:
		return fmt.Sprintf("%.0f k", v/1e3)
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	}
	return fmt.Sprintf("%.1f", v)
}

func ms(us float64) string {
	if us >= 1000 {
		return fmt.Sprintf("%.0f ms", us/1000)
	}
	return fmt.Sprintf("%.2f ms", us/1000)
}

// Panel geometry.
const (
	panelW, panelH = 460, 300
	left, right    = 70, 70
	top, bottom    = 40, 50
	cols           = 2
)

// logAxis maps values onto [0, 1] between decades around lo and hi.
type logAxis struct{ lo, hi float64 }

func newLogAxis(vals []float64) logAxis {
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, v := range vals {
		if v > 0 {
			lo, hi = min(lo, v), max(hi, v)
		}
	}
	if math.IsInf(lo, 1) {
		lo, hi = 1, 10
	}
	lo, hi = math.Pow(10, math.Floor(math.Log10(lo))), math.Pow(10, math.Ceil(math.Log10(hi)))
	if hi <= lo {
		hi = lo * 10
	}
	return logAxis{lo, hi}
}

func (a logAxis) at(v float64) float64 {
	v = max(v, a.lo)
	return (math.Log10(v) - math.Log10(a.lo)) / (math.Log10(a.hi) - math.Log10(a.lo))
}

func (a logAxis) decades() []float64 {
	var d []float64
	for v := a.lo; v <= a.hi*1.0001; v *= 10 {
		d = append(d, v)
	}
	return d
}

func drawSVG(b *strings.Builder, bySweep map[string][]point) {
	rows := (len(sweeps) + cols - 1) / cols
	fmt.Fprintf(b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" font-size="11">`+"\n", cols*panelW, rows*panelH+30)
	fmt.Fprintf(b, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	legend := []struct{ color, dash, text string }{
		{"#1f77b4", "", "produce throughput (left axis)"},
		{"#2ca02c", "", "consume throughput (left axis)"},
		{"#d62728", "5,3", "p99 produce→ack latency, ms (right axis)"},
	}
	for i, l := range legend {
		x := 20 + i*300
		fmt.Fprintf(b, `<line x1="%d" y1="15" x2="%d" y2="15" stroke="%s" stroke-width="2" stroke-dasharray="%s"/><text x="%d" y="19">%s</text>`+"\n", x, x+25, l.color, l.dash, x+30, l.text)
	}
	for i, s := range sweeps {
		ox, oy := float64((i%cols)*panelW), float64(30+(i/cols)*panelH)
		drawPanel(b, s, bySweep[s.name], ox, oy)
	}
	b.WriteString("</svg>\n")
}

func drawPanel(b *strings.Builder, s sweep, pts []point, ox, oy float64) {
	w, h := float64(panelW-left-right), float64(panelH-top-bottom)
	x0, y0 := ox+left, oy+top
	fmt.Fprintf(b, `<text x="%.0f" y="%.0f" font-size="13" font-weight="bold">%s</text>`+"\n", x0, oy+25, s.xLabel)
	if len(pts) == 0 {
		return
	}
	var xs, thr, lat []float64
	for _, p := range pts {
		pr, co := s.throughput(p)
		xs = append(xs, p.X)
		thr = append(thr, pr, co)
		lat = append(lat, p.Report.Latency.P99us/1000)
	}
	ax, ay, al := newLogAxis(xs), newLogAxis(thr), newLogAxis(lat)
	X := func(v float64) float64 { return x0 + ax.at(v)*w }
	Y := func(a logAxis, v float64) float64 { return y0 + h - a.at(v)*h }
	fmt.Fprintf(b, `<rect x="%.0f" y="%.0f" width="%.0f" height="%.0f" fill="none" stroke="#888"/>`+"\n", x0, y0, w, h)
	for _, d := range ax.decades() {
		fmt.Fprintf(b, `<line x1="%.1f" y1="%.0f" x2="%.1f" y2="%.0f" stroke="#eee"/><text x="%.1f" y="%.0f" text-anchor="middle">%s</text>`+"\n", X(d), y0, X(d), y0+h, X(d), y0+h+15, xText(d))
	}
	for _, d := range ay.decades() {
		fmt.Fprintf(b, `<line x1="%.0f" y1="%.1f" x2="%.0f" y2="%.1f" stroke="#eee"/><text x="%.0f" y="%.1f" text-anchor="end">%s</text>`+"\n", x0, Y(ay, d), x0+w, Y(ay, d), x0-5, Y(ay, d)+4, num(d))
	}
	for _, d := range al.decades() {
		fmt.Fprintf(b, `<text x="%.0f" y="%.1f" fill="#d62728">%s</text>`+"\n", x0+w+5, Y(al, d)+4, strings.TrimSuffix(ms(d*1000), " ms"))
	}
	fmt.Fprintf(b, `<text x="%.0f" y="%.0f" text-anchor="middle" transform="rotate(-90 %.0f %.0f)">%s</text>`+"\n", ox+15, y0+h/2, ox+15, y0+h/2, s.unit())
	fmt.Fprintf(b, `<text x="%.0f" y="%.0f" text-anchor="middle" fill="#d62728" transform="rotate(90 %.0f %.0f)">p99 ms</text>`+"\n", x0+w+55, y0+h/2, x0+w+55, y0+h/2)
	line := func(color, dash string, at func(p point) (float64, float64)) {
		var d strings.Builder
		for i, p := range pts {
			x, y := at(p)
			fmt.Fprintf(&d, "%s%.1f,%.1f", map[bool]string{true: "M", false: " L"}[i == 0], x, y)
		}
		fmt.Fprintf(b, `<path d="%s" fill="none" stroke="%s" stroke-width="2" stroke-dasharray="%s"/>`+"\n", d.String(), color, dash)
		for _, p := range pts {
			x, y := at(p)
			fmt.Fprintf(b, `<circle cx="%.1f" cy="%.1f" r="3" fill="%s"/>`+"\n", x, y, color)
		}
	}
	line("#1f77b4", "", func(p point) (float64, float64) { pr, _ := s.throughput(p); return X(p.X), Y(ay, pr) })
	line("#2ca02c", "", func(p point) (float64, float64) { _, co := s.throughput(p); return X(p.X), Y(ay, co) })
	line("#d62728", "5,3", func(p point) (float64, float64) { return X(p.X), Y(al, p.Report.Latency.P99us/1000) })
}
