package main

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/seed-c202d8a5/revproxy"
)

// The balance scenario: one slow server among four on one policy, the
// proxy (examples/revproc -q -balancer NAME) in a process of its own, the
// servers and the clients in the load process, the same for every
// balancer.
const (
	balanceServers = 4
	balancePayload = 64
	// slowServer is the index of the slow server, the first to register.
	slowServer = 0
	// balanceGoal is how many times lower than round robin's the
	// load-aware balancers' p99 must be for the target to count as met.
	balanceGoal = 2.0
)

// A balanceCase is one setting of the scenario.
type balanceCase struct {
	// delay is what the slow server takes over each message before it
	// computes the SHA1.
	delay time.Duration
	// handlers is the slow server's MaxHandlers: how many messages it
	// takes its delay over at once. 1 makes it a slower machine, one that
	// does delay's worth of work per message, one message at a time: its
	// capacity is 1/delay messages a second, and what it is given beyond
	// that waits, so its latency grows with the messages it holds. 64 (the
	// Server's default, more than the clients) makes it a fixed latency,
	// a wait on something slow elsewhere: delay whatever it holds.
	// MaxHandlers rather than a lock in the handler, because it is the
	// Server's own way to serve one message at a time, the way such a
	// server is deployed; the proxy would see a lock's queue the same.
	handlers int
	// clients is the number of closed-loop clients. 32 gives each server
	// 8 requests to hold on average: the in-flight counts that
	// least-in-flight and p2c go by then tell the slow server from the
	// others (with 1 client every server has nothing in flight at every
	// choice, and least-in-flight goes round as round robin does). It is
	// the main table's middle point, where the 2-core machine is busy
	// without queueing in the proxy dominating, as it does at 256.
	clients int
}

// serial reports whether the slow server does one message at a time.
func (c balanceCase) serial() bool { return c.handlers == 1 }

// label names the case's slow server, as the tables and the chart do.
func (c balanceCase) label() string {
	if c.serial() {
		return fmt.Sprintf("%s of work each, one at a time", fmtMillis(c.delay))
	}
	return fmt.Sprintf("waits %s, %d at a time", fmtMillis(c.delay), c.handlers)
}

// fmtMillis writes a whole number of milliseconds as "5 ms".
func fmtMillis(d time.Duration) string {
	if d%time.Millisecond != 0 {
		return d.String()
	}
	return fmt.Sprintf("%d ms", d.Milliseconds())
}

// balanceCases are the settings measured. First, the headline: the issue's
// server "5 ms per message" as a slower machine, 5 ms of work per
// message, one message at a time (200 messages a second at most, where
// each fast server does thousands). Round robin gives it a quarter of the
// messages, more than it can do, so in this closed loop the clients pile
// up in its queue; a balancer that goes by messages in flight sees the
// queue and sends it about as many as it can do. Then a server that
// waits 5 ms on each message with 64 handlers, as many at once as it is
// given: its latency stays 5 ms whatever it holds, so a balancer that
// keeps about as many in flight there as at each fast server gives it a
// share that goes as the inverse of its latency, 3% here, too much for
// p99; and the same waiting 50 ms, which puts it under 1%.
var balanceCases = []balanceCase{
	{delay: 5 * time.Millisecond, handlers: 1, clients: 32},
	{delay: 5 * time.Millisecond, handlers: 64, clients: 32},
	{delay: 50 * time.Millisecond, handlers: 64, clients: 32},
}

// balancers are the balancers compared, in report order.
var balancers = []revproxy.Balancer{revproxy.RoundRobin, revproxy.LeastInFlight, revproxy.PowerOfTwo}

// balancePoint sums up the rounds of one balancer in one case.
type balancePoint struct {
	balanceCase
	balancer revproxy.Balancer
	stat
	// shares are, per server, the median over the rounds of its share of
	// the messages given in the window; shares[slowServer] is the slow one.
	shares []float64
	// slowRate is the median over the rounds of the messages a second the
	// slow server was given in the window.
	slowRate float64
}

// slowShare is the median share of the messages the slow server was given.
func (bp balancePoint) slowShare() float64 {
	if len(bp.shares) <= slowServer {
		return 0
	}
	return bp.shares[slowServer]
}

