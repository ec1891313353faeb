package revproxy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/seed-c202d8a5/revproxy/internal/wire"
)

// serverLink is a multiplexed server's registration connection, which
// carries its messages: each is tagged with a seq naming a slot that
// remembers whom to answer, and the server answers in any order.
type serverLink struct {
	pc         *pconn
	route      *route
	max        int // messages in flight at most
	maxMessage int // bytes in a forwarded message at most
	mem        *budget

	mu       sync.Mutex
	slots    []slot
	free     []int
	closed   bool
	draining bool // the server asked for nothing new
}

// slot is one message a server link waits to have answered.
type slot struct {
	client *pconn
	seq    uint64 // the client's tag; 0 when it waits in order
	quoted bool   // the client writes numbers as strings
	busy   bool
	gen    uint32 // distinguishes the slot's successive messages
	srcid  []byte // the client's raw id, for an error message
	msg    []byte // the message itself, kept for an idempotent server

	timer    *time.Timer // made once, re-armed for each message with a timeout
	timerGen uint32      // the gen the timer is armed for
	deadline time.Time   // when it is armed to fire
	timeout  int         // the message's timeout, for the error message
}

// tag and untag map a slot to the seq sent to the server and back.
func tag(idx int, gen uint32) uint64 { return uint64(gen)<<32 | uint64(idx+1) }

func untag(seq uint64) (idx int, gen uint32) { return int(uint32(seq)) - 1, uint32(seq >> 32) }

// newLink returns a server link over pc with p's bounds.
func (p *Proxy) newLink(pc *pconn) *serverLink {
	return &serverLink{pc: pc, max: p.maxPending(), maxMessage: p.maxMessageSize(), mem: p.budget()}
}

// serveLink registers a multiplexed server and relays its answers until the
// connection ends; then the server leaves the table and the messages it has
// not answered get error messages.
func (p *Proxy) serveLink(ctx context.Context, pc *pconn, m *Message, log *slog.Logger) {
	l := p.newLink(pc)
	r, err := p.register(pc, m, l)
	if err != nil {
		pc.refuseWith(log, codeFor(err), err.Error())
		return
	}
	defer l.close(ctx, p, log)
	pc.r.Skip = true         // an answer too large is refused alone
	pc.r.Budget = p.budget() // answers may use what clients may not
	var alive liveness
	alive.start(pc.conn, m.Heartbeat)
	for {
		alive.extend()
		if err := readFrame(pc.r, &pc.fr); err != nil {
			if f, ok := skipped(err); ok {
				if l.refuseAnswer(f, codeTooLarge, tooLargeText("the answer of server "+r.id, "proxy's", l.maxMessage), log) {
					continue
				}
				return // whom it was for is unknown: the link's messages get errors
			}
			var nm *wire.NoMemoryError
			if errors.As(err, &nm) {
				if l.refuseAnswer(prefixFields(nm.Prefix), codeOverloaded, "the proxy's memory for messages is used up", log) {
					continue
				}
				return
			}
			if !isClosed(err) {
				log.Warn("Server link failed", "server", r.id, "err", err)
			}
			return
		}
		switch pc.fr.typ {
		case TypeReply, TypeError:
			l.deliver(ctx, &pc.fr, log)
		case TypePing:
			pc.sendControl(&Message{Type: TypePing}, false)
		case TypeDrain:
			l.drain(p, log)
		default:
			log.Warn("Unexpected message from server", "server", r.id, "type", pc.fr.typ)
			return
		}
	}
}

// forwardResult says what became of a message offered to a server.
type forwardResult int

const (
	forwarded  forwardResult = iota
	notServing               // the server has left or is leaving: try another
	busy                     // the server has as much in flight or queued as it may: try another
	tooLarge                 // the message as forwarded is over the size limit: for any server
)

