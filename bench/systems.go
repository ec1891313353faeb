package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/seed-c202d8a5/revproxy"
)

// policy is the policy every system serves.
const policy = "PP_1"

// A system is one of the compared setups.
type system struct {
	name  string
	about string // one line for the report
	start func(ctx context.Context, cfg *config) (*env, error)
	// unsupported gives, by payload size, why a point cannot run.
	unsupported map[int]string
	// clients, if set, are the only client counts the system runs at.
	clients []int
	// baseline marks a system that runs only with -baseline, and is not
	// among the defaults otherwise.
	baseline bool
	// extra marks a system that runs only when -systems names it.
	extra bool
}

// sharedClients is the one client count of the shared-connection systems.
const sharedClients = 32

var allSystems = []system{
	{name: "direct", about: "clients connect straight to 2 revproxy Servers, no proxy", start: startDirect},
	{name: "revproxy", about: "Client → Proxy → 2 Servers; the Proxy runs in a process of its own (the broker), the Servers and Clients in the load process", start: func(ctx context.Context, cfg *config) (*env, error) {
		return startRevproxy(ctx, cfg, cfg.proxy, false, 2)
	}},
	{name: "revproxy-baseline", about: "as revproxy, but the proxy process is `examples/revproc -q` built from the baseline checkout (-baseline); the same load process, with the current library's Servers and Clients", start: func(ctx context.Context, cfg *config) (*env, error) {
		return startRevproxy(ctx, cfg, brokerBaseline, false, 2)
	}, baseline: true},
	{name: "revproxy-scraped", about: fmt.Sprintf("as revproxy, but the proxy process also serves `-admin`, and the load process fetches its /metrics every %v throughout (named in -systems only)", scrapeEvery), start: func(ctx context.Context, cfg *config) (*env, error) {
		return startRevproxy(ctx, cfg, brokerScraped, false, 2)
	}, extra: true},
	{name: "revproxy-legacy", about: "as revproxy, Servers with Legacy: true (the proxy opens a connection per message)", start: func(ctx context.Context, cfg *config) (*env, error) {
		return startRevproxy(ctx, cfg, cfg.proxy, true, 2)
	}},
	{name: "nats", about: "nats-server in a process of its own (the broker); 2 responders in queue group sha1 and the clients (nats.Conn.Request) in the load process", start: startNATS},
	{name: "revproxy-inproc", about: "**in-process variant, not how a proxy is deployed**: Proxy, 2 Servers and Clients all in the load process, no broker process", start: func(ctx context.Context, cfg *config) (*env, error) {
		return startRevproxy(ctx, cfg, inProcess, false, 2)
	}},
	{name: "revproxy-1conn", about: fmt.Sprintf("as revproxy, but the %d client goroutines share ONE revproxy Client (one connection, sends multiplexed by seq)", sharedClients), start: func(ctx context.Context, cfg *config) (*env, error) {
		e, err := startRevproxy(ctx, cfg, cfg.proxy, false, 2)
		return shareOne(e), err
	}, clients: []int{sharedClients}},
	{name: "nats-1conn", about: fmt.Sprintf("as nats, but the %d client goroutines share ONE nats.Conn", sharedClients), start: func(ctx context.Context, cfg *config) (*env, error) {
		e, err := startNATS(ctx, cfg)
		return shareOne(e), err
	}, clients: []int{sharedClients}},
	{name: "seed", about: "the Python proxy of testdata/ (the broker) and 2 Python servers, each in a process of its own; the clients in the load process", start: startSeed, unsupported: map[int]string{4096: seedNA}},
}

// runsAt reports whether the system runs at n clients.
func (s system) runsAt(n int) bool {
	return s.clients == nil || slices.Contains(s.clients, n)
}

// sendFunc sends one payload, waits for the answer and checks its SHA1.
type sendFunc func(ctx context.Context, payload string) error

// env is a running system.
type env struct {
	// connect opens client i of n, on its own connection.
	connect func(i, n int) (sendFunc, func(), error)
	// broker is the pid of the broker process (the proxy or nats-server),
	// 0 when there is none or it runs in this process.
	broker int
	// pids are the other outside processes whose CPU time counts, with
	// the load process's.
	pids []int
	// close stops everything the system started.
	close func()
	// served, if set, returns the messages each server has been given so
	// far, in the system's order of servers.
	served func() []int64
	// version describes the outside software, if any.
	version string
	// admin is the address of the proxy process's admin pages, when it
	// serves them (brokerScraped, brokerProfiled).
	admin string
}

