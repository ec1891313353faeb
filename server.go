package revproxy

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/seed-c202d8a5/revproxy/internal/wire"
	"golang.org/x/sync/errgroup"
)

// Server is a node that serves one policy: it registers with a proxy and
// answers the data messages the proxy forwards with its Handler. A revproxy
// [Proxy] sends the messages over the registration connection itself, so the
// server needs no listen port; proxies written from the homework, and a
// Proxy serving a Legacy server, connect to the server's listener for each
// message instead. See [Server.Serve].
type Server struct {
	ID        string // the server id sent in the setup message; required
	Policy    string // the policy served, such as "PP_1"; required
	ProxyAddr string // the proxy's address, host:port; this or ProxyAddrs is required

	// ProxyAddrs are more proxies to register with: the server serves
	// through all of them at once, so that no one proxy is needed. A proxy
	// among several that cannot be reached is tried again with backoff
	// rather than failing Serve.
	ProxyAddrs []string

	// Handler answers data messages. Nil means [SHA1Handler].
	Handler Handler
	// StringFields writes the setup message's type, id and port as JSON
	// strings, for proxies written from the tutorial that compare them as
	// strings. Replies are always written the way the proxy writes.
	StringFields bool
	// MaxHandlers bounds how many tagged messages the Handler serves at
	// once; more wait, and their connection is not read meanwhile. Zero
	// means 64. Untagged messages, as the homework's proxies send, are
	// handled one at a time on their connection's goroutine, in order, and
	// are not counted.
	MaxHandlers int
	// Idempotent declares that the Handler may safely see a message twice:
	// a revproxy Proxy then sends a message lost with this server (its link
	// closed before the answer) to another server of the policy, instead of
	// answering it with ErrUnavailable.
	Idempotent bool
	// Weight is the server's share of its policy's messages against the
	// others', from 1 to 1000, for a proxy that balances by weight (see
	// [Balancer]); zero means 1. Proxies that know nothing of weights
	// ignore it.
	Weight int
	// HTTPPort is the port of an HTTP service this server's program also
	// runs, on the host the server registers from; zero means none. A
	// Proxy's HTTP front door (package httpproxy) then sends the policy's
	// HTTP requests to it, chosen by the same balancer, and stops when the
	// server drains or leaves. Proxies that know nothing of it ignore it.
	HTTPPort int
	// TLSConfig, if set, makes the server register with the proxy over
	// TLS; include a certificate for a proxy that requires one. To serve
	// legacy proxies over TLS as well, give Serve a listener made with
	// tls.NewListener.
	TLSConfig *tls.Config
	// DrainTimeout is the grace period of a shutdown: when Serve's context
	// is cancelled, the server asks its revproxy proxies to send it nothing
	// new, stops accepting, and finishes the messages in hand, with their
	// handlers' context still live, for up to this long before it closes.
	// Zero means 5 seconds; a negative value stops at once.
	DrainTimeout time.Duration
	// Heartbeat is the interval at which the server pings a revproxy Proxy
	// over its registration; each side takes the other for gone after three
	// intervals of silence, and the server registers again. Zero means 5
	// seconds; a negative value turns heartbeats off.
	Heartbeat time.Duration
	// Token is the proxy's registration secret, sent in the setup message
	// when not empty (see [Proxy.Token]).
	Token string
	// MaxMessageSize bounds a message the server reads. Zero means 1 MiB.
	MaxMessageSize int
	// Legacy registers the way the homework's servers do: the proxy
	// connects to the listener for each message instead of multiplexing
	// messages over the registration connection. For comparison and for
	// proxies that misread the extension.
	Legacy bool
	// FailFast makes Serve return an error matching [ErrNoProxy] when its
	// one proxy cannot be reached at the first attempt. By default a
	// server started before its proxy keeps trying, with backoff, and
	// logs that it does, as a NATS client does with RetryOnFailedConnect.
	FailFast bool
	// AckTimeout bounds the wait for a proxy's acknowledgement of the
	// registration. A proxy that sends none is one written from the
	// homework, which may serve one connection at a time and read it until
	// the peer closes it: once AckTimeout passes, the server closes the
	// registration connection and serves its listener. (Without a listener,
	// Serve returns an error matching [ErrNoProxy].) Zero means 2 seconds;
	// a negative value waits for ever.
	AckTimeout time.Duration
	// Logger receives the registration at Info, every message at Debug
	// and failures at Warn. Nil means silent.
	Logger *slog.Logger

	stats atomic.Value // *serverNodeCounts, made on first use; see counters
}

