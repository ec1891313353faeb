// Command bench measures revproxy side by side with clients talking straight
// to the servers, with NATS request/reply and with the Python seed proxy, all
// on loopback, and writes a markdown report and a throughput chart; it
// compares the proxy's balancers with one slow server among four; and,
// with -systems http, the HTTP front door with HAProxy and a plain
// httputil.ReverseProxy.
//
//	go -C bench run . -out ../docs
//	go -C bench run . -systems http -out ../docs
//
// See README.md for the flags.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"
)

// config is what one run measures.
type config struct {
	duration  time.Duration // measured window per round of a point
	warmup    time.Duration // before each window, not counted
	repeat    int           // rounds per point
	quick     bool
	systems   []string // main-table systems, in report order
	scale     bool     // run the server-count table
	idle      bool     // run the idle-connection memory test
	balance   bool     // run the balancers with one slow server of four
	out       string
	testdata  string
	clients   []int
	payloads  []int
	servers   []int // server counts of the scale table
	idleConns int
	proxy     string   // the broker program of the revproxy systems: brokerChild or brokerRevproc
	baseline  string   // another checkout of the library, for revproxy-baseline; "" for none
	http      []string // HTTP systems (httpSystems), in report order
	httpConns []int    // client connections of the HTTP points
	profile   string   // directory for CPU profiles of the front door under load; "" for none
}

const (
	scaleClients = 32
	scalePayload = 64
)

func main() {
	fs := flag.NewFlagSet("bench", flag.ExitOnError)
	duration := fs.Duration("duration", 2*time.Second, "measured time per round of a point (a 300ms warm-up comes before each)")
	repeat := fs.Int("repeat", 3, "rounds per point; the report gives medians and the req/s range (-quick: 1)")
	quick := fs.Bool("quick", false, "fewer, shorter points, for a smoke test (-duration defaults to 300ms, -repeat to 1)")
	systems := fs.String("systems", strings.Join(defaultSystems(), ","), "comma-separated list of what to run")
	out := fs.String("out", "", "directory for bench.md and throughput.svg, balance.md and balance.svg when balance runs, httpbench.md and httpbench.svg when http runs (none: report on stdout only)")
	testdata := fs.String("testdata", filepath.Join("..", "testdata"), "directory of the Python seed proxy and servers")
	idleConns := fs.Int("idle-conns", 10000, "idle client connections for the memory test (-quick: 1000)")
	proxy := fs.String("proxy", brokerRevproc, "the program run as revproxy's proxy process: child (this binary, a Proxy with no logger) or revproc (examples/revproc -q, built from the checkout)")
	baseline := fs.String("baseline", "", "DIR, the root of another checkout of the library; adds the system revproxy-baseline, revproxy with that checkout's examples/revproc as the proxy process")
	profile := fs.String("profile", "", "DIR: after the rounds, look inside the brokers under load (system calls per message with perf stat; revproxy's proxy and the HTTP front door's CPU profiles, 5 s each, into DIR)")
	role := fs.String("role", "", "internal: run as a helper process")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: go -C bench run . [flags]\n\n")
		fs.VisitAll(func(f *flag.Flag) {
			if f.Name == "role" {
				return
			}
			fmt.Fprintf(fs.Output(), "  -%s\n\t%s (default %q)\n", f.Name, f.Usage, f.DefValue)
		})
	}
	fs.Parse(os.Args[1:])
	if fs.NArg() > 0 {
		fs.Usage()
		os.Exit(2)
	}
	switch *role {
	case "":
	case "proxy":
		os.Exit(runProxyChild())
	default:
		fmt.Fprintf(os.Stderr, "bench: unknown role %q\n", *role)
		os.Exit(2)
	}

	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	cfg := &config{
		duration:  *duration,
		warmup:    300 * time.Millisecond,
		repeat:    *repeat,
		quick:     *quick,
		out:       *out,
		testdata:  *testdata,
		clients:   []int{1, 32, 256},
		payloads:  []int{64, 4096},
		servers:   []int{1, 2, 100, 1000},
		idleConns: *idleConns,
		proxy:     *proxy,
		httpConns: httpClients,
		profile:   *profile,
	}
	if cfg.proxy != brokerChild && cfg.proxy != brokerRevproc {
		fmt.Fprintf(os.Stderr, "bench: -proxy must be %s or %s\n", brokerChild, brokerRevproc)
		os.Exit(2)
	}
	if *baseline != "" {
		dir, err := checkoutDir(*baseline)
		if err == nil && cfg.proxy != brokerRevproc {
			err = fmt.Errorf("-baseline compares two builds of examples/revproc; it needs -proxy %s", brokerRevproc)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			os.Exit(2)
		}
		cfg.baseline = dir
		if !set["systems"] {
			*systems += ",revproxy-baseline"
		}
	}
	if cfg.quick {
		cfg.clients = []int{1, 32}
		cfg.httpConns = []int{32}
		cfg.servers = []int{2, 100}
		cfg.warmup = 100 * time.Millisecond
		if !set["duration"] {
			cfg.duration = 300 * time.Millisecond
		}
		if !set["idle-conns"] {
			cfg.idleConns = 1000
		}
		if !set["repeat"] {
			cfg.repeat = 1
		}
	}
	if err := cfg.setSystems(*systems); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		fs.Usage()
		os.Exit(2)
	}
	if cfg.duration <= 0 || cfg.idleConns <= 0 || cfg.repeat <= 0 {
		fmt.Fprintln(os.Stderr, "bench: -duration, -repeat and -idle-conns must be positive")
		os.Exit(2)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, cfg); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		stop()
		os.Exit(1)
	}
}

// defaultSystems is what runs when -systems is not given: every system but
// the ones that need -baseline, then the scale table and the idle test.
func defaultSystems() []string {
	var names []string
	for _, s := range allSystems {
		if !s.baseline && !s.extra {
			names = append(names, s.name)
		}
	}
	return append(names, "scale", "idle", "balance")
}

// knownSystems is every name -systems takes.
func knownSystems() []string {
	var names []string
	for _, s := range allSystems {
		names = append(names, s.name)
	}
	for _, s := range httpSystems {
		names = append(names, s.name)
	}
	return append(names, "scale", "idle", "balance", "http")
}

