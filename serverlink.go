package revproxy

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/seed-c202d8a5/revproxy/internal/wire"
)

// serverLink is a multiplexed server's registration connection, which
// carries its messages: each is tagged with a seq naming a slot that
// remembers whom to answer, and the server answers in any order.
type serverLink struct {
	pc         *pconn
	entry      *entry
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
	reqid  []byte // the message's raw request id, for the access log only
	msg    []byte // the message itself, kept for an idempotent server

	start    int64       // when it was queued for the server, as now gives it
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
func (p *Proxy) serveLink(ctx context.Context, pc *pconn, m *Message) {
	l := p.newLink(pc)
	_, err := p.register(pc, m, l)
	if err != nil {
		pc.refuseWith(codeFor(err), err.Error())
		return
	}
	pc.r.Skip = true         // an answer too large is refused alone
	pc.r.Budget = p.budget() // answers may use what clients may not
	err = l.relay(p, m.Heartbeat)
	pc.later.flush()
	l.close(ctx, p, err)
}

// relay reads the server's answers and relays them until the link fails or
// closes; it returns why.
func (l *serverLink) relay(p *Proxy, heartbeat int) error {
	pc, r := l.pc, l.entry
	log := pc.log
	var alive liveness
	alive.start(pc.conn, heartbeat)
	for {
		alive.extend()
		if err := readFrame(pc.r, &pc.fr); err != nil {
			if f, ok := skipped(err); ok {
				if l.refuseAnswer(f, codeTooLarge, tooLargeText("the answer of server "+r.id, "proxy's", l.maxMessage)) {
					continue
				}
				return err // whom it was for is unknown: the link's messages get errors
			}
			var nm *wire.NoMemoryError
			if errors.As(err, &nm) {
				if l.refuseAnswer(prefixFields(nm.Prefix), codeOverloaded, "the proxy's memory for messages is used up") {
					continue
				}
			}
			return err
		}
		r.counts.seen()
		switch pc.fr.typ {
		case TypeReply, TypeError:
			l.deliver(&pc.fr)
		case TypePing:
			pc.sendControl(&Message{Type: TypePing}, false)
		case TypeDrain:
			l.drain(p)
		default:
			log.Warn("Unexpected message from server", "server", r.id, "policy", r.policy, "addr", r.addr, "type", pc.fr.typ)
			return fmt.Errorf("%w: unexpected %s message from a server", ErrBadMessage, pc.fr.typ)
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
// may, or the message as forwarded would be over the size limit. It is left
// for fl's flush when fl is not nil.
func (l *serverLink) forward(client *pconn, fr *frame, fl *later) forwardResult {
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
	b = append(appendData(b, fr, tag(idx, gen), l.entry.quoted), '\n')
	n := len(b) - start
	switch {
	case n-1 > l.maxMessage:
		out.end(b[:start])
		return tooLarge
	case out.queued.Load()+int64(n) > int64(out.max-controlReserve):
		out.end(b[:start])
		return busy
	}
	keep := l.entry.idempotent
	if keep && !l.mem.take(len(fr.raw)) {
		out.end(b[:start])
		return busy
	}
	if err := out.endLater(b, fl); err != nil {
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
	s.client, s.seq, s.quoted, s.busy, s.gen, s.start = client, fr.seq, fr.quoted, true, gen, now()
	l.entry.pending.Add(1)
	l.entry.counts.sent.Add(1)
	s.srcid = append(s.srcid[:0], fr.f[wire.KeySrcID]...)
	if client.p.AccessLog != nil {
		s.reqid = append(s.reqid[:0], fr.f[wire.KeyReqID]...)
	}
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
	l.entry.pending.Add(-1)
	if s.timer != nil {
		s.timer.Stop()
	}
	l.mem.give(len(s.msg))
	if s.msg = s.msg[:0]; cap(s.msg) > maxIdleBuffer {
		s.msg = nil
	}
	l.free = append(l.free, idx)
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
	w := l.waiter(&l.slots[idx], false)
	l.release(idx)
	return w, true
}

// waiter returns whom to answer for the message in slot s, with the
// client's id when withID is set (an answer the server sent carries it).
func (l *serverLink) waiter(s *slot, withID bool) waiter {
	w := waiter{client: s.client, seq: s.seq, quoted: s.quoted, start: s.start}
	if s.client.p.AccessLog != nil {
		w.reqid, w.destid = decodeText(s.reqid), decodeText(s.srcid)
	}
	if withID {
		w.destid = decodeText(s.srcid)
	}
	return w
}

// expire answers the message in slot idx with ErrTimeout, if it is still
// the one the timer was armed for and still unanswered. A late answer from
// the server then finds no one waiting and is dropped. A callback that
// waited for the lock while the link closed finds no slots: close stopped
// the timers, but cannot stop one already running.
func (l *serverLink) expire(idx int) {
	l.mu.Lock()
	if idx >= len(l.slots) { // the link closed, and close answered the message
		l.mu.Unlock()
		return
	}
	s := &l.slots[idx]
	// A callback of an earlier message's timer may run late, after the slot
	// took a new message and re-armed: its deadline tells them apart.
	if !s.busy || s.gen != s.timerGen || time.Now().Before(s.deadline) {
		l.mu.Unlock()
		return
	}
	w, ms := l.waiter(s, true), s.timeout
	l.release(idx)
	l.mu.Unlock()
	w.fail(l.entry, codeTimeout, fmt.Sprintf("server %s did not answer within %d ms", l.entry.id, ms))
}

// drain stops sending the server new messages and tells it so: nothing
// follows the answer on the link, so once the server reads it, it has every
// message it will get. Those it owes are still relayed.
func (l *serverLink) drain(p *Proxy) {
	log := l.pc.log
	if p.table.setState(l.entry, Draining) {
		log.Info("Server draining", "server", l.entry.id, "policy", l.entry.policy, "addr", l.entry.addr)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.draining = true
	l.pc.sendControl(&Message{Type: TypeDrain}, false)
}

// deliver relays a server's answer to the client waiting for it.
func (l *serverLink) deliver(fr *frame) {
	log := l.pc.log
	w, ok := l.take(fr.seq)
	if !ok {
		log.Debug("Answer for no waiting message (timed out, or sent twice)", "server", l.entry.id, "seq", fr.seq)
		return
	}
	w.relayLater(l.entry, fr, &l.pc.later)
}

// refuseAnswer answers with an error the message whose answer, with fields
// f among its first bytes, was over the size limit.
// It reports false when the answer's first bytes do not say which message
// it is for: the link must then close, so that its message is not left
// unanswered.
func (l *serverLink) refuseAnswer(f *wire.Fields, code, text string) bool {
	log := l.pc.log
	seq, err := decodeSeq(f[wire.KeySeq])
	if err != nil || seq == 0 {
		log.Warn("An answer too large without a seq among its first bytes", "server", l.entry.id)
		return false
	}
	w, ok := l.take(seq)
	if !ok {
		log.Warn("Dropped an answer too large for no waiting message", "server", l.entry.id, "seq", seq)
		return true
	}
	log.Warn("Refused an answer", "server", l.entry.id, "err", text)
	w.destid = decodeText(f[wire.KeyDestID])
	w.fail(l.entry, code, text)
	return true
}

// close takes the server out of service, for cause, and deals with every
// message it still owes: one for an idempotent server goes to another
// server of the policy; any other is answered with an error, as the server
// may or may not have handled it.
func (l *serverLink) close(ctx context.Context, p *Proxy, cause error) {
	log := l.pc.log
	l.mu.Lock()
	l.closed = true
	owed := make([]slot, 0, len(l.slots)-len(l.free))
	for i := range l.slots {
		s := &l.slots[i]
		if s.busy {
			// The copy keeps the message, sent again below; the link is
			// closed, so nothing reuses the slot's buffers meanwhile.
			owed = append(owed, *s)
			l.release(i)
		}
		if s.timer != nil {
			s.timer.Stop()
		}
	}
	l.slots, l.free = nil, nil // an ejected server stays in the table a while: keep it small
	l.mu.Unlock()
	resend := 0
	if l.entry.idempotent {
		for _, s := range owed {
			if s.msg != nil {
				resend++
			}
		}
	}
	p.left(log, l.entry, cause, len(owed)-resend, resend)
	// Outside the lock: sending on goes through other links' locks.
	text := "server " + l.entry.id + " went away before answering"
	for _, s := range owed {
		if l.entry.idempotent && s.msg != nil {
			var fr frame
			if fr.decode(s.msg) == nil {
				if p.AccessLog != nil && fr.f[wire.KeyReqID] == nil && len(s.reqid) > 0 {
					fr.f[wire.KeyReqID] = s.reqid // the id the proxy gave it, not in the client's copy
				}
				p.dispatch(ctx, s.client, &fr, fr.policy(), nil)
				continue
			}
		}
		l.waiter(&s, true).fail(l.entry, codeUnavailable, text)
	}
}