// forward queues the data message fr from client to the server, unless the
// link has closed, has as many messages in flight or bytes queued as it
// may, or the message as forwarded would be over the size limit.
func (l *serverLink) forward(client *pconn, fr *frame) forwardResult {
	l.mu.Lock()
	defer l.mu.Unlock() // held while queueing, so nothing follows a drain's answer
	if l.closed || l.draining {
		return notServing
	}
	if len(l.slots)-len(l.free) >= l.max {
		return busy
	}
	idx, gen := len(l.slots), uint32(1)
	if n := len(l.free); n > 0 {
		idx = l.free[n-1]
		gen = (l.slots[idx].gen + 1) & 0x7fffffff // keeps the tag below 1<<63
		if gen == 0 {
			gen = 1
		}
	}
	out := l.pc.out
	b := out.begin()
	start := len(b)
	b = append(appendData(b, fr, tag(idx, gen), l.route.quoted), '\n')
	n := len(b) - start
	switch {
	case n-1 > l.maxMessage:
		out.end(b[:start])
		return tooLarge
	case out.queued.Load()+int64(n) > int64(out.max-controlReserve):
		out.end(b[:start])
		return busy
	}
	keep := l.route.idempotent
	if keep && !l.mem.take(len(fr.raw)) {
		out.end(b[:start])
		return busy
	}
	if err := out.end(b); err != nil {
		if keep {
			l.mem.give(len(fr.raw))
		}
		if err == errQueueFull {
			return busy
		}
		return notServing
	}
	if idx == len(l.slots) {
		l.slots = append(l.slots, slot{})
	} else {
		l.free = l.free[:len(l.free)-1]
	}
	s := &l.slots[idx]
	s.client, s.seq, s.quoted, s.busy, s.gen = client, fr.seq, fr.quoted, true, gen
	s.srcid = append(s.srcid[:0], fr.f[wire.KeySrcID]...)
	if keep {
		s.msg = append(s.msg[:0], fr.raw...)
	}
	if s.timeout = fr.timeout; s.timeout > 0 {
		l.arm(idx, millis(s.timeout))
	}
	return forwarded
}

// arm starts slot idx's timer for its current message; called with l.mu
// held.
func (l *serverLink) arm(idx int, d time.Duration) {
	s := &l.slots[idx]
	s.timerGen = s.gen
	s.deadline = time.Now().Add(d)
	if s.timer == nil {
		s.timer = time.AfterFunc(d, func() { l.expire(idx) })
		return
	}
	s.timer.Reset(d)
}

// release frees slot idx for the next message; called with l.mu held.
func (l *serverLink) release(idx int) {
	s := &l.slots[idx]
	s.client, s.busy = nil, false
	if s.timer != nil {
		s.timer.Stop()
	}
	l.mem.give(len(s.msg))
	if s.msg = s.msg[:0]; cap(s.msg) > maxIdleBuffer {
		s.msg = nil
	}
	l.free = append(l.free, idx)
}

// waiter is whom to answer for a slot's message.
type waiter struct {
	client *pconn
	seq    uint64
	quoted bool
	destid string
}

// take frees the slot that the server's answer tagged seq is for, and
// returns whom to answer; false when no message waits for it (it timed
// out, or the answer came twice).
func (l *serverLink) take(seq uint64) (waiter, bool) {
	idx, gen := untag(seq)
	l.mu.Lock()
	defer l.mu.Unlock()
	if idx < 0 || idx >= len(l.slots) || !l.slots[idx].busy || l.slots[idx].gen != gen {
		return waiter{}, false
	}
	s := &l.slots[idx]
	w := waiter{client: s.client, seq: s.seq, quoted: s.quoted}
	l.release(idx)
	return w, true
}

// expire answers the message in slot idx with ErrTimeout, if it is still
// the one the timer was armed for and still unanswered. A late answer from
// the server then finds no one waiting and is dropped.
func (l *serverLink) expire(idx int) {
	l.mu.Lock()
	s := &l.slots[idx]
	// A callback of an earlier message's timer may run late, after the slot
	// took a new message and re-armed: its deadline tells them apart.
	if !s.busy || s.gen != s.timerGen || time.Now().Before(s.deadline) {
		l.mu.Unlock()
		return
	}
	client, seq, quoted, destid, ms := s.client, s.seq, s.quoted, decodeText(s.srcid), s.timeout
	l.release(idx)
	l.mu.Unlock()
	text := fmt.Sprintf("server %s did not answer within %d ms", l.route.id, ms)
	client.answerMessage(newError(proxyID, destid, codeTimeout, text), seq, quoted)
}

