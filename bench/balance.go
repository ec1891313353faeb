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
	// delay is what the slow server waits before it computes the SHA1.
	delay time.Duration
	// clients is the number of closed-loop clients. 32 gives each server
	// 8 requests to hold on average: the in-flight counts that
	// least-in-flight and p2c go by then tell the slow server from the
	// others (with 1 client every server has nothing in flight at every
	// choice, and least-in-flight goes round as round robin does). It is
	// the main table's middle point, where the 2-core machine is busy
	// without queueing in the proxy dominating, as it does at 256.
	clients int
}

// balanceCases are the settings measured: the (a server 5 ms
// slow), then one 50 ms slow. A balancer that goes by messages in flight
// keeps about as many at the slow server as at each fast one, so each
// server's share of the messages goes as the inverse of its latency; the
// second case shows what happens when that puts the slow server under 1%.
var balanceCases = []balanceCase{
	{delay: 5 * time.Millisecond, clients: 32},
	{delay: 50 * time.Millisecond, clients: 32},
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

// slowHandler waits delay, then answers as h does. The wait is a timer,
// not work: the slow server is slow, not busy, and with its pool of 64
// handlers (more than the clients) nothing queues in it.
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
// proxy's table has them in order, the slow one first.
func startBalanced(ctx context.Context, b revproxy.Balancer, delay time.Duration) (*env, error) {
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
		h := revproxy.SHA1Handler
		if i == slowServer {
			h = slowHandler(delay, h)
		}
		s := &revproxy.Server{ID: strconv.Itoa(i + 1), Policy: policy, ProxyAddr: addr,
			Handler: countedHandler(&counts[i], h), Logger: slog.New(regs)}
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
func runBalance(ctx context.Context, cfg *config, res *results) {
	for _, c := range balanceCases {
		rounds := map[revproxy.Balancer][]point{}
		for r := range cfg.repeat {
			for _, b := range rotate(balancers, r) {
				if ctx.Err() != nil {
					return
				}
				progress("balance: server 1 waits %v, %d clients, %s, round %d of %d", c.delay, c.clients, b, r+1, cfg.repeat)
				var p point
				e, err := startBalanced(ctx, b, c.delay)
				if err != nil {
					p = point{Clients: c.clients, Payload: balancePayload, Errors: 1, FirstErr: "setup: " + err.Error()}
				} else {
					p = measure(ctx, cfg, e, c.clients, balancePayload)
					e.close()
				}
				p.System, p.Round = fmt.Sprintf("%s, server 1 waits %v", b, c.delay), r+1
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
		"Server 1 is slow: its handler waits (a timer, not work) before the SHA1; its pool of 64 handlers is larger than the client count, so nothing queues in it. Servers 2 to 4 answer at once. "+
		"Each client is a goroutine with its own connection and one request of %d B in flight (closed loop). "+
		"For each setting, %d %s, each running every balancer once in an order rotated by one each round, each a %v warm-up then a %v window; medians over the rounds. "+
		"`slow share` is the share of the window's messages server 1 was given, counted in its handler; `shares` gives servers 1 to 4.\n\n",
		balanceServers, policy, balancePayload, cfg.repeat, plural(cfg.repeat, "round"), cfg.warmup, cfg.duration)
	w("Round robin gives the slow server a quarter of the messages, so its delay shows from the 75th percentile up. " +
		"Least-in-flight and p2c go by the messages each server has in flight: they keep about as many at the slow server as at each fast one, so a server's share goes as the inverse of its latency as the proxy sees it (from forwarding to the answer, which on a busy machine includes the wait for a CPU). " +
		"For p99 to fall below the slow server's delay, its share must fall under 1%%, which, with three fast servers, takes a slow server more than 33 times slower than the fast ones are under this load.\n\n")
	w("| server 1 waits | clients | balancer | req/s (median) | range | p50 | p90 | p99 | p99.9 | slow share | shares | broker CPU µs/msg | errors |\n")
	w("|--:|--:|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n")
	for _, bp := range res.balance {
		w("| %v | %d | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %d |\n", bp.delay, bp.clients, bp.balancer, fmtRate(bp.RPS), bp.rangeCell(),
			fmtDur(bp.P50), fmtDur(bp.P90), fmtDur(bp.P99), fmtDur(bp.P999), fmtPct(bp.slowShare()), fmtShares(bp.shares), bp.brokerCell(), bp.Errors)
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
			w("\nServer 1 waits %v, %d clients:\n\n%s\n", c.delay, c.clients, strings.Join(lines, "\n"))
		}
	}
	return b.String()
}

// balanceTargets checks the setting (the first case) against its
// goal: least-in-flight and p2c cut p99 well below round robin's.
func balanceTargets(res *results) []string {
	c := balanceCases[0]
	var out []string
	for _, other := range balancers[1:] {
		r, text, ok := balanceRatio(res, c, other, p99)
		if !ok {
			out = append(out, fmt.Sprintf("p99 round-robin / %s, server 1 of %d waiting %v (target ≥ %.0f×): n/a (not measured)", other, balanceServers, c.delay, balanceGoal))
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
		out = append(out, fmt.Sprintf("p99 round-robin / %s, server 1 of %d waiting %v, %d clients: %s (target ≥ %.0f×): %s",
			other, balanceServers, c.delay, c.clients, text, balanceGoal, v))
	}
	return out
}

// balanceSVG draws p50, p90, p99 and p99.9 of each balancer in each case as
// bars on a log scale, with the slow server's delay marked over its case
// and the slow server's share under each group.
func balanceSVG(title, subtitle string, res *results) string {
	const (
		width, height = 860, 500
		left, right   = 84, 700
		top, bottom   = 66, 400
		legendX       = 716
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
			fmt.Fprintf(&b, `<text x="%d" y="%.1f" font-size="12" fill="#444" text-anchor="end">%s</text>`+"\n", left-8, y+4, trimZero(v))
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
			fmt.Fprintf(&b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#999" stroke-dasharray="2 3"/>`+"\n", x0, top, x0, bottom+70)
		}
		y := yOf(float64(c.delay))
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#d1352b" stroke-width="1.5" stroke-dasharray="6 4"/>`+"\n", x0, y, x0+caseW, y)
		fmt.Fprintf(&b, `<text x="%.1f" y="%d" font-size="13" font-weight="bold" fill="#222" text-anchor="middle">server 1 waits %v, %d clients</text>`+"\n", x0+caseW/2, bottom+72, c.delay, c.clients)
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
	fmt.Fprintf(&b, `<text x="%d" y="%d" font-size="12" fill="#222">server 1's delay</text>`+"\n", legendX+26, ly+4)
	for j, br := range bars {
		ly := top + 8 + j*24
		fmt.Fprintf(&b, `<rect x="%d" y="%d" width="18" height="12" fill="%s"/>`+"\n", legendX, ly-6, br.color)
		fmt.Fprintf(&b, `<text x="%d" y="%d" font-size="13" fill="#222">%s</text>`+"\n", legendX+26, ly+5, br.name)
	}
	b.WriteString("</svg>\n")
	return b.String()
}
