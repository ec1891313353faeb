package revproxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/seed-c202d8a5/revproxy/internal/wire"
)

// startProxyWith runs p on loopback and returns its address.
func startProxyWith(t *testing.T, p *Proxy) string {
	t.Helper()
	ln := listen(t)
	runRole(t, func(ctx context.Context) error { return p.Serve(ctx, ln) })
	return ln.Addr().String()
}

// rawAnswer writes in on a new connection and returns the first message
// the proxy sends back.
func rawAnswer(t *testing.T, addr, in string) Message {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, in)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	var m Message
	if _, err := readMessage(wire.NewReader(c, 1<<20), &m); err != nil {
		t.Fatalf("no answer to %.60s: %v", in, err)
	}
	return m
}

func TestRegistrationToken(t *testing.T) {
	p := &Proxy{Token: "s3cret"}
	addr := startProxyWith(t, p)

	err := (&Server{ID: "1", Policy: "P", ProxyAddr: addr}).Serve(testContext(t), nil)
	if !errors.Is(err, ErrUnauthorized) {
		t.Errorf("Serve without the token = %v, want ErrUnauthorized", err)
	}
	err = (&Server{ID: "1", Policy: "P", ProxyAddr: addr, Token: "wrong"}).Serve(testContext(t), nil)
	if !errors.Is(err, ErrUnauthorized) {
		t.Errorf("Serve with a wrong token = %v, want ErrUnauthorized", err)
	}
	if m := rawAnswer(t, addr, `{"type":"1","id":"2","privPolyId":"P","listenport":"9"}`); m.Code != codeUnauthorized {
		t.Errorf("legacy setup without the token answered %+v", m)
	}
	if n := len(p.Servers("P")); n != 0 {
		t.Fatalf("%d servers registered without the token", n)
	}
	startServerNoListener(t, p, &Server{ID: "1", Policy: "P", ProxyAddr: addr, Token: "s3cret"})
	c := newClient(t, addr, "50")
	if _, err := c.Send(testContext(t), "P", "x"); err != nil {
		t.Errorf("Send through the registered server: %v", err)
	}
}

// TestServerIDNotTakenOver: an id held by a live server cannot be
// registered from elsewhere; once that server leaves, it can.
func TestServerIDNotTakenOver(t *testing.T) {
	p, addr := startProxy(t)
	ctx, cancel := context.WithCancel(context.Background())
	first := make(chan error, 1)
	go func() { first <- (&Server{ID: "1", Policy: "P", ProxyAddr: addr}).Serve(ctx, nil) }()
	waitFor(t, "the first server", func() bool { return len(p.Servers("P")) == 1 })

	err := (&Server{ID: "1", Policy: "P", ProxyAddr: addr}).Serve(testContext(t), nil)
	if !errors.Is(err, ErrIDInUse) {
		t.Errorf("second Serve = %v, want ErrIDInUse", err)
	}
	if m := rawAnswer(t, addr, `{"type":1,"id":"1","privPolyId":"P","listenport":9}`); m.Code != codeIDInUse {
		t.Errorf("legacy setup for a held id answered %+v", m)
	}
	c := newClient(t, addr, "50")
	if _, err := c.Send(testContext(t), "P", "x"); err != nil {
		t.Errorf("the first server no longer serves: %v", err)
	}
	cancel()
	<-first
	waitFor(t, "the first server to leave", func() bool { return len(p.Servers("P")) == 0 })
	startServerNoListener(t, p, &Server{ID: "1", Policy: "P", ProxyAddr: addr})
}

func TestAuthorize(t *testing.T) {
	p := &Proxy{Authorize: func(r *AuthRequest) error {
		if r.Policy == "SECRET" && r.ClientID != "admin" {
			return fmt.Errorf("client %s may not use %s", r.ClientID, r.Policy)
		}
		return nil
	}}
	addr := startProxyWith(t, p)
	startServerNoListener(t, p, &Server{ID: "1", Policy: "SECRET", ProxyAddr: addr})
	ctx := testContext(t)

	c := newClient(t, addr, "50")
	if _, err := c.Send(ctx, "SECRET", "x"); !errors.Is(err, ErrForbidden) {
		t.Errorf("client 50 to SECRET: %v, want ErrForbidden", err)
	}
	admin := newClient(t, addr, "admin")
	if _, err := admin.Send(ctx, "SECRET", "x"); err != nil {
		t.Errorf("admin to SECRET: %v", err)
	}
	if _, err := c.Send(ctx, "SECRET", "again"); !errors.Is(err, ErrForbidden) {
		t.Errorf("the connection did not go on after a refusal: %v", err)
	}
}

