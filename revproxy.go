package revproxy

import (
	"context"
	"crypto/subtle"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/seed-c202d8a5/revproxy/internal/wire"
)

// proxyID is the srcid of error messages the proxy itself sends.
const proxyID = "proxy"

// defaultMaxMemory is MaxMemory's default.
const defaultMaxMemory = 256 << 20

// shutdownTimeout bounds the writing of what is queued for a connection that
// is closing.
const shutdownTimeout = 5 * time.Second

// Proxy is the reverse proxy: servers register with it, clients send it data
// messages, and it forwards each to a server of the message's policy, round
// robin, and relays the answer. The zero Proxy is ready to use; its fields
// must not change once it serves.
type Proxy struct {
	// DialTimeout bounds connecting to a server. Zero means 5 seconds.
	DialTimeout time.Duration
	// ServerTimeout bounds a legacy server's answer to a forwarded
	// message, from the moment it is written. Zero means 30 seconds.
	// Messages on a multiplexed link wait for their server's answer as
	// long as the link lives.
	ServerTimeout time.Duration
	// MaxMessageSize bounds one message, as read and as forwarded; a larger
	// one is refused with "too_large" (see [ErrTooLarge]) while it is read,
	// without being buffered: a client's, after which its connection
	// closes, or a server's answer, alone. Zero means 1 MiB.
	MaxMessageSize int
	// MaxConns bounds the connections served at once; one more gets an
	// "overloaded" error message and is closed. Zero means no bound.
	MaxConns int
	// FirstMessageTimeout bounds the wait for a connection's first message.
	// Zero means 10 seconds.
	FirstMessageTimeout time.Duration
	// IdleTimeout closes a client connection that sends no message for this
	// long. Zero means 5 minutes; a negative value, never. A server's
	// registration is not subject to it.
	IdleTimeout time.Duration
	// MaxPending bounds the messages in flight to one server. A message
	// for a full server goes to the next of its policy; when all are full,
	// the client gets an "overloaded" error message at once (see
	// [ErrOverloaded]). Zero means 1024.
	MaxPending int
	// MaxQueued bounds the bytes queued for writing to one connection. The
	// proxy reads nothing more from a client while more than half of it is
	// queued, so that TCP pushes back on a client that sends without
	// reading; a client that lets it fill all the same (its answers keep
	// coming) is closed as a slow consumer. A server link with it full
	// takes no new messages, as one with MaxPending in flight. Zero means
	// 4 MiB, and it is never less than MaxMessageSize plus 4 KiB.
	MaxQueued int
	// WriteTimeout bounds the wait for a peer to take what is written to
	// it: one that takes nothing for this long, such as a client that
	// sends and never reads, is closed; each 64 KiB it takes starts the
	// wait again. Zero means 30 seconds; a negative value, never.
	WriteTimeout time.Duration
	// MaxMemory bounds the bytes that all connections together hold in
	// read buffers and write queues, beyond the first 4 KiB of read buffer
	// and 16 KiB of queue of each. Past it, a client whose message needs
	// more buffer is refused with "overloaded" and closed (clients may take
	// three quarters of it: the rest is kept for servers' answers), a
	// server's answer that needs more is refused alone, a message is
	// refused with "overloaded" rather than queued for a server, and a
	// client whose answer cannot be queued is closed. Zero means 256 MiB.
	MaxMemory int
	// MaxServers bounds the servers registered at once. When it is
	// reached, a new registration takes the place of the oldest one that
	// does not hold its connection (as the homework's servers register);
	// when every one does, it is refused with "overloaded". A connection
	// registers one server id at most. Zero means 10,000.
	MaxServers int
	// MaxServerConns bounds the connections open at once to servers the
	// proxy dials for each message (legacy servers), and a quarter of it
	// the connections to any one of them, so that one server that does not
	// answer cannot take them all; a message that would need one more gets
	// "overloaded". Zero means 1024 (256 to one server); mind the process's
	// limit on open files.
	MaxServerConns int

	// TLSConfig, if set, makes the proxy accept only TLS: clients and
	// servers then connect with a TLSConfig of their own. For mutual TLS,
	// set ClientAuth (tls.VerifyClientCertIfGiven lets clients in without a
	// certificate) and ClientCAs, with RequireServerCert below.
	TLSConfig *tls.Config
	// RequireServerCert refuses a setup message from a connection that has
	// not presented a client certificate verified against TLSConfig's
	// ClientCAs (see [ErrUnauthorized]): only servers holding a certificate
	// the proxy trusts can register.
	RequireServerCert bool
	// Token, if set, is the secret every setup message must carry; a
	// registration without it is refused (see [ErrUnauthorized]). Use it
	// where the network is trusted not to be read, or over TLS.
	Token string
	// Authorize, if set, is asked about every data message before it is
	// forwarded; an error refuses the message with an error message to the
	// client (see [ErrForbidden]), and the connection goes on.
	Authorize func(*AuthRequest) error

	// Balancer chooses which server of a policy gets each message. The
	// zero value is RoundRobin.
	Balancer Balancer
	// PolicyBalancers overrides Balancer for the policies it names.
	PolicyBalancers map[string]Balancer

	// AccessLog, if set, receives one line at Info for every data message
	// answered: its request id, client, policy, server, outcome and
	// latency. A message that comes without a request id gets one, which
	// the server also sees (see [Message.RequestID]), so that one message
	// can be traced end to end. Nil means none; it costs the time of
	// writing a line per message.
	AccessLog *slog.Logger

	// Logger receives registrations, departures and ejections, and each
	// cause of error messages once a minute, at Info or Warn; every
	// message at Debug. Nil means silent.
	Logger *slog.Logger

	table       table
	conns       atomic.Int64  // connections being served
	serverConns atomic.Int64  // connections open to legacy servers
	accepted    atomic.Uint32 // connections accepted, to spread them over totals
	totals      [shards]shard
	errs        errorLog
	startedAt   atomic.Pointer[time.Time]
	serving     atomic.Int32 // calls of Serve under way
	reqids      requestIDs
	memOnce     sync.Once
	mem         *budget
}

