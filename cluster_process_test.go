package stream

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// A real cluster: three processes (this test binary re-run as
// TestClusterProcessChild) over TCP on 127.0.0.1, each producing with
// AcksAll through its own producer (forwarded to the leader), the leader
// SIGKILLed under that load. The survivors must elect a new leader, keep
// acknowledging, and hold every acknowledged record once.

const (
	clusterEnvNode  = "STREAM_CLUSTER_NODE"
	clusterEnvPeers = "STREAM_CLUSTER_PEERS"
	clusterEnvDir   = "STREAM_CLUSTER_DIR"
)

// TestClusterProcessChild is one node; it does nothing unless run by
// TestClusterProcessesSIGKILL. Protocol on stdout: "LEADER id" when the
// partition's leader changes, "ACK value" per acknowledged record; on
// stdin's end it stops producing, waits a moment for replication, prints
// "HAVE value" per record below its high watermark and "DONE".
func TestClusterProcessChild(t *testing.T) {
	idStr := os.Getenv(clusterEnvNode)
	if idStr == "" {
		t.Skip("run by TestClusterProcessesSIGKILL")
	}
	id64, _ := strconv.Atoi(idStr)
	id := NodeID(id64)
	addrs := map[NodeID]string{}
	var peers []NodeID
	for _, kv := range strings.Split(os.Getenv(clusterEnvPeers), ",") {
		k, v, _ := strings.Cut(kv, "=")
		n, _ := strconv.Atoi(k)
		addrs[NodeID(n)] = v
		peers = append(peers, NodeID(n))
	}
	tr, err := NewTCPTransport(TCPConfig{Listen: addrs[id], Peers: addrs})
	if err != nil {
		t.Fatal(err)
	}
	s, err := Open(os.Getenv(clusterEnvDir), &Options{Cluster: &ClusterConfig{NodeID: id, Peers: peers, Transport: tr,
		SessionTimeout: time.Second, ReplicaLagTime: 2 * time.Second, RequestTimeout: 20 * time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	var outMu sync.Mutex
	say := func(format string, args ...any) {
		outMu.Lock()
		fmt.Printf(format+"\n", args...)
		outMu.Unlock()
	}
	if id == 1 {
		if _, err := s.CreateTopic("t", TopicConfig{ReplicationFactor: 3, MinInSyncReplicas: 2}); err != nil {
			t.Fatal(err)
		}
	}
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if _, err := s.Topic("t"); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("topic never arrived")
		}
	}
	stop := make(chan struct{})
	go func() { io.Copy(io.Discard, os.Stdin); close(stop) }()
	var wg sync.WaitGroup
	wg.Go(func() { // report the leader
		var last NodeID
		for {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			if ps, err := s.Cluster().PartitionState("t", 0); err == nil && ps.Leader != last && ps.Leader != 0 {
				last = ps.Leader
				say("LEADER %d", last)
			}
		}
	})
	pr, err := s.NewProducer(ProducerConfig{DeliveryTimeout: 15 * time.Second, RetryBackoff: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	wg.Go(func() { // produce until told to stop
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			v := fmt.Sprintf("n%d-%d", id, i)
			if err := pr.Send(context.Background(), &Record{Topic: "t", Value: []byte(v)}); err != nil {
				say("ERR %s %v", v, err)
				time.Sleep(50 * time.Millisecond)
				continue
			}
			say("ACK %s", v)
		}
	})
	wg.Wait()
	pr.Close()
	time.Sleep(3 * time.Second) // followers catch up
	tp, _ := s.Topic("t")
	p, _ := tp.Partition(0)
	for off := int64(0); off < p.HighWatermark(); {
		recs, err := p.Read(off, 1<<20)
		if err != nil || len(recs) == 0 {
			say("ERR read at %d: %v", off, err)
			break
		}
		for _, r := range recs {
			say("HAVE %s", r.Value)
			off = r.Offset + 1
		}
	}
	say("DONE")
	s.Close()
}

func TestClusterProcessesSIGKILL(t *testing.T) {
	if testing.Short() {
		t.Skip("three processes over TCP")
	}
	peers := []NodeID{1, 2, 3}
	var spec []string
	for _, id := range peers {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		spec = append(spec, fmt.Sprintf("%d=%s", id, ln.Addr()))
		ln.Close()
	}
	root := t.TempDir()
	type child struct {
		cmd   *exec.Cmd
		stdin io.WriteCloser
	}
	var mu sync.Mutex
	acked := map[string]bool{}
	have := map[NodeID][]string{}
	leader := NodeID(0)
	done := map[NodeID]chan struct{}{}
	children := map[NodeID]*child{}
	for _, id := range peers {
		cmd := exec.Command(os.Args[0], "-test.run=^TestClusterProcessChild$", "-test.count=1", "-test.v")
		cmd.Env = append(os.Environ(), clusterEnvNode+"="+fmt.Sprint(id), clusterEnvPeers+"="+strings.Join(spec, ","),
			clusterEnvDir+"="+fmt.Sprintf("%s/node%d", root, id))
		var stderr strings.Builder
		cmd.Stderr = &stderr
		out, _ := cmd.StdoutPipe()
		in, _ := cmd.StdinPipe()
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		c := &child{cmd: cmd, stdin: in}
		children[id] = c
		finished := make(chan struct{})
		done[id] = finished
		go func() {
			defer close(finished)
			sc := bufio.NewScanner(out)
			for sc.Scan() {
				f := strings.Fields(sc.Text())
				if len(f) < 2 {
					continue
				}
				mu.Lock()
				switch f[0] {
				case "LEADER":
					n, _ := strconv.Atoi(f[1])
					leader = NodeID(n)
				case "ACK":
					acked[f[1]] = true
				case "HAVE":
					have[id] = append(have[id], f[1])
				}
				mu.Unlock()
			}
		}()
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	}
	count := func() int { mu.Lock(); defer mu.Unlock(); return len(acked) }
	waitFor := func(what string, cond func() bool) {
		for deadline := time.Now().Add(60 * time.Second); !cond(); time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
		}
	}
	waitFor("100 acknowledged records", func() bool { return count() >= 100 })
	mu.Lock()
	victim := leader
	mu.Unlock()
	if victim == 0 {
		t.Fatal("no leader reported")
	}
	killedAt := time.Now()
	children[victim].cmd.Process.Signal(syscall.SIGKILL)
	<-done[victim]
	before := count()
	waitFor("an acknowledgement after the kill", func() bool { return count() > before })
	t.Logf("first acknowledgement %v after the kill (%.2f SessionTimeouts)", time.Since(killedAt), time.Since(killedAt).Seconds())
	waitFor("acknowledgements after the kill", func() bool { return count() >= before+100 })
	t.Logf("killed leader node %d after %d acks; 100 more acks %v later", victim, before, time.Since(killedAt))
	for _, id := range peers {
		if id != victim {
			children[id].stdin.Close()
		}
	}
	for _, id := range peers {
		if id != victim {
			<-done[id]
			children[id].cmd.Wait()
		}
	}
	mu.Lock()
	defer mu.Unlock()
	var longest []string
	for _, id := range peers {
		if id == victim {
			continue
		}
		vals := have[id]
		seen := map[string]bool{}
		for _, v := range vals {
			if seen[v] {
				t.Errorf("node %d holds %s twice", id, v)
			}
			seen[v] = true
		}
		if len(vals) > len(longest) {
			longest = vals
		}
	}
	for _, id := range peers {
		if id != victim && !slices.Equal(have[id], longest[:len(have[id])]) {
			t.Errorf("node %d's log is not a prefix of the other survivor's", id)
		}
	}
	got := map[string]bool{}
	for _, v := range longest {
		got[v] = true
	}
	lost := 0
	for v := range acked {
		if !got[v] {
			lost++
			if lost < 5 {
				t.Errorf("acknowledged %s is on no survivor", v)
			}
		}
	}
	t.Logf("%d acknowledged records, %d on the survivors, %d lost", len(acked), len(longest), lost)
}
