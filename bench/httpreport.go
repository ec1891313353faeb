package main

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"
)

// runHTTP measures the HTTP systems of cfg.http at every point of
// cfg.httpConns × httpPayloads, in rounds as the main table is, then
// profiles the front door if -profile asks.
func runHTTP(ctx context.Context, cfg *config, res *results) error {
	if slices.ContainsFunc(cfg.http, func(name string) bool { return strings.HasPrefix(name, "httputil") }) {
		if _, err := buildPlain(ctx); err != nil {
			return err
		}
	}
	start := time.Now()
	res.http = runPoints(ctx, cfg, res, httpSystems, cfg.http, cfg.httpConns, httpPayloads)
	progress("http: the rounds took %s", time.Since(start).Round(time.Second))
	if cfg.profile != "" && ctx.Err() == nil {
		res.profiles = profileHTTP(ctx, cfg, res)
	}
	return nil
}

// An httpAim is one of the aims for the front door against another
// system, at every point.
type httpAim struct {
	of, than string
	// minRPS is the least req/s ratio of / than; strict asks for more
	// than it ("ahead of"); 0 for no aim, a comparison only.
	minRPS float64
	strict bool
	// maxP99 is the most p99 ratio of / than; 0 for no aim.
	maxP99 float64
	// note qualifies the comparison in the report, if it needs it.
	note string
}

// httpAims are the aims: ahead of the plain httputil.ReverseProxy,
// at least 0.7× HAProxy's throughput with p99 no worse than 2× HAProxy's;
// on the reverse path and, against what stands for each there, on the
// forward path.
var httpAims = []httpAim{
	{of: "revproxy-reverse", than: "httputil", minRPS: 1, strict: true},
	{of: "revproxy-reverse", than: "haproxy", minRPS: 0.7, maxP99: 2},
	{of: "revproxy-forward", than: "httputil-forward", minRPS: 1, strict: true},
	{of: "revproxy-forward", than: "haproxy-forward", minRPS: 0.7, maxP99: 2,
		note: "HAProxy is no forward proxy; `haproxy-forward` is the nearest it comes, a backend whose destination is set from each request's URL"},
	{of: "revproxy-reverse", than: "revproxy-reverse-baseline",
		note: "The same program built from this checkout and from the baseline (`-baseline`); under 1.00× for req/s, or over 1.00× for latency and CPU, this checkout is worse"},
}

func (a httpAim) rpsMet(r float64) bool {
	if a.strict {
		return r > a.minRPS
	}
	return r >= a.minRPS
}

func (a httpAim) rpsGoal() string {
	if a.strict {
		return fmt.Sprintf("> %.2f×", a.minRPS)
	}
	return fmt.Sprintf("≥ %.2f×", a.minRPS)
}

func metCell(ok bool) string {
	if ok {
		return "met"
	}
	return "**NOT met**"
}

// httpFind returns the HTTP point of system at clients and payload, if it
// answered.
func httpFind(res *results, system string, clients, payload int) (stat, bool) {
	if _, skipped := res.skipped[system]; skipped {
		return stat{}, false
	}
	for _, p := range res.http {
		if p.System == system && p.Clients == clients && p.Payload == payload {
			return p, p.RPS > 0 && p.P99 > 0
		}
	}
	return stat{}, false
}

func ratioCell(a, b float64) string {
	if a <= 0 || b <= 0 {
		return "–"
	}
	return fmt.Sprintf("%.2f×", a/b)
}

