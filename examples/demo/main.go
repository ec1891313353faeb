// Command demo runs the whole system in one process on loopback: a proxy,
// two SHA1 servers for PP_1, one for PP_2 and one with its own handler, and a
// client that shows round robin, verified SHA1 replies and the error for a
// policy nobody serves.
//
//	go run ./examples/demo
package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"

	"golang.org/x/sync/errgroup"

	"github.com/seed-c202d8a5/revproxy"
	"github.com/seed-c202d8a5/revproxy/examples/internal/cli"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "demo failed:", err)
		os.Exit(1)
	}
}

func run() error {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	g, gctx := errgroup.WithContext(ctx)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	out := &cli.Output{Verbose: true} // a handful of messages: show them all
	proxy := &revproxy.Proxy{Logger: out.Logger(os.Stdout, "[proxy]      ")}
	g.Go(func() error { return proxy.Serve(gctx, ln) })
	addr := ln.Addr().String()

	upper := revproxy.HandlerFunc(func(_ context.Context, m *revproxy.Message) (string, error) {
		return strings.ToUpper(m.Payload), nil
	})
	servers := []*revproxy.Server{
		{ID: "100", Policy: "PP_1"},
		{ID: "101", Policy: "PP_1"},
		{ID: "200", Policy: "PP_2"},
		{ID: "300", Policy: "UPPER", Handler: upper},
	}
	for _, s := range servers {
		s.ProxyAddr = addr
		s.Logger = out.Logger(os.Stdout, fmt.Sprintf("[server %s] ", s.ID))
		// One at a time, so that the rotation is in the order above. Count
		// before starting it: it may register before the next line runs.
		want := len(proxy.Servers(s.Policy)) + 1
		g.Go(func() error { return s.ListenAndServe(gctx, "127.0.0.1:0") })
		if err := proxy.WaitServers(gctx, s.Policy, want); err != nil {
			return err
		}
	}

	client := &revproxy.Client{ID: "50", ProxyAddr: addr}
	say := out.Logger(os.Stdout, "[client 50]  ").With("proxy", addr)
	var failed []string
	var rotation []string
	send := func(policy, payload string) *revproxy.Message {
		say.Info("Sending message", "policy", policy, "payload", payload)
		reply, err := client.Send(gctx, policy, payload)
		if err != nil {
			say.Warn("Received an error message", "err", err)
			return nil
		}
		say.Info("Receiving a response", "server", reply.SrcID, "payload", reply.Payload)
		if policy == "UPPER" {
			return reply
		}
		if err := revproxy.VerifySHA1(payload, reply); err != nil {
			say.Warn("SHA1 does not match", "err", err)
			failed = append(failed, payload)
		} else {
			say.Info("SHA1 matches: the message arrived intact")
		}
		return reply
	}
	for i := 1; i <= 5; i++ {
		if reply := send("PP_1", fmt.Sprintf("message %d for PP_1", i)); reply != nil {
			rotation = append(rotation, reply.SrcID)
		}
	}
	send("PP_2", "héllo wörld")
	send("UPPER", "any handler can serve a policy")
	say.Info("Sending message", "policy", "PP_9", "payload", "nobody serves this")
	_, err = client.Send(gctx, "PP_9", "nobody serves this")
	noServer := errors.Is(err, revproxy.ErrNoServer)
	say.Info(fmt.Sprintf("Receiving an error at once: %v (errors.Is(err, revproxy.ErrNoServer): %v)", err, noServer))
	client.Close()

	fmt.Println()
	fmt.Println("Round robin for PP_1:", strings.Join(rotation, " → "))
	cancel()
	if err := g.Wait(); err != nil {
		return err
	}
	switch {
	case len(rotation) != 5 || strings.Join(rotation, " ") != "100 101 100 101 100":
		return fmt.Errorf("PP_1 was served by %v, want 100 101 100 101 100", rotation)
	case len(failed) > 0:
		return fmt.Errorf("SHA1 did not match for %q", failed)
	case !noServer:
		return fmt.Errorf("PP_9 gave %v, want ErrNoServer", err)
	}
	fmt.Println("Every SHA1 reply verified; the unknown policy got an immediate error. All roles stopped.")
	return nil
}