func (s *Server) ackTimeout() time.Duration {
	if s.AckTimeout != 0 {
		return s.AckTimeout
	}
	return 2 * time.Second
}

// defaultMaxHandlers bounds a Server's concurrent handlers by default.
const defaultMaxHandlers = 64

func (s *Server) maxHandlers() int {
	if s.MaxHandlers > 0 {
		return s.MaxHandlers
	}
	return defaultMaxHandlers
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

// Serve registers with the proxy and answers messages until ctx is
// cancelled. Then it closes ln, the registration and every connection, waits
// for its goroutines and handlers, and returns nil. It returns an error when
// the configuration is incomplete, when the proxy cannot be reached or
// refuses the registration, or when ln fails.
//
// With a revproxy [Proxy], messages arrive over the registration connection
// itself (see [Message.Mux]), so ln may be nil: a server behind NAT or a
// firewall needs no listen port. Other proxies connect to ln's port for each
// message; so does a [Proxy] when the server is Legacy. Clients may also
// connect to ln directly.
//
// The registration connection stays open (see [Message.Hold]): its closing
// tells a revproxy [Proxy] that the server is gone. A proxy that closes it
// after reading the setup message, as the homework's do, keeps the server.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	err := s.check(ln)
	if err != nil {
		if ln != nil {
			ln.Close()
		}
		return err
	}
	port := 0
	if ln != nil {
		port = ln.Addr().(*net.TCPAddr).Port
	}
	proxies := s.proxies()
	sr := &serverRun{s: s, log: logger(s.Logger), stop: ctx, port: port, role: connRegistration,
		several: len(proxies) > 1, handlers: newPool(s.maxHandlers()), drain: newDrainState(), stats: s.counters()}
	if ln == nil {
		sr.role = connOnlyRegistration
	}
	sr.log.Info("Server running", "id", s.ID, "policy", s.Policy, "port", port)
	defer sr.handlers.close()
	// ctx stops new work; hard, cancelled once drained, closes everything.
	hard, kill := context.WithCancel(context.WithoutCancel(ctx))
	defer kill()
	g, gctx := errgroup.WithContext(hard)
	if ln != nil {
		// The listener stays open while the server drains: a proxy that
		// dials it for each message answers the drain only once the last
		// of them has ended.
		serveConns(gctx, g, ln, sr.log, func(cctx context.Context, c net.Conn) {
			sr.serveConn(cctx, c, connFromListener)
		})
	}
	for _, addr := range proxies {
		g.Go(func() error { return sr.register(gctx, addr) })
	}
	g.Go(func() error {
		sr.drain.drainOnStop(ctx, gctx, s.drainTimeout(), kill, sr.log)
		return nil
	})
	return wait(ctx, g)
}

// serverRun is one run of [Server.Serve]: what its connections share.
type serverRun struct {
	s        *Server
	log      *slog.Logger
	stop     context.Context // done when Serve's context is: start nothing new
	port     int             // the listen port the setup message gives, or 0
	role     connRole        // of the registration connections
	several  bool            // registering with more than one proxy
	handlers *pool
	drain    *drainState
	stats    *serverNodeCounts // the Server's
}

// took counts a data message read: it is in hand until done.
func (sr *serverRun) took() {
	sr.stats.answers.messages.Add(1)
	sr.stats.inHand.Add(1)
	sr.drain.took()
}

// done counts a message taken as no longer in hand: its answer is queued,
// or it is dropped.
func (sr *serverRun) done() {
	sr.stats.inHand.Add(-1)
	sr.drain.answered()
}

// drainTimeout returns the grace period for draining, or 0 for none.
func (s *Server) drainTimeout() time.Duration { return durationOr(s.DrainTimeout, 5*time.Second) }

// proxies lists the addresses to register with.
func (s *Server) proxies() []string {
	if s.ProxyAddr == "" {
		return s.ProxyAddrs
	}
	return append([]string{s.ProxyAddr}, s.ProxyAddrs...)
}