// drain stops sending the server new messages and tells it so: nothing
// follows the answer on the link, so once the server reads it, it has every
// message it will get. Those it owes are still relayed.
func (l *serverLink) drain(p *Proxy, log *slog.Logger) {
	if p.table.remove(l.route) {
		log.Info("Server draining", "id", l.route.id, "policy", l.route.policy)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.draining = true
	l.pc.sendControl(&Message{Type: TypeDrain}, false)
}

// deliver relays a server's answer to the client waiting for it.
func (l *serverLink) deliver(ctx context.Context, fr *frame, log *slog.Logger) {
	w, ok := l.take(fr.seq)
	if !ok {
		log.Debug("Answer for no waiting message (timed out, or sent twice)", "server", l.route.id, "seq", fr.seq)
		return
	}
	if log.Enabled(ctx, slog.LevelDebug) {
		log.Debug("Received a reply", "server", l.route.id, "client", decodeText(fr.f[wire.KeyDestID]),
			"payload", decodeText(fr.f[wire.KeyPayload]))
	}
	w.client.answerFrame(fr, w.seq, w.quoted)
}

// refuseAnswer answers with an error the message whose answer, with fields
// f among its first bytes, was over the size limit.
// It reports false when the answer's first bytes do not say which message
// it is for: the link must then close, so that its message is not left
// unanswered.
func (l *serverLink) refuseAnswer(f *wire.Fields, code, text string, log *slog.Logger) bool {
	seq, err := decodeSeq(f[wire.KeySeq])
	if err != nil || seq == 0 {
		log.Warn("An answer too large without a seq among its first bytes", "server", l.route.id)
		return false
	}
	w, ok := l.take(seq)
	if !ok {
		log.Warn("Dropped an answer too large for no waiting message", "server", l.route.id, "seq", seq)
		return true
	}
	log.Warn("Refused an answer", "server", l.route.id, "err", text)
	w.client.answerMessage(newError(proxyID, decodeText(f[wire.KeyDestID]), code, text), w.seq, w.quoted)
	return true
}

// close takes the server out of the table and deals with every message it
// still owes: one for an idempotent server goes to another server of the
// policy; any other is answered with an error, as the server may or may not
// have handled it.
func (l *serverLink) close(ctx context.Context, p *Proxy, log *slog.Logger) {
	p.table.remove(l.route) // unless it drained, or was replaced
	log.Info("Server left", "id", l.route.id, "policy", l.route.policy)
	l.mu.Lock()
	l.closed = true
	owed := make([]slot, 0, len(l.slots)-len(l.free))
	for i := range l.slots {
		s := &l.slots[i]
		if s.busy {
			owed = append(owed, *s)
			l.mem.give(len(s.msg))
			s.msg = nil // the copy in owed is sent again below
			l.release(i)
		}
		if s.timer != nil {
			s.timer.Stop()
		}
	}
	l.mu.Unlock()
	// Outside the lock: sending on goes through other links' locks.
	text := "server " + l.route.id + " went away before answering"
	for _, s := range owed {
		if l.route.idempotent && s.msg != nil {
			var fr frame
			if fr.decode(s.msg) == nil {
				log.Info("Sending a message again", "from", l.route.id, "policy", l.route.policy)
				p.route(ctx, s.client, &fr, fr.policy(), log)
				continue
			}
		}
		s.client.answerMessage(newError(proxyID, decodeText(s.srcid), codeUnavailable, text), s.seq, s.quoted)
	}
}

// exchange sends the data message fr to r, a server that takes one message
// per connection, over a new connection, and queues the answer for the
// client pc: in this goroutine for an untagged message, in a goroutine of
// its own for a tagged one. The caller has counted the exchange against
// r's bound (see route.admit); exchange ends it. It reports false when r
// cannot be connected to, so that the message may go to another server.
func (p *Proxy) exchange(ctx context.Context, pc *pconn, fr *frame, r *route, log *slog.Logger) bool {
	msg := append(appendData(nil, fr, 0, r.quoted), '\n') // a copy: the frame is reused by the next read
	if len(msg)-1 > p.maxMessageSize() {
		r.finish()
		pc.answerError(fr, codeTooLarge, tooLargeText("the message as forwarded", "proxy's", p.maxMessageSize()))
		return true
	}
	if p.serverConns.Add(1) > int64(p.maxServerConns()) {
		p.serverConns.Add(-1)
		r.finish()
		pc.answerError(fr, codeOverloaded, "the proxy has as many connections to servers open as it may")
		return true
	}
	done := func() {
		p.serverConns.Add(-1)
		r.finish()
	}
	c, err := dial(ctx, r.addr, nil, p.dialTimeout())
	if err != nil {
		done()
		if localFault(err) { // not the server's fault: it stays
			log.Warn("Cannot connect to a server for want of resources", "server", r.id, "err", err)
			pc.answerError(fr, codeOverloaded, "the proxy cannot open a connection: "+err.Error())
			return true
		}
		log.Warn("Server failed", "server", r.id, "policy", r.policy, "err", err)
		// A legacy server that cannot be reached leaves the table until it
		// registers again; a held one leaves when its connection does.
		if r.owner == nil && p.table.remove(r) {
			log.Info("Server left", "id", r.id, "policy", r.policy, "reason", "unreachable")
		}
		return false
	}
	w := waiter{client: pc, seq: fr.seq, quoted: fr.quoted, destid: decodeText(fr.f[wire.KeySrcID])}
	timeout := fr.timeout
	if pc.out.ended.Load() { // the client has gone: nobody to answer
		c.Close()
		done()
		pc.settle(w.seq)
		return true
	}
	run := func() {
		defer done()
		defer c.Close()
		p.exchangeOn(ctx, c, r, msg, timeout, w, log)
	}
	if w.seq == 0 {
		run()
		return true
	}
	if !pc.goLegacy(run) { // the client's connection is closing: nobody to answer
		c.Close()
		done()
		pc.settle(w.seq)
	}
	return true
}

// exchangeOn does one message on c, as the homework's servers expect: send,
// read one answer, and relay it to w, or an error message when there is
// none: once written, a message is not sent again, as it may have been
// handled.
func (p *Proxy) exchangeOn(ctx context.Context, c net.Conn, r *route, msg []byte, timeout int, w waiter, log *slog.Logger) {
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	fail := func(code, text string) {
		log.Warn("Server failed", "server", r.id, "policy", r.policy, "err", text)
		w.client.answerMessage(newError(proxyID, w.destid, code, text), w.seq, w.quoted)
	}
	wait := p.serverTimeout()
	clientWaits := timeout > 0 && millis(timeout) < wait // the client's deadline comes first
	if clientWaits {
		wait = millis(timeout)
	}
	// The deadline covers the write too: a server that accepts and never
	// reads must not hold the message, and its client, forever.
	c.SetDeadline(time.Now().Add(wait))
	if _, err := c.Write(msg); err != nil {
		if clientWaits && errors.Is(err, os.ErrDeadlineExceeded) {
			fail(codeTimeout, fmt.Sprintf("server %s did not take the message within %d ms", r.id, timeout))
			return
		}
		fail(codeUnavailable, fmt.Sprintf("server %s: %v", r.id, err))
		return
	}
	rd := wire.NewReader(c, p.maxMessageSize())
	rd.Budget = p.budget()
	defer rd.Release()
	var fr frame
	err := readFrame(rd, &fr)
	switch {
	case err == nil && (fr.typ == TypeReply || fr.typ == TypeError):
		if log.Enabled(ctx, slog.LevelDebug) {
			log.Debug("Received a reply", "server", r.id, "client", w.destid, "payload", decodeText(fr.f[wire.KeyPayload]))
		}
		w.client.answerFrame(&fr, w.seq, w.quoted)
	case err == nil:
		fail(codeUnavailable, fmt.Sprintf("server %s answered with a %s message", r.id, fr.typ))
	case errors.Is(err, ErrTooLarge):
		fail(codeTooLarge, tooLargeText("the answer of server "+r.id, "proxy's", p.maxMessageSize()))
	case errors.Is(err, wire.ErrNoMemory):
		fail(codeOverloaded, "the proxy's memory for messages is used up")
	case clientWaits && errors.Is(err, os.ErrDeadlineExceeded):
		fail(codeTimeout, fmt.Sprintf("server %s did not answer within %d ms", r.id, timeout))
	default:
		fail(codeUnavailable, fmt.Sprintf("server %s sent no answer: %v", r.id, err))
	}
}

// localFault reports whether a dial failed for want of the proxy's own
// resources (descriptors, ports, buffers), which is no fault of the server.
func localFault(err error) bool {
	for _, e := range []error{syscall.EMFILE, syscall.ENFILE, syscall.ENOBUFS, syscall.ENOMEM, syscall.EADDRNOTAVAIL} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// liveness keeps a read deadline of three heartbeat intervals on a
// connection whose peer pings, so that a peer gone silent (its host crashed,
// the network cut) is noticed. The deadline moves at most every quarter
// interval, not at every message.
type liveness struct {
	conn  net.Conn
	every time.Duration
	moved time.Time
}

// start watches c for a peer that pings every heartbeat milliseconds; zero
// or less watches nothing.
func (a *liveness) start(c net.Conn, heartbeat int) {
	a.conn = c
	a.every = millis(heartbeat)
	a.moved = time.Time{}
}

// extend moves the deadline, if it is due to move.
func (a *liveness) extend() {
	if a.every <= 0 {
		return
	}
	if now := time.Now(); now.Sub(a.moved) >= a.every/4 {
		a.conn.SetReadDeadline(now.Add(3 * a.every))
		a.moved = now
	}
}

// maxMillis bounds durations read from the wire, so that a huge value
// cannot overflow a time.Duration.
const maxMillis = 24 * 3600 * 1000

// millis converts milliseconds from the wire to a duration.
func millis(ms int) time.Duration {
	return time.Duration(min(max(ms, 0), maxMillis)) * time.Millisecond
}
