package revproxy

import (
	"fmt"
	"slices"
	"strconv"
	"sync/atomic"
	"time"
)

// Stats is a snapshot of a proxy: what it has done since it started and
// what it holds now. It is a plain value, safe to keep and to change; see
// [Proxy.Stats]. Its JSON form is what the admin handler serves at
// /status.json.
type Stats struct {
	Serving     bool          `json:"serving"` // Serve is running
	Started     time.Time     `json:"started"`
	Uptime      time.Duration `json:"uptime_ns"`
	Conns       int           `json:"conns"`        // connections served now: clients and servers
	ServerConns int           `json:"server_conns"` // connections open now to legacy servers, one per message
	MemoryUsed  int64         `json:"memory_used"`  // bytes held against MaxMemory
	MemoryMax   int64         `json:"memory_max"`   // MaxMemory, or its default
	Totals      Counts        `json:"totals"`       // every data message since the proxy started
	Policies    []PolicyStats `json:"policies"`     // by name
	// RecentErrors are the last error messages the proxy sent to clients,
	// the newest first.
	RecentErrors []ErrorEvent `json:"recent_errors"`
}

// Counts counts data messages and what answered them.
type Counts struct {
	Messages uint64            `json:"messages"` // data messages read from clients
	Answered uint64            `json:"answered"` // replies relayed to clients
	Errors   map[string]uint64 `json:"errors"`   // error messages sent to clients, by code
}

// PolicyStats is one policy of the switching table and its servers.
type PolicyStats struct {
	Name     string        `json:"name"`
	Balancer Balancer      `json:"balancer"`
	Servers  []ServerStats `json:"servers"` // in the table's order
}

// ServerStats is one registered server as the proxy sees it. Its counters
// are its registration's: a server that registers again starts them again
// (Prometheus takes that as a counter reset).
type ServerStats struct {
	ID     string      `json:"id"`
	Policy string      `json:"policy"`
	Addr   string      `json:"addr"`   // as in ServerInfo
	Mux    bool        `json:"mux"`    // its messages go over its registration's connection; else the proxy dials it for each
	Held   bool        `json:"held"`   // it holds its registration's connection open
	Weight int         `json:"weight"` // its share under RoundRobin, LeastInFlight and PowerOfTwo
	State  ServerState `json:"state"`
	Since  time.Time   `json:"since"` // when it registered, or entered its State

	InFlight int               `json:"in_flight"` // messages sent and not yet answered
	Sent     uint64            `json:"sent"`      // messages sent to it
	Answered uint64            `json:"answered"`  // its replies relayed
	Errors   map[string]uint64 `json:"errors"`    // error messages that answered messages sent to it, by code
	LastSeen time.Time         `json:"last_seen"` // when it registered, or last answered or was heard from
	Latency  Latency           `json:"latency"`   // from sending a message to answering it: relaying the server's answer, or an error when it timed out or was lost

	// Its HTTP service, for a server that announced one (Server.HTTPPort):
	// where it listens, and the requests an HTTP front door sent it (see
	// Proxy.PickHTTP), which InFlight counts too while they last.
	HTTPAddr     string `json:"http_addr,omitempty"`
	HTTPAnswered uint64 `json:"http_answered"` // requests it answered, whatever the status
	HTTPFailed   uint64 `json:"http_failed"`   // requests it could not be reached for, or that failed under way
}

// ServerState says whether a server takes messages.
type ServerState int

const (
	// Up is a registered server that takes messages.
	Up ServerState = iota
	// Draining is a server that asked for no new messages and is still
	// answering those it has.
	Draining
	// Ejected is a server that the proxy could not reach, or whose
	// connection failed without draining. It takes no messages until it
	// registers again, when it takes back its place in the rotation; the
	// proxy forgets it after ten minutes.
	Ejected
)

var stateNames = [...]string{Up: "up", Draining: "draining", Ejected: "ejected"}

// String returns "up", "draining" or "ejected".
func (s ServerState) String() string {
	if s >= 0 && int(s) < len(stateNames) {
		return stateNames[s]
	}
	return "ServerState(" + strconv.Itoa(int(s)) + ")"
}

// MarshalText returns the state's name.
func (s ServerState) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText sets s from its name.
func (s *ServerState) UnmarshalText(text []byte) error {
	if i := slices.Index(stateNames[:], string(text)); i >= 0 {
		*s = ServerState(i)
		return nil
	}
	return fmt.Errorf("revproxy: unknown server state %q", text)
}

