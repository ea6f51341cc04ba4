package debughttp_test

import (
	"encoding/json"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"os"

	"github.com/instream/stream"
	"github.com/instream/stream/debughttp"
)

// Mount the page next to net/http/pprof, and read its JSON.
func ExampleHandler() {
	dir, _ := os.MkdirTemp("", "debughttp")
	defer os.RemoveAll(dir)
	s, err := stream.Open(dir, nil)
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()
	t, _ := s.CreateTopic("events", stream.TopicConfig{Partitions: 3})
	p, _ := t.Partition(0)
	p.Append(&stream.Record{Value: []byte(`{"hello":"world"}`)})

	mux := http.NewServeMux()
	// import _ "net/http/pprof" registers /debug/pprof/ on http.DefaultServeMux.
	mux.Handle("/debug/stream", debughttp.Handler(s, nil))
	srv := httptest.NewServer(mux) // in a service: http.ListenAndServe("127.0.0.1:8080", mux)
	defer srv.Close()

	resp, err := http.Get(srv.URL + "/debug/stream?view=records&topic=events&partition=0&format=json")
	if err != nil {
		log.Fatal(err)
	}
	defer resp.Body.Close()
	var page debughttp.Records
	if err := json.NewDecoder(resp.Body).Decode(&page); err != nil {
		log.Fatal(err)
	}
	for _, r := range page.Records {
		fmt.Printf("%d (%s):\n%s\n", r.Offset, r.Value.As, r.Value.Text)
	}
	// Output:
	// 0 (json):
	// {
	//   "hello": "world"
	// }
}
