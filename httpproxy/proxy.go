package httpproxy

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/seed-c202d8a5/revproxy"
)

// Proxy is the HTTP front door; see the package documentation. The zero
// Proxy serves nothing but 404s: set Forward, Routes or Gateway. Set its
// fields before its first request and do not change them after.
type Proxy struct {
	// Forward serves absolute-form requests and CONNECT: a forward proxy.
	// Off, they are refused with 403, so that a reverse proxy is not an
	// open proxy by accident.
	Forward bool
	// ConnectPorts are the ports a CONNECT tunnel may reach; nil means
	// 443 only.
	ConnectPorts []int
	// DenyHosts are destinations the forward proxy refuses with 403: a
	// host name, a domain and its subdomains as ".example.com", an IP
	// address or a CIDR prefix. Addresses and prefixes are also checked
	// against the address a name resolves to, when it is dialed.
	DenyHosts []string

	// Table is the revproxy.Proxy whose servers serve Routes: each server
	// that announced an HTTP service when it registered (Server.HTTPPort)
	// takes requests for its policy, chosen by the policy's balancer.
	Table *revproxy.Proxy
	// Routes map requests to policies of Table; the first that matches a
	// request serves it.
	Routes []Route

	// Gateway, when set, serves POST /msg/{policy}: the request's body is
	// sent through it as a data message for the policy, and the reply's
	// payload is the answer.
	Gateway *revproxy.Client
	// MaxGatewayBody bounds a gateway request's body, which is sent as one
	// message (default 1 MiB; larger ones get 413).
	MaxGatewayBody int

	// Cache, when set, is shared by the forward and reverse paths for GET
	// and HEAD; see Cache.
	Cache *Cache

	// Access says which clients may use the proxy, and how often.
	Access Access

	// DialTimeout bounds connecting to an upstream, for requests and
	// tunnels (default 10 s).
	DialTimeout time.Duration
	// ResponseHeaderTimeout bounds the wait for an upstream's response
	// header once the request is written (default 30 s).
	ResponseHeaderTimeout time.Duration
	// IdleTimeout closes a client's keep-alive connection, a pooled
	// upstream connection and a tunnel after this long without traffic
	// (default 90 s). An upgraded connection (a WebSocket, through the
	// forward or reverse path) has no idle timeout: it lasts until either
	// end closes it or Serve stops.
	IdleTimeout time.Duration
	// ReadHeaderTimeout bounds reading a request's header (default 10 s).
	ReadHeaderTimeout time.Duration
	// MaxHeaderBytes bounds a request's header, and an upstream response's
	// (default 64 KiB).
	MaxHeaderBytes int
	// MaxConns bounds the client connections Serve holds open at once;
	// those beyond wait to be accepted (default 10,000).
	MaxConns int
	// MaxIdleConnsPerHost is how many idle keep-alive connections the
	// proxy keeps to each upstream (default 256). net/http's default of 2
	// makes most requests under concurrency open a connection.
	MaxIdleConnsPerHost int

	// Logger receives the proxy's log; nil discards it.
	Logger *slog.Logger

	initOnce  sync.Once
	transport *http.Transport
	upstream  http.RoundTripper // transport, timed, behind the cache when there is one
	forwarder *httputil.ReverseProxy
	reverse   *httputil.ReverseProxy
	deny      denyList
	stats     counters
	gate      gate // Access's run-time state, built on first use
}

// Route maps requests to a policy of the Proxy's Table. Host, when set,
// must equal the request's host (without its port); Prefix, when set, must
// begin the request's path, and is kept in the path sent on.
type Route struct {
	Host   string
	Prefix string
	Policy string
}

// Defaults for the Proxy's zero fields.
const (
	defaultDialTimeout           = 10 * time.Second
	defaultResponseHeaderTimeout = 30 * time.Second
	defaultIdleTimeout           = 90 * time.Second
	defaultReadHeaderTimeout     = 10 * time.Second
	defaultMaxHeaderBytes        = 64 << 10
	defaultMaxConns              = 10000
	defaultMaxIdleConnsPerHost   = 256
)

func orDefault[T int | time.Duration](v, def T) T {
	if v > 0 {
		return v
	}
	return def
}

func (p *Proxy) dialTimeout() time.Duration { return orDefault(p.DialTimeout, defaultDialTimeout) }
func (p *Proxy) idleTimeout() time.Duration { return orDefault(p.IdleTimeout, defaultIdleTimeout) }

// init builds what the fields describe, once.
func (p *Proxy) init() {
	p.initOnce.Do(func() {
		p.stats.upstream.init()
		p.deny = parseDenyHosts(p.DenyHosts, logger(p.Logger))
		d := &net.Dialer{Timeout: p.dialTimeout(), KeepAlive: 30 * time.Second, ControlContext: p.deny.controlMarked()}
		p.transport = &http.Transport{
			Proxy:                  nil, // never chain to the environment's proxy
			DialContext:            d.DialContext,
			MaxIdleConns:           0,
			MaxIdleConnsPerHost:    orDefault(p.MaxIdleConnsPerHost, defaultMaxIdleConnsPerHost),
			IdleConnTimeout:        p.idleTimeout(),
			ResponseHeaderTimeout:  orDefault(p.ResponseHeaderTimeout, defaultResponseHeaderTimeout),
			MaxResponseHeaderBytes: int64(orDefault(p.MaxHeaderBytes, defaultMaxHeaderBytes)),
			ExpectContinueTimeout:  time.Second,
			ForceAttemptHTTP2:      false,
			DisableCompression:     true, // pass Accept-Encoding on as the client sent it, and the body as the origin sent it
		}
		p.upstream = timedTransport{next: p.transport, hist: &p.stats.upstream}
		if p.Cache != nil {
			p.upstream = p.Cache.wrap(p.upstream, &p.stats, forwardKey)
		}
		p.forwarder = p.newForwarder()
		p.reverse = p.newReverse()
	})
}