// shares returns, per server, its share of the messages of round p.
func shares(p point) []float64 {
	var total int64
	for _, n := range p.Served {
		total += n
	}
	if total == 0 {
		return nil
	}
	out := make([]float64, len(p.Served))
	for i, n := range p.Served {
		out[i] = float64(n) / float64(total)
	}
	return out
}

func summarizeBalance(c balanceCase, b revproxy.Balancer, rounds []point) balancePoint {
	bp := balancePoint{balanceCase: c, balancer: b, stat: summarize(rounds)}
	var rates []float64
	for _, p := range rounds {
		if len(p.Served) > slowServer && p.Window > 0 {
			rates = append(rates, float64(p.Served[slowServer])/p.Window.Seconds())
		}
	}
	if len(rates) > 0 {
		bp.slowRate = median(rates)
	}
	for i := range balanceServers {
		var v []float64
		for _, p := range rounds {
			if s := shares(p); len(s) == balanceServers {
				v = append(v, s[i])
			}
		}
		if len(v) == 0 {
			return bp
		}
		bp.shares = append(bp.shares, median(v))
	}
	return bp
}

// slowHandler waits delay, then answers as h does. The wait is a timer
// even where it stands for work (a case with one handler): work burnt
// here would take from the 2 cores the proxy and the fast servers share,
// and slow them too; a timer makes server 1 a slower machine without
// making this one slower. How many messages it waits over at once is the
// Server's MaxHandlers, the case's handlers: with 1 the others wait
// unread on its link, as at a server that reads the next message when it
// is done with the last, and the proxy counts them in flight.
func slowHandler(delay time.Duration, h revproxy.Handler) revproxy.Handler {
	return revproxy.HandlerFunc(func(ctx context.Context, m *revproxy.Message) (string, error) {
		t := time.NewTimer(delay)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
			return "", ctx.Err()
		}
		return h.ServeMessage(ctx, m)
	})
}

// countedHandler counts the messages h is given in n.
func countedHandler(n *atomic.Int64, h revproxy.Handler) revproxy.Handler {
	return revproxy.HandlerFunc(func(ctx context.Context, m *revproxy.Message) (string, error) {
		n.Add(1)
		return h.ServeMessage(ctx, m)
	})
}

// startBalanced runs examples/revproc -q -balancer b in a process of its
// own and 4 SHA1 Servers here, registered one after the other so that the
// proxy's table has them in order, the slow one first: it takes c.delay
// over each message, c.handlers at a time.
func startBalanced(ctx context.Context, b revproxy.Balancer, c balanceCase) (*env, error) {
	px, addr, stopPx, err := startRevproc(ctx, "", "-balancer", b.String())
	if err != nil {
		return nil, fmt.Errorf("revproc: %w", err)
	}
	r := newRoles(ctx)
	regs := newRegistrations()
	stop := func() {
		r.stop()
		stopPx()
	}
	counts := make([]atomic.Int64, balanceServers)
	for i := range balanceServers {
		h, maxHandlers := revproxy.SHA1Handler, 0
		if i == slowServer {
			h, maxHandlers = slowHandler(c.delay, h), c.handlers
		}
		s := &revproxy.Server{ID: strconv.Itoa(i + 1), Policy: policy, ProxyAddr: addr,
			Handler: countedHandler(&counts[i], h), MaxHandlers: maxHandlers, Logger: slog.New(regs)}
		r.run("server "+s.ID, func(ctx context.Context) error { return s.Serve(ctx, nil) })
		if err := regs.wait(ctx, i+1, 30*time.Second, r.failed); err != nil {
			stop()
			return nil, err
		}
	}
	return &env{
		connect: func(i, _ int) (sendFunc, func(), error) {
			send, closeFn := revproxySender(strconv.Itoa(1000+i), addr, false)
			return send, closeFn, nil
		},
		broker: px.pid(),
		close:  stop,
		served: func() []int64 {
			out := make([]int64, len(counts))
			for i := range counts {
				out[i] = counts[i].Load()
			}
			return out
		},
	}, nil
}