// shareOne makes every client of e use the connection of the first: the
// first connect opens it, the others reuse it, and it is closed once.
func shareOne(e *env) *env {
	if e == nil {
		return nil
	}
	connect := e.connect
	var shared sendFunc
	e.connect = func(i, n int) (sendFunc, func(), error) {
		if shared != nil {
			return shared, func() {}, nil
		}
		send, closeFn, err := connect(i, n)
		if err != nil {
			return nil, nil, err
		}
		shared = send
		return send, closeFn, nil
	}
	return e
}

// skipError marks a system that cannot run on this machine.
type skipError struct{ reason string }

func (e *skipError) Error() string { return e.reason }

// roles runs in-process roles (Serve loops) and stops them together.
type roles struct {
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	mu     sync.Mutex
	err    error
}

func newRoles(ctx context.Context) *roles {
	r := &roles{}
	r.ctx, r.cancel = context.WithCancel(ctx)
	return r
}

// run starts f; an error it returns is kept for failed and stop.
func (r *roles) run(name string, f func(ctx context.Context) error) {
	r.wg.Go(func() {
		if err := f(r.ctx); err != nil {
			r.mu.Lock()
			if r.err == nil {
				r.err = fmt.Errorf("%s: %w", name, err)
			}
			r.mu.Unlock()
		}
	})
}

func (r *roles) failed() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.err
}

// stop cancels every role and waits for them.
func (r *roles) stop() {
	r.cancel()
	r.wg.Wait()
}

func listen() (net.Listener, error) {
	return net.Listen("tcp", "127.0.0.1:0")
}

// waitFor polls cond until it holds, a role fails or the timeout passes.
func waitFor(ctx context.Context, timeout time.Duration, what string, failed func() error, cond func() bool) error {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if err := failed(); err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return nil
}

// revproxySender drives one revproxy Client.
func revproxySender(id, addr string, stringFields bool) (sendFunc, func()) {
	c := &revproxy.Client{ID: id, ProxyAddr: addr, StringFields: stringFields}
	send := func(ctx context.Context, payload string) error {
		reply, err := c.Send(ctx, policy, payload)
		if err != nil {
			return err
		}
		return revproxy.VerifySHA1(payload, reply)
	}
	return send, func() { c.Close() }
}

// The startRevproxy shapes besides brokerChild and brokerRevproc.
const (
	inProcess      = "inproc"   // the Proxy in this process, beside the Servers and clients
	brokerBaseline = "baseline" // examples/revproc -q built from cfg.baseline
)

// startRevproxy runs a Proxy and n SHA1 Servers. With inProcess the Proxy
// runs in this process; otherwise it runs in a process of its own, the
// broker (brokerChild: this binary with -role proxy; brokerRevproc:
// examples/revproc -q of this checkout; brokerBaseline: the same program of
// the cfg.baseline checkout), and the Servers and clients stay here.
func startRevproxy(ctx context.Context, cfg *config, shape string, legacy bool, n int) (*env, error) {
	r := newRoles(ctx)
	regs := newRegistrations()
	var (
		addr   string
		admin  string // the proxy process's admin pages, if it serves them
		broker int
		ready  func() error
		stopPx = func() {}
	)
	switch shape {
	case inProcess:
		ln, err := listen()
		if err != nil {
			return nil, err
		}
		p := &revproxy.Proxy{}
		r.run("proxy", func(ctx context.Context) error { return p.Serve(ctx, ln) })
		addr = ln.Addr().String()
		ready = func() error {
			return waitFor(ctx, 30*time.Second, fmt.Sprintf("%d servers to register", n), r.failed,
				func() bool { return len(p.Servers(policy)) == n })
		}
	case brokerChild:
		child, err := startProxyChild(ctx)
		if err != nil {
			return nil, fmt.Errorf("proxy process: %w", err)
		}
		addr, broker, stopPx = child.addr, child.pid(), child.stop
		ready = func() error {
			if err := child.waitServers(ctx, policy, n); err != nil {
				return firstErr(r.failed(), err)
			}
			return r.failed()
		}
	case brokerRevproc, brokerBaseline, brokerScraped, brokerProfiled:
		checkout := ""
		if shape == brokerBaseline {
			checkout = cfg.baseline
		}
		var args []string
		if shape == brokerScraped || shape == brokerProfiled {
			port, err := freePort()
			if err != nil {
				return nil, err
			}
			admin = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
			args = append(args, "-admin", admin)
			if shape == brokerProfiled {
				args = append(args, "-pprof")
			}
		}
		px, a, cleanup, err := startRevproc(ctx, checkout, args...)
		if err != nil {
			return nil, fmt.Errorf("revproc: %w", err)
		}
		addr, broker, stopPx = a, px.pid(), cleanup
		if shape == brokerScraped {
			r.run("scraper", func(ctx context.Context) error { return scrape(ctx, "http://"+admin+"/metrics") })
		}
		ready = func() error {
			return regs.wait(ctx, n, 30*time.Second, r.failed)
		}
	default:
		return nil, fmt.Errorf("unknown proxy shape %q", shape)
	}
	stop := func() {
		r.stop()
		stopPx()
	}
	for i := range n {
		sln, err := listen()
		if err != nil {
			stop()
			return nil, err
		}
		s := &revproxy.Server{ID: strconv.Itoa(i + 1), Policy: policy, ProxyAddr: addr, Legacy: legacy, Logger: slog.New(regs)}
		r.run("server "+s.ID, func(ctx context.Context) error { return s.Serve(ctx, sln) })
	}
	if err := ready(); err != nil {
		stop()
		return nil, err
	}
	return &env{
		connect: func(i, _ int) (sendFunc, func(), error) {
			send, closeFn := revproxySender(strconv.Itoa(1000+i), addr, false)
			return send, closeFn, nil
		},
		broker: broker,
		close:  stop,
		admin:  admin,
	}, nil
}

