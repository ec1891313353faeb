package revproxy

import (
	"context"
	"crypto/tls"
	"math/rand/v2"
	"net"
	"time"

	"github.com/seed-c202d8a5/revproxy/internal/wire"
)

// ping sends a heartbeat on out every interval until stop closes.
func ping(out *outbox, every time.Duration, stop <-chan struct{}) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			if sendMessage(out, &Message{Type: TypePing}, false) != nil {
				return
			}
		case <-stop:
			return
		}
	}
}

// backoff returns the wait after one of prev: doubled, from 25ms up to
// 500ms, then jittered to between half and all of it, so that servers
// restarted together do not return in step, and a proxy that comes back is
// found within a second.
func backoff(prev time.Duration) time.Duration {
	next := min(max(2*prev, 25*time.Millisecond), 500*time.Millisecond)
	return next/2 + rand.N(next/2+1)
}

// readMessage reads and decodes the next message and reports whether the
// sender wrote numbers as strings.
func readMessage(r *wire.Reader, m *Message) (quoted bool, err error) {
	data, err := r.Next()
	if err != nil {
		*m = Message{}
		return false, wrapWireError(err)
	}
	return decodeMessage(data, m)
}

// dialTimeout bounds connecting to a proxy.
const dialTimeout = 10 * time.Second

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

// dial connects to addr over TCP, or over TLS with cfg when it is not nil.
func dial(ctx context.Context, addr string, cfg *tls.Config, timeout time.Duration) (net.Conn, error) {
	d := net.Dialer{Timeout: timeout}
	if cfg == nil {
		return d.DialContext(ctx, "tcp", addr)
	}
	td := tls.Dialer{NetDialer: &d, Config: cfg}
	return td.DialContext(ctx, "tcp", addr)
}
