package stream

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
)

// MemFS is a strict in-memory fileSystem for tests, after Pebble's
// vfs.NewStrictMem and errorfs: it keeps, besides every file's and
// directory's current state, what an fsync made durable, so CutPower
// can drop everything else, as a power loss drops the page cache; and
// Fault can fail any operation (EIO, ENOSPC) on the way.
//
// Durability rules, stricter than any real file system:
//   - a file's bytes are durable only after Sync, or SyncData for the
//     prefix it names; Truncate and Allocate change the size durably only
//     with the next sync of the file;
//   - a directory entry (a create, rename or remove, a new subdirectory)
//     is durable only after SyncDir of its directory;
//   - writes through a mapping are the file's bytes (the mapping is the
//     file's buffer), durable like any other write.
//
// After the power is cut every operation fails with EIO (the machine is
// down); Restart returns the file system as the next boot finds it.
type MemFS struct {
	mu    sync.Mutex
	root  *memNode
	ops   int                            // operations counted so far
	cutAt int                            // cut the power before operation cutAt (0: never)
	dead  bool                           // the power is cut
	fault func(op, path string) error    // fails an operation when it returns an error
	log   func(op, path string, ok bool) // traces operations when set
	onCut func()                         // runs when the power goes
	hook  func(op, path string)          // runs before each operation, unlocked
	open  int                            // files open now (OpenFile not yet Closed)
	peak  int                            // the most open at once since ResetPeakOpenFiles
}

// OpenFiles returns how many files are open: opened and not yet closed,
// as the descriptors of /proc/self/fd would count them (a mapping holds
// none).
func (m *MemFS) OpenFiles() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.open
}

// PeakOpenFiles returns the most files open at once since the last
// ResetPeakOpenFiles (or NewMemFS).
func (m *MemFS) PeakOpenFiles() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.peak
}

// ResetPeakOpenFiles starts counting PeakOpenFiles again from now.
func (m *MemFS) ResetPeakOpenFiles() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.peak = m.open
}

type memNode struct {
	dir bool
	// A directory's entries now, and as of its last SyncDir.
	children, durableChildren map[string]*memNode
	// A file's bytes now, and as of its last sync. While mapped, data's
	// backing array is the mapping: it never moves, and the bytes
	// between len(data) and cap(data) are zero.
	data, durable []byte
	mapped        int  // live mappings
	everMapped    bool // written through a mapping (its unsynced bytes are never kept)
}

// NewMemFS returns an empty in-memory file system.
func NewMemFS() *MemFS {
	return &MemFS{root: newMemDir()}
}

func newMemDir() *memNode {
	return &memNode{dir: true, children: map[string]*memNode{}, durableChildren: map[string]*memNode{}}
}

// MkdirAllDurable creates dir and its parents as if they had long
// existed: the directory a user hands to Open.
func (m *MemFS) MkdirAllDurable(dir string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := m.root
	for _, name := range splitPath(dir) {
		c := n.children[name]
		if c == nil {
			c = newMemDir()
			n.children[name] = c
		}
		n.durableChildren[name] = c
		n = c
	}
}

// CutPowerAfter makes the power go before the (m.Ops()+n)th operation
// from now: that operation and every later one fail with EIO.
func (m *MemFS) CutPowerAfter(n int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.cutAt = m.ops + n
}

// CutPower cuts the power now.
func (m *MemFS) CutPower() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.cutLocked()
}

func (m *MemFS) cutLocked() {
	if !m.dead {
		m.dead = true
		if m.onCut != nil {
			m.onCut()
		}
	}
}

// OnCut sets a function run (with the file system locked: it must not
// call it) the moment the power goes.
func (m *MemFS) OnCut(f func()) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.onCut = f
}

// Dead reports whether the power is cut.
func (m *MemFS) Dead() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.dead
}

// Ops returns the number of operations so far.
func (m *MemFS) Ops() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.ops
}

