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
	p        *Proxy
	conn     net.Conn
	shard    uint32 // which of the proxy's totals it counts into
	log      *slog.Logger
	r        *wire.Reader
	fr       frame
	out      *outbox
	done     chan struct{}  // signals the answer to a message without seq
	legacy   sync.WaitGroup // exchanges with legacy servers under way
	closing  bool           // no more exchanges may start; guarded by legacyMu
	legacyMu sync.Mutex
	owed     atomic.Int32  // answers due to messages forwarded
	quiet    chan struct{} // signalled when owed falls to zero, or the outbox ends
	room     chan struct{} // signalled when the outbox has room again
	refused  bool          // an error message ends the connection: close gently
	reqid    []byte        // the request id given to the message last read, reused
	later    later         // outboxes this connection's reader queued on, written before it reads again
}

// newPconn sets up an accepted connection with p's bounds: its reader and
// its outbox draw on p's memory budget.
func (p *Proxy) newPconn(c net.Conn, log *slog.Logger) *pconn {
	pc := &pconn{p: p, shard: p.accepted.Add(1), conn: c, log: log, r: wire.NewReader(c, p.maxMessageSize()), out: newNonblockingOutbox(c),
		done: make(chan struct{}, 1), quiet: make(chan struct{}, 1), room: make(chan struct{}, 1)}
	pc.r.Budget = clientShare{p.budget()} // until the connection proves a server link
	pc.r.BeforeRead = pc.later.flush
	pc.out.max, pc.out.mem, pc.out.room, pc.out.wait = p.maxQueued(), p.budget(), pc.room, p.writeTimeout()
	return pc
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
func (p *Proxy) serveClient(ctx context.Context, pc *pconn) {
	log := pc.log
	defer pc.later.flush()
	for {
		fr := &pc.fr
		if fr.typ != TypeData {
			pc.refuse("unexpected " + fr.typ.String() + " message on a client connection")
			return
		}
		policy := fr.policy()
		if len(policy) == 0 {
			pc.refuse("data message without a policy")
			return
		}
		if log.Enabled(ctx, slog.LevelDebug) {
			pc.debugReceived(policy)
		}
		pc.owed.Add(1)
		p.totalsFor(pc).messages.Add(1)
		if p.AccessLog != nil && fr.f[wire.KeyReqID] == nil {
			fr.f[wire.KeyReqID] = p.newRequestID(pc.reqid[:0])
			pc.reqid = fr.f[wire.KeyReqID]
		}
		if err := p.authorize(pc, policy); err != nil {
			pc.forbid(policy, err)
		} else {
			p.dispatch(ctx, pc, fr, policy, &pc.later)
		}
		if fr.seq == 0 {
			pc.later.flush() // the answer awaited may be for what it holds
			select {
			case <-pc.done:
			case <-ctx.Done():
				return
			}
		}
		if !pc.awaitRoom(ctx) {
			return
		}
		if idle := p.idleTimeout(); idle > 0 {
			pc.conn.SetReadDeadline(time.Now().Add(idle))
		}
		if err := p.read(pc); err != nil {
			return
		}
	}
}

// debugReceived logs the data message last read, at Debug. It and forbid
// are apart from serveClient, so that the frame a connection keeps on its
// stack while it waits for its next message stays small.
func (pc *pconn) debugReceived(policy []byte) {
	pc.log.Debug("Received a data message", "client", decodeText(pc.fr.f[wire.KeySrcID]),
		"policy", string(policy), "payload", decodeText(pc.fr.f[wire.KeyPayload]))
}

// forbid answers the data message last read, which Authorize refused.
func (pc *pconn) forbid(policy []byte, err error) {
	w := pc.waiterFor(&pc.fr)
	w.policy = string(policy)
	w.fail(nil, codeForbidden, err.Error())
}

// awaitRoom waits while more than half the outbox's bound is queued: a
// client that sends without reading its answers is not read either, so that
// TCP pushes back on it. It reports false if ctx ended first.
func (pc *pconn) awaitRoom(ctx context.Context) bool {
	if !pc.out.full() {
		return true
	}
	pc.later.flush() // about to wait: nothing may be held while it does
	for pc.out.full() {
		select {
		case <-pc.room:
		case <-ctx.Done():
			return false
		}
	}
	return true
}

// authorize asks the Authorize hook, if any, about the message in pc.fr.
func (p *Proxy) authorize(pc *pconn, policy []byte) error {
	if p.Authorize == nil {
		return nil
	}
	pc.later.flush() // the hook may take its time
	return p.Authorize(&AuthRequest{ClientID: decodeText(pc.fr.f[wire.KeySrcID]), Policy: string(policy), Conn: pc.conn})
}

// dispatch forwards the data message fr from the client pc to the next server
// of its policy. A server that cannot take it (it is leaving, has as much
// under way as it may, or cannot be dialled) is skipped for the next, each
// at most once; when none can, or none serves the policy, the client gets
// an error message. A message for a server link is left for fl's flush
// when fl is not nil: dispatch is then called by the reader fl belongs to.
func (p *Proxy) dispatch(ctx context.Context, pc *pconn, fr *frame, policy []byte, fl *later) {
	log := pc.log
	var room [4]*entry
	tried := room[:0] // the servers offered the message
	full := false
	for {
		e := p.table.pick(policy, tried, p.balancer(policy))
		if e == nil {
			break
		}
		tried = append(tried, e)
		if log.Enabled(ctx, slog.LevelDebug) {
			debugForwarding(log, e, fr)
		}
		if e.link != nil {
			switch e.link.forward(pc, fr, fl) {
			case forwarded:
				return
			case busy:
				full = true
			case tooLarge:
				pc.waiterFor(fr).refuseUnsent(e.policy, codeTooLarge, tooLargeText("the message as forwarded", "proxy's", p.maxMessageSize()))
				return
			}
		} else if res := e.admit(min(p.maxPending(), max(p.maxServerConns()/4, 1))); res != forwarded {
			full = full || res == busy
		} else if fl.flush(); p.exchange(ctx, pc, fr, e) { // exchange dials, and may wait for the answer
			return
		}
	}
	w := pc.waiterFor(fr)
	w.policy = string(policy)
	switch {
	case len(tried) == 0:
		w.fail(nil, codeNoServer, "no server for policy "+w.policy)
	case full:
		w.fail(nil, codeOverloaded, "every server of policy "+w.policy+" is busy")
	default:
		w.fail(nil, codeUnavailable, "no server of policy "+w.policy+" could be reached")
	}
}

// debugForwarding logs, at Debug, that fr goes to e; apart from dispatch,
// to keep a reader's stack small.
func debugForwarding(log *slog.Logger, e *entry, fr *frame) {
	log.Debug("Forwarding a data message", "server", e.id, "payload", decodeText(fr.f[wire.KeyPayload]))
}

// refuse answers bad input with an error message; the caller then closes
// the connection.
func (pc *pconn) refuse(text string) {
	pc.refuseWith(codeBadMessage, text)
}

// refuseWith answers the message in pc.fr with an error message of code;
// the caller then closes the connection.
func (pc *pconn) refuseWith(code, text string) {
	log := pc.log
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
	case errors.Is(err, ErrOverloaded):
		return codeOverloaded
	}
	return codeBadMessage
}

