package revproxy

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/seed-c202d8a5/revproxy/internal/wire"
)

// TestOversizedSendFailsAlone: a message over the size a proxy accepts is
// refused by the Client itself, and a Send in flight beside it is unharmed.
func TestOversizedSendFailsAlone(t *testing.T) {
	p, addr := startProxy(t)
	release := make(chan struct{})
	slow := HandlerFunc(func(ctx context.Context, m *Message) (string, error) {
		<-release
		return m.Payload, nil
	})
	startServerNoListener(t, p, &Server{ID: "1", Policy: "P", ProxyAddr: addr, Handler: slow})
	c := newClient(t, addr, "50")
	first := make(chan error, 1)
	go func() {
		reply, err := c.Send(testContext(t), "P", "small")
		if err == nil && reply.Payload != "small" {
			err = errors.New("wrong reply " + reply.Payload)
		}
		first <- err
	}()
	if _, err := c.Send(testContext(t), "P", strings.Repeat("x", 2<<20)); !errors.Is(err, ErrBadMessage) {
		t.Errorf("oversized Send = %v, want ErrBadMessage", err)
	}
	close(release)
	if err := <-first; err != nil {
		t.Errorf("the other Send: %v", err)
	}
}

// TestGarbledAnswerReachesItsSend: an answer that fails to decode but
// carries a seq goes to the Send with that seq, not to the oldest.
func TestGarbledAnswerReachesItsSend(t *testing.T) {
	ln := listen(t)
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		r := wire.NewReader(c, 1<<20)
		for range 2 {
			if _, err := r.Next(); err != nil {
				return
			}
		}
		io.WriteString(c, `{"type":2,"payloadsize":"oops","seq":2}`+"\n"+`{"type":2,"srcid":1,"payload":"one","seq":1}`+"\n")
		io.Copy(io.Discard, c)
	}()
	c := newClient(t, ln.Addr().String(), "50")
	one := make(chan error, 1)
	go func() {
		reply, err := c.Send(testContext(t), "P", "1")
		if err == nil && reply.Payload != "one" {
			err = errors.New("got " + reply.Payload)
		}
		one <- err
	}()
	waitFor(t, "Send 1 to be written first", func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.cur == nil {
			return false
		}
		c.cur.mu.Lock()
		defer c.cur.mu.Unlock()
		return len(c.cur.pending) == 1
	})
	if _, err := c.Send(testContext(t), "P", "2"); !errors.Is(err, ErrBadMessage) {
		t.Errorf("Send 2 = %v, want ErrBadMessage", err)
	}
	if err := <-one; err != nil {
		t.Errorf("Send 1: %v", err)
	}
}

// TestServerReregistersAfterProxyRestart: a server registers again with a
// proxy that restarts on the same address, and serves through it.
func TestServerReregistersAfterProxyRestart(t *testing.T) {
	ln := listen(t)
	addr := ln.Addr().String()
	ctx1, cancel1 := context.WithCancel(context.Background())
	p1 := &Proxy{}
	stopped := make(chan error, 1)
	go func() { stopped <- p1.Serve(ctx1, ln) }()
	runRole(t, func(ctx context.Context) error {
		return (&Server{ID: "1", Policy: "P", ProxyAddr: addr}).Serve(ctx, nil)
	})
	waitFor(t, "server to register", func() bool { return len(p1.Servers("P")) == 1 })
	cancel1()
	<-stopped

	ln2, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	p2 := &Proxy{}
	runRole(t, func(ctx context.Context) error { return p2.Serve(ctx, ln2) })
	waitFor(t, "server to register again", func() bool { return len(p2.Servers("P")) == 1 })
	c := newClient(t, addr, "50")
	if _, err := c.Send(testContext(t), "P", "x"); err != nil {
		t.Errorf("Send after the restart: %v", err)
	}
}

// TestLegacyProxyClosingRegistration: a proxy that closes the registration
// without acknowledging it, as the homework's may, is not asked again: the
// server goes on serving its listener.
func TestLegacyProxyClosingRegistration(t *testing.T) {
	ln := listen(t)
	defer ln.Close()
	var accepted atomic.Int32
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			wire.NewReader(c, 1<<20).Next()
			c.Close()
		}
	}()
	sln := listen(t)
	runRole(t, func(ctx context.Context) error {
		return (&Server{ID: "1", Policy: "P", ProxyAddr: ln.Addr().String()}).Serve(ctx, sln)
	})
	waitFor(t, "the registration", func() bool { return accepted.Load() == 1 })
	time.Sleep(600 * time.Millisecond) // longer than the longest backoff
	if n := accepted.Load(); n != 1 {
		t.Errorf("the server registered %d times", n)
	}
	c := newClient(t, sln.Addr().String(), "50")
	if _, err := c.Send(testContext(t), "P", "x"); err != nil {
		t.Errorf("the server stopped serving its listener: %v", err)
	}
}

// TestHalfClosedClientGetsAnswers: a client that sends tagged messages and
// closes its side for writing still gets their answers.
func TestHalfClosedClientGetsAnswers(t *testing.T) {
	p, addr := startProxy(t)
	slow := HandlerFunc(func(ctx context.Context, m *Message) (string, error) {
		time.Sleep(50 * time.Millisecond)
		return m.Payload, nil
	})
	startServerNoListener(t, p, &Server{ID: "1", Policy: "P", ProxyAddr: addr, Handler: slow})
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, `{"type":0,"srcid":9,"privPoliId":"P","payload":"a","seq":1}{"type":0,"srcid":9,"privPoliId":"P","payload":"b","seq":2}`)
	c.(*net.TCPConn).CloseWrite()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	r := wire.NewReader(c, 1<<20)
	got := map[uint64]string{}
	for range 2 {
		var m Message
		if _, err := readMessage(r, &m); err != nil {
			t.Fatalf("after %d answers: %v", len(got), err)
		}
		got[m.Seq] = m.Payload
	}
	if got[1] != "a" || got[2] != "b" {
		t.Errorf("answers %v, want 1:a 2:b", got)
	}
}