// SetFault makes every operation ask f first: a non-nil error fails the
// operation with it, changing nothing. Operations are "open", "remove",
// "removeall", "rename", "mkdir", "readdir", "exists", "syncdir",
// "read", "write", "truncate", "sync", "syncdata", "allocate", "map".
func (m *MemFS) SetFault(f func(op, path string) error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.fault = f
}

// Hook makes every operation call f first, with the file system
// unlocked: f may block, or use the Stream, to order a race.
func (m *MemFS) Hook(f func(op, path string)) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.hook = f
}

// before runs the hook; m.mu is not held.
func (m *MemFS) before(op, path string) {
	m.mu.Lock()
	h := m.hook
	m.mu.Unlock()
	if h != nil {
		h(op, path)
	}
}

// Trace makes every operation call f with its name, path and whether it
// happened (not failed by a fault or the power).
func (m *MemFS) Trace(f func(op, path string, ok bool)) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.log = f
}

// Restart returns the file system as it is after the power came back:
// every durable directory entry with its durable bytes, plus, for files
// never written through a mapping, a random choice of their unsynced
// 4 KiB pages (the kernel may have written any dirty page back before
// the cut). The power must be cut.
func (m *MemFS) Restart(seed uint64) *MemFS {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.dead {
		panic("memfs: Restart with the power on")
	}
	rng := rand.New(rand.NewPCG(seed, 11))
	seen := map[*memNode]*memNode{}
	var boot func(n *memNode) *memNode
	boot = func(n *memNode) *memNode {
		if c, ok := seen[n]; ok {
			return c
		}
		if n.dir {
			c := newMemDir()
			seen[n] = c
			for name, child := range n.durableChildren {
				cc := boot(child)
				c.children[name], c.durableChildren[name] = cc, cc
			}
			return c
		}
		d := slices.Clone(n.durable)
		if !n.everMapped && seed != 0 {
			d = keepSomePages(rng, d, n.data)
		}
		c := &memNode{data: d, durable: slices.Clone(d)}
		seen[n] = c
		return c
	}
	return &MemFS{root: boot(m.root)}
}

// keepSomePages returns durable with a random half of the 4 KiB pages in
// which data differs from it replaced by data's, and the size of either.
func keepSomePages(rng *rand.Rand, durable, data []byte) []byte {
	const page = 4096
	out := slices.Clone(durable)
	if rng.IntN(2) == 0 {
		// The size went to disk with some of the pages.
		if len(data) > len(out) {
			out = append(out, make([]byte, len(data)-len(out))...)
		} else {
			out = out[:len(data)]
		}
	}
	for p := 0; p < len(out) && p < len(data); p += page {
		e := min(p+page, len(out), len(data))
		if !slices.Equal(out[p:e], data[p:e]) && rng.IntN(2) == 0 {
			copy(out[p:e], data[p:e])
		}
	}
	return out
}

func splitPath(p string) []string {
	p = filepath.Clean(p)
	var parts []string
	for _, s := range strings.Split(p, "/") {
		if s != "" && s != "." {
			parts = append(parts, s)
		}
	}
	return parts
}

var errMemDead = fmt.Errorf("memfs: power cut: %w", syscall.EIO)

// begin counts an operation and decides whether it may happen. m.mu is
// held.
func (m *MemFS) begin(op, path string) error {
	if m.dead {
		return errMemDead
	}
	m.ops++
	if m.cutAt > 0 && m.ops >= m.cutAt {
		m.cutLocked()
		if m.log != nil {
			m.log(op, path, false)
		}
		return errMemDead
	}
	if m.fault != nil {
		if err := m.fault(op, path); err != nil {
			if m.log != nil {
				m.log(op, path, false)
			}
			return &fs.PathError{Op: op, Path: path, Err: err}
		}
	}
	if m.log != nil {
		m.log(op, path, true)
	}
	return nil
}

