// Command server runs a revproxy server that answers with the SHA1 digest of
// each payload:
//
//	go run ./examples/server -id 100 -pp PP_1 -listen 124 -revproc 123
//
// It prints what happens as the homework's sample terminal does; -v prints
// the lines of every message, not only the first few, and -q failures only.
// -weight N asks for N times the share of messages of a server of weight 1,
// from a proxy that balances by weight (revproc's round robin does).
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
	id := flag.String("id", "", "the server's `ID`")
	policy := flag.String("pp", "", "the privacy policy `PPID` it serves")
	listen := cli.PortFlag("listen", "the `LPORT` it listens on (0 picks one)")
	revproc := cli.ProxyAddrFlag("revproc", "the reverse proxy's `RPPORT`, or host:port")
	asStrings := flag.Bool("strings", false, "write numbers as JSON strings, for proxies that expect them")
	weight := cli.IntFlag("weight", 1, 1, 1000, "the server's `WEIGHT`, 1 to 1000: its share of the policy's messages against other servers' weights, for a revproxy proxy that balances by weight (round robin, least-in-flight, p2c); other proxies ignore it")
	httpPort := cli.IntFlag("http-port", 0, 0, 65535, "announce an HTTP service on `PORT` of this host, run by another program: a revproxy proxy's HTTP front door (revproc -http -route) sends the policy's HTTP requests there")
	out := cli.OutputFlags()
	cli.Program{
		Name:     "server",
		Summary:  "server registers with a reverse proxy as serving a privacy policy, and answers each data message with the SHA1 digest of its payload.",
		Synopsis: "-id ID -pp PPID -listen LPORT -revproc RPPORT [-weight WEIGHT] [-http-port PORT] [-strings] [-v | -q] [-timestamps]",
	}.Parse("id", "pp", "listen", "revproc")

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	s := &revproxy.Server{
		ID:           *id,
		Policy:       *policy,
		ProxyAddr:    revproc.String(),
		StringFields: *asStrings,
		Weight:       weight.Value,
		HTTPPort:     httpPort.Value,
		Logger:       out.Logger(os.Stdout, ""),
	}
	if err := s.ListenAndServe(ctx, listen.Addr()); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
