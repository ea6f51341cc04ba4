package debughttp

import (
	"fmt"
	"html/template"
	"time"
)

var funcs = template.FuncMap{
	"ms": func(d time.Duration) string {
		return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond))
	},
	// avg is a histogram's mean.
	"avg": func(sum time.Duration, n uint64) time.Duration {
		if n == 0 {
			return 0
		}
		return sum / time.Duration(n)
	},
	"time": func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05.000Z") },
}

const style = `<style>
body{font-family:system-ui,sans-serif;margin:1.5em;color:#222}
table{border-collapse:collapse;margin-bottom:1.5em}
th,td{border:1px solid #ccc;padding:.25em .6em;text-align:right;vertical-align:top}
th{background:#f3f3f3}td.l,th.l{text-align:left}
pre{margin:0;white-space:pre-wrap;word-break:break-all;text-align:left;max-width:60em}
.bad{color:#b00;font-weight:bold}.dim{color:#888}
form{margin-bottom:1em}
</style>`

var overviewPage = template.Must(template.New("overview").Funcs(funcs).Parse(`<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>stream</title>` + style + `</head><body>
{{with .Metrics}}
<h1>stream</h1>
<p>Snapshot at {{time .Time}} · <a href="?format=json">JSON</a> ·
{{.Totals.Topics}} topics, {{.Totals.Partitions}} partitions, {{.Totals.Segments}} segments,
{{.Totals.Bytes}}, {{.Totals.Records}} records, {{.Totals.Groups}} groups
{{if .Totals.FailedPartitions}}· <span class="bad">{{.Totals.FailedPartitions}} failed partitions</span>{{end}}</p>

<h2>Partitions</h2>
<table id="partitions">
<tr><th class="l">topic</th><th>partition</th><th>start</th><th>end</th><th>high watermark</th><th>records</th><th>bytes</th><th>segments</th><th>fsyncs</th><th>fsync mean</th><th>write errors</th><th class="l">state</th></tr>
{{range .Partitions}}<tr>
<td class="l">{{.Topic}}</td><td>{{.Partition}}</td><td>{{.StartOffset}}</td><td>{{.EndOffset}}</td><td>{{.HighWatermark}}</td>
<td><a href="?view=records&amp;topic={{.Topic}}&amp;partition={{.Partition}}&amp;offset={{.StartOffset}}">browse</a></td>
<td>{{.Bytes}}</td><td>{{.Segments}}</td><td>{{.Fsyncs}}</td><td>{{ms (avg .FsyncLatency.Sum .FsyncLatency.Count)}}</td><td>{{.WriteErrors}}</td>
<td class="l">{{if .Failed}}<span class="bad">failed: {{.Failed}}</span>{{else}}ok{{end}}</td>
</tr>{{else}}<tr><td class="l" colspan="12">no topics</td></tr>{{end}}
</table>

<h2>Consumer groups</h2>
{{range .Groups}}
<h3>{{.Group}}</h3>
<p>{{if .Open}}open in this process, {{.Members}} members{{else}}not open in this process{{end}},
generation {{.Generation}}, total lag {{.Lag}}</p>
<table class="group">
<tr><th class="l">topic</th><th>partition</th><th>committed</th><th>lag</th></tr>
{{range .Partitions}}<tr><td class="l">{{.Topic}}</td><td>{{.Partition}}</td>
<td>{{if lt .Committed 0}}<span class="dim">none</span>{{else}}{{.Committed}}{{end}}</td><td>{{.Lag}}</td></tr>
{{end}}</table>
{{else}}<p>No consumer groups.</p>{{end}}
{{end}}
</body></html>
`))

var recordsPage = template.Must(template.New("records").Funcs(funcs).Parse(`<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>{{.Topic}}-{{.Partition}} · stream</title>` + style + `</head><body>
<p><a href="?">← overview</a></p>
<h1>{{.Topic}}-{{.Partition}}</h1>
<p>Offsets [{{.StartOffset}}, {{.HighWatermark}}) kept · showing from {{.Offset}}</p>
<form method="get">
<input type="hidden" name="view" value="records">
<input type="hidden" name="topic" value="{{.Topic}}">
<input type="hidden" name="partition" value="{{.Partition}}">
offset <input name="offset" value="{{.Offset}}" size="10">
as <select name="as">{{$as := .As}}
<option{{if eq $as "auto"}} selected{{end}}>auto</option>
<option{{if eq $as "text"}} selected{{end}}>text</option>
<option{{if eq $as "json"}} selected{{end}}>json</option>
<option{{if eq $as "hex"}} selected{{end}}>hex</option>
</select>
<button>show</button>
</form>
<form method="get">
<input type="hidden" name="view" value="records">
<input type="hidden" name="topic" value="{{.Topic}}">
<input type="hidden" name="partition" value="{{.Partition}}">
first record at or after <input name="time" placeholder="2006-01-02T15:04:05Z" size="24">
<button>find</button>
</form>
<table id="records">
<tr><th>offset</th><th class="l">timestamp</th><th class="l">key</th><th class="l">value</th><th class="l">headers</th></tr>
{{range .Records}}<tr class="record">
<td>{{.Offset}}</td><td class="l">{{time .Timestamp}}</td>
<td class="l">{{template "bytes" .Key}}</td><td class="l">{{template "bytes" .Value}}</td>
<td class="l">{{range .Headers}}<div>{{.Key}}: {{template "bytes" .Value}}</div>{{end}}</td>
</tr>{{else}}<tr><td class="l" colspan="5">no records from offset {{.Offset}}</td></tr>{{end}}
</table>
{{if lt .Next .HighWatermark}}<p><a href="?view=records&amp;topic={{.Topic}}&amp;partition={{.Partition}}&amp;offset={{.Next}}&amp;as={{.As}}">next →</a></p>{{end}}
<p><a href="?view=records&amp;topic={{.Topic}}&amp;partition={{.Partition}}&amp;offset={{.Offset}}&amp;as={{.As}}&amp;format=json">JSON</a></p>
</body></html>
{{define "bytes"}}{{if .Null}}<span class="dim">null</span>{{else}}<pre>{{.Text}}</pre>{{if .Cut}}<span class="dim">… {{.Len}} bytes in all</span>{{end}}{{end}}{{end}}
`))
