package revproxy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// waitStats polls stats until it returns want, failing the test with the
// difference after 5s: counters are counted as answers are queued, so a
// client may hold its answer a moment before a server's in-hand count
// drops.
func waitStats[T any](t *testing.T, what string, stats func() T, want T) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for got := stats(); !cmp.Equal(got, want); got = stats() {
		if time.Now().After(deadline) {
			t.Fatalf("%s (-want +got):\n%s", what, cmp.Diff(want, got))
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// statsHandler echoes the payload, fails on "fail", panics on "panic",
// answers "big" with more than 1 KiB and holds "hold" until open closes.
type statsHandler struct{ open chan struct{} }

func (h statsHandler) ServeMessage(ctx context.Context, m *Message) (string, error) {
	switch m.Payload {
	case "fail":
		return "", errors.New("failed as asked")
	case "panic":
		panic("as asked")
	case "big":
		return strings.Repeat("b", 2048), nil
	case "hold":
		select {
		case <-h.open:
		case <-ctx.Done():
			return "", ctx.Err()
		}
	}
	return m.Payload, nil
}

// TestNodeStats sends a known mix through a proxy (replies, a handler
// error, a panic, an answer too large, a policy nobody serves, a Send
// cancelled while its message is held) and checks the exact counts of the
// Server and the Client, before, during and after.
func TestNodeStats(t *testing.T) {
	h := statsHandler{open: make(chan struct{})}
	s := &Server{ID: "100", Policy: "PP_1", Handler: h, MaxMessageSize: 1024}
	c := &Client{ID: "50"}
	t.Cleanup(func() { c.Close() })
	if diff := cmp.Diff(ServerNodeStats{}, s.Stats()); diff != "" {
		t.Errorf("Server.Stats before Serve (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(ClientNodeStats{}, c.Stats()); diff != "" {
		t.Errorf("Client.Stats before Send (-want +got):\n%s", diff)
	}

	p, addr := startProxy(t)
	s.ProxyAddr, c.ProxyAddr = addr, addr
	startServer(t, p, s)
	ctx := testContext(t)
	for _, tc := range []struct {
		policy, payload string
		err             error
	}{
		{"PP_1", "a", nil},
		{"PP_1", "b", nil},
		{"PP_1", "fail", ErrHandler},
		{"PP_1", "c", nil},
		{"PP_1", "panic", ErrHandler},
		{"PP_1", "big", ErrTooLarge},
		{"PP_9", "x", ErrNoServer},
	} {
		reply, err := c.Send(ctx, tc.policy, tc.payload)
		if !errors.Is(err, tc.err) {
			t.Fatalf("Send(%s, %s) = %v, want %v", tc.policy, tc.payload, err, tc.err)
		}
		if err == nil && reply.Payload != tc.payload {
			t.Fatalf("Send(%s, %s) answered %q", tc.policy, tc.payload, reply.Payload)
		}
	}

	held, cancel := context.WithCancel(ctx)
	sent := make(chan error, 1)
	go func() {
		_, err := c.Send(held, "PP_1", "hold")
		sent <- err
	}()
	wantServer := ServerNodeStats{Conns: 1, Proxies: 1, Registrations: 1, InHand: 1, Messages: 7, Answered: 3,
		Errors: map[string]uint64{"handler": 2, "too_large": 1}, Panics: 1}
	waitStats(t, "Server.Stats while holding a message", s.Stats, wantServer)
	wantClient := ClientNodeStats{Proxy: addr, Connects: 1, InFlight: 1, Sent: 8, Answered: 3,
		Errors: map[string]uint64{"handler": 2, "too_large": 1, "no_server": 1}}
	waitStats(t, "Client.Stats while its message is held", c.Stats, wantClient)

	cancel()
	if err := <-sent; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled Send = %v, want context.Canceled", err)
	}
	wantClient.InFlight = 0
	wantClient.Errors["canceled"] = 1
	if diff := cmp.Diff(wantClient, c.Stats()); diff != "" {
		t.Errorf("Client.Stats after the cancelled Send (-want +got):\n%s", diff)
	}
	close(h.open) // the server answers the held message all the same
	wantServer.InHand = 0
	wantServer.Answered++
	waitStats(t, "Server.Stats once the held message is answered", s.Stats, wantServer)
}

// TestNodeStatsProxyRestart: a Server registered with two proxies counts
// them, loses one when it stops and counts its registration again when it
// comes back; the Client connects to it again.
func TestNodeStatsProxyRestart(t *testing.T) {
	p0, addr0 := startProxy(t)
	ln := listen(t)
	addr := ln.Addr().String()
	ctx1, stop1 := context.WithCancel(context.Background())
	t.Cleanup(stop1)
	p1 := &Proxy{}
	done := make(chan error, 1)
	go func() { done <- p1.Serve(ctx1, ln) }()

	s := &Server{ID: "100", Policy: "PP_1", ProxyAddrs: []string{addr0, addr}}
	runRole(t, func(ctx context.Context) error { return s.Serve(ctx, nil) })
	for _, p := range []*Proxy{p0, p1} {
		waitFor(t, "the server to register", func() bool { return len(p.Servers("PP_1")) == 1 })
	}
	c := newClient(t, addr, "50")
	if _, err := c.Send(testContext(t), "PP_1", "x"); err != nil {
		t.Fatal(err)
	}
	want := ServerNodeStats{Conns: 2, Proxies: 2, Registrations: 2, Messages: 1, Answered: 1}
	waitStats(t, "Server.Stats with two proxies", s.Stats, want)

	stop1()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	want.Conns, want.Proxies = 1, 1
	waitStats(t, "Server.Stats after a proxy stopped", s.Stats, want)
	wantClient := ClientNodeStats{Connects: 1, Sent: 1, Answered: 1}
	waitStats(t, "Client.Stats after its proxy stopped", c.Stats, wantClient)

	ln2, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	p2 := &Proxy{}
	runRole(t, func(ctx context.Context) error { return p2.Serve(ctx, ln2) })
	waitFor(t, "the server to register again", func() bool { return len(p2.Servers("PP_1")) == 1 })
	if _, err := c.Send(testContext(t), "PP_1", "y"); err != nil {
		t.Fatal(err)
	}
	want = ServerNodeStats{Conns: 2, Proxies: 2, Registrations: 3, Messages: 2, Answered: 2}
	waitStats(t, "Server.Stats after the proxy came back", s.Stats, want)
	wantClient = ClientNodeStats{Proxy: addr, Connects: 2, Sent: 2, Answered: 2}
	if diff := cmp.Diff(wantClient, c.Stats()); diff != "" {
		t.Errorf("Client.Stats after the proxy came back (-want +got):\n%s", diff)
	}
}

// TestClientNodeStatsOwnErrors: the failures a Client finds itself count
// under codes of their own.
func TestClientNodeStatsOwnErrors(t *testing.T) {
	// silent is a listener that never accepts: the client connects (the
	// kernel completes the handshake) and nothing ever answers.
	silent := listen(t)
	t.Cleanup(func() { silent.Close() })
	closed := listen(t)
	closedAddr := closed.Addr().String()
	closed.Close()
	// lost accepts one connection, to close it under a Send.
	lost := listen(t)
	t.Cleanup(func() { lost.Close() })
	accepted := make(chan net.Conn, 1)
	go func() {
		if conn, err := lost.Accept(); err == nil {
			accepted <- conn
		}
		close(accepted)
	}()
	_, proxyAddr := startProxy(t)

	for _, tc := range []struct {
		name string
		c    *Client
		send func(c *Client) error // returns Send's error
		want ClientNodeStats
		err  error
	}{{
		name: "config",
		c:    &Client{},
		err:  ErrConfig,
		want: ClientNodeStats{Errors: map[string]uint64{"config": 1}},
	}, {
		name: "no_proxy",
		c:    &Client{ProxyAddr: closedAddr},
		err:  ErrNoProxy,
		want: ClientNodeStats{Errors: map[string]uint64{"no_proxy": 1}},
	}, {
		name: "closed",
		c:    &Client{ProxyAddr: proxyAddr},
		send: func(c *Client) error {
			c.Close()
			_, err := c.Send(testContext(t), "PP_1", "x")
			return err
		},
		err:  ErrClosed,
		want: ClientNodeStats{Errors: map[string]uint64{"closed": 1}},
	}, {
		name: "too_large",
		c:    &Client{ProxyAddr: proxyAddr, MaxMessageSize: 100},
		send: func(c *Client) error {
			_, err := c.Send(testContext(t), "PP_1", strings.Repeat("x", 100))
			return err
		},
		err:  ErrTooLarge,
		want: ClientNodeStats{Proxy: proxyAddr, Connects: 1, Errors: map[string]uint64{"too_large": 1}},
	}, {
		name: "deadline_exceeded",
		c:    &Client{ProxyAddr: silent.Addr().String()},
		send: func(c *Client) error {
			ctx, cancel := context.WithTimeout(testContext(t), 20*time.Millisecond)
			defer cancel()
			_, err := c.Send(ctx, "PP_1", "x")
			return err
		},
		err:  context.DeadlineExceeded,
		want: ClientNodeStats{Proxy: silent.Addr().String(), Connects: 1, Sent: 1, Errors: map[string]uint64{"deadline_exceeded": 1}},
	}, {
		name: "conn_lost",
		c:    &Client{ProxyAddr: lost.Addr().String()},
		send: func(c *Client) error {
			sent := make(chan error, 1)
			go func() {
				_, err := c.Send(testContext(t), "PP_1", "x")
				sent <- err
			}()
			waitFor(t, "the message in flight", func() bool { return c.Stats().InFlight == 1 })
			conn, ok := <-accepted
			if !ok {
				t.Fatal("the listener accepted no connection")
			}
			conn.Close() // the proxy goes away
			return <-sent
		},
		err:  ErrConnLost,
		want: ClientNodeStats{Connects: 1, Sent: 1, Errors: map[string]uint64{"conn_lost": 1}},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			c := tc.c
			t.Cleanup(func() { c.Close() })
			send := tc.send
			if send == nil {
				send = func(c *Client) error {
					_, err := c.Send(testContext(t), "PP_1", "x")
					return err
				}
			}
			if err := send(c); !errors.Is(err, tc.err) {
				t.Fatalf("Send = %v, want %v", err, tc.err)
			}
			if diff := cmp.Diff(tc.want, c.Stats()); diff != "" {
				t.Errorf("Client.Stats (-want +got):\n%s", diff)
			}
		})
	}
}

// TestSendErrorCodes: the code each error counts under, the first that
// matches when it matches several.
func TestSendErrorCodes(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{&RemoteError{Code: codeNoServer}, "no_server"},
		{fmt.Errorf("%w; gave up: %w", &RemoteError{Code: codeUnavailable}, context.DeadlineExceeded), "unavailable"},
		{&RemoteError{Code: codeTimeout}, "timeout"},
		{&RemoteError{}, "other"},
		{&RemoteError{Code: "teapot"}, "other"},
		{fmt.Errorf("%w: %w", ErrNoProxy, context.Canceled), "no_proxy"},
		{fmt.Errorf("%w; gave up: %w", fmt.Errorf("%w: EOF", ErrConnLost), context.Canceled), "conn_lost"},
		{ErrClosed, "closed"},
		{fmt.Errorf("%w: 2000 bytes", ErrTooLarge), "too_large"},
		{fmt.Errorf("%w: got a setup message", ErrBadMessage), "bad_message"},
		{fmt.Errorf("%w: Client.ProxyAddr is empty", ErrConfig), "config"},
		{context.DeadlineExceeded, "deadline_exceeded"},
		{context.Canceled, "canceled"},
		{errors.New("something else"), "other"},
	} {
		var c Client
		c.stats.sendReturned(tc.err)
		got := c.Stats().Errors
		if diff := cmp.Diff(map[string]uint64{tc.want: 1}, got); diff != "" {
			t.Errorf("%v counts as (-want +got):\n%s", tc.err, diff)
		}
	}
}
