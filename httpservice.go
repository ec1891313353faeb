package revproxy

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
)

// HTTPTarget is the server [Proxy.PickHTTP] chose for one HTTP request:
// where its HTTP service listens. The request counts as in flight on the
// server until Done.
type HTTPTarget struct {
	ID     string // the server's id
	Policy string // the policy it was chosen for
	Addr   string // host:port of its HTTP service

	e    *entry
	done *atomic.Bool
}

// httpCounts are a server's HTTP requests, counted as they end.
type httpCounts struct {
	answered atomic.Uint64 // requests its HTTP service answered
	failed   atomic.Uint64 // requests it could not be reached for, or that failed under way
}

// PickHTTP chooses a server of policy for one HTTP request, with the
// policy's [Balancer], among the servers that are up, announced an HTTP
// service ([Server.HTTPPort]) and are not in tried (those that failed this
// request already). Draining and ejected servers are never chosen. The
// request counts as in flight on the server, for LeastInFlight,
// PowerOfTwo and [Proxy.Stats], until [HTTPTarget.Done]. It returns an
// error matching [ErrNoServer] when none is left.
func (p *Proxy) PickHTTP(policy string, tried []HTTPTarget) (HTTPTarget, error) {
	e := p.table.pickHTTP(policy, tried, p.balancer([]byte(policy)))
	if e == nil {
		return HTTPTarget{}, fmt.Errorf("%w with an HTTP service for policy %s", ErrNoServer, policy)
	}
	e.pending.Add(1)
	return HTTPTarget{ID: e.id, Policy: e.policy, Addr: e.httpAddr, e: e, done: new(atomic.Bool)}, nil
}

// Done ends the request on the server: err is nil when the server
// answered, whatever the HTTP status; the error it failed with when it
// could not be reached or failed under way; or the client's context's
// error (context.Canceled, context.DeadlineExceeded) when the client gave
// up, which is no fault of the server's and counts as neither. It counts
// the outcome in the server's [ServerStats]; calls after the first do
// nothing.
func (t HTTPTarget) Done(err error) {
	if t.e == nil || t.done.Swap(true) {
		return
	}
	t.e.pending.Add(-1)
	switch {
	case err == nil:
		t.e.http.answered.Add(1)
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
	default:
		t.e.http.failed.Add(1)
	}
}

// pickHTTP is pick for an HTTP request: the servers without an HTTP
// service, and those in tried, are passed over.
func (t *table) pickHTTP(policy string, tried []HTTPTarget, b Balancer) *entry {
	t.mu.Lock()
	defer t.mu.Unlock()
	rg := t.policies[policy]
	if rg == nil {
		return nil
	}
	// Passed over: those tried, and those without an HTTP service. A
	// policy's servers commonly all have one or none, and a request is
	// commonly tried once: then there is nothing to allocate.
	var skip []*entry
	for _, e := range rg.entries {
		if e.httpAddr == "" {
			skip = make([]*entry, 0, len(tried)+len(rg.entries))
			for _, e := range rg.entries {
				if e.httpAddr == "" {
					skip = append(skip, e)
				}
			}
			break
		}
	}
	for _, x := range tried {
		skip = append(skip, x.e)
	}
	t.seedRand(b)
	return rg.choose(b, skip, t.rand)
}
