package stream

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
)

// The TCP transport's wire format. A connection carries frames both ways,
// each:
//
//	length  uint32  bytes after this field: the 14-byte header and the payload
//	version uint8   frameVersion
//	type    uint8   frameRequest, frameReply, frameError or frameCancel
//	id      uint64  chosen by the caller per request, echoed by its reply
//	arg     uint32  request: milliseconds left before the caller's
//	                deadline, 0 for none; error: an errCode
//	payload         request or reply bytes; an error's message
//
// Integers are big-endian. Many requests share a connection at once; a
// reply finds its call by id, in any order. The first 14 bytes (length
// through id) keep their layout in every future version, so a node can
// skip a frame of a version it does not speak and answer its id with an
// error frame; the rest may change with the version.
const (
	frameVersion      = 1
	frameHeaderSize   = 1 + 1 + 8 + 4 // after the length
	frameFixedSize    = 4 + 1 + 1 + 8 // the part every version keeps
	frameRequest      = 1
	frameReply        = 2
	frameError        = 3
	frameCancel       = 4
	framePayloadChunk = 64 << 10 // a payload is read this much at a time
)

// errCode says why a frameError frame refused a request.
type errCode uint32

const (
	codeTooLarge     errCode = 1 // request or reply over the frame limit
	codeBadRequest   errCode = 2 // unknown frame type
	codeBadVersion   errCode = 3 // frame version not spoken
	codeNotServing   errCode = 4 // Serve not called yet
	codeShuttingDown errCode = 5 // the node's transport is closing
	codeHandlerPanic errCode = 6 // the handler panicked (recovered; logged)
)

// err turns a code received in a frameError into the sentinel a caller
// matches.
func (c errCode) err() error {
	switch c {
	case codeTooLarge:
		return ErrMessageTooLarge
	case codeBadRequest:
		return ErrBadRequest
	case codeBadVersion:
		return ErrUnsupportedVersion
	case codeNotServing, codeShuttingDown:
		return ErrUnreachable
	case codeHandlerPanic:
		return errHandlerPanic
	}
	return ErrBadRequest
}

// errHandlerPanic is the error of a call whose handler panicked on the
// serving node: the transport recovered, logged the panic and replied
// with it. The request may have been partly handled.
var errHandlerPanic = errors.New("stream: transport: the handler panicked")

// frame is one decoded frame. payload is nil for an empty one.
type frame struct {
	version uint8
	typ     uint8
	id      uint64
	arg     uint32
	payload []byte
}

// appendFrame appends f's encoding to dst.
func appendFrame(dst []byte, f frame) []byte {
	dst = binary.BigEndian.AppendUint32(dst, uint32(frameHeaderSize+len(f.payload)))
	dst = append(dst, f.version, f.typ)
	dst = binary.BigEndian.AppendUint64(dst, f.id)
	dst = binary.BigEndian.AppendUint32(dst, f.arg)
	return append(dst, f.payload...)
}

// errTruncated is returned by readFrame for a stream that ends inside a
// frame.
var errTruncated = errors.New("connection closed inside a frame")

// badFrameError is returned by readFrame for a frame it cannot accept. When
// its id is known (hasID) the reader answers it with an error frame;
// when the stream still stands at a frame boundary (resync) the
// connection goes on, otherwise it must close.
type badFrameError struct {
	id     uint64
	hasID  bool
	resync bool
	code   errCode
	msg    string
}

func (e *badFrameError) Error() string { return e.msg }

// readFrame reads the next frame from r, refusing payloads over max
// bytes. It returns io.EOF at a clean end between frames, errTruncated
// inside one, and a *badFrameError for a frame it refuses. It allocates a
// large payload as it arrives, never on the length's word alone.
func readFrame(r *bufio.Reader, max int) (frame, error) {
	var hdr [4 + frameHeaderSize]byte
	if _, err := io.ReadFull(r, hdr[:4]); err != nil {
		if err == io.ErrUnexpectedEOF {
			err = errTruncated
		}
		return frame{}, err
	}
	length := int64(binary.BigEndian.Uint32(hdr[:4]))
	if length < frameFixedSize-4 {
		return frame{}, &badFrameError{code: codeBadRequest, msg: fmt.Sprintf("frame length %d is shorter than a header", length)}
	}
	if _, err := io.ReadFull(r, hdr[4:frameFixedSize]); err != nil {
		return frame{}, truncated(err)
	}
	f := frame{version: hdr[4], typ: hdr[5], id: binary.BigEndian.Uint64(hdr[6:14])}
	body := length - (frameFixedSize - 4) // bytes after the id
	if f.version != frameVersion {
		e := &badFrameError{id: f.id, hasID: true, code: codeBadVersion,
			msg: fmt.Sprintf("frame version %d, this node speaks %d", f.version, frameVersion)}
		if body <= int64(max)+frameHeaderSize {
			if _, err := r.Discard(int(body)); err != nil {
				return frame{}, truncated(err)
			}
			e.resync = true
		}
		return frame{}, e
	}
	if length < frameHeaderSize {
		return frame{}, &badFrameError{id: f.id, hasID: true, code: codeBadRequest,
			msg: fmt.Sprintf("frame length %d is shorter than a header", length)}
	}
	if _, err := io.ReadFull(r, hdr[frameFixedSize:]); err != nil {
		return frame{}, truncated(err)
	}
	f.arg = binary.BigEndian.Uint32(hdr[frameFixedSize:])
	n := length - frameHeaderSize
	if n > int64(max) {
		return frame{}, &badFrameError{id: f.id, hasID: true, code: codeTooLarge,
			msg: fmt.Sprintf("frame of %d bytes exceeds the limit of %d", n, max)}
	}
	if f.typ < frameRequest || f.typ > frameCancel {
		if _, err := r.Discard(int(n)); err != nil {
			return frame{}, truncated(err)
		}
		return frame{}, &badFrameError{id: f.id, hasID: true, resync: true, code: codeBadRequest,
			msg: fmt.Sprintf("unknown frame type %d", f.typ)}
	}
	if n == 0 {
		return f, nil
	}
	var err error
	f.payload, err = readPayload(r, int(n))
	return f, err
}

func truncated(err error) error {
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		return errTruncated
	}
	return err
}

// readPayload reads n bytes, growing its buffer as they arrive, so a peer
// that announces a large frame and sends little costs little memory.
func readPayload(r io.Reader, n int) ([]byte, error) {
	b := make([]byte, 0, min(n, framePayloadChunk))
	for len(b) < n {
		if len(b) == cap(b) {
			b = slices.Grow(b, min(len(b), n-len(b)))
		}
		end := min(cap(b), n)
		if _, err := io.ReadFull(r, b[len(b):end]); err != nil {
			return nil, truncated(err)
		}
		b = b[:end]
	}
	return b, nil
}
