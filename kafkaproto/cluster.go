package kafkaproto

import (
	"fmt"
	"net"
	"slices"
	"strconv"

	"github.com/instream/stream"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// On a clustered Stream (Options.Cluster) each node's listener is one
// broker of a multi-broker cluster, as Kafka clients expect: Metadata
// lists every live node whose address is known (Config.Brokers) and each
// partition's leader, leader epoch, replicas and ISR from the cluster's
// metadata; Produce, Fetch and ListOffsets for a partition this node does
// not lead are answered NOT_LEADER_OR_FOLLOWER, so clients refresh their
// metadata and follow the leader.

// address is a broker's advertised host and port.
type address struct {
	host string
	port int32
}

func parseAddress(hostport string) (address, error) {
	host, portStr, err := net.SplitHostPort(hostport)
	if err != nil {
		return address{}, err
	}
	port, err := strconv.ParseUint(portStr, 10, 16)
	if err != nil {
		return address{}, fmt.Errorf("port %q: %v", portStr, err)
	}
	return address{host, int32(port)}, nil
}

// clusterConfig checks cfg against s's cluster, if any: NodeID defaults
// to the cluster's node ID and must be it, and every Brokers address must
// parse. It returns the parsed addresses, this node's included.
func clusterConfig(cfg *Config, s *stream.Stream, self address) (map[int32]address, error) {
	addrs := map[int32]address{}
	cl := s.Cluster()
	if cl == nil {
		if len(cfg.Brokers) > 0 {
			return nil, fmt.Errorf("kafkaproto: Config.Brokers is for a clustered Stream (Options.Cluster): %w", stream.ErrInvalidConfig)
		}
		return addrs, nil
	}
	if cfg.NodeID == 0 {
		cfg.NodeID = int32(cl.NodeID())
	}
	if cfg.NodeID != int32(cl.NodeID()) {
		return nil, fmt.Errorf("kafkaproto: Config.NodeID %d is not the cluster's node ID %d: %w", cfg.NodeID, cl.NodeID(), stream.ErrInvalidConfig)
	}
	for id, hostport := range cfg.Brokers {
		a, err := parseAddress(hostport)
		if err != nil {
			return nil, fmt.Errorf("kafkaproto: Config.Brokers[%d] %q: %v: %w", id, hostport, err, stream.ErrInvalidConfig)
		}
		addrs[int32(id)] = a
	}
	addrs[cfg.NodeID] = self
	return addrs, nil
}

// brokers lists the brokers Metadata reports: this node alone on a
// single node; on a cluster node, every live node with a known address
// (this one always), by ID.
func (srv *server) brokers() []kmsg.MetadataResponseBroker {
	self := kmsg.NewMetadataResponseBroker()
	self.NodeID, self.Host, self.Port = srv.cfg.NodeID, srv.host, srv.port
	cl := srv.s.Cluster()
	if cl == nil {
		return []kmsg.MetadataResponseBroker{self}
	}
	var out []kmsg.MetadataResponseBroker
	for _, n := range cl.Nodes() {
		a, ok := srv.addrs[int32(n.ID)]
		if int32(n.ID) == srv.cfg.NodeID {
			out = append(out, self)
			continue
		}
		if !n.Alive || !ok {
			continue
		}
		b := kmsg.NewMetadataResponseBroker()
		b.NodeID, b.Host, b.Port = int32(n.ID), a.host, a.port
		out = append(out, b)
	}
	if !slices.ContainsFunc(out, func(b kmsg.MetadataResponseBroker) bool { return b.NodeID == srv.cfg.NodeID }) {
		out = append(out, self) // not yet joined as the metadata sees it
	}
	return out
}

// controllerID is the broker Metadata names as the controller: this node
// on a single node, the metadata raft leader on a cluster (-1 while none).
func (srv *server) controllerID() int32 {
	cl := srv.s.Cluster()
	if cl == nil {
		return srv.cfg.NodeID
	}
	if c := cl.Controller(); c != 0 {
		return int32(c)
	}
	return -1
}

// partitionMetadata describes partition i of topic for Metadata.
func (srv *server) partitionMetadata(topic string, i int32) kmsg.MetadataResponseTopicPartition {
	rp := kmsg.NewMetadataResponseTopicPartition()
	rp.Partition = i
	cl := srv.s.Cluster()
	if cl == nil {
		rp.Leader = srv.cfg.NodeID
		rp.Replicas, rp.ISR = []int32{srv.cfg.NodeID}, []int32{srv.cfg.NodeID}
		return rp
	}
	ps, err := cl.PartitionState(topic, i)
	if err != nil {
		rp.Leader, rp.ErrorCode = -1, errorCode(err)
		return rp
	}
	alive := map[stream.NodeID]bool{}
	for _, n := range cl.Nodes() {
		alive[n.ID] = n.Alive
	}
	rp.Leader, rp.LeaderEpoch = int32(ps.Leader), ps.LeaderEpoch
	if ps.Leader == 0 {
		rp.Leader, rp.ErrorCode = -1, errLeaderNotAvailable
	}
	for _, id := range ps.Replicas {
		rp.Replicas = append(rp.Replicas, int32(id))
		if !alive[id] {
			rp.OfflineReplicas = append(rp.OfflineReplicas, int32(id))
		}
	}
	for _, id := range ps.ISR {
		rp.ISR = append(rp.ISR, int32(id))
	}
	return rp
}

// notLeader reports whether this node is a cluster node that does not
// lead partition i of topic: Kafka clients produce to and fetch from the
// leader only, and refresh their metadata on NOT_LEADER_OR_FOLLOWER.
func (srv *server) notLeader(topic string, i int32) bool {
	cl := srv.s.Cluster()
	if cl == nil {
		return false
	}
	ps, err := cl.PartitionState(topic, i)
	return err == nil && int32(ps.Leader) != srv.cfg.NodeID
}

// coordinator is the broker that coordinates every group: this node on a
// single node, the live node with the smallest ID and a known address on
// a cluster (ok false while the metadata knows none). Groups are kept by
// each node (see the package doc), so one node serves them all.
func (srv *server) coordinator() (id int32, a address, ok bool) {
	cl := srv.s.Cluster()
	if cl == nil {
		return srv.cfg.NodeID, address{srv.host, srv.port}, true
	}
	for _, n := range cl.Nodes() {
		if a, known := srv.addrs[int32(n.ID)]; n.Alive && known {
			return int32(n.ID), a, true
		}
	}
	return -1, address{}, false
}

// isCoordinator reports whether this node coordinates the groups.
func (srv *server) isCoordinator() bool {
	id, _, ok := srv.coordinator()
	return ok && id == srv.cfg.NodeID
}

// notCoordinator answers a group request sent to a node that does not
// coordinate groups with NOT_COORDINATOR, so the client looks the
// coordinator up again; nil for a request that is not a group's.
func notCoordinator(req kmsg.Request) kmsg.Response {
	switch r := req.(type) {
	case *kmsg.JoinGroupRequest:
		resp := r.ResponseKind().(*kmsg.JoinGroupResponse)
		resp.ErrorCode, resp.Generation = errNotCoordinator, -1
		return resp
	case *kmsg.SyncGroupRequest:
		resp := r.ResponseKind().(*kmsg.SyncGroupResponse)
		resp.ErrorCode = errNotCoordinator
		return resp
	case *kmsg.HeartbeatRequest:
		resp := r.ResponseKind().(*kmsg.HeartbeatResponse)
		resp.ErrorCode = errNotCoordinator
		return resp
	case *kmsg.LeaveGroupRequest:
		resp := r.ResponseKind().(*kmsg.LeaveGroupResponse)
		resp.ErrorCode = errNotCoordinator
		return resp
	case *kmsg.OffsetCommitRequest:
		resp := r.ResponseKind().(*kmsg.OffsetCommitResponse)
		for _, rt := range r.Topics {
			out := kmsg.NewOffsetCommitResponseTopic()
			out.Topic = rt.Topic
			for _, rp := range rt.Partitions {
				po := kmsg.NewOffsetCommitResponseTopicPartition()
				po.Partition, po.ErrorCode = rp.Partition, errNotCoordinator
				out.Partitions = append(out.Partitions, po)
			}
			resp.Topics = append(resp.Topics, out)
		}
		return resp
	case *kmsg.OffsetFetchRequest:
		resp := r.ResponseKind().(*kmsg.OffsetFetchResponse)
		resp.ErrorCode = errNotCoordinator
		for _, rt := range r.Topics {
			out := kmsg.NewOffsetFetchResponseTopic()
			out.Topic = rt.Topic
			for _, p := range rt.Partitions {
				po := kmsg.NewOffsetFetchResponseTopicPartition()
				po.Partition, po.Offset, po.ErrorCode = p, -1, errNotCoordinator
				out.Partitions = append(out.Partitions, po)
			}
			resp.Topics = append(resp.Topics, out)
		}
		return resp
	}
	return nil
}