// checkoutDir makes dir absolute and checks that it holds a checkout of
// the library with examples/revproc.
func checkoutDir(dir string) (string, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", fmt.Errorf("-baseline %s: %w", dir, err)
	}
	for _, f := range []string{"go.mod", filepath.Join("examples", "revproc", "main.go")} {
		if _, err := os.Stat(filepath.Join(abs, f)); err != nil {
			return "", fmt.Errorf("-baseline %s is not a checkout of the library: %w", dir, err)
		}
	}
	return abs, nil
}

func (cfg *config) setSystems(list string) error {
	known := knownSystems()
	for name := range strings.SplitSeq(list, ",") {
		name = strings.TrimSpace(name)
		switch {
		case name == "":
		case name == "scale":
			cfg.scale = true
		case name == "idle":
			cfg.idle = true
		case name == "balance":
			cfg.balance = true
		case name == "http":
			for _, s := range httpSystems {
				if (!s.baseline || cfg.baseline != "") && !slices.Contains(cfg.http, s.name) {
					cfg.http = append(cfg.http, s.name)
				}
			}
		case slices.ContainsFunc(httpSystems, func(s system) bool { return s.name == name }):
			if s, _ := httpSystemNamed(name); s.baseline && cfg.baseline == "" {
				return fmt.Errorf("%s needs -baseline DIR", name)
			}
			if !slices.Contains(cfg.http, name) {
				cfg.http = append(cfg.http, name)
			}
		case systemNamed(name).baseline && cfg.baseline == "":
			return fmt.Errorf("%s needs -baseline DIR", name)
		case slices.Contains(known, name):
			if !slices.Contains(cfg.systems, name) {
				cfg.systems = append(cfg.systems, name)
			}
		default:
			return fmt.Errorf("unknown system %q (known: %s)", name, strings.Join(known, ", "))
		}
	}
	if len(cfg.systems) == 0 && !cfg.scale && !cfg.idle && !cfg.balance && len(cfg.http) == 0 {
		return errors.New("-systems names nothing to run")
	}
	return nil
}

// results is everything one run measured.
type results struct {
	started  time.Time
	elapsed  time.Duration
	points   []stat            // main table, by clients then payload
	skipped  map[string]string // system → why it did not run
	versions []string
	scale    []scalePoint // by server count
	scaleErr string
	idle     *idleResult
	idleErr  string
	balance  []balancePoint // by balancer, in report order
	http     []stat         // HTTP systems, by clients then payload
	profiles []httpProfile  // the front door's CPU profiles (-profile)
	looks    []msgLook      // inside the message brokers (-profile)
	others   float64        // share of the machine other processes used
	loadavg  string         // /proc/loadavg at the start
}

type scalePoint struct {
	servers int
	stat
}