// check reports a Proxy field that cannot be served with.
func (p *Proxy) check() error {
	if _, err := p.Balancer.MarshalText(); err != nil {
		return fmt.Errorf("%w: Proxy.Balancer: %w", ErrConfig, err)
	}
	for policy, b := range p.PolicyBalancers {
		if _, err := b.MarshalText(); err != nil {
			return fmt.Errorf("%w: Proxy.PolicyBalancers[%q]: %w", ErrConfig, policy, err)
		}
	}
	return nil
}

// balancer returns the Balancer for policy, without allocating.
func (p *Proxy) balancer(policy []byte) Balancer {
	if len(p.PolicyBalancers) > 0 {
		if b, ok := p.PolicyBalancers[string(policy)]; ok {
			return b
		}
	}
	return p.Balancer
}

// AuthRequest describes a data message for [Proxy.Authorize].
type AuthRequest struct {
	ClientID string   // the message's "srcid"
	Policy   string   // the policy it is for
	Conn     net.Conn // the client's connection, for its address or TLS state
}

func (p *Proxy) maxMessageSize() int { return orDefault(p.MaxMessageSize, defaultMaxMessage) }

func (p *Proxy) firstMessageTimeout() time.Duration {
	if p.FirstMessageTimeout > 0 {
		return p.FirstMessageTimeout
	}
	return 10 * time.Second
}

func (p *Proxy) idleTimeout() time.Duration { return durationOr(p.IdleTimeout, 5*time.Minute) }

func (p *Proxy) maxPending() int { return orDefault(p.MaxPending, 1024) }

// controlReserve is the part of a server link's queue kept for the proxy's
// own small messages (heartbeats, drain), which forwarded messages may not
// take.
const controlReserve = 4 << 10

