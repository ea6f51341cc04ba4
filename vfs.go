package stream

import (
	"errors"
	"io"
	"os"

	"golang.org/x/sys/unix"
)

// fileSystem is the seam between the storage engine and the disk, in the
// spirit of Pebble's vfs.FS: every file operation of the partitions'
// logs, indexes, recovery points and topic directories goes through it.
// Production uses osFS; the tests plug in an in-memory file system that
// fails chosen operations and can cut the power, forgetting every byte
// that was not fsynced and every directory entry whose directory was not
// (memfs_test.go). meta.db (bbolt) and the directory lock stay on the
// operating system's file system.
//
// The append path does not go through the seam: an append is a copy into
// the active segment's memory mapping, which the file handed out once
// (vfsFile.Map).
type fileSystem interface {
	// OpenFile opens a file as os.OpenFile does (O_RDWR, O_CREATE,
	// O_EXCL, O_TRUNC are the flags used).
	OpenFile(name string, flag int, perm os.FileMode) (vfsFile, error)
	// Remove removes a file or an empty directory. The removal is
	// durable once the directory is synced.
	Remove(name string) error
	// RemoveAll removes a directory tree, as os.RemoveAll.
	RemoveAll(name string) error
	// Rename renames a file within its directory; durable once the
	// directory is synced.
	Rename(oldname, newname string) error
	// MkdirAll creates a directory and its missing parents. Each new
	// entry is durable once its parent directory is synced.
	MkdirAll(dir string, perm os.FileMode) error
	// ReadDir lists a directory, sorted by name.
	ReadDir(dir string) ([]os.DirEntry, error)
	// Exists reports whether name exists.
	Exists(name string) (bool, error)
	// SyncDir fsyncs a directory: the entries created, renamed and
	// removed in it so far become durable.
	SyncDir(dir string) error
}

// vfsFile is an open file of a fileSystem.
type vfsFile interface {
	io.ReaderAt
	io.WriterAt
	// Size returns the file's size in bytes.
	Size() (int64, error)
	// Truncate changes the file's size; space past it reads as zeros
	// when the file grows again.
	Truncate(size int64) error
	// Sync makes the file's data and metadata durable (fsync).
	Sync() error
	// SyncData makes at least the first n bytes of data durable, with
	// the size (fdatasync; the operating system syncs the whole file,
	// as Pebble's SyncTo may).
	SyncData(n int64) error
	// Allocate grows the file to size bytes with every block reserved,
	// so writes through a mapping cannot fail for want of space.
	Allocate(size int64) error
	// Map maps the first size bytes of the file, shared: writes through
	// a writable mapping are writes to the file, durable after a
	// SyncData covering them. size may exceed the file's size; only the
	// part inside the file may be touched.
	Map(size int64, writable bool) ([]byte, error)
	// Unmap releases a mapping Map returned.
	Unmap(m []byte) error
	Close() error
}

// osFS is the operating system's file system.
type osFS struct{}

func (osFS) OpenFile(name string, flag int, perm os.FileMode) (vfsFile, error) {
	f, err := os.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return osFile{f}, nil
}

func (osFS) Remove(name string) error             { return os.Remove(name) }
func (osFS) RemoveAll(name string) error          { return os.RemoveAll(name) }
func (osFS) Rename(oldname, newname string) error { return os.Rename(oldname, newname) }
func (osFS) MkdirAll(dir string, perm os.FileMode) error {
	return os.MkdirAll(dir, perm)
}
func (osFS) ReadDir(dir string) ([]os.DirEntry, error) { return os.ReadDir(dir) }

func (osFS) Exists(name string) (bool, error) {
	_, err := os.Stat(name)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	return err == nil, err
}

func (osFS) SyncDir(dir string) error { return syncDir(dir) }

// syncDir fsyncs a directory of the operating system's file system.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	return errors.Join(err, d.Close())
}

// osFile is an *os.File with the abilities vfsFile adds.
type osFile struct{ *os.File }

func (f osFile) Size() (int64, error) {
	fi, err := f.Stat()
	if err != nil {
		return 0, err
	}
	return fi.Size(), nil
}

func (f osFile) SyncData(int64) error { return fdatasync(f.File) }

func (f osFile) Allocate(size int64) error { return preallocate(f.File, size) }

func (f osFile) Map(size int64, writable bool) ([]byte, error) {
	prot := unix.PROT_READ
	if writable {
		prot |= unix.PROT_WRITE
	}
	return unix.Mmap(int(f.Fd()), 0, int(size), prot, unix.MAP_SHARED)
}

func (osFile) Unmap(m []byte) error { return unix.Munmap(m) }

// preallocate grows f to size bytes with every block allocated, so writes
// through a mapping cannot fail for want of space.
func preallocate(f *os.File, size int64) error {
	err := fallocate(f, size)
	if err == nil || !(errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.ENOSYS)) {
		return err
	}
	// The file system cannot fallocate: write the zeros ourselves.
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	zeros := make([]byte, 1<<20)
	for pos := fi.Size(); pos < size; {
		n := min(int64(len(zeros)), size-pos)
		if _, err := f.WriteAt(zeros[:n], pos); err != nil {
			return err
		}
		pos += n
	}
	return nil
}

// readFile reads a whole (small) file.
func readFile(fsys fileSystem, name string) ([]byte, error) {
	f, err := fsys.OpenFile(name, os.O_RDONLY, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	size, err := f.Size()
	if err != nil {
		return nil, err
	}
	b := make([]byte, size)
	n, err := f.ReadAt(b, 0)
	if err == io.EOF {
		err = nil
	}
	return b[:n], err
}

// writeFile writes a whole file, and fsyncs it (not its directory) when
// sync is set.
func writeFile(fsys fileSystem, name string, data []byte, sync bool) error {
	f, err := fsys.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	_, err = f.WriteAt(data, 0)
	if err == nil && sync {
		err = f.Sync()
	}
	return errors.Join(err, f.Close())
}