func (s *Server) check(ln net.Listener) error {
	switch {
	case s.ID == "":
		return fmt.Errorf("%w: Server.ID is empty", ErrConfig)
	case s.Policy == "":
		return fmt.Errorf("%w: Server.Policy is empty", ErrConfig)
	case s.Weight < 0 || s.Weight > maxWeight:
		return fmt.Errorf("%w: Server.Weight is %d, not from 1 to %d", ErrConfig, s.Weight, maxWeight)
	case s.HTTPPort < 0 || s.HTTPPort > 65535:
		return fmt.Errorf("%w: Server.HTTPPort is %d, not a port", ErrConfig, s.HTTPPort)
	case len(s.proxies()) == 0:
		return fmt.Errorf("%w: Server.ProxyAddr is empty", ErrConfig)
	case ln == nil && s.Legacy:
		return fmt.Errorf("%w: a Legacy Server needs a listener", ErrConfig)
	}
	if ln != nil {
		if _, ok := ln.Addr().(*net.TCPAddr); !ok {
			return fmt.Errorf("%w: Server needs a TCP listener, not %s", ErrConfig, ln.Addr().Network())
		}
	}
	return nil
}

// register registers with the proxy and serves the registration
// connection. A proxy that cannot be reached is tried again, with
// exponential backoff and jitter, until it answers or ctx is done (unless
// FailFast). After a revproxy Proxy has acknowledged the server, losing the
// connection means the proxy went away: the server registers again, the
// same way. A refusal is returned. A proxy that closes the connection
// without acknowledging it, or lets AckTimeout pass (as the homework's
// proxies do), leaves a server with a listener serving it.
func (sr *serverRun) register(ctx context.Context, addr string) error {
	s, stop := sr.s, sr.stop
	log := sr.log.With("proxy", addr)
	var delay time.Duration
	everAcked := false // this proxy is a revproxy Proxy: find it again
	failures := 0      // attempts failed in a row
	for attempt := 0; stop.Err() == nil; attempt++ {
		acked, err := sr.registerOnce(ctx, addr)
		everAcked = everAcked || acked
		var refused *RemoteError
		switch {
		case stop.Err() != nil || ctx.Err() != nil:
			return nil
		case errors.Is(err, ErrOverloaded):
			// busy: try again
		case errors.Is(err, ErrIDInUse) && attempt > 0:
			// likely this server's own old connection, not yet seen closed
		case errors.As(err, &refused):
			return err // refused for good
		case attempt == 0 && errors.Is(err, ErrNoProxy) && s.FailFast && !sr.several:
			return err
		case !everAcked && errors.Is(err, errNotAcknowledged) && sr.role == connRegistration:
			log.Info("The proxy did not acknowledge the registration; serving the listener", "after", s.ackTimeout())
			return nil
		case !everAcked && errors.Is(err, errNotAcknowledged):
			return &wrapped{msg: fmt.Sprintf("revproxy: the proxy at %s did not acknowledge the registration within %v, and a Server without a listener needs a revproxy Proxy", addr, s.ackTimeout()), err: ErrNoProxy}
		case !everAcked && errors.Is(err, errRegistrationClosed) && sr.role == connRegistration:
			log.Info("The proxy closed the registration connection; serving the listener")
			return nil
		case !everAcked && errors.Is(err, errRegistrationClosed):
			return fmt.Errorf("%w: %w", ErrConnLost, err)
		}
		if acked {
			delay, failures = 0, 0
		}
		failures++
		delay = backoff(delay)
		// The first failure in a row is worth a warning; the attempts that
		// follow, every half second, are not.
		level := slog.LevelWarn
		if failures > 1 {
			level = slog.LevelDebug
		}
		log.Log(ctx, level, "Registering with the reverse proxy again", "in", delay, "err", err)
		select {
		case <-time.After(delay):
		case <-stop.Done():
			return nil
		case <-ctx.Done():
			return nil
		}
	}
	return nil
}

// errRegistrationClosed: the registration connection ended.
var errRegistrationClosed = errors.New("registration connection closed")

// errNotAcknowledged: the proxy sent nothing within AckTimeout.
var errNotAcknowledged = errors.New("registration not acknowledged")

