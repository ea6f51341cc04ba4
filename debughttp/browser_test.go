package debughttp_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/instream/stream"
	"github.com/instream/stream/debughttp"
)

// chromium finds Debian's headless-capable Chromium: $CHROMIUM, or
// chromium on PATH. .ci/run installs it; without it the test skips, as
// the kcat test does.
func chromium(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Skip("no chromium on PATH (apt-get install chromium); set CHROMIUM to its path")
	return ""
}

// browse runs headless Chromium on url with extra flags and returns its
// standard output.
func browse(t *testing.T, bin, url string, flags ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	args := append([]string{
		"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--disable-dev-shm-usage", "--user-data-dir=" + t.TempDir(),
	}, flags...)
	cmd := exec.CommandContext(ctx, bin, append(args, url)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\n%s", bin, strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String()
}

// TestBrowser loads the page in a real headless Chromium: the overview
// shows the topic the test wrote and its group's lag, its script runs,
// the record browser finds a record by time, and a screenshot is taken
// ($SCREENSHOT names where to keep it; the README's is made so).
func TestBrowser(t *testing.T) {
	bin := chromium(t)
	s, err := stream.Open(t.TempDir(), &stream.Options{Sync: stream.SyncNever})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	tp, err := s.CreateTopic("orders", stream.TopicConfig{Partitions: 3})
	if err != nil {
		t.Fatal(err)
	}
	base := time.Date(2026, 1, 2, 15, 4, 0, 0, time.UTC)
	for i := range 30 {
		p, _ := tp.Partition(int32(i % 3))
		r := &stream.Record{Key: fmt.Appendf(nil, "customer-%d", i%7), Timestamp: base.Add(time.Duration(i) * time.Second),
			Value: fmt.Appendf(nil, `{"order":%d,"item":"lamp","qty":%d}`, i, 1+i%4)}
		if _, err := p.Append(r); err != nil {
			t.Fatal(err)
		}
	}
	ctx := context.Background()
	g, err := s.ConsumerGroup("billing", stream.GroupConfig{Topics: []string{"orders"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := g.ResetOffsets(ctx, map[stream.TopicPartition]int64{{Topic: "orders", Partition: 0}: 4}); err != nil {
		t.Fatal(err)
	}
	pr, err := s.NewProducer(stream.ProducerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	if err := pr.Send(ctx, &stream.Record{Topic: "orders", Key: []byte("customer-1"), Value: []byte(`{"order":30,"item":"desk"}`)}); err != nil {
		t.Fatal(err)
	}

	page := debughttp.New(s, &debughttp.Options{SampleInterval: 50 * time.Millisecond})
	defer page.Close()
	mux := http.NewServeMux()
	mux.Handle("/debug/stream", page)
	srv := httptest.NewServer(mux)
	defer srv.Close()
	// Give the charts a shape: bursts of appends while the page samples,
	// the group catching up now and then. The sleeps pace the picture;
	// nothing is asserted on them.
	for i := range 40 {
		p, _ := tp.Partition(0)
		for range (i % 10) * 3 {
			if _, err := p.Append(&stream.Record{Value: []byte(`{"item":"pen"}`)}); err != nil {
				t.Fatal(err)
			}
		}
		if i%13 == 12 {
			if err := g.ResetOffsets(ctx, map[stream.TopicPartition]int64{{Topic: "orders", Partition: 0}: p.HighWatermark() - 20}); err != nil {
				t.Fatal(err)
			}
		}
		time.Sleep(60 * time.Millisecond)
	}
	// The charts need two samples: wait for the sampler's second one.
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(20 * time.Millisecond) {
		if _, body := serve(page, "?view=history&format=json"); strings.Count(body, `"Time"`) >= 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the page took no second sample within a minute")
		}
	}
	page.Close() // the picture stops here
	overview := srv.URL + "/debug/stream"

	dom := browse(t, bin, overview, "--dump-dom")
	for _, want := range []string{`<td class="l">orders</td>`, `<h3>billing</h3>`, `data-ready="1"`, `<svg class="chart"`, `<table id="producers">`} {
		if !strings.Contains(dom, want) {
			t.Errorf("the overview's DOM lacks %s:\n%s", want, dom)
		}
	}

	// Record 13 (partition 1, its 5th) was written at base+13s.
	q := url.Values{"view": {"records"}, "topic": {"orders"}, "partition": {"1"}, "time": {base.Add(12500 * time.Millisecond).Format(time.RFC3339Nano)}, "limit": {"1"}}
	dom = browse(t, bin, overview+"?"+q.Encode(), "--dump-dom")
	if !strings.Contains(dom, `<tr class="record">`) || !strings.Contains(dom, `"order": 13`) || strings.Contains(dom, `"order": 10`) {
		t.Errorf("the record browser at %s did not find order 13 alone:\n%s", q.Get("time"), dom)
	}

	shot := os.Getenv("SCREENSHOT")
	if shot == "" {
		shot = filepath.Join(t.TempDir(), "debug-stream.png")
	} else if shot, err = filepath.Abs(shot); err != nil {
		t.Fatal(err)
	}
	browse(t, bin, overview, "--screenshot="+shot, "--window-size=1280,1100", "--hide-scrollbars")
	png, err := os.ReadFile(shot)
	if err != nil {
		t.Fatalf("no screenshot: %v", err)
	}
	if !bytes.HasPrefix(png, []byte("\x89PNG\r\n\x1a\n")) || len(png) < 10<<10 {
		t.Errorf("screenshot %s: %d bytes, not a PNG of a page", shot, len(png))
	}
	t.Logf("screenshot: %s (%d bytes)", shot, len(png))
}