// versusTable compares a.of with a.than point by point, as a markdown
// table, with the aims marked; and returns the aim lines for the Aims
// section. Nothing when either did not run.
func versusTable(cfg *config, res *results, a httpAim) (table, aims []string) {
	var rpsMiss, p99Miss []string
	points := 0
	for _, n := range cfg.httpConns {
		for _, size := range httpPayloads {
			x, ok1 := httpFind(res, a.of, n, size)
			y, ok2 := httpFind(res, a.than, n, size)
			if !ok1 || !ok2 {
				continue
			}
			points++
			where := fmt.Sprintf("%d conns, %s", n, fmtSize(size))
			rps := x.RPS / y.RPS
			rpsCell := fmt.Sprintf("%s / %s = **%.2f×**", fmtRate(x.RPS), fmtRate(y.RPS), rps)
			if a.minRPS > 0 {
				rpsCell += " " + metCell(a.rpsMet(rps))
				if !a.rpsMet(rps) {
					rpsMiss = append(rpsMiss, fmt.Sprintf("%s: %.2f×", where, rps))
				}
			}
			p99 := float64(x.P99) / float64(y.P99)
			p99Cell := fmt.Sprintf("%s / %s = %.2f×", fmtDur(x.P99), fmtDur(y.P99), p99)
			if a.maxP99 > 0 {
				p99Cell = fmt.Sprintf("%s / %s = **%.2f×** %s", fmtDur(x.P99), fmtDur(y.P99), p99, metCell(p99 <= a.maxP99))
				if p99 > a.maxP99 {
					p99Miss = append(p99Miss, fmt.Sprintf("%s: %.2f×", where, p99))
				}
			}
			cpuCell := "?"
			if x.CPUOK && y.CPUOK {
				cpuCell = fmt.Sprintf("%.1f / %.1f = %s", x.Broker, y.Broker, ratioCell(x.Broker, y.Broker))
			}
			table = append(table, fmt.Sprintf("| %d | %s | %s | %s | %s / %s = %s | %s | %s |", n, fmtSize(size), rpsCell, pairedRange(x, y),
				fmtDur(x.P50), fmtDur(y.P50), ratioCell(float64(x.P50), float64(y.P50)), p99Cell, cpuCell))
		}
	}
	if points == 0 {
		return nil, nil
	}
	p99Head, rpsHead := "p99", ""
	if a.maxP99 > 0 {
		p99Head = fmt.Sprintf("p99 (aim ≤ %.2f×)", a.maxP99)
	}
	if a.minRPS > 0 {
		rpsHead = " (aim " + a.rpsGoal() + ")"
	}
	table = append([]string{
		fmt.Sprintf("| conns | body | req/s %s / %s%s | by round | p50 | %s | proxy CPU µs/req |", a.of, a.than, rpsHead, p99Head),
		"|--:|--:|--:|--:|--:|--:|--:|",
	}, table...)
	line := func(what string, miss []string) string {
		if len(miss) == 0 {
			return fmt.Sprintf("%s: **met** at all %d points", what, points)
		}
		return fmt.Sprintf("%s: **NOT met** at %d of %d points (%s)", what, len(miss), points, strings.Join(miss, "; "))
	}
	suffix := ""
	if a.note != "" {
		suffix = " (" + a.note + ")"
	}
	if a.minRPS > 0 {
		aims = append(aims, line(fmt.Sprintf("`%s` / `%s` req/s %s%s", a.of, a.than, a.rpsGoal(), suffix), rpsMiss))
	}
	if a.maxP99 > 0 {
		aims = append(aims, line(fmt.Sprintf("`%s` / `%s` p99 ≤ %.2f×%s", a.of, a.than, a.maxP99, suffix), p99Miss))
	}
	return table, aims
}

