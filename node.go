package revproxy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"

	"golang.org/x/sync/errgroup"
)

// Server is a node that serves one policy: it registers with a proxy and
// answers the data messages the proxy forwards with its Handler. The proxy
// connects to the server's listener for each message, as the homework's
// proxies do, so a Server works with them as well as with [Proxy].
type Server struct {
	ID        string // the server id sent in the setup message; required
	Policy    string // the policy served, such as "PP_1"; required
	ProxyAddr string // the proxy's address, host:port; required

	// Handler answers data messages. Nil means [SHA1Handler].
	Handler Handler
	// StringFields writes the setup message's type, id and port as JSON
	// strings, for proxies written from the tutorial that compare them as
	// strings. Replies are always written the way the proxy writes.
	StringFields bool
	// Legacy registers the way the homework's servers do: the proxy
	// connects to the listener for each message instead of multiplexing
	// messages over the registration connection. For comparison and for
	// proxies that misread the extension.
	Legacy bool
	// Logger receives the registration at Info and every message at Debug.
	// Nil means silent.
	Logger *slog.Logger
}

// ListenAndServe listens on the TCP address addr and calls [Server.Serve].
func (s *Server) ListenAndServe(ctx context.Context, addr string) error {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("revproxy: %w", err)
	}
	return s.Serve(ctx, ln)
}

// Serve registers with the proxy, announcing ln's port, and answers the
// messages that arrive on ln until ctx is cancelled. Then it closes ln, the
// registration and every connection, waits for its goroutines and returns
// nil. It returns an error when the configuration is incomplete, when the
// proxy cannot be reached or refuses the registration, or when ln fails.
//
// The registration connection stays open (see [Message.Hold]): closing it
// tells a revproxy [Proxy] that the server is gone. A proxy that closes it
// after reading the setup message, as the homework's do, keeps the server.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	if err := s.check(); err != nil {
		ln.Close()
		return err
	}
	addr, ok := ln.Addr().(*net.TCPAddr)
	if !ok {
		ln.Close()
		return fmt.Errorf("%w: Server needs a TCP listener, not %s", ErrConfig, ln.Addr().Network())
	}
	log := logger(s.Logger)
	log.Info("Server running", "id", s.ID, "policy", s.Policy, "port", addr.Port)
	g, gctx := errgroup.WithContext(ctx)
	serveConns(gctx, g, ln, log, s.serveConn)
	g.Go(func() error { return s.register(gctx, addr.Port) })
	return wait(ctx, g)
}

func (s *Server) check() error {
	switch {
	case s.ID == "":
		return fmt.Errorf("%w: Server.ID is empty", ErrConfig)
	case s.Policy == "":
		return fmt.Errorf("%w: Server.Policy is empty", ErrConfig)
	case s.ProxyAddr == "":
		return fmt.Errorf("%w: Server.ProxyAddr is empty", ErrConfig)
	}
	return nil
}

// register sends the setup message and holds the connection until the proxy
// closes it or ctx is done. An error message from the proxy is returned.
func (s *Server) register(ctx context.Context, port int) error {
	log := logger(s.Logger)
	log.Info("Connecting to the reverse proxy", "addr", s.ProxyAddr)
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", s.ProxyAddr)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("revproxy: register with proxy: %w", err)
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()

	l := newLink(c, s.StringFields)
	setup := Message{Type: TypeSetup, ID: s.ID, Policy: s.Policy, ListenPort: port, Hold: true}
	if err := l.write(&setup); err != nil {
		return err
	}
	var m Message
	for {
		if err := l.read(&m); err != nil {
			if ctx.Err() == nil {
				log.Info("The proxy closed the registration connection", "err", err)
			}
			return nil
		}
		if m.Type == TypeError {
			return fmt.Errorf("revproxy: registration refused: %w", remoteError(&m))
		}
		log.Warn("Unexpected message on the registration connection", "type", m.Type)
	}
}

// serveConn answers the data messages on one connection from a proxy.
func (s *Server) serveConn(ctx context.Context, c net.Conn) {
	log := logger(s.Logger)
	l := newMirrorLink(c, s.StringFields)
	var m Message
	for {
		if err := l.read(&m); err != nil {
			if errors.Is(err, ErrBadMessage) {
				log.Warn("Bad message", "from", c.RemoteAddr().String(), "err", err)
				l.write(errorMessage(s.ID, &m, codeBadMessage, err.Error()))
			} else if !isClosed(err) {
				log.Warn("Connection failed", "from", c.RemoteAddr().String(), "err", err)
			}
			return
		}
		if m.Type != TypeData {
			text := "unexpected " + m.Type.String() + " message"
			log.Warn("Bad message", "from", c.RemoteAddr().String(), "err", text)
			l.write(errorMessage(s.ID, &m, codeBadMessage, text))
			return
		}
		reply := s.handle(ctx, &m, log)
		if err := l.write(reply); err != nil {
			log.Warn("Could not send the reply", "client", m.SrcID, "err", err)
			return
		}
	}
}

