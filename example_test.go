package revproxy_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/seed-c202d8a5/revproxy"
)

// Example runs the whole system in one process: a proxy, two SHA1 servers
// for PP_1 and a client whose five messages are shared round robin.
func Example() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	proxy := &revproxy.Proxy{}
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	go proxy.Serve(ctx, ln)
	addr := ln.Addr().String()

	for n, id := range []string{"1", "2"} {
		s := &revproxy.Server{ID: id, Policy: "PP_1", ProxyAddr: addr}
		go s.ListenAndServe(ctx, "127.0.0.1:0")
		for len(proxy.Servers("PP_1")) <= n {
			time.Sleep(time.Millisecond) // register in order: 1, then 2
		}
	}

	client := &revproxy.Client{ID: "50", ProxyAddr: addr}
	defer client.Close()
	for i := 1; i <= 5; i++ {
		payload := fmt.Sprintf("message %d", i)
		reply, err := client.Send(ctx, "PP_1", payload)
		if err != nil {
			fmt.Println(err)
			return
		}
		fmt.Printf("%s: server %s, sha1 ok: %v\n", payload, reply.SrcID, revproxy.VerifySHA1(payload, reply) == nil)
	}
	// Output:
	// message 1: server 1, sha1 ok: true
	// message 2: server 2, sha1 ok: true
	// message 3: server 1, sha1 ok: true
	// message 4: server 2, sha1 ok: true
	// message 5: server 1, sha1 ok: true
}

// ExampleProxy runs a proxy and shows the error a client gets for a policy no
// server serves.
func ExampleProxy() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	proxy := &revproxy.Proxy{}
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	done := make(chan error, 1)
	go func() { done <- proxy.Serve(ctx, ln) }()

	client := &revproxy.Client{ID: "50", ProxyAddr: ln.Addr().String()}
	_, err := client.Send(ctx, "PP_9", "hello")
	fmt.Println(err)
	fmt.Println(errors.Is(err, revproxy.ErrNoServer))
	client.Close()

	cancel()
	fmt.Println("Serve returned:", <-done)
	// Output:
	// revproxy: error from proxy: no server for policy PP_9
	// true
	// Serve returned: <nil>
}

// ExampleServer registers a server with a custom handler.
func ExampleServer() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	proxy := &revproxy.Proxy{}
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	go proxy.Serve(ctx, ln)

	server := &revproxy.Server{
		ID:        "100",
		Policy:    "UPPER",
		ProxyAddr: ln.Addr().String(),
		Handler: revproxy.HandlerFunc(func(ctx context.Context, m *revproxy.Message) (string, error) {
			return strings.ToUpper(m.Payload), nil
		}),
	}
	go server.ListenAndServe(ctx, "127.0.0.1:0")
	for len(proxy.Servers("UPPER")) == 0 {
		time.Sleep(time.Millisecond)
	}

	client := &revproxy.Client{ID: "50", ProxyAddr: ln.Addr().String()}
	defer client.Close()
	reply, _ := client.Send(ctx, "UPPER", "hello")
	fmt.Println(reply.SrcID, reply.Payload)
	// Output: 100 HELLO
}

// ExampleClient sends a message and checks the SHA1 reply.
func ExampleClient() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	proxy := &revproxy.Proxy{}
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	go proxy.Serve(ctx, ln)
	go (&revproxy.Server{ID: "100", Policy: "PP_1", ProxyAddr: ln.Addr().String()}).ListenAndServe(ctx, "127.0.0.1:0")
	for len(proxy.Servers("PP_1")) == 0 {
		time.Sleep(time.Millisecond)
	}

	client := &revproxy.Client{ID: "50", ProxyAddr: ln.Addr().String()}
	defer client.Close()
	reply, err := client.Send(ctx, "PP_1", "hello")
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(reply.Payload)
	fmt.Println(revproxy.VerifySHA1("hello", reply))
	// Output:
	// aaf4c61ddcc5e8a2dabede0f3b482cd9aea9434d
	// <nil>
}

// ExampleHandlerFunc turns a function into a Handler; an error it returns
// reaches the client as a RemoteError.
func ExampleHandlerFunc() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	proxy := &revproxy.Proxy{}
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	go proxy.Serve(ctx, ln)

	reverse := revproxy.HandlerFunc(func(ctx context.Context, m *revproxy.Message) (string, error) {
		if m.Payload == "" {
			return "", fmt.Errorf("empty payload")
		}
		r := []rune(m.Payload)
		for i, j := 0, len(r)-1; i < j; i, j = i+1, j-1 {
			r[i], r[j] = r[j], r[i]
		}
		return string(r), nil
	})
	go (&revproxy.Server{ID: "7", Policy: "REV", ProxyAddr: ln.Addr().String(), Handler: reverse}).ListenAndServe(ctx, "127.0.0.1:0")
	for len(proxy.Servers("REV")) == 0 {
		time.Sleep(time.Millisecond)
	}

	client := &revproxy.Client{ID: "50", ProxyAddr: ln.Addr().String()}
	defer client.Close()
	reply, _ := client.Send(ctx, "REV", "stressed")
	fmt.Println(reply.Payload)
	_, err := client.Send(ctx, "REV", "")
	fmt.Println(err)
	// Output:
	// desserts
	// revproxy: error from 7: empty payload
}

// ExampleServer_Serve runs a server with no listener: a revproxy Proxy sends
// it messages over the connection it registered on, so it needs no open
// port and can sit behind NAT.
func ExampleServer_Serve() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	proxy := &revproxy.Proxy{}
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	go proxy.Serve(ctx, ln)

	server := &revproxy.Server{ID: "100", Policy: "PP_1", ProxyAddr: ln.Addr().String()}
	go server.Serve(ctx, nil)
	for len(proxy.Servers("PP_1")) == 0 {
		time.Sleep(time.Millisecond)
	}

	client := &revproxy.Client{ID: "50", ProxyAddr: ln.Addr().String()}
	defer client.Close()
	reply, _ := client.Send(ctx, "PP_1", "hello")
	fmt.Println(reply.SrcID, revproxy.VerifySHA1("hello", reply) == nil)
	// Output: 100 true
}
