package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// profileSeconds is the length of each CPU profile of the front door.
const profileSeconds = 5

// profileTop and profileAllocTop are how many functions of each CPU and
// allocation profile the report lists.
const (
	profileTop      = 25
	profileAllocTop = 12
)

// httpProfile is one CPU profile of the front door's process under load,
// with what it allocated meanwhile.
type httpProfile struct {
	system           string
	clients, payload int
	file             string // the CPU profile, in cfg.profile
	top              string // go tool pprof -top of it
	allocTop         string // go tool pprof -top of the bytes allocated over the profile
	rps              float64
	mem              memDelta
	err              string
}

// memCounts are the front door's process's counters at one time: the
// runtime's exact ones (runtime.MemStats) and its requests.
type memCounts struct {
	at                            time.Time
	requests, mallocs, bytes, gcs uint64
}

// memDelta is what the front door's process did over the profile.
type memDelta struct {
	requests, mallocs, bytes, gcs uint64
	elapsed                       time.Duration
}

func (c memCounts) since(c0 memCounts) memDelta {
	return memDelta{c.requests - c0.requests, c.mallocs - c0.mallocs, c.bytes - c0.bytes, c.gcs - c0.gcs, c.at.Sub(c0.at)}
}

func (d memDelta) String() string {
	if d.requests == 0 {
		return "allocations not measured"
	}
	r := float64(d.requests)
	return fmt.Sprintf("%.0f allocations and %s allocated per request, %.1f GCs a second",
		float64(d.mallocs)/r, fmtBytes(float64(d.bytes)/r), float64(d.gcs)/d.elapsed.Seconds())
}

// profileHTTP profiles the front door's process (examples/revproc -admin
// ADDR -pprof) at every point of each revproxy HTTP system measured: it
// starts the system afresh, runs the same closed loop for longer than the
// profile, and fetches /debug/pprof/profile?seconds=profileSeconds once the
// load runs. The profiles are apart from the measured rounds, which
// serve no admin pages and are not profiled.
func profileHTTP(ctx context.Context, cfg *config, res *results) []httpProfile {
	if err := os.MkdirAll(cfg.profile, 0o755); err != nil {
		return []httpProfile{{err: err.Error()}}
	}
	long := *cfg
	long.duration = (profileSeconds + 2) * time.Second
	var out []httpProfile
	for _, name := range cfg.http {
		if name != "revproxy-reverse" && name != "revproxy-forward" {
			continue
		}
		if _, skipped := res.skipped[name]; skipped {
			continue
		}
		for _, n := range cfg.httpConns {
			for _, size := range httpPayloads {
				if ctx.Err() != nil {
					return out
				}
				progress("profile: %s, %d conns, %s", name, n, fmtSize(size))
				pr := profileOne(ctx, &long, name, n, size)
				if pr.err != "" {
					progress("profile: %s", pr.err)
				}
				out = append(out, pr)
			}
		}
	}
	return out
}

func profileOne(ctx context.Context, cfg *config, name string, n, size int) httpProfile {
	pr := httpProfile{system: name, clients: n, payload: size,
		file: filepath.Join(cfg.profile, fmt.Sprintf("%s-%d-%d.pprof", name, n, size))}
	port, err := freePort()
	if err != nil {
		pr.err = err.Error()
		return pr
	}
	admin := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	e, err := startFrontDoor(ctx, "", name == "revproxy-forward", admin)
	if err != nil {
		pr.err = fmt.Sprintf("%s: %v", name, err)
		return pr
	}
	defer e.close()
	base := "http://" + admin
	allocs0, allocs1 := pr.file+".allocs0", pr.file+".allocs1"
	fetched := make(chan error, 1)
	go func() {
		// The clients connect and warm up first; the profile then covers
		// the middle of the window.
		select {
		case <-time.After(time.Second):
		case <-ctx.Done():
			fetched <- ctx.Err()
			return
		}
		m0, err := memSnapshot(ctx, base)
		if err == nil {
			err = fetchProfile(ctx, base+"/debug/pprof/allocs", allocs0)
		}
		if err == nil {
			err = fetchProfile(ctx, base+"/debug/pprof/profile?seconds="+strconv.Itoa(profileSeconds), pr.file)
		}
		if err == nil {
			err = fetchProfile(ctx, base+"/debug/pprof/allocs", allocs1)
		}
		if err == nil {
			var m1 memCounts
			m1, err = memSnapshot(ctx, base)
			pr.mem = m1.since(m0)
		}
		fetched <- err
	}()
	p := measure(ctx, cfg, e, n, size)
	pr.rps = p.RPS()
	if err := <-fetched; err != nil {
		pr.err = fmt.Sprintf("%s, %d conns, %s: %v", name, n, fmtSize(size), err)
		return pr
	}
	top := func(nodes int, args ...string) string {
		args = append([]string{"tool", "pprof", "-top", "-nodecount=" + strconv.Itoa(nodes)}, args...)
		out, err := exec.CommandContext(ctx, "go", args...).Output()
		if err != nil && pr.err == "" {
			pr.err = fmt.Sprintf("go %s: %v", strings.Join(args, " "), err)
		}
		return string(out)
	}
	pr.top = top(profileTop, pr.file)
	pr.allocTop = top(profileAllocTop, "-sample_index=alloc_space", "-base="+allocs0, allocs1)
	return pr
}