// Latency summarizes how long messages took, from a histogram: Buckets[i]
// counts those that took at most latencyBounds[i], and Count all of them.
type Latency struct {
	Count   uint64        `json:"count"`
	Sum     time.Duration `json:"sum_ns"`
	P50     time.Duration `json:"p50_ns"`
	P90     time.Duration `json:"p90_ns"`
	P99     time.Duration `json:"p99_ns"`
	Buckets []uint64      `json:"buckets"` // cumulative, one per LatencyBounds
}

// LatencyBounds returns the upper bounds of the latency histogram's
// buckets, from 50µs to 30s.
func LatencyBounds() []time.Duration { return slices.Clone(latencyBounds[:]) }

var latencyBounds = [...]time.Duration{
	50 * time.Microsecond, 100 * time.Microsecond, 250 * time.Microsecond, 500 * time.Microsecond,
	time.Millisecond, 2500 * time.Microsecond, 5 * time.Millisecond, 10 * time.Millisecond,
	25 * time.Millisecond, 50 * time.Millisecond, 100 * time.Millisecond, 250 * time.Millisecond,
	500 * time.Millisecond, time.Second, 2500 * time.Millisecond, 5 * time.Second, 10 * time.Second, 30 * time.Second,
}

// ErrorEvent is one error message the proxy sent a client.
type ErrorEvent struct {
	Time   time.Time `json:"time"`
	Code   string    `json:"code"`
	Policy string    `json:"policy,omitempty"`
	Server string    `json:"server,omitempty"` // the server that had the message, if any
	Text   string    `json:"text"`
}

// codes are the error codes counted one by one; any other counts as
// "other".
var codes = [...]string{codeNoServer, codeUnavailable, codeBadMessage, codeHandler, codeOverloaded,
	codeUnauthorized, codeIDInUse, codeForbidden, codeTimeout, codeTooLarge, "other"}

// codeIndex returns code's place in codes.
func codeIndex(code string) int {
	switch code {
	case codeNoServer:
		return 0
	case codeUnavailable:
		return 1
	case codeBadMessage:
		return 2
	case codeHandler:
		return 3
	case codeOverloaded:
		return 4
	case codeUnauthorized:
		return 5
	case codeIDInUse:
		return 6
	case codeForbidden:
		return 7
	case codeTimeout:
		return 8
	case codeTooLarge:
		return 9
	}
	return len(codes) - 1
}

// counts are counters that many goroutines add to without a lock.
type counts struct {
	messages atomic.Uint64
	answered atomic.Uint64
	errors   [len(codes)]atomic.Uint64
}

// count counts one answer: a reply when code is empty, else an error.
func (c *counts) count(code string) {
	if code == "" {
		c.answered.Add(1)
		return
	}
	c.errors[codeIndex(code)].Add(1)
}

// addTo adds the counters into s.
func (c *counts) addTo(s *Counts) {
	s.Messages += c.messages.Load()
	s.Answered += c.answered.Load()
	for i := range c.errors {
		if n := c.errors[i].Load(); n > 0 {
			if s.Errors == nil {
				s.Errors = make(map[string]uint64)
			}
			s.Errors[codes[i]] += n
		}
	}
}

// shards spread a proxy's totals over counters of their own, each on its
// own cache line, so that connections on different cores do not contend
// for one.
const shards = 16

// shard is one of a proxy's total counters.
type shard struct {
	counts
	_ [64]byte
}

// serverCounts are a server's counters, updated as messages go and come.
type serverCounts struct {
	sent     atomic.Uint64
	counts   counts
	lastSeen atomic.Int64 // unix nanoseconds
	latency  histogram
}

// seen records that the server was heard from now.
func (c *serverCounts) seen() { c.lastSeen.Store(time.Now().UnixNano()) }

// histogram counts durations in the buckets of latencyBounds, without a
// lock.
type histogram struct {
	buckets [len(latencyBounds) + 1]atomic.Uint64 // not cumulative; the last is beyond every bound
	sum     atomic.Int64
}

// observe counts one duration.
func (h *histogram) observe(d time.Duration) {
	i, _ := slices.BinarySearch(latencyBounds[:], d)
	h.buckets[i].Add(1)
	h.sum.Add(int64(d))
}

// snapshot returns the histogram as a Latency, with quantiles estimated
// within their buckets.
func (h *histogram) snapshot() Latency {
	var l Latency
	l.Buckets = make([]uint64, len(latencyBounds))
	var counts [len(latencyBounds) + 1]uint64
	for i := range h.buckets {
		counts[i] = h.buckets[i].Load()
		l.Count += counts[i]
	}
	var cum uint64
	for i := range latencyBounds {
		cum += counts[i]
		l.Buckets[i] = cum
	}
	l.Sum = time.Duration(h.sum.Load())
	l.P50 = quantile(counts[:], l.Count, 0.50)
	l.P90 = quantile(counts[:], l.Count, 0.90)
	l.P99 = quantile(counts[:], l.Count, 0.99)
	return l
}