// httpMarkdown renders the HTTP benchmark's report.
func httpMarkdown(cfg *config, res *results) string {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	w("# The HTTP front door against HAProxy and httputil.ReverseProxy\n\n")
	w("- Date: %s\n", res.started.UTC().Format("2006-01-02 15:04 UTC"))
	w("- Machine: %d CPUs (%s), Linux %s, %s %s/%s, GOMAXPROCS %d\n",
		runtime.NumCPU(), cpuModel(), kernel(), runtime.Version(), runtime.GOOS, runtime.GOARCH, runtime.GOMAXPROCS(0))
	if len(res.versions) > 0 {
		w("- Other software: %s\n", strings.Join(res.versions, ", "))
	}
	if v := libraryVersion(cfg.testdata); v != "" {
		w("- Library: %s\n", v)
	}
	w("- Other load: processes outside the benchmark used %.0f%% of the machine's CPU time during the run (load average at the start: %s); points they disturbed are listed under Errors and notes\n", 100*res.others, res.loadavg)
	w("- Command: `%s`\n", command())
	w("- Run time: %s\n", res.elapsed.Round(time.Second))
	w("- Rounds: %d per point, each a %v warm-up then a %v measured window; tables give the median over the rounds and the lowest–highest req/s\n",
		cfg.repeat, cfg.warmup, cfg.duration)
	w("- Shape: each proxy runs as a process of its own on 127.0.0.1, as deployed. The load process (this benchmark) holds the 2 origin servers (Go `net/http`, answering `GET /SIZE` with a SIZE-byte body, `Content-Length` set) and the clients, the same for every system: " +
		"the revproxy Servers that announce the origins to the front door must live beside the origins anyway, and one Go runtime for load and origins leaves the second core to the proxy rather than to a third runtime; their CPU is counted apart from the proxy's (`load`).\n")
	w("- Method: closed loop. At every point (connections × body size) a round measures every system one after the other, each started afresh, in an order rotated by one each round, so that a slow phase of the machine hits every system alike and the rounds of two systems can be paired. "+
		"Each client is a goroutine with its own `http.Transport` (one connection: `MaxConnsPerHost` 1, keep-alive) that sends a GET, reads the whole answer and sends again; through a reverse proxy it asks the proxy, through a forward proxy it sends absolute-form requests alternating between the 2 origins. "+
		"Every client sends once before the clock starts (to connect), then a %v warm-up, then a %v window; requests answered within the window count, p50 and p99 are nearest-rank percentiles of their latencies. "+
		"An answer other than 200, or a body that is not the origin's byte for byte, counts as an error (warm-up included); so does a request unanswered %v after the window. "+
		"CPU µs/req is the CPU time (user+system) over the window per answered request: `proxy` is the proxy process's, from /proc/PID/stat in 10 ms ticks, `load` the load process's (clients and origins).\n",
		cfg.warmup, cfg.duration, endGrace)

	w("\n## Systems\n\n")
	for _, s := range httpSystems {
		if slices.Contains(cfg.http, s.name) {
			w("- `%s`: %s.\n", s.name, s.about)
		}
	}

	var notes []string
	w("\n## Results\n\n")
	w("| system | conns | body | req/s (median) | range | p50 | p99 | CPU µs/req all | proxy | load | errors |\n")
	w("|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n")
	for _, name := range cfg.http {
		if reason, ok := res.skipped[name]; ok {
			w("| %s | – | – | skipped: %s | | | | | | | |\n", name, oneLine(reason))
			notes = append(notes, fmt.Sprintf("`%s` did not run: %s", name, oneLine(reason)))
			continue
		}
		for _, p := range res.http {
			if p.System != name {
				continue
			}
			w("%s\n", p.row(p.System, fmt.Sprint(p.Clients)))
			if note := p.note(); note != "" {
				notes = append(notes, note)
			}
		}
	}

	var aims []string
	for _, a := range httpAims {
		table, lines := versusTable(cfg, res, a)
		if len(table) == 0 {
			if a.minRPS > 0 && (slices.Contains(cfg.http, a.of) || slices.Contains(cfg.http, a.than)) {
				aims = append(aims, fmt.Sprintf("`%s` / `%s`: n/a (%s)", a.of, a.than, whyNot(res, a)))
			}
			continue
		}
		w("\n## %s / %s\n\n", a.of, a.than)
		if a.note != "" {
			w("%s.\n\n", a.note)
		}
		w("Ratios of the medians; `by round` pairs the rounds (round k / round k, measured seconds apart) and gives the lowest and highest req/s ratio. `proxy CPU` is each proxy process's CPU time per request.\n\n")
		for _, l := range table {
			w("%s\n", l)
		}
		aims = append(aims, lines...)
	}

	w("\n## Aims\n\n")
	w("The issue's: ahead of the plain `httputil.ReverseProxy`, and at least 0.7× HAProxy's throughput with p99 no worse than 2× HAProxy's, at every point.\n\n")
	for _, a := range aims {
		w("- %s\n", a)
	}
	if len(res.profiles) > 0 {
		w("%s", profileSection(res))
	}
	w("\n## Errors and notes\n\n")
	if len(notes) == 0 {
		w("No errors: every answer was 200 with the origin's body.\n")
	}
	for _, n := range notes {
		w("- %s\n", n)
	}
	return b.String()
}

// whyNot says why an aim's systems could not be compared.
func whyNot(res *results, a httpAim) string {
	for _, name := range []string{a.of, a.than} {
		if reason, ok := res.skipped[name]; ok {
			return fmt.Sprintf("%s skipped: %s", name, oneLine(reason))
		}
	}
	return "not both measured"
}