// send queues m, tagged seq.
func (pc *pconn) send(m *Message, seq uint64, quoted bool) {
	m.Seq = seq
	b := pc.out.begin()
	pc.queued(pc.out.end(append(appendMessage(b, m, quoted), '\n')))
}

// sendControl queues m, one of the proxy's own small messages to a server
// (acknowledgement, heartbeat, drain). It draws on the queue's reserve, not
// on the memory budget: others using up the budget must not cut off a
// server that reads.
func (pc *pconn) sendControl(m *Message, quoted bool) {
	b := pc.out.begin()
	pc.queued(pc.out.endControl(append(appendMessage(b, m, quoted), '\n')))
}

// errSlowConsumer ends a connection whose peer does not read what it is
// sent fast enough for its queue to stay within bounds.
var errSlowConsumer = errors.New("slow consumer: too much queued for the connection")

// queued deals with the outcome of queueing a message for the peer: when
// its queue is full, the peer reads too slowly to be answered, and the
// connection is closed.
func (pc *pconn) queued(err error) {
	if err != errQueueFull {
		return
	}
	pc.log.Warn("Closing a slow consumer", "addr", pc.conn.RemoteAddr().String(), "queued", pc.out.queued.Load())
	pc.out.fail(errSlowConsumer)
	pc.conn.Close()
	pc.wake()
}

