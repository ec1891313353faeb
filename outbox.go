package revproxy

import (
	"errors"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
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
	// coalesce makes the writer yield once before writing, so that other
	// goroutines ready to run append their messages first and share its
	// system call. Set it before use, for a connection many goroutines
	// write to.
	coalesce bool

	// Bounds, set before use: what is queued and not yet written may not
	// exceed max bytes (0: no bound) nor what mem lets it take (nil: no
	// budget); room, if set, is signalled when a write leaves no more than
	// max/2 queued.
	max  int
	mem  *budget
	room chan struct{}
	// wait bounds a write the socket does not take at once, for a
	// non-blocking outbox: a peer that takes nothing for this long is cut
	// off. Zero means no bound.
	wait time.Duration

	mu      sync.Mutex
	queued  atomic.Int64 // bytes in buf and in the batch being written; changed under mu
	buf     []byte       // the queue
	spare   []byte       // the buffer last written, reused for the next queue
	writing bool
	later   bool // on a reader's later list, to be written when it has read all it has
	err     error
	ended   atomic.Bool    // err is set: nothing more will be written
	closing atomic.Bool    // shutdown has set the deadline of the last writes
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

// errQueueFull: an outbox would exceed its bound or its budget; what was
// appended is dropped.
var errQueueFull = errors.New("write queue full")

// begin locks the outbox and returns the queue to append to; end must follow.
func (o *outbox) begin() []byte {
	o.mu.Lock()
	return o.buf
}

// end stores the queue and sees it written. It returns the error that ended
// the connection, if any, or errQueueFull when what was appended exceeds
// the outbox's bound or budget; in both cases what was appended is dropped.
func (o *outbox) end(b []byte) error { return o.endWith(b, false, nil) }

// endLater is end for a connection's reader, which writes what it queues
// once it has handled everything one read brought in: unless a writer is
// at work, the queue is left for l's flush. A nil l makes it end.
func (o *outbox) endLater(b []byte, l *later) error { return o.endWith(b, false, l) }

// endControl is end for a small control message: its bytes are counted
// against the budget even when it is used up (the queue's bound still
// holds).
func (o *outbox) endControl(b []byte) error { return o.endWith(b, true, nil) }

func (o *outbox) endWith(b []byte, control bool, l *later) error {
	added := len(b) - len(o.buf)
	if o.err != nil {
		err := o.err
		o.mu.Unlock()
		return err
	}
	if added > 0 && !o.admit(added, control) {
		o.buf = b[:len(o.buf)]
		o.mu.Unlock()
		return errQueueFull
	}
	o.buf = b
	o.queued.Add(int64(added))
	if o.writing {
		o.mu.Unlock()
		return nil
	}
	// Put off only while the queue is within what the budget does not
	// count: a reader that brings in much for one connection writes it as
	// it goes, so that a client that reads is never charged for it.
	if l != nil && o.queued.Load() <= freeQueue {
		if !o.later {
			o.later = true
			l.outs = append(l.outs, o)
		}
		o.mu.Unlock()
		return nil
	}
	o.writing = true
	if o.coalesce {
		o.mu.Unlock()
		runtime.Gosched()
		o.mu.Lock()
	}
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
			err = o.write(batch)
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

// writeLater writes what was queued for a later flush, unless a writer is
// at work already or the queue has been written meanwhile.
func (o *outbox) writeLater() {
	o.mu.Lock()
	o.later = false
	if o.writing || len(o.buf) == 0 || o.err != nil {
		o.mu.Unlock()
		return
	}
	o.writing = true
	o.flush(!o.nonblock)
}

// later is a connection reader's list of the outboxes it queued messages on
// without writing them. Whatever one read brings in (several clients'
// messages on a server link, or one client's many) is handled first, and
// then each outbox is written once: the messages for one connection share a
// system call. The reader flushes the list before it reads again or waits
// for anything else, so nothing is held longer than the handling of what
// was already read.
type later struct {
	outs []*outbox
}

// flush writes every outbox on the list; a nil list has none.
func (l *later) flush() {
	if l == nil {
		return
	}
	for i, o := range l.outs {
		o.writeLater()
		l.outs[i] = nil
	}
	l.outs = l.outs[:0]
}

// finish writes batch[n:], waiting as long as it takes, then flushes what
// was queued meanwhile.
func (o *outbox) finish(batch []byte, n int) {
	defer o.rest.Done()
	err := o.write(batch[n:])
	o.mu.Lock()
	o.recycle(batch, err)
	o.flush(true)
}

// writeChunk is how much a blocking write of a bounded outbox writes under
// one deadline.
const writeChunk = 64 << 10

// write writes p, waiting for the socket. With a bound on the wait, p goes
// in chunks, each with a deadline of its own: a peer that keeps taking what
// it is sent, however slowly, is not cut off, one that takes nothing is.
// Once shutdown has begun, its deadline holds.
func (o *outbox) write(p []byte) error {
	if o.wait <= 0 || o.closing.Load() {
		_, err := o.conn.Write(p)
		return err
	}
	for len(p) > 0 {
		n := min(len(p), writeChunk)
		if o.closing.Load() {
			n = len(p)
		} else {
			o.conn.SetWriteDeadline(time.Now().Add(o.wait))
		}
		if _, err := o.conn.Write(p[:n]); err != nil {
			return err
		}
		p = p[n:]
	}
	return nil
}

// freeQueue is how much of an outbox's queue its budget does not count:
// every connection may queue that much, so that answers to a client that
// reads keep flowing whatever the budget.
const freeQueue = 16 << 10

// charge is what the budget counts of a queue of q bytes.
func charge(q int64) int { return int(max(q-freeQueue, 0)) }

// admit takes n more bytes into the queue's bound and budget, if they fit.
func (o *outbox) admit(n int, control bool) bool {
	q := o.queued.Load()
	if o.max > 0 && q+int64(n) > int64(o.max) {
		return false
	}
	c := charge(q+int64(n)) - charge(q)
	if control {
		o.mem.force(c)
		return true
	}
	return o.mem.take(c)
}

// release gives back n bytes of the queue, written or dropped.
func (o *outbox) release(n int) {
	q := o.queued.Add(-int64(n))
	o.mem.give(charge(q+int64(n)) - charge(q))
}

// recycle keeps a written batch for reuse, gives its bytes back, and
// records a write error.
func (o *outbox) recycle(batch []byte, err error) {
	o.release(len(batch))
	if cap(batch) <= maxIdleBuffer {
		o.spare = batch
	}
	if err != nil && o.err == nil {
		o.conn.Close()
		o.shut(err)
	}
	if o.room != nil && o.queued.Load() <= int64(o.max/2) {
		select {
		case o.room <- struct{}{}:
		default:
		}
	}
}

// shut ends the outbox with err, called with the lock held: nothing more
// will be written, and what is queued is dropped.
func (o *outbox) shut(err error) {
	if o.err != nil {
		return
	}
	o.err = err
	o.ended.Store(true)
	o.release(len(o.buf))
	o.buf = o.buf[:0]
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

// shutdown gives what is queued up to timeout to be written, for an error
// message sent just before the connection closes, and then ends the outbox:
// later writers, such as a late answer for a client that has gone, write
// nothing and start no goroutine. Only a non-blocking outbox shuts down.
func (o *outbox) shutdown(timeout time.Duration) {
	o.closing.Store(true)
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
	o.shut(net.ErrClosed)
	o.mu.Unlock()
	o.rest.Wait() // no Add can follow: they happen under the lock, before err is set
}

// drop lets go of the queue's buffers, once the outbox has ended.
func (o *outbox) drop() {
	o.mu.Lock()
	o.buf, o.spare = nil, nil
	o.mu.Unlock()
}

// fail ends the outbox with err unless it has ended already.
func (o *outbox) fail(err error) {
	o.mu.Lock()
	o.shut(err)
	o.mu.Unlock()
}

// full reports whether more than half the outbox's bound is queued: a
// reader should wait for room before taking in work that adds to it.
func (o *outbox) full() bool {
	return o.max > 0 && o.queued.Load() > int64(o.max/2)
}
