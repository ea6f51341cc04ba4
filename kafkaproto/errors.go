package kafkaproto

import (
	"errors"

	"github.com/instream/stream"
)

// Kafka's error codes this server answers with (Kafka's
// org.apache.kafka.common.protocol.Errors).
const (
	errUnknownServer            int16 = -1
	errOffsetOutOfRange         int16 = 1
	errCorruptMessage           int16 = 2
	errUnknownTopicOrPartition  int16 = 3
	errLeaderNotAvailable       int16 = 5
	errNotLeaderForPartition    int16 = 6
	errRequestTimedOut          int16 = 7
	errMessageTooLarge          int16 = 10
	errCoordinatorNotAvailable  int16 = 15
	errNotCoordinator           int16 = 16
	errInvalidTopic             int16 = 17
	errNotEnoughReplicas        int16 = 19
	errIllegalGeneration        int16 = 22
	errInconsistentGroupProto   int16 = 23
	errInvalidGroupID           int16 = 24
	errUnknownMemberID          int16 = 25
	errInvalidSessionTimeout    int16 = 26
	errRebalanceInProgress      int16 = 27
	errUnsupportedVersion       int16 = 35
	errTopicAlreadyExists       int16 = 36
	errInvalidPartitions        int16 = 37
	errInvalidReplicationFactor int16 = 38
	errInvalidReplicaAssignment int16 = 39
	errInvalidConfig            int16 = 40
	errInvalidRequest           int16 = 42
	errOutOfOrderSequence       int16 = 45
	errInvalidProducerEpoch     int16 = 47
	errKafkaStorage             int16 = 56
	errNonEmptyGroup            int16 = 68
	errGroupIDNotFound          int16 = 69
	errFetchSessionIDNotFound   int16 = 70
	errMemberIDRequired         int16 = 79
	errFencedInstanceID         int16 = 82
	errInvalidRecord            int16 = 87
)

// errorCode maps an error of package stream to Kafka's code for it.
func errorCode(err error) int16 {
	switch {
	case err == nil:
		return 0
	case errors.Is(err, stream.ErrUnknownTopic):
		return errUnknownTopicOrPartition
	case errors.Is(err, stream.ErrOffsetOutOfRange):
		return errOffsetOutOfRange
	case errors.Is(err, stream.ErrRecordTooLarge):
		return errMessageTooLarge
	case errors.Is(err, stream.ErrCorrupt):
		return errCorruptMessage
	case errors.Is(err, stream.ErrOutOfOrderSequence):
		return errOutOfOrderSequence
	case errors.Is(err, stream.ErrFenced):
		return errInvalidProducerEpoch
	case errors.Is(err, stream.ErrNotLeader):
		return errNotLeaderForPartition
	case errors.Is(err, stream.ErrNotEnoughReplicas):
		return errNotEnoughReplicas
	case errors.Is(err, stream.ErrTimeout):
		return errRequestTimedOut
	case errors.Is(err, stream.ErrTopicExists):
		return errTopicAlreadyExists
	case errors.Is(err, stream.ErrInvalidName):
		return errInvalidTopic
	case errors.Is(err, stream.ErrInvalidConfig):
		return errInvalidConfig
	case errors.Is(err, stream.ErrGroupNotEmpty):
		return errNonEmptyGroup
	case errors.Is(err, stream.ErrClosed):
		return errKafkaStorage
	}
	return errUnknownServer
}

// errorMessage is err's text for the error message fields of newer
// versions; nil for no error.
func errorMessage(err error) *string {
	if err == nil {
		return nil
	}
	s := err.Error()
	return &s
}