// quantile estimates the q-quantile of total durations counted in buckets,
// taking them as spread evenly within each bucket; beyond the last bound,
// it is that bound.
func quantile(buckets []uint64, total uint64, q float64) time.Duration {
	if total == 0 {
		return 0
	}
	rank := q * float64(total)
	var cum float64
	for i, n := range buckets {
		if n == 0 {
			continue
		}
		if cum+float64(n) >= rank {
			if i == len(latencyBounds) {
				return latencyBounds[i-1]
			}
			lo := time.Duration(0)
			if i > 0 {
				lo = latencyBounds[i-1]
			}
			frac := (rank - cum) / float64(n)
			return lo + time.Duration(frac*float64(latencyBounds[i]-lo))
		}
		cum += float64(n)
	}
	return latencyBounds[len(latencyBounds)-1]
}

// epoch is the origin of the monotonic times kept per message.
var epoch = time.Now()

// now returns the monotonic time since epoch.
func now() int64 { return int64(time.Since(epoch)) }

// Stats returns a snapshot of the proxy: its policies and servers, what
// they have done, and what the proxy holds. It takes the switching table's
// lock for as long as it lists the servers (about half a millisecond for
// 10,000), and nothing else on a message's way.
func (p *Proxy) Stats() Stats {
	s := Stats{
		Serving:     p.serving.Load() > 0,
		Started:     p.started(),
		Conns:       int(p.conns.Load()),
		ServerConns: int(p.serverConns.Load()),
		MemoryUsed:  p.budget().used.Load(),
		MemoryMax:   p.budget().max,
	}
	if !s.Started.IsZero() {
		s.Uptime = time.Since(s.Started)
	}
	for i := range p.totals {
		p.totals[i].addTo(&s.Totals)
	}
	s.Policies = p.table.snapshot(p)
	s.RecentErrors = p.errs.recent()
	return s
}

// started returns when the proxy began to serve, or the zero time.
func (p *Proxy) started() time.Time {
	if t := p.startedAt.Load(); t != nil {
		return *t
	}
	return time.Time{}
}

// totalsFor returns the proxy's total counters that pc counts into.
func (p *Proxy) totalsFor(pc *pconn) *counts { return &p.totals[pc.shard%shards].counts }

// snapshot copies the table's policies, by name, and their servers. It
// holds the table's lock, which every message's choice of server takes,
// only to list them (with 10,000 servers, reading their counters and
// histograms under it would hold it ten times as long): the counters are
// atomics, read after.
func (t *table) snapshot(p *Proxy) []PolicyStats {
	t.mu.Lock()
	t.forgetLocked(time.Now())
	policies := make([]PolicyStats, 0, len(t.policies))
	entries := make([]*entry, 0, len(t.ids)) // in the order of policies' servers
	for name, rg := range t.policies {
		ps := PolicyStats{Name: name, Servers: make([]ServerStats, len(rg.entries))}
		for i, e := range rg.entries {
			ps.Servers[i] = e.listed()
		}
		policies = append(policies, ps)
		entries = append(entries, rg.entries...)
	}
	t.mu.Unlock()
	for i := range policies {
		ps := &policies[i]
		ps.Balancer = p.balancer([]byte(ps.Name))
		for j := range ps.Servers {
			entries[0].counted(&ps.Servers[j])
			entries = entries[1:]
		}
	}
	slices.SortFunc(policies, func(a, b PolicyStats) int {
		switch {
		case a.Name < b.Name:
			return -1
		case a.Name > b.Name:
			return 1
		}
		return 0
	})
	return policies
}

// listed returns what the table says of the server; its lock is held.
func (e *entry) listed() ServerStats {
	return ServerStats{
		ID: e.id, Policy: e.policy, Addr: e.addr, Mux: e.link != nil, Held: e.owner != nil && e.link == nil,
		Weight: e.weight, State: e.state, Since: e.since, HTTPAddr: e.httpAddr,
	}
}

// counted fills in the server's counters, read without a lock.
func (e *entry) counted(s *ServerStats) {
	s.InFlight = int(e.pending.Load())
	s.Sent = e.counts.sent.Load()
	s.HTTPAnswered, s.HTTPFailed = e.http.answered.Load(), e.http.failed.Load()
	s.Latency = e.counts.latency.snapshot()
	var c Counts
	e.counts.counts.addTo(&c)
	s.Answered, s.Errors = c.Answered, c.Errors
	if ns := e.counts.lastSeen.Load(); ns != 0 {
		s.LastSeen = time.Unix(0, ns)
	}
}
