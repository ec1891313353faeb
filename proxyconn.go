package revproxy

import (
	"context"
	"errors"
	"fmt"
	"io"
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
	conn    net.Conn
	r       *wire.Reader
	fr      frame
	out     *outbox
	done    chan struct{}  // signals the answer to a message without seq
	legacy  sync.WaitGroup // exchanges with legacy servers under way
	owed    atomic.Int32   // answers due to messages forwarded
	quiet   chan struct{}  // signalled when owed falls to zero
	refused bool           // an error message ends the connection: close gently
}

func newPconn(c net.Conn, maxMessage int) *pconn {
	return &pconn{conn: c, r: wire.NewReader(c, maxMessage), out: newNonblockingOutbox(c),
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
		if err := p.authorize(pc, policy); err != nil {
			log.Warn("Refused a message", "client", decodeText(fr.f[wire.KeySrcID]), "policy", string(policy), "err", err)
			pc.answerError(fr, codeForbidden, err.Error())
		} else {
			p.route(ctx, pc, fr, policy, log)
		}
		if fr.seq == 0 {
			select {
			case <-pc.done:
			case <-ctx.Done():
				return
			}
		}
		if idle := p.idleTimeout(); idle > 0 {
			pc.conn.SetReadDeadline(time.Now().Add(idle))
		}
		if err := p.read(pc, log); err != nil {
			return
		}
	}
}

// authorize asks the Authorize hook, if any, about the message in pc.fr.
func (p *Proxy) authorize(pc *pconn, policy []byte) error {
	if p.Authorize == nil {
		return nil
	}
	return p.Authorize(&AuthRequest{ClientID: decodeText(pc.fr.f[wire.KeySrcID]), Policy: string(policy), Conn: pc.conn})
}

// route forwards the data message fr from the client pc to the next server
// of its policy. A server that cannot take it (its link has closed or is
// full, or it cannot be dialled) is skipped for the next, each at most once;
// when none can, or none serves the policy, the client gets an error
// message.
func (p *Proxy) route(ctx context.Context, pc *pconn, fr *frame, policy []byte, log *slog.Logger) {
	r, n := p.table.next(policy)
	full := false
	for tried := 1; r != nil; tried++ {
		if log.Enabled(ctx, slog.LevelDebug) {
			log.Debug("Forwarding a data message", "server", r.id, "payload", decodeText(fr.f[wire.KeyPayload]))
		}
		if r.link != nil {
			switch r.link.forward(pc, fr) {
			case forwarded:
				return
			case linkFull:
				full = true
			}
		} else if c, err := p.dialServer(ctx, r); err == nil {
			p.exchange(ctx, pc, fr, r, c, log)
			return
		} else {
			log.Warn("Server failed", "server", r.id, "policy", r.policy, "err", err)
			// A legacy server that cannot be reached leaves the table
			// until it registers again; a held one leaves when its
			// connection does.
			if r.owner == nil && p.table.remove(r) {
				log.Info("Server left", "id", r.id, "policy", r.policy, "reason", "unreachable")
			}
		}
		if tried >= n {
			if full {
				pc.answerError(fr, codeOverloaded, fmt.Sprintf("every server of policy %s is busy", policy))
				return
			}
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
	pc.refuseWith(log, codeBadMessage, text)
}

// refuseWith answers the message in pc.fr with an error message of code;
// the caller then closes the connection.
func (pc *pconn) refuseWith(log *slog.Logger, code, text string) {
	log.Warn("Refused", "from", pc.conn.RemoteAddr().String(), "code", code, "err", text)
	m := newError(proxyID, decodeText(pc.fr.f[wire.KeySrcID]), code, text)
	pc.send(m, pc.fr.seq, pc.fr.quoted)
	pc.refused = true
}

// lingerTimeout bounds the reading that follows a refusal.
const lingerTimeout = 500 * time.Millisecond

// linger closes the sending side and discards what the peer still sends for
// a moment: closing with unread input would reset the connection, and the
// reset could destroy the error message just sent.
func (pc *pconn) linger() {
	if cw, ok := pc.conn.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
	}
	pc.conn.SetReadDeadline(time.Now().Add(lingerTimeout))
	io.Copy(io.Discard, io.LimitReader(pc.conn, 1<<20))
}

// codeFor returns the error code for a refused registration.
func codeFor(err error) string {
	switch {
	case errors.Is(err, ErrUnauthorized):
		return codeUnauthorized
	case errors.Is(err, ErrIDInUse):
		return codeIDInUse
	}
	return codeBadMessage
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