// ServeHTTP serves r as what it asks for: a tunnel, a forward request, a
// gateway message, or a request for a Route.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p.init()
	kind := p.kindOf(r)
	p.stats.request(kind)
	rec := &statusRecorder{ResponseWriter: w}
	defer func() { p.stats.status(kind, rec.status()) }()
	if !p.admit(rec, r, kind == kindForward || kind == kindConnect) {
		return
	}
	switch kind {
	case kindConnect:
		p.serveConnect(rec, r)
	case kindForward:
		p.serveForward(rec, r)
	case kindGateway:
		p.serveGateway(rec, r)
	case kindReverse:
		p.serveReverse(rec, r)
	case kindRefused:
		p.stats.refused(refusedNotForward)
		http.Error(rec, "this proxy does not forward requests", http.StatusForbidden)
	default:
		http.NotFound(rec, r)
	}
}

// kind is what a request asks of the proxy.
type kind int

const (
	kindNone    kind = iota // nothing here: 404
	kindRefused             // a forward request or a tunnel, not served here: 403
	kindConnect
	kindForward
	kindGateway
	kindReverse
	numKinds
)

var kindNames = [numKinds]string{"none", "refused", "connect", "forward", "gateway", "reverse"}

func (k kind) String() string { return kindNames[k] }

// kindOf says what r asks of the proxy.
func (p *Proxy) kindOf(r *http.Request) kind {
	proxying := r.Method == http.MethodConnect || r.URL.IsAbs()
	switch {
	case proxying && !p.Forward:
		return kindRefused
	case r.Method == http.MethodConnect:
		return kindConnect
	case r.URL.IsAbs():
		return kindForward
	case p.Gateway != nil && strings.HasPrefix(r.URL.Path, gatewayPrefix):
		return kindGateway
	case p.route(r) != nil:
		return kindReverse
	}
	return kindNone
}

// route returns the first Route that matches r, or nil.
func (p *Proxy) route(r *http.Request) *Route {
	host := r.Host
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	for i := range p.Routes {
		rt := &p.Routes[i]
		if (rt.Host == "" || strings.EqualFold(rt.Host, host)) && strings.HasPrefix(r.URL.Path, rt.Prefix) {
			return rt
		}
	}
	return nil
}

// ListenAndServe listens on addr and serves until ctx is done; see Serve.
func (p *Proxy) ListenAndServe(ctx context.Context, addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	return p.Serve(ctx, ln)
}

// Serve serves HTTP on ln until ctx is done, with the Proxy's header and
// idle timeouts, header size and connection bounds. Once ctx is done it
// stops accepting and lets requests under way finish, for up to the
// IdleTimeout; then it ends tunnels and upgraded connections, closes what
// is left, and returns nil. It returns an error only when ln fails.
func (p *Proxy) Serve(ctx context.Context, ln net.Listener) error {
	p.init()
	// Requests are not cancelled by ctx, which would cut off those under
	// way, but by base, once they have had their time.
	base, stop := context.WithCancel(context.WithoutCancel(ctx))
	defer stop()
	handlers := newHandlerGroup() // Shutdown does not wait for hijacked connections' handlers
	srv := &http.Server{
		Handler:           handlers.wrap(p),
		ReadHeaderTimeout: orDefault(p.ReadHeaderTimeout, defaultReadHeaderTimeout),
		IdleTimeout:       p.idleTimeout(),
		MaxHeaderBytes:    orDefault(p.MaxHeaderBytes, defaultMaxHeaderBytes),
		ErrorLog:          slog.NewLogLogger(logger(p.Logger).Handler(), slog.LevelDebug),
		BaseContext:       func(net.Listener) context.Context { return base },
	}
	ln = limitListener(ln, orDefault(p.MaxConns, defaultMaxConns))
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	var err error
	select {
	case err = <-errc: // the listener failed
		srv.Close()
	case <-ctx.Done():
		grace, cancel := context.WithTimeout(context.Background(), p.idleTimeout())
		if srv.Shutdown(grace) != nil { // Shutdown does not wait for hijacked connections
			srv.Close()
		}
		cancel()
		err = <-errc
	}
	stop()              // tunnels and upgraded connections end with base
	handlers.stopWait() // and their handlers with them
	p.transport.CloseIdleConnections()
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// logger returns l, or a logger that discards everything.
func logger(l *slog.Logger) *slog.Logger {
	if l != nil {
		return l
	}
	return slog.New(slog.DiscardHandler)
}

// handlerGroup counts the calls of a handler under way, so that Serve can
// wait for them, without a lock per request; once stopWait has begun, a
// call that comes late (on a connection read as the server closed) is
// answered 503.
type handlerGroup struct {
	calls   atomic.Int64
	stopped atomic.Bool
	idle    chan struct{} // closed once stopped with no call under way
	once    sync.Once
}

func newHandlerGroup() *handlerGroup { return &handlerGroup{idle: make(chan struct{})} }

func (g *handlerGroup) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		g.calls.Add(1)
		defer g.leave()
		if g.stopped.Load() {
			http.Error(w, "the proxy is stopping", http.StatusServiceUnavailable)
			return
		}
		h.ServeHTTP(w, r)
	})
}

func (g *handlerGroup) leave() {
	if g.calls.Add(-1) == 0 && g.stopped.Load() {
		g.once.Do(func() { close(g.idle) })
	}
}

// stopWait lets no more calls in and waits for those under way.
func (g *handlerGroup) stopWait() {
	g.stopped.Store(true)
	if g.calls.Load() == 0 {
		g.once.Do(func() { close(g.idle) })
	}
	<-g.idle
}
