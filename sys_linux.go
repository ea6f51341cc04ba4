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

// populate faults the pages of b in, in one call instead of a page fault
// per 4 KiB. forWrite maps them writable, which also makes them dirty:
// the next fsync writes their zeros before the data comes, doubling the
// bytes written under SyncAlways, so it is for SyncPeriodic and
// SyncNever only; otherwise the pages are mapped read-only and the first
// write to each takes a minor fault. Best effort: kernels before 5.14
// lack both.
func populate(b []byte, forWrite bool) {
	advice := unix.MADV_POPULATE_READ
	if forWrite {
		advice = unix.MADV_POPULATE_WRITE
	}
	_ = unix.Madvise(b, advice)
}

// fdatasync flushes f's data (and the metadata needed to read it back).
func fdatasync(f *os.File) error {
	return unix.Fdatasync(int(f.Fd()))
}