func run(ctx context.Context, cfg *config) error {
	res := &results{started: time.Now(), skipped: map[string]string{}}
	goroutines := runtime.NumGoroutine()
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		f := strings.Fields(string(b))
		res.loadavg = strings.Join(f[:min(3, len(f))], " ")
	}
	busy0, busyErr0 := machineBusy()
	ours0 := ownCPU()
	if _, err := raiseNoFile(); err != nil {
		return fmt.Errorf("raise the open-file limit: %w", err)
	}
	defer removeRevproc()
	defer removePlain()
	if cfg.balance || slices.ContainsFunc(cfg.http, func(name string) bool { return strings.HasPrefix(name, "revproxy") }) ||
		cfg.proxy == brokerRevproc && (cfg.scale || slices.ContainsFunc(cfg.systems, func(name string) bool {
			return name != "revproxy-inproc" && strings.HasPrefix(name, "revproxy")
		})) {
		if _, err := buildRevproc(ctx, ""); err != nil {
			return fmt.Errorf("%w (-proxy child runs the proxy process without building it)", err)
		}
	}
	if cfg.baseline != "" && (slices.Contains(cfg.systems, "revproxy-baseline") || slices.Contains(cfg.http, "revproxy-reverse-baseline")) {
		if _, err := buildRevproc(ctx, cfg.baseline); err != nil {
			return fmt.Errorf("-baseline: %w", err)
		}
	}
	runMain(ctx, cfg, res)
	if cfg.scale && ctx.Err() == nil {
		runScale(ctx, cfg, res)
	}
	if cfg.profile != "" && slices.Contains(cfg.systems, "revproxy") && ctx.Err() == nil {
		res.looks = lookInside(ctx, cfg)
	}

	if cfg.idle && ctx.Err() == nil {
		progress("idle: %d connections", cfg.idleConns)
		r, err := idleMemory(ctx, cfg.idleConns)
		res.idle = &r
		if err != nil {
			res.idleErr = err.Error()
		}
		progress("idle: done")
	}
	if cfg.balance && ctx.Err() == nil {
		runBalance(ctx, cfg, res)
	}
	if len(cfg.http) > 0 && ctx.Err() == nil {
		if err := runHTTP(ctx, cfg, res); err != nil {
			return err
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	res.elapsed = time.Since(res.started)
	if busy1, err := machineBusy(); err == nil && busyErr0 == nil {
		res.others = othersShare(busy1-busy0, ownCPU()-ours0, res.elapsed)
	}

	var report, httpReport string
	if cfg.measuresMain() || cfg.balance {
		report = markdown(cfg, res)
	}
	if len(cfg.http) > 0 {
		httpReport = httpMarkdown(cfg, res)
	}
	fmt.Print(report + httpReport)
	if cfg.out != "" {
		if err := os.MkdirAll(cfg.out, 0o755); err != nil {
			return err
		}
		if err := writeReports(cfg, res, report); err != nil {
			return err
		}
		if httpReport != "" {
			if err := writeHTTPReports(cfg, res, httpReport); err != nil {
				return err
			}
		}
	}
	// Everything started has been stopped; say so if a goroutine lingers.
	time.Sleep(200 * time.Millisecond)
	if n := runtime.NumGoroutine(); n > goroutines+2 {
		progress("warning: %d goroutines still running (%d at start)", n, goroutines)
	}
	return nil
}

// measuresMain reports whether the run measures more than the balance
// scenario: the main table, the scale table or the idle test.
func (cfg *config) measuresMain() bool {
	return len(cfg.systems) > 0 || cfg.scale || cfg.idle
}

// writeReports writes bench.md (the whole report) and throughput.svg into
// cfg.out when the run measured more than the balance scenario, and
// balance.md (the report of the balance scenario alone) and balance.svg
// when it measured that: so the balance scenario run alone leaves the
// main report as it was.
func writeReports(cfg *config, res *results, report string) error {
	if cfg.measuresMain() {
		if err := os.WriteFile(filepath.Join(cfg.out, "bench.md"), []byte(report), 0o644); err != nil {
			return err
		}
		subtitle := fmt.Sprintf("%d CPUs, %s; brokers in own processes; median of %d %s of %v",
			runtime.NumCPU(), res.started.UTC().Format("2006-01-02"), cfg.repeat, plural(cfg.repeat, "round"), cfg.duration)
		if cfg.repeat > 1 {
			subtitle += ", bars: lowest to highest"
		}
		svg := throughputSVG(fmt.Sprintf("Throughput, %d B payload, closed loop on 127.0.0.1", scalePayload), subtitle, cfg.clients, chartSeries(cfg, res))
		if err := os.WriteFile(filepath.Join(cfg.out, "throughput.svg"), []byte(svg), 0o644); err != nil {
			return err
		}
		progress("wrote %s and %s", filepath.Join(cfg.out, "bench.md"), filepath.Join(cfg.out, "throughput.svg"))
	}
	if cfg.balance {
		only := &config{duration: cfg.duration, warmup: cfg.warmup, repeat: cfg.repeat, quick: cfg.quick,
			balance: true, out: cfg.out, testdata: cfg.testdata, proxy: cfg.proxy}
		if err := os.WriteFile(filepath.Join(cfg.out, "balance.md"), []byte(markdown(only, res)), 0o644); err != nil {
			return err
		}
		subtitle := fmt.Sprintf("%d CPUs, %s; proxy in its own process; %d servers, server 1 slow; median of %d %s of %v",
			runtime.NumCPU(), res.started.UTC().Format("2006-01-02"), balanceServers, cfg.repeat, plural(cfg.repeat, "round"), cfg.duration)
		svg := balanceSVG("Latency by balancer, one slow server among four, closed loop", subtitle, res)
		if err := os.WriteFile(filepath.Join(cfg.out, "balance.svg"), []byte(svg), 0o644); err != nil {
			return err
		}
		progress("wrote %s and %s", filepath.Join(cfg.out, "balance.md"), filepath.Join(cfg.out, "balance.svg"))
	}
	return nil
}

// runMain measures the main table. For each clients × payload point it
// runs cfg.repeat rounds; a round measures every system once, one after the
// other, each started afresh, in an order rotated by one each round. A slow
// phase of the machine so hits every system alike, and the rounds of one
// point are minutes apart at most.
func runMain(ctx context.Context, cfg *config, res *results) {
	res.points = runPoints(ctx, cfg, res, allSystems, cfg.systems, cfg.clients, cfg.payloads)
}

// runPoints measures the systems of all that names lists at every clients
// × payloads point, in rounds as runMain says, and sums each point up.
// Systems that cannot run here are noted in res.skipped, and the outside
// software's versions in res.versions.
func runPoints(ctx context.Context, cfg *config, res *results, all []system, names []string, clients, payloads []int) []stat {
	var active []system
	for _, sys := range all {
		if slices.Contains(names, sys.name) {
			active = append(active, sys)
		}
	}
	var points []stat
	for _, n := range clients {
		for _, size := range payloads {
			rounds := map[string][]point{}
			for r := range cfg.repeat {
				for _, sys := range rotate(active, r) {
					if ctx.Err() != nil {
						return points
					}
					if _, skipped := res.skipped[sys.name]; skipped || sys.unsupported[size] != "" || !sys.runsAt(n) {
						continue
					}
					progress("%s: %d clients, %s, round %d of %d", sys.name, n, fmtSize(size), r+1, cfg.repeat)
					e, err := sys.start(ctx, cfg)
					if skip := (*skipError)(nil); errors.As(err, &skip) {
						res.skipped[sys.name] = err.Error()
						progress("%s: skipped: %v", sys.name, err)
						continue
					}
					var p point
					if err != nil {
						p = point{Clients: n, Payload: size, Errors: 1, FirstErr: "setup: " + err.Error()}
					} else {
						if e.version != "" && !slices.Contains(res.versions, e.version) {
							res.versions = append(res.versions, e.version)
						}
						p = measure(ctx, cfg, e, n, size)
						e.close()
					}
					p.System, p.Round = sys.name, r+1
					rounds[sys.name] = append(rounds[sys.name], p)
					progress("%s", p.summary())
				}
			}
			for _, sys := range active {
				switch {
				case !sys.runsAt(n):
				case sys.unsupported[size] != "":
					points = append(points, stat{System: sys.name, Clients: n, Payload: size, NA: sys.unsupported[size]})
				case len(rounds[sys.name]) > 0:
					points = append(points, summarize(rounds[sys.name]))
				}
			}
		}
	}
	return points
}

// runScale measures the server-count table, in rounds like runMain: each
// round runs every server count once, in an order rotated by one each
// round. The Proxy runs in a process of its own, the Servers and clients
// here, as for the revproxy system. A server count that fails to start is
// left out of later rounds.
func runScale(ctx context.Context, cfg *config, res *results) {
	rounds := map[int][]point{}
	failed := map[int]bool{}
	for r := range cfg.repeat {
		for _, n := range rotate(cfg.servers, r) {
			if ctx.Err() != nil {
				return
			}
			if failed[n] {
				continue
			}
			progress("scale: %d servers, round %d of %d", n, r+1, cfg.repeat)
			e, err := startRevproxy(ctx, cfg, cfg.proxy, false, n)
			if err != nil {
				failed[n] = true
				if res.scaleErr == "" {
					res.scaleErr = fmt.Sprintf("%d servers, round %d: %v", n, r+1, err)
				}
				progress("scale: %d servers: %v", n, err)
				continue
			}
			p := measure(ctx, cfg, e, scaleClients, scalePayload)
			e.close()
			p.System, p.Round = fmt.Sprintf("revproxy, %d servers", n), r+1
			rounds[n] = append(rounds[n], p)
			progress("%s", p.summary())
		}
	}
	for _, n := range cfg.servers {
		if len(rounds[n]) > 0 {
			res.scale = append(res.scale, scalePoint{n, summarize(rounds[n])})
		}
	}
}

// measure opens n clients on e and runs one round of one point.
func measure(ctx context.Context, cfg *config, e *env, n, size int) point {
	senders := make([]sendFunc, 0, n)
	var closers []func()
	defer func() {
		var wg sync.WaitGroup
		for _, c := range closers {
			wg.Go(c)
		}
		wg.Wait()
	}()
	for i := range n {
		send, closeFn, err := e.connect(i, n)
		if err != nil {
			return point{Clients: n, Payload: size, Errors: 1, FirstErr: "connect: " + err.Error()}
		}
		senders = append(senders, send)
		closers = append(closers, closeFn)
	}
	return closedLoop(ctx, senders, size, cfg.warmup, cfg.duration, &cpuMeter{broker: e.broker, pids: e.pids}, e.served)
}

func progress(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "bench: "+format+"\n", args...)
}

