package main

import (
	"bufio"
	"context"
	"encoding/binary"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestServe: serve answers a Kafka ApiVersions request on the address it
// logs, and exits 0 when interrupted.
func TestServe(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	pr, pw := io.Pipe()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"serve", "-dir", dir, "-kafka", "127.0.0.1:0"}, strings.NewReader(""), io.Discard, pw)
		pw.Close()
	}()
	lines := bufio.NewScanner(pr)
	var addr string
	for addr == "" && lines.Scan() {
		if m := regexp.MustCompile(`serving Kafka clients" addr=(\S+)`).FindStringSubmatch(lines.Text()); m != nil {
			addr = m[1]
		}
	}
	go io.Copy(io.Discard, pr)
	if addr == "" {
		t.Fatal("serve logged no address")
	}
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	// ApiVersions v0: key 18, version 0, correlation ID 7, null client ID.
	if _, err := c.Write([]byte{0, 0, 0, 10, 0, 18, 0, 0, 0, 0, 0, 7, 0xff, 0xff}); err != nil {
		t.Fatal(err)
	}
	var head [10]byte
	if _, err := io.ReadFull(c, head[:]); err != nil {
		t.Fatal(err)
	}
	if corr, code := binary.BigEndian.Uint32(head[4:]), binary.BigEndian.Uint16(head[8:]); corr != 7 || code != 0 {
		t.Fatalf("ApiVersions answer: correlation %d, error %d", corr, code)
	}
	cancel()
	if code := <-done; code != 0 {
		t.Fatalf("serve exited %d", code)
	}
}

// TestServeHTTP: serve -http serves the debug page of the directory, with
// the Kafka listener off, and exits 0 when interrupted.
func TestServeHTTP(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	if code := run(context.Background(), []string{"create", "-dir", dir, "-partitions", "2", "pages"}, strings.NewReader(""), io.Discard, io.Discard); code != 0 {
		t.Fatalf("create exited %d", code)
	}
	pr, pw := io.Pipe()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"serve", "-dir", dir, "-kafka", "", "-http", "127.0.0.1:0"}, strings.NewReader(""), io.Discard, pw)
		pw.Close()
	}()
	lines := bufio.NewScanner(pr)
	var url string
	for url == "" && lines.Scan() {
		if m := regexp.MustCompile(`serving the debug page" url=(\S+)`).FindStringSubmatch(lines.Text()); m != nil {
			url = m[1]
		}
	}
	go io.Copy(io.Discard, pr)
	if url == "" {
		t.Fatal("serve logged no URL")
	}
	for _, tc := range []struct{ url, want string }{
		{url, "pages"},
		{url + "?format=json", `"Topic": "pages"`},
		{strings.TrimSuffix(url, "/debug/stream") + "/", "pages"}, // redirected
	} {
		resp, err := http.Get(tc.url)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(body), tc.want) {
			t.Errorf("GET %s = %d, want 200 with %q:\n%s", tc.url, resp.StatusCode, tc.want, body)
		}
	}
	cancel()
	if code := <-done; code != 0 {
		t.Fatalf("serve exited %d", code)
	}
}

func TestServeNothing(t *testing.T) {
	var stderr strings.Builder
	code := run(context.Background(), []string{"serve", "-dir", t.TempDir(), "-kafka", ""}, strings.NewReader(""), io.Discard, &stderr)
	if code == 0 || !strings.Contains(stderr.String(), "nothing to serve") {
		t.Errorf("serve -kafka \"\" = %d %q, want a usage error", code, stderr.String())
	}
}
