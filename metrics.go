package revproxy

import (
	"net/http"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"
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
	m := promText{b: b}

	m.family("revproxy_start_time_seconds", "gauge", "When the proxy began to serve, in seconds since 1970.")
	if !s.Started.IsZero() {
		m.float("revproxy_start_time_seconds", unixSeconds(s.Started))
	}
	m.family("revproxy_uptime_seconds", "gauge", "How long the proxy has served.")
	m.float("revproxy_uptime_seconds", s.Uptime.Seconds())
	m.family("revproxy_messages_total", "counter", "Data messages read from clients.")
	m.uint("revproxy_messages_total", s.Totals.Messages)
	m.family("revproxy_answered_total", "counter", "Replies from servers relayed to clients.")
	m.uint("revproxy_answered_total", s.Totals.Answered)
	m.family("revproxy_errors_total", "counter", "Error messages sent to clients, by code: the proxy's own and those servers sent.")
	for _, code := range codes {
		m.uint("revproxy_errors_total", s.Totals.Errors[code], label{"code", code})
	}
	m.family("revproxy_connections", "gauge", "Connections served now: clients and servers.")
	m.int("revproxy_connections", int64(s.Conns))
	m.family("revproxy_server_connections", "gauge", "Connections open now to legacy servers, which the proxy dials for each message.")
	m.int("revproxy_server_connections", int64(s.ServerConns))
	m.family("revproxy_memory_used_bytes", "gauge", "Bytes of read buffers and write queues held against the memory budget.")
	m.int("revproxy_memory_used_bytes", s.MemoryUsed)
	m.family("revproxy_memory_max_bytes", "gauge", "The memory budget, Proxy.MaxMemory.")
	m.int("revproxy_memory_max_bytes", s.MemoryMax)

	m.family("revproxy_policy_servers", "gauge", "Servers of each policy in each state: up, draining or ejected.")
	for i := range s.Policies {
		ps := &s.Policies[i]
		var n [len(stateNames)]int64
		for j := range ps.Servers {
			if st := ps.Servers[j].State; st >= 0 && int(st) < len(n) {
				n[st]++
			}
		}
		for st, name := range stateNames {
			m.int("revproxy_policy_servers", n[st], label{"policy", ps.Name}, label{"state", name})
		}
	}

	servers := func(name, typ, help string, write func(ss *ServerStats, policy, server label)) {
		m.family(name, typ, help)
		for i := range s.Policies {
			for j := range s.Policies[i].Servers {
				ss := &s.Policies[i].Servers[j]
				write(ss, label{"policy", ss.Policy}, label{"server", ss.ID})
			}
		}
	}
	servers("revproxy_server_info", "gauge", "1 for each registered server, with its address and link: mux (messages over its registration) or legacy (a connection per message).",
		func(ss *ServerStats, policy, server label) {
			link := "legacy"
			if ss.Mux {
				link = "mux"
			}
			m.int("revproxy_server_info", 1, policy, server, label{"addr", ss.Addr}, label{"link", link})
		})
	servers("revproxy_server_up", "gauge", "1 if the server takes messages, 0 if it is draining or ejected.",
		func(ss *ServerStats, policy, server label) {
			up := int64(0)
			if ss.State == Up {
				up = 1
			}
			m.int("revproxy_server_up", up, policy, server)
		})
	servers("revproxy_server_state", "gauge", "1 for the server's state (up, draining or ejected), 0 for the others.",
		func(ss *ServerStats, policy, server label) {
			for st, name := range stateNames {
				v := int64(0)
				if ss.State == ServerState(st) {
					v = 1
				}
				m.int("revproxy_server_state", v, policy, server, label{"state", name})
			}
		})
	servers("revproxy_server_weight", "gauge", "The server's weight, its share of messages.",
		func(ss *ServerStats, policy, server label) {
			m.int("revproxy_server_weight", int64(ss.Weight), policy, server)
		})
	servers("revproxy_server_in_flight", "gauge", "Messages sent to the server and not yet answered.",
		func(ss *ServerStats, policy, server label) {
			m.int("revproxy_server_in_flight", int64(ss.InFlight), policy, server)
		})
	servers("revproxy_server_sent_total", "counter", "Messages sent to the server.",
		func(ss *ServerStats, policy, server label) {
			m.uint("revproxy_server_sent_total", ss.Sent, policy, server)
		})
	servers("revproxy_server_answered_total", "counter", "The server's replies relayed to clients.",
		func(ss *ServerStats, policy, server label) {
			m.uint("revproxy_server_answered_total", ss.Answered, policy, server)
		})
	servers("revproxy_server_errors_total", "counter", "Error messages that answered messages sent to the server, by code; only codes that happened.",
		func(ss *ServerStats, policy, server label) {
			for _, code := range codes {
				if n, ok := ss.Errors[code]; ok {
					m.uint("revproxy_server_errors_total", n, policy, server, label{"code", code})
				}
			}
		})
	servers("revproxy_server_last_seen_seconds", "gauge", "When the server last answered or was heard from, in seconds since 1970; absent until it is.",
		func(ss *ServerStats, policy, server label) {
			if !ss.LastSeen.IsZero() {
				m.float("revproxy_server_last_seen_seconds", unixSeconds(ss.LastSeen), policy, server)
			}
		})
	servers("revproxy_server_latency_seconds", "histogram", "Time from sending a message to the server to relaying its answer.",
		func(ss *ServerStats, policy, server label) {
			l := &ss.Latency
			for i, le := range leLabels {
				var n uint64
				if i < len(l.Buckets) {
					n = l.Buckets[i]
				}
				m.uint("revproxy_server_latency_seconds_bucket", n, policy, server, label{"le", le})
			}
			m.uint("revproxy_server_latency_seconds_bucket", l.Count, policy, server, label{"le", "+Inf"})
			m.float("revproxy_server_latency_seconds_sum", l.Sum.Seconds(), policy, server)
			m.uint("revproxy_server_latency_seconds_count", l.Count, policy, server)
		})
	return m.b
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

// promText appends the Prometheus text format, without fmt and without
// allocating beyond its buffer.
type promText struct{ b []byte }

// label is one label of a sample.
type label struct{ name, value string }

// family begins a metric family. help is the package's own text, with no
// backslash or newline to escape.
func (m *promText) family(name, typ, help string) {
	m.b = append(m.b, "# HELP "...)
	m.b = append(m.b, name...)
	m.b = append(m.b, ' ')
	m.b = append(m.b, help...)
	m.b = append(m.b, "\n# TYPE "...)
	m.b = append(m.b, name...)
	m.b = append(m.b, ' ')
	m.b = append(m.b, typ...)
	m.b = append(m.b, '\n')
}

func (m *promText) uint(name string, v uint64, labels ...label) {
	m.series(name, labels)
	m.b = strconv.AppendUint(m.b, v, 10)
	m.b = append(m.b, '\n')
}

func (m *promText) int(name string, v int64, labels ...label) {
	m.series(name, labels)
	m.b = strconv.AppendInt(m.b, v, 10)
	m.b = append(m.b, '\n')
}

func (m *promText) float(name string, v float64, labels ...label) {
	m.series(name, labels)
	m.b = strconv.AppendFloat(m.b, v, 'g', -1, 64)
	m.b = append(m.b, '\n')
}

// series appends a sample's name and labels, and the space before its
// value.
func (m *promText) series(name string, labels []label) {
	m.b = append(m.b, name...)
	if len(labels) > 0 {
		m.b = append(m.b, '{')
		for i, l := range labels {
			if i > 0 {
				m.b = append(m.b, ',')
			}
			m.b = append(m.b, l.name...)
			m.b = append(m.b, `="`...)
			m.b = appendLabelValue(m.b, l.value)
			m.b = append(m.b, '"')
		}
		m.b = append(m.b, '}')
	}
	m.b = append(m.b, ' ')
}

// appendLabelValue appends s escaped as the text format wants a label
// value: backslash, double quote and newline escaped, and bytes that are
// not UTF-8 replaced with U+FFFD. Server ids and policies are chosen by
// peers, and must not break the format.
func appendLabelValue(b []byte, s string) []byte {
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch c {
			case '\\':
				b = append(b, `\\`...)
			case '"':
				b = append(b, `\"`...)
			case '\n':
				b = append(b, `\n`...)
			default:
				b = append(b, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, "\uFFFD"...)
		} else {
			b = append(b, s[i:i+size]...)
		}
		i += size
	}
	return b
}
