package kafkaproto

import (
	"context"
	"errors"
	"net"
	"testing"

	"github.com/instream/stream"
)

// TestServeClusterConfig: Config.Brokers is refused on a single node,
// and a malformed advertised address anywhere; nothing is served then.
// (Multi-broker Metadata and failover are tested against franz-go in
// e2e/cluster_test.go.)
func TestServeClusterConfig(t *testing.T) {
	s, err := stream.Open(t.TempDir(), &stream.Options{Sync: stream.SyncNever})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for name, cfg := range map[string]Config{
		"brokers on a single node": {Brokers: map[stream.NodeID]string{2: "127.0.0.1:9093"}},
		"advertised address":       {AdvertisedAddr: "nohost"},
		"advertised port":          {AdvertisedAddr: "127.0.0.1:99999"},
	} {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		if err := Serve(context.Background(), ln, s, cfg); !errors.Is(err, stream.ErrInvalidConfig) {
			t.Errorf("%s: Serve: %v, want ErrInvalidConfig", name, err)
		}
		ln.Close()
	}
}
