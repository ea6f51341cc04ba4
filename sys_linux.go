package stream

import (
	"os"

	"golang.org/x/sys/unix"
)

// System calls that differ between Linux and the other Unix systems.

// fallocate reserves the blocks of f up to size (growing it), so writes
// through a mapping cannot fail for want of space.
func fallocate(f *os.File, size int64) error {
	return unix.Fallocate(int(f.Fd()), 0, 0, size)
}

// populate faults the pages of b in for writing, in one call instead of a
// page fault per 4 KiB. Best effort: kernels before 5.14 lack it.
func populate(b []byte) {
	_ = unix.Madvise(b, unix.MADV_POPULATE_WRITE)
}

// fdatasync flushes f's data (and the metadata needed to read it back).
func fdatasync(f *os.File) error {
	return unix.Fdatasync(int(f.Fd()))
}
