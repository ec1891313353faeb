// Package wire splits a TCP byte stream into JSON objects and writes JSON
// strings. The protocol has no framing: peers send one JSON object per
// message, with or without a trailing newline, and several may arrive in one
// read or one may arrive across several reads.
package wire

import (
	"errors"
	"fmt"
	"io"
)

// ErrTooLarge reports an object longer than the reader's limit. The stream is
// out of step after it; the caller should close the connection.
var ErrTooLarge = errors.New("message too large")

// SyntaxError reports a byte that cannot start a message.
type SyntaxError struct {
	Byte byte
}

// Error names the byte found where a message should start.
func (e *SyntaxError) Error() string {
	return fmt.Sprintf("message does not start with '{' (found %q)", e.Byte)
}

// Buffer sizes: a Reader starts small, so that an idle connection costs
// little, grows while reads fill it, and gives up a large buffer once it has
// been drained.
const (
	minBuffer  = 512
	keepBuffer = 64 << 10
)

// Reader returns one top-level JSON object at a time from a stream. It finds
// an object's end by counting braces outside strings; whether the object is
// valid JSON is for the decoder to say. It reads into a buffer of its own
// and returns objects in place, without copying.
type Reader struct {
	rd   io.Reader
	max  int
	buf  []byte
	r, w int   // buf[r:w] is read but not yet returned
	full bool  // the last read filled the buffer: more is probably waiting
	err  error // a read error to return once the buffer is drained

	// The brace-counting state of the object at buf[r:], scanned up to r+n.
	n        int
	depth    int
	inString bool
	escaped  bool
}

// NewReader returns a Reader that refuses objects longer than max bytes.
func NewReader(r io.Reader, max int) *Reader {
	return &Reader{rd: r, max: max}
}

// Next returns the next object. The slice is valid until the next call.
// It returns io.EOF when the stream ends cleanly between objects and
// io.ErrUnexpectedEOF when it ends inside one.
func (r *Reader) Next() ([]byte, error) {
	if err := r.skipSpace(); err != nil {
		return nil, err
	}
	r.n, r.depth, r.inString, r.escaped = 0, 0, false, false
	for {
		done := r.scan()
		if r.n > r.max {
			return nil, fmt.Errorf("%w: over %d bytes", ErrTooLarge, r.max)
		}
		if done {
			obj := r.buf[r.r : r.r+r.n]
			r.r += r.n
			return obj, nil
		}
		if err := r.fill(); err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
	}
}

// skipSpace consumes JSON white space and checks that an object starts next.
func (r *Reader) skipSpace() error {
	for {
		for ; r.r < r.w; r.r++ {
			switch b := r.buf[r.r]; b {
			case ' ', '\t', '\r', '\n':
			case '{':
				return nil
			default:
				r.r++
				return &SyntaxError{Byte: b}
			}
		}
		if err := r.fill(); err != nil {
			return err
		}
	}
}

// fill reads more into the buffer, first making room: it drops a drained
// large buffer, moves unread bytes to the front, or grows the buffer.
func (r *Reader) fill() error {
	if r.err != nil {
		return r.err
	}
	if r.r == r.w {
		r.r, r.w = 0, 0
		switch {
		case len(r.buf) > keepBuffer:
			r.buf = nil
		case r.full && len(r.buf) < keepBuffer && len(r.buf) <= r.max:
			r.buf = make([]byte, min(2*len(r.buf), r.max+1))
		}
	}
	if r.w == len(r.buf) {
		if r.r > 0 {
			r.w = copy(r.buf, r.buf[r.r:r.w])
			r.r = 0
		} else {
			// Never more than one byte over the limit, which is enough to
			// tell that an object is too large.
			grown := make([]byte, min(max(2*len(r.buf), minBuffer), r.max+1))
			r.w = copy(grown, r.buf[:r.w])
			r.buf = grown
		}
	}
	for range 100 {
		n, err := r.rd.Read(r.buf[r.w:])
		r.full = r.w+n == len(r.buf)
		r.w += n
		if err != nil {
			r.err = err
		}
		if n > 0 {
			return nil
		}
		if err != nil {
			return err
		}
	}
	return io.ErrNoProgress
}

// scan advances the brace-counting state over the unscanned bytes and
// reports whether the object ended within them.
func (r *Reader) scan() bool {
	p := r.buf[r.r+r.n : r.w]
	for i, b := range p {
		switch {
		case r.escaped:
			r.escaped = false
		case r.inString:
			switch b {
			case '\\':
				r.escaped = true
			case '"':
				r.inString = false
			}
		case b == '"':
			r.inString = true
		case b == '{' || b == '[':
			r.depth++
		case b == '}' || b == ']':
			r.depth--
			if r.depth == 0 {
				r.n += i + 1
				return true
			}
		}
	}
	r.n += len(p)
	return false
}