// lookup returns the node at path and its parent directory.
func (m *MemFS) lookup(path string) (parent, n *memNode, name string, err error) {
	parts := splitPath(path)
	if len(parts) == 0 {
		return nil, m.root, "", nil
	}
	d := m.root
	for _, p := range parts[:len(parts)-1] {
		c := d.children[p]
		if c == nil || !c.dir {
			return nil, nil, "", &fs.PathError{Op: "lookup", Path: path, Err: fs.ErrNotExist}
		}
		d = c
	}
	name = parts[len(parts)-1]
	return d, d.children[name], name, nil
}

func (m *MemFS) OpenFile(name string, flag int, perm os.FileMode) (vfsFile, error) {
	m.before("open", name)
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.begin("open", name); err != nil {
		return nil, err
	}
	dir, n, base, err := m.lookup(name)
	if err != nil {
		return nil, err
	}
	switch {
	case n == nil && flag&os.O_CREATE == 0:
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
	case n != nil && flag&os.O_CREATE != 0 && flag&os.O_EXCL != 0:
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrExist}
	case n != nil && n.dir:
		return nil, &fs.PathError{Op: "open", Path: name, Err: syscall.EISDIR}
	case n == nil:
		n = &memNode{}
		dir.children[base] = n
	case flag&os.O_TRUNC != 0:
		if err := n.truncate(0); err != nil {
			return nil, err
		}
	}
	m.open++
	m.peak = max(m.peak, m.open)
	return &memFile{fs: m, n: n, name: name}, nil
}

func (m *MemFS) Remove(name string) error {
	m.before("remove", name)
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.begin("remove", name); err != nil {
		return err
	}
	dir, n, base, err := m.lookup(name)
	if err != nil {
		return err
	}
	if n == nil {
		return &fs.PathError{Op: "remove", Path: name, Err: fs.ErrNotExist}
	}
	if n.dir && len(n.children) > 0 {
		return &fs.PathError{Op: "remove", Path: name, Err: syscall.ENOTEMPTY}
	}
	delete(dir.children, base)
	return nil
}

func (m *MemFS) RemoveAll(name string) error {
	m.before("removeall", name)
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.begin("removeall", name); err != nil {
		return err
	}
	dir, n, base, err := m.lookup(name)
	if err != nil || n == nil {
		return nil
	}
	// The entries inside are gone durably only with their directory's
	// sync; the tree is unreachable once its entry in dir is gone, and
	// reachable again (whole) if that removal is not durable.
	delete(dir.children, base)
	return nil
}

func (m *MemFS) Rename(oldname, newname string) error {
	m.before("rename", oldname)
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.begin("rename", oldname); err != nil {
		return err
	}
	od, n, obase, err := m.lookup(oldname)
	if err != nil {
		return err
	}
	if n == nil {
		return &fs.PathError{Op: "rename", Path: oldname, Err: fs.ErrNotExist}
	}
	nd, _, nbase, err := m.lookup(newname)
	if err != nil {
		return err
	}
	delete(od.children, obase)
	nd.children[nbase] = n
	return nil
}

func (m *MemFS) MkdirAll(dir string, perm os.FileMode) error {
	m.before("mkdir", dir)
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.begin("mkdir", dir); err != nil {
		return err
	}
	n := m.root
	for _, name := range splitPath(dir) {
		c := n.children[name]
		if c == nil {
			c = newMemDir()
			n.children[name] = c
		} else if !c.dir {
			return &fs.PathError{Op: "mkdir", Path: dir, Err: syscall.ENOTDIR}
		}
		n = c
	}
	return nil
}

type memDirEntry struct {
	name string
	dir  bool
}

func (e memDirEntry) Name() string { return e.name }
func (e memDirEntry) IsDir() bool  { return e.dir }
func (e memDirEntry) Type() fs.FileMode {
	if e.dir {
		return fs.ModeDir
	}
	return 0
}
func (e memDirEntry) Info() (fs.FileInfo, error) { return nil, errors.ErrUnsupported }

