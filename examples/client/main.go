// Command client sends the data message in a packet file through a revproxy
// proxy and checks the SHA1 digest in the reply:
//
//	go run ./examples/client -id 50 -revproc 123 -pkt mypkt.json
//
// The packet file holds one data message, such as
//
//	{"type": 0, "srcid": 50, "privPoliId": "PP_1", "payloadsize": 5, "payload": "hello"}
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/seed-c202d8a5/revproxy"
	"github.com/seed-c202d8a5/revproxy/examples/internal/cli"
)

func main() {
	id := flag.String("id", "", "the client's `ID`")
	revproc := flag.String("revproc", "", "the proxy's `PORT`, or host:port")
	pkt := flag.String("pkt", "", "the `PKTFILE` holding the data message as JSON")
	asStrings := flag.Bool("strings", false, "write numbers as JSON strings, for proxies that expect them")
	timeout := flag.Duration("timeout", 30*time.Second, "how long to wait for the reply")
	flag.Usage = func() {
		fmt.Fprintln(flag.CommandLine.Output(), "usage: client -id ID -revproc PORT -pkt PKTFILE")
		flag.PrintDefaults()
	}
	flag.Parse()
	cli.Require("id", "revproc", "pkt")
	proxyAddr, err := cli.ProxyAddr(*revproc)
	if err != nil {
		fmt.Fprintln(flag.CommandLine.Output(), "-revproc:", err)
		flag.Usage()
		os.Exit(2)
	}
	if err := run(*id, proxyAddr, *pkt, *asStrings, *timeout); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func run(id, proxyAddr, pkt string, asStrings bool, timeout time.Duration) error {
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
	c := &revproxy.Client{ID: id, ProxyAddr: proxyAddr, StringFields: asStrings}
	defer c.Close()

	fmt.Printf("Sending message %q to privacy policy %s through reverse proxy at %s\n", m.Payload, m.Policy, proxyAddr)
	reply, err := c.Send(ctx, m.Policy, m.Payload)
	if err != nil {
		return err
	}
	fmt.Printf("Receiving a response from the server %s payload: %s\n", reply.SrcID, reply.Payload)
	if err := revproxy.VerifySHA1(m.Payload, reply); err != nil {
		return err
	}
	fmt.Println("SHA1 matches: the message arrived intact")
	return nil
}
