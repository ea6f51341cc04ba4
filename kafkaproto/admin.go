package kafkaproto

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/instream/stream"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// handler answers the requests of one connection.
type handler struct {
	srv      *server
	conn     *conn
	clientID string
	host     string
}

// dispatch routes req to its handler.
func (h *handler) dispatch(ctx context.Context, req *request) (kmsg.Response, error) {
	h.srv.log.Debug("kafka request", "api", kmsg.NameForKey(req.key), "version", req.version, "client", h.clientID)
	if req.key == apiVersionsKey {
		r, _ := req.req.(*kmsg.ApiVersionsRequest)
		return h.apiVersions(ctx, req.version, r), nil
	}
	if !h.conn.mayServe(req.key) {
		h.conn.log.Warn("kafka connection closed: a request before authentication", "api", kmsg.NameForKey(req.key))
		return nil, errDisconnect
	}
	if resp := notCoordinator(req.req); resp != nil && !h.srv.isCoordinator() {
		return resp, nil
	}
	switch r := req.req.(type) {
	case *kmsg.SASLHandshakeRequest:
		return h.saslHandshake(r), nil
	case *kmsg.SASLAuthenticateRequest:
		return h.saslAuthenticate(ctx, r), nil
	case *kmsg.ProduceRequest:
		return h.produce(ctx, r)
	case *kmsg.FetchRequest:
		return h.fetch(ctx, r), nil
	case *kmsg.ListOffsetsRequest:
		return h.listOffsets(r), nil
	case *kmsg.MetadataRequest:
		return h.metadata(r), nil
	case *kmsg.CreateTopicsRequest:
		return h.createTopics(r), nil
	case *kmsg.DeleteTopicsRequest:
		return h.deleteTopics(r), nil
	case *kmsg.CreatePartitionsRequest:
		return h.createPartitions(r), nil
	case *kmsg.InitProducerIDRequest:
		return h.initProducerID(r), nil
	case *kmsg.DescribeConfigsRequest:
		return h.describeConfigs(r), nil
	case *kmsg.FindCoordinatorRequest:
		return h.findCoordinator(r), nil
	case *kmsg.JoinGroupRequest:
		return h.srv.groups.join(ctx, h, r), nil
	case *kmsg.SyncGroupRequest:
		return h.srv.groups.sync(ctx, r), nil
	case *kmsg.HeartbeatRequest:
		return h.srv.groups.heartbeat(r), nil
	case *kmsg.LeaveGroupRequest:
		return h.srv.groups.leave(r), nil
	case *kmsg.OffsetCommitRequest:
		return h.srv.groups.offsetCommit(ctx, r), nil
	case *kmsg.OffsetFetchRequest:
		return h.srv.groups.offsetFetch(ctx, r), nil
	case *kmsg.DescribeGroupsRequest:
		return h.srv.groups.describe(r), nil
	case *kmsg.ListGroupsRequest:
		return h.srv.groups.list(r), nil
	}
	return nil, fmt.Errorf("no handler for %s", kmsg.NameForKey(req.key))
}

func (h *handler) metadata(req *kmsg.MetadataRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.MetadataResponse)
	resp.Brokers = h.srv.brokers()
	resp.ClusterID = &h.srv.cfg.ClusterID
	resp.ControllerID = h.srv.controllerID()
	var names []string
	all := req.Topics == nil || (req.Version == 0 && len(req.Topics) == 0)
	if all {
		names = h.srv.s.Topics()
	}
	for _, t := range req.Topics {
		if t.Topic != nil {
			names = append(names, *t.Topic)
		}
	}
	// Kafka's clients ask Metadata v4+ whether to create missing topics;
	// older versions always may. Either way the Stream's
	// Options.AutoCreateTopics decides.
	create := !all && (req.Version < 4 || req.AllowAutoTopicCreation)
	for _, name := range names {
		rt := kmsg.NewMetadataResponseTopic()
		rt.Topic = kmsg.StringPtr(name)
		var t *stream.Topic
		var err error
		if create {
			t, err = h.srv.s.TopicOrCreate(name)
		} else {
			t, err = h.srv.s.Topic(name)
		}
		if err != nil {
			rt.ErrorCode = errorCode(err)
			resp.Topics = append(resp.Topics, rt)
			continue
		}
		for i := range int32(t.NumPartitions()) {
			rt.Partitions = append(rt.Partitions, h.srv.partitionMetadata(name, i))
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return resp
}

func (h *handler) findCoordinator(req *kmsg.FindCoordinatorRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.FindCoordinatorResponse)
	if req.CoordinatorType != 0 {
		resp.ErrorCode = errCoordinatorNotAvailable
		resp.ErrorMessage = kmsg.StringPtr("transactions are not supported")
		resp.NodeID = -1
		return resp
	}
	id, a, ok := h.srv.coordinator()
	if !ok {
		resp.ErrorCode = errCoordinatorNotAvailable
		resp.NodeID = -1
		return resp
	}
	resp.NodeID, resp.Host, resp.Port = id, a.host, a.port
	return resp
}