// startDirect runs 2 SHA1 Servers; clients are split evenly between their
// listeners. The Servers register with a stand-in that only holds the
// registration connections, so no proxy takes part.
func startDirect(ctx context.Context, _ *config) (*env, error) {
	r := newRoles(ctx)
	reg, err := listen()
	if err != nil {
		return nil, err
	}
	var held sync.WaitGroup
	r.run("registrar", func(ctx context.Context) error { return holdConns(ctx, reg, &held) })
	var addrs []string
	for i := range 2 {
		sln, err := listen()
		if err != nil {
			r.stop()
			return nil, err
		}
		addrs = append(addrs, sln.Addr().String())
		s := &revproxy.Server{ID: strconv.Itoa(i + 1), Policy: policy, ProxyAddr: reg.Addr().String()}
		r.run("server "+s.ID, func(ctx context.Context) error { return s.Serve(ctx, sln) })
	}
	return &env{
		connect: func(i, _ int) (sendFunc, func(), error) {
			send, closeFn := revproxySender(strconv.Itoa(1000+i), addrs[i%len(addrs)], false)
			return send, closeFn, nil
		},
		close: func() {
			r.stop()
			held.Wait()
		},
	}, nil
}

// holdConns accepts connections on ln and reads them until they close,
// standing in for a proxy where servers register.
func holdConns(ctx context.Context, ln net.Listener, wg *sync.WaitGroup) error {
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		wg.Go(func() {
			defer c.Close()
			unblock := context.AfterFunc(ctx, func() { c.Close() })
			defer unblock()
			io.Copy(io.Discard, c)
		})
	}
}

// proc is an outside process with its output in a log file.
type proc struct {
	name string
	cmd  *exec.Cmd
	log  string
	done chan struct{}
	err  error // set when done is closed
}

// startProc starts name with args; stdout and stderr go to dir/<tag>.log.
func startProc(dir, tag, name string, args ...string) (*proc, error) {
	logPath := filepath.Join(dir, tag+".log")
	f, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &proc{name: tag, cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// waitLog waits until the log matches re and returns the submatches.
func (p *proc) waitLog(ctx context.Context, re *regexp.Regexp, timeout time.Duration) ([]string, error) {
	deadline := time.Now().Add(timeout)
	for {
		b, err := os.ReadFile(p.log)
		if err != nil {
			return nil, err
		}
		if m := re.FindSubmatch(b); m != nil {
			out := make([]string, len(m))
			for i := range m {
				out[i] = string(m[i])
			}
			return out, nil
		}
		select {
		case <-p.done:
			return nil, fmt.Errorf("%s exited (%v) before printing %q; its output: %s", p.name, p.err, re, tail(b, 400))
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("%s did not print %q within %v; its output: %s", p.name, re, timeout, tail(b, 400))
		}
	}
}

// stop asks the process to end, kills it if it does not, and reaps it.
func (p *proc) stop() {
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(3 * time.Second):
		p.cmd.Process.Kill()
		<-p.done
	}
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

func tail(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

// freePort returns a loopback port that was free a moment ago.
func freePort() (int, error) {
	ln, err := listen()
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// raiseNoFile raises the soft limit on open files to the hard limit.
func raiseNoFile() (uint64, error) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, err
	}
	if lim.Cur < lim.Max {
		lim.Cur = lim.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
			return 0, err
		}
	}
	return lim.Cur, nil
}