// runBalance measures the balance scenario, case by case, in rounds: each
// round runs every balancer once, each with a proxy process and servers
// started afresh, in an order rotated by one each round.
//
// Every round takes its warm-up and window, however slow server 1 is: the
// loop is closed, so server 1 never holds more than the clients' messages,
// and with one handler (round robin piles the clients up there) the last
// of them is answered clients × delay after the window, 32 × 5 ms, well
// within endGrace; stopping the servers and the proxy then waits for
// nothing in flight.
func runBalance(ctx context.Context, cfg *config, res *results) {
	for _, c := range balanceCases {
		rounds := map[revproxy.Balancer][]point{}
		for r := range cfg.repeat {
			for _, b := range rotate(balancers, r) {
				if ctx.Err() != nil {
					return
				}
				progress("balance: server 1: %s, %d clients, %s, round %d of %d", c.label(), c.clients, b, r+1, cfg.repeat)
				var p point
				e, err := startBalanced(ctx, b, c)
				if err != nil {
					p = point{Clients: c.clients, Payload: balancePayload, Errors: 1, FirstErr: "setup: " + err.Error()}
				} else {
					p = measure(ctx, cfg, e, c.clients, balancePayload)
					e.close()
				}
				p.System, p.Round = fmt.Sprintf("%s, server 1: %s", b, c.label()), r+1
				rounds[b] = append(rounds[b], p)
				progress("%s; p90 %s p99.9 %s; shares %s", p.summary(), fmtDur(p.P90), fmtDur(p.P999), fmtShares(shares(p)))
			}
		}
		for _, b := range balancers {
			if len(rounds[b]) > 0 {
				res.balance = append(res.balance, summarizeBalance(c, b, rounds[b]))
			}
		}
	}
}

// fmtShares writes the servers' shares as percentages, the slow one first.
func fmtShares(s []float64) string {
	if len(s) == 0 {
		return "?"
	}
	parts := make([]string, len(s))
	for i, v := range s {
		parts[i] = fmtPct(v)
	}
	return strings.Join(parts, " / ")
}

func fmtPct(v float64) string {
	if v < 0.1 {
		return fmt.Sprintf("%.2f%%", 100*v)
	}
	return fmt.Sprintf("%.1f%%", 100*v)
}

// balanceFind returns the point of balancer b in case c, if it answered.
func balanceFind(res *results, c balanceCase, b revproxy.Balancer) (balancePoint, bool) {
	for _, bp := range res.balance {
		if bp.balanceCase == c && bp.balancer == b {
			return bp, bp.RPS > 0 && bp.P99 > 0
		}
	}
	return balancePoint{}, false
}

// A pctl is one of the latency percentiles the balance table gives.
type pctl struct {
	name string
	of   func(p90, p99, p999 time.Duration) time.Duration
}

var (
	p90  = pctl{"p90", func(v, _, _ time.Duration) time.Duration { return v }}
	p99  = pctl{"p99", func(_, v, _ time.Duration) time.Duration { return v }}
	p999 = pctl{"p99.9", func(_, _, v time.Duration) time.Duration { return v }}
)

// balanceRatio is round robin's latency at percentile t over b's in case
// c, from the medians, and round by round.
func balanceRatio(res *results, c balanceCase, b revproxy.Balancer, t pctl) (median float64, text string, ok bool) {
	pick := func(p point) time.Duration { return t.of(p.P90, p.P99, p.P999) }
	rr, ok1 := balanceFind(res, c, revproxy.RoundRobin)
	other, ok2 := balanceFind(res, c, b)
	if !ok1 || !ok2 {
		return 0, "", false
	}
	byRound := map[int]point{}
	for _, p := range other.Rounds {
		byRound[p.Round] = p
	}
	var ratios []string
	for _, pr := range rr.Rounds {
		po, ok := byRound[pr.Round]
		if a, o := pick(pr), pick(po); ok && pr.Requests > 0 && po.Requests > 0 && o > 0 {
			ratios = append(ratios, fmt.Sprintf("%.1f×", float64(a)/float64(o)))
		}
	}
	a, o := t.of(rr.P90, rr.P99, rr.P999), t.of(other.P90, other.P99, other.P999)
	if o <= 0 {
		return 0, "", false
	}
	median = float64(a) / float64(o)
	text = fmt.Sprintf("%s / %s = **%.1f×**", fmtDur(a), fmtDur(o), median)
	if len(ratios) > 1 {
		text += " (round by round: " + strings.Join(ratios, ", ") + ")"
	}
	return median, text, true
}