func (p point) summary() string {
	s := fmt.Sprintf("%s %d clients %d B round %d: %.0f req/s p50 %s p99 %s cpu %.1f µs/msg (broker %.1f) errors %d other load %.0f%%",
		p.System, p.Clients, p.Payload, p.Round, p.RPS(), fmtDur(p.P50), fmtDur(p.P99), p.CPUPerMsg(), p.BrokerPerMsg(), p.Errors, 100*p.Others)
	if p.FirstErr != "" {
		s += " (first: " + p.FirstErr + ")"
	}
	return s
}

// chartSeries picks the 64 B points of each system that ran at every
// client count (not the shared-connection ones).
func chartSeries(cfg *config, res *results) []series {
	var out []series
	for _, name := range cfg.systems {
		if _, skipped := res.skipped[name]; skipped || systemNamed(name).clients != nil {
			continue
		}
		s := series{name: name}
		for _, p := range res.points {
			if p.System == name && p.Payload == scalePayload {
				s.points = append(s.points, p)
			}
		}
		out = append(out, s)
	}
	return out
}

func systemNamed(name string) system {
	for _, s := range allSystems {
		if s.name == name {
			return s
		}
	}
	return system{}
}

// markdown renders the report.
func markdown(cfg *config, res *results) string {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }

	if cfg.measuresMain() {
		w("# revproxy benchmark\n\n")
	} else {
		w("# revproxy benchmark: the balancers\n\n")
	}
	w("- Date: %s\n", res.started.UTC().Format("2006-01-02 15:04 UTC"))
	w("- Machine: %d CPUs (%s), Linux %s, %s %s/%s, GOMAXPROCS %d\n",
		runtime.NumCPU(), cpuModel(), kernel(), runtime.Version(), runtime.GOOS, runtime.GOARCH, runtime.GOMAXPROCS(0))
	if len(res.versions) > 0 {
		w("- Other software: %s\n", strings.Join(res.versions, ", "))
	}
	if v := libraryVersion(cfg.testdata); v != "" {
		w("- Library: %s\n", v)
	}
	if cfg.baseline != "" {
		v := libraryVersion(cfg.baseline)
		if v == "" {
			v = "not a git work tree"
		}
		w("- Baseline (`revproxy-baseline`): `examples/revproc -q` built from %s, %s\n", cfg.baseline, v)
	}
	w("- Other load: processes outside the benchmark used %.0f%% of the machine's CPU time during the run (load average at the start: %s)\n", 100*res.others, res.loadavg)
	w("- Command: `%s`\n", command())
	w("- Run time: %s\n", res.elapsed.Round(time.Second))
	w("- Rounds: %d per point, each a %v warm-up then a %v measured window; tables give the median over the rounds and the lowest–highest req/s\n",
		cfg.repeat, cfg.warmup, cfg.duration)
	if cfg.measuresMain() {
		mainMethod(&b, cfg)
	} else {
		w("- Method: closed loop on 127.0.0.1; each client is a goroutine with its own connection that sends a request, waits for the answer and sends again. Every client sends once before the clock starts (to connect), then a %v warm-up, then a %v measured window; requests answered within the window count, and p50, p90, p99 and p99.9 are nearest-rank percentiles of their latencies. A request still unanswered %v after the window is cancelled and counted as an error. Every answer's SHA1 is checked and any failure or mismatch counts as an error (warm-up included). CPU times of the proxy process come from /proc/PID/stat, in 10 ms ticks.\n",
			cfg.warmup, cfg.duration, endGrace)
	}

	var notes []string
	if len(cfg.systems) > 0 {
		w("## Systems\n\n")
		for _, s := range allSystems {
			if slices.Contains(cfg.systems, s.name) {
				w("- `%s`: %s.\n", s.name, s.about)
			}
		}
		w("\n## Results\n\n")
		mainTable(&b, cfg, res, &notes)
	}
	if cfg.scale {
		w("\n## Servers on one policy\n\n")
		w("`revproxy` with %d clients and %d B payloads while 1 to %d Servers (each with its own loopback listener, in the load process) are registered on %s; the Proxy runs in a process of its own, as for `revproxy`.\n\n",
			scaleClients, scalePayload, cfg.servers[len(cfg.servers)-1], policy)
		w("| servers | req/s (median) | range | p50 | p99 | CPU µs/msg all | broker | load | errors |\n")
		w("|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n")
		for _, sp := range res.scale {
			w("| %d | %s | %s | %s | %s | %s | %s | %s | %d |\n", sp.servers, fmtRate(sp.RPS), sp.rangeCell(), fmtDur(sp.P50), fmtDur(sp.P99), sp.cpuCell(), sp.brokerCell(), sp.loadCell(), sp.Errors)
			if note := sp.note(); note != "" {
				notes = append(notes, note)
			}
		}
		if res.scaleErr != "" {
			w("\nNot completed: %s\n", oneLine(res.scaleErr))
			notes = append(notes, "scale table: "+oneLine(res.scaleErr))
		}
	}

	if cfg.idle {
		w("\n## Idle connections\n\n")
		w("%s\n", idleLine(res.idle, res.idleErr))
		if r := res.idle; r != nil && r.Errors > 0 {
			notes = append(notes, fmt.Sprintf("idle test: %d of %d clients did not get the expected no_server answer; first: %s", r.Errors, r.Conns, oneLine(r.FirstErr)))
		}
		if res.idleErr != "" {
			notes = append(notes, "idle test: "+oneLine(res.idleErr))
		}
	}

	if cfg.balance {
		w("%s", balanceSection(cfg, res, &notes))
	}

	if lines := versusBaseline(cfg, res); len(lines) > 0 {
		w("\n## revproxy / revproxy-baseline\n\n")
		w("The same program, `examples/revproc -q`, built from this checkout (`revproxy`) and from the baseline (`revproxy-baseline`), each in a process of its own, with the same load process, measured in the same rounds. " +
			"Ratios of the medians; under 1.00× for req/s, or over 1.00× for latency and CPU, the current proxy is worse. " +
			"`by round` pairs the rounds (revproxy round k / revproxy-baseline round k, measured seconds apart) and gives the lowest and highest of those req/s ratios, which shows how far the rounds scatter.\n\n")
		for _, l := range lines {
			w("%s\n", l)
		}
	}
	if lines := versus(cfg, res, "revproxy-scraped", "revproxy"); len(lines) > 0 {
		w("\n## revproxy-scraped / revproxy\n\n")
		w("What watching the proxy costs: the same proxy process, once with `-admin` and `/metrics` fetched every %v by the load process during the whole measurement, once without, measured in the same rounds. "+
			"Ratios of the medians; under 1.00× for req/s the scraped proxy is slower. `by round` pairs the rounds and gives the lowest and highest of those req/s ratios.\n\n", scrapeEvery)
		for _, l := range lines {
			w("%s\n", l)
		}
	}
	if lines := versusNATS(cfg, res); len(lines) > 0 {
		w("\n## revproxy / nats\n\n")
		w("Both brokers in a process of their own, the same load process. Ratios of the medians; under 1.00× for req/s, or over 1.00× for latency and CPU, revproxy is worse.\n\n")
		for _, l := range lines {
			w("%s\n", l)
		}
	}
	w("\n## Targets\n\n")
	for _, t := range targets(cfg, res) {
		w("- %s\n", t)
	}
	if len(res.looks) > 0 {
		w("%s", lookSection(res.looks))
	}
	w("\n## Errors and notes\n\n")
	if len(notes) == 0 {
		w("No errors: every answer arrived with the right SHA1.\n")
	}
	for _, n := range notes {
		w("- %s\n", n)
	}
	return b.String()
}

