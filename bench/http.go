package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/seed-c202d8a5/revproxy"
)

// The HTTP benchmark (-systems http): the front door (examples/revproc
// -http) side by side with HAProxy and a plain httputil.ReverseProxy, each
// proxy a process of its own on loopback, with 2 Go origin servers and the
// clients in the load process, the same for every system.

// httpPolicy is the policy whose Servers announce the origins' HTTP
// services to the front door.
const httpPolicy = "web"

// The points of the HTTP benchmark: client connections, and the size of
// the body every GET is answered with.
var (
	httpClients  = []int{32, 256}
	httpPayloads = []int{64, 64 << 10}
)

var httpSystems = []system{
	{name: "http-direct", about: "no proxy: client i sends to origin i mod 2 straight; what the load process and the origins do alone", start: startHTTPDirect},
	{name: "revproxy-reverse", about: "`examples/revproc -q -http ADDR -route /=" + httpPolicy + "`: the front door's reverse path, round robin over the 2 origins, announced by 2 revproxy Servers of policy `" + httpPolicy + "` (with `HTTPPort`) that register from the load process", start: func(ctx context.Context, _ *config) (*env, error) {
		return startFrontDoor(ctx, "", false, "")
	}},
	{name: "revproxy-reverse-baseline", about: "as revproxy-reverse, but `examples/revproc` built from the baseline checkout (-baseline); the same load process", start: func(ctx context.Context, cfg *config) (*env, error) {
		return startFrontDoor(ctx, cfg.baseline, false, "")
	}, baseline: true},
	{name: "haproxy", about: "HAProxy (Debian package) in the foreground, `mode http`, `balance roundrobin` over the 2 origins, `http-reuse always`, `nbthread 2`, `option forwardfor`", start: func(ctx context.Context, _ *config) (*env, error) {
		return startHAProxy(ctx, false)
	}},
	{name: "httputil", about: "`bench/cmd/plainproxy`: a plain `httputil.ReverseProxy` of ten lines, `Rewrite` with `SetURL` round robin over the 2 origins and `SetXForwarded`, the default Transport, `http.ListenAndServe`", start: func(ctx context.Context, _ *config) (*env, error) {
		return startPlain(ctx, false)
	}},
	{name: "revproxy-forward", about: "the same `examples/revproc -q -http ADDR`, its forward proxy: the clients send absolute-form requests (`http.Transport.Proxy`), each client alternating between the 2 origins", start: func(ctx context.Context, _ *config) (*env, error) {
		return startFrontDoor(ctx, "", true, "")
	}},
	{name: "haproxy-forward", about: "HAProxy as a forward proxy, which it is not made for: `http-request set-dst url_ip`, `set-dst-port url_port`, `set-uri %[pathq]` to a `server 0.0.0.0:0`, `http-reuse always`, `nbthread 2`; it takes IP addresses only, no names (no resolver)", start: func(ctx context.Context, _ *config) (*env, error) {
		return startHAProxy(ctx, true)
	}},
	{name: "httputil-forward", about: "`bench/cmd/plainproxy -forward`: the same ten lines, `Rewrite` keeping the request's absolute URL", start: func(ctx context.Context, _ *config) (*env, error) {
		return startPlain(ctx, true)
	}},
}

// httpSystemNamed returns the HTTP system called name, if there is one.
func httpSystemNamed(name string) (system, bool) {
	for _, s := range httpSystems {
		if s.name == name {
			return s, true
		}
	}
	return system{}, false
}

// originBody is what the origins answer a GET for /SIZE with.
type originBody struct {
	body   []byte
	length []string // the Content-Length header's value
}

// originBodies are the origins' answers by size; built once, then only read.
var originBodies = func() map[int]originBody {
	m := map[int]originBody{}
	for _, size := range httpPayloads {
		m[size] = originBody{[]byte(makePayload(size, 0x0b0d7)), []string{strconv.Itoa(size)}}
	}
	return m
}()

var octetStream = []string{"application/octet-stream"}

// serveOrigin answers GET /SIZE with the SIZE-byte body of originBodies,
// and anything else with 404.
func serveOrigin(w http.ResponseWriter, r *http.Request) {
	size, err := strconv.Atoi(strings.TrimPrefix(r.URL.Path, "/"))
	b, ok := originBodies[size]
	if err != nil || !ok || r.Method != http.MethodGet {
		http.NotFound(w, r)
		return
	}
	h := w.Header()
	h["Content-Type"] = octetStream
	h["Content-Length"] = b.length
	w.Write(b.body)
}

