package revproxy

import (
	"context"
	"errors"
	"slices"
	"sync/atomic"
)

// ServerNodeStats is a snapshot of a [Server]'s own counters: what it has
// handled and sent since it was made, over every run of Serve, and what it
// holds now. (A proxy's view of a server is a [ServerStats].) It is a plain
// value, safe to keep and to change; see [Server.Stats].
//
// Each data message read counts in Messages and is in hand until its answer
// is queued, when it counts in Answered or, if an error message answers it,
// under that message's code in Errors. (Messages still waiting for a
// handler when Serve stops are dropped unanswered.)
type ServerNodeStats struct {
	// Conns counts the connections served now: registrations with proxies
	// and connections accepted on the listener.
	Conns int `json:"conns"`
	// Proxies counts the proxies that acknowledged a registration still
	// open now. A proxy written from the homework acknowledges nothing and
	// is not counted.
	Proxies int `json:"proxies"`
	// Registrations counts the registrations proxies acknowledged: one per
	// proxy, and one more each time the server registered again after
	// losing a proxy.
	Registrations uint64 `json:"registrations"`
	// InHand counts the data messages read and not yet answered: with the
	// Handler, or waiting for one of the MaxHandlers.
	InHand int `json:"in_hand"`
	// Messages counts the data messages read for the Handler.
	Messages uint64 `json:"messages"`
	// Answered counts the replies sent, as they are queued on their
	// connection: one lost with it is counted all the same.
	Answered uint64 `json:"answered"`
	// Errors counts the error messages sent, by code, like Answered: the
	// Handler failed or panicked ("handler"), the client's deadline passed
	// ("timeout"), the answer was over MaxMessageSize ("too_large"); and
	// messages refused unread, too large or not understood ("too_large",
	// "bad_message"), which Messages does not count.
	Errors map[string]uint64 `json:"errors"`
	// Panics counts the Handler's panics, each also an Errors["handler"].
	Panics uint64 `json:"panics"`
}

// serverNodeCounts are a Server's counters, added to without a lock.
type serverNodeCounts struct {
	conns         atomic.Int64
	proxies       atomic.Int64
	registrations atomic.Uint64
	inHand        atomic.Int64
	answers       counts // messages, answered and errors: what ServerNodeStats says of them
	panics        atomic.Uint64
}

// Stats returns a snapshot of the server's counters. It takes no lock and
// may be called at any time, before Serve too. A copy of a Server made
// after it first served shares its counters.
func (s *Server) Stats() ServerNodeStats {
	c, _ := s.stats.Load().(*serverNodeCounts)
	if c == nil {
		return ServerNodeStats{}
	}
	var a Counts
	c.answers.addTo(&a)
	return ServerNodeStats{
		Conns:         int(c.conns.Load()),
		Proxies:       int(c.proxies.Load()),
		Registrations: c.registrations.Load(),
		InHand:        int(c.inHand.Load()),
		Messages:      a.Messages,
		Answered:      a.Answered,
		Errors:        a.Errors,
		Panics:        c.panics.Load(),
	}
}

// counters returns the server's counters, made on first use. They are held
// in an atomic.Value, not a field of their own, so that a Server can still
// be copied as a configuration (go vet refuses copying the atomic types).
func (s *Server) counters() *serverNodeCounts {
	if c, ok := s.stats.Load().(*serverNodeCounts); ok {
		return c
	}
	s.stats.CompareAndSwap(nil, new(serverNodeCounts))
	return s.stats.Load().(*serverNodeCounts)
}