func (m *MemFS) ReadDir(dir string) ([]os.DirEntry, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.begin("readdir", dir); err != nil {
		return nil, err
	}
	_, n, _, err := m.lookup(dir)
	if err != nil {
		return nil, err
	}
	if n == nil || !n.dir {
		return nil, &fs.PathError{Op: "readdir", Path: dir, Err: fs.ErrNotExist}
	}
	var out []os.DirEntry
	for name, c := range n.children {
		out = append(out, memDirEntry{name: name, dir: c.dir})
	}
	slices.SortFunc(out, func(a, b os.DirEntry) int { return strings.Compare(a.Name(), b.Name()) })
	return out, nil
}

func (m *MemFS) Exists(name string) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.begin("exists", name); err != nil {
		return false, err
	}
	_, n, _, err := m.lookup(name)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	return n != nil, err
}

func (m *MemFS) SyncDir(dir string) error {
	m.before("syncdir", dir)
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.begin("syncdir", dir); err != nil {
		return err
	}
	_, n, _, err := m.lookup(dir)
	if err != nil {
		return err
	}
	if n == nil || !n.dir {
		return &fs.PathError{Op: "syncdir", Path: dir, Err: fs.ErrNotExist}
	}
	n.durableChildren = maps.Clone(n.children)
	return nil
}

// ReadFileForTest returns a file's current bytes (nil when missing).
func (m *MemFS) ReadFileForTest(name string) []byte {
	m.mu.Lock()
	defer m.mu.Unlock()
	_, n, _, err := m.lookup(name)
	if err != nil || n == nil || n.dir {
		return nil
	}
	return slices.Clone(n.data)
}

// WriteFileForTest replaces a file's bytes, durably (to plant damage).
func (m *MemFS) WriteFileForTest(name string, data []byte) {
	m.mu.Lock()
	defer m.mu.Unlock()
	_, n, _, err := m.lookup(name)
	if err != nil || n == nil || n.dir || n.mapped > 0 {
		panic("memfs: WriteFileForTest " + name)
	}
	n.data, n.durable = slices.Clone(data), slices.Clone(data)
}

// ListForTest returns the paths of every file under dir, sorted.
func (m *MemFS) ListForTest(dir string) []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	_, n, _, err := m.lookup(dir)
	if err != nil || n == nil {
		return nil
	}
	var out []string
	var walk func(p string, n *memNode)
	walk = func(p string, n *memNode) {
		for name, c := range n.children {
			if c.dir {
				walk(filepath.Join(p, name), c)
			} else {
				out = append(out, filepath.Join(p, name))
			}
		}
	}
	walk(dir, n)
	slices.Sort(out)
	return out
}

// truncate sets the file's size; m.mu is held.
func (n *memNode) truncate(size int64) error {
	if size < int64(len(n.data)) {
		clear(n.data[size:]) // keeps the bytes past len zero
		n.data = n.data[:size]
		return nil
	}
	if size <= int64(cap(n.data)) {
		n.data = n.data[:size]
		return nil
	}
	if n.mapped > 0 {
		return fmt.Errorf("memfs: file grows past its mapping (%d > %d bytes)", size, cap(n.data))
	}
	d := make([]byte, size, max(size, int64(2*cap(n.data))))
	copy(d, n.data)
	n.data = d
	return nil
}

type memFile struct {
	fs     *MemFS
	n      *memNode
	name   string
	closed bool
}