// settle records that a forwarded message is answered, and lets the reader
// go on after an untagged one.
func (pc *pconn) settle(seq uint64) {
	if pc.owed.Add(-1) == 0 || pc.out.ended.Load() {
		pc.wake()
	}
	if seq == 0 {
		select {
		case pc.done <- struct{}{}:
		default:
		}
	}
}

// goLegacy runs an exchange with a legacy server in a goroutine that the
// connection waits for before it closes, unless it is closing already; it
// reports which. (A message sent again after its server went away can
// start an exchange at any time.)
func (pc *pconn) goLegacy(exchange func()) bool {
	pc.legacyMu.Lock()
	defer pc.legacyMu.Unlock()
	if pc.closing {
		return false
	}
	pc.legacy.Add(1)
	go func() {
		defer pc.legacy.Done()
		exchange()
	}()
	return true
}

// awaitLegacy lets no more exchanges start and waits for those under way.
func (pc *pconn) awaitLegacy() {
	pc.legacyMu.Lock()
	pc.closing = true
	pc.legacyMu.Unlock()
	pc.legacy.Wait()
}

// drop lets go of the connection's buffers once it has ended: the last
// frame read, which points into the read buffer, and the write queue. A
// server's connection stays reachable from the table while the server
// shows as ejected.
func (pc *pconn) drop() {
	pc.fr, pc.reqid = frame{}, nil
	pc.out.drop()
}

// wake tells awaitOwed to look again.
func (pc *pconn) wake() {
	select {
	case pc.quiet <- struct{}{}:
	default:
	}
}

// awaitOwed waits for the answers to messages already forwarded, so that a
// client that stops sending (or half-closes) still gets every one: an
// answer, or an error message when its server fails or its timeout passes.
// It stops waiting when nothing more can be written to the client, or when
// ctx is done.
func (pc *pconn) awaitOwed(ctx context.Context) {
	for pc.owed.Load() > 0 && !pc.out.ended.Load() {
		select {
		case <-pc.quiet:
		case <-ctx.Done():
			return
		}
	}
}

// wrapWireError marks framing errors as bad input.
func wrapWireError(err error) error {
	var se *wire.SyntaxError
	switch {
	case errors.Is(err, wire.ErrTooLarge):
		return fmt.Errorf("%w: %w", ErrTooLarge, err)
	case errors.As(err, &se):
		return fmt.Errorf("%w: %w", ErrBadMessage, err)
	}
	return err
}

// skipped returns what can be learnt of a message a skipping reader passed
// over for its size, when err says it did: its fields among its first
// bytes.
func skipped(err error) (*wire.Fields, bool) {
	var tl *wire.TooLargeError
	if !errors.As(err, &tl) || !tl.Skipped {
		return nil, false
	}
	return prefixFields(tl.Prefix), true
}

// prefixFields returns the fields among the first bytes of a message.
func prefixFields(prefix []byte) *wire.Fields {
	f := new(wire.Fields)
	wire.ScanPrefix(prefix, f)
	return f
}

// tooLargeText says that a message or answer is over whose limit.
func tooLargeText(what, whose string, limit int) string {
	return fmt.Sprintf("%s is over the %s limit of %d bytes", what, whose, limit)
}
