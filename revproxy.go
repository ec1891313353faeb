package revproxy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"time"

	"golang.org/x/sync/errgroup"
)

// proxyID is the srcid of error messages the proxy itself sends.
const proxyID = "proxy"

// Proxy is the reverse proxy: servers register with it, clients send it data
// messages, and it forwards each to a server of the message's policy, round
// robin, and relays the answer. The zero Proxy is ready to use; its fields
// must not change once it serves.
type Proxy struct {
	// DialTimeout bounds connecting to a server. Zero means 5 seconds.
	DialTimeout time.Duration
	// ServerTimeout bounds a server's answer to a forwarded message, from
	// the moment it is written. Zero means 30 seconds.
	ServerTimeout time.Duration
	// Logger receives registrations at Info, every message at Debug and
	// connection failures at Warn. Nil means silent.
	Logger *slog.Logger

	table table
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
	log := logger(p.Logger)
	log.Info("Running the reverse proxy", "addr", ln.Addr().String())
	g, gctx := errgroup.WithContext(ctx)
	serveConns(gctx, g, ln, log, p.serveConn)
	return wait(ctx, g)
}

// serveConn reads messages from one connection until it closes. The first
// message makes it a server's registration or a client's link; either may
// carry further messages of its kind.
func (p *Proxy) serveConn(ctx context.Context, c net.Conn) {
	l := newMirrorLink(c, false)
	log := logger(p.Logger)
	var held *route // the registration that ends with this connection
	defer func() {
		if held != nil && p.table.remove(held) {
			log.Info("Server left", "id", held.id, "policy", held.policy)
		}
	}()

	var m Message
	for {
		if err := l.read(&m); err != nil {
			if errors.Is(err, ErrBadMessage) {
				log.Warn("Bad message", "from", c.RemoteAddr().String(), "err", err)
				l.write(errorMessage(proxyID, &m, codeBadMessage, err.Error()))
			} else if !isClosed(err) {
				log.Warn("Connection failed", "from", c.RemoteAddr().String(), "err", err)
			}
			return
		}
		switch m.Type {
		case TypeSetup:
			r, err := p.register(c, &m, l.quoted)
			if err != nil {
				log.Warn("Refused registration", "from", c.RemoteAddr().String(), "err", err)
				l.write(errorMessage(proxyID, &m, codeBadMessage, err.Error()))
				return
			}
			if m.Hold {
				held = r
			}
		case TypeData:
			if m.Policy == "" {
				log.Warn("Bad message", "from", c.RemoteAddr().String(), "err", "data message without a policy")
				l.write(errorMessage(proxyID, &m, codeBadMessage, "data message without a policy"))
				return
			}
			if err := l.write(p.forward(ctx, &m, log)); err != nil {
				log.Warn("Could not answer client", "client", m.SrcID, "err", err)
				return
			}
		default:
			text := "unexpected " + m.Type.String() + " message"
			log.Warn("Bad message", "from", c.RemoteAddr().String(), "err", text)
			l.write(errorMessage(proxyID, &m, codeBadMessage, text))
			return
		}
	}
}

// register adds the server of a setup message to the switching table.
func (p *Proxy) register(c net.Conn, m *Message, quoted bool) (*route, error) {
	switch {
	case m.ID == "":
		return nil, errors.New("setup message without a server id")
	case m.Policy == "":
		return nil, errors.New("setup message without a policy")
	case m.ListenPort < 1 || m.ListenPort > 65535:
		return nil, fmt.Errorf("setup message with listen port %d", m.ListenPort)
	}
	host, _, err := net.SplitHostPort(c.RemoteAddr().String())
	if err != nil {
		return nil, err
	}
	r := &route{
		id:     m.ID,
		policy: m.Policy,
		addr:   net.JoinHostPort(host, strconv.Itoa(m.ListenPort)),
		quoted: quoted,
	}
	p.table.add(r)
	logger(p.Logger).Info("Receiving setup message", "server", r.id, "policy", r.policy, "addr", r.addr)
	return r, nil
}

// forward sends a data message to a server of its policy and returns the
// answer for the client: the server's reply, or an error message. A server
// that cannot be reached is skipped for the next one of the policy; once the
// message is written it is not sent again, since it may have been handled.
func (p *Proxy) forward(ctx context.Context, m *Message, log *slog.Logger) *Message {
	debug := log.Enabled(ctx, slog.LevelDebug)
	if debug {
		log.Debug("Received a data message", "client", m.SrcID, "policy", m.Policy, "payload", m.Payload)
	}
	r, n := p.table.next(m.Policy)
	if r == nil {
		log.Debug("No server for policy", "client", m.SrcID, "policy", m.Policy)
		return errorMessage(proxyID, m, codeNoServer, "no server for policy "+m.Policy)
	}
	for tried := 1; ; tried++ {
		if debug {
			log.Debug("Forwarding a data message", "server", r.id, "payload", m.Payload)
		}
		reply, err := p.exchange(ctx, r, m)
		if err == nil {
			if debug {
				log.Debug("Received a reply", "server", r.id, "client", reply.DestID, "payload", reply.Payload)
			}
			return reply
		}
		log.Warn("Server failed", "server", r.id, "policy", r.policy, "err", err)
		if !errors.Is(err, errDial) || tried >= n {
			return errorMessage(proxyID, m, codeUnavailable, err.Error())
		}
		if r, _ = p.table.next(m.Policy); r == nil {
			return errorMessage(proxyID, m, codeNoServer, "no server for policy "+m.Policy)
		}
	}
}

// errDial marks a failure to connect: the message was not sent.
var errDial = errors.New("cannot connect")

// exchange does one message on a new connection to r, as the homework's
// servers expect: connect, send, read one answer, close.
func (p *Proxy) exchange(ctx context.Context, r *route, m *Message) (*Message, error) {
	d := net.Dialer{Timeout: p.dialTimeout()}
	c, err := d.DialContext(ctx, "tcp", r.addr)
	if err != nil {
		return nil, fmt.Errorf("server %s at %s: %w: %v", r.id, r.addr, errDial, err)
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()

	l := newLink(c, r.quoted)
	if err := l.write(m); err != nil {
		return nil, fmt.Errorf("server %s: %w", r.id, err)
	}
	c.SetReadDeadline(time.Now().Add(p.serverTimeout()))
	reply := new(Message)
	if err := l.read(reply); err != nil {
		return nil, fmt.Errorf("server %s sent no answer: %w", r.id, err)
	}
	if reply.Type != TypeReply && reply.Type != TypeError {
		return nil, fmt.Errorf("server %s answered with a %s message", r.id, reply.Type)
	}
	return reply, nil
}