// TestMaxPending: with every server's link full, the next message gets
// ErrOverloaded at once, and the others are answered.
func TestMaxPending(t *testing.T) {
	p := &Proxy{MaxPending: 2}
	addr := startProxyWith(t, p)
	release := make(chan struct{})
	hold := HandlerFunc(func(ctx context.Context, m *Message) (string, error) {
		<-release
		return m.Payload, nil
	})
	startServerNoListener(t, p, &Server{ID: "1", Policy: "P", ProxyAddr: addr, Handler: hold})
	c := newClient(t, addr, "50")
	errs := make(chan error, 2)
	for range 2 {
		go func() {
			_, err := c.Send(testContext(t), "P", "x")
			errs <- err
		}()
	}
	waitFor(t, "two messages in flight", func() bool {
		return p.table.pick([]byte("P"), nil, RoundRobin).inFlight() == 2
	})
	if _, err := c.Send(testContext(t), "P", "x"); !errors.Is(err, ErrOverloaded) {
		t.Errorf("third message: %v, want ErrOverloaded", err)
	}
	close(release)
	for range 2 {
		if err := <-errs; err != nil {
			t.Errorf("a message in flight: %v", err)
		}
	}
}

func TestMaxConns(t *testing.T) {
	addr := startProxyWith(t, &Proxy{MaxConns: 2})
	for range 2 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		io.WriteString(c, `{"type":0,"srcid":1,"privPoliId":"P","payload":"x"}`)
		var m Message
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := readMessage(wire.NewReader(c, 1<<20), &m); err != nil || m.Code != codeNoServer {
			t.Fatalf("connection within the limit: %+v, %v", m, err)
		}
	}
	if m := rawAnswer(t, addr, ""); m.Code != codeOverloaded {
		t.Errorf("connection over the limit answered %+v", m)
	}
}

func TestMessageTooLarge(t *testing.T) {
	addr := startProxyWith(t, &Proxy{MaxMessageSize: 1000})
	m := rawAnswer(t, addr, `{"type":0,"srcid":1,"privPoliId":"P","payload":"`+strings.Repeat("x", 5000)+`"}`)
	err := remoteError(&m)
	if m.Code != codeTooLarge || !errors.Is(err, ErrTooLarge) || !errors.Is(err, ErrBadMessage) {
		t.Errorf("oversized message answered %+v, want too_large, a kind of bad_message", m)
	}
}

// TestSlowlorisClosed: a connection that sends nothing, or part of a message
// and then nothing, is closed after FirstMessageTimeout.
func TestSlowlorisClosed(t *testing.T) {
	addr := startProxyWith(t, &Proxy{FirstMessageTimeout: 100 * time.Millisecond})
	for _, partial := range []string{"", `{"type":0,"srcid":1,`} {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		io.WriteString(c, partial)
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.ReadAll(c); err != nil {
			t.Errorf("sent %q: the proxy did not close the connection: %v", partial, err)
		}
	}
}

// TestIdleClientClosed: a client connection idle for IdleTimeout is closed,
// and a Client connects again on its next Send.
func TestIdleClientClosed(t *testing.T) {
	p := &Proxy{IdleTimeout: 100 * time.Millisecond}
	addr := startProxyWith(t, p)
	startServerNoListener(t, p, &Server{ID: "1", Policy: "P", ProxyAddr: addr})
	time.Sleep(200 * time.Millisecond) // the server's link is not subject to it
	c := newClient(t, addr, "50")
	if _, err := c.Send(testContext(t), "P", "x"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the idle connection to close", func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		return !c.cur.alive()
	})
	if _, err := c.Send(testContext(t), "P", "y"); err != nil {
		t.Errorf("Send after the idle close: %v", err)
	}
}

// TestUnheldRegistrationIdle: a connection that registers without holding
// and then stays silent is closed after IdleTimeout; the server stays.
func TestUnheldRegistrationIdle(t *testing.T) {
	p := &Proxy{IdleTimeout: 100 * time.Millisecond}
	addr := startProxyWith(t, p)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, `{"type":1,"id":"7","privPolyId":"P","listenport":9}`)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadAll(c); err != nil {
		t.Errorf("the silent registration connection was not closed: %v", err)
	}
	if n := len(p.Servers("P")); n != 1 {
		t.Errorf("%d servers registered, want 1 (closing the connection keeps it)", n)
	}
}
