package httpproxy

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// errIdle ends a tunnel on which no byte has moved for the idle timeout.
var errIdle = errors.New("httpproxy: tunnel idle")

// tunnel copies bytes both ways between a client's connection and an
// upstream's. When one side's reading ends with EOF it passes the
// half-close on (CloseWrite on the other side) and the other direction
// goes on; any other end, an idle tunnel, or its context's end closes
// both connections.
//
// Idleness is kept without a timer per read: every connection's deadlines
// start at idle from now, and when one passes the direction that hit it
// looks at when a byte last moved either way, and either moves the
// deadline on to idle after that or, when that moment has passed, ends
// the tunnel.
type tunnel struct {
	client, upstream net.Conn
	idle             time.Duration
	start            time.Time
	last             atomic.Int64 // when a byte last moved, as time since start

	endOnce sync.Once
	err     error // why the tunnel ended, set once by end
}

// newTunnel returns a tunnel between client and upstream that ends after
// idle without traffic.
func newTunnel(idle time.Duration, client, upstream net.Conn) *tunnel {
	t := &tunnel{client: client, upstream: upstream, idle: idle, start: time.Now()}
	deadline := t.start.Add(idle)
	client.SetDeadline(deadline)
	upstream.SetDeadline(deadline)
	return t
}

// end closes both connections, which ends both directions, and keeps the
// first reason given.
func (t *tunnel) end(err error) {
	t.endOnce.Do(func() {
		t.err = err
		t.client.Close()
		t.upstream.Close()
	})
}

// run copies both ways, early (what the client sent that was read
// already) first, until both directions have ended or ctx does. It
// returns the bytes sent upstream and received from it, and why the
// tunnel ended early: nil when both directions ended with EOF.
func (t *tunnel) run(ctx context.Context, early []byte) (sent, received int64, err error) {
	stop := context.AfterFunc(ctx, func() { t.end(context.Cause(ctx)) })
	defer stop()
	done := make(chan struct{})
	go func() {
		defer close(done)
		sent = t.pipe(t.upstream, t.client, early)
	}()
	received = t.pipe(t.client, t.upstream, nil)
	<-done
	t.end(nil)
	return sent, received, t.err
}

// pipe copies first, then src, to dst until src's EOF, which it passes on
// as dst's CloseWrite. On any other end it ends the tunnel. It returns
// the bytes copied.
func (t *tunnel) pipe(dst, src net.Conn, first []byte) (n int64) {
	if len(first) > 0 {
		if err := t.write(dst, first); err != nil {
			t.end(err)
			return 0
		}
		n = int64(len(first))
	}
	buf := copyBuffers.Get()
	defer copyBuffers.Put(buf)
	for {
		nr, err := src.Read(buf)
		if nr > 0 {
			t.moved()
			if err := t.write(dst, buf[:nr]); err != nil {
				t.end(err)
				return n
			}
			n += int64(nr)
		}
		switch {
		case err == nil:
		case err == io.EOF:
			if err := closeWrite(dst); err != nil {
				t.end(err)
			}
			return n
		case errors.Is(err, os.ErrDeadlineExceeded):
			deadline, ok := t.extend()
			if !ok {
				t.end(errIdle)
				return n
			}
			if err := src.SetReadDeadline(deadline); err != nil {
				t.end(err)
				return n
			}
		default:
			t.end(err)
			return n
		}
	}
}

// write writes all of b to dst, waiting as long as the tunnel is not idle.
func (t *tunnel) write(dst net.Conn, b []byte) error {
	for {
		n, err := dst.Write(b)
		if n > 0 {
			t.moved()
		}
		if err == nil || !errors.Is(err, os.ErrDeadlineExceeded) {
			return err
		}
		b = b[n:]
		deadline, ok := t.extend()
		if !ok {
			return errIdle
		}
		if err := dst.SetWriteDeadline(deadline); err != nil {
			return err
		}
	}
}

// moved notes that bytes moved now.
func (t *tunnel) moved() { t.last.Store(int64(time.Since(t.start))) }

// extend returns the moment the tunnel turns idle unless more bytes move,
// and whether that is still to come.
func (t *tunnel) extend() (deadline time.Time, ok bool) {
	deadline = t.start.Add(time.Duration(t.last.Load()) + t.idle)
	return deadline, time.Now().Before(deadline)
}

// closeWrite shuts c's writing side, telling its peer that no more bytes
// come, while its reading side goes on.
func closeWrite(c net.Conn) error {
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return errors.ErrUnsupported
}
