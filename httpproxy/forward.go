package httpproxy

import (
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"strings"
)

// serveForward fetches an absolute-form request (GET http://host/path)
// from its origin, port 80 unless the URL says otherwise, through the
// upstream transport (and the cache, when there is one), streaming both
// bodies. Hop-by-hop headers are dropped both ways and Via is added both
// ways; the client's address is not passed on. A destination in DenyHosts
// answers 403, an origin that cannot be reached 502, one that does not
// answer within ResponseHeaderTimeout 504.
//
// Only http URLs are fetched: a client that sends an https URL in absolute
// form sends it to the proxy in clear text while it believes it secure,
// so that answers 400, and HTTPS goes through CONNECT.
func (p *Proxy) serveForward(w http.ResponseWriter, r *http.Request) {
	if r.URL.Scheme != "http" {
		http.Error(w, "this proxy fetches http URLs only; use CONNECT for https", http.StatusBadRequest)
		return
	}
	host := r.URL.Hostname()
	if host == "" {
		http.Error(w, "the request's URL names no host", http.StatusBadRequest)
		return
	}
	if p.deny.deniesHost(host) {
		p.refuseDestination(w)
		return
	}
	if r.ContentLength != 0 {
		// Let the request's body stream upstream while the response
		// streams back; otherwise net/http reads what is left of the body
		// before it writes the response's header.
		http.NewResponseController(w).EnableFullDuplex()
	}
	p.forwarder.ServeHTTP(w, r)
}

// newForwarder builds the ReverseProxy behind serveForward, once.
//
// ReverseProxy already drops the hop-by-hop headers of RFC 9110 §7.6.1
// both ways (Connection and the headers it names, Keep-Alive,
// Proxy-Connection, Proxy-Authenticate, Proxy-Authorization, TE, Trailer,
// Transfer-Encoding, Upgrade), keeps upgrades working, and flushes at
// once a response of unknown length (a stream) and text/event-stream, so
// FlushInterval stays 0: a response of known length goes out as the
// server's buffer fills. What it lacks is in rewriteForward and
// ModifyResponse.
func (p *Proxy) newForwarder() *httputil.ReverseProxy {
	return &httputil.ReverseProxy{
		Rewrite:   p.rewriteForward,
		Transport: p.upstream,
		ModifyResponse: func(res *http.Response) error {
			addVia(res.Header, res.ProtoMajor, res.ProtoMinor)
			return checkSwitch(res)
		},
		ErrorHandler: p.forwardError,
		ErrorLog:     slog.NewLogLogger(logger(p.Logger).Handler(), slog.LevelDebug),
		BufferPool:   copyBuffers,
	}
}

// forwardedHeaders are the headers ReverseProxy drops from a request when
// Rewrite is set, for a reverse proxy to set afresh.
var forwardedHeaders = [...]string{"Forwarded", "X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto"}

// rewriteForward makes the request sent upstream from the client's, which
// ReverseProxy has copied without its hop-by-hop headers.
func (p *Proxy) rewriteForward(pr *httputil.ProxyRequest) {
	h := pr.Out.Header
	// ReverseProxy sends "TE: trailers" on when the client sent it; TE is
	// hop-by-hop, the client's word to this proxy, not to the origin.
	delete(h, "Te")
	// A forward proxy passes the client's end-to-end headers on as they
	// are, these included, and adds none of them itself: origins are not
	// told who its clients are.
	for _, k := range forwardedHeaders {
		if v := pr.In.Header[k]; v != nil && !namedByConnection(pr.In.Header, k) {
			h[k] = v
		}
	}
	addVia(h, pr.In.ProtoMajor, pr.In.ProtoMinor)
	if ctx := p.deny.checkDestination(pr.Out.Context()); ctx != pr.Out.Context() {
		pr.Out = pr.Out.WithContext(ctx)
	}
}

// namedByConnection reports whether h's Connection header names the
// header name, which makes it hop-by-hop.
func namedByConnection(h http.Header, name string) bool {
	for _, v := range h["Connection"] {
		for token := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(token), name) {
				return true
			}
		}
	}
	return false
}

// addVia appends the proxy to h's Via (RFC 9110 §7.6.3), as one field
// value after those already there, with the protocol version of the
// message it received.
func addVia(h http.Header, major, minor int) {
	via := "1.1 revproxy"
	switch {
	case major == 1 && minor == 0:
		via = "1.0 revproxy"
	case major == 2:
		via = "2 revproxy"
	}
	if prior := h["Via"]; len(prior) > 0 {
		via = strings.Join(prior, ", ") + ", " + via
	}
	h["Via"] = []string{via}
}

// forwardError answers a request the upstream transport failed: 403 for a
// destination whose address DenyHosts denies, 502 for an origin that
// cannot be reached (the dial failed, even by timing out) or that broke
// the exchange, 504 for one that did not answer in time.
func (p *Proxy) forwardError(w http.ResponseWriter, r *http.Request, err error) {
	status := http.StatusBadGateway
	var opErr *net.OpError
	var netErr net.Error
	switch {
	case errors.Is(err, errDeniedAddress):
		p.stats.refused(refusedHost)
		status = http.StatusForbidden
	case errors.As(err, &opErr) && opErr.Op == "dial":
	case errors.As(err, &netErr) && netErr.Timeout():
		status = http.StatusGatewayTimeout
	}
	logger(p.Logger).Debug("httpproxy: forward request failed", "host", r.URL.Host, "status", status, "err", err)
	http.Error(w, http.StatusText(status), status)
}
