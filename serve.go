package revproxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"time"

	"golang.org/x/sync/errgroup"
)

// serveConns accepts connections on ln in g and handles each in its own
// goroutine of g until ctx is done; then it closes ln and the connections.
func serveConns(ctx context.Context, g *errgroup.Group, ln net.Listener, log *slog.Logger, handle func(context.Context, net.Conn)) {
	g.Go(func() error {
		<-ctx.Done()
		ln.Close()
		return nil
	})
	g.Go(func() error {
		var delay time.Duration
		for {
			c, err := ln.Accept()
			if err != nil {
				if ctx.Err() != nil {
					return nil
				}
				if errors.Is(err, net.ErrClosed) {
					return fmt.Errorf("revproxy: accept: %w", err)
				}
				// Out of file descriptors and the like: wait and retry,
				// as net/http does.
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				log.Warn("Accept failed", "err", err, "retry", delay)
				select {
				case <-time.After(delay):
				case <-ctx.Done():
				}
				continue
			}
			delay = 0
			g.Go(func() error {
				stop := context.AfterFunc(ctx, func() { c.Close() })
				defer stop()
				defer c.Close()
				handle(ctx, c)
				return nil
			})
		}
	})
}

// wait waits for g and returns its error, or nil when parent was cancelled:
// a role stopped by its context has done what it was asked.
func wait(parent context.Context, g *errgroup.Group) error {
	err := g.Wait()
	if parent.Err() != nil {
		return nil
	}
	return err
}

// logger returns l, or a logger that discards everything.
func logger(l *slog.Logger) *slog.Logger {
	if l != nil {
		return l
	}
	return discard
}

var discard = slog.New(slog.DiscardHandler)

// isClosed reports whether err is the ordinary end of a connection.
func isClosed(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed)
}

// durationOr returns d, or def when d is zero, or 0 (for none) when d is
// negative.
func durationOr(d, def time.Duration) time.Duration {
	switch {
	case d < 0:
		return 0
	case d == 0:
		return def
	}
	return d
}

// orDefault returns v, or def when v is not positive.
func orDefault(v, def int) int {
	if v > 0 {
		return v
	}
	return def
}