// balanceSection renders the scenario's part of the report; it appends
// its notes to notes.
func balanceSection(cfg *config, res *results, notes *[]string) string {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	w("\n## One slow server among four: the balancers\n\n")
	w("The proxy is `examples/revproc -q -balancer NAME`, in a process of its own, started afresh for each measurement. "+
		"The load process holds %d SHA1 Servers on %s, registered one after the other (so the proxy's table has them in this order) and multiplexed over their registrations, and the clients, the same for every balancer. "+
		"Servers 2 to 4 answer at once. Server 1 is slow, in one of two ways; in both its handler waits, on a timer, before the SHA1:\n\n", balanceServers, policy)
	w("- *N ms of work each, one at a time* (the first setting, the headline): server 1 is a slower machine. Its MaxHandlers is 1, so it takes N ms over each message, one message at a time: it can do 1000/N messages a second at most, and the messages it is given beyond that wait, unread on its link, counted in flight by the proxy. " +
		"The N ms stand for work but are a timer, so that the slower machine does not slow this one, whose 2 cores the proxy and the other servers share; with the server's own handling it does a little less than 1000/N (`server 1 msg/s` gives what it did).\n")
	w("- *waits N ms, 64 at a time*: a fixed latency, as of a server waiting on something slow elsewhere. Its 64 handlers (the default, more than the clients) each wait, so nothing queues in it and it answers in N ms whatever it holds.\n\n")
	w("Each client is a goroutine with its own connection and one request of %d B in flight (closed loop). "+
		"For each setting, %d %s, each running every balancer once in an order rotated by one each round, each a %v warm-up then a %v window; medians over the rounds. "+
		"`slow share` is the share of the window's messages server 1 was given, counted in its handler; `shares` gives servers 1 to 4; `server 1 msg/s` is the messages server 1 was given a second.\n\n",
		balancePayload, cfg.repeat, plural(cfg.repeat, "round"), cfg.warmup, cfg.duration)
	w("Round robin gives the slow server a quarter of the messages. " +
		"One at a time, that is more than it can do: in this closed loop the clients pile up in its queue, every client waits there on every fourth message, req/s falls to about four times what server 1 does, and p90 and p99 are the queue's, up to the clients times N ms. " +
		"Waiting N ms with 64 handlers, its delay shows from the 75th percentile up. " +
		"Least-in-flight and p2c go by the messages each server has in flight: they keep about as many at the slow server as at each fast one, so a server's share goes as the inverse of its latency as the proxy sees it (from forwarding to the answer, which on a busy machine includes the wait for a CPU). " +
		"A server doing one message at a time answers the k-th it holds after k × N ms, so its share falls to what it can do, well under 1%%, and p99 is the fast servers'; its own messages still queue, which p99.9 shows. " +
		"A server that waits N ms keeps that latency whatever it holds: for p99 to fall below it, its share must fall under 1%%, which, with three fast servers, takes a delay more than 33 times the fast servers' latency under this load.\n\n")
	w("| server 1 | clients | balancer | req/s (median) | range | p50 | p90 | p99 | p99.9 | slow share | shares | server 1 msg/s | broker CPU µs/msg | errors |\n")
	w("|---|--:|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n")
	for _, bp := range res.balance {
		w("| %s | %d | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %d |\n", bp.label(), bp.clients, bp.balancer, fmtRate(bp.RPS), bp.rangeCell(),
			fmtDur(bp.P50), fmtDur(bp.P90), fmtDur(bp.P99), fmtDur(bp.P999), fmtPct(bp.slowShare()), fmtShares(bp.shares), fmtRate(bp.slowRate), bp.brokerCell(), bp.Errors)
		if note := bp.note(); note != "" {
			*notes = append(*notes, note)
		}
	}
	for _, c := range balanceCases {
		var lines []string
		for _, t := range []pctl{p99, p90, p999} {
			for _, other := range balancers[1:] {
				if _, text, ok := balanceRatio(res, c, other, t); ok {
					lines = append(lines, fmt.Sprintf("- %s round-robin / %s: %s", t.name, other, text))
				}
			}
		}
		if rr, ok := balanceFind(res, c, revproxy.RoundRobin); ok {
			for _, other := range balancers[1:] {
				if o, ok := balanceFind(res, c, other); ok {
					lines = append(lines, fmt.Sprintf("- req/s %s / round-robin: %s / %s = %.2f×", other, fmtRate(o.RPS), fmtRate(rr.RPS), o.RPS/rr.RPS))
				}
			}
		}
		if len(lines) > 0 {
			w("\nServer 1: %s, %d clients:\n\n%s\n", c.label(), c.clients, strings.Join(lines, "\n"))
		}
	}
	return b.String()
}