// topicConfigs are the Kafka topic settings CreateTopics takes and
// DescribeConfigs reports, with what they map to.
func applyTopicConfig(cfg *stream.TopicConfig, name string, value *string) error {
	if value == nil {
		return nil
	}
	v := *value
	num := func() (int64, error) {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("config %s=%q is not a number", name, v)
		}
		return n, nil
	}
	switch name {
	case "retention.ms":
		n, err := num()
		if err != nil {
			return err
		}
		if n < 0 {
			cfg.Retention = -1
		} else {
			cfg.Retention = time.Duration(n) * time.Millisecond
		}
	case "retention.bytes":
		n, err := num()
		if err != nil {
			return err
		}
		cfg.RetentionBytes = stream.ByteSize(max(n, 0))
	case "segment.bytes":
		n, err := num()
		if err != nil {
			return err
		}
		cfg.SegmentBytes = stream.ByteSize(n)
	case "min.insync.replicas":
		n, err := num()
		if err != nil {
			return err
		}
		cfg.MinInSyncReplicas = int(n)
	case "cleanup.policy":
		if v != "delete" {
			return fmt.Errorf("cleanup.policy=%s: only delete is supported", v)
		}
	default:
		return fmt.Errorf("config %s is not supported (supported: retention.ms, retention.bytes, segment.bytes, min.insync.replicas, cleanup.policy=delete)", name)
	}
	return nil
}

// describedConfigs is what DescribeConfigs and CreateTopics v5 report of
// a topic's configuration.
func describedConfigs(c stream.TopicConfig) [][2]string {
	retention := int64(-1)
	if c.Retention >= 0 {
		retention = c.Retention.Milliseconds()
	}
	retBytes := int64(c.RetentionBytes)
	if retBytes == 0 {
		retBytes = -1
	}
	return [][2]string{
		{"cleanup.policy", "delete"},
		{"retention.ms", strconv.FormatInt(retention, 10)},
		{"retention.bytes", strconv.FormatInt(retBytes, 10)},
		{"segment.bytes", strconv.FormatInt(int64(c.SegmentBytes), 10)},
		{"min.insync.replicas", strconv.Itoa(c.MinInSyncReplicas)},
		{"message.timestamp.type", "CreateTime"},
	}
}

func (h *handler) createTopics(req *kmsg.CreateTopicsRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.CreateTopicsResponse)
	for _, rt := range req.Topics {
		out := kmsg.NewCreateTopicsResponseTopic()
		out.Topic = rt.Topic
		cfg := stream.TopicConfig{Partitions: max(int(rt.NumPartitions), 0), ReplicationFactor: max(int(rt.ReplicationFactor), 0)}
		var err error
		code := int16(0)
		for _, c := range rt.Configs {
			if err = applyTopicConfig(&cfg, c.Name, c.Value); err != nil {
				code = errInvalidConfig
				break
			}
		}
		if err == nil && len(rt.ReplicaAssignment) > 0 {
			code, err = errInvalidReplicaAssignment, errors.New("manual replica assignment is not supported")
		}
		if err == nil && cfg.ReplicationFactor > 1 && h.srv.s.Cluster() == nil {
			code, err = errInvalidReplicationFactor, fmt.Errorf("replication factor %d is larger than the 1 broker", cfg.ReplicationFactor)
		}
		if err == nil && req.ValidateOnly {
			if _, terr := h.srv.s.Topic(rt.Topic); terr == nil {
				code, err = errTopicAlreadyExists, fmt.Errorf("topic %s already exists", rt.Topic)
			}
		} else if err == nil {
			var t *stream.Topic
			if t, err = h.srv.s.CreateTopic(rt.Topic, cfg); err != nil {
				code = errorCode(err)
				if code == errInvalidConfig && rt.NumPartitions > 0 {
					code = errInvalidPartitions
				}
				if code == errNotEnoughReplicas { // a factor above the cluster's nodes
					code = errInvalidReplicationFactor
				}
			} else {
				cfg = t.Config()
				h.srv.log.Info("kafka client created a topic", "topic", rt.Topic, "partitions", cfg.Partitions, "client", h.clientID)
			}
		}
		out.ErrorCode, out.ErrorMessage = code, errorMessage(err)
		if err == nil {
			out.NumPartitions, out.ReplicationFactor = int32(cfg.Partitions), int16(max(cfg.ReplicationFactor, 1))
			for _, kv := range describedConfigs(cfg) {
				c := kmsg.NewCreateTopicsResponseTopicConfig()
				c.Name, c.Value, c.Source = kv[0], kmsg.StringPtr(kv[1]), 5 // DEFAULT_CONFIG
				out.Configs = append(out.Configs, c)
			}
		} else {
			out.NumPartitions, out.ReplicationFactor = -1, -1
		}
		resp.Topics = append(resp.Topics, out)
	}
	return resp
}

