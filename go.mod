module github.com/instream/stream

go 1.26.0

require (
	github.com/dustin/go-humanize v1.1.0
	github.com/google/btree v1.1.3
	github.com/klauspost/compress v1.20.3
	github.com/pierrec/lz4/v4 v4.1.33
	go.etcd.io/bbolt v1.5.0
	go.etcd.io/raft/v3 v3.6.0
	golang.org/x/sys v0.45.0
)

require (
	github.com/gogo/protobuf v1.3.2 // indirect
	github.com/golang/protobuf v1.5.4 // indirect
	google.golang.org/protobuf v1.33.0 // indirect
)

require github.com/twmb/franz-go/pkg/kmsg v1.15.1