// balanceTargets checks the goal, least-in-flight and p2c cut p99
// well below round robin's, in the headline setting (the first case, a
// server that does one message at a time), and gives the same check for
// the other settings of the same delay (a server that waits that long, as
// many at once as it is given), labelled as such.
func balanceTargets(res *results) []string {
	head := balanceCases[0]
	var out []string
	for _, c := range balanceCases {
		if c != head && c.delay != head.delay {
			continue
		}
		what := fmt.Sprintf("server 1 of %d: %s; %d clients", balanceServers, c.label(), c.clients)
		if c != head {
			what += "; not the headline setting, for comparison"
		}
		for _, other := range balancers[1:] {
			r, text, ok := balanceRatio(res, c, other, p99)
			if !ok {
				out = append(out, fmt.Sprintf("p99 round-robin / %s, %s (target ≥ %.0f×): n/a (not measured)", other, what, balanceGoal))
				continue
			}
			bp, _ := balanceFind(res, c, other)
			v := "**NOT met**"
			if r >= balanceGoal {
				v = "**met**"
			}
			if bp.Errors > 0 {
				v += fmt.Sprintf(" (with %d errors)", bp.Errors)
			}
			out = append(out, fmt.Sprintf("p99 round-robin / %s, %s: %s (target ≥ %.0f×): %s", other, what, text, balanceGoal, v))
		}
	}
	return out
}

// tickLabel writes a tick of the log scale, 1, 2 or 5 times a power of
// ten, with as many decimals as it needs: 0.05, 0.5, 5, 500.
func tickLabel(v float64) string {
	return strconv.FormatFloat(v, 'f', max(0, -int(math.Floor(math.Log10(v)+1e-9))), 64)
}