// memSnapshot reads the front door's requests so far (the sum of
// revproxy_http_requests_total on /metrics) and the runtime's counters of
// allocations and GCs (the MemStats the heap profile's text form ends
// with), and stamps them with the time.
func memSnapshot(ctx context.Context, base string) (memCounts, error) {
	d := memCounts{at: time.Now()}
	heap, err := fetchText(ctx, base+"/debug/pprof/heap?debug=1")
	if err != nil {
		return d, err
	}
	metrics, err := fetchText(ctx, base+"/metrics")
	if err != nil {
		return d, err
	}
	for line := range strings.Lines(heap) {
		k, v, ok := strings.Cut(strings.TrimSpace(line), " = ")
		if !ok {
			continue
		}
		n, _ := strconv.ParseUint(v, 10, 64)
		switch k {
		case "# Mallocs":
			d.mallocs = n
		case "# TotalAlloc":
			d.bytes = n
		case "# NumGC":
			d.gcs = n
		}
	}
	for line := range strings.Lines(metrics) {
		if rest, ok := strings.CutPrefix(line, "revproxy_http_requests_total{"); ok {
			if _, v, ok := strings.Cut(rest, "} "); ok {
				n, _ := strconv.ParseUint(strings.TrimSpace(v), 10, 64)
				d.requests += n
			}
		}
	}
	if d.mallocs == 0 || d.requests == 0 {
		return d, fmt.Errorf("%s: no MemStats in the heap profile or no requests in /metrics", base)
	}
	return d, nil
}

// fetchText returns the body url answers with 200.
func fetchText(ctx context.Context, url string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("%s: %s", url, resp.Status)
	}
	return string(b), err
}

// fetchProfile saves the CPU profile url serves into file.
func fetchProfile(ctx context.Context, url, file string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := (&http.Client{Timeout: (profileSeconds + 30) * time.Second}).Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 200))
		return fmt.Errorf("%s: %s: %s", url, resp.Status, b)
	}
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// profileSection renders the profiles: for each, the load it ran under
// and the functions that took the most CPU time, by their own time.
func profileSection(res *results) string {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	w("\n## Where the front door's CPU goes\n\n")
	w("`-profile`: each revproxy system afresh, with `-admin ADDR -pprof`, under the same closed loop for %d s, its `/debug/pprof/profile?seconds=%d` fetched once the load runs; apart from the measured rounds. `go tool pprof -top`, the first %d functions by their own time (`flat`), with their callees (`cum`). The allocations and GCs a request costs come from the runtime's exact counters (MemStats in `/debug/pprof/heap?debug=1`) and the front door's request counter on `/metrics`, read at both ends of the CPU profile.\n",
		profileSeconds+2, profileSeconds, profileTop)
	for _, pr := range res.profiles {
		if pr.err != "" {
			w("\n%s: not profiled: %s\n", pr.system, oneLine(pr.err))
			continue
		}
		w("\n`%s`, %d conns, %s body, %s req/s while profiled (`%s`); %s:\n\n```\n%s```\n",
			pr.system, pr.clients, fmtSize(pr.payload), fmtRate(pr.rps), filepath.Base(pr.file), pr.mem, trimPprofHeader(pr.top))
		if pr.allocTop != "" {
			w("\nWhat it allocated over the CPU profile, by bytes (`-sample_index=alloc_space`, sampled):\n\n```\n%s```\n", trimPprofHeader(pr.allocTop))
		}
	}
	return b.String()
}

// trimPprofHeader drops the lines of pprof -top before "Duration:" or,
// without one, before "Showing".
func trimPprofHeader(s string) string {
	lines := strings.SplitAfter(s, "\n")
	if i := slices.IndexFunc(lines, func(l string) bool {
		return strings.HasPrefix(l, "Duration:") || strings.HasPrefix(l, "Showing")
	}); i > 0 {
		lines = lines[i:]
	}
	return strings.Join(lines, "")
}
