package revproxy

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
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

// TestServerWithoutListenerReportsLostProxy: a server with no listener has
// nothing left to do when its proxy goes away, and Serve says so.
func TestServerWithoutListenerReportsLostProxy(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	p := &Proxy{}
	ln := listen(t)
	stopped := make(chan error, 1)
	go func() { stopped <- p.Serve(ctx, ln) }()
	done := make(chan error, 1)
	s := &Server{ID: "1", Policy: "P", ProxyAddr: ln.Addr().String()}
	go func() { done <- s.Serve(context.Background(), nil) }()
	waitFor(t, "server to register", func() bool { return len(p.Servers("P")) == 1 })
	cancel()
	<-stopped
	select {
	case err := <-done:
		if !errors.Is(err, ErrConnLost) {
			t.Errorf("Serve = %v, want ErrConnLost", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve went on after its proxy went away")
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
