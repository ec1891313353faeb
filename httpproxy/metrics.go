package httpproxy

import (
	"slices"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/seed-c202d8a5/revproxy"
	"github.com/seed-c202d8a5/revproxy/internal/promtext"
)

// AppendMetrics appends the front door's counters to b in the Prometheus
// text format, version 0.0.4, as revproxy.Admin's Metrics field wants:
//
//	admin := &revproxy.Admin{Proxy: table, Metrics: front.AppendMetrics}
//
// Every family starts with revproxy_http_.
func (p *Proxy) AppendMetrics(b []byte) []byte {
	m := promtext.Writer{B: b}
	c := &p.stats
	kind := func(k kind) promtext.Label { return promtext.Label{Name: "kind", Value: k.String()} }

	m.Family("revproxy_http_requests_total", "counter", "HTTP requests, by what they asked: forward, connect, reverse, gateway, refused (a forward request while forwarding is off) or none (nothing here).")
	for k := range numKinds {
		m.Uint("revproxy_http_requests_total", c.requests[k].Load(), kind(k))
	}
	m.Family("revproxy_http_responses_total", "counter", "HTTP responses, by kind of request and status class; class none is a request that got no response.")
	for k := range numKinds {
		for class := range c.statuses[k] {
			m.Uint("revproxy_http_responses_total", c.statuses[k][class].Load(), kind(k), promtext.Label{Name: "class", Value: statusClasses[class]})
		}
	}
	m.Family("revproxy_http_refused_total", "counter", "Requests the front door refused itself, by reason.")
	for r := range numRefusals {
		m.Uint("revproxy_http_refused_total", c.refusals[r].Load(), promtext.Label{Name: "reason", Value: r.String()})
	}
	m.Family("revproxy_http_cache_total", "counter", "GET and HEAD requests by what the cache did: hit, miss, revalidated or bypass.")
	for r := range numCacheResults {
		m.Uint("revproxy_http_cache_total", c.cache[r].Load(), promtext.Label{Name: "result", Value: r.String()})
	}
	if p.Cache != nil {
		entries, size := p.Cache.usage()
		m.Family("revproxy_http_cache_entries", "gauge", "Responses held by the cache.")
		m.Int("revproxy_http_cache_entries", int64(entries))
		m.Family("revproxy_http_cache_bytes", "gauge", "Bytes held by the cache.")
		m.Int("revproxy_http_cache_bytes", size)
	}
	m.Family("revproxy_http_tunnels", "gauge", "CONNECT tunnels open now.")
	m.Int("revproxy_http_tunnels", c.tunnelsOpen.Load())
	m.Family("revproxy_http_tunnels_total", "counter", "CONNECT tunnels opened.")
	m.Uint("revproxy_http_tunnels_total", c.tunnels.Load())
	m.Family("revproxy_http_upstream_latency_seconds", "histogram", "Time from sending a request upstream to its response's header; the cache's hits, and failures, are not counted.")
	buckets, count, sum := c.upstream.cumulative()
	m.Histogram("revproxy_http_upstream_latency_seconds", leLabels, buckets, count, sum.Seconds())
	return m.B
}

// statusClasses name the status classes counters.statuses counts by.
var statusClasses = [6]string{"none", "1xx", "2xx", "3xx", "4xx", "5xx"}

// latencyBounds are the upstream histogram's bucket bounds: the same as
// the message proxy's, so that the two compare.
var latencyBounds = revproxy.LatencyBounds()

// leLabels are latencyBounds in seconds, as "le" labels.
var leLabels = func() []string {
	les := make([]string, len(latencyBounds))
	for i, d := range latencyBounds {
		les[i] = strconv.FormatFloat(d.Seconds(), 'g', -1, 64)
	}
	return les
}()

// histogram counts durations in the buckets of latencyBounds, without a
// lock.
type histogram struct {
	buckets []atomic.Uint64 // not cumulative; the last is beyond every bound
	sum     atomic.Int64
}

// init makes the buckets; a histogram counts nothing before.
func (h *histogram) init() { h.buckets = make([]atomic.Uint64, len(latencyBounds)+1) }

// observe counts one duration.
func (h *histogram) observe(d time.Duration) {
	i, _ := slices.BinarySearch(latencyBounds, d)
	h.buckets[i].Add(1)
	h.sum.Add(int64(d))
}

// cumulative returns the counts at or under each bound, the total and the
// sum.
func (h *histogram) cumulative() ([]uint64, uint64, time.Duration) {
	out := make([]uint64, len(latencyBounds))
	var total uint64
	for i := range h.buckets {
		total += h.buckets[i].Load()
		if i < len(out) {
			out[i] = total
		}
	}
	return out, total, time.Duration(h.sum.Load())
}
