package httpproxy

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/seed-c202d8a5/revproxy"
)

// TestHeaderTooLarge: a request header beyond MaxHeaderBytes is refused
// with 431 before any of it reaches a handler.
func TestHeaderTooLarge(t *testing.T) {
	addr := serve(t, &Proxy{MaxHeaderBytes: 4 << 10})
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	go io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\nX-Big: "+strings.Repeat("a", 64<<10)+"\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("status %s; want 431", resp.Status)
	}
}

// TestSlowHeaderClosed: a client that starts a header and never finishes
// it is disconnected after ReadHeaderTimeout, not held open.
func TestSlowHeaderClosed(t *testing.T) {
	addr := serve(t, &Proxy{ReadHeaderTimeout: 200 * time.Millisecond})
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n")
	c.SetReadDeadline(time.Now().Add(30 * time.Second)) // only so that a broken proxy fails the test
	start := time.Now()
	_, err = io.ReadAll(c)
	if err != nil {
		t.Fatalf("the connection was not closed: %v after %v", err, time.Since(start))
	}
}

// TestMaxConns: with MaxConns connections open, the next is not served
// until one of them closes.
func TestMaxConns(t *testing.T) {
	addr := serve(t, &Proxy{MaxConns: 2})
	var held []net.Conn
	for range 2 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		// A served connection answers: the proxy holds it.
		io.WriteString(c, "GET /x HTTP/1.1\r\nHost: x\r\n\r\n")
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		held = append(held, c)
	}
	third, err := net.Dial("tcp", addr) // the kernel's backlog takes it
	if err != nil {
		t.Fatal(err)
	}
	defer third.Close()
	io.WriteString(third, "GET /x HTTP/1.1\r\nHost: x\r\n\r\n")
	answered := make(chan error, 1)
	go func() {
		resp, err := http.ReadResponse(bufio.NewReader(third), nil)
		if err == nil {
			resp.Body.Close()
		}
		answered <- err
	}()
	// The third is not answered while the two are held: ask the second
	// again, which is served, then check the third still waits.
	io.WriteString(held[1], "GET /x HTTP/1.1\r\nHost: x\r\n\r\n")
	if resp, err := http.ReadResponse(bufio.NewReader(held[1]), nil); err != nil {
		t.Fatal(err)
	} else {
		resp.Body.Close()
	}
	select {
	case err := <-answered:
		t.Fatalf("a third connection was served while two were held (%v)", err)
	default:
	}
	held[0].Close()
	select {
	case err := <-answered:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the third connection was not served once one closed")
	}
}

// TestServeStopsWithRequestUnderWay: cancelling Serve's context lets a
// request under way finish, then Serve returns.
func TestServeStopsWithRequestUnderWay(t *testing.T) {
	rp, addr := startTable(t)
	inside, release := make(chan struct{}), make(chan struct{})
	slow := backend(t, "slow")
	slow.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(inside)
		<-release
		w.Write([]byte("done"))
	})
	register(t, rp, &revproxy.Server{ID: "s", Policy: "p", ProxyAddr: addr, HTTPPort: portOf(t, slow)})
	p := &Proxy{Table: rp, Routes: []Route{{Policy: "p"}}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- p.Serve(ctx, ln) }()
	got := make(chan string, 1)
	client := newClient(t)
	go func() {
		resp, err := client.Get("http://" + ln.Addr().String() + "/x")
		if err != nil {
			got <- err.Error()
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		got <- string(b)
	}()
	<-inside
	cancel()
	select {
	case err := <-served:
		t.Fatalf("Serve returned %v with a request under way", err)
	default:
	}
	close(release)
	if body := <-got; body != "done" {
		t.Errorf("the request under way got %q; want done", body)
	}
	if err := <-served; err != nil {
		t.Errorf("Serve = %v", err)
	}
}
