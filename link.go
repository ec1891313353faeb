package revproxy

import (
	"errors"
	"fmt"
	"net"

	"github.com/seed-c202d8a5/revproxy/internal/wire"
)

// defaultMaxMessage bounds what a reader buffers for one message.
const defaultMaxMessage = 1 << 20

// link is a connection used for one exchange at a time, as the proxy uses
// a legacy server's: a message reader and a reused write buffer.
type link struct {
	conn   net.Conn
	r      *wire.Reader
	wbuf   []byte
	quoted bool // write numbers as strings
}

func newLink(c net.Conn, quoted bool) *link {
	return &link{conn: c, r: wire.NewReader(c, defaultMaxMessage), quoted: quoted}
}

// read decodes the next message into m; see readMessage.
func (l *link) read(m *Message) error {
	_, err := readMessage(l.r, m)
	return err
}

// inStep reports whether the stream of a skipping reader (see
// wire.Reader.Skip) can go on after err from read: true when one message
// failed to decode or was too large, false when the stream itself is broken
// (bytes that are not JSON objects, or a read error).
func inStep(err error) bool {
	var se *wire.SyntaxError
	return errors.Is(err, ErrBadMessage) && !errors.As(err, &se)
}

// write sends m as one JSON line in a single Write.
func (l *link) write(m *Message) error {
	l.wbuf = append(appendMessage(l.wbuf[:0], m, l.quoted), '\n')
	if _, err := l.conn.Write(l.wbuf); err != nil {
		return fmt.Errorf("write to %s: %w", l.conn.RemoteAddr(), err)
	}
	return nil
}
