package httpproxy

import (
	"net/http"
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
