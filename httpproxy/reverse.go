package httpproxy

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"sync/atomic"

	"github.com/seed-c202d8a5/revproxy"
)

// policyKey is the request context's key for the policy a reverse-proxied
// request goes to, from serveReverse to the picker.
type policyKey struct{}

// serveReverse sends r to a server of its Route's policy: one of the
// Table's servers that announced an HTTP service, chosen by the policy's
// balancer, over pooled keep-alive connections. Upgrade requests
// (WebSocket) pass through. A request that fails on one server goes to
// another when that is safe: its method is idempotent and its body, if
// any, was not read, or the server could not be reached at all.
func (p *Proxy) serveReverse(w http.ResponseWriter, r *http.Request) {
	rt := p.route(r)
	if rt == nil || p.Table == nil {
		http.NotFound(w, r)
		return
	}
	r = r.WithContext(context.WithValue(r.Context(), policyKey{}, rt.Policy))
	p.reverse.ServeHTTP(w, r)
}

// newReverse returns the reverse path's ReverseProxy, its transport behind
// the cache when there is one.
func (p *Proxy) newReverse() *httputil.ReverseProxy {
	var next http.RoundTripper = &picker{p: p, next: timedTransport{next: p.transport, hist: &p.stats.upstream}}
	if p.Cache != nil {
		next = p.Cache.wrap(next, &p.stats, reverseKey)
	}
	return &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetXForwarded()
			pr.Out.URL.Scheme = "http"
			pr.Out.URL.Host = "" // the picker's to fill
			pr.Out.Host = pr.In.Host
			addVia(pr.Out.Header, pr.In.ProtoMajor, pr.In.ProtoMinor)
		},
		Transport: next,
		ModifyResponse: func(resp *http.Response) error {
			addVia(resp.Header, resp.ProtoMajor, resp.ProtoMinor)
			return checkSwitch(resp)
		},
		ErrorHandler: p.reverseError,
		ErrorLog:     slog.NewLogLogger(logger(p.Logger).Handler(), slog.LevelDebug),
		BufferPool:   copyBuffers,
	}
}

// reverseError answers a request the reverse path could not serve: 503
// when the policy has no server with an HTTP service, 504 when the
// server's answer took too long, else 502.
func (p *Proxy) reverseError(w http.ResponseWriter, r *http.Request, err error) {
	code := http.StatusBadGateway
	var ne net.Error
	switch {
	case errors.Is(err, revproxy.ErrNoServer):
		code = http.StatusServiceUnavailable
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		code = http.StatusGatewayTimeout
	case errors.Is(err, context.Canceled):
		return // the client went away
	}
	// The error names servers' addresses: for the log, not the client.
	logger(p.Logger).Debug("httpproxy: reverse request failed", "host", r.Host, "path", r.URL.Path, "status", code, "err", err)
	http.Error(w, http.StatusText(code), code)
}

// picker is the reverse path's RoundTripper: it sends each request to a
// server that PickHTTP chooses, and to another when the first fails and
// sending it again is safe.
type picker struct {
	p    *Proxy
	next http.RoundTripper // the transport, timed
}

func (pk *picker) RoundTrip(req *http.Request) (*http.Response, error) {
	policy, _ := req.Context().Value(policyKey{}).(string)
	body := &trackedBody{rc: req.Body}
	if req.Body != nil && req.Body != http.NoBody {
		req.Body = body // the server closes the original when the handler returns
	}
	var tried []revproxy.HTTPTarget
	var lastErr error
	for {
		t, err := pk.p.Table.PickHTTP(policy, tried)
		if err != nil {
			if lastErr != nil { // every server failed it: say why the last did
				return nil, lastErr
			}
			return nil, err
		}
		out := req
		if len(tried) > 0 {
			out = req.Clone(req.Context())
		}
		out.URL.Host = t.Addr
		resp, err := pk.next.RoundTrip(out)
		if err == nil {
			resp.Body = doneBody(resp.Body, t)
			return resp, nil
		}
		if req.Context().Err() != nil { // the client went away: no fault of the server's
			t.Done(req.Context().Err())
			return nil, err
		}
		t.Done(err)
		tried, lastErr = append(tried, t), err
		if len(tried) == maxAttempts || !sendAgain(req, body, err) {
			return nil, err
		}
		logger(pk.p.Logger).Debug("Sending a request to another server", "policy", policy, "failed", t.ID, "err", err)
	}
}

// maxAttempts bounds the servers one request is sent to.
const maxAttempts = 3

// sendAgain reports whether req, which failed with err, may go to another
// server: nothing of it reached the first (it could not be dialled), or
// its method is idempotent, none of its body was read and it did not time
// out.
func sendAgain(req *http.Request, body *trackedBody, err error) bool {
	var op *net.OpError
	var ne net.Error
	switch {
	case body.read.Load():
		return false
	case errors.As(err, &op) && op.Op == "dial":
		return true
	case errors.As(err, &ne) && ne.Timeout():
		// A request its server took too long over would take as long
		// elsewhere, and cost each server it went to.
		return false
	}
	switch req.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace, http.MethodPut, http.MethodDelete:
		return true
	}
	return req.Header.Get("Idempotency-Key") != ""
}

// trackedBody is a request body that notes whether it was read, and that
// the transport's failure does not close: it may go to another server.
// (The transport may read it on a goroutine of its own.)
type trackedBody struct {
	rc   io.ReadCloser
	read atomic.Bool
}

func (b *trackedBody) Read(p []byte) (int, error) {
	b.read.Store(true)
	return b.rc.Read(p)
}

// Close does nothing: the http.Server closes the request's body once the
// handler returns.
func (b *trackedBody) Close() error { return nil }

// doneBody wraps a response's body so that the request is done on its
// server once the body is closed. A switched protocol's body (a
// WebSocket's connection) stays writable.
func doneBody(rc io.ReadCloser, t revproxy.HTTPTarget) io.ReadCloser {
	if rwc, ok := rc.(io.ReadWriteCloser); ok {
		return &doneRWBody{doneReadBody{rc, t}, rwc}
	}
	return &doneReadBody{rc, t}
}

type doneReadBody struct {
	io.ReadCloser
	t revproxy.HTTPTarget
}

func (b *doneReadBody) Close() error {
	err := b.ReadCloser.Close()
	b.t.Done(nil)
	return err
}

type doneRWBody struct {
	doneReadBody
	w io.Writer
}

func (b *doneRWBody) Write(p []byte) (int, error) { return b.w.Write(p) }
