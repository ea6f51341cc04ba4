package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/instream/stream"
)

var clusterCommand = &command{
	name:    "cluster",
	summary: "show a running cluster's nodes, controller and partitions",
	help: `Cluster asks the running nodes listed in -peers (the list "stream node"
takes) for their state over TCP, as any client of the cluster's
transport would, and prints the nodes (alive, last heard), the
controller, and each partition's leader, leader epoch, replicas, ISR,
high watermark and, per replica, its lag: how many offsets its log end
is behind the leader's (from the leader's view of its followers' fetches;
"?" when the leader did not answer). It needs no directory and changes
nothing. Nodes that do not answer within -timeout are listed as such; the
exit status is 1 when none answers.`,
}

func init() { clusterCommand.run = runCluster }

// clusterView is what cluster prints, and its -json output.
type clusterView struct {
	Controller  stream.NodeID      `json:"controller"`
	Nodes       []clusterNodeLine  `json:"nodes"`
	Unreachable map[string]string  `json:"unreachable,omitempty"` // node ID: error
	Partitions  []clusterPartition `json:"partitions"`
	Asked       []stream.NodeID    `json:"asked"`
	answers     map[stream.NodeID]stream.NodeStatus
}

type clusterNodeLine struct {
	ID        stream.NodeID `json:"id"`
	Alive     bool          `json:"alive"`
	LastHeard time.Time     `json:"last_heard"`
	Answered  bool          `json:"answered"`
}

type clusterPartition struct {
	stream.ReplicaStatus
	// Lag per replica ("1": 0); absent when unknown.
	Lag map[string]int64 `json:"lag"`
}

func runCluster(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
	var peersFlag string
	var timeout time.Duration
	var asJSON bool
	fs := clusterCommand.newFlagSet(stderr, nil)
	fs.StringVar(&peersFlag, "peers", "", "the nodes to ask as `ID=HOST:PORT,...`")
	fs.DurationVar(&timeout, "timeout", 3*time.Second, "how long to wait for each node")
	fs.BoolVar(&asJSON, "json", false, "print JSON")
	if err := parse(fs, args); err != nil {
		return err
	}
	addrs, ids, err := parsePeers(peersFlag)
	if err != nil {
		return usageError(fs, "-peers: %v", err)
	}
	tr, err := stream.NewTCPTransport(stream.TCPConfig{Peers: addrs})
	if err != nil {
		return err
	}
	defer tr.Close()
	v := clusterView{Asked: ids, Unreachable: map[string]string{}, answers: map[stream.NodeID]stream.NodeStatus{}}
	type answer struct {
		id  stream.NodeID
		st  stream.NodeStatus
		err error
	}
	ch := make(chan answer, len(ids))
	for _, id := range ids {
		go func() {
			cctx, cancel := context.WithTimeout(ctx, timeout)
			defer cancel()
			st, err := stream.QueryNode(cctx, tr, id)
			ch <- answer{id, st, err}
		}()
	}
	for range ids {
		a := <-ch
		if a.err != nil {
			v.Unreachable[strconv.Itoa(int(a.id))] = a.err.Error()
			continue
		}
		v.answers[a.id] = a.st
	}
	if len(v.answers) == 0 {
		return fmt.Errorf("no node answered: %v", v.Unreachable)
	}
	v.merge()
	if asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	}
	v.print(stdout)
	return nil
}

// merge takes the metadata from the controller's answer (else from the
// answer of the lowest node ID) and each partition's lags from its
// leader's.
func (v *clusterView) merge() {
	ids := slices.Sorted(maps.Keys(v.answers))
	base := v.answers[ids[0]]
	for _, id := range ids {
		if c := v.answers[id].Controller; c != 0 {
			if st, ok := v.answers[c]; ok {
				base = st
				break
			}
		}
	}
	v.Controller = base.Controller
	for _, n := range base.Nodes {
		_, answered := v.answers[n.ID]
		v.Nodes = append(v.Nodes, clusterNodeLine{n.ID, n.Alive, n.LastHeard, answered})
	}
	for _, rs := range base.Replicas {
		cp := clusterPartition{ReplicaStatus: rs, Lag: map[string]int64{}}
		if st, ok := v.answers[rs.Leader]; ok {
			for _, lr := range st.Replicas {
				if lr.Topic != rs.Topic || lr.Partition != rs.Partition {
					continue
				}
				cp.ReplicaStatus = lr // the leader's offsets and its followers' ends
				for _, id := range lr.Replicas {
					switch end, ok := lr.FollowerEnds[id]; {
					case id == lr.Leader:
						cp.Lag[strconv.Itoa(int(id))] = 0
					case ok && end >= 0:
						cp.Lag[strconv.Itoa(int(id))] = max(lr.LogEnd-end, 0)
					}
				}
			}
		}
		v.Partitions = append(v.Partitions, cp)
	}
}

func (v *clusterView) print(w io.Writer) {
	fmt.Fprintf(w, "controller: node %d\n\n", v.Controller)
	nodes := newTable("node>", "alive", "last heard", "answered")
	for _, n := range v.Nodes {
		nodes.add(strconv.Itoa(int(n.ID)), yesNo(n.Alive), n.LastHeard.Format(time.RFC3339), yesNo(n.Answered))
	}
	nodes.write(w, "")
	for _, id := range slices.Sorted(maps.Keys(v.Unreachable)) {
		fmt.Fprintf(w, "node %s did not answer: %s\n", id, v.Unreachable[id])
	}
	fmt.Fprintln(w)
	parts := newTable("partition", "leader>", "epoch>", "replicas", "isr", "high watermark>", "log end>", "lag")
	for _, p := range v.Partitions {
		var lag []string
		for _, id := range p.Replicas {
			l, ok := p.Lag[strconv.Itoa(int(id))]
			s := "?"
			if ok {
				s = strconv.FormatInt(l, 10)
			}
			lag = append(lag, fmt.Sprintf("%d:%s", id, s))
		}
		parts.add(fmt.Sprintf("%s-%d", p.Topic, p.Partition), strconv.Itoa(int(p.Leader)), strconv.Itoa(int(p.LeaderEpoch)),
			nodeList(p.Replicas), nodeList(p.ISR), strconv.FormatInt(p.HighWatermark, 10), strconv.FormatInt(p.LogEnd, 10),
			strings.Join(lag, " "))
	}
	parts.write(w, "")
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func nodeList(ids []stream.NodeID) string {
	s := make([]string, len(ids))
	for i, id := range ids {
		s[i] = strconv.Itoa(int(id))
	}
	return strings.Join(s, ",")
}

// parsePeers parses ID=HOST:PORT,... into addresses and IDs in order.
func parsePeers(s string) (map[stream.NodeID]string, []stream.NodeID, error) {
	addrs := map[stream.NodeID]string{}
	var ids []stream.NodeID
	for _, kv := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(kv), "=")
		n, err := strconv.Atoi(k)
		if !ok || err != nil || n <= 0 || v == "" {
			return nil, nil, fmt.Errorf("%q is not ID=HOST:PORT", kv)
		}
		if _, dup := addrs[stream.NodeID(n)]; dup {
			return nil, nil, fmt.Errorf("node %d listed twice", n)
		}
		addrs[stream.NodeID(n)] = v
		ids = append(ids, stream.NodeID(n))
	}
	return addrs, ids, nil
}
