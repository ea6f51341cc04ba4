module github.com/instream/stream

go 1.25.0

require (
	github.com/dustin/go-humanize v1.1.0
	github.com/google/btree v1.1.3
	go.etcd.io/bbolt v1.5.0
	golang.org/x/sys v0.45.0
)
