package stream

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"os"
)

// checkMetaDB refuses a meta.db that bbolt would read past its end. bbolt
// maps the file and trusts its meta page: when the file was cut short (a
// torn copy, a disk that lost its tail) the freelist and root pages the
// meta page names lie past the end, and reading them dies of SIGBUS or
// panics, neither of which Open can recover from. The meta page bbolt
// would pick (valid magic, version and checksum; the higher transaction
// ID of the two) says how many pages the file holds; a file shorter than
// that is damage, reported as a *CorruptError. A missing, empty or
// unrecognisable file is left to bbolt, which creates or refuses it.
func checkMetaDB(path string) error {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	size := fi.Size()
	// The first meta page sits at 0 and names the page size; the second
	// sits one page later. bbolt looks for the second at the usual page
	// sizes when the first is damaged; so do we.
	var best *boltMeta
	consider := func(pos int64) *boltMeta {
		m, ok := readBoltMeta(f, pos)
		if ok && (best == nil || m.txid > best.txid) {
			best = &m
		}
		return best
	}
	if m := consider(0); m != nil {
		consider(int64(m.pageSize))
	} else {
		for _, ps := range []int64{int64(os.Getpagesize()), 4096, 8192, 16384, 32768, 65536} {
			consider(ps)
		}
	}
	if best == nil {
		return nil
	}
	pages := uint64(size) / uint64(best.pageSize)
	if best.pgid > pages || best.root >= best.pgid || (best.freelist != ^uint64(0) && best.freelist >= best.pgid) {
		return &CorruptError{File: path, Position: size, Err: fmt.Errorf(
			"meta.db is %d bytes; its meta page (transaction %d) says %d pages of %d bytes, root at page %d, freelist at %d",
			size, best.txid, best.pgid, best.pageSize, best.root, int64(best.freelist))}
	}
	return nil
}

// boltMeta is the part of bbolt's meta page checkMetaDB reads.
type boltMeta struct {
	pageSize             uint32
	root, freelist, pgid uint64
	txid                 uint64
}

// readBoltMeta reads and checks the meta page at pos: bbolt's page header
// (16 bytes), then magic, version, page size, flags, root bucket (page,
// sequence), freelist page, high-water page, transaction ID and an FNV-64a
// checksum of what precedes it, in the machine's byte order (little
// endian on every platform the package supports).
func readBoltMeta(f *os.File, pos int64) (boltMeta, bool) {
	var b [16 + 64]byte
	if _, err := f.ReadAt(b[:], pos); err != nil && !errors.Is(err, io.EOF) {
		return boltMeta{}, false
	}
	m := b[16:]
	le := binary.LittleEndian
	const magic, version = 0xED0CDAED, 2
	if le.Uint32(m[0:]) != magic || le.Uint32(m[4:]) != version {
		return boltMeta{}, false
	}
	h := fnv.New64a()
	h.Write(m[:56])
	if h.Sum64() != le.Uint64(m[56:]) {
		return boltMeta{}, false
	}
	meta := boltMeta{pageSize: le.Uint32(m[8:]), root: le.Uint64(m[16:]), freelist: le.Uint64(m[32:]),
		pgid: le.Uint64(m[40:]), txid: le.Uint64(m[48:])}
	return meta, meta.pageSize >= 512
}
