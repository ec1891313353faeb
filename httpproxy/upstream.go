package httpproxy

import (
	"errors"
	"net/http"
	"strings"
	"time"
)

// timedTransport observes how long each upstream takes to answer with
// its response header: the wait a proxy adds for its clients, without the
// body's transfer. It sits under the cache, so that only what went to an
// upstream is measured.
type timedTransport struct {
	next http.RoundTripper
	hist *histogram
}

func (t timedTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	start := time.Now()
	res, err := t.next.RoundTrip(r)
	if err == nil {
		t.hist.observe(time.Since(start))
	}
	return res, err
}

// errBadSwitch is a 101 response that does not switch to the protocol the
// request asked for.
var errBadSwitch = errors.New("httpproxy: the upstream switched protocols it was not asked to")

// checkSwitch refuses a 101 (Switching Protocols) response unless its
// Upgrade is the one its request asked for. httputil.ReverseProxy answers
// a mismatch with 502 itself, but without closing the response's body:
// the upstream connection, and the request's count on its server, would
// stay for good. Refused here, the body is closed.
func checkSwitch(res *http.Response) error {
	if res.StatusCode != http.StatusSwitchingProtocols {
		return nil
	}
	asked := res.Request.Header.Get("Upgrade")
	if asked == "" || !strings.EqualFold(asked, res.Header.Get("Upgrade")) {
		return errBadSwitch
	}
	return nil
}
