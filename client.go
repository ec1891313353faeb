package revproxy

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/seed-c202d8a5/revproxy/internal/wire"
	"golang.org/x/sync/errgroup"
)

// Client is a node that sends data messages through a proxy and waits for
// the answers. It connects on the first Send and again after the connection
// is lost. Sends may run concurrently from many goroutines: they share one
// connection, each message is tagged with a seq, and answers are matched by
// it, so they may come back in any order. (An answer without a seq, from a
// proxy that does not echo it, goes to the oldest waiting Send.) Proxies
// written from the homework read one message per receive: send to them from
// one goroutine at a time. Close the Client when done.
type Client struct {
	ProxyAddr string // the proxy's address, host:port; this or ProxyAddrs is required
	ID        string // the client id sent as "srcid"

	// ProxyAddrs are more proxies to fail over to: the client connects to
	// the first that answers, and after losing a connection starts from
	// the next. With Retry, a message lost with a proxy goes through
	// another.
	ProxyAddrs []string

	// StringFields writes the type and ids of data messages as JSON
	// strings, for proxies written from the tutorial.
	StringFields bool
	// MaxMessageSize bounds a message the client sends or reads; Send
	// refuses a larger payload itself. Zero means 1 MiB, what a Proxy takes
	// by default.
	MaxMessageSize int
	// TLSConfig, if set, makes the client connect over TLS.
	TLSConfig *tls.Config
	// Retry makes Send try again, with exponential backoff and jitter until
	// its context is done, when the answer was lost with the connection,
	// when the proxy cannot be reached, or when it answers that no server
	// serves the policy, none could take the message, or all are busy. Set
	// it only for idempotent handlers: a message sent again may be handled
	// twice.
	Retry bool
	// Logger receives connection failures at Warn. Nil means silent.
	Logger *slog.Logger

	mu      sync.Mutex
	cur     *clientConn
	at      int           // the index of cur's proxy among proxies()
	dialing chan struct{} // closed when the dial under way ends
	closed  bool
	life    context.Context // cancelled by Close, ending dials under way
	end     context.CancelFunc

	stats clientNodeCounts
}

// Send sends payload to a server of policy and returns its reply. An error
// message from the proxy or the server is returned as a [*RemoteError]
// (test it with errors.Is against [ErrNoServer], [ErrUnavailable], ...). If
// ctx ends first, Send returns ctx's error and the late answer is dropped.
func (c *Client) Send(ctx context.Context, policy, payload string) (*Message, error) {
	reply, err := c.sendRetrying(ctx, policy, payload)
	c.stats.sendReturned(err)
	return reply, err
}

// sendRetrying is Send, tried again as Retry says.
func (c *Client) sendRetrying(ctx context.Context, policy, payload string) (*Message, error) {
	var delay time.Duration
	for {
		reply, err := c.sendOnce(ctx, policy, payload)
		if err == nil || !c.Retry || !retryable(err) {
			return reply, err
		}
		delay = backoff(delay)
		select {
		case <-time.After(delay):
		case <-ctx.Done():
			return nil, fmt.Errorf("%w; gave up: %w", err, ctx.Err())
		}
	}
}

// proxies lists the addresses to connect to, in order.
func (c *Client) proxies() []string {
	if c.ProxyAddr == "" {
		return c.ProxyAddrs
	}
	return append([]string{c.ProxyAddr}, c.ProxyAddrs...)
}