// mainMethod writes the header lines that describe the main table's shape
// and method.
func mainMethod(b *strings.Builder, cfg *config) {
	w := func(format string, args ...any) { fmt.Fprintf(b, format, args...) }
	w("- Shape: each broker (revproxy's Proxy, nats-server, the Python seed proxy) runs as a process of its own, as deployed; this benchmark's process, the load process, holds the 2 servers (revproxy Servers, NATS responders) and the clients, the same for every system. Only `revproxy-inproc`, labelled, runs its Proxy inside the load process. revproxy's proxy process: %s.\n", proxyProgram(cfg))
	w("- Method: closed loop on 127.0.0.1. Every point (system × clients × payload, and each server count of the scale table) is measured in %d %s. "+
		"A round measures every system at the same clients and payload one after the other, each started afresh, in an order rotated by one each round; "+
		"so a slow phase of the machine hits every system alike, and the rounds of one system can be paired with the same rounds of another. "+
		"req/s, p50, p99 and CPU µs/msg are each the median of the rounds' values (p50, p99 and CPU over the rounds that answered); `range` is the lowest and highest req/s of the rounds; errors are summed over all rounds. "+
		"Each client is a goroutine with its own connection that sends a request, waits for the answer and sends again. Every client sends once before the clock starts (to connect), then a %v warm-up, then a %v measured window; requests answered within the window count. A request still unanswered %v after the window (or a first request unanswered after %v) is cancelled and counted as an error. Payloads are printable ASCII; every answer's SHA1 is checked and any failure or mismatch counts as an error (warm-up included). CPU µs/msg is the CPU time (user+system) of every process taking part over the window, divided by the requests; `broker` is the part used by the broker process (revproxy's proxy process, nats-server, the Python proxy), `load` the rest: the load process and, for seed, the Python servers. CPU times of other processes come from /proc/PID/stat, in 10 ms ticks.\n\n",
		cfg.repeat, plural(cfg.repeat, "round"), cfg.warmup, cfg.duration, endGrace, primeTimeout)
}

// mainTable renders the main table; it appends its notes to notes.
func mainTable(b *strings.Builder, cfg *config, res *results, notes *[]string) {
	w := func(format string, args ...any) { fmt.Fprintf(b, format, args...) }
	w("CPU µs/msg: `all` processes taking part, of which the `broker` process (– when there is none) and the rest (`load`). Rows marked \"on 1 conn\" are %d client goroutines sharing one connection.\n\n", sharedClients)
	w("| system | clients | payload | req/s (median) | range | p50 | p99 | CPU µs/msg all | broker | load | errors |\n")
	w("|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n")
	for _, name := range cfg.systems {
		if reason, ok := res.skipped[name]; ok {
			w("| %s | – | – | skipped: %s | | | | | |\n", name, oneLine(reason))
			*notes = append(*notes, fmt.Sprintf("`%s` did not run: %s", name, oneLine(reason)))
			continue
		}
		for _, p := range res.points {
			if p.System != name {
				continue
			}
			clients := fmt.Sprint(p.Clients)
			if systemNamed(name).clients != nil {
				clients += " on 1 conn"
			}
			w("%s\n", p.row(p.System, clients))
			if note := p.note(); note != "" {
				*notes = append(*notes, note)
			}
		}
	}
}

// othersNoted is the share of the machine used by other processes above
// which a point is noted as disturbed.
const othersNoted = 0.05

// ownCPU is the CPU time of this process and of its children that ended.
func ownCPU() time.Duration {
	var total time.Duration
	for _, who := range []int{syscall.RUSAGE_SELF, syscall.RUSAGE_CHILDREN} {
		var ru syscall.Rusage
		if syscall.Getrusage(who, &ru) == nil {
			total += time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
		}
	}
	return total
}

