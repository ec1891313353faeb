// Command revproc runs a revproxy proxy on a well-known port:
//
//	go run ./examples/revproc -port 123
//
// It prints what happens as the homework's sample terminal does: the
// servers that register, and the lines of the first few messages (-v: of
// every message; -q: failures only).
//
// With -admin ADDR it also serves the admin pages on ADDR (revproxy.Admin):
// /metrics for Prometheus, /status for a browser, /status.json and
// /healthz; -pprof adds the runtime's profiles under /debug/pprof/. Keep
// ADDR where operators reach it and peers do not, such as 127.0.0.1:9090.
//
// With -http ADDR it also serves the HTTP front door (package httpproxy)
// on ADDR: a forward proxy for browsers and curl -x, with CONNECT tunnels
// to port 443; the gateway POST /msg/{policy}, which sends the body as a
// data message and answers the reply; and, for each -route, requests for a
// host name or a path prefix sent to the servers of a policy that
// announced an HTTP service. -cache adds a shared cache of 64 MiB.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/seed-c202d8a5/revproxy"
	"github.com/seed-c202d8a5/revproxy/examples/internal/cli"
	"github.com/seed-c202d8a5/revproxy/httpproxy"
)

func main() {
	port := cli.PortFlag("port", "the well-known `PORT` servers and clients connect to (0 picks one)")
	out := cli.OutputFlags()
	var balancer revproxy.Balancer
	flag.TextVar(&balancer, "balancer", revproxy.RoundRobin, "how to choose a policy's server for each message: `round-robin`, least-in-flight or p2c")
	admin := flag.String("admin", "", "serve the admin pages (/metrics, /status, /status.json, /healthz) on `ADDR`, such as 127.0.0.1:9090")
	pprof := flag.Bool("pprof", false, "with -admin, serve the runtime's profiles under /debug/pprof/")
	httpAddr := flag.String("http", "", "serve the HTTP front door (forward proxy, CONNECT, POST /msg/{policy}, -route) on `ADDR`, such as 127.0.0.1:8888")
	var routes routeFlag
	flag.Var(&routes, "route", "with -http, send requests for a host or a path prefix to a policy's HTTP services: `HOST=POLICY` or /PREFIX=POLICY (repeatable)")
	cache := flag.Bool("cache", false, "with -http, cache GET and HEAD responses (64 MiB, 5 minutes unless they say otherwise)")
	cli.Program{
		Name:     "revproc",
		Summary:  "revproc runs a reverse proxy: servers register the privacy policy they serve, and it forwards each client's data message to one of them, round robin unless -balancer says otherwise, and relays the answer.",
		Synopsis: "-port PORT [-balancer NAME] [-admin ADDR [-pprof]] [-http ADDR [-route SPEC]... [-cache]] [-v | -q] [-timestamps]",
	}.Parse("port")
	switch {
	case *pprof && *admin == "":
		usageError("-pprof needs -admin")
	case (len(routes) > 0 || *cache) && *httpAddr == "":
		usageError("-route and -cache need -http")
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	p := &revproxy.Proxy{Logger: out.Logger(os.Stdout, ""), Balancer: balancer}
	say := io.Writer(os.Stdout)
	if out.Quiet {
		say = io.Discard
	}
	var front *httpproxy.Proxy
	if *httpAddr != "" {
		front = &httpproxy.Proxy{Forward: true, Table: p, Routes: routes, Logger: p.Logger}
		if *cache {
			front.Cache = &httpproxy.Cache{}
		}
	}
	if err := run(ctx, p, port.Addr(), *admin, *pprof, front, *httpAddr, say); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

// usageError says what is wrong with the command line, prints the usage
// and exits 2.
func usageError(msg string) {
	fmt.Fprintln(flag.CommandLine.Output(), msg)
	flag.Usage()
	os.Exit(2)
}

// run serves the proxy on addr and, if adminAddr is set, its admin pages,
// and, if front is set, the HTTP front door on httpAddr, saying where,
// until ctx is cancelled or one of them fails.
func run(ctx context.Context, p *revproxy.Proxy, addr, adminAddr string, pprof bool, front *httpproxy.Proxy, httpAddr string, say io.Writer) error {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("revproxy: %w", err)
	}
	g, ctx := errgroup.WithContext(ctx)
	admin := &revproxy.Admin{Proxy: p, Pprof: pprof}
	if front != nil {
		// The gateway sends its messages through this proxy, as any
		// client does.
		_, port, _ := net.SplitHostPort(ln.Addr().String())
		gw := &revproxy.Client{ID: "http-gateway", ProxyAddr: net.JoinHostPort("127.0.0.1", port)}
		defer gw.Close()
		front.Gateway = gw
		admin.Metrics, admin.Cards = front.AppendMetrics, front.StatusCards
		hln, err := lc.Listen(ctx, "tcp", httpAddr)
		if err != nil {
			ln.Close()
			return fmt.Errorf("HTTP front door: %w", err)
		}
		fmt.Fprintf(say, "Serving HTTP on http://%s/: a forward proxy (curl -x), CONNECT to port 443, POST /msg/{policy}, %d routes\n", hln.Addr(), len(front.Routes))
		g.Go(func() error { return front.Serve(ctx, hln) })
	}
	if adminAddr != "" {
		aln, err := lc.Listen(ctx, "tcp", adminAddr)
		if err != nil {
			ln.Close()
			return fmt.Errorf("admin pages: %w", err)
		}
		fmt.Fprintf(say, "Serving the admin pages on http://%s/\n", aln.Addr())
		g.Go(func() error { return serveAdmin(ctx, aln, admin) })
	}
	g.Go(func() error { return p.Serve(ctx, ln) })
	return g.Wait()
}

// routeFlag is -route, repeated: HOST=POLICY or /PREFIX=POLICY.
type routeFlag []httpproxy.Route

func (f *routeFlag) String() string { return fmt.Sprint(len(*f), " routes") }

func (f *routeFlag) Set(s string) error {
	match, policy, ok := strings.Cut(s, "=")
	if !ok || match == "" || policy == "" {
		return errors.New("want HOST=POLICY or /PREFIX=POLICY")
	}
	r := httpproxy.Route{Policy: policy}
	if strings.HasPrefix(match, "/") {
		r.Prefix = match
	} else {
		r.Host = match
	}
	*f = append(*f, r)
	return nil
}

// serveAdmin serves the admin pages on ln until ctx is cancelled, then
// lets the requests under way finish, for 5 seconds at most.
func serveAdmin(ctx context.Context, ln net.Listener, h http.Handler) error {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if srv.Shutdown(sctx) != nil {
			srv.Close() // such as a CPU profile still running
		}
	}()
	err := srv.Serve(ln)
	if errors.Is(err, http.ErrServerClosed) {
		<-stopped
		return nil
	}
	return fmt.Errorf("admin pages: %w", err)
}
