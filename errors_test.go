package stream_test

import (
	"context"
	"errors"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/instream/stream"
)

// Errors read as one sentence with one "stream: " prefix, however deep
// the wrapping, and still match their sentinels.
func TestErrorsOnePrefix(t *testing.T) {
	s, dir := open(t, &stream.Options{MaxRecordBytes: 4 * stream.KiB})
	tp := topic(t, s, "t", 1)
	part, _ := tp.Partition(0)
	p := newProducer(t, s, stream.ProducerConfig{})
	ctx := context.Background()
	_, topicErr := s.Topic("missing")
	_, partErr := tp.Partition(5)
	_, appendErr := part.Append(&stream.Record{Value: make([]byte, 8*stream.KiB)})
	_, prodErr := s.NewProducer(stream.ProducerConfig{Acks: 9})
	_, nameErr := s.CreateTopic("bad/name", stream.TopicConfig{})
	_, existsErr := s.CreateTopic("t", stream.TopicConfig{})
	_, cfgErr := s.CreateTopic("neg", stream.TopicConfig{Partitions: -1})
	_, openErr := stream.Open(dir, nil)
	var sendErrAsync error
	p.SendAsync(&stream.Record{Topic: "missing"}, func(_ *stream.Record, err error) { sendErrAsync = err })
	for _, tt := range []struct {
		name string
		err  error
		want error
	}{
		{"Topic", topicErr, stream.ErrUnknownTopic},
		{"Topic.Partition", partErr, stream.ErrUnknownTopic},
		{"Append", appendErr, stream.ErrRecordTooLarge},
		{"NewProducer", prodErr, stream.ErrInvalidConfig},
		{"CreateTopic name", nameErr, stream.ErrInvalidName},
		{"CreateTopic exists", existsErr, stream.ErrTopicExists},
		{"CreateTopic config", cfgErr, stream.ErrInvalidConfig},
		{"Send", p.Send(ctx, &stream.Record{Topic: "missing"}), stream.ErrUnknownTopic},
		{"SendAsync", sendErrAsync, stream.ErrUnknownTopic},
		{"CreatePartitions", s.CreatePartitions("missing", 2), stream.ErrUnknownTopic},
		{"DeleteTopic", s.DeleteTopic("missing"), stream.ErrUnknownTopic},
		{"Open locked", openErr, nil},
	} {
		if tt.err == nil || tt.want != nil && !errors.Is(tt.err, tt.want) {
			t.Errorf("%s: %v, want %v", tt.name, tt.err, tt.want)
			continue
		}
		if n := strings.Count(tt.err.Error(), "stream: "); n != 1 || !strings.HasPrefix(tt.err.Error(), "stream: ") {
			t.Errorf("%s: %q has %d \"stream: \" prefixes, want one, in front", tt.name, tt.err, n)
		}
	}
	// The lock error names the process holding the directory.
	if pid := strconv.Itoa(os.Getpid()); !strings.Contains(openErr.Error(), "process "+pid) {
		t.Errorf("Open of a locked directory: %q does not name the holding process %s", openErr, pid)
	}
}
