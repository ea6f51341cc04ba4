package debughttp_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/instream/stream"
	"github.com/instream/stream/debughttp"
)

// setup opens a stream with topic "orders" holding three records, and a
// server with the handler mounted at /debug/stream.
func setup(t *testing.T) (*stream.Stream, *httptest.Server) {
	t.Helper()
	s, err := stream.Open(t.TempDir(), &stream.Options{Sync: stream.SyncNever})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	tp, err := s.CreateTopic("orders", stream.TopicConfig{Partitions: 2})
	if err != nil {
		t.Fatal(err)
	}
	p, _ := tp.Partition(1)
	recs := []*stream.Record{
		{Key: []byte("k0"), Value: []byte(`{"id":7,"item":"lamp"}`)},
		{Key: []byte("k1"), Value: []byte("plain <b>text</b>")},
		{Value: []byte{0, 1, 2, 0xff}, Headers: []stream.Header{{Key: "h", Value: []byte("hv")}}},
	}
	if _, err := p.Append(recs...); err != nil {
		t.Fatal(err)
	}
	if err := p.Sync(); err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/debug/stream", debughttp.Handler(s, nil))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return s, srv
}

func get(t *testing.T, srv *httptest.Server, query string) (int, string) {
	t.Helper()
	resp, err := http.Get(srv.URL + "/debug/stream" + query)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(body)
}

func TestOverviewShowsTopic(t *testing.T) {
	_, srv := setup(t)
	code, body := get(t, srv, "")
	if code != http.StatusOK {
		t.Fatalf("GET /debug/stream = %d: %s", code, body)
	}
	for _, want := range []string{"<td class=\"l\">orders</td>", "?view=records&amp;topic=orders&amp;partition=1&amp;offset=0"} {
		if !strings.Contains(body, want) {
			t.Errorf("page lacks %q:\n%s", want, body)
		}
	}
}

func TestOverviewJSON(t *testing.T) {
	_, srv := setup(t)
	code, body := get(t, srv, "?format=json")
	if code != http.StatusOK {
		t.Fatalf("GET ?format=json = %d: %s", code, body)
	}
	var o debughttp.Overview
	if err := json.Unmarshal([]byte(body), &o); err != nil {
		t.Fatalf("decode: %v\n%s", err, body)
	}
	m := o.Metrics
	if len(m.Partitions) != 2 || m.Partitions[1].Topic != "orders" || m.Partitions[1].HighWatermark != 3 || m.Totals.Records != 3 {
		t.Errorf("JSON metrics = %+v, want orders with 3 records on partition 1", m)
	}
}

func TestRecordBrowser(t *testing.T) {
	_, srv := setup(t)
	code, body := get(t, srv, "?view=records&topic=orders&partition=1&offset=1")
	if code != http.StatusOK {
		t.Fatalf("records = %d: %s", code, body)
	}
	if !strings.Contains(body, "plain &lt;b&gt;text&lt;/b&gt;") || strings.Contains(body, "<b>text</b>") {
		t.Errorf("record 1's value is not shown escaped:\n%s", body)
	}
	if strings.Contains(body, "lamp") {
		t.Errorf("record 0 shown when browsing from offset 1:\n%s", body)
	}
	if !strings.Contains(body, "00 01 02 ff") {
		t.Errorf("binary value of record 2 not shown in hex:\n%s", body)
	}

	code, body = get(t, srv, "?view=records&topic=orders&partition=1&offset=0&limit=1&format=json")
	if code != http.StatusOK {
		t.Fatalf("records JSON = %d: %s", code, body)
	}
	var rs debughttp.Records
	if err := json.Unmarshal([]byte(body), &rs); err != nil {
		t.Fatalf("decode: %v\n%s", err, body)
	}
	if len(rs.Records) != 1 || rs.Next != 1 || rs.Records[0].Key.Text != "k0" || rs.Records[0].Value.As != "json" ||
		!strings.Contains(rs.Records[0].Value.Text, `"item": "lamp"`) {
		t.Errorf("records JSON = %+v, want record 0 with key k0 and its JSON value indented", rs)
	}

	_, body = get(t, srv, "?view=records&topic=orders&partition=1&offset=0&as=hex&format=json")
	rs = debughttp.Records{}
	if err := json.Unmarshal([]byte(body), &rs); err != nil || len(rs.Records) != 3 || rs.Records[1].Key.Text != "00000000  6b 31                                             |k1|\n" {
		t.Errorf("as=hex: %v %+v", err, rs)
	}
}

func TestRecordBrowserByTime(t *testing.T) {
	_, srv := setup(t)
	code, body := get(t, srv, "?view=records&topic=orders&partition=1&format=json&time="+url.QueryEscape("2000-01-01T00:00:00Z"))
	var rs debughttp.Records
	if code != http.StatusOK || json.Unmarshal([]byte(body), &rs) != nil || len(rs.Records) != 3 || rs.Offset != 0 {
		t.Errorf("time before every record = %d %s, want all 3 records from offset 0", code, body)
	}
	code, body = get(t, srv, "?view=records&topic=orders&partition=1&format=json&time="+url.QueryEscape("2999-01-01T00:00:00Z"))
	rs = debughttp.Records{}
	if code != http.StatusOK || json.Unmarshal([]byte(body), &rs) != nil || len(rs.Records) != 0 || rs.Offset != 3 {
		t.Errorf("time after every record = %d %s, want no records at offset 3", code, body)
	}
}