// writeHTTPReports writes httpbench.md and httpbench.svg into cfg.out.
func writeHTTPReports(cfg *config, res *results, report string) error {
	md, svgPath := filepath.Join(cfg.out, "httpbench.md"), filepath.Join(cfg.out, "httpbench.svg")
	if err := os.WriteFile(md, []byte(report), 0o644); err != nil {
		return err
	}
	subtitle := fmt.Sprintf("%d CPUs, %s; each proxy in its own process; median of %d %s of %v",
		runtime.NumCPU(), res.started.UTC().Format("2006-01-02"), cfg.repeat, plural(cfg.repeat, "round"), cfg.duration)
	if cfg.repeat > 1 {
		subtitle += ", bars: lowest to highest"
	}
	svg := httpSVG("HTTP proxies on 127.0.0.1, closed loop, one connection per client", subtitle, cfg, res)
	if err := os.WriteFile(svgPath, []byte(svg), 0o644); err != nil {
		return err
	}
	progress("wrote %s and %s", md, svgPath)
	return nil
}

var httpStyle = map[string]string{
	"http-direct":               "#9a9a9a",
	"revproxy-reverse":          "#1f6fd1",
	"revproxy-reverse-baseline": "#0b3d7a",
	"haproxy":                   "#2a9d3f",
	"httputil":                  "#e07b1a",
	"revproxy-forward":          "#8fb9ec",
	"haproxy-forward":           "#98d3a5",
	"httputil-forward":          "#f2bd86",
}