// origins are the HTTP servers behind the proxies, in the load process.
type origins struct {
	addrs []string // host:port
	ports []int
	srvs  []*http.Server
	wg    sync.WaitGroup
}

// startOrigins serves n origins, each on a loopback port of its own.
func startOrigins(n int) (*origins, error) {
	o := &origins{}
	for range n {
		ln, err := listen()
		if err != nil {
			o.close()
			return nil, err
		}
		srv := &http.Server{
			Handler:           http.HandlerFunc(serveOrigin),
			ReadHeaderTimeout: 10 * time.Second,
			IdleTimeout:       90 * time.Second,
			ErrorLog:          log.New(io.Discard, "", 0),
		}
		o.srvs = append(o.srvs, srv)
		o.addrs = append(o.addrs, ln.Addr().String())
		o.ports = append(o.ports, ln.Addr().(*net.TCPAddr).Port)
		o.wg.Go(func() { srv.Serve(ln) })
	}
	return o, nil
}

// close stops the origins and closes their connections.
func (o *origins) close() {
	for _, srv := range o.srvs {
		srv.Close()
	}
	o.wg.Wait()
}

// statusError is an answer other than 200.
type statusError struct {
	code int
	text string
}

func (e *statusError) Error() string { return e.text }

// httpSender is one closed-loop client: it GETs /SIZE (SIZE the length of
// the payload it is given) from its targets in turn, each request on the
// one connection of its own Transport, through proxy when it is not nil
// (absolute-form requests to a forward proxy), and checks that the answer
// is 200 with the origins' body, byte for byte.
func httpSender(targets []string, proxy *url.URL) (sendFunc, func()) {
	tr := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 10 * time.Second}).DialContext,
		MaxIdleConnsPerHost: 1,
		MaxConnsPerHost:     1, // one connection per client, whatever happens
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
	}
	if proxy != nil {
		tr.Proxy = http.ProxyURL(proxy)
	}
	var (
		reqs    []*http.Request // one per target, for reqSize
		reqSize = -1
		next    int
		buf     []byte
	)
	send := func(ctx context.Context, payload string) error {
		size := len(payload)
		want, ok := originBodies[size]
		if !ok {
			return fmt.Errorf("no origin body of %d bytes", size)
		}
		if size != reqSize {
			reqs = reqs[:0]
			for _, t := range targets {
				req, err := http.NewRequest(http.MethodGet, t+"/"+strconv.Itoa(size), nil)
				if err != nil {
					return err
				}
				reqs = append(reqs, req)
			}
			reqSize, buf = size, make([]byte, size+1)
		}
		req := reqs[next%len(reqs)]
		next++
		resp, err := tr.RoundTrip(req.WithContext(ctx))
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			b, _ := io.ReadAll(io.LimitReader(resp.Body, 200))
			return &statusError{resp.StatusCode, fmt.Sprintf("GET %s: %s: %s", req.URL, resp.Status, bytes.TrimSpace(b))}
		}
		n, err := io.ReadFull(resp.Body, buf)
		switch {
		case err == nil:
			return fmt.Errorf("GET %s: body longer than %d bytes", req.URL, size)
		case n != size:
			return fmt.Errorf("GET %s: body of %d bytes, want %d (%v)", req.URL, n, size, err)
		case err != io.ErrUnexpectedEOF:
			return fmt.Errorf("GET %s: %w", req.URL, err)
		case !bytes.Equal(buf[:n], want.body):
			return fmt.Errorf("GET %s: the body differs from the origin's", req.URL)
		}
		return nil
	}
	return send, tr.CloseIdleConnections
}

// proxiedEnv is the env of a proxy process at proxyAddr in front of o:
// each client sends to the proxy, or, with forward, sends absolute-form
// requests through it, alternating between the origins and starting at
// its own (client i at origin i mod 2).
func proxiedEnv(o *origins, proxyAddr string, forward bool, pid int, stop func()) *env {
	var urls []string
	for _, a := range o.addrs {
		urls = append(urls, "http://"+a)
	}
	proxyURL := &url.URL{Scheme: "http", Host: proxyAddr}
	return &env{
		connect: func(i, _ int) (sendFunc, func(), error) {
			if forward {
				send, closeFn := httpSender(rotate(urls, i), proxyURL)
				return send, closeFn, nil
			}
			send, closeFn := httpSender([]string{proxyURL.String()}, nil)
			return send, closeFn, nil
		},
		broker: pid,
		close:  stop,
	}
}

