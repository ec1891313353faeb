package revproxy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/seed-c202d8a5/revproxy/internal/wire"
)

// serverLink is a multiplexed server's registration connection, which
// carries its messages: each is tagged with a seq naming a slot that
// remembers whom to answer, and the server answers in any order.
type serverLink struct {
	pc    *pconn
	route *route
	max   int // messages in flight at most

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

// serveLink registers a multiplexed server and relays its answers until the
// connection ends; then the server leaves the table and the messages it has
// not answered get error messages.
func (p *Proxy) serveLink(ctx context.Context, pc *pconn, m *Message, log *slog.Logger) {
	l := &serverLink{pc: pc, max: p.maxPending()}
	r, err := p.register(pc, m, l)
	if err != nil {
		pc.refuseWith(log, codeFor(err), err.Error())
		return
	}
	defer l.close(ctx, p, log)
	var alive liveness
	alive.start(pc.conn, m.Heartbeat)
	for {
		alive.extend()
		if err := readFrame(pc.r, &pc.fr); err != nil {
			if !isClosed(err) {
				log.Warn("Server link failed", "server", r.id, "err", err)
			}
			return
		}
		switch pc.fr.typ {
		case TypeReply, TypeError:
			l.deliver(ctx, &pc.fr, log)
		case TypePing:
			pc.send(&Message{Type: TypePing}, 0, false)
		case TypeDrain:
			l.drain(p, log)
		default:
			log.Warn("Unexpected message from server", "server", r.id, "type", pc.fr.typ)
			return
		}
	}
}

// Results of serverLink.forward.
const (
	forwarded = iota
	linkClosed
	linkFull
)

// forward queues the data message fr from client to the server, unless the
// link has closed or has as many messages in flight as it may.
func (l *serverLink) forward(client *pconn, fr *frame) int {
	l.mu.Lock()
	defer l.mu.Unlock() // held while queueing, so nothing follows a drain's answer
	if l.closed || l.draining {
		return linkClosed
	}
	if len(l.slots)-len(l.free) >= l.max {
		return linkFull
	}
	var idx int
	if n := len(l.free); n > 0 {
		idx = l.free[n-1]
		l.free = l.free[:n-1]
	} else {
		idx = len(l.slots)
		l.slots = append(l.slots, slot{})
	}
	s := &l.slots[idx]
	s.client, s.seq, s.quoted, s.busy = client, fr.seq, fr.quoted, true
	s.gen = (s.gen + 1) & 0x7fffffff // keeps the tag below 1<<63
	if s.gen == 0 {
		s.gen = 1
	}
	s.srcid = append(s.srcid[:0], fr.f[wire.KeySrcID]...)
	if l.route.idempotent {
		s.msg = append(s.msg[:0], fr.raw...)
	}
	if s.timeout = fr.timeout; s.timeout > 0 {
		l.arm(idx, millis(s.timeout))
	}
	seq := tag(idx, s.gen)
	b := l.pc.out.begin()
	l.pc.out.end(append(appendData(b, fr, seq, l.route.quoted), '\n'))
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
	s.client, s.busy = nil, false
	l.free = append(l.free, idx)
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
	l.pc.send(&Message{Type: TypeDrain}, 0, false)
}

// deliver relays a server's answer to the client waiting for it.
func (l *serverLink) deliver(ctx context.Context, fr *frame, log *slog.Logger) {
	idx, gen := untag(fr.seq)
	l.mu.Lock()
	if idx < 0 || idx >= len(l.slots) || !l.slots[idx].busy || l.slots[idx].gen != gen {
		l.mu.Unlock()
		log.Debug("Answer for no waiting message (timed out, or sent twice)", "server", l.route.id, "seq", fr.seq)
		return
	}
	s := &l.slots[idx]
	client, seq, quoted := s.client, s.seq, s.quoted
	s.client, s.busy = nil, false
	if s.timer != nil {
		s.timer.Stop()
	}
	l.free = append(l.free, idx)
	l.mu.Unlock()
	if log.Enabled(ctx, slog.LevelDebug) {
		log.Debug("Received a reply", "server", l.route.id, "client", decodeText(fr.f[wire.KeyDestID]),
			"payload", decodeText(fr.f[wire.KeyPayload]))
	}
	client.answerFrame(fr, seq, quoted)
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
		if s := &l.slots[i]; s.busy {
			owed = append(owed, *s)
			s.client, s.busy, s.msg = nil, false, nil
		}
		if t := l.slots[i].timer; t != nil {
			t.Stop()
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

// errDial marks a failure to connect: the message was not sent.
var errDial = errors.New("cannot connect")

// dialServer connects to a server that takes one message per connection.
func (p *Proxy) dialServer(ctx context.Context, r *route) (net.Conn, error) {
	c, err := dial(ctx, r.addr, nil, p.dialTimeout())
	if err != nil {
		return nil, fmt.Errorf("server %s at %s: %w: %v", r.id, r.addr, errDial, err)
	}
	return c, nil
}

// exchange sends the data message fr over c, a new connection to a legacy
// server, and queues the answer for the client pc: in this goroutine for an
// untagged message, in a goroutine of its own for a tagged one.
func (p *Proxy) exchange(ctx context.Context, pc *pconn, fr *frame, r *route, c net.Conn, log *slog.Logger) {
	m, err := fr.message() // a copy: the frame is reused by the next read
	if err != nil {
		c.Close()
		pc.answerError(fr, codeBadMessage, err.Error())
		return
	}
	seq, quoted := m.Seq, fr.quoted
	m.Seq = 0
	if pc.out.ended() { // the client has gone: nobody to answer
		c.Close()
		pc.settle(seq)
		return
	}
	run := func() {
		defer c.Close()
		pc.answerMessage(p.exchangeOn(ctx, c, r, m, log), seq, quoted)
	}
	if seq == 0 {
		run()
		return
	}
	pc.legacy.Add(1)
	go func() {
		defer pc.legacy.Done()
		run()
	}()
}

// exchangeOn does one message on c, as the homework's servers expect: send,
// read one answer. It returns the answer, or an error message for the
// client: once written, a message is not sent again, as it may have been
// handled.
func (p *Proxy) exchangeOn(ctx context.Context, c net.Conn, r *route, m *Message, log *slog.Logger) *Message {
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	fail := func(err error) *Message {
		log.Warn("Server failed", "server", r.id, "policy", r.policy, "err", err)
		return errorMessage(proxyID, m, codeUnavailable, err.Error())
	}
	l := newLink(c, r.quoted)
	if err := l.write(m); err != nil {
		return fail(fmt.Errorf("server %s: %w", r.id, err))
	}
	wait := p.serverTimeout()
	if m.Timeout > 0 {
		wait = min(wait, millis(m.Timeout))
	}
	c.SetReadDeadline(time.Now().Add(wait))
	reply := new(Message)
	if err := l.read(reply); err != nil {
		return fail(fmt.Errorf("server %s sent no answer: %w", r.id, err))
	}
	if reply.Type != TypeReply && reply.Type != TypeError {
		return fail(fmt.Errorf("server %s answered with a %s message", r.id, reply.Type))
	}
	if log.Enabled(ctx, slog.LevelDebug) {
		log.Debug("Received a reply", "server", r.id, "client", reply.DestID, "payload", reply.Payload)
	}
	return reply
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
