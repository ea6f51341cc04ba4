package debughttp

import (
	"fmt"
	"html/template"
	"strings"
	"time"

	"github.com/instream/stream"
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
	"nodes": func(ids []stream.NodeID) string {
		s := make([]string, len(ids))
		for i, id := range ids {
			s[i] = fmt.Sprint(id)
		}
		return strings.Join(s, ", ")
	},
	"replicated": func(ps []stream.PartitionMetrics) bool {
		for _, p := range ps {
			if p.Replication != nil {
				return true
			}
		}
		return false
	},
}

const style = `<style>
body{font-family:system-ui,sans-serif;margin:1.5em;color:#222}
table{border-collapse:collapse;margin-bottom:1.5em}
th,td{border:1px solid #ccc;padding:.25em .6em;text-align:right;vertical-align:top}
th{background:#f3f3f3}td.l,th.l{text-align:left}
pre{margin:0;white-space:pre-wrap;word-break:break-all;text-align:left;max-width:60em}
.bad{color:#b00;font-weight:bold}.dim{color:#888}
form{margin-bottom:1em}
.charts{display:flex;flex-wrap:wrap;gap:1.5em}.charts h3{margin:.2em 0}
</style>`

// refresh is the page's only script: reload every 5 seconds while the
// box is ticked, remembered in the URL's fragment. It marks the box
// data-ready, which the browser test looks for.
const refresh = `<label><input type="checkbox" id="refresh"> refresh every 5s</label>
<script>
(function(){var b=document.getElementById("refresh");b.checked=location.hash=="#refresh";
var t;function arm(){clearTimeout(t);if(b.checked){t=setTimeout(function(){location.reload()},5000)}}
b.onchange=function(){location.hash=b.checked?"refresh":"";arm()};arm();b.dataset.ready="1"})();
</script>`

var overviewPage = template.Must(template.New("overview").Funcs(funcs).Parse(`<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>stream</title>` + style + `</head><body>
{{with .Metrics}}
<h1>stream</h1>
<p>Snapshot at {{time .Time}} · <a href="?format=json">JSON</a> ·
{{.Totals.Topics}} topics, {{.Totals.Partitions}} partitions, {{.Totals.Segments}} segments,
{{.Totals.Bytes}}, {{.Totals.Records}} records, {{.Totals.Groups}} groups
{{if .Totals.FailedPartitions}}· <span class="bad">{{.Totals.FailedPartitions}} failed partitions</span>{{end}}
{{if .Totals.UnderReplicated}}· <span class="bad">{{.Totals.UnderReplicated}} under-replicated</span>{{end}}
· {{.Totals.OpenFiles}} open files, {{.Totals.Maps}} maps · ` + refresh + `</p>
{{end}}
{{with .Charts}}<div class="charts" id="charts">
<div><h3>Throughput</h3>{{if .Throughput}}{{.Throughput}}{{else}}<p class="dim">collecting samples…</p>{{end}}</div>
<div><h3>Consumer lag</h3>{{if .Lag}}{{.Lag}}{{else}}<p class="dim">no groups yet, or collecting samples…</p>{{end}}</div>
</div>
<p class="dim">{{.Samples}} samples over {{.Span}} · <a href="?view=history&amp;format=json">history JSON</a></p>{{end}}
{{with .Cluster}}
<h2>Cluster</h2>
<p>This node {{.NodeID}} · controller {{if .Controller}}{{.Controller}}{{else}}<span class="bad">none known</span>{{end}}</p>
<table id="nodes"><tr><th>node</th><th class="l">state</th><th class="l">last heard</th></tr>
{{range .Nodes}}<tr><td>{{.ID}}</td><td class="l">{{if .Alive}}alive{{else}}<span class="bad">down</span>{{end}}</td><td class="l">{{time .LastHeard}}</td></tr>{{end}}
</table>
{{end}}
{{with .Metrics}}

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

{{if replicated .Partitions}}
<h2>Replication</h2>
<table id="replication">
<tr><th class="l">topic</th><th>partition</th><th>leader</th><th>epoch</th><th class="l">replicas</th><th class="l">ISR</th><th>leader changes</th><th class="l">followers (lag in records)</th></tr>
{{range .Partitions}}{{if .Replication}}<tr><td class="l">{{.Topic}}</td><td>{{.Partition}}</td>{{with .Replication}}
<td>{{if .Leader}}{{.Leader}}{{if .Leading}} (this node){{end}}{{else}}<span class="bad">none</span>{{end}}</td><td>{{.LeaderEpoch}}</td>
<td class="l">{{nodes .Replicas}}</td><td class="l">{{nodes .ISR}}{{if .UnderReplicated}} <span class="bad">under-replicated</span>{{end}}</td><td>{{.LeaderChanges}}</td>
<td class="l">{{range .Followers}}<div>{{.Node}}: {{if lt .EndOffset 0}}<span class="dim">not fetched yet</span>{{else}}{{.Lag}}{{end}}{{if not .InSync}} <span class="bad">out of sync</span>{{end}}</div>{{end}}</td>
{{end}}</tr>{{end}}{{end}}
</table>
{{end}}

{{if .Producers}}
<h2>Producers</h2>
<table id="producers">
<tr><th>ID</th><th>records</th><th>batches</th><th>retries</th><th>errors</th><th>buffered</th><th>ack mean</th></tr>
{{range .Producers}}<tr><td>{{.ID}}</td><td>{{.Records}}</td><td>{{.Batches}}</td><td>{{.Retries}}</td><td>{{.Errors}}</td>
<td>{{.BufferedBytes}} of {{.BufferBytes}}</td><td>{{ms (avg .AckLatency.Sum .AckLatency.Count)}}</td></tr>{{end}}
</table>
{{end}}

<h2>Consumer groups</h2>
{{range .Groups}}
<h3>{{.Group}}</h3>
<p>{{if .Open}}open in this process, {{.Members}} members{{else}}not open in this process{{end}},
generation {{.Generation}}, total lag {{.Lag}}, {{.Rebalances}} rebalances,
commit mean {{ms (avg .CommitLatency.Sum .CommitLatency.Count)}}{{if .CommitErrors}}, <span class="bad">{{.CommitErrors}} failed commits</span>{{end}}</p>
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

var historyPage = template.Must(template.New("history").Funcs(funcs).Parse(`<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>history · stream</title>` + style + `</head><body>
<p><a href="?">← overview</a></p>
<table id="history"><tr><th class="l">time</th><th>records appended</th><th>bytes</th><th class="l">lag by group</th></tr>
{{range .Samples}}<tr><td class="l">{{time .Time}}</td><td>{{.Records}}</td><td>{{.Bytes}}</td><td class="l">{{range $g, $l := .Lag}}{{$g}}: {{$l}} {{end}}</td></tr>{{end}}
</table></body></html>
`))
