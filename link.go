package revproxy

import (
	"errors"
	"fmt"
	"net"

	"github.com/seed-c202d8a5/revproxy/internal/wire"
)

// defaultMaxMessage bounds what a reader buffers for one message.
const defaultMaxMessage = 1 << 20

// link is one connection with its message reader, a reused write buffer and
// the way to write numbers. Reads and writes may run in two goroutines;
// neither is safe for more.
type link struct {
	conn   net.Conn
	r      *wire.Reader
	wbuf   []byte
	quoted bool // write numbers as strings
	mirror bool // set quoted from each message read, to answer in kind
}

func newLink(c net.Conn, quoted bool) *link {
	return &link{conn: c, r: wire.NewReader(c, defaultMaxMessage), quoted: quoted}
}

// newMirrorLink returns a link that answers each peer the way it writes.
// Its reads and writes must not run concurrently.
func newMirrorLink(c net.Conn, quoted bool) *link {
	l := newLink(c, quoted)
	l.mirror = true
	return l
}

// read decodes the next message into m. Input that is not a message
// returns an error wrapping ErrBadMessage; see inStep.
func (l *link) read(m *Message) error {
	data, err := l.r.Next()
	if err != nil {
		return wrapWireError(err)
	}
	quoted, err := decodeMessage(data, m)
	if err != nil {
		return err
	}
	if l.mirror {
		l.quoted = quoted
	}
	return nil
}

// inStep reports whether the stream can go on after err from read: true
// when one message failed to decode, false when the stream itself is broken
// (an object too large, bytes that are not JSON objects, or a read error).
func inStep(err error) bool {
	var se *wire.SyntaxError
	return errors.Is(err, ErrBadMessage) && !errors.Is(err, wire.ErrTooLarge) && !errors.As(err, &se)
}

// write sends m as one JSON line in a single Write.
func (l *link) write(m *Message) error {
	l.wbuf = append(appendMessage(l.wbuf[:0], m, l.quoted), '\n')
	if _, err := l.conn.Write(l.wbuf); err != nil {
		return fmt.Errorf("revproxy: write to %s: %w", l.conn.RemoteAddr(), err)
	}
	return nil
}