func (f *memFile) ReadAt(p []byte, off int64) (int, error) {
	f.fs.before("read", f.name)
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if f.closed {
		return 0, fs.ErrClosed // a descriptor used after Close: EBADF
	}
	if err := f.fs.begin("read", f.name); err != nil {
		return 0, err
	}
	if off >= int64(len(f.n.data)) {
		return 0, io.EOF
	}
	n := copy(p, f.n.data[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

func (f *memFile) WriteAt(p []byte, off int64) (int, error) {
	f.fs.before("write", f.name)
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if f.closed {
		return 0, fs.ErrClosed // a descriptor used after Close: EBADF
	}
	if err := f.fs.begin("write", f.name); err != nil {
		return 0, err
	}
	if end := off + int64(len(p)); end > int64(len(f.n.data)) {
		if err := f.n.truncate(end); err != nil {
			return 0, err
		}
	}
	return copy(f.n.data[off:], p), nil
}

func (f *memFile) Size() (int64, error) {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if f.closed {
		return 0, fs.ErrClosed // a descriptor used after Close: EBADF
	}
	if f.fs.dead {
		return 0, errMemDead
	}
	return int64(len(f.n.data)), nil
}

func (f *memFile) Truncate(size int64) error {
	f.fs.before("truncate", f.name)
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if f.closed {
		return fs.ErrClosed // a descriptor used after Close: EBADF
	}
	if err := f.fs.begin("truncate", f.name); err != nil {
		return err
	}
	return f.n.truncate(size)
}

func (f *memFile) Sync() error {
	f.fs.before("sync", f.name)
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if f.closed {
		return fs.ErrClosed // a descriptor used after Close: EBADF
	}
	if err := f.fs.begin("sync", f.name); err != nil {
		return err
	}
	if f.n.mapped > 0 {
		// Appenders write the mapping concurrently; only the engine
		// knows which prefix is stable. A full sync of a mapped file
		// would read bytes being written.
		return errors.New("memfs: Sync of a file that is mapped; use SyncData")
	}
	f.n.durable = slices.Clone(f.n.data)
	return nil
}

// SyncData makes the first n bytes and the size durable. Bytes past n
// keep their durable state: while the file is mapped, appenders may be
// writing them.
func (f *memFile) SyncData(n int64) error {
	f.fs.before("syncdata", f.name)
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if f.closed {
		return fs.ErrClosed // a descriptor used after Close: EBADF
	}
	if err := f.fs.begin("syncdata", f.name); err != nil {
		return err
	}
	d := f.n.data
	n = min(n, int64(len(d)))
	old := f.n.durable
	nd := make([]byte, len(d))
	copy(nd, old)
	copy(nd[:n], d[:n])
	f.n.durable = nd
	return nil
}

func (f *memFile) Allocate(size int64) error {
	f.fs.before("allocate", f.name)
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if f.closed {
		return fs.ErrClosed // a descriptor used after Close: EBADF
	}
	if err := f.fs.begin("allocate", f.name); err != nil {
		return err
	}
	if size <= int64(len(f.n.data)) {
		return nil
	}
	return f.n.truncate(size)
}

func (f *memFile) Map(size int64, writable bool) ([]byte, error) {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if f.closed {
		return nil, fs.ErrClosed // a descriptor used after Close: EBADF
	}
	if err := f.fs.begin("map", f.name); err != nil {
		return nil, err
	}
	n := f.n
	if size > int64(cap(n.data)) {
		if n.mapped > 0 {
			return nil, errors.New("memfs: a second, larger mapping")
		}
		d := make([]byte, len(n.data), size)
		copy(d, n.data)
		n.data = d
	}
	n.mapped++
	if writable {
		n.everMapped = true
	}
	return n.data[:size:size], nil
}

func (f *memFile) Unmap([]byte) error {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	f.n.mapped--
	return nil
}

func (f *memFile) Close() error {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if f.closed {
		return fs.ErrClosed
	}
	f.closed = true
	f.fs.open--
	return nil
}

var _ fileSystem = (*MemFS)(nil)

// ErrInjected is the error tests inject through MemFS.SetFault.
var ErrInjected = fmt.Errorf("injected fault: %w", syscall.EIO)
