// Package wire splits a TCP byte stream into JSON objects and writes JSON
// strings. The protocol has no framing: peers send one JSON object per
// message, with or without a trailing newline, and several may arrive in one
// read or one may arrive across several reads.
package wire

import (
	"bufio"
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

func (e *SyntaxError) Error() string {
	return fmt.Sprintf("message does not start with '{' (found %q)", e.Byte)
}

// Reader returns one top-level JSON object at a time from a stream. It finds
// an object's end by counting braces outside strings; whether the object is
// valid JSON is for the decoder to say.
type Reader struct {
	br  *bufio.Reader
	max int
	buf []byte

	depth    int
	inString bool
	escaped  bool
}

// NewReader returns a Reader that refuses objects longer than max bytes.
func NewReader(r io.Reader, max int) *Reader {
	return &Reader{br: bufio.NewReaderSize(r, 4096), max: max}
}

// Next returns the next object. The slice is valid until the next call.
// It returns io.EOF when the stream ends cleanly between objects and
// io.ErrUnexpectedEOF when it ends inside one.
func (r *Reader) Next() ([]byte, error) {
	if err := r.skipSpace(); err != nil {
		return nil, err
	}
	r.buf = r.buf[:0]
	r.depth, r.inString, r.escaped = 0, false, false
	for {
		chunk, err := r.br.Peek(max(r.br.Buffered(), 1))
		if len(chunk) == 0 {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
		n, done := r.scan(chunk)
		if len(r.buf)+n > r.max {
			return nil, fmt.Errorf("%w: over %d bytes", ErrTooLarge, r.max)
		}
		r.buf = append(r.buf, chunk[:n]...)
		r.br.Discard(n)
		if done {
			return r.buf, nil
		}
	}
}

// skipSpace consumes JSON white space and checks that an object starts next.
func (r *Reader) skipSpace() error {
	for {
		b, err := r.br.ReadByte()
		if err != nil {
			return err
		}
		switch b {
		case ' ', '\t', '\r', '\n':
			continue
		case '{':
			return r.br.UnreadByte()
		default:
			return &SyntaxError{Byte: b}
		}
	}
}

// scan advances the brace-counting state over p and returns how many bytes
// belong to the current object and whether the object ended within them.
func (r *Reader) scan(p []byte) (int, bool) {
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
				return i + 1, true
			}
		}
	}
	return len(p), false
}
