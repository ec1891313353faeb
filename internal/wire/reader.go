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

// ErrTooLarge reports an object longer than the reader's limit. Unless the
// reader skips such objects (see [Reader.Skip]), the stream is out of step
// after it and the caller should close the connection.
var ErrTooLarge = errors.New("message too large")

// ErrNoMemory reports that the reader's [Budget] refused the buffer the next
// object needs. The stream is out of step after it.
var ErrNoMemory = errors.New("memory budget used up")

// TooLargeError reports an object over the limit; it matches ErrTooLarge.
// A skipping reader (see [Reader.Skip]) has passed over the object and is
// in step after it.
type TooLargeError struct {
	Max int
	// Prefix is the object's first bytes (at most 256), for what can be
	// learnt of it, such as whom to tell. It is valid until the next read.
	Prefix []byte
	// Skipped says that a skipping reader passed over the object: the
	// stream is in step.
	Skipped bool
}

// Error says what the limit was; the type says the rest.
func (e *TooLargeError) Error() string {
	return fmt.Sprintf("over %d bytes", e.Max)
}

// Is makes a TooLargeError match ErrTooLarge.
func (e *TooLargeError) Is(target error) bool { return target == ErrTooLarge }

// Budget is memory shared by many readers (and whatever else the caller
// counts), so that together they hold no more than a bound.
type Budget interface {
	// Take reserves n bytes, or reports false when they would exceed the
	// bound.
	Take(n int) bool
	// Give returns n bytes taken before.
	Give(n int)
}

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
	prefixLen  = 256
)

// Reader returns one top-level JSON object at a time from a stream. It finds
// an object's end by counting braces outside strings; whether the object is
// valid JSON is for the decoder to say. It reads into a buffer of its own
// and returns objects in place, without copying.
type Reader struct {
	// Skip makes Next pass over an object longer than the limit, reading
	// and discarding it without buffering it whole, and return a
	// *TooLargeError; the next call returns the object after it.
	Skip bool
	// Budget, if set, is asked for every buffer the reader allocates and
	// given back what it frees; Release gives back the rest.
	Budget Budget
	// BeforeRead, if set, is called before each read from the stream,
	// which may wait for input: the caller's moment to write out what it
	// has put off while handling the objects already read.
	BeforeRead func()

	rd   io.Reader
	max  int
	buf  []byte
	r, w int   // buf[r:w] is read but not yet returned
	full bool  // the last read filled the buffer: more is probably waiting
	err  error // a read error to return once the buffer is drained

	tooLarge TooLargeError // returned, reused, for a skipped object
	noMemory NoMemoryError

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
			if r.Skip {
				return nil, r.skip(done)
			}
			r.tooLarge.Max, r.tooLarge.Skipped = r.max, false
			r.tooLarge.Prefix = append(r.tooLarge.Prefix[:0], r.buf[r.r:r.r+min(r.n, prefixLen)]...)
			return nil, &r.tooLarge
		}
		if done {
			obj := r.buf[r.r : r.r+r.n]
			r.r += r.n
			return obj, nil
		}
		if err := r.fill(); err != nil {
			if err == ErrNoMemory && r.Skip {
				// Refused alone, as one too large: what is buffered is
				// scanned, and the rest goes through the buffer there is.
				return nil, r.skipWith(&r.noMemory.Prefix, &r.noMemory, false)
			}
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
	}
}

// NoMemoryError, from a skipping reader, reports an object passed over
// because the budget refused the buffer it needed; it matches ErrNoMemory.
type NoMemoryError struct {
	Prefix []byte // as in TooLargeError
}

// Error says what ErrNoMemory says.
func (e *NoMemoryError) Error() string { return ErrNoMemory.Error() }

// Is makes a NoMemoryError match ErrNoMemory.
func (e *NoMemoryError) Is(target error) bool { return target == ErrNoMemory }

// skip passes over the rest of an object found to be over the limit, whose
// first r.n bytes are scanned (all of it when done), keeping its prefix.
func (r *Reader) skip(done bool) error {
	r.tooLarge.Max, r.tooLarge.Skipped = r.max, true
	return r.skipWith(&r.tooLarge.Prefix, &r.tooLarge, done)
}

// skipWith passes over the object, keeping its prefix in *prefix, and
// returns report once past it.
func (r *Reader) skipWith(prefix *[]byte, report error, done bool) error {
	*prefix = append((*prefix)[:0], r.buf[r.r:r.r+min(r.n, prefixLen)]...)
	for {
		r.r += r.n // discard what has been scanned
		r.n = 0
		if done {
			return report
		}
		if err := r.fill(); err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return err
		}
		done = r.scan()
	}
}

// Release gives the reader's buffer back to its budget. The reader must not
// be used after it.
func (r *Reader) Release() {
	r.drop()
	r.r, r.w = 0, 0
}

// FreeBuffer is the size of buffer a reader holds without asking its
// budget: every connection has one, so that small messages flow whatever
// the budget, and what bounds connections bounds them.
const FreeBuffer = 4 << 10

// counted is how much of a buffer of size bytes its budget counts.
func counted(size int) int {
	if size <= FreeBuffer {
		return 0
	}
	return size
}

// alloc returns a new buffer of size bytes, if the budget allows it.
func (r *Reader) alloc(size int) ([]byte, error) {
	if r.Budget != nil && !r.Budget.Take(counted(size)) {
		return nil, ErrNoMemory
	}
	return make([]byte, size), nil
}

// drop lets go of the buffer.
func (r *Reader) drop() {
	if r.Budget != nil {
		r.Budget.Give(counted(len(r.buf)))
	}
	r.buf = nil
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
			r.drop()
		case r.full && len(r.buf) < keepBuffer && len(r.buf) <= r.max:
			// Only to read more at once: without the budget's leave, the
			// buffer there is will do.
			if grown, err := r.alloc(min(2*len(r.buf), r.max+1)); err == nil {
				r.drop()
				r.buf = grown
			}
		}
	}
	if r.w == len(r.buf) {
		if r.r > 0 {
			r.w = copy(r.buf, r.buf[r.r:r.w])
			r.r = 0
		} else {
			// Never more than one byte over the limit, which is enough to
			// tell that an object is too large.
			grown, err := r.alloc(min(max(2*len(r.buf), minBuffer), r.max+1))
			if err != nil {
				return err
			}
			copy(grown, r.buf[:r.w])
			r.drop()
			r.buf = grown
		}
	}
	if r.BeforeRead != nil {
		r.BeforeRead()
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
	for i := 0; i < len(p); i++ {
		b := p[i]
		switch {
		case r.escaped:
			r.escaped = false
		case r.inString:
			if n := plainLen(p[i:], false); n > 0 { // string bytes, passed over
				i += n - 1
				continue
			}
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
