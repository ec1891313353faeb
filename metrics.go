package revproxy

import (
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/seed-c202d8a5/revproxy/internal/promtext"
)

// metricsBufs are the buffers /metrics is written into: a scrape reuses
// the last one's instead of growing a new one, which matters when it is
// scraped often under load.
var metricsBufs = sync.Pool{New: func() any { return new([]byte) }}

// maxPooledMetrics is the largest buffer kept for the next scrape; a
// larger one (tens of thousands of servers) is left to the collector.
const maxPooledMetrics = 8 << 20

// serveMetrics writes the proxy's Stats in the Prometheus text exposition
// format, version 0.0.4.
func (a *Admin) serveMetrics(w http.ResponseWriter, _ *http.Request) {
	bp := metricsBufs.Get().(*[]byte)
	s := a.Proxy.Stats()
	b := appendMetrics((*bp)[:0], &s)
	if a.Metrics != nil {
		b = a.Metrics(b)
	}
	h := w.Header()
	h.Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	h.Set("Content-Length", strconv.Itoa(len(b)))
	w.Write(b)
	if cap(b) <= maxPooledMetrics {
		*bp = b
		metricsBufs.Put(bp)
	}
}

// appendMetrics appends s to b in the Prometheus text format: each family
// once, with its HELP and TYPE lines and then all of its samples, as the
// format requires. Servers are labelled by policy and server id, which the
// table keeps unique. Counters of error codes are written for every code
// proxy-wide, and for the codes that happened per server: a proxy with
// thousands of servers would otherwise write eleven series more for each.
func appendMetrics(b []byte, s *Stats) []byte {
	m := promtext.Writer{B: b}

	m.Family("revproxy_start_time_seconds", "gauge", "When the proxy began to serve, in seconds since 1970.")
	if !s.Started.IsZero() {
		m.Float("revproxy_start_time_seconds", unixSeconds(s.Started))
	}
	m.Family("revproxy_uptime_seconds", "gauge", "How long the proxy has served.")
	m.Float("revproxy_uptime_seconds", s.Uptime.Seconds())
	m.Family("revproxy_messages_total", "counter", "Data messages read from clients.")
	m.Uint("revproxy_messages_total", s.Totals.Messages)
	m.Family("revproxy_answered_total", "counter", "Replies from servers relayed to clients.")
	m.Uint("revproxy_answered_total", s.Totals.Answered)
	m.Family("revproxy_errors_total", "counter", "Error messages sent to clients, by code: the proxy's own and those servers sent.")
	for _, code := range codes {
		m.Uint("revproxy_errors_total", s.Totals.Errors[code], promtext.Label{Name: "code", Value: code})
	}
	m.Family("revproxy_connections", "gauge", "Connections served now: clients and servers.")
	m.Int("revproxy_connections", int64(s.Conns))
	m.Family("revproxy_server_connections", "gauge", "Connections open now to legacy servers, which the proxy dials for each message.")
	m.Int("revproxy_server_connections", int64(s.ServerConns))
	m.Family("revproxy_memory_used_bytes", "gauge", "Bytes of read buffers and write queues held against the memory budget.")
	m.Int("revproxy_memory_used_bytes", s.MemoryUsed)
	m.Family("revproxy_memory_max_bytes", "gauge", "The memory budget, Proxy.MaxMemory.")
	m.Int("revproxy_memory_max_bytes", s.MemoryMax)

	m.Family("revproxy_policy_servers", "gauge", "Servers of each policy in each state: up, draining or ejected.")
	for i := range s.Policies {
		ps := &s.Policies[i]
		var n [len(stateNames)]int64
		for j := range ps.Servers {
			if st := ps.Servers[j].State; st >= 0 && int(st) < len(n) {
				n[st]++
			}
		}
		for st, name := range stateNames {
			m.Int("revproxy_policy_servers", n[st], promtext.Label{Name: "policy", Value: ps.Name}, promtext.Label{Name: "state", Value: name})
		}
	}

	servers := func(name, typ, help string, write func(ss *ServerStats, policy, server promtext.Label)) {
		m.Family(name, typ, help)
		for i := range s.Policies {
			for j := range s.Policies[i].Servers {
				ss := &s.Policies[i].Servers[j]
				write(ss, promtext.Label{Name: "policy", Value: ss.Policy}, promtext.Label{Name: "server", Value: ss.ID})
			}
		}
	}
	servers("revproxy_server_info", "gauge", "1 for each registered server, with its address and link: mux (messages over its registration) or legacy (a connection per message).",
		func(ss *ServerStats, policy, server promtext.Label) {
			link := "legacy"
			if ss.Mux {
				link = "mux"
			}
			m.Int("revproxy_server_info", 1, policy, server, promtext.Label{Name: "addr", Value: ss.Addr}, promtext.Label{Name: "link", Value: link})
		})
	servers("revproxy_server_up", "gauge", "1 if the server takes messages, 0 if it is draining or ejected.",
		func(ss *ServerStats, policy, server promtext.Label) {
			up := int64(0)
			if ss.State == Up {
				up = 1
			}
			m.Int("revproxy_server_up", up, policy, server)
		})
	servers("revproxy_server_state", "gauge", "1 for the server's state (up, draining or ejected), 0 for the others.",
		func(ss *ServerStats, policy, server promtext.Label) {
			for st, name := range stateNames {
				v := int64(0)
				if ss.State == ServerState(st) {
					v = 1
				}
				m.Int("revproxy_server_state", v, policy, server, promtext.Label{Name: "state", Value: name})
			}
		})
	servers("revproxy_server_weight", "gauge", "The server's weight, its share of messages.",
		func(ss *ServerStats, policy, server promtext.Label) {
			m.Int("revproxy_server_weight", int64(ss.Weight), policy, server)
		})
	servers("revproxy_server_in_flight", "gauge", "Messages sent to the server and not yet answered.",
		func(ss *ServerStats, policy, server promtext.Label) {
			m.Int("revproxy_server_in_flight", int64(ss.InFlight), policy, server)
		})
	servers("revproxy_server_sent_total", "counter", "Messages sent to the server.",
		func(ss *ServerStats, policy, server promtext.Label) {
			m.Uint("revproxy_server_sent_total", ss.Sent, policy, server)
		})
	servers("revproxy_server_answered_total", "counter", "The server's replies relayed to clients.",
		func(ss *ServerStats, policy, server promtext.Label) {
			m.Uint("revproxy_server_answered_total", ss.Answered, policy, server)
		})
	servers("revproxy_server_errors_total", "counter", "Error messages that answered messages sent to the server, by code; only codes that happened.",
		func(ss *ServerStats, policy, server promtext.Label) {
			for _, code := range codes {
				if n, ok := ss.Errors[code]; ok {
					m.Uint("revproxy_server_errors_total", n, policy, server, promtext.Label{Name: "code", Value: code})
				}
			}
		})
	servers("revproxy_server_last_seen_seconds", "gauge", "When the server last answered or was heard from, in seconds since 1970; absent until it is.",
		func(ss *ServerStats, policy, server promtext.Label) {
			if !ss.LastSeen.IsZero() {
				m.Float("revproxy_server_last_seen_seconds", unixSeconds(ss.LastSeen), policy, server)
			}
		})
	servers("revproxy_server_latency_seconds", "histogram", "Time from sending a message to the server to relaying its answer.",
		func(ss *ServerStats, policy, server promtext.Label) {
			l := &ss.Latency
			m.Histogram("revproxy_server_latency_seconds", leLabels, l.Buckets, l.Count, l.Sum.Seconds(), policy, server)
		})
	servers("revproxy_server_http_requests_total", "counter", "HTTP requests an HTTP front door sent to the server's HTTP service, by result: answered (whatever the status) or failed; only for servers that announced one.",
		func(ss *ServerStats, policy, server promtext.Label) {
			if ss.HTTPAddr != "" {
				m.Uint("revproxy_server_http_requests_total", ss.HTTPAnswered, policy, server, promtext.Label{Name: "result", Value: "answered"})
				m.Uint("revproxy_server_http_requests_total", ss.HTTPFailed, policy, server, promtext.Label{Name: "result", Value: "failed"})
			}
		})
	return m.B
}

// leLabels are the histogram's bucket bounds in seconds, as "le" labels.
var leLabels = func() []string {
	les := make([]string, len(latencyBounds))
	for i, d := range latencyBounds {
		les[i] = strconv.FormatFloat(d.Seconds(), 'g', -1, 64)
	}
	return les
}()

func unixSeconds(t time.Time) float64 { return float64(t.UnixNano()) / 1e9 }
