package kafkaproto

import (
	"context"
	"fmt"
	"slices"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// The API keys served.
const (
	produceKey          = 0
	fetchKey            = 1
	listOffsetsKey      = 2
	metadataKey         = 3
	offsetCommitKey     = 8
	offsetFetchKey      = 9
	findCoordinatorKey  = 10
	joinGroupKey        = 11
	heartbeatKey        = 12
	leaveGroupKey       = 13
	syncGroupKey        = 14
	describeGroupsKey   = 15
	listGroupsKey       = 16
	apiVersionsKey      = 18
	createTopicsKey     = 19
	deleteTopicsKey     = 20
	initProducerIDKey   = 22
	describeConfigsKey  = 32
	createPartitionsKey = 37
)

// versions lists, per API key, the versions this server implements.
//
// Each range stops at the last version before the protocol's "flexible"
// encoding (KIP-482, tagged fields): kmsg v1.14.0, the last release that
// builds with Go 1.25, decodes a tagged-field count from the input and
// loops that many times even after the input ran out, so a 40-byte
// flexible frame can hold a connection's goroutine for seconds of CPU
// (fixed in kmsg v1.15.1, which needs Go 1.26). Kafka's clients all
// speak these versions. The ranges also stop before fields this server
// does not implement (topic IDs, batched coordinators and groups).
var versions = []struct{ key, min, max int16 }{
	{produceKey, 3, 8},     // v3: RecordBatch v2 only
	{fetchKey, 4, 11},      // v4: RecordBatch v2; v7 sessions answered "none"
	{listOffsetsKey, 1, 5}, // v1: one offset per partition
	{metadataKey, 1, 8},
	{offsetCommitKey, 2, 7}, // v2: retention time, ignored
	{offsetFetchKey, 1, 5},
	{findCoordinatorKey, 0, 2},
	{joinGroupKey, 0, 5},
	{heartbeatKey, 0, 3},
	{leaveGroupKey, 0, 3},
	{syncGroupKey, 0, 3},
	{describeGroupsKey, 0, 4},
	{listGroupsKey, 0, 2},
	{apiVersionsKey, 0, 2},
	{createTopicsKey, 0, 4},
	{deleteTopicsKey, 0, 3},
	{initProducerIDKey, 0, 1},
	{describeConfigsKey, 0, 3},
	{createPartitionsKey, 0, 1},
}

// supported returns the versions of key this server can decode; the
// SASL keys are answered only with Config.Authenticate set.
func supported(key int16) (lo, hi int16, ok bool) {
	for _, v := range append(slices.Clip(versions), saslVersions...) {
		if v.key == key {
			return v.min, v.max, true
		}
	}
	return 0, 0, false
}

func init() {
	// Every served version must be one kmsg can encode, and none
	// flexible (see versions).
	for _, v := range append(slices.Clip(versions), saslVersions...) {
		r := kmsg.RequestForKey(v.key)
		if r == nil || r.MaxVersion() < v.max {
			panic(fmt.Sprintf("kafkaproto: kmsg cannot encode %s v%d", kmsg.NameForKey(v.key), v.max))
		}
		if r.SetVersion(v.max); r.IsFlexible() {
			panic(fmt.Sprintf("kafkaproto: %s v%d is flexible", kmsg.NameForKey(v.key), v.max))
		}
	}
}

// apiVersions answers ApiVersions; req is nil when the client asked for a
// version this server does not serve: the answer is then v0 with
// UNSUPPORTED_VERSION and the list, so the client can retry (KIP-511).
func (h *handler) apiVersions(_ context.Context, version int16, req *kmsg.ApiVersionsRequest) kmsg.Response {
	resp := kmsg.NewPtrApiVersionsResponse()
	resp.SetVersion(version)
	if req == nil {
		resp.SetVersion(0)
		resp.ErrorCode = errUnsupportedVersion
	}
	served := versions
	if h.srv.cfg.Authenticate != nil {
		served = append(slices.Clip(versions), saslVersions...)
	}
	for _, v := range served {
		k := kmsg.NewApiVersionsResponseApiKey()
		k.ApiKey, k.MinVersion, k.MaxVersion = v.key, v.min, v.max
		resp.ApiKeys = append(resp.ApiKeys, k)
	}
	return resp
}