func idleLine(r *idleResult, errText string) string {
	if r == nil || r.RSSAfter == 0 {
		return "Not measured: " + oneLine(errText)
	}
	return fmt.Sprintf("A Proxy in a child process, %d client connections established and idle (%d answered as expected): "+
		"VmRSS %s → %s, **%s per connection**; Go runtime memory in use after a GC (HeapInuse+StackInuse+MSpanInuse+MCacheInuse) %s → %s, **%s per connection**; "+
		"goroutines %d → %d (%.2f per connection).",
		r.Conns, r.Connected,
		fmtBytes(float64(r.RSSBefore)), fmtBytes(float64(r.RSSAfter)), fmtBytes(r.perConn(r.RSSBefore, r.RSSAfter)),
		fmtBytes(float64(r.GoBefore)), fmtBytes(float64(r.GoAfter)), fmtBytes(r.perConn(r.GoBefore, r.GoAfter)),
		r.GorBefore, r.GorAfter, r.perConn(r.GorBefore, r.GorAfter))
}

// targets checks the figures against the project's goals.
func targets(cfg *config, res *results) []string {
	get := func(system string, clients, payload int) (stat, string) {
		if reason, ok := res.skipped[system]; ok {
			return stat{}, fmt.Sprintf("%s skipped: %s", system, oneLine(reason))
		}
		for _, p := range res.points {
			if p.System == system && p.Clients == clients && p.Payload == payload {
				if p.NA != "" {
					return p, fmt.Sprintf("%s: %s", system, p.NA)
				}
				if p.RPS <= 0 || p.P50 <= 0 {
					return p, fmt.Sprintf("%s answered no request in most rounds", system)
				}
				return p, ""
			}
		}
		return stat{}, fmt.Sprintf("%s at %d clients, %d B not measured", system, clients, payload)
	}
	verdict := func(ok bool, pts ...stat) string {
		s := "**NOT met**"
		if ok {
			s = "**met**"
		}
		errs := 0
		for _, p := range pts {
			errs += p.Errors
		}
		if errs > 0 {
			s += fmt.Sprintf(" (with %d errors in these points)", errs)
		}
		return s
	}
	var out []string
	at := fmt.Sprintf("%d clients, %d B", scaleClients, scalePayload)
	of := fmt.Sprintf("medians of %d %s", cfg.repeat, plural(cfg.repeat, "round"))

	if len(cfg.systems) > 0 {
		out = append(out, mainTargets(cfg, res, get, verdict)...)
	}
	if cfg.scale {
		var two, most *scalePoint
		for i := range res.scale {
			sp := &res.scale[i]
			if sp.servers == 2 {
				two = sp
			}
			if most == nil || sp.servers > most.servers {
				most = sp
			}
		}
		switch {
		case two == nil || most == nil || most.servers <= 2 || two.RPS <= 0:
			why := "the scale table lacks the points"
			if res.scaleErr != "" {
				why = oneLine(res.scaleErr)
			}
			out = append(out, fmt.Sprintf("many servers vs 2 servers throughput (target within 10%%): n/a (%s)", why))
		default:
			r := most.RPS/two.RPS - 1
			out = append(out, fmt.Sprintf("%d servers vs 2 servers throughput at %s, %s: %s vs %s req/s = %+.1f%% (target within 10%%): %s",
				most.servers, at, of, fmtRate(most.RPS), fmtRate(two.RPS), 100*r, verdict(math.Abs(r) <= 0.10, most.stat, two.stat)))
		}
	}

	if cfg.idle {
		r := res.idle
		if r == nil || r.RSSAfter == 0 {
			out = append(out, fmt.Sprintf("bytes per idle connection (target ≤ 10 KiB): n/a (%s)", oneLine(res.idleErr)))
		} else {
			rss, gomem := r.perConn(r.RSSBefore, r.RSSAfter), r.perConn(r.GoBefore, r.GoAfter)
			v := verdict(rss <= 10240 && gomem <= 10240)
			if r.Errors > 0 {
				v += fmt.Sprintf(" (%d of %d clients failed)", r.Errors, r.Conns)
			}
			out = append(out, fmt.Sprintf("bytes per idle connection, %d connections: %s by VmRSS, %s by Go runtime memory (target ≤ 10 KiB): %s",
				r.Conns, fmtBytes(rss), fmtBytes(gomem), v))
		}
	}
	if cfg.balance {
		out = append(out, balanceTargets(res)...)
	}
	return out
}

