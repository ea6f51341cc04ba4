package kafkaproto

import (
	"context"
	"fmt"

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
// Each range stops before the version that would change the semantics
// of a field this server does not implement (topic IDs in Fetch v13 and
// Metadata v10+ answers, batched coordinators in FindCoordinator v4,
// batched groups in OffsetFetch v8, ListOffsets' max-timestamp in v7).
var versions = []struct{ key, min, max int16 }{
	{produceKey, 3, 9},      // v3: RecordBatch v2 only
	{fetchKey, 4, 12},       // v4: RecordBatch v2; v7 sessions answered "none"
	{listOffsetsKey, 1, 6},  // v1: one offset per partition
	{metadataKey, 1, 9},     // v9: flexible; v10 adds topic IDs
	{offsetCommitKey, 2, 8}, // v2: retention time, ignored
	{offsetFetchKey, 1, 7},  // v8 batches groups
	{findCoordinatorKey, 0, 3},
	{joinGroupKey, 0, 7},
	{heartbeatKey, 0, 4},
	{leaveGroupKey, 0, 4},
	{syncGroupKey, 0, 5},
	{describeGroupsKey, 0, 5},
	{listGroupsKey, 0, 4},
	{apiVersionsKey, 0, 3},
	{createTopicsKey, 0, 5},
	{deleteTopicsKey, 0, 5},
	{initProducerIDKey, 0, 4},
	{describeConfigsKey, 0, 4},
	{createPartitionsKey, 0, 3},
}

// supported returns the versions of key this server serves.
func supported(key int16) (lo, hi int16, ok bool) {
	for _, v := range versions {
		if v.key == key {
			return v.min, v.max, true
		}
	}
	return 0, 0, false
}

func init() {
	// Every served version must be one kmsg can encode.
	for _, v := range versions {
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
	for _, v := range versions {
		k := kmsg.NewApiVersionsResponseApiKey()
		k.ApiKey, k.MinVersion, k.MaxVersion = v.key, v.min, v.max
		resp.ApiKeys = append(resp.ApiKeys, k)
	}
	return resp
}