// registerOnce dials the proxy, sends the setup message and serves the
// connection until it ends; acked reports whether the proxy acknowledged.
func (sr *serverRun) registerOnce(ctx context.Context, addr string) (acked bool, err error) {
	s := sr.s
	sr.log.Info("Connecting to the reverse proxy", "addr", addr)
	c, err := dial(ctx, addr, s.TLSConfig, dialTimeout)
	if err != nil {
		return false, fmt.Errorf("%w: %w", ErrNoProxy, err)
	}
	setup := Message{Type: TypeSetup, ID: s.ID, Policy: s.Policy, ListenPort: sr.port, Hold: true, Mux: !s.Legacy,
		Idempotent: s.Idempotent, Weight: s.Weight, HTTPPort: s.HTTPPort, Heartbeat: int(s.heartbeat() / time.Millisecond), Token: s.Token}
	if _, err := c.Write(append(appendMessage(nil, &setup, s.StringFields), '\n')); err != nil {
		c.Close()
		return false, fmt.Errorf("%w: %w", errRegistrationClosed, err)
	}
	if wait := s.ackTimeout(); wait > 0 {
		// A revproxy Proxy acknowledges before anything else; serveConn
		// lifts the deadline when it does.
		c.SetReadDeadline(time.Now().Add(wait))
	}
	acked, err = sr.serveConn(ctx, c, sr.role)
	if !acked && errors.Is(err, os.ErrDeadlineExceeded) {
		return false, errNotAcknowledged
	}
	return acked, err
}

// heartbeat returns the ping interval, or 0 for none.
func (s *Server) heartbeat() time.Duration {
	switch {
	case s.Heartbeat < 0:
		return 0
	case s.Heartbeat == 0:
		return 5 * time.Second
	}
	return min(max(s.Heartbeat, time.Millisecond), millis(maxMillis))
}

// connRole says where a server connection comes from.
type connRole int

const (
	connFromListener     connRole = iota // a proxy or client connected to the listener
	connRegistration                     // the registration, beside a listener
	connOnlyRegistration                 // the registration of a server with no listener
)

// serveConn answers the data messages on one connection: from a proxy, a
// client, or the registration connection, where an error message means the
// proxy refused the server, and whose end, for a server with no listener,
// ends Serve; acked reports whether a proxy acknowledged a registration on
// it. Tagged messages go to the handler pool and are answered as they
// finish; untagged ones are answered in order, one at a time.
func (sr *serverRun) serveConn(ctx context.Context, c net.Conn, role connRole) (acked bool, err error) {
	s, st, log := sr.s, sr.drain, sr.log
	registration := role != connFromListener
	sr.stats.conns.Add(1)
	defer sr.stats.conns.Add(-1)
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	limit := s.maxMessageSize()
	r := wire.NewReader(c, limit)
	r.Skip = true // a message too large is refused alone
	// A batch written with nothing left queued wakes a drain, which waits
	// for the links' answers to be written, not only queued.
	out := &outbox{conn: c, coalesce: true, room: st.wake}
	refuse := func(destid string, seq uint64, quoted bool, code, text string) {
		log.Warn("Refused a message", "from", c.RemoteAddr().String(), "err", text)
		e := newError(s.ID, destid, code, text)
		e.Seq = seq
		sr.stats.answers.count(code)
		sendMessage(out, e, quoted)
	}
	var alive liveness // once acknowledged, the proxy answers our pings
	pinging := make(chan struct{})
	var pinger sync.WaitGroup
	defer func() { // the pinger may be writing: close first, then wait
		close(pinging)
		c.Close()
		pinger.Wait()
	}()
	for {
		alive.extend()
		m := new(Message)
		quoted, err := readMessage(r, m)
		if f, ok := skipped(err); ok {
			seq, _ := decodeSeq(f[wire.KeySeq])
			_, quoted, _ := decodeInt("type", f[wire.KeyType])
			refuse(decodeText(f[wire.KeySrcID]), seq, quoted, codeTooLarge, tooLargeText("the message", "server's", limit))
			continue
		}
		if err != nil {
			switch {
			case errors.Is(err, ErrBadMessage):
				refuse(m.SrcID, m.Seq, s.StringFields, codeBadMessage, err.Error())
			case registration && ctx.Err() == nil:
				return acked, fmt.Errorf("%w: %w", errRegistrationClosed, err)
			case !isClosed(err) && ctx.Err() == nil:
				log.Warn("Connection failed", "from", c.RemoteAddr().String(), "err", err)
			}
			return acked, nil
		}
		switch {
		case m.Type == TypeData && m.Seq == 0:
			sr.took()
			reply := sr.handle(ctx, m)
			err := sr.sendAnswer(out, &reply, quoted)
			sr.done()
			if err != nil {
				return acked, nil
			}
		case m.Type == TypeData:
			sr.took()
			if !sr.handlers.submit(ctx, job{run: sr, out: out, m: m, quoted: quoted}) {
				sr.done()
				return acked, nil
			}
		case m.Type == TypeError && registration:
			re := remoteError(m)
			return acked, &wrapped{msg: "revproxy: the proxy refused the registration: " + re.text(), err: re}
		case m.Type == TypeSetup && registration:
			log.Info("Registered with the reverse proxy", "id", m.ID, "policy", m.Policy)
			c.SetReadDeadline(time.Time{}) // acknowledged within AckTimeout
			if !acked {
				st.linkUp(out)
				defer st.linkDown(out)
				sr.stats.registrations.Add(1)
				sr.stats.proxies.Add(1)
				defer sr.stats.proxies.Add(-1)
			}
			if every := s.heartbeat(); every > 0 && !acked {
				alive.start(c, int(every/time.Millisecond))
				pinger.Add(1)
				go func() {
					defer pinger.Done()
					ping(out, every, pinging)
				}()
			}
			acked = true
		case m.Type == TypePing && registration:
			// the proxy's answer: it is alive
		case m.Type == TypeDrain && registration:
			st.linkDrained(out) // every message it will send has been read
		default:
			refuse(m.SrcID, m.Seq, s.StringFields, codeBadMessage, "unexpected "+m.Type.String()+" message")
			return acked, nil
		}
	}
}