// httpSVG draws, for every point (connections × body), one bar per system:
// the median req/s on a linear scale, with a whisker from the lowest to
// the highest round, and below it the median p99 on a log scale.
func httpSVG(title, subtitle string, cfg *config, res *results) string {
	const (
		width, height = 1100, 720
		left, right   = 84, 900
		legendX       = 918
	)
	type group struct{ clients, payload int }
	var groups []group
	for _, size := range httpPayloads {
		for _, n := range cfg.httpConns {
			groups = append(groups, group{n, size})
		}
	}
	var names []string
	for _, name := range cfg.http {
		if _, skipped := res.skipped[name]; !skipped {
			names = append(names, name)
		}
	}
	find := func(name string, g group) (stat, bool) { return httpFind(res, name, g.clients, g.payload) }

	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="DejaVu Sans, Helvetica, Arial, sans-serif">`+"\n", width, height, width, height)
	fmt.Fprintf(&b, `<rect width="%d" height="%d" fill="#ffffff"/>`+"\n", width, height)
	fmt.Fprintf(&b, `<text x="%d" y="26" font-size="17" font-weight="bold" fill="#222">%s</text>`+"\n", left, esc(title))
	fmt.Fprintf(&b, `<text x="%d" y="44" font-size="12" fill="#666">%s</text>`+"\n", left, esc(subtitle))

	groupW := float64(right-left) / float64(max(1, len(groups)))
	barW := groupW / float64(len(names)+2)
	barX := func(gi, si int) float64 { return float64(left) + float64(gi)*groupW + barW*(float64(si)+1) }

	// Panel 1: req/s, linear from 0.
	top, bottom := 70, 330
	hi := 0.0
	for _, name := range names {
		for _, g := range groups {
			if p, ok := find(name, g); ok {
				hi = math.Max(hi, math.Max(p.MaxRPS, p.RPS))
			}
		}
	}
	step := niceStep(hi / 5)
	yMax := step * math.Ceil(hi/step)
	if yMax <= 0 {
		yMax, step = 1, 0.2
	}
	yOf := func(v float64) float64 { return float64(bottom) - v/yMax*float64(bottom-top) }
	for v := 0.0; v <= yMax*1.0001; v += step {
		y := yOf(v)
		fmt.Fprintf(&b, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#e4e4e4"/>`+"\n", left, y, right, y)
		fmt.Fprintf(&b, `<text x="%d" y="%.1f" font-size="12" fill="#444" text-anchor="end">%s</text>`+"\n", left-8, y+4, shortCount(v))
	}
	fmt.Fprintf(&b, `<text transform="translate(22 %d) rotate(-90)" font-size="13" fill="#222" text-anchor="middle">requests per second</text>`+"\n", (top+bottom)/2)
	for gi, g := range groups {
		for si, name := range names {
			p, ok := find(name, g)
			if !ok {
				continue
			}
			x, y := barX(gi, si), yOf(p.RPS)
			fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"><title>%s, %d conns, %s: %s req/s</title></rect>`+"\n",
				x, y, barW-1, float64(bottom)-y, httpStyle[name], name, g.clients, fmtSize(g.payload), fmtRate(p.RPS))
			if len(p.Rounds) > 1 {
				cx := x + (barW-1)/2
				fmt.Fprintf(&b, `<path d="M%.1f,%.1f V%.1f M%.1f,%.1f h5 M%.1f,%.1f h5" stroke="#222" stroke-width="1" fill="none"/>`+"\n",
					cx, yOf(p.MinRPS), yOf(p.MaxRPS), cx-2.5, yOf(p.MinRPS), cx-2.5, yOf(p.MaxRPS))
			}
		}
	}
	fmt.Fprintf(&b, `<polyline points="%d,%d %d,%d %d,%d" fill="none" stroke="#333" stroke-width="1.2"/>`+"\n", left, top, left, bottom, right, bottom)

	// Panel 2: p99, log scale.
	top2, bottom2 := 380, 640
	lo, hi2 := math.Inf(1), math.Inf(-1)
	for _, name := range names {
		for _, g := range groups {
			if p, ok := find(name, g); ok {
				lo, hi2 = math.Min(lo, float64(p.P99)), math.Max(hi2, float64(p.P99))
			}
		}
	}
	ms := float64(time.Millisecond)
	if math.IsInf(lo, 1) {
		lo, hi2 = ms, 10*ms
	}
	lMin := math.Pow(10, math.Floor(math.Log10(lo/ms)))
	lMax := math.Pow(10, math.Ceil(math.Log10(hi2/ms)))
	if lMax <= lMin {
		lMax = lMin * 10
	}
	y2Of := func(v float64) float64 {
		f := (math.Log10(v/ms) - math.Log10(lMin)) / (math.Log10(lMax) - math.Log10(lMin))
		return float64(bottom2) - f*float64(bottom2-top2)
	}
	for dec := lMin; dec < lMax*1.001; dec *= 10 {
		for _, m := range []float64{1, 2, 5} {
			v := dec * m
			if v > lMax*1.001 {
				break
			}
			y := y2Of(v * ms)
			stroke := "#e4e4e4"
			if m == 1 {
				stroke = "#c8c8c8"
			}
			fmt.Fprintf(&b, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="%s"/>`+"\n", left, y, right, y, stroke)
			fmt.Fprintf(&b, `<text x="%d" y="%.1f" font-size="12" fill="#444" text-anchor="end">%s</text>`+"\n", left-8, y+4, tickLabel(v))
		}
	}
	fmt.Fprintf(&b, `<text transform="translate(22 %d) rotate(-90)" font-size="13" fill="#222" text-anchor="middle">p99 latency, ms (log scale)</text>`+"\n", (top2+bottom2)/2)
	for gi, g := range groups {
		for si, name := range names {
			p, ok := find(name, g)
			if !ok {
				continue
			}
			x, y := barX(gi, si), y2Of(float64(p.P99))
			fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"><title>%s, %d conns, %s: p99 %s</title></rect>`+"\n",
				x, y, barW-1, float64(bottom2)-y, httpStyle[name], name, g.clients, fmtSize(g.payload), esc(fmtDur(p.P99)))
		}
	}
	fmt.Fprintf(&b, `<polyline points="%d,%d %d,%d %d,%d" fill="none" stroke="#333" stroke-width="1.2"/>`+"\n", left, top2, left, bottom2, right, bottom2)

	// Group labels under each panel, separators, and the legend.
	for gi, g := range groups {
		x0 := float64(left) + float64(gi)*groupW
		if gi > 0 {
			fmt.Fprintf(&b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#bbb" stroke-dasharray="2 3"/>`+"\n", x0, top, x0, bottom2+40)
		}
		label := fmt.Sprintf("%d conns, %s body", g.clients, fmtSize(g.payload))
		for _, y := range []int{bottom + 18, bottom2 + 18} {
			fmt.Fprintf(&b, `<text x="%.1f" y="%d" font-size="12" fill="#222" text-anchor="middle">%s</text>`+"\n", x0+groupW/2, y, esc(label))
		}
	}
	for i, name := range names {
		ly := top + 8 + i*24
		fmt.Fprintf(&b, `<rect x="%d" y="%d" width="18" height="12" fill="%s"/>`+"\n", legendX, ly-6, httpStyle[name])
		fmt.Fprintf(&b, `<text x="%d" y="%d" font-size="13" fill="#222">%s</text>`+"\n", legendX+26, ly+5, esc(name))
	}
	b.WriteString("</svg>\n")
	return b.String()
}

// niceStep rounds v up to 1, 2 or 5 times a power of ten.
func niceStep(v float64) float64 {
	if v <= 0 {
		return 0
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= v {
			return m * p
		}
	}
	return 10 * p
}