func (p *Proxy) maxQueued() int {
	return max(orDefault(p.MaxQueued, 4<<20), p.maxMessageSize()+controlReserve)
}

func (p *Proxy) writeTimeout() time.Duration { return durationOr(p.WriteTimeout, 30*time.Second) }

func (p *Proxy) maxServers() int     { return orDefault(p.MaxServers, 10000) }
func (p *Proxy) maxServerConns() int { return orDefault(p.MaxServerConns, 1024) }

// budget returns the memory budget all of p's connections share.
func (p *Proxy) budget() *budget {
	p.memOnce.Do(func() { p.mem = &budget{max: int64(orDefault(p.MaxMemory, defaultMaxMemory))} })
	return p.mem
}

func (p *Proxy) dialTimeout() time.Duration {
	if p.DialTimeout > 0 {
		return p.DialTimeout
	}
	return 5 * time.Second
}

func (p *Proxy) serverTimeout() time.Duration {
	if p.ServerTimeout > 0 {
		return p.ServerTimeout
	}
	return 30 * time.Second
}

// Servers returns the servers registered for policy, in rotation order from
// the first registered.
func (p *Proxy) Servers(policy string) []ServerInfo {
	return p.table.servers(policy)
}

// ListenAndServe listens on the TCP address addr and calls [Proxy.Serve].
func (p *Proxy) ListenAndServe(ctx context.Context, addr string) error {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("revproxy: %w", err)
	}
	return p.Serve(ctx, ln)
}

// Serve accepts servers and clients on ln until ctx is cancelled, then closes
// ln and every connection it accepted or opened, waits for the goroutines it
// started, and returns nil. It returns an error only when ln fails; an error
// on one connection is logged and ends that connection only.
func (p *Proxy) Serve(ctx context.Context, ln net.Listener) error {
	if err := p.check(); err != nil {
		return err
	}
	log := logger(p.Logger)
	if p.TLSConfig != nil {
		ln = tls.NewListener(ln, p.TLSConfig)
	}
	// Serving before saying so: whoever reads the line may ask /healthz.
	start := time.Now()
	p.startedAt.CompareAndSwap(nil, &start)
	p.serving.Add(1)
	defer p.serving.Add(-1)
	log.Info("Running the reverse proxy", "addr", ln.Addr().String(), "tls", p.TLSConfig != nil)
	g, gctx := errgroup.WithContext(ctx)
	serveConns(gctx, g, ln, log, p.serveConn)
	return wait(ctx, g)
}

// serveConn serves one accepted connection. Its first message makes it a
// server's registration, a multiplexed server link, or a client connection.
func (p *Proxy) serveConn(ctx context.Context, c net.Conn) {
	log := logger(p.Logger)
	pc := p.newPconn(c, log)
	defer pc.r.Release()
	if n := p.conns.Add(1); p.MaxConns > 0 && n > int64(p.MaxConns) {
		p.conns.Add(-1)
		pc.refuseConn()
		return
	}
	defer p.conns.Add(-1)
	defer func() {
		pc.awaitOwed(ctx)
		pc.awaitLegacy()
		pc.out.shutdown(shutdownTimeout) // what was queued last, such as an error message
		if pc.refused {
			pc.linger()
		}
		pc.drop()
	}()

	c.SetReadDeadline(time.Now().Add(p.firstMessageTimeout()))
	if err := p.read(pc); err != nil {
		return
	}
	c.SetReadDeadline(time.Time{})
	switch pc.fr.typ {
	case TypeSetup:
		p.serveServer(ctx, pc)
	case TypeData:
		p.serveClient(ctx, pc)
	default:
		pc.refuse("unexpected " + pc.fr.typ.String() + " message")
	}
}

// refuseConn turns away a connection over MaxConns.
func (pc *pconn) refuseConn() {
	pc.log.Warn("Too many connections", "from", pc.conn.RemoteAddr().String(), "max", pc.p.MaxConns)
	pc.send(newError(proxyID, "", codeOverloaded, "too many connections"), 0, false)
	pc.out.shutdown(shutdownTimeout)
	pc.linger()
}