// mainTargets checks the main table against the project's goals: the
// deployed proxy against nats-server (each in a process of its own, the
// same load process), and the older goals that must keep holding.
func mainTargets(cfg *config, res *results, get func(string, int, int) (stat, string), verdict func(bool, ...stat) string) []string {
	var out []string
	of := fmt.Sprintf("medians of %d %s", cfg.repeat, plural(cfg.repeat, "round"))
	// pair gets revproxy's and another system's point, or says why not.
	pair := func(other string, clients int) (stat, stat, string) {
		a, why1 := get("revproxy"+strings.TrimPrefix(other, "nats"), clients, scalePayload)
		b, why2 := get(other, clients, scalePayload)
		return a, b, firstNonEmpty(why1, why2)
	}
	for _, n := range []int{scaleClients, 256} {
		at := fmt.Sprintf("%d clients, %d B", n, scalePayload)
		rp, nt, why := pair("nats", n)
		if why != "" {
			out = append(out, fmt.Sprintf("revproxy / nats throughput and p99 at %s (targets ≥ 1.5×, p99 ≤ 1.00×, broker CPU ≤ 0.66×): n/a (%s)", at, why))
			continue
		}
		r := rp.RPS / nt.RPS
		out = append(out, fmt.Sprintf("revproxy / nats throughput at %s, %s: %s / %s req/s = %.2f× (target ≥ 1.5×): %s",
			at, of, fmtRate(rp.RPS), fmtRate(nt.RPS), r, verdict(r >= 1.5, rp, nt)))
		if cfg.repeat > 1 {
			text, met, total := roundRatios(rp, nt, 1.5)
			out = append(out, fmt.Sprintf("revproxy / nats throughput at %s round by round (revproxy round k / nats round k): %s; **%d of %d rounds ≥ 1.5×**",
				at, text, met, total))
		}
		p := float64(rp.P99) / float64(nt.P99)
		out = append(out, fmt.Sprintf("revproxy / nats p99 at %s, %s: %s / %s = %.2f× (target ≤ 1.00×): %s",
			at, of, fmtDur(rp.P99), fmtDur(nt.P99), p, verdict(rp.P99 <= nt.P99, rp, nt)))
		if rp.CPUOK && nt.CPUOK && nt.Broker > 0 {
			c := rp.Broker / nt.Broker
			out = append(out, fmt.Sprintf("proxy / nats-server CPU per message at %s, %s: %.1f / %.1f µs = %.2f× (target ≤ 0.66×): %s",
				at, of, rp.Broker, nt.Broker, c, verdict(c <= 0.66, rp, nt)))
		}
	}

	if rp1, nt1, why := pair("nats", 1); why != "" {
		out = append(out, fmt.Sprintf("revproxy / nats p50 at 1 client, %d B (target ≤ 1.00×): n/a (%s)", scalePayload, why))
	} else {
		r := float64(rp1.P50) / float64(nt1.P50)
		out = append(out, fmt.Sprintf("revproxy / nats p50 at 1 client, %d B, %s: %s / %s = %.2f× (target ≤ 1.00×): %s",
			scalePayload, of, fmtDur(rp1.P50), fmtDur(nt1.P50), r, verdict(rp1.P50 <= nt1.P50, rp1, nt1)))
	}

	at := fmt.Sprintf("%d goroutines on one connection, %d B", scaleClients, scalePayload)
	if rc, nc, why := pair("nats-1conn", scaleClients); why != "" {
		out = append(out, fmt.Sprintf("revproxy-1conn / nats-1conn throughput, %s (target ≥ 1.5×): n/a (%s)", at, why))
	} else {
		r := rc.RPS / nc.RPS
		out = append(out, fmt.Sprintf("revproxy-1conn / nats-1conn throughput, %s, %s: %s / %s req/s = %.2f× (target ≥ 1.5×): %s",
			at, of, fmtRate(rc.RPS), fmtRate(nc.RPS), r, verdict(r >= 1.5, rc, nc)))
	}

	rp, rpWhy := get("revproxy", scaleClients, scalePayload)
	rp1, why1 := get("revproxy", 1, scalePayload)
	d1, why2 := get("direct", 1, scalePayload)
	if why := firstNonEmpty(why1, why2); why != "" {
		out = append(out, fmt.Sprintf("revproxy / direct p50 at 1 client, %d B (target ≤ 2.5×): n/a (%s)", scalePayload, why))
	} else {
		r := float64(rp1.P50) / float64(d1.P50)
		out = append(out, fmt.Sprintf("revproxy / direct p50 at 1 client, %d B, %s: %s / %s = %.2f× (target ≤ 2.5×): %s",
			scalePayload, of, fmtDur(rp1.P50), fmtDur(d1.P50), r, verdict(r <= 2.5, rp1, d1)))
	}

	at = fmt.Sprintf("%d clients, %d B", scaleClients, scalePayload)
	sd, why := get("seed", scaleClients, scalePayload)
	if why := firstNonEmpty(rpWhy, why); why != "" {
		out = append(out, fmt.Sprintf("revproxy / seed throughput at %s (target ≥ 20×): n/a (%s)", at, why))
	} else {
		r := rp.RPS / sd.RPS
		out = append(out, fmt.Sprintf("revproxy / seed throughput at %s, %s: %s / %s req/s = %.1f× (target ≥ 20×): %s",
			at, of, fmtRate(rp.RPS), fmtRate(sd.RPS), r, verdict(r >= 20, rp, sd)))
	}

	return out
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}

func lowerHigher(a, b time.Duration) string {
	switch {
	case a < b:
		return "revproxy lower"
	case a > b:
		return "revproxy higher"
	}
	return "equal"
}

func fmtDur(d time.Duration) string {
	switch {
	case d <= 0:
		return "–"
	case d < time.Millisecond:
		return fmt.Sprintf("%.0f µs", float64(d)/float64(time.Microsecond))
	case d < time.Second:
		return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond))
	}
	return fmt.Sprintf("%.2f s", d.Seconds())
}

// fmtRate writes a rate with thousands separators.
func fmtRate(v float64) string {
	s := fmt.Sprintf("%.0f", v)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

func fmtSize(n int) string {
	if n >= 1024 && n%1024 == 0 {
		return fmt.Sprintf("%d KiB", n/1024)
	}
	return fmt.Sprintf("%d B", n)
}

func fmtBytes(v float64) string {
	switch a := math.Abs(v); {
	case a >= 1<<20:
		return fmt.Sprintf("%.1f MiB", v/(1<<20))
	case a >= 1<<10:
		return fmt.Sprintf("%.2f KiB", v/(1<<10))
	}
	return fmt.Sprintf("%.0f B", v)
}

func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	return s
}

// command is how this run was started, as a user would type it.
func command() string {
	args := []string{"go", "-C", "bench", "run", "."}
	for _, a := range os.Args[1:] {
		if strings.ContainsAny(a, " \t'\"$") {
			a = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
		args = append(args, a)
	}
	return strings.Join(args, " ")
}

// libraryVersion names the revproxy commit measured, from the git work tree
// that holds dir, and says whether the library has uncommitted changes.
func libraryVersion(dir string) string {
	git := func(args ...string) (string, error) {
		out, err := exec.Command("git", append([]string{"-C", dir}, args...)...).Output()
		return strings.TrimSpace(string(out)), err
	}
	commit, err := git("rev-parse", "--short", "HEAD")
	if err != nil {
		return ""
	}
	changed, err := git("status", "--porcelain", "--untracked-files=no", "--", ":/", ":(exclude,top)bench", ":(exclude,top)docs")
	switch {
	case err != nil:
		return "commit " + commit
	case changed != "":
		return "commit " + commit + " with uncommitted changes to the library"
	}
	return "commit " + commit
}

func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return "CPU model unknown"
	}
	for line := range strings.Lines(string(b)) {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "CPU model unknown"
}

func kernel() string {
	b, err := os.ReadFile("/proc/sys/kernel/osrelease")
	if err != nil {
		return "?"
	}
	return strings.TrimSpace(string(b))
}

