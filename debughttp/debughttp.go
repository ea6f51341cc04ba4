// Package debughttp serves a read-only page about a running
// stream.Stream, to mount next to net/http/pprof:
//
//	mux.Handle("/debug/stream", debughttp.Handler(s, nil))
//
// The page lists topics and partitions with their offsets, sizes, fsync
// counts and failures, and consumer groups with their members, committed
// offsets and lag per partition (Stream.Metrics). Its record browser
// (?view=records&topic=T&partition=P&offset=O, or &time=RFC3339 instead
// of offset) shows records with keys and values as text, JSON or hex
// (&as=base64 gives programs the exact bytes).
// Every view also answers ?format=json with the same data as JSON.
//
// The overview also charts throughput (records appended per second) and
// each group's lag over the last minutes, from a ring of Metrics samples
// the page keeps: New samples every Options.SampleInterval on a goroutine
// of its own until Close; Handler, which has no Close, samples only when
// the overview is asked for. With replication, it shows each partition's
// leader, ISR and followers' lag, and the cluster's nodes.
//
// The page is plain server-rendered HTML with inline SVG and one line of
// script (an optional auto-refresh); links are relative query strings,
// so it works under any mount path. It never writes to the stream. It
// has no authentication: serve it on a loopback or otherwise protected
// address, as pprof.
package debughttp

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/instream/stream"
)

// Options configure Handler. The zero value (or nil) works.
type Options struct {
	// MaxRecords caps the records one browser page shows. Default 100.
	MaxRecords int
	// MaxValueBytes caps the bytes of a key, value or header shown per
	// record; the rest is cut and marked. Default 4096.
	MaxValueBytes int
	// SampleInterval is how often New's page samples Metrics for its
	// charts. Default 5s.
	SampleInterval time.Duration
	// History is how far back the charts go. Default 10 minutes.
	History time.Duration
}

func (o *Options) withDefaults() Options {
	var c Options
	if o != nil {
		c = *o
	}
	if c.MaxRecords <= 0 {
		c.MaxRecords = 100
	}
	if c.MaxValueBytes <= 0 {
		c.MaxValueBytes = 4096
	}
	if c.SampleInterval <= 0 {
		c.SampleInterval = 5 * time.Second
	}
	if c.History <= 0 {
		c.History = 10 * time.Minute
	}
	return c
}

// Handler returns the debug page of s. Only GET and HEAD are answered.
// It starts no goroutine: its charts get a sample each time the overview
// is shown. New's page samples on its own.
func Handler(s *stream.Stream, opts *Options) http.Handler {
	return newPage(s, opts)
}

// New returns the debug page of s, sampling s.Metrics every
// Options.SampleInterval for its charts until Close. Close it before
// closing s.
func New(s *stream.Stream, opts *Options) *Page {
	p := newPage(s, opts)
	p.stop, p.done = make(chan struct{}), make(chan struct{})
	p.hist.add(s.Metrics())
	go p.sampler(p.opts.SampleInterval)
	return p
}

func newPage(s *stream.Stream, opts *Options) *Page {
	o := opts.withDefaults()
	n := max(2, int(o.History/o.SampleInterval)+1)
	return &Page{s: s, opts: o, hist: &history{max: n}}
}

// Page is the debug page of a Stream, an http.Handler.
type Page struct {
	s    *stream.Stream
	opts Options
	hist *history

	stop, done chan struct{} // New's sampler; nil for Handler's page
	closeOnce  sync.Once
}

// Close stops the page's sampling; it keeps answering requests. It
// returns nil, also when called again.
func (h *Page) Close() error {
	if h.stop != nil {
		h.closeOnce.Do(func() {
			close(h.stop)
			<-h.done
		})
	}
	return nil
}

// httpError is a failure shown to the client with its status.
type httpError struct {
	status int
	msg    string
}

func (e *httpError) Error() string { return e.msg }

func badRequest(format string, args ...any) error {
	return &httpError{http.StatusBadRequest, fmt.Sprintf(format, args...)}
}

