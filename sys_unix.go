//go:build unix && !linux

package stream

import (
	"os"

	"golang.org/x/sys/unix"
)

// fallocate is Linux's; elsewhere preallocate writes the zeros itself.
func fallocate(*os.File, int64) error { return unix.ENOSYS }

// populate is a no-op outside Linux: pages fault in as appends reach them.
func populate([]byte, bool) {}

// fdatasync is a full fsync outside Linux (on macOS, F_FULLFSYNC).
func fdatasync(f *os.File) error { return f.Sync() }