// probe sends one request through e before it is measured, so that a
// system that cannot serve at all fails its setup: a forward path still
// answering 501 Not Implemented is skipped.
func probe(ctx context.Context, e *env, name string) error {
	send, closeFn, err := e.connect(0, 1)
	if err != nil {
		return err
	}
	defer closeFn()
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	err = send(pctx, makePayload(httpPayloads[0], 1))
	if se := (*statusError)(nil); errors.As(err, &se) && se.code == http.StatusNotImplemented {
		return &skipError{fmt.Sprintf("%s answers 501 Not Implemented: %s", name, oneLine(se.text))}
	}
	return err
}

// startHTTPDirect runs the 2 origins; client i sends to origin i mod 2.
func startHTTPDirect(context.Context, *config) (*env, error) {
	o, err := startOrigins(2)
	if err != nil {
		return nil, err
	}
	return &env{
		connect: func(i, _ int) (sendFunc, func(), error) {
			send, closeFn := httpSender([]string{"http://" + o.addrs[i%len(o.addrs)]}, nil)
			return send, closeFn, nil
		},
		close: o.close,
	}, nil
}

// startFrontDoor runs the origins and examples/revproc -q -http ADDR of
// checkout ("" for this one; see buildRevproc): with forward, its forward
// proxy; otherwise its reverse path, -route /=web, with 2 revproxy Servers
// of policy web in this process announcing the origins (HTTPPort),
// registered before it returns. With admin set, revproc also serves its
// admin pages and profiles (-admin ADDR -pprof) there.
func startFrontDoor(ctx context.Context, checkout string, forward bool, admin string) (*env, error) {
	o, err := startOrigins(2)
	if err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		o.close()
		return nil, err
	}
	front := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	args := []string{"-http", front}
	if !forward {
		args = append(args, "-route", "/="+httpPolicy)
	}
	if admin != "" {
		args = append(args, "-admin", admin, "-pprof")
	}
	px, addr, stopPx, err := startRevproc(ctx, checkout, args...)
	if err != nil {
		o.close()
		return nil, fmt.Errorf("revproc: %w", err)
	}
	r := newRoles(ctx)
	stop := func() {
		r.stop()
		stopPx()
		o.close()
	}
	fail := func(err error) (*env, error) {
		stop()
		return nil, err
	}
	if err := waitListening(ctx, px, front); err != nil {
		return fail(err)
	}
	if !forward {
		regs := newRegistrations()
		for i, port := range o.ports {
			s := &revproxy.Server{ID: httpPolicy + strconv.Itoa(i+1), Policy: httpPolicy, ProxyAddr: addr, HTTPPort: port, Logger: slog.New(regs)}
			r.run("server "+s.ID, func(ctx context.Context) error { return s.Serve(ctx, nil) })
		}
		if err := regs.wait(ctx, len(o.ports), 30*time.Second, r.failed); err != nil {
			return fail(err)
		}
	}
	e := proxiedEnv(o, front, forward, px.pid(), stop)
	name := "the front door's reverse path"
	if forward {
		name = "the front door's forward path"
	}
	if err := probe(ctx, e, name); err != nil {
		return fail(err)
	}
	return e, nil
}

// haproxyConfig is HAProxy's configuration: a frontend on front and, as a
// reverse proxy, round robin over the origins with pooled keep-alive
// connections; as a forward proxy, each request sent to the address and
// port of its absolute-form URL, in origin form. maxconn stays within the
// open-file limit HAProxy can set (two descriptors a connection); 256
// clients need 512.
func haproxyConfig(front string, origins []string, forward bool) string {
	var b bytes.Buffer
	fmt.Fprintf(&b, `global
    nbthread 2
    maxconn 4096

defaults
    mode http
    maxconn 4096
    option forwardfor
    timeout connect 10s
    timeout client 90s
    timeout server 30s
    timeout http-request 10s
    timeout http-keep-alive 90s

frontend front
    bind %s
    default_backend origins

backend origins
    http-reuse always
`, front)
	if forward {
		b.WriteString(`    http-request set-dst url_ip
    http-request set-dst-port url_port
    http-request set-uri %[pathq]
    server clear 0.0.0.0:0
`)
		return b.String()
	}
	b.WriteString("    balance roundrobin\n")
	for i, a := range origins {
		fmt.Fprintf(&b, "    server origin%d %s\n", i+1, a)
	}
	return b.String()
}

