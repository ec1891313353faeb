package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// The programs that can run revproxy's Proxy as the broker process (-proxy).
const (
	brokerChild    = "child"    // this binary with -role proxy: a Proxy with no logger
	brokerRevproc  = "revproc"  // examples/revproc -q, built from the library checkout
	brokerScraped  = "scraped"  // as brokerRevproc, with -admin, its /metrics fetched every scrapeEvery
	brokerProfiled = "profiled" // as brokerRevproc, with -admin ADDR -pprof, for profiles under load
)

// revprocBuilds holds the examples/revproc built in this run, by library
// checkout ("" for the one this module uses); each is built once.
var revprocBuilds struct {
	mu     sync.Mutex
	builds map[string]*revprocBuild
}

type revprocBuild struct {
	once sync.Once
	dir  string
	bin  string
	err  error
}

// buildRevproc builds examples/revproc into a temporary directory, once per
// checkout. With checkout "" it is the library this module uses (the
// replace directive points it at this checkout); otherwise checkout is the
// root of another checkout of the library (-baseline). Either way go build
// runs in the library's root, with its go.mod.
func buildRevproc(ctx context.Context, checkout string) (string, error) {
	revprocBuilds.mu.Lock()
	if revprocBuilds.builds == nil {
		revprocBuilds.builds = map[string]*revprocBuild{}
	}
	b := revprocBuilds.builds[checkout]
	if b == nil {
		b = &revprocBuild{}
		revprocBuilds.builds[checkout] = b
	}
	revprocBuilds.mu.Unlock()
	b.once.Do(func() {
		if b.dir, b.err = os.MkdirTemp("", "bench-revproc-"); b.err != nil {
			return
		}
		b.bin = filepath.Join(b.dir, "revproc")
		dir := checkout
		if checkout == "" {
			progress("building examples/revproc")
			// In the library's own module, whose go.sum covers what the
			// program imports beyond what the bench does (httpproxy's).
			out, err := exec.CommandContext(ctx, "go", "list", "-m", "-f", "{{.Dir}}", "github.com/seed-c202d8a5/revproxy").Output()
			if err != nil {
				b.err = fmt.Errorf("go list -m github.com/seed-c202d8a5/revproxy: %v", err)
				return
			}
			dir = strings.TrimSpace(string(out))
		} else {
			progress("building examples/revproc of the baseline %s", checkout)
		}
		cmd := exec.CommandContext(ctx, "go", "build", "-o", b.bin, "./examples/revproc")
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "GOWORK=off")
		if out, err := cmd.CombinedOutput(); err != nil {
			where := ""
			if checkout != "" {
				where = " in " + checkout
			}
			b.err = fmt.Errorf("go build examples/revproc%s: %v: %s", where, err, tail(out, 400))
		}
	})
	return b.bin, b.err
}

// removeRevproc deletes the built revproc programs, if any.
func removeRevproc() {
	revprocBuilds.mu.Lock()
	defer revprocBuilds.mu.Unlock()
	for _, b := range revprocBuilds.builds {
		if b.dir != "" {
			os.RemoveAll(b.dir)
		}
	}
}

// startRevproc runs examples/revproc -q of checkout (see buildRevproc),
// with args added to its command line, on a free loopback port and waits
// until it accepts connections.
func startRevproc(ctx context.Context, checkout string, args ...string) (p *proc, addr string, cleanup func(), err error) {
	bin, err := buildRevproc(ctx, checkout)
	if err != nil {
		return nil, "", nil, err
	}
	dir, err := os.MkdirTemp("", "bench-revproc-run-")
	if err != nil {
		return nil, "", nil, err
	}
	port, err := freePort()
	if err != nil {
		os.RemoveAll(dir)
		return nil, "", nil, err
	}
	p, err = startProc(dir, "revproc", bin, append([]string{"-port", strconv.Itoa(port), "-q"}, args...)...)
	if err != nil {
		os.RemoveAll(dir)
		return nil, "", nil, err
	}
	cleanup = func() {
		p.stop()
		os.RemoveAll(dir)
	}
	addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	err = waitFor(ctx, 10*time.Second, "revproc to accept connections",
		func() error {
			select {
			case <-p.done:
				b, _ := os.ReadFile(p.log)
				return fmt.Errorf("revproc exited (%v): %s", p.err, tail(b, 400))
			default:
				return nil
			}
		},
		func() bool {
			c, err := net.DialTimeout("tcp", addr, time.Second)
			if err != nil {
				return false
			}
			c.Close()
			return true
		})
	if err != nil {
		cleanup()
		return nil, "", nil, err
	}
	return p, addr, cleanup, nil
}

// registrations is a slog.Handler for Servers that counts their
// acknowledged registrations; it drops every other record, and does not
// take Debug records (the per-message ones) at all.
type registrations struct {
	mu      sync.Mutex
	n       int
	changed chan struct{}
}

func newRegistrations() *registrations {
	return &registrations{changed: make(chan struct{})}
}

func (r *registrations) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelInfo }

func (r *registrations) Handle(_ context.Context, rec slog.Record) error {
	if strings.HasPrefix(rec.Message, "Registered with the reverse proxy") {
		r.mu.Lock()
		r.n++
		close(r.changed)
		r.changed = make(chan struct{})
		r.mu.Unlock()
	}
	return nil
}

func (r *registrations) WithAttrs([]slog.Attr) slog.Handler { return r }
func (r *registrations) WithGroup(string) slog.Handler      { return r }

// wait returns once n registrations were acknowledged, or failed returns
// an error, or the timeout passes.
func (r *registrations) wait(ctx context.Context, n int, timeout time.Duration, failed func() error) error {
	deadline := time.After(timeout)
	for {
		r.mu.Lock()
		have, changed := r.n, r.changed
		r.mu.Unlock()
		if have >= n {
			return nil
		}
		if err := failed(); err != nil {
			return err
		}
		select {
		case <-changed:
		case <-time.After(50 * time.Millisecond):
		case <-deadline:
			return fmt.Errorf("timed out after %v waiting for %d servers to register (%d did)", timeout, n, have)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
