package revproxy

import (
	"errors"
	"net"
	"sync"
	"syscall"
	"time"
)

// maxIdleBuffer is the largest write buffer an outbox keeps between writes.
const maxIdleBuffer = 64 << 10

// outbox is a connection's write side. Messages are appended to a queue
// under a lock, and one writer at a time writes everything queued: under
// load many messages share a system call, and when the queue drains the
// writer stops. The writer is whichever caller found the outbox idle.
//
// A blocking outbox's writer waits for its writes, which is the back
// pressure a client or server wants. A non-blocking one, as the proxy uses,
// writes only what the socket takes at once and leaves the rest to a
// goroutine that lives until the queue drains, so that a slow peer delays no
// one else and an idle connection has no goroutine writing for it.
type outbox struct {
	conn     net.Conn
	raw      syscall.RawConn // for non-blocking writes; nil if the conn has none
	nonblock bool

	mu      sync.Mutex
	buf     []byte // the queue
	spare   []byte // the buffer last written, reused for the next queue
	writing bool
	err     error
	idle    *sync.Cond     // signalled when writing ends, for drain
	rest    sync.WaitGroup // the goroutine finishing a write the socket could not take

	// try's arguments and results, so that the function passed to the raw
	// conn is made once, not at every write.
	tryBuf []byte
	tryN   int
	tryErr error
	tryFn  func(fd uintptr) bool
}

// newNonblockingOutbox returns an outbox whose writers never wait for c.
func newNonblockingOutbox(c net.Conn) *outbox {
	o := &outbox{conn: c, nonblock: true}
	o.idle = sync.NewCond(&o.mu)
	if sc, ok := c.(syscall.Conn); ok {
		if raw, err := sc.SyscallConn(); err == nil {
			o.raw = raw
			o.tryFn = o.tryOnFD
		}
	}
	return o
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
	if o.writing {
		o.mu.Unlock()
		return nil
	}
	o.writing = true
	return o.flush(!o.nonblock)
}

// flush writes the queue until it is empty. It is called with the lock held
// and writing set, and returns with the lock released. Unless block is set,
// the part of a batch the socket does not take at once goes to a goroutine,
// which goes on flushing.
func (o *outbox) flush(block bool) error {
	for len(o.buf) > 0 && o.err == nil {
		batch := o.buf
		o.buf = o.spare[:0]
		o.spare = nil // it is the queue now; batch becomes the spare below
		o.mu.Unlock()
		var err error
		if block {
			_, err = o.conn.Write(batch)
			o.mu.Lock()
		} else {
			var n int
			n, err = o.try(batch)
			o.mu.Lock()
			if errors.Is(err, errWouldBlock) {
				if o.err == nil { // decided under the lock drain takes
					o.rest.Add(1)
					o.mu.Unlock()
					go o.finish(batch, n)
					return nil
				}
				err = nil // ended meanwhile: the rest is dropped
			}
		}
		o.recycle(batch, err)
	}
	o.writing = false
	if o.idle != nil {
		o.idle.Broadcast()
	}
	err := o.err
	o.mu.Unlock()
	return err
}

// finish writes batch[n:], waiting as long as it takes, then flushes what
// was queued meanwhile.
func (o *outbox) finish(batch []byte, n int) {
	defer o.rest.Done()
	_, err := o.conn.Write(batch[n:])
	o.mu.Lock()
	o.recycle(batch, err)
	o.flush(true)
}

// recycle keeps a written batch for reuse and records a write error.
func (o *outbox) recycle(batch []byte, err error) {
	if cap(batch) <= maxIdleBuffer {
		o.spare = batch
	}
	if err != nil && o.err == nil {
		o.err = err
		o.conn.Close()
	}
}

// errWouldBlock: the socket took only part of a write, or none.
var errWouldBlock = errors.New("write would block")

// try writes as much of p as the socket takes without waiting.
func (o *outbox) try(p []byte) (int, error) {
	if o.raw == nil {
		return 0, errWouldBlock
	}
	o.tryBuf, o.tryN, o.tryErr = p, 0, nil
	if err := o.raw.Write(o.tryFn); err != nil {
		return 0, err
	}
	n, err := o.tryN, o.tryErr
	o.tryBuf = nil
	if err == nil && n < len(p) {
		err = errWouldBlock
	}
	return n, err
}

// drain gives what is queued up to timeout to be written, for an error
// message sent just before the connection closes, and then ends the outbox:
// later writers, such as a late answer for a client that has gone, write
// nothing and start no goroutine. Only a non-blocking outbox drains.
func (o *outbox) drain(timeout time.Duration) {
	o.conn.SetWriteDeadline(time.Now().Add(timeout))
	o.mu.Lock()
	for o.writing { // the writer at work, inline or finishing, writes on
		o.idle.Wait()
	}
	if o.err == nil {
		o.writing = true
		o.flush(true)
		o.mu.Lock()
	}
	if o.err == nil {
		o.err = net.ErrClosed
	}
	o.mu.Unlock()
	o.rest.Wait() // no Add can follow: they happen under the lock, before err is set
}

// ended reports whether the outbox has ended: nothing more will be written.
func (o *outbox) ended() bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.err != nil
}

// fail ends the outbox with err unless it has ended already.
func (o *outbox) fail(err error) {
	o.mu.Lock()
	if o.err == nil {
		o.err = err
	}
	o.mu.Unlock()
}
