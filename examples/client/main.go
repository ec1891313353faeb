// Command client sends the data message in a packet file through a revproxy
// proxy and checks the SHA1 digest in the reply:
//
//	go run ./examples/client -id 50 -revproc 123 -pkt mypkt.json
//
// The packet file holds one data message, such as
//
//	{"type": 0, "srcid": 50, "privPoliId": "PP_1", "payloadsize": 5, "payload": "hello"}
//
// It exits 1 when the digest does not match or an error message comes back.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/seed-c202d8a5/revproxy"
	"github.com/seed-c202d8a5/revproxy/examples/internal/cli"
)

func main() {
	id := flag.String("id", "", "the client's `ID`")
	revproc := cli.ProxyAddrFlag("revproc", "the reverse proxy's `PORT`, or host:port")
	pkt := flag.String("pkt", "", "the `PKTFILE` holding the data message as JSON")
	asStrings := flag.Bool("strings", false, "write numbers as JSON strings, for proxies that expect them")
	timeout := flag.Duration("timeout", 30*time.Second, "how long to wait for the reply")
	out := cli.OutputFlags()
	cli.Program{
		Name:     "client",
		Summary:  "client sends the data message in a packet file to a server of its privacy policy through a reverse proxy, and checks the SHA1 digest in the reply.",
		Synopsis: "-id ID -revproc PORT -pkt PKTFILE [-strings] [-timeout D] [-v | -q] [-timestamps]",
	}.Parse("id", "revproc", "pkt")
	log := out.Logger(os.Stdout, "")
	if err := run(log, *id, revproc.String(), *pkt, *asStrings, *timeout); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func run(log *slog.Logger, id, proxyAddr, pkt string, asStrings bool, timeout time.Duration) error {
	data, err := os.ReadFile(pkt)
	if err != nil {
		return err
	}
	var m revproxy.Message
	if err := json.Unmarshal(data, &m); err != nil {
		return fmt.Errorf("%s: %w", pkt, err)
	}
	if m.Type != revproxy.TypeData {
		return fmt.Errorf("%s holds a %s message, not a data message", pkt, m.Type)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	c := &revproxy.Client{ID: id, ProxyAddr: proxyAddr, StringFields: asStrings, Logger: log}
	defer c.Close()

	log.Info("Sending message", "payload", m.Payload, "policy", m.Policy, "proxy", proxyAddr)
	reply, err := c.Send(ctx, m.Policy, m.Payload)
	if err != nil {
		return err
	}
	log.Info("Receiving a response", "server", reply.SrcID, "payload", reply.Payload)
	if err := revproxy.VerifySHA1(m.Payload, reply); err != nil {
		return err
	}
	log.Info("SHA1 matches: the message arrived intact")
	return nil
}
