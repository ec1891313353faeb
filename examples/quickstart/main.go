// Command quickstart wires the three roles into one program: a proxy, a
// server for policy PP_1 and a client that sends it a message and checks
// the SHA1 digest in the reply.
package main

import (
	"context"
	"fmt"
	"log"
	"net"

	"golang.org/x/sync/errgroup"

	"github.com/seed-c202d8a5/revproxy"
)

func main() {
	if err := run(); err != nil {
		log.Fatal(err)
	}
}

func run() error {
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	roles, ctx := errgroup.WithContext(ctx)

	ln, err := net.Listen("tcp", "127.0.0.1:0") // any free port
	if err != nil {
		return err
	}
	proxyAddr := ln.Addr().String()
	proxy := &revproxy.Proxy{}
	roles.Go(func() error { return proxy.Serve(ctx, ln) })

	// Handler nil: answer with the SHA1 digest. Listener nil: the proxy
	// sends messages over the server's own connection to it.
	server := &revproxy.Server{ID: "100", Policy: "PP_1", ProxyAddr: proxyAddr}
	roles.Go(func() error { return server.Serve(ctx, nil) })

	err = send(ctx, proxy, proxyAddr)
	stop() // every role returns nil once stopped
	if rerr := roles.Wait(); rerr != nil {
		return rerr // why a role failed, not that send was cut short
	}
	return err
}

func send(ctx context.Context, proxy *revproxy.Proxy, proxyAddr string) error {
	if err := proxy.WaitServers(ctx, "PP_1", 1); err != nil {
		return err
	}
	client := &revproxy.Client{ID: "50", ProxyAddr: proxyAddr}
	defer client.Close()
	reply, err := client.Send(ctx, "PP_1", "hello")
	if err != nil {
		return err // a *revproxy.RemoteError if the proxy or server refused
	}
	if err := revproxy.VerifySHA1("hello", reply); err != nil {
		return err
	}
	fmt.Printf("server %s answered %s: the SHA1 of hello\n", reply.SrcID, reply.Payload)
	return nil
}
