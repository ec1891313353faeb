package revproxy

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"fmt"
	"strings"
)

// Handler answers the data messages a [Server] receives. ServeMessage returns
// the reply's payload; a non-nil error is sent to the client as an error
// message (see [ErrHandler]) instead of a reply. Handlers run concurrently,
// up to the Server's MaxHandlers. A handler must return once ctx is done:
// the Server's Serve waits for running handlers before it returns.
type Handler interface {
	ServeMessage(ctx context.Context, m *Message) (string, error)
}

// HandlerFunc adapts a function to a [Handler].
type HandlerFunc func(ctx context.Context, m *Message) (string, error)

// ServeMessage calls f(ctx, m).
func (f HandlerFunc) ServeMessage(ctx context.Context, m *Message) (string, error) {
	return f(ctx, m)
}

// SHA1Handler is the homework's handler and the default of a [Server]: it
// answers with the lowercase hex SHA1 digest of the payload's UTF-8 bytes.
var SHA1Handler Handler = HandlerFunc(func(_ context.Context, m *Message) (string, error) {
	return SHA1Hex(m.Payload), nil
})

// SHA1Hex returns the lowercase hex SHA1 digest of s.
func SHA1Hex(s string) string {
	sum := sha1.Sum([]byte(s))
	return hex.EncodeToString(sum[:])
}

// VerifySHA1 checks that reply is a reply whose payload is the SHA1 digest of
// payload. It returns nil, or an error matching [ErrDigestMismatch].
func VerifySHA1(payload string, reply *Message) error {
	if reply.Type != TypeReply {
		return fmt.Errorf("%w: got a %s message", ErrDigestMismatch, reply.Type)
	}
	if want := SHA1Hex(payload); !strings.EqualFold(reply.Payload, want) {
		return fmt.Errorf("%w: got %q, want %q", ErrDigestMismatch, reply.Payload, want)
	}
	return nil
}