func TestHostileQueries(t *testing.T) {
	_, srv := setup(t)
	for _, tc := range []struct {
		query string
		code  int
		msg   string
	}{
		{"?view=records&topic=nope", 404, "unknown topic"},
		{"?view=records", 400, "topic parameter is missing"},
		{"?view=records&topic=orders&partition=7", 404, ""},
		{"?view=records&topic=orders&partition=-1", 400, "partition"},
		{"?view=records&topic=orders&partition=99999999999", 400, "partition"},
		{"?view=records&topic=orders&partition=1&offset=-5", 400, "offset"},
		{"?view=records&topic=orders&partition=1&offset=9223372036854775807", 416, "outside"},
		{"?view=records&topic=orders&partition=1&offset=99999999999999999999", 400, "offset"},
		{"?view=records&topic=orders&partition=1&offset=4", 416, "outside"},
		{"?view=records&topic=orders&partition=1&offset=x", 400, "offset"},
		{"?view=records&topic=orders&partition=1&limit=0", 400, "limit"},
		{"?view=records&topic=orders&partition=1&limit=-3", 400, "limit"},
		{"?view=records&topic=orders&partition=1&as=rot13", 400, "as="},
		{"?view=records&topic=orders&partition=1&time=yesterday", 400, "time"},
		{"?view=records&topic=orders&partition=1&time=2000-01-01T00:00:00Z&offset=1", 400, "not both"},
		{"?view=records&topic=" + url.QueryEscape("../../etc"), 404, ""},
		{"?view=nope", 400, "unknown view"},
		{"?view=records&topic=nope&format=json", 404, `"error"`},
	} {
		code, body := get(t, srv, tc.query)
		if code != tc.code || !strings.Contains(body, tc.msg) {
			t.Errorf("GET %s = %d %q, want %d with %q", tc.query, code, body, tc.code, tc.msg)
		}
	}
	// A huge limit is capped, not an error.
	if code, body := get(t, srv, "?view=records&topic=orders&partition=1&limit=99999999999"); code != 400 && code != 200 {
		t.Errorf("huge limit = %d %s", code, body)
	}
	resp, err := http.Post(srv.URL+"/debug/stream", "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST = %d, want 405", resp.StatusCode)
	}
}

func TestClosedStream(t *testing.T) {
	s, srv := setup(t)
	s.Close()
	if code, body := get(t, srv, ""); code != 200 {
		t.Errorf("overview of a closed stream = %d %s, want an empty page", code, body)
	}
	if code, body := get(t, srv, "?view=records&topic=orders&partition=1"); code < 400 || code >= 600 {
		t.Errorf("records of a closed stream = %d %s, want an error", code, body)
	}
}

// TestPageSamplesHistory runs New's sampler on synctest's clock: the
// ring keeps the last History of samples, the overview charts them, and
// Close stops the sampler (the bubble fails on a goroutine left behind).
func TestPageSamplesHistory(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, err := stream.Open(t.TempDir(), &stream.Options{Sync: stream.SyncNever})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		tp, err := s.CreateTopic("orders", stream.TopicConfig{})
		if err != nil {
			t.Fatal(err)
		}
		p, _ := tp.Partition(0)
		if _, err := s.ConsumerGroup("billing", stream.GroupConfig{Topics: []string{"orders"}, StartAt: stream.StartEarliest}); err != nil {
			t.Fatal(err)
		}
		page := debughttp.New(s, &debughttp.Options{SampleInterval: time.Second, History: 3 * time.Second})
		defer page.Close()
		for i := range 6 {
			for range i {
				if _, err := p.Append(&stream.Record{Value: []byte("x")}); err != nil {
					t.Fatal(err)
				}
			}
			time.Sleep(time.Second)
			synctest.Wait()
		}
		var h debughttp.History
		if code, body := serve(page, "?view=history&format=json"); code != 200 || json.Unmarshal([]byte(body), &h) != nil {
			t.Fatalf("history: %d %s", code, body)
		}
		// 4 samples kept (3s / 1s + 1): records after the sleeps 2..5
		// appended 0+1+…+i.
		var got []int64
		for _, s := range h.Samples {
			got = append(got, s.Records)
		}
		if want := []int64{3, 6, 10, 15}; fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("sampled records %v, want %v (the last 4 samples, oldest first)", got, want)
		}
		if last := h.Samples[len(h.Samples)-1]; last.Lag["billing"] != 15 {
			t.Errorf("last sample's lag %v, want billing: 15", last.Lag)
		}
		code, body := serve(page, "")
		if code != 200 || strings.Count(body, `<svg class="chart"`) != 2 || !strings.Contains(body, "billing") {
			t.Errorf("overview: %d, want two charts naming billing:\n%s", code, body)
		}
		if err := page.Close(); err != nil {
			t.Fatal(err)
		}
		if _, err := p.Append(&stream.Record{Value: []byte("after")}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(5 * time.Second)
		synctest.Wait()
		if code, body := serve(page, "?view=history&format=json"); code != 200 || json.Unmarshal([]byte(body), &h) != nil || len(h.Samples) != 4 || h.Samples[3].Records != 15 {
			t.Errorf("after Close the page still sampled: %s", body)
		}
	})
}

// serve answers a GET of query on h without a network.
func serve(h http.Handler, query string) (int, string) {
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest("GET", "/debug/stream"+query, nil))
	return w.Code, w.Body.String()
}