// read reads the next frame of pc. It answers bad input with an error
// message and logs failures; any error means the connection is done.
func (p *Proxy) read(pc *pconn) error {
	err := readFrame(pc.r, &pc.fr)
	if err != nil {
		pc.readFailed(err)
	}
	return err
}

// readFailed answers what read could not take, or logs why the connection
// failed. It is apart from read, whose small frame is what a connection
// waiting for its next message keeps on its stack.
func (pc *pconn) readFailed(err error) {
	log := pc.log
	switch {
	case errors.Is(err, ErrTooLarge):
		// The connection is out of step, and closes; the message's first
		// bytes say whom to tell.
		var tl *wire.TooLargeError
		pc.fr = frame{}
		limit := 0
		if errors.As(err, &tl) {
			f := prefixFields(tl.Prefix)
			pc.fr.f = *f
			pc.fr.seq, _ = decodeSeq(f[wire.KeySeq])
			_, pc.fr.quoted, _ = decodeInt("type", f[wire.KeyType])
			limit = tl.Max
		}
		pc.refuseWith(codeTooLarge, tooLargeText("the message", "proxy's", limit))
	case errors.Is(err, ErrBadMessage):
		pc.fr = frame{}
		pc.refuse(err.Error())
	case errors.Is(err, io.ErrUnexpectedEOF):
		pc.fr = frame{}
		pc.refuse("the connection ended inside a message")
	case errors.Is(err, wire.ErrNoMemory):
		pc.fr = frame{}
		pc.refuseWith(codeOverloaded, "the proxy's memory for messages is used up")
	case !isClosed(err):
		log.Warn("Connection failed", "from", pc.conn.RemoteAddr().String(), "err", err)
	}
}

// serveServer serves a connection that began with a setup message: a
// multiplexed link when the server asked for one, else a registration that
// may hold the connection open and repeat.
func (p *Proxy) serveServer(ctx context.Context, pc *pconn) {
	log := pc.log
	var held *entry // the registration that ends with this connection
	var connErr error
	defer func() {
		if held != nil {
			p.left(log, held, connErr, 0, 0)
		}
	}()
	var alive liveness
	registered := "" // the one server id this connection may register
	for {
		switch {
		case held != nil && pc.fr.typ == TypePing:
			pc.sendControl(&Message{Type: TypePing}, false)
		case held != nil && pc.fr.typ == TypeDrain:
			// Messages go to this server over connections of their own:
			// once it has left the table and the last of them has ended,
			// none is on its way, and the server may close its listener.
			if p.table.setState(held, Draining) {
				log.Info("Server draining", "server", held.id, "policy", held.policy, "addr", pc.conn.RemoteAddr().String())
			}
			held.drain(func() { pc.sendControl(&Message{Type: TypeDrain}, false) })
		case pc.fr.typ == TypeSetup:
			m, err := pc.fr.message()
			if err != nil {
				pc.refuse(err.Error())
				return
			}
			if m.Mux && held == nil {
				p.serveLink(ctx, pc, m)
				return
			}
			if held != nil && !m.Hold {
				pc.refuse("a held registration may only be held")
				return
			}
			if registered != "" && m.ID != registered {
				pc.refuse("a connection registers one server id only")
				return
			}
			r, err := p.register(pc, m, nil)
			if err != nil {
				pc.refuseWith(codeFor(err), err.Error())
				return
			}
			registered = r.id
			if m.Hold {
				held = r
				alive.start(pc.conn, m.Heartbeat)
			}
		default:
			pc.refuse("unexpected " + pc.fr.typ.String() + " message on a server connection")
			return
		}
		alive.extend()
		if idle := p.idleTimeout(); held == nil && idle > 0 {
			// A registration that does not hold its connection has no
			// reason to stay silent on it.
			pc.conn.SetReadDeadline(time.Now().Add(idle))
		}
		if connErr = p.read(pc); connErr != nil {
			return
		}
	}
}