// ClientNodeStats is a snapshot of a [Client]'s counters: what it has sent
// and what its Sends returned since it was made, and what it holds now. It
// is a plain value, safe to keep and to change; see [Client.Stats].
type ClientNodeStats struct {
	// Proxy is the address of the proxy the client is connected to now,
	// or empty.
	Proxy string `json:"proxy"`
	// Connects counts the connections made to proxies: the first, and one
	// after each that was lost. Failed attempts are not counted.
	Connects uint64 `json:"connects"`
	// InFlight counts the data messages sent whose Send waits for the
	// answer now.
	InFlight int `json:"in_flight"`
	// Sent counts the data messages sent; a Send with Retry counts each
	// try.
	Sent uint64 `json:"sent"`
	// Answered counts the Sends that returned a reply.
	Answered uint64 `json:"answered"`
	// Errors counts the Sends that returned an error, by code: that of the
	// error message that answered (a [RemoteError]'s Code; "other" when
	// empty or unknown), or the client's own: "no_proxy" ([ErrNoProxy]),
	// "conn_lost" ([ErrConnLost]), "closed" ([ErrClosed]), "too_large"
	// ([ErrTooLarge]), "bad_message" ([ErrBadMessage]), "config"
	// ([ErrConfig]), "deadline_exceeded" and "canceled" (the context's
	// errors), else "other". An error that matches several, as when a
	// Send with Retry gives up, counts under the first in that order.
	Errors map[string]uint64 `json:"errors"`
}

// clientCodes are the codes a Client counts its own failures under, after
// those of error messages (codes).
var clientCodes = [...]string{"no_proxy", "conn_lost", "closed", "config", "deadline_exceeded", "canceled"}

// clientNodeCounts are a Client's counters, added to without a lock.
type clientNodeCounts struct {
	connects atomic.Uint64
	inFlight atomic.Int64
	sent     atomic.Uint64
	answered atomic.Uint64
	errors   [len(codes) + len(clientCodes)]atomic.Uint64 // by sendErrorIndex
}

// sendReturned counts the outcome of a Send: a reply when err is nil.
func (c *clientNodeCounts) sendReturned(err error) {
	if err == nil {
		c.answered.Add(1)
		return
	}
	c.errors[sendErrorIndex(err)].Add(1)
}

// sendErrorIndex returns the place in clientNodeCounts.errors of the code
// err counts under; see ClientNodeStats.Errors.
func sendErrorIndex(err error) int {
	var re *RemoteError
	if errors.As(err, &re) {
		return codeIndex(re.Code)
	}
	switch {
	case errors.Is(err, ErrNoProxy):
		return own("no_proxy")
	case errors.Is(err, ErrConnLost):
		return own("conn_lost")
	case errors.Is(err, ErrClosed):
		return own("closed")
	case errors.Is(err, ErrTooLarge):
		return codeIndex(codeTooLarge)
	case errors.Is(err, ErrBadMessage):
		return codeIndex(codeBadMessage)
	case errors.Is(err, ErrConfig):
		return own("config")
	case errors.Is(err, context.DeadlineExceeded):
		return own("deadline_exceeded")
	case errors.Is(err, context.Canceled):
		return own("canceled")
	}
	return codeIndex("other")
}

// own returns the place of code, one of clientCodes, in
// clientNodeCounts.errors.
func own(code string) int { return len(codes) + slices.Index(clientCodes[:], code) }

// Stats returns a snapshot of the client's counters. It may be called at
// any time, on a zero Client too. It takes the client's lock for a moment,
// to read Proxy; the counters need none.
func (c *Client) Stats() ClientNodeStats {
	s := ClientNodeStats{
		Connects: c.stats.connects.Load(),
		InFlight: int(c.stats.inFlight.Load()),
		Sent:     c.stats.sent.Load(),
		Answered: c.stats.answered.Load(),
	}
	for i := range c.stats.errors {
		if n := c.stats.errors[i].Load(); n > 0 {
			if s.Errors == nil {
				s.Errors = make(map[string]uint64)
			}
			if i < len(codes) {
				s.Errors[codes[i]] += n
			} else {
				s.Errors[clientCodes[i-len(codes)]] += n
			}
		}
	}
	c.mu.Lock()
	cc, at := c.cur, c.at
	c.mu.Unlock()
	if cc != nil && cc.alive() {
		if proxies := c.proxies(); at < len(proxies) {
			s.Proxy = proxies[at]
		}
	}
	return s
}
