package httpproxy

import (
	"log/slog"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Access says which clients may use a Proxy, and how often. The zero
// Access admits every client without limit, at no cost per request.
//
// A request is checked in this order: its client's address against Deny
// and Allow (403 Forbidden); the client's rate (429 Too Many Requests,
// with Retry-After); then, for forward requests and tunnels only, proxy
// credentials (407 Proxy Authentication Required). The rate comes before
// the credentials so that guessing passwords is rate limited too.
//
// The client is the address the connection comes from (the request's
// RemoteAddr), never X-Forwarded-For or the like, which any client can
// write; an IPv4-mapped IPv6 address counts as its IPv4 address, and an
// IPv6 zone is ignored. A client whose address cannot be read (a Proxy
// mounted behind something that rewrites RemoteAddr to a non-address) is
// refused when Allow or Deny is set, and all such clients share one rate
// bucket.
type Access struct {
	// Allow, when not empty, admits only clients within one of these
	// prefixes. Write IPv4 prefixes as IPv4 (127.0.0.0/8, not
	// ::ffff:127.0.0.0/104): clients' addresses are compared unmapped.
	Allow []netip.Prefix
	// Deny refuses clients within one of these prefixes, even when Allow
	// admits them: deny wins.
	Deny []netip.Prefix

	// Users, when not empty, requires forward requests and tunnels to
	// carry the credentials of one of these users, by name to password,
	// in a Proxy-Authorization: Basic header; without them the proxy
	// answers 407 with a Proxy-Authenticate challenge. Requests for
	// Routes and the gateway are not asking a proxy and need none.
	//
	// A map rather than a callback so that the proxy, not each caller,
	// gets the comparison right: a password is compared as a SHA-256
	// digest with crypto/subtle, in time that depends neither on where
	// it differs nor on its length, and an unknown user costs the same
	// hashing as a known one. Credentials come with every request, so a
	// deliberately slow password hash per request would not do anyway.
	// User names are not treated as secret. A name and password longer
	// than 1 KiB together are refused.
	Users map[string]string
	// Realm names the protection space in the challenge (default
	// "revproxy"); clients show it when they ask for credentials.
	Realm string

	// Rate is how many requests per second each client IP may make on
	// average, refilling its token bucket; zero, the default, means no
	// limit, as does rate.Inf. A refused request takes no token. An IPv6
	// client's bucket is its /64's, which one host commonly holds whole.
	Rate rate.Limit
	// Burst is how many requests a client may make at once, the size of
	// its bucket (default: Rate rounded up, at least 1).
	Burst int
	// MaxClients bounds how many clients' buckets are kept, the most
	// recently seen, so that memory is bounded whatever addresses
	// connect (default 10,000). A client whose bucket was dropped starts
	// again with a full one.
	MaxClients int
}

// Defaults for Access's zero fields.
const (
	defaultRealm      = "revproxy"
	defaultMaxClients = 10000
)

// limited reports whether a has a rate limit.
func (a *Access) limited() bool { return a.Rate > 0 && a.Rate != rate.Inf }

// admits reports whether client passes the Allow and Deny lists.
func (a *Access) admits(client netip.Addr) bool {
	for _, p := range a.Deny {
		if p.Contains(client) {
			return false
		}
	}
	if len(a.Allow) == 0 {
		return true
	}
	for _, p := range a.Allow {
		if p.Contains(client) {
			return true
		}
	}
	return false
}

// gate is what Access needs at run time, built from it on first use: the
// users' password digests, the challenge, and the clients' buckets.
type gate struct {
	once      sync.Once
	users     map[string]digest
	challenge string // the Proxy-Authenticate value
	buckets   *buckets
	now       func() time.Time // the buckets' clock; nil is time.Now, tests set another
}

// load builds g from a once, and returns it.
func (g *gate) load(a *Access) *gate {
	g.once.Do(func() {
		g.users = digests(a.Users)
		g.challenge = challenge(a.Realm)
		if a.limited() {
			g.buckets = newBuckets(a.Rate, a.Burst, orDefault(a.MaxClients, defaultMaxClients))
		}
		if g.now == nil {
			g.now = time.Now
		}
	})
	return g
}

// admit reports whether r may be served; when not, it has answered it
// (403, 407 or 429) and counted the refusal. proxying is true for forward
// requests and tunnels, which proxy authentication applies to.
func (p *Proxy) admit(w http.ResponseWriter, r *http.Request, proxying bool) bool {
	a := &p.Access
	lists := len(a.Allow) > 0 || len(a.Deny) > 0
	limited := a.limited()
	authenticating := proxying && len(a.Users) > 0
	if !lists && !limited && !authenticating {
		return true
	}
	g := p.gate.load(a)
	client, known := clientAddr(r.RemoteAddr)
	if lists && !(known && a.admits(client)) {
		p.refuse(w, r, refusedClient, http.StatusForbidden)
		return false
	}
	if limited {
		if ok, retryAfter := g.buckets.take(client, g.now()); !ok {
			w.Header().Set("Retry-After", strconv.FormatInt(retryAfter, 10))
			p.refuse(w, r, refusedRate, http.StatusTooManyRequests)
			return false
		}
	}
	if authenticating && !g.authorized(r.Header.Get("Proxy-Authorization")) {
		w.Header().Set("Proxy-Authenticate", g.challenge)
		p.refuse(w, r, refusedAuth, http.StatusProxyAuthRequired)
		return false
	}
	return true
}

// refuse answers r with code, counts the refusal and logs it at Debug.
func (p *Proxy) refuse(w http.ResponseWriter, r *http.Request, why refusal, code int) {
	p.stats.refused(why)
	if l := logger(p.Logger); l.Enabled(r.Context(), slog.LevelDebug) {
		l.LogAttrs(r.Context(), slog.LevelDebug, "request refused",
			slog.String("reason", why.String()),
			slog.Int("status", code),
			slog.String("client", r.RemoteAddr),
			slog.String("method", r.Method),
			slog.String("target", r.RequestURI))
	}
	http.Error(w, http.StatusText(code), code)
}

// clientAddr is the address of the client at remote, a request's
// RemoteAddr: unmapped, without zone. It reports false when remote is not
// an address, with or without a port.
func clientAddr(remote string) (netip.Addr, bool) {
	var addr netip.Addr
	if ap, err := netip.ParseAddrPort(remote); err == nil {
		addr = ap.Addr()
	} else if a, err := netip.ParseAddr(remote); err == nil {
		addr = a
	} else {
		return netip.Addr{}, false
	}
	return addr.Unmap().WithZone(""), true
}
