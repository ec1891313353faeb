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
	"syscall"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/seed-c202d8a5/revproxy"
	"github.com/seed-c202d8a5/revproxy/examples/internal/cli"
)

func main() {
	port := cli.PortFlag("port", "the well-known `PORT` servers and clients connect to (0 picks one)")
	out := cli.OutputFlags()
	var balancer revproxy.Balancer
	flag.TextVar(&balancer, "balancer", revproxy.RoundRobin, "how to choose a policy's server for each message: `round-robin`, least-in-flight or p2c")
	admin := flag.String("admin", "", "serve the admin pages (/metrics, /status, /status.json, /healthz) on `ADDR`, such as 127.0.0.1:9090")
	pprof := flag.Bool("pprof", false, "with -admin, serve the runtime's profiles under /debug/pprof/")
	cli.Program{
		Name:     "revproc",
		Summary:  "revproc runs a reverse proxy: servers register the privacy policy they serve, and it forwards each client's data message to one of them, round robin unless -balancer says otherwise, and relays the answer.",
		Synopsis: "-port PORT [-balancer NAME] [-admin ADDR [-pprof]] [-v | -q] [-timestamps]",
	}.Parse("port")
	if *pprof && *admin == "" {
		fmt.Fprintln(flag.CommandLine.Output(), "-pprof needs -admin")
		flag.Usage()
		os.Exit(2)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	p := &revproxy.Proxy{Logger: out.Logger(os.Stdout, ""), Balancer: balancer}
	say := io.Writer(os.Stdout)
	if out.Quiet {
		say = io.Discard
	}
	if err := run(ctx, p, port.Addr(), *admin, *pprof, say); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

// run serves the proxy on addr and, if adminAddr is set, its admin pages,
// saying where, until ctx is cancelled or either fails.
func run(ctx context.Context, p *revproxy.Proxy, addr, adminAddr string, pprof bool, say io.Writer) error {
	g, ctx := errgroup.WithContext(ctx)
	if adminAddr != "" {
		var lc net.ListenConfig
		ln, err := lc.Listen(ctx, "tcp", adminAddr)
		if err != nil {
			return fmt.Errorf("admin pages: %w", err)
		}
		fmt.Fprintf(say, "Serving the admin pages on http://%s/\n", ln.Addr())
		g.Go(func() error { return serveAdmin(ctx, ln, &revproxy.Admin{Proxy: p, Pprof: pprof}) })
	}
	g.Go(func() error { return p.ListenAndServe(ctx, addr) })
	return g.Wait()
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
