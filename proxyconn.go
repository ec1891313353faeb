package revproxy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/seed-c202d8a5/revproxy/internal/wire"
)

// pconn is a connection the proxy accepted: its reader, the frame last read,
// and its outbox, which never makes a writer wait.
type pconn struct {
	conn   net.Conn
	r      *wire.Reader
	fr     frame
	out    *outbox
	done   chan struct{}  // signals the answer to a message without seq
	legacy sync.WaitGroup // exchanges with legacy servers under way
	owed   atomic.Int32   // answers due to messages forwarded
	quiet  chan struct{}  // signalled when owed falls to zero
}

func newPconn(c net.Conn) *pconn {
	return &pconn{conn: c, r: wire.NewReader(c, defaultMaxMessage), out: newNonblockingOutbox(c),
		done: make(chan struct{}, 1), quiet: make(chan struct{}, 1)}
}

// readFrame reads and decodes the next frame. Input that is not a message
// gives an error wrapping ErrBadMessage.
func readFrame(r *wire.Reader, fr *frame) error {
	data, err := r.Next()
	if err != nil {
		return wrapWireError(err)
	}
	return fr.decode(data)
}

// serveClient answers the data messages of a client connection. Messages
// tagged with seq are forwarded as they arrive and answered as their replies
// come; untagged ones, as the homework's clients send, one at a time in
// order.
func (p *Proxy) serveClient(ctx context.Context, pc *pconn, log *slog.Logger) {
	for {
		fr := &pc.fr
		if fr.typ != TypeData {
			pc.refuse(log, "unexpected "+fr.typ.String()+" message on a client connection")
			return
		}
		policy := fr.policy()
		if len(policy) == 0 {
			pc.refuse(log, "data message without a policy")
			return
		}
		if log.Enabled(ctx, slog.LevelDebug) {
			log.Debug("Received a data message", "client", decodeText(fr.f[wire.KeySrcID]),
				"policy", string(policy), "payload", decodeText(fr.f[wire.KeyPayload]))
		}
		pc.owed.Add(1)
		p.route(ctx, pc, policy, log)
		if fr.seq == 0 {
			select {
			case <-pc.done:
			case <-ctx.Done():
				return
			}
		}
		if err := p.read(pc, log); err != nil {
			return
		}
	}
}

// route forwards the data message in pc.fr to the next server of its policy.
// A server that cannot take it (its link has closed, or it cannot be dialled)
// is skipped for the next, each at most once; when none can, or none serves
// the policy, the client gets an error message.
func (p *Proxy) route(ctx context.Context, pc *pconn, policy []byte, log *slog.Logger) {
	fr := &pc.fr
	r, n := p.table.next(policy)
	for tried := 1; r != nil; tried++ {
		if log.Enabled(ctx, slog.LevelDebug) {
			log.Debug("Forwarding a data message", "server", r.id, "payload", decodeText(fr.f[wire.KeyPayload]))
		}
		if r.link != nil {
			if r.link.forward(pc, fr) {
				return
			}
		} else if c, err := p.dialServer(ctx, r); err == nil {
			p.exchange(ctx, pc, r, c, log)
			return
		} else {
			log.Warn("Server failed", "server", r.id, "policy", r.policy, "err", err)
		}
		if tried >= n {
			pc.answerError(fr, codeUnavailable, fmt.Sprintf("no server of policy %s could be reached", policy))
			return
		}
		r, _ = p.table.next(policy)
	}
	log.Debug("No server for policy", "policy", string(policy))
	pc.answerError(fr, codeNoServer, "no server for policy "+string(policy))
}

// refuse answers bad input with an error message; the caller then closes
// the connection.
func (pc *pconn) refuse(log *slog.Logger, text string) {
	log.Warn("Bad message", "from", pc.conn.RemoteAddr().String(), "err", text)
	m := newError(proxyID, decodeText(pc.fr.f[wire.KeySrcID]), codeBadMessage, text)
	pc.send(m, pc.fr.seq, pc.fr.quoted)
}

// answerError answers the forwarded message fr with an error message from
// the proxy.
func (pc *pconn) answerError(fr *frame, code, text string) {
	pc.answerMessage(newError(proxyID, decodeText(fr.f[wire.KeySrcID]), code, text), fr.seq, fr.quoted)
}

// answerMessage queues m as the answer to the forwarded message tagged seq.
func (pc *pconn) answerMessage(m *Message, seq uint64, quoted bool) {
	pc.send(m, seq, quoted)
	pc.settle(seq)
}

// answerFrame queues a server's answer, fr, to the message tagged seq.
func (pc *pconn) answerFrame(fr *frame, seq uint64, quoted bool) {
	b := pc.out.begin()
	pc.out.end(append(appendAnswer(b, fr, seq, quoted), '\n'))
	pc.settle(seq)
}

// send queues m, tagged seq.
func (pc *pconn) send(m *Message, seq uint64, quoted bool) {
	m.Seq = seq
	b := pc.out.begin()
	pc.out.end(append(appendMessage(b, m, quoted), '\n'))
}

// settle records that a forwarded message is answered, and lets the reader
// go on after an untagged one.
func (pc *pconn) settle(seq uint64) {
	if pc.owed.Add(-1) == 0 {
		select {
		case pc.quiet <- struct{}{}:
		default:
		}
	}
	if seq == 0 {
		select {
		case pc.done <- struct{}{}:
		default:
		}
	}
}

// awaitOwed waits, up to timeout or until ctx is done, for the answers to
// messages already forwarded, so that a client that stops sending (or
// half-closes) still gets them.
func (pc *pconn) awaitOwed(ctx context.Context, timeout time.Duration) {
	if pc.owed.Load() <= 0 {
		return
	}
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for pc.owed.Load() > 0 {
		select {
		case <-pc.quiet:
		case <-timer.C:
			return
		case <-ctx.Done():
			return
		}
	}
}

// wrapWireError marks framing errors as bad input.
func wrapWireError(err error) error {
	var se *wire.SyntaxError
	if errors.Is(err, wire.ErrTooLarge) || errors.As(err, &se) {
		return fmt.Errorf("%w: %w", ErrBadMessage, err)
	}
	return err
}
