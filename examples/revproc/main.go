// Command revproc runs a revproxy proxy on a well-known port:
//
//	go run ./examples/revproc -port 123
//
// It prints what happens as the homework's sample terminal does: the
// servers that register, and the lines of the first few messages (-v: of
// every message; -q: failures only).
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/seed-c202d8a5/revproxy"
	"github.com/seed-c202d8a5/revproxy/examples/internal/cli"
)

func main() {
	port := cli.PortFlag("port", "the well-known `PORT` servers and clients connect to (0 picks one)")
	out := cli.OutputFlags()
	var balancer revproxy.Balancer
	flag.TextVar(&balancer, "balancer", revproxy.RoundRobin, "how to choose a policy's server for each message: `round-robin`, least-in-flight or p2c")
	cli.Program{
		Name:     "revproc",
		Summary:  "revproc runs a reverse proxy: servers register the privacy policy they serve, and it forwards each client's data message to one of them, round robin unless -balancer says otherwise, and relays the answer.",
		Synopsis: "-port PORT [-balancer NAME] [-v | -q] [-timestamps]",
	}.Parse("port")

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	p := &revproxy.Proxy{Logger: out.Logger(os.Stdout, ""), Balancer: balancer}
	if err := p.ListenAndServe(ctx, port.Addr()); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