func plural(n int, word string) string {
	if n == 1 {
		return word
	}
	return word + "s"
}

// findPoint returns the main-table point of system at clients and payload,
// if it answered.
func findPoint(res *results, system string, clients, payload int) (stat, bool) {
	if _, skipped := res.skipped[system]; skipped {
		return stat{}, false
	}
	for _, p := range res.points {
		if p.System == system && p.Clients == clients && p.Payload == payload {
			return p, p.NA == "" && p.RPS > 0 && p.P50 > 0
		}
	}
	return stat{}, false
}

// versusNATS compares revproxy with nats, point by point, as a markdown
// table and notes; nothing when either did not run.
func versusNATS(cfg *config, res *results) []string {
	ratio := func(a, b float64) string {
		if a <= 0 || b <= 0 {
			return "–"
		}
		return fmt.Sprintf("%.2f×", a/b)
	}
	type pair struct{ rp, nt, label string }
	pairs := []pair{{"revproxy", "nats", ""}}
	if slices.Contains(cfg.systems, "revproxy-1conn") && slices.Contains(cfg.systems, "nats-1conn") {
		pairs = append(pairs, pair{"revproxy-1conn", "nats-1conn", " on 1 conn"})
	}
	var rows []string
	for _, pr := range pairs {
		for _, n := range cfg.clients {
			for _, size := range cfg.payloads {
				rp, ok1 := findPoint(res, pr.rp, n, size)
				nt, ok2 := findPoint(res, pr.nt, n, size)
				if !ok1 || !ok2 {
					continue
				}
				brokerCell := "?"
				if rp.CPUOK && nt.CPUOK {
					brokerCell = fmt.Sprintf("%.1f / %.1f = %s", rp.Broker, nt.Broker, ratio(rp.Broker, nt.Broker))
				}
				allCell := "?"
				if rp.CPUOK && nt.CPUOK {
					allCell = ratio(rp.CPU, nt.CPU)
				}
				rows = append(rows, fmt.Sprintf("| %d%s | %s | %s / %s = **%s** | %s / %s = %s | %s / %s = %s | %s | %s |",
					n, pr.label, fmtSize(size), fmtRate(rp.RPS), fmtRate(nt.RPS), ratio(rp.RPS, nt.RPS),
					fmtDur(rp.P50), fmtDur(nt.P50), ratio(float64(rp.P50), float64(nt.P50)),
					fmtDur(rp.P99), fmtDur(nt.P99), ratio(float64(rp.P99), float64(nt.P99)),
					brokerCell, allCell))
			}
		}
	}
	if len(rows) == 0 {
		return nil
	}
	out := []string{
		"| clients | payload | req/s revproxy / nats | p50 | p99 | broker CPU µs/msg | all CPU µs/msg |",
		"|--:|--:|--:|--:|--:|--:|--:|",
	}
	out = append(out, rows...)
	rp, ok1 := findPoint(res, "revproxy", scaleClients, scalePayload)
	in, ok2 := findPoint(res, "revproxy-inproc", scaleClients, scalePayload)
	nt, ok3 := findPoint(res, "nats", scaleClients, scalePayload)
	if ok1 && ok2 {
		line := fmt.Sprintf("\nThe in-process variant, not a deployed shape: at %d clients, %d B, `revproxy-inproc` carried %s req/s, %s the proxy-in-its-own-process figure",
			scaleClients, scalePayload, fmtRate(in.RPS), ratio(in.RPS, rp.RPS))
		if ok3 {
			line += fmt.Sprintf(" and %s nats's", ratio(in.RPS, nt.RPS))
		}
		out = append(out, line+"; it runs the proxy in the same Go runtime as the servers and clients, which is not how a proxy is deployed, so it does not compare with nats-server.")
	}
	return out
}

// versusBaseline compares revproxy with revproxy-baseline, point by point,
// as a markdown table; nothing when either did not run.
func versusBaseline(cfg *config, res *results) []string {
	return versus(cfg, res, "revproxy", "revproxy-baseline")
}

// versus compares system a with system b, point by point, as a markdown
// table; nothing when either did not run.
func versus(cfg *config, res *results, a, b string) []string {
	ratio := func(a, b float64) string {
		if a <= 0 || b <= 0 {
			return "–"
		}
		return fmt.Sprintf("%.2f×", a/b)
	}
	var rows []string
	for _, n := range cfg.clients {
		for _, size := range cfg.payloads {
			rp, ok1 := findPoint(res, a, n, size)
			bl, ok2 := findPoint(res, b, n, size)
			if !ok1 || !ok2 {
				continue
			}
			brokerCell := "?"
			if rp.CPUOK && bl.CPUOK {
				brokerCell = fmt.Sprintf("%.1f / %.1f = %s", rp.Broker, bl.Broker, ratio(rp.Broker, bl.Broker))
			}
			rows = append(rows, fmt.Sprintf("| %d | %s | %s / %s = **%s** | %s | %s / %s = %s | %s / %s = %s | %s |",
				n, fmtSize(size), fmtRate(rp.RPS), fmtRate(bl.RPS), ratio(rp.RPS, bl.RPS), pairedRange(rp, bl),
				fmtDur(rp.P50), fmtDur(bl.P50), ratio(float64(rp.P50), float64(bl.P50)),
				fmtDur(rp.P99), fmtDur(bl.P99), ratio(float64(rp.P99), float64(bl.P99)),
				brokerCell))
		}
	}
	if len(rows) == 0 {
		return nil
	}
	return append([]string{
		"| clients | payload | req/s " + a + " / " + b + " | by round | p50 | p99 | broker CPU µs/msg |",
		"|--:|--:|--:|--:|--:|--:|--:|",
	}, rows...)
}

// proxyProgram describes the program -proxy names, and the baseline's.
func proxyProgram(cfg *config) string {
	if cfg.proxy != brokerRevproc {
		return "this binary re-run as a `revproxy.Proxy` with default settings and no logger (`-proxy child`)"
	}
	s := "`examples/revproc -q`, built from the library checkout"
	if cfg.baseline != "" {
		s += "; `revproxy-baseline`'s: the same program built from the baseline checkout (`-baseline`)"
	}
	return s
}