func (h *Page) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "debughttp: read-only: only GET and HEAD", http.StatusMethodNotAllowed)
		return
	}
	q := r.URL.Query()
	asJSON := q.Get("format") == "json"
	var (
		data any
		tmpl *template.Template
		err  error
	)
	switch view := q.Get("view"); view {
	case "", "overview":
		data, tmpl = h.overview(), overviewPage
	case "records":
		data, err = h.records(q.Get("topic"), q.Get("partition"), q.Get("offset"), q.Get("time"), q.Get("limit"), q.Get("as"))
		tmpl = recordsPage
	case "history":
		data, tmpl = History{Samples: h.hist.list()}, historyPage
	default:
		err = badRequest("unknown view %q: want overview, records or history", view)
	}
	if err != nil {
		status := http.StatusInternalServerError
		var he *httpError
		if errors.As(err, &he) {
			status = he.status
		}
		if asJSON {
			writeJSON(w, status, map[string]string{"error": err.Error()})
			return
		}
		http.Error(w, err.Error(), status)
		return
	}
	if asJSON {
		writeJSON(w, http.StatusOK, data)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	if err := tmpl.Execute(w, data); err != nil {
		// The header is sent; all that is left is to cut the page short.
		fmt.Fprintf(w, "\n<p>debughttp: render: %s</p>", template.HTMLEscapeString(err.Error()))
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

// Overview is the data of the main view, and its JSON.
type Overview struct {
	Metrics stream.Metrics
	Cluster *Cluster `json:",omitempty"` // nil on a single node
	Charts  Charts   `json:"-"`
}

// Cluster is the cluster as this node sees it.
type Cluster struct {
	NodeID     stream.NodeID
	Controller stream.NodeID // 0 while none is known
	Nodes      []stream.NodeState
}

// History is the data of the history view: the samples behind the
// charts, oldest first.
type History struct {
	Samples []Sample
}

func (h *Page) overview() Overview {
	o := Overview{Metrics: h.s.Metrics()}
	if h.stop == nil {
		h.hist.add(o.Metrics)
	}
	o.Charts = charts(h.hist.list())
	if c := h.s.Cluster(); c != nil {
		o.Cluster = &Cluster{NodeID: c.NodeID(), Controller: c.Controller(), Nodes: c.Nodes()}
	}
	return o
}

// Records is the data of the record browser, and its JSON.
type Records struct {
	Topic         string
	Partition     int32
	Offset        int64 // the first offset asked for
	StartOffset   int64
	HighWatermark int64
	As            string // text, json, hex or auto
	Records       []Record
	Next          int64 // the offset to ask for to continue; HighWatermark at the end
}

// Record is one record of the browser, its key, value and headers
// rendered as text.
type Record struct {
	Offset    int64
	Timestamp time.Time
	Key       Bytes
	Value     Bytes
	Headers   []HeaderText
}

// HeaderText is a record header with its value rendered.
type HeaderText struct {
	Key   string
	Value Bytes
}

// Bytes is a byte string rendered for a person: Text in the encoding
// named by As (text, json or hex; base64, asked for by programs, gives
// the exact bytes), Len the original length, Cut whether Text shows only
// a prefix (Options.MaxValueBytes). A nil byte string has Null set.
type Bytes struct {
	As   string
	Text string
	Len  int
	Cut  bool
	Null bool
}

func (h *Page) records(topic, partition, offset, at, limit, as string) (*Records, error) {
	if topic == "" {
		return nil, badRequest("records: the topic parameter is missing")
	}
	switch as {
	case "":
		as = "auto"
	case "auto", "text", "json", "hex", "base64":
	default:
		return nil, badRequest("records: as=%q: want auto, text, json, hex or base64", as)
	}
	t, err := h.s.Topic(topic)
	if err != nil {
		if errors.Is(err, stream.ErrUnknownTopic) {
			return nil, &httpError{http.StatusNotFound, err.Error()}
		}
		return nil, err
	}
	pid := int64(0)
	if partition != "" {
		pid, err = strconv.ParseInt(partition, 10, 32)
		if err != nil || pid < 0 {
			return nil, badRequest("records: partition %q: want a number from 0", partition)
		}
	}
	p, err := t.Partition(int32(pid))
	if err != nil {
		return nil, &httpError{http.StatusNotFound, err.Error()}
	}
	n := h.opts.MaxRecords
	if limit != "" {
		l, err := strconv.Atoi(limit)
		if err != nil || l < 1 {
			return nil, badRequest("records: limit %q: want a number from 1", limit)
		}
		n = min(l, n)
	}
	start, hw := p.StartOffset(), p.HighWatermark()
	from := start
	switch {
	case offset != "" && at != "":
		return nil, badRequest("records: give offset or time, not both")
	case offset != "":
		from, err = strconv.ParseInt(offset, 10, 64)
		if err != nil || from < 0 {
			return nil, badRequest("records: offset %q: want a number from 0", offset)
		}
	case at != "":
		tm, err := time.Parse(time.RFC3339Nano, at)
		if err != nil {
			return nil, badRequest("records: time %q: want RFC 3339, as 2006-01-02T15:04:05Z", at)
		}
		if from, err = p.OffsetForTime(tm); err != nil {
			return nil, err
		}
	}
	if from < start || from > hw {
		return nil, &httpError{http.StatusRequestedRangeNotSatisfiable,
			fmt.Sprintf("records: offset %d of %s-%d is outside [%d, %d]", from, topic, pid, start, hw)}
	}
	out := &Records{Topic: topic, Partition: int32(pid), Offset: from, StartOffset: start, HighWatermark: hw, As: as, Records: []Record{}}
	to := from + int64(n)
	if to > hw || to < from { // to < from: cannot overflow with from <= hw, kept as a guard
		to = hw
	}
	err = p.ForEach(from, to, func(r *stream.Record) error {
		rec := Record{Offset: r.Offset, Timestamp: r.Timestamp,
			Key: h.render(r.Key, as), Value: h.render(r.Value, as)}
		for _, hd := range r.Headers {
			rec.Headers = append(rec.Headers, HeaderText{Key: hd.Key, Value: h.render(hd.Value, as)})
		}
		out.Records = append(out.Records, rec)
		return nil
	})
	if err != nil {
		if errors.Is(err, stream.ErrOffsetOutOfRange) { // retention moved the start meanwhile
			return nil, &httpError{http.StatusRequestedRangeNotSatisfiable, err.Error()}
		}
		return nil, err
	}
	out.Next = to
	return out, nil
}

// render shows b as asked: auto picks JSON when b is valid JSON, text when
// it is valid UTF-8 without control characters, hex otherwise.
func (h *Page) render(b []byte, as string) Bytes {
	out := Bytes{Len: len(b), Null: b == nil}
	if b == nil {
		return out
	}
	if as == "auto" {
		switch {
		case json.Valid(b):
			as = "json"
		case printable(b):
			as = "text"
		default:
			as = "hex"
		}
	}
	out.As = as
	max := h.opts.MaxValueBytes
	if len(b) > max {
		b, out.Cut = b[:max], true
	}
	switch as {
	case "json":
		var pretty bytes.Buffer
		if !out.Cut && json.Indent(&pretty, b, "", "  ") == nil {
			out.Text = pretty.String()
			return out
		}
		out.Text = string(b) // not JSON (or cut): show it as it is
	case "hex":
		out.Text = hex.Dump(b)
	case "base64":
		out.Text = base64.StdEncoding.EncodeToString(b)
	default:
		out.Text = string(b) // html/template escapes it; invalid UTF-8 shows as U+FFFD
	}
	return out
}

func printable(b []byte) bool {
	if !utf8.Valid(b) {
		return false
	}
	for _, r := range string(b) {
		if r < 0x20 && r != '\n' && r != '\t' && r != '\r' || r == 0x7f {
			return false
		}
	}
	return true
}