// handle runs the handler on m and builds the answer: a reply, or an error
// message when the handler fails or panics.
func (s *Server) handle(ctx context.Context, m *Message, log *slog.Logger) (answer *Message) {
	if log.Enabled(ctx, slog.LevelDebug) {
		log.Debug("Received a message", "client", m.SrcID, "payload", m.Payload)
		defer func() {
			log.Debug("Sending a response", "client", answer.DestID, "payload", answer.Payload)
		}()
	}
	defer func() {
		if v := recover(); v != nil {
			log.Error("Handler panicked", "client", m.SrcID, "panic", v)
			answer = errorMessage(s.ID, m, codeHandler, fmt.Sprint("handler panicked: ", v))
		}
	}()
	h := s.Handler
	if h == nil {
		h = SHA1Handler
	}
	payload, err := h.ServeMessage(ctx, m)
	if err != nil {
		return errorMessage(s.ID, m, codeHandler, err.Error())
	}
	return &Message{Type: TypeReply, SrcID: s.ID, DestID: m.SrcID, PayloadSize: PayloadLen(payload), Payload: payload}
}

// Client is a node that sends data messages through a proxy and waits for
// the answers. It connects on the first Send and again after the connection
// is lost. Sends may run concurrently: they share one connection and their
// answers come back in the order they were sent. Close the Client when done.
type Client struct {
	ProxyAddr string // the proxy's address, host:port; required
	ID        string // the client id sent as "srcid"

	// StringFields writes the type and ids of data messages as JSON
	// strings, for proxies written from the tutorial.
	StringFields bool
	// Logger receives connection failures at Warn. Nil means silent.
	Logger *slog.Logger

	mu     sync.Mutex
	cur    *clientConn
	closed bool
}

// Send sends payload to a server of policy and returns its reply. An error
// message from the proxy or the server is returned as a [*RemoteError]
// (test it with errors.Is against [ErrNoServer], [ErrUnavailable], ...). If
// ctx ends first, Send returns ctx's error and the late answer is dropped.
func (c *Client) Send(ctx context.Context, policy, payload string) (*Message, error) {
	cc, err := c.conn(ctx)
	if err != nil {
		return nil, err
	}
	m := Message{Type: TypeData, SrcID: c.ID, Policy: policy, PayloadSize: PayloadLen(payload), Payload: payload}
	call, err := cc.send(&m)
	if err != nil {
		return nil, err
	}
	select {
	case <-call.done:
		return call.reply, call.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Close closes the connection, fails the Sends still waiting with
// [ErrClosed], and waits for the client's goroutine to exit.
func (c *Client) Close() error {
	c.mu.Lock()
	c.closed = true
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
func (c *Client) conn(ctx context.Context) (*clientConn, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, ErrClosed
	}
	if c.cur != nil && c.cur.alive() {
		return c.cur, nil
	}
	if c.ProxyAddr == "" {
		return nil, fmt.Errorf("%w: Client.ProxyAddr is empty", ErrConfig)
	}
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", c.ProxyAddr)
	if err != nil {
		return nil, fmt.Errorf("revproxy: connect to proxy: %w", err)
	}
	if old := c.cur; old != nil {
		old.g.Wait()
	}
	cc := &clientConn{l: newLink(nc, c.StringFields), log: logger(c.Logger)}
	cc.g.Go(cc.readLoop)
	c.cur = cc
	return cc, nil
}

// clientConn is one connection of a Client and the Sends waiting on it, in
// the order their messages were written.
type clientConn struct {
	l   *link
	log *slog.Logger
	g   errgroup.Group // the reader

	mu      sync.Mutex // guards writes, pending and err
	pending []*call
	err     error // why the connection ended
}

// call is one Send waiting for its answer.
type call struct {
	reply *Message
	err   error
	done  chan struct{}
}

func (cc *clientConn) alive() bool {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	return cc.err == nil
}

// send writes m and queues its call; writing under the lock keeps the queue
// in the order the proxy answers.
func (cc *clientConn) send(m *Message) (*call, error) {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	if cc.err != nil {
		return nil, cc.err
	}
	if err := cc.l.write(m); err != nil {
		cc.failLocked(fmt.Errorf("%w: %v", ErrConnLost, err))
		return nil, cc.err
	}
	ca := &call{done: make(chan struct{})}
	cc.pending = append(cc.pending, ca)
	return ca, nil
}

// readLoop hands each answer to the oldest waiting call.
func (cc *clientConn) readLoop() error {
	for {
		m := new(Message)
		err := cc.l.read(m)
		if err != nil && !inStep(err) {
			cc.fail(fmt.Errorf("%w: %v", ErrConnLost, err))
			return nil
		}
		cc.mu.Lock()
		if len(cc.pending) == 0 {
			cc.mu.Unlock()
			cc.log.Warn("Dropped an answer no Send waits for", "type", m.Type, "err", err)
			continue
		}
		ca := cc.pending[0]
		cc.pending[0] = nil
		cc.pending = cc.pending[1:]
		cc.mu.Unlock()
		switch {
		case err != nil:
			ca.err = err
		case m.Type == TypeReply:
			ca.reply = m
		case m.Type == TypeError:
			ca.err = remoteError(m)
		default:
			ca.err = fmt.Errorf("%w: got a %s message as an answer", ErrBadMessage, m.Type)
		}
		close(ca.done)
	}
}

func (cc *clientConn) fail(err error) {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	cc.failLocked(err)
}

// failLocked ends the connection with err, once, and fails every waiting call.
func (cc *clientConn) failLocked(err error) {
	if cc.err != nil {
		return
	}
	cc.err = err
	cc.l.conn.Close()
	if !errors.Is(err, ErrClosed) {
		cc.log.Warn("Connection to the proxy ended", "err", err)
	}
	for _, ca := range cc.pending {
		ca.err = err
		close(ca.done)
	}
	cc.pending = nil
}