// retryable reports whether a Send that failed with err may be tried again
// by a Client with Retry set.
func retryable(err error) bool {
	for _, e := range []error{ErrConnLost, ErrNoProxy, ErrNoServer, ErrUnavailable, ErrOverloaded} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// sendOnce sends the message once and waits for its answer.
func (c *Client) sendOnce(ctx context.Context, policy, payload string) (*Message, error) {
	cc, err := c.conn(ctx)
	if err != nil {
		return nil, err
	}
	m := Message{Type: TypeData, SrcID: c.ID, Policy: policy, PayloadSize: PayloadLen(payload), Payload: payload}
	if deadline, ok := ctx.Deadline(); ok { // carried to the proxy and the handler
		m.Timeout = max(int(time.Until(deadline)/time.Millisecond), 1)
	}
	ca, err := cc.send(&m)
	if err != nil {
		return nil, err
	}
	c.stats.sent.Add(1)
	c.stats.inFlight.Add(1)
	defer c.stats.inFlight.Add(-1)
	select {
	case <-ca.done:
		reply, err := ca.reply, ca.err
		putCall(ca)
		return reply, err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Close closes the connection, fails the Sends still waiting with
// [ErrClosed], and waits for the client's goroutine to exit.
func (c *Client) Close() error {
	c.mu.Lock()
	c.closed = true
	if c.end != nil {
		c.end()
	}
	cc := c.cur
	c.cur = nil
	c.mu.Unlock()
	if cc != nil {
		cc.fail(ErrClosed)
		cc.g.Wait()
	}
	return nil
}

// conn returns the live connection, dialling a new one if there is none.
// It dials without holding c.mu, so that Close and other Sends need not wait
// for a slow proxy.
func (c *Client) conn(ctx context.Context) (*clientConn, error) {
	c.mu.Lock()
	for c.dialing != nil && !c.closed { // one dial at a time; the others wait for it
		wait := c.dialing
		c.mu.Unlock()
		select {
		case <-wait:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		c.mu.Lock()
	}
	if c.closed {
		c.mu.Unlock()
		return nil, ErrClosed
	}
	if c.cur != nil && c.cur.alive() {
		cc := c.cur
		c.mu.Unlock()
		return cc, nil
	}
	dialing := make(chan struct{})
	c.dialing = dialing
	defer func() {
		c.mu.Lock()
		c.dialing = nil
		c.mu.Unlock()
		close(dialing)
	}()
	proxies := c.proxies()
	start := c.at
	if c.cur != nil { // lost: begin with the next proxy
		start++
	}
	if c.life == nil {
		c.life, c.end = context.WithCancel(context.Background())
	}
	life := c.life
	c.mu.Unlock()
	if len(proxies) == 0 {
		return nil, fmt.Errorf("%w: Client.ProxyAddr is empty", ErrConfig)
	}

	dctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(life, cancel)() // Close ends the dial
	var nc net.Conn
	var err error
	at := 0
	for i := range proxies {
		at = (start + i) % len(proxies)
		if nc, err = dial(dctx, proxies[at], c.TLSConfig, dialTimeout); err == nil {
			break
		}
	}
	if err != nil {
		if life.Err() != nil {
			return nil, ErrClosed
		}
		return nil, fmt.Errorf("%w: %w", ErrNoProxy, err)
	}

	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.closed:
		nc.Close()
		return nil, ErrClosed
	case c.cur != nil && c.cur.alive(): // another Send connected meanwhile
		nc.Close()
		return c.cur, nil
	}
	if old := c.cur; old != nil {
		old.g.Wait()
	}
	limit := orDefault(c.MaxMessageSize, defaultMaxMessage)
	cc := &clientConn{r: wire.NewReader(nc, limit), max: limit, quoted: c.StringFields, log: logger(c.Logger)}
	cc.r.Skip = true // an answer too large fails its Send alone
	cc.out.conn = nc
	cc.out.coalesce = true
	cc.g.Go(cc.readLoop)
	c.cur, c.at = cc, at
	c.stats.connects.Add(1)
	return cc, nil
}

// clientConn is one connection of a Client and the Sends waiting on it, in
// the order their messages were written.
type clientConn struct {
	r      *wire.Reader
	max    int // message size
	out    outbox
	quoted bool
	log    *slog.Logger
	g      errgroup.Group // the reader

	mu      sync.Mutex // guards the fields below
	pending []*call
	seq     uint64
	err     error // why the connection ended
}

// call is one Send waiting for its answer.
type call struct {
	seq   uint64
	reply *Message
	err   error
	done  chan struct{} // receives once, when reply or err is set
}

var calls = sync.Pool{New: func() any { return &call{done: make(chan struct{}, 1)} }}

func getCall() *call { return calls.Get().(*call) }

// putCall recycles a call whose answer has been taken.
func putCall(ca *call) {
	ca.reply, ca.err = nil, nil
	calls.Put(ca)
}

func (cc *clientConn) alive() bool {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	return cc.err == nil
}

// send tags m, queues its call and writes it. The call joins the queue and
// the message the outbox under the same lock, so that the queue is in the
// order the messages are written.
func (cc *clientConn) send(m *Message) (*call, error) {
	cc.mu.Lock()
	if cc.err != nil {
		err := cc.err
		cc.mu.Unlock()
		return nil, err
	}
	cc.seq++
	m.Seq = cc.seq
	b := cc.out.begin()
	start := len(b)
	b = append(appendMessage(b, m, cc.quoted), '\n')
	if n := len(b) - start; n > cc.max {
		cc.mu.Unlock()
		cc.out.end(b[:start])
		return nil, fmt.Errorf("%w: %d bytes, over the client's limit of %d", ErrTooLarge, n, cc.max)
	}
	ca := getCall()
	ca.seq = m.Seq
	cc.pending = append(cc.pending, ca)
	cc.mu.Unlock()
	if err := cc.out.end(b); err != nil {
		cc.fail(fmt.Errorf("%w: %w", ErrConnLost, err))
	}
	return ca, nil
}

// readLoop hands each answer to the call with its seq, or without one to
// the oldest call.
func (cc *clientConn) readLoop() error {
	for {
		m := new(Message)
		_, err := readMessage(cc.r, m)
		if f, ok := skipped(err); ok {
			m.Seq, _ = decodeSeq(f[wire.KeySeq])
		}
		if err != nil && !inStep(err) {
			cc.fail(fmt.Errorf("%w: %w", ErrConnLost, err))
			return nil
		}
		cc.mu.Lock()
		ca := cc.take(m.Seq)
		cc.mu.Unlock()
		if ca == nil {
			cc.log.Warn("Dropped an answer no Send waits for", "type", m.Type, "seq", m.Seq, "err", err)
			continue
		}
		switch {
		case err != nil:
			ca.err = err
		case m.Type == TypeReply:
			m.Seq = 0 // the Client's own tag, not the caller's business
			ca.reply = m
		case m.Type == TypeError:
			ca.err = remoteError(m)
		default:
			ca.err = fmt.Errorf("%w: got a %s message as an answer", ErrBadMessage, m.Type)
		}
		ca.done <- struct{}{}
	}
}

// inStep reports whether the stream of a skipping reader (see
// wire.Reader.Skip) can go on after err from read: true when one message
// failed to decode or was too large, false when the stream itself is broken
// (bytes that are not JSON objects, or a read error).
func inStep(err error) bool {
	var se *wire.SyntaxError
	return errors.Is(err, ErrBadMessage) && !errors.As(err, &se)
}

// take removes and returns the call tagged seq, or the oldest for seq 0.
func (cc *clientConn) take(seq uint64) *call {
	for i, ca := range cc.pending {
		if seq == 0 || ca.seq == seq {
			copy(cc.pending[i:], cc.pending[i+1:])
			cc.pending[len(cc.pending)-1] = nil
			cc.pending = cc.pending[:len(cc.pending)-1]
			return ca
		}
	}
	return nil
}

func (cc *clientConn) fail(err error) {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	if cc.err != nil {
		return
	}
	cc.err = err
	cc.out.fail(err)
	cc.out.conn.Close()
	if !errors.Is(err, ErrClosed) {
		cc.log.Warn("Connection to the proxy ended", "err", err)
	}
	for _, ca := range cc.pending {
		ca.err = err
		ca.done <- struct{}{}
	}
	cc.pending = nil
}
