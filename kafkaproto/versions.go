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

// versions lists, per API key, the versions this server implements:
// each range runs through the first "flexible" version (KIP-482: tagged
// fields, compact strings), which Kafka 2.4+ clients prefer, and stops
// before fields this server does not implement (topic IDs, batched
// coordinators and groups, KIP-848, transactions' KIP-890). Flexible
// versions need kmsg v1.15.1 or later: v1.14.0 looped over a
// tagged-field count read from the input even past its end, so that a
// 40-byte frame held a goroutine for seconds (FuzzDecodeRequest's seed
// corpus holds one).
var versions = []struct{ key, min, max int16 }{
	{produceKey, 3, 9},         // v3: RecordBatch v2 only; v9 flexible
	{fetchKey, 4, 12},          // v4: RecordBatch v2; v7 sessions answered "none"; v12 flexible; v13 topic IDs
	{listOffsetsKey, 1, 6},     // v1: one offset per partition; v6 flexible; v7 max timestamp
	{metadataKey, 1, 9},        // v9 flexible; v10 topic IDs
	{offsetCommitKey, 2, 8},    // v2: retention time, ignored; v8 flexible
	{offsetFetchKey, 1, 7},     // v6 flexible; v7 require stable (no transactions: all stable); v8 batched groups
	{findCoordinatorKey, 0, 3}, // v3 flexible; v4 batched keys
	{joinGroupKey, 0, 6},       // v6 flexible
	{heartbeatKey, 0, 4},
	{leaveGroupKey, 0, 4},
	{syncGroupKey, 0, 4},
	{describeGroupsKey, 0, 5},
	{listGroupsKey, 0, 3},
	{apiVersionsKey, 0, 3},
	{createTopicsKey, 0, 5},
	{deleteTopicsKey, 0, 4},
	{initProducerIDKey, 0, 2},
	{describeConfigsKey, 0, 4},
	{createPartitionsKey, 0, 2},
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
	// Every served version must be one kmsg can encode.
	for _, v := range append(slices.Clip(versions), saslVersions...) {
		if r := kmsg.RequestForKey(v.key); r == nil || r.MaxVersion() < v.max {
			panic(fmt.Sprintf("kafkaproto: kmsg cannot encode %s v%d", kmsg.NameForKey(v.key), v.max))
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
	if h.srv.cfg.sasl() {
		served = append(slices.Clip(versions), saslVersions...)
	}
	for _, v := range served {
		k := kmsg.NewApiVersionsResponseApiKey()
		k.ApiKey, k.MinVersion, k.MaxVersion = v.key, v.min, v.max
		resp.ApiKeys = append(resp.ApiKeys, k)
	}
	return resp
}
