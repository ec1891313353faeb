package httpproxy

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"unicode/utf8"

	"github.com/seed-c202d8a5/revproxy"
)

// gatewayPrefix begins the paths the gateway serves: POST /msg/{policy}.
const gatewayPrefix = "/msg/"

// defaultMaxGatewayBody bounds a gateway request's body when
// MaxGatewayBody is zero: the protocol's messages are meant to be small,
// and the body is held whole to be sent as one.
const defaultMaxGatewayBody = 1 << 20

// serveGateway sends r's body as a data message for the policy its path
// names, through p.Gateway, and answers the reply's payload as
// text/plain, with the server that answered in X-Revproxy-Server. The
// error messages the protocol answers with become statuses: no server
// 503, overloaded 429 (with Retry-After), timeout 504, a bad or too large
// message 400 or 413, anything else a server or the proxy failed at 502.
func (p *Proxy) serveGateway(w http.ResponseWriter, r *http.Request) {
	policy := strings.TrimPrefix(r.URL.Path, gatewayPrefix)
	if policy == "" || strings.Contains(policy, "/") {
		http.Error(w, "the gateway serves POST /msg/{policy}", http.StatusNotFound)
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "the gateway takes POST", http.StatusMethodNotAllowed)
		return
	}
	limit := int64(orDefault(p.MaxGatewayBody, defaultMaxGatewayBody))
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &tooLarge):
		http.Error(w, "the body is larger than the gateway takes", http.StatusRequestEntityTooLarge)
		return
	case err != nil:
		http.Error(w, "cannot read the body: "+err.Error(), http.StatusBadRequest)
		return
	case !utf8.Valid(body):
		// A payload is a JSON string: bytes that are not UTF-8 would
		// arrive changed, and the server's answer would be to others.
		http.Error(w, "the body is not UTF-8 text", http.StatusBadRequest)
		return
	}
	reply, err := p.Gateway.Send(r.Context(), policy, string(body))
	if err != nil {
		code, text := gatewayStatus(err)
		if code == http.StatusTooManyRequests {
			w.Header().Set("Retry-After", "1")
		}
		logger(p.Logger).Debug("Gateway message failed", "policy", policy, "status", code, "err", err)
		http.Error(w, text, code)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("X-Revproxy-Server", reply.SrcID)
	io.WriteString(w, reply.Payload)
}

// gatewayStatus maps the error of a Send to an HTTP status and a text.
func gatewayStatus(err error) (int, string) {
	switch {
	case errors.Is(err, revproxy.ErrNoServer):
		return http.StatusServiceUnavailable, err.Error()
	case errors.Is(err, revproxy.ErrOverloaded):
		return http.StatusTooManyRequests, err.Error()
	case errors.Is(err, revproxy.ErrTimeout), errors.Is(err, context.DeadlineExceeded):
		return http.StatusGatewayTimeout, err.Error()
	case errors.Is(err, revproxy.ErrTooLarge):
		return http.StatusRequestEntityTooLarge, err.Error()
	case errors.Is(err, revproxy.ErrBadMessage):
		return http.StatusBadRequest, err.Error()
	case errors.Is(err, context.Canceled):
		return 499, err.Error() // the client went away; nobody reads this
	}
	return http.StatusBadGateway, err.Error()
}