func (h *handler) deleteTopics(req *kmsg.DeleteTopicsRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.DeleteTopicsResponse)
	for _, name := range req.TopicNames {
		out := kmsg.NewDeleteTopicsResponseTopic()
		out.Topic = kmsg.StringPtr(name)
		err := h.srv.s.DeleteTopic(name)
		out.ErrorCode, out.ErrorMessage = errorCode(err), errorMessage(err)
		if err == nil {
			h.srv.log.Info("kafka client deleted a topic", "topic", name, "client", h.clientID)
		}
		resp.Topics = append(resp.Topics, out)
	}
	return resp
}

// createPartitions grows each topic to the total it names (Kafka's
// CreatePartitions Count) with Stream.CreatePartitions; a total not above
// the current count is INVALID_PARTITIONS, as in Kafka. Manual replica
// assignments are refused: this node holds every partition.
func (h *handler) createPartitions(req *kmsg.CreatePartitionsRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.CreatePartitionsResponse)
	for _, rt := range req.Topics {
		out := kmsg.NewCreatePartitionsResponseTopic()
		out.Topic = rt.Topic
		t, err := h.srv.s.Topic(rt.Topic)
		switch {
		case err != nil:
			out.ErrorCode, out.ErrorMessage = errorCode(err), errorMessage(err)
		case int(rt.Count) <= t.NumPartitions():
			out.ErrorCode = errInvalidPartitions
			out.ErrorMessage = kmsg.StringPtr(fmt.Sprintf("topic %s has %d partitions; the count can only grow", rt.Topic, t.NumPartitions()))
		case len(rt.Assignment) > 0:
			out.ErrorCode = errInvalidReplicaAssignment
			out.ErrorMessage = kmsg.StringPtr("manual replica assignment is not supported")
		case req.ValidateOnly:
		default:
			if err := h.srv.s.CreatePartitions(rt.Topic, int(rt.Count)); err != nil {
				out.ErrorCode, out.ErrorMessage = errorCode(err), errorMessage(err)
				if errors.Is(err, stream.ErrInvalidConfig) {
					out.ErrorCode = errInvalidPartitions
				}
			} else {
				h.srv.log.Info("kafka client added partitions", "topic", rt.Topic, "partitions", rt.Count, "client", h.clientID)
			}
		}
		resp.Topics = append(resp.Topics, out)
	}
	return resp
}

// initProducerID gives an idempotent producer a new producer ID with
// epoch 0; transactional producers are refused with INVALID_REQUEST.
func (h *handler) initProducerID(req *kmsg.InitProducerIDRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.InitProducerIDResponse)
	resp.ProducerID, resp.ProducerEpoch = -1, -1
	if req.TransactionalID != nil {
		resp.ErrorCode = errInvalidRequest
		return resp
	}
	id, err := h.srv.s.NewProducerID()
	if err != nil {
		resp.ErrorCode = errorCode(err)
		return resp
	}
	resp.ProducerID, resp.ProducerEpoch = id, 0
	return resp
}

func (h *handler) describeConfigs(req *kmsg.DescribeConfigsRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.DescribeConfigsResponse)
	for _, r := range req.Resources {
		out := kmsg.NewDescribeConfigsResponseResource()
		out.ResourceType, out.ResourceName = r.ResourceType, r.ResourceName
		var kvs [][2]string
		switch r.ResourceType {
		case kmsg.ConfigResourceTypeTopic:
			t, err := h.srv.s.Topic(r.ResourceName)
			if err != nil {
				out.ErrorCode, out.ErrorMessage = errorCode(err), errorMessage(err)
				break
			}
			kvs = describedConfigs(t.Config())
		case kmsg.ConfigResourceTypeBroker:
			kvs = [][2]string{{"broker.id", strconv.Itoa(int(h.srv.cfg.NodeID))}}
		default:
			out.ErrorCode = errInvalidRequest
			out.ErrorMessage = kmsg.StringPtr(fmt.Sprintf("resource type %v is not supported", r.ResourceType))
		}
		for _, kv := range kvs {
			if r.ConfigNames != nil && !contains(r.ConfigNames, kv[0]) {
				continue
			}
			c := kmsg.NewDescribeConfigsResponseResourceConfig()
			c.Name, c.Value, c.ReadOnly = kv[0], kmsg.StringPtr(kv[1]), true
			c.Source = kmsg.ConfigSourceDefaultConfig
			c.IsDefault = true
			out.Configs = append(out.Configs, c)
		}
		resp.Resources = append(resp.Resources, out)
	}
	return resp
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
