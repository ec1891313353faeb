package httpproxy

import (
	"net/http"
	"sync/atomic"
)

// refusal is why the proxy refused a request itself.
type refusal int

const (
	refusedClient     refusal = iota // the client's address is not allowed: 403
	refusedAuth                      // no or wrong proxy credentials: 407
	refusedRate                      // over the client's rate: 429
	refusedHost                      // a destination in DenyHosts: 403
	refusedPort                      // a CONNECT port not in ConnectPorts: 403
	refusedNotForward                // a forward request or tunnel while Forward is off: 403
	numRefusals
)

var refusalNames = [numRefusals]string{"client", "auth", "rate", "host", "port", "not_forward"}

func (r refusal) String() string { return refusalNames[r] }

// cacheResult is what the cache did for one request.
type cacheResult int

const (
	cacheHit         cacheResult = iota // served from the cache
	cacheMiss                           // fetched, stored if it may be
	cacheRevalidated                    // a stale entry the origin said is still good (304)
	cacheBypass                         // not cacheable: another method, no-store, a Range request
	numCacheResults
)

var cacheResultNames = [numCacheResults]string{"hit", "miss", "revalidated", "bypass"}

func (c cacheResult) String() string { return cacheResultNames[c] }

// counters are the front door's counts, atomics only: a request costs no
// lock to count.
type counters struct {
	requests    [numKinds]atomic.Uint64
	statuses    [numKinds][6]atomic.Uint64 // by status class: 0 (none), 1xx … 5xx
	refusals    [numRefusals]atomic.Uint64
	cache       [numCacheResults]atomic.Uint64
	tunnelsOpen atomic.Int64
	tunnels     atomic.Uint64
	upstream    histogram // time to an upstream's response header
}

func (c *counters) request(k kind)       { c.requests[k].Add(1) }
func (c *counters) refused(r refusal)    { c.refusals[r].Add(1) }
func (c *counters) cached(r cacheResult) { c.cache[r].Add(1) }

// status counts a response of status code for a request of kind k; 0 is a
// request that got no response (a client gone, a tunnel).
func (c *counters) status(k kind, code int) {
	class := code / 100
	if class < 1 || class > 5 {
		class = 0
	}
	c.statuses[k][class].Add(1)
}

// tunnel counts a tunnel opening; the function it returns counts it closed.
func (c *counters) tunnel() (closed func()) {
	c.tunnels.Add(1)
	c.tunnelsOpen.Add(1)
	return func() { c.tunnelsOpen.Add(-1) }
}

// statusRecorder remembers the status a handler wrote. Unwrap lets
// http.ResponseController reach the connection, for flushing and hijacking.
type statusRecorder struct {
	http.ResponseWriter
	code int
}

func (s *statusRecorder) WriteHeader(code int) {
	if s.code == 0 && code >= 200 {
		s.code = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	if s.code == 0 {
		s.code = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// status is what was written; 0 when nothing was.
func (s *statusRecorder) status() int { return s.code }
