package revproxy

import (
	"context"
	"errors"
	"fmt"
	"strings"
)

// Errors a caller can test with [errors.Is]. Those a proxy or server sends
// back arrive as a [*RemoteError] that matches the sentinel for its code.
var (
	// ErrNoServer: no server serves the message's policy.
	ErrNoServer = errors.New("revproxy: no server for policy")
	// ErrUnavailable: the servers of the policy could not be reached, or the
	// chosen one did not answer.
	ErrUnavailable = errors.New("revproxy: server unavailable")
	// ErrBadMessage: a message could not be decoded or was not expected.
	ErrBadMessage = errors.New("revproxy: bad message")
	// ErrTooLarge: a message, or its answer, is over a size limit of the
	// client, the proxy or the server (see MaxMessageSize). It is a kind of
	// bad message: it matches ErrBadMessage too.
	ErrTooLarge error = &wrapped{"revproxy: message too large", ErrBadMessage}
	// ErrHandler: the server's handler returned an error or panicked.
	ErrHandler = errors.New("revproxy: handler failed")
	// ErrDigestMismatch: a reply's SHA1 digest does not match the payload.
	ErrDigestMismatch = errors.New("revproxy: digest mismatch")
	// ErrClosed: the client was closed.
	ErrClosed = errors.New("revproxy: client closed")
	// ErrConnLost: the connection closed before the reply arrived. The
	// message may or may not have been handled.
	ErrConnLost = errors.New("revproxy: connection lost")
	// ErrConfig: a required field of a Proxy, Server or Client is missing or
	// invalid.
	ErrConfig = errors.New("revproxy: invalid configuration")
	// ErrOverloaded: every server of the policy has as many messages in
	// flight, or as many bytes queued, as the proxy allows; or the proxy
	// has as many connections, or holds as much memory, as it may.
	ErrOverloaded = errors.New("revproxy: overloaded")
	// ErrUnauthorized: the proxy refused a registration without its token.
	ErrUnauthorized = errors.New("revproxy: unauthorized")
	// ErrIDInUse: the proxy refused a registration whose server id a live
	// server holds.
	ErrIDInUse = errors.New("revproxy: server id in use")
	// ErrForbidden: the proxy's Authorize hook refused the message.
	ErrForbidden = errors.New("revproxy: forbidden")
	// ErrNoProxy: no proxy could be connected to.
	ErrNoProxy = errors.New("revproxy: cannot reach the proxy")
	// ErrTimeout: the server did not answer within the time the client's
	// context left it. Such an error also matches context.DeadlineExceeded.
	ErrTimeout = errors.New("revproxy: timeout")
)

// The codes carried in the "code" field of error messages.
const (
	codeNoServer     = "no_server"
	codeUnavailable  = "unavailable"
	codeBadMessage   = "bad_message"
	codeHandler      = "handler"
	codeOverloaded   = "overloaded"
	codeUnauthorized = "unauthorized"
	codeIDInUse      = "id_in_use"
	codeForbidden    = "forbidden"
	codeTimeout      = "timeout"
	codeTooLarge     = "too_large"
)

var codeErrors = map[string]error{
	codeNoServer:     ErrNoServer,
	codeUnavailable:  ErrUnavailable,
	codeBadMessage:   ErrBadMessage,
	codeHandler:      ErrHandler,
	codeOverloaded:   ErrOverloaded,
	codeUnauthorized: ErrUnauthorized,
	codeIDInUse:      ErrIDInUse,
	codeForbidden:    ErrForbidden,
	codeTimeout:      ErrTimeout,
	codeTooLarge:     ErrTooLarge,
}

// RemoteError is an error message (type 3) that a proxy or server sent in
// place of a reply. It matches, under [errors.Is], the sentinel error for its
// Code: ErrNoServer for "no_server", and so on.
type RemoteError struct {
	From string // the sender's id: a server id, or "proxy"
	Code string // a machine-readable reason; may be empty for other peers
	Text string // the human-readable payload
}

// Error says who sent the error and what it says.
func (e *RemoteError) Error() string {
	return fmt.Sprintf("revproxy: error from %s: %s", e.From, e.text())
}

// text is what the far side said, without the package prefix a revproxy
// peer puts on its own errors: Error already starts with it.
func (e *RemoteError) text() string {
	t := e.Text
	for strings.HasPrefix(t, "revproxy: ") {
		t = t[len("revproxy: "):]
	}
	return t
}

// wrapped is an error with a message of its own that unwraps to err, for
// where fmt.Errorf's %w would repeat err's text after a message that
// already says it.
type wrapped struct {
	msg string
	err error
}

// Error returns the message of its own.
func (e *wrapped) Error() string { return e.msg }

// Unwrap returns the error it stands for.
func (e *wrapped) Unwrap() error { return e.err }

// Is reports whether target is the sentinel error for e's code, or one that
// sentinel matches (ErrTooLarge is also ErrBadMessage). A timeout also
// matches context.DeadlineExceeded: it is the deadline of the client's
// context that passed.
func (e *RemoteError) Is(target error) bool {
	if e.Code == codeTimeout && target == context.DeadlineExceeded {
		return true
	}
	sentinel, ok := codeErrors[e.Code]
	return ok && errors.Is(sentinel, target)
}

// remoteError turns an error message into a RemoteError.
func remoteError(m *Message) *RemoteError {
	return &RemoteError{From: m.SrcID, Code: m.Code, Text: m.Payload}
}

// errorMessage builds the error message that answers a data message.
func errorMessage(from string, to *Message, code, text string) *Message {
	return newError(from, to.SrcID, code, text)
}

// newError builds an error message from from to the client destid.
func newError(from, destid, code, text string) *Message {
	return &Message{
		Type:        TypeError,
		SrcID:       from,
		DestID:      destid,
		PayloadSize: PayloadLen(text),
		Payload:     text,
		Code:        code,
	}
}