// maxMessageSize returns the bound on a message the server reads or writes.
func (s *Server) maxMessageSize() int { return orDefault(s.MaxMessageSize, defaultMaxMessage) }

// sendAnswer queues the answer m on out, or, when it is over the server's
// size limit (so a proxy with the same limit could not take it either), an
// error message in its place, and counts what it queues.
func (sr *serverRun) sendAnswer(out *outbox, m *Message, quoted bool) error {
	s := sr.s
	code := m.Code // "" for a reply
	b := out.begin()
	start := len(b)
	b = appendMessage(b, m, quoted)
	if limit := s.maxMessageSize(); len(b)-start > limit {
		code = codeTooLarge
		e := newError(s.ID, m.DestID, code, tooLargeText("the handler's answer", "server's", limit))
		e.Seq = m.Seq
		b = appendMessage(b[:start], e, quoted)
	}
	sr.stats.answers.count(code)
	return out.end(append(b, '\n'))
}

// handle runs the handler on m and builds the answer: a reply, or an error
// message when the handler fails or panics.
func (sr *serverRun) handle(ctx context.Context, m *Message) (answer Message) {
	s, log := sr.s, sr.log
	if log.Enabled(ctx, slog.LevelDebug) {
		log.Debug("Received a message", "client", m.SrcID, "payload", m.Payload, "reqid", m.RequestID)
		defer func() {
			log.Debug("Sending a response", "client", answer.DestID, "payload", answer.Payload, "reqid", answer.RequestID)
		}()
	}
	defer func() {
		if v := recover(); v != nil {
			log.Error("Handler panicked", "client", m.SrcID, "reqid", m.RequestID, "panic", v)
			sr.stats.panics.Add(1)
			answer = *errorMessage(s.ID, m, codeHandler, fmt.Sprint("handler panicked: ", v))
		}
		answer.RequestID = m.RequestID // the answer's trace is the message's
	}()
	h := s.Handler
	if h == nil {
		h = SHA1Handler
	}
	if m.Timeout > 0 { // the client waits no longer than this
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, millis(m.Timeout))
		defer cancel()
	}
	payload, err := h.ServeMessage(ctx, m)
	if err != nil {
		code := codeHandler
		if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == context.DeadlineExceeded {
			code = codeTimeout // the client's deadline passed
		}
		return *errorMessage(s.ID, m, code, err.Error())
	}
	return Message{Type: TypeReply, SrcID: s.ID, DestID: m.SrcID, PayloadSize: PayloadLen(payload), Payload: payload}
}
