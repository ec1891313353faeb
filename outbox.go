package revproxy

import (
	"context"
	"net"
	"sync"
)

// maxIdleBuffer is the largest write buffer an outbox keeps between writes.
const maxIdleBuffer = 64 << 10

// outbox is a connection's write side. Messages are appended to a queue
// under a lock, and one writer at a time writes everything queued in a single
// Write: under load many messages share a system call, and when the queue
// drains the writer stops. The writer is either the caller that found the
// outbox idle (callers then wait for their own writes, which is the back
// pressure a client or server wants), or, after start, a goroutine of the
// outbox's own (so that a slow peer delays no one else, as the proxy needs).
type outbox struct {
	conn net.Conn

	mu      sync.Mutex
	buf     []byte // the queue
	spare   []byte // the buffer last written, reused for the next queue
	writing bool
	err     error
	wake    chan struct{} // set by start: signals the writer goroutine
}

// begin locks the outbox and returns the queue to append to; end must follow.
func (o *outbox) begin() []byte {
	o.mu.Lock()
	return o.buf
}

// end stores the queue and sees it written. It returns the error that ended
// the connection, if any; what was appended after that is dropped.
func (o *outbox) end(b []byte) error {
	o.buf = b
	if o.err != nil {
		o.buf = o.buf[:0]
		err := o.err
		o.mu.Unlock()
		return err
	}
	if o.wake != nil {
		o.mu.Unlock()
		select {
		case o.wake <- struct{}{}:
		default:
		}
		return nil
	}
	if o.writing {
		o.mu.Unlock()
		return nil
	}
	o.writing = true
	return o.flush()
}

// flush writes the queue until it is empty. It is called with the lock held
// and writing set, and returns with the lock released.
func (o *outbox) flush() error {
	for len(o.buf) > 0 && o.err == nil {
		batch := o.buf
		o.buf = o.spare[:0]
		o.mu.Unlock()
		_, err := o.conn.Write(batch)
		o.mu.Lock()
		// batch becomes the spare, unless it is too large to keep; the old
		// spare is now the queue and must not be handed out twice.
		o.spare = nil
		if cap(batch) <= maxIdleBuffer {
			o.spare = batch
		}
		if err != nil {
			o.err = err
			o.conn.Close()
		}
	}
	o.writing = false
	err := o.err
	o.mu.Unlock()
	return err
}

// start makes a goroutine of g the outbox's writer until ctx is done.
func (o *outbox) start(ctx context.Context, spawn func(func() error)) {
	o.wake = make(chan struct{}, 1)
	spawn(func() error {
		for {
			select {
			case <-o.wake:
			case <-ctx.Done():
				return nil
			}
			o.mu.Lock()
			o.writing = true
			if o.flush() != nil {
				return nil
			}
		}
	})
}

// fail ends the outbox with err unless it has ended already.
func (o *outbox) fail(err error) {
	o.mu.Lock()
	if o.err == nil {
		o.err = err
	}
	o.mu.Unlock()
}