// left takes r out of service as the connection it holds ends, for cause
// (nil or a closed connection for a plain close), and logs it with what it
// owed: failed messages answered with errors, resent ones sent to another
// server. A server that drained leaves; one that was up is ejected.
func (p *Proxy) left(log *slog.Logger, r *entry, cause error, failed, resent int) {
	was, ok := p.table.leave(r)
	if !ok {
		return // replaced by a registration of its id
	}
	if was == Draining {
		log.Info("Server left", "server", r.id, "policy", r.policy, "addr", r.addr)
		return
	}
	reason := "connection closed"
	if cause != nil && !isClosed(cause) {
		reason = cause.Error()
	}
	log.Warn("Server ejected", "server", r.id, "policy", r.policy, "addr", r.addr, "reason", reason,
		"failed", failed, "resent", resent)
}

// register adds the server of a setup message to the switching table; link
// is its multiplexed link, or nil for a server the proxy dials.
func (p *Proxy) register(pc *pconn, m *Message, link *serverLink) (*entry, error) {
	if p.RequireServerCert && !verifiedPeer(pc.conn) {
		return nil, fmt.Errorf("%w: registration of server %s without a trusted certificate", ErrUnauthorized, m.ID)
	}
	if p.Token != "" && subtle.ConstantTimeCompare([]byte(m.Token), []byte(p.Token)) != 1 {
		return nil, fmt.Errorf("%w: registration of server %s without the proxy's token", ErrUnauthorized, m.ID)
	}
	switch {
	case m.ID == "":
		return nil, errors.New("setup message without a server id")
	case m.Policy == "":
		return nil, errors.New("setup message without a policy")
	case link == nil && (m.ListenPort < 1 || m.ListenPort > 65535):
		return nil, fmt.Errorf("setup message with listen port %d", m.ListenPort)
	case m.Weight < 0 || m.Weight > maxWeight:
		return nil, fmt.Errorf("setup message with weight %d, not from 1 to %d", m.Weight, maxWeight)
	case m.HTTPPort < 0 || m.HTTPPort > 65535:
		return nil, fmt.Errorf("setup message with HTTP port %d", m.HTTPPort)
	}
	host, _, err := net.SplitHostPort(pc.conn.RemoteAddr().String())
	if err != nil {
		return nil, err
	}
	r := &entry{
		id:     m.ID,
		policy: m.Policy,
		addr:   net.JoinHostPort(host, strconv.Itoa(m.ListenPort)),
		quoted: pc.fr.quoted,
		link:   link,

		idempotent: m.Idempotent,
		weight:     m.Weight,
	}
	if m.HTTPPort != 0 {
		r.httpAddr = net.JoinHostPort(host, strconv.Itoa(m.HTTPPort))
	}
	r.counts.seen()
	if link != nil {
		r.addr = pc.conn.RemoteAddr().String()
		link.entry = r
	}
	if m.Hold || link != nil {
		r.owner = pc
	}
	if link != nil { // no message may be queued on the link before the ack
		link.mu.Lock()
		defer link.mu.Unlock()
	}
	if err := p.table.add(r, p.maxServers()); err != nil {
		return nil, err
	}
	if r.owner != nil { // a server that holds its connection learns it is registered
		pc.sendControl(&Message{Type: TypeSetup, ID: r.id, Policy: r.policy}, pc.fr.quoted)
	}
	pc.log.Info("Receiving setup message", "server", r.id, "policy", r.policy, "port", m.ListenPort, "addr", r.addr,
		"mux", link != nil, "weight", r.weight)
	return r, nil
}

// verifiedPeer reports whether c is a TLS connection whose peer presented a
// certificate that verified.
func verifiedPeer(c net.Conn) bool {
	tc, ok := c.(*tls.Conn)
	return ok && len(tc.ConnectionState().VerifiedChains) > 0
}
