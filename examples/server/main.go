// Command server runs a revproxy server that answers with the SHA1 digest of
// each payload:
//
//	go run ./examples/server -id 100 -pp PP_1 -listen 124 -revproc 123
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
	id := flag.String("id", "", "the server's `ID`")
	policy := flag.String("pp", "", "the privacy policy `PPID` it serves")
	listen := flag.Int("listen", 0, "the `LPORT` it listens on (0 picks one)")
	revproc := flag.String("revproc", "", "the proxy's `RPPORT`, or host:port")
	asStrings := flag.Bool("strings", false, "write numbers as JSON strings, for proxies that expect them")
	flag.Usage = func() {
		fmt.Fprintln(flag.CommandLine.Output(), "usage: server -id ID -pp PPID -listen LPORT -revproc RPPORT")
		flag.PrintDefaults()
	}
	flag.Parse()
	cli.Require("id", "pp", "listen", "revproc")
	proxyAddr, err := cli.ProxyAddr(*revproc)
	if err != nil {
		fmt.Fprintln(flag.CommandLine.Output(), "-revproc:", err)
		flag.Usage()
		os.Exit(2)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	s := &revproxy.Server{
		ID:           *id,
		Policy:       *policy,
		ProxyAddr:    proxyAddr,
		StringFields: *asStrings,
		Logger:       cli.Logger(os.Stdout, ""),
	}
	if err := s.ListenAndServe(ctx, net.JoinHostPort("", strconv.Itoa(*listen))); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
