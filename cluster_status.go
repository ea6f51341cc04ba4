package stream

import (
	"context"
	"encoding/json"
	"slices"
)

// A node's status for operators: what `stream cluster` shows. Any node
// answers a kindStatus request with its view (the metadata it applied)
// and its own replicas' offsets; a leader adds where each follower's log
// ends, so the lag of every replica is known from the leaders' answers.
// The payload of the request is empty, the reply is JSON: it is read by
// people and tools, a few times a second at most.

// NodeStatus is one node's view of the cluster, from QueryNode.
type NodeStatus struct {
	Node       NodeID          `json:"node"`
	Controller NodeID          `json:"controller"` // 0 while none is known
	Nodes      []NodeState     `json:"nodes"`
	Replicas   []ReplicaStatus `json:"partitions"`
}

// ReplicaStatus is a partition as a node sees it: the metadata, and this
// node's replica's offsets (zero on a node outside its replicas).
type ReplicaStatus struct {
	Topic         string   `json:"topic"`
	Partition     int32    `json:"partition"`
	Leader        NodeID   `json:"leader"`
	LeaderEpoch   int32    `json:"leader_epoch"`
	Replicas      []NodeID `json:"replicas"`
	ISR           []NodeID `json:"isr"`
	LogStart      int64    `json:"log_start"`
	LogEnd        int64    `json:"log_end"`
	HighWatermark int64    `json:"high_watermark"`
	// FollowerEnds, on the leader, is each follower's durable log end as
	// its last fetch said (-1 before its first); its lag is LogEnd minus
	// that.
	FollowerEnds map[NodeID]int64 `json:"follower_ends,omitempty"`
}

// QueryNode asks node, over t, for its NodeStatus. t need not belong to
// a node of the cluster: `stream cluster` makes a TCPTransport that
// knows the node's address and serves nothing.
func QueryNode(ctx context.Context, t Transport, node NodeID) (NodeStatus, error) {
	m := newMessenger(0, t, nil)
	b, err := m.call(ctx, node, kindStatus, nil)
	if err != nil {
		return NodeStatus{}, errorf("stream: status of node %d: %w", node, err)
	}
	var st NodeStatus
	if err := json.Unmarshal(b, &st); err != nil {
		return NodeStatus{}, errorf("stream: status of node %d: %v: %w", node, err, ErrBadRequest)
	}
	return st, nil
}

// handleStatus answers kindStatus.
func (n *clusterNode) handleStatus(context.Context, envelope) ([]byte, error) {
	return json.Marshal(n.status())
}

// status is this node's NodeStatus.
func (n *clusterNode) status() NodeStatus {
	c := n.cluster
	st := NodeStatus{Node: c.NodeID(), Controller: c.Controller(), Nodes: c.Nodes()}
	for _, name := range c.Topics() {
		for i := int32(0); ; i++ {
			ps, err := c.PartitionState(name, i)
			if err != nil {
				break
			}
			rs := ReplicaStatus{Topic: name, Partition: i, Leader: ps.Leader, LeaderEpoch: ps.LeaderEpoch,
				Replicas: ps.Replicas, ISR: ps.ISR}
			if r := n.rm.replica(name, i); r != nil && slices.Contains(ps.Replicas, n.cfg.NodeID) {
				rs.LogStart = r.p.StartOffset()
				rs.LogEnd, _ = r.p.logEnds()
				rs.HighWatermark = r.p.HighWatermark()
				r.mu.Lock()
				if r.leading() {
					rs.FollowerEnds = make(map[NodeID]int64, len(r.followers))
					for id, f := range r.followers {
						rs.FollowerEnds[id] = f.end
					}
				}
				r.mu.Unlock()
			}
			st.Replicas = append(st.Replicas, rs)
		}
	}
	return st
}
