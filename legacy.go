package revproxy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"syscall"
	"time"

	"github.com/seed-c202d8a5/revproxy/internal/wire"
)

// exchange sends the data message fr to r, a server that takes one message
// per connection, over a new connection, and queues the answer for the
// client pc: in this goroutine for an untagged message, in a goroutine of
// its own for a tagged one. The caller has counted the exchange against
// r's bound (see entry.admit); exchange ends it. It reports false when r
// cannot be connected to, so that the message may go to another server.
func (p *Proxy) exchange(ctx context.Context, pc *pconn, fr *frame, r *entry) bool {
	log := pc.log
	msg := append(appendData(nil, fr, 0, r.quoted), '\n') // a copy: the frame is reused by the next read
	if len(msg)-1 > p.maxMessageSize() {
		r.finish()
		pc.waiterFor(fr).refuseUnsent(r.policy, codeTooLarge, tooLargeText("the message as forwarded", "proxy's", p.maxMessageSize()))
		return true
	}
	if p.serverConns.Add(1) > int64(p.maxServerConns()) {
		p.serverConns.Add(-1)
		r.finish()
		pc.waiterFor(fr).refuseUnsent(r.policy, codeOverloaded, "the proxy has as many connections to servers open as it may")
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
			if p.errs.once(cause{what: "resources"}) {
				log.Warn("Cannot connect to a server for want of resources", "server", r.id, "err", err)
			}
			pc.waiterFor(fr).refuseUnsent(r.policy, codeOverloaded, "the proxy cannot open a connection: "+err.Error())
			return true
		}
		// A legacy server that cannot be reached is ejected until it
		// registers again; a held one leaves when its connection does.
		if r.owner == nil {
			if was, ok := p.table.leave(r); ok && was == Up {
				log.Warn("Server ejected", "server", r.id, "policy", r.policy, "addr", r.addr, "err", err)
			}
		} else if p.errs.once(cause{what: "dial", policy: r.policy, server: r.id}) {
			log.Warn("Cannot connect to a server", "server", r.id, "policy", r.policy, "addr", r.addr, "err", err)
		}
		return false
	}
	w := pc.waiterFor(fr)
	w.start = now()
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
		p.exchangeOn(ctx, c, r, msg, timeout, w)
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
func (p *Proxy) exchangeOn(ctx context.Context, c net.Conn, r *entry, msg []byte, timeout int, w waiter) {
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	fail := func(code, text string) { w.fail(r, code, text) }
	wait := p.serverTimeout()
	clientWaits := timeout > 0 && millis(timeout) < wait // the client's deadline comes first
	if clientWaits {
		wait = millis(timeout)
	}
	// The deadline covers the write too: a server that accepts and never
	// reads must not hold the message, and its client, forever.
	c.SetDeadline(time.Now().Add(wait))
	r.counts.sent.Add(1)
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
		r.counts.seen()
		w.relay(r, &fr)
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

// admit counts one more exchange with a server dialled per message, unless
// it is draining or has max under way; it says which.
func (r *entry) admit(max int) forwardResult {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case r.draining:
		return notServing
	case r.exchanges >= max:
		return busy
	}
	r.exchanges++
	r.pending.Add(1)
	return forwarded
}

// finish counts an exchange ended; the last one of a draining server calls
// its drain answer.
func (r *entry) finish() {
	r.mu.Lock()
	r.exchanges--
	r.pending.Add(-1)
	answer := r.drained
	if r.exchanges > 0 || !r.draining {
		answer = nil
	} else {
		r.drained = nil
	}
	r.mu.Unlock()
	if answer != nil {
		answer()
	}
}

// drain takes no more exchanges for r and calls answer once those under
// way have ended: then nothing more is on its way to the server.
func (r *entry) drain(answer func()) {
	r.mu.Lock()
	r.draining = true
	if r.exchanges > 0 {
		r.drained = answer
		answer = nil
	}
	r.mu.Unlock()
	if answer != nil {
		answer()
	}
}
