package main

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// A one-node cluster from the command line: node creates a topic, shows
// its leader, and closes the node on interrupt.
func TestNode(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "node1")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout, stderr syncBuffer
	code := make(chan int, 1)
	go func() {
		code <- run(ctx, []string{"node", "-dir", dir, "-id", "1", "-peers", "1=127.0.0.1:0",
			"-create", "events", "-rf", "1", "-status", "50ms", "-json"}, strings.NewReader(""), &stdout, &stderr)
	}()
	for deadline := time.Now().Add(30 * time.Second); !strings.Contains(stdout.String(), `"topic":"events","partition":0,"leader":1`); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no leader shown; stdout %q, stderr %q", stdout.String(), stderr.String())
		}
		select {
		case c := <-code:
			t.Fatalf("node exited with %d: %s", c, stderr.String())
		default:
		}
	}
	cancel()
	if c := <-code; c != 0 {
		t.Fatalf("node exited with %d after interrupt: %s", c, stderr.String())
	}
	if c, _, errOut := runCmd(t, "node", "-dir", dir, "-id", "2", "-peers", "1=127.0.0.1:0"); c != 2 {
		t.Fatalf("-id not in -peers: exit %d, %s", c, errOut)
	}
}
