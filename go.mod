module github.com/instream/stream

go 1.25.0

require github.com/dustin/go-humanize v1.1.0
