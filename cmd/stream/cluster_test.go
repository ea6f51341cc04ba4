package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// freePorts returns n loopback addresses free a moment ago.
func freePorts(t *testing.T, n int) []string {
	t.Helper()
	var out []string
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, ln.Addr().String())
		defer ln.Close()
	}
	return out
}

// Three nodes from the command line, as the README runs them, and
// cluster showing them from outside: every node alive, each partition
// with a leader, an ISR of three and lags; then a node stopped shows as
// not answering, and its partitions' leadership moved.
func TestClusterCommand(t *testing.T) {
	addrs := freePorts(t, 3)
	peers := fmt.Sprintf("1=%s,2=%s,3=%s", addrs[0], addrs[1], addrs[2])
	dir := t.TempDir()
	type node struct {
		cancel context.CancelFunc
		code   chan int
		stderr *syncBuffer
	}
	var nodes []node
	for id := 1; id <= 3; id++ {
		ctx, cancel := context.WithCancel(context.Background())
		n := node{cancel, make(chan int, 1), &syncBuffer{}}
		args := []string{"node", "-dir", filepath.Join(dir, fmt.Sprint("node", id)), "-id", fmt.Sprint(id), "-peers", peers, "-status", "0"}
		if id == 1 {
			args = append(args, "-create", "orders", "-partitions", "3")
		}
		go func() { n.code <- run(ctx, args, strings.NewReader(""), &syncBuffer{}, n.stderr) }()
		nodes = append(nodes, n)
	}
	defer func() {
		for _, n := range nodes {
			n.cancel()
		}
		for i, n := range nodes {
			if c := <-n.code; c != 0 {
				t.Errorf("node %d exited with %d: %s", i+1, c, n.stderr.String())
			}
		}
	}()
	var v struct {
		Controller int
		Nodes      []struct {
			ID       int
			Alive    bool
			Answered bool
		}
		Partitions []struct {
			Topic     string
			Partition int
			Leader    int
			ISR       []int
			Lag       map[string]int64
		}
	}
	// until reports once the cluster, as cluster -json shows it, passes
	// cond (a bound of a minute keeps a broken test from hanging).
	until := func(what string, cond func() bool) {
		t.Helper()
		var out string
		for deadline := time.Now().Add(time.Minute); ; time.Sleep(100 * time.Millisecond) {
			var code int
			code, out, _ = runCmd(t, "cluster", "-peers", peers, "-timeout", "1s", "-json")
			v.Nodes, v.Partitions = nil, nil
			if code == 0 && json.Unmarshal([]byte(out), &v) == nil && cond() {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("still waiting for %s; cluster -json: %s", what, out)
			}
		}
	}
	until("three live nodes and three partitions in sync", func() bool {
		if v.Controller == 0 || len(v.Nodes) != 3 || len(v.Partitions) != 3 {
			return false
		}
		for _, n := range v.Nodes {
			if !n.Alive || !n.Answered {
				return false
			}
		}
		for _, p := range v.Partitions {
			if p.Leader == 0 || len(p.ISR) != 3 || len(p.Lag) != 3 {
				return false
			}
		}
		return true
	})
	code, out, _ := runCmd(t, "cluster", "-peers", peers)
	if code != 0 || !strings.Contains(out, "orders-2") || !strings.Contains(out, "controller: node") {
		t.Fatalf("cluster: exit %d, output:\n%s", code, out)
	}
	nodes[0].cancel()
	if c := <-nodes[0].code; c != 0 {
		t.Fatalf("node 1 exited with %d: %s", c, nodes[0].stderr.String())
	}
	nodes[0].code <- 0
	until("node 1 gone and its partitions led elsewhere", func() bool {
		for _, n := range v.Nodes {
			if n.ID == 1 && (n.Alive || n.Answered) {
				return false
			}
		}
		for _, p := range v.Partitions {
			if p.Leader == 1 || p.Leader == 0 {
				return false
			}
		}
		return len(v.Partitions) == 3
	})
	if code, _, _ := runCmd(t, "cluster", "-peers", "nonsense"); code != 2 {
		t.Errorf("cluster with a bad -peers: exit %d, want 2", code)
	}
}