// balanceSVG draws p50, p90, p99 and p99.9 of each balancer in each case as
// bars on a log scale, with the slow server's delay marked over its case
// and the slow server's share under each group.
func balanceSVG(title, subtitle string, res *results) string {
	const (
		width, height = 1120, 520
		left, right   = 84, 940
		top, bottom   = 66, 400
		legendX       = 956
	)
	type bar struct {
		name  string
		color string
		get   func(balancePoint) time.Duration
	}
	bars := []bar{
		{"p50", "#b9d4f5", func(bp balancePoint) time.Duration { return bp.P50 }},
		{"p90", "#7fb2f0", func(bp balancePoint) time.Duration { return bp.P90 }},
		{"p99", "#1f6fd1", func(bp balancePoint) time.Duration { return bp.P99 }},
		{"p99.9", "#0b3d7a", func(bp balancePoint) time.Duration { return bp.P999 }},
	}
	ms := float64(time.Millisecond)
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, c := range balanceCases {
		lo, hi = min(lo, float64(c.delay)), max(hi, float64(c.delay))
	}
	for _, bp := range res.balance {
		for _, br := range bars {
			if v := float64(br.get(bp)); v > 0 {
				lo, hi = min(lo, v), max(hi, v)
			}
		}
	}
	yMin := math.Pow(10, math.Floor(math.Log10(lo/ms)))
	yMax := math.Pow(10, math.Ceil(math.Log10(hi/ms)))
	if yMax <= yMin {
		yMax = yMin * 10
	}
	yOf := func(v float64) float64 { // v in nanoseconds
		f := (math.Log10(v/ms) - math.Log10(yMin)) / (math.Log10(yMax) - math.Log10(yMin))
		return bottom - f*(bottom-top)
	}

	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="DejaVu Sans, Helvetica, Arial, sans-serif">`+"\n", width, height, width, height)
	fmt.Fprintf(&b, `<rect width="%d" height="%d" fill="#ffffff"/>`+"\n", width, height)
	fmt.Fprintf(&b, `<text x="%d" y="26" font-size="17" font-weight="bold" fill="#222">%s</text>`+"\n", left, esc(title))
	fmt.Fprintf(&b, `<text x="%d" y="44" font-size="12" fill="#666">%s</text>`+"\n", left, esc(subtitle))
	for dec := yMin; dec < yMax*1.001; dec *= 10 {
		for _, m := range []float64{1, 2, 5} {
			v := dec * m
			if v > yMax*1.001 {
				break
			}
			y := yOf(v * ms)
			stroke := "#e4e4e4"
			if m == 1 {
				stroke = "#c8c8c8"
			}
			fmt.Fprintf(&b, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="%s"/>`+"\n", left, y, right, y, stroke)
			fmt.Fprintf(&b, `<text x="%d" y="%.1f" font-size="12" fill="#444" text-anchor="end">%s</text>`+"\n", left-8, y+4, tickLabel(v))
		}
	}
	fmt.Fprintf(&b, `<polyline points="%d,%d %d,%d %d,%d" fill="none" stroke="#333" stroke-width="1.2"/>`+"\n", left, top, left, bottom, right, bottom)
	fmt.Fprintf(&b, `<text transform="translate(22 %d) rotate(-90)" font-size="13" fill="#222" text-anchor="middle">latency, ms (log scale)</text>`+"\n", (top+bottom)/2)

	// One group of bars per balancer, the cases side by side.
	caseW := float64(right-left) / float64(len(balanceCases))
	groupW := caseW / float64(len(balancers))
	barW := groupW / float64(len(bars)+2)
	for ci, c := range balanceCases {
		x0 := float64(left) + float64(ci)*caseW
		if ci > 0 {
			fmt.Fprintf(&b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#999" stroke-dasharray="2 3"/>`+"\n", x0, top, x0, bottom+96)
		}
		y := yOf(float64(c.delay))
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#d1352b" stroke-width="1.5" stroke-dasharray="6 4"/>`+"\n", x0, y, x0+caseW, y)
		fmt.Fprintf(&b, `<text x="%.1f" y="%d" font-size="12" font-weight="bold" fill="#222" text-anchor="middle">%s</text>`+"\n", x0+caseW/2, bottom+72, esc(c.label()))
		fmt.Fprintf(&b, `<text x="%.1f" y="%d" font-size="12" fill="#444" text-anchor="middle">server 1 of %d, %d clients</text>`+"\n", x0+caseW/2, bottom+90, balanceServers, c.clients)
		for gi, bal := range balancers {
			gx := x0 + float64(gi)*groupW
			cx := gx + groupW/2
			bp, ok := balanceFind(res, c, bal)
			fmt.Fprintf(&b, `<text x="%.1f" y="%d" font-size="12" fill="#222" text-anchor="middle">%s</text>`+"\n", cx, bottom+18, esc(bal.String()))
			if !ok {
				continue
			}
			fmt.Fprintf(&b, `<text x="%.1f" y="%d" font-size="11" fill="#666" text-anchor="middle">slow: %s</text>`+"\n", cx, bottom+34, esc(fmtPct(bp.slowShare())))
			fmt.Fprintf(&b, `<text x="%.1f" y="%d" font-size="11" fill="#666" text-anchor="middle">%s req/s</text>`+"\n", cx, bottom+48, esc(fmtRate(bp.RPS)))
			for j, br := range bars {
				v := br.get(bp)
				if v <= 0 {
					continue
				}
				bx := gx + barW*(float64(j)+1)
				by := yOf(float64(v))
				fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"><title>%s %s: %s</title></rect>`+"\n",
					bx, by, barW-1, float64(bottom)-by, br.color, esc(bal.String()), br.name, esc(fmtDur(v)))
			}
		}
	}
	ly := top + 8 + len(bars)*24
	fmt.Fprintf(&b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#d1352b" stroke-width="1.5" stroke-dasharray="6 4"/>`+"\n", legendX, ly, legendX+18, ly)
	fmt.Fprintf(&b, `<text x="%d" y="%d" font-size="12" fill="#222">server 1's time</text>`+"\n", legendX+26, ly+4)
	fmt.Fprintf(&b, `<text x="%d" y="%d" font-size="12" fill="#222">per message</text>`+"\n", legendX+26, ly+19)
	for j, br := range bars {
		ly := top + 8 + j*24
		fmt.Fprintf(&b, `<rect x="%d" y="%d" width="18" height="12" fill="%s"/>`+"\n", legendX, ly-6, br.color)
		fmt.Fprintf(&b, `<text x="%d" y="%d" font-size="13" fill="#222">%s</text>`+"\n", legendX+26, ly+5, br.name)
	}
	b.WriteString("</svg>\n")
	return b.String()
}
