package revproxy

import (
	"bufio"
	"context"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Regression tests for faults found in review.

// tcpPair returns both ends of a loopback connection.
func tcpPair(t *testing.T) (net.Conn, net.Conn) {
	t.Helper()
	ln := listen(t)
	defer ln.Close()
	ch := make(chan net.Conn, 1)
	go func() { c, _ := ln.Accept(); ch <- c }()
	a, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	b := <-ch
	t.Cleanup(func() { a.Close(); b.Close() })
	return a, b
}

func mustFrame(t *testing.T, s string) *frame {
	t.Helper()
	var fr frame
	if err := fr.decode([]byte(s)); err != nil {
		t.Fatal(err)
	}
	return &fr
}

// discardAll reads c until it closes.
func discardAll(c net.Conn) {
	buf := make([]byte, 4096)
	for {
		if _, err := c.Read(buf); err != nil {
			return
		}
	}
}

// newTestLink returns a server link and a client connection of a proxy,
// whose far ends only read.
func newTestLink(t *testing.T) (*serverLink, *pconn, net.Conn) {
	sa, sb := tcpPair(t)
	ca, cb := tcpPair(t)
	go discardAll(sb)
	p := &Proxy{MaxPending: 10}
	l := p.newLink(p.newPconn(sa, discard))
	l.entry = &entry{id: "S", policy: "P"}
	t.Cleanup(func() { l.close(context.Background(), &Proxy{}, nil) })
	return l, (&Proxy{}).newPconn(ca, discard), cb
}

// TestStaleTimerSparesNextMessage: a timer callback of an answered message
// that runs late, after its slot took a new message, must not expire it.
func TestStaleTimerSparesNextMessage(t *testing.T) {
	l, client, cb := newTestLink(t)
	client.owed.Add(1)
	if l.forward(client, mustFrame(t, `{"type":0,"srcid":1,"privPoliId":"P","payload":"a","seq":1,"timeout":60000}`), nil) != forwarded {
		t.Fatal("not forwarded")
	}
	l.deliver(mustFrame(t, `{"type":2,"srcid":"S","destid":1,"payload":"x","seq":`+strconv.FormatUint(tag(0, 1), 10)+`}`))
	client.owed.Add(1)
	l.forward(client, mustFrame(t, `{"type":0,"srcid":1,"privPoliId":"P","payload":"b","seq":2,"timeout":3600000}`), nil)
	l.expire(0) // the first message's callback, running late
	r := bufio.NewReader(cb)
	cb.SetReadDeadline(time.Now().Add(2 * time.Second))
	r.ReadString('\n') // the first message's answer
	cb.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	if line, err := r.ReadString('\n'); err == nil {
		t.Errorf("the second message, with an hour to go, was answered: %s", line)
	}
}

// TestStaleTimerRace: the same with real timers firing around the answers.
func TestStaleTimerRace(t *testing.T) {
	l, client, cb := newTestLink(t)
	go discardAll(cb)
	for i := range 300 {
		client.owed.Add(1)
		l.forward(client, mustFrame(t, `{"type":0,"srcid":1,"privPoliId":"P","payload":"a","seq":1,"timeout":1}`), nil)
		gen := l.slots[0].gen
		time.Sleep(time.Millisecond)
		l.deliver(mustFrame(t, `{"type":2,"srcid":"S","seq":`+strconv.FormatUint(tag(0, gen), 10)+`}`))
		client.owed.Add(1)
		l.forward(client, mustFrame(t, `{"type":0,"srcid":1,"privPoliId":"P","payload":"b","seq":2,"timeout":3600000}`), nil)
		time.Sleep(time.Millisecond)
		l.mu.Lock()
		idx, busy := -1, false
		for j := range l.slots {
			if l.slots[j].busy {
				idx, busy = j, true
			}
		}
		gen = l.slots[max(idx, 0)].gen
		l.mu.Unlock()
		if !busy {
			t.Fatalf("round %d: the long message expired early", i)
		}
		l.deliver(mustFrame(t, `{"type":2,"srcid":"S","seq":`+strconv.FormatUint(tag(idx, gen), 10)+`}`))
	}
}

// TestHeldConnectionKeepsItsID: a held connection may not register another
// id; and when it closes, its id is free again.
func TestHeldConnectionKeepsItsID(t *testing.T) {
	p, addr := startProxy(t)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c.Write([]byte(`{"type":1,"id":"A","privPolyId":"P","listenport":1,"hold":true}` + "\n" + `{"type":1,"id":"B","privPolyId":"P","listenport":1,"hold":true}` + "\n"))
	r := bufio.NewReader(c)
	c.SetReadDeadline(time.Now().Add(2 * time.Second))
	r.ReadString('\n') // the ack for A
	if line, _ := r.ReadString('\n'); !strings.Contains(line, "bad_message") {
		t.Errorf("a second id on a held connection answered %q", line)
	}
	c.Close()
	waitFor(t, "A to leave", func() bool { return len(p.Servers("P")) == 0 })
	if m := rawAnswer(t, addr, `{"type":1,"id":"A","privPolyId":"P","listenport":1,"hold":true}`); m.Type != TypeSetup {
		t.Errorf("registering A again answered %+v", m)
	}
}

// fakeProxy acknowledges the first registration and closes it after a
// moment; the second connection gets second(conn); later ones are
// acknowledged and closed like the first.
func fakeProxy(t *testing.T, second func(net.Conn)) (string, chan int) {
	ln := listen(t)
	t.Cleanup(func() { ln.Close() })
	conns := make(chan int, 100)
	go func() {
		for n := 1; ; n++ {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns <- n
			bufio.NewReader(c).ReadString('\n')
			if n == 2 {
				second(c)
				continue
			}
			c.Write([]byte(`{"type":1,"id":"100","privPolyId":"P"}` + "\n"))
			time.Sleep(20 * time.Millisecond)
			c.Close()
		}
	}()
	return ln.Addr().String(), conns
}

// TestReregisterAfterUnackedClose: a proxy that acknowledged once is found
// again even if one later attempt closes before its acknowledgement, with a
// listener or without.
func TestReregisterAfterUnackedClose(t *testing.T) {
	for _, withListener := range []bool{true, false} {
		addr, conns := fakeProxy(t, func(c net.Conn) { c.Close() })
		s := &Server{ID: "100", Policy: "P", ProxyAddr: addr, Heartbeat: -1, DrainTimeout: -1}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() {
			if withListener {
				done <- s.Serve(ctx, listen(t))
			} else {
				done <- s.Serve(ctx, nil)
			}
		}()
		waitFor(t, "a third registration", func() bool { return len(conns) >= 3 })
		cancel()
		if err := <-done; err != nil {
			t.Errorf("listener %v: Serve = %v", withListener, err)
		}
	}
}

// TestReregisterAfterOverloaded: a proxy answering "overloaded" is tried
// again; it does not end Serve.
func TestReregisterAfterOverloaded(t *testing.T) {
	addr, conns := fakeProxy(t, func(c net.Conn) {
		c.Write([]byte(`{"type":3,"srcid":"proxy","payload":"too many connections","code":"overloaded"}` + "\n"))
		c.Close()
	})
	runRole(t, func(ctx context.Context) error {
		return (&Server{ID: "100", Policy: "P", ProxyAddr: addr, Heartbeat: -1, DrainTimeout: -1}).Serve(ctx, nil)
	})
	waitFor(t, "a registration after the refusal", func() bool { return len(conns) >= 3 })
}
