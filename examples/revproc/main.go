// Command revproc runs a revproxy proxy on a well-known port:
//
//	go run ./examples/revproc -port 123
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"strconv"
	"syscall"

	"github.com/seed-c202d8a5/revproxy"
	"github.com/seed-c202d8a5/revproxy/examples/internal/cli"
)

func main() {
	port := flag.Int("port", 0, "the well-known `PORT` servers and clients connect to")
	flag.Usage = func() {
		fmt.Fprintln(flag.CommandLine.Output(), "usage: revproc -port PORT")
		flag.PrintDefaults()
	}
	flag.Parse()
	cli.Require("port")

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	p := &revproxy.Proxy{Logger: cli.Logger(os.Stdout, "")}
	if err := p.ListenAndServe(ctx, net.JoinHostPort("", strconv.Itoa(*port))); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