// startHAProxy runs the origins and HAProxy in the foreground (-db) with
// haproxyConfig, in a temporary directory.
func startHAProxy(ctx context.Context, forward bool) (*env, error) {
	bin, err := findDebian(ctx, "haproxy", "haproxy")
	if err != nil {
		return nil, err
	}
	return startProxyProgram(ctx, "haproxy", forward, func(dir, front string, o *origins) (*proc, error) {
		cfgPath := dir + "/haproxy.cfg"
		if err := os.WriteFile(cfgPath, []byte(haproxyConfig(front, o.addrs, forward)), 0o644); err != nil {
			return nil, err
		}
		return startProc(dir, "haproxy", bin, "-f", cfgPath, "-db")
	})
}

// startPlain runs the origins and bench/cmd/plainproxy, as a reverse proxy
// over them or, with forward, as a forward proxy.
func startPlain(ctx context.Context, forward bool) (*env, error) {
	bin, err := buildPlain(ctx)
	if err != nil {
		return nil, err
	}
	return startProxyProgram(ctx, "plainproxy", forward, func(dir, front string, o *origins) (*proc, error) {
		args := []string{"-listen", front}
		if forward {
			args = append(args, "-forward")
		}
		for _, a := range o.addrs {
			args = append(args, "http://"+a)
		}
		return startProc(dir, "plainproxy", bin, args...)
	})
}

// startProxyProgram runs the origins and a proxy program that start
// starts in a temporary directory, serving on front, and waits until it
// serves a request.
func startProxyProgram(ctx context.Context, name string, forward bool, start func(dir, front string, o *origins) (*proc, error)) (*env, error) {
	o, err := startOrigins(2)
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "bench-"+name+"-")
	if err != nil {
		o.close()
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		o.close()
		os.RemoveAll(dir)
		return nil, err
	}
	front := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	px, err := start(dir, front, o)
	if err != nil {
		o.close()
		os.RemoveAll(dir)
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	stop := func() {
		px.stop()
		o.close()
		os.RemoveAll(dir)
	}
	e := proxiedEnv(o, front, forward, px.pid(), stop)
	if err := waitListening(ctx, px, front); err != nil {
		stop()
		return nil, err
	}
	if err := probe(ctx, e, name); err != nil {
		b, _ := os.ReadFile(px.log)
		stop()
		return nil, fmt.Errorf("%w; %s's output: %s", err, name, oneLine(tail(b, 300)))
	}
	return e, nil
}

// waitListening waits until addr accepts connections, or p exits.
func waitListening(ctx context.Context, p *proc, addr string) error {
	return waitFor(ctx, 10*time.Second, p.name+" to accept connections on "+addr,
		func() error {
			select {
			case <-p.done:
				b, _ := os.ReadFile(p.log)
				return fmt.Errorf("%s exited (%v): %s", p.name, p.err, tail(b, 400))
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
}

// plainBuild is bench/cmd/plainproxy, built once a run.
var plainBuild struct {
	once     sync.Once
	dir, bin string
	err      error
}

// buildPlain builds bench/cmd/plainproxy into a temporary directory, once.
func buildPlain(ctx context.Context) (string, error) {
	plainBuild.once.Do(func() {
		if plainBuild.dir, plainBuild.err = os.MkdirTemp("", "bench-plainproxy-"); plainBuild.err != nil {
			return
		}
		plainBuild.bin = plainBuild.dir + "/plainproxy"
		progress("building bench/cmd/plainproxy")
		cmd := exec.CommandContext(ctx, "go", "build", "-o", plainBuild.bin, "github.com/seed-c202d8a5/revproxy/bench/cmd/plainproxy")
		if out, err := cmd.CombinedOutput(); err != nil {
			plainBuild.err = fmt.Errorf("go build bench/cmd/plainproxy: %v: %s", err, tail(out, 400))
		}
	})
	return plainBuild.bin, plainBuild.err
}

// removePlain deletes the built plainproxy, if any.
func removePlain() {
	if plainBuild.dir != "" {
		os.RemoveAll(plainBuild.dir)
	}
}
