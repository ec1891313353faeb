// Package revproxy is a message-switching reverse proxy: servers register
// the policy (service name) they serve, clients send messages tagged with a
// policy, and the proxy forwards each to a server of that policy, round
// robin, and relays the answer.
//
// # Roles
//
// A [Proxy] listens on a well-known port. A [Server] dials the proxy,
// registers its id, policy and listen port, and answers forwarded messages
// with its [Handler]; the default, [SHA1Handler], answers with the SHA1 hex
// digest of the payload, which a client checks with [VerifySHA1]. A [Client]
// sends messages to the proxy and waits for the answers.
//
// Each role runs until its context is cancelled, and returns only after every
// goroutine it started has exited. A Server started before its proxy keeps
// trying to register (unless FailFast); [Proxy.WaitServers] waits until a
// policy has its servers. This program, examples/quickstart in the module,
// wires the three together:
//
//	// Command quickstart wires the three roles into one program: a proxy, a
//	// server for policy PP_1 and a client that sends it a message and checks
//	// the SHA1 digest in the reply.
//	package main
//
//	import (
//		"context"
//		"fmt"
//		"log"
//		"net"
//
//		"golang.org/x/sync/errgroup"
//
//		"github.com/seed-c202d8a5/revproxy"
//	)
//
//	func main() {
//		if err := run(); err != nil {
//			log.Fatal(err)
//		}
//	}
//
//	func run() error {
//		ctx, stop := context.WithCancel(context.Background())
//		defer stop()
//		roles, ctx := errgroup.WithContext(ctx)
//
//		ln, err := net.Listen("tcp", "127.0.0.1:0") // any free port
//		if err != nil {
//			return err
//		}
//		proxyAddr := ln.Addr().String()
//		proxy := &revproxy.Proxy{}
//		roles.Go(func() error { return proxy.Serve(ctx, ln) })
//
//		// Handler nil: answer with the SHA1 digest. Listener nil: the proxy
//		// sends messages over the server's own connection to it.
//		server := &revproxy.Server{ID: "100", Policy: "PP_1", ProxyAddr: proxyAddr}
//		roles.Go(func() error { return server.Serve(ctx, nil) })
//
//		err = send(ctx, proxy, proxyAddr)
//		stop() // every role returns nil once stopped
//		if rerr := roles.Wait(); rerr != nil {
//			return rerr // why a role failed, not that send was cut short
//		}
//		return err
//	}
//
//	func send(ctx context.Context, proxy *revproxy.Proxy, proxyAddr string) error {
//		if err := proxy.WaitServers(ctx, "PP_1", 1); err != nil {
//			return err
//		}
//		client := &revproxy.Client{ID: "50", ProxyAddr: proxyAddr}
//		defer client.Close()
//		reply, err := client.Send(ctx, "PP_1", "hello")
//		if err != nil {
//			return err // a *revproxy.RemoteError if the proxy or server refused
//		}
//		if err := revproxy.VerifySHA1("hello", reply); err != nil {
//			return err
//		}
//		fmt.Printf("server %s answered %s: the SHA1 of hello\n", reply.SrcID, reply.Payload)
//		return nil
//	}
//
// Each role counts what it does, without a lock on a message's way:
// [Proxy.Stats], [Server.Stats] and [Client.Stats] return snapshots, plain
// values with JSON tags.
//
// # Protocol
//
// Peers exchange JSON objects over TCP with no framing; revproxy writes each
// as one line of compact JSON and reads any sequence of objects, with or
// without white space between them. There are four message types ([Type]):
//
//	data  (0) client → proxy → server  {"type":0,"srcid":50,"privPoliId":"PP_1","payloadsize":5,"payload":"hello","seq":1}
//	setup (1) server → proxy           {"type":1,"id":100,"privPolyId":"PP_1","privPoliId":"PP_1","listenport":124,"hold":true,"mux":true}
//	reply (2) server → proxy → client  {"type":2,"srcid":100,"destid":50,"payloadsize":40,"payload":"aaf4c6…","seq":1}
//	error (3) proxy or server → client {"type":3,"srcid":"proxy","destid":50,"payloadsize":25,"payload":"no server for policy PP_9","code":"no_server"}
//
// The homework's peers work one message at a time: a client waits for each
// answer, and the proxy opens a connection to a server's listen port for
// each message. Between revproxy's own roles, two optional fields do better.
// "seq" tags a data message, and its answer carries the same tag, so answers
// may come back out of order and one [Client] connection carries many
// concurrent Sends. "mux" in a setup message asks the [Proxy] to send the
// server its messages over the registration connection, tagged with seq: the
// server needs no listen port, and the proxy no connection per message.
//
// When no server serves a policy, or none of its servers can take the
// message, the client gets an error message at once; a [Client] returns it
// as a [*RemoteError] that matches [ErrNoServer] or [ErrUnavailable]. A
// message is never sent twice: if its server fails after taking it, the
// client gets [ErrUnavailable].
//
// # Compatibility
//
// revproxy talks to peers written from the homework and its tutorial:
//
//   - Types, ids, sizes and ports are read as JSON numbers or numeric
//     strings; ids and payloads may be any scalar. Unknown keys are ignored.
//   - The policy is read from "privPoliId" or "privPolyId", whichever is
//     present. Setup messages carry both keys.
//   - Numbers are written as numbers, or as strings with the StringFields
//     option of [Server] and [Client]. A Proxy answers each peer the way that
//     peer writes.
//   - A server may register over a short-lived connection; closing it does not
//     deregister the server. A server that sets "hold" (a Server does) keeps
//     the connection open, and its closing deregisters the server.
//   - Registering an id again replaces the earlier entry, keeping its place
//     in the rotation when the policy is the same.
//   - Untagged messages are answered in order, one at a time.
//   - "hold", "mux", "seq" and "code" are revproxy's extensions; other peers
//     ignore them.
//
// # Operations
//
// [Proxy.Stats] returns a snapshot of a proxy: its policies and servers in
// the table's order, each server's state ([Up], [Draining] or [Ejected]),
// messages in flight, counts and latency, and the proxy's totals and recent
// errors. [Admin] serves it over HTTP for operators: Prometheus metrics, a
// status page that refreshes itself, the snapshot as JSON, a health check
// and, if asked, the runtime's profiles. The module's examples/revproc
// serves it with -admin.
//
// # Failures and security
//
// Every data message gets exactly one answer: a reply or an error message.
// A Server started before its proxy keeps trying to register; one that a
// proxy does not acknowledge within AckTimeout (a proxy written from the
// homework) closes its registration connection and serves its listener.
// A server keeps its registration open and pings the proxy ([Server]
// Heartbeat); a lost proxy is found again with backoff; a stopping server
// drains ([Server] DrainTimeout). A message lost with its server is answered
// with [ErrUnavailable], or sent to another server if the server registered
// as Idempotent. A [Client] with Retry sends again what was lost, and with
// ProxyAddrs fails over between proxies. The time left on a Send's context
// travels with the message: the proxy answers [ErrTimeout] when it passes.
//
// A [Proxy] bounds message size, connections and each server's queue
// ([ErrOverloaded]), times out silent connections, and can require TLS, a
// client certificate from servers (RequireServerCert), a registration Token,
// and an Authorize decision for every message. A server id held by a live
// server cannot be taken over ([ErrIDInUse]).
//
// # Errors
//
// Errors can be tested with [errors.Is] against the package's sentinel
// errors; an error message from the far side is a [*RemoteError], which
// [errors.As] finds.
//
// The module's docs directory describes the protocol, the failure
// semantics and the security model in full.
package revproxy
