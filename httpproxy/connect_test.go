package httpproxy

import (
	"bufio"
	"context"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// connect asks the proxy at addr for a tunnel to target, and returns the
// connection, a reader of what comes after the proxy's answer, and the
// answer. The connection is closed when the test ends.
func connect(t *testing.T, addr, target string) (*net.TCPConn, *bufio.Reader, *http.Response) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if _, err := fmt.Fprintf(c, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n", target, target); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	res, err := http.ReadResponse(br, &http.Request{Method: http.MethodConnect})
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != http.StatusOK {
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
	}
	return c.(*net.TCPConn), br, res
}

// atoi is strconv.Atoi for a number the test made.
func atoi(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// listen returns a loopback listener, closed when the test ends, and its
// port.
func listen(t *testing.T) (net.Listener, int) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln, ln.Addr().(*net.TCPAddr).Port
}

// acceptOne accepts one connection on ln and serves it with serve in a
// goroutine; the channel it returns says serve returned, with its result.
func acceptOne(t *testing.T, ln net.Listener, serve func(net.Conn) string) <-chan string {
	t.Helper()
	done := make(chan string, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			done <- "accept: " + err.Error()
			return
		}
		defer c.Close()
		done <- serve(c)
	}()
	return done
}

// await returns what a goroutine sent on done, failing the test when it
// takes beyond a minute (a hang).
func await(t *testing.T, done <-chan string) string {
	t.Helper()
	select {
	case s := <-done:
		return s
	case <-time.After(time.Minute):
		t.Fatal("no end within a minute")
		return ""
	}
}

// TestConnectCurl fetches an HTTPS page through a tunnel with curl -x, the
// origin's certificate checked: the tunnel carries TLS end to end, and
// counts as a tunnel and a 200.
func TestConnectCurl(t *testing.T) {
	origin := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "hello over TLS")
	}))
	t.Cleanup(origin.Close)
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: origin.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	port := origin.Listener.Addr().(*net.TCPAddr).Port
	p := &Proxy{Forward: true, ConnectPorts: []int{port}}
	t.Cleanup(func() { // after the proxy has stopped, every handler returned
		if n := p.stats.tunnels.Load(); n != 1 {
			t.Errorf("%d tunnels counted, want 1", n)
		}
		if n := p.stats.tunnelsOpen.Load(); n != 0 {
			t.Errorf("%d tunnels still open", n)
		}
		if n := p.stats.statuses[kindConnect][2].Load(); n != 1 {
			t.Errorf("%d CONNECTs counted as 2xx, want 1", n)
		}
	})
	addr := serve(t, p)

	out := curl(t, "-x", "http://"+addr, "--cacert", ca, origin.URL+"/")
	if out != "hello over TLS" {
		t.Errorf("curl got %q", out)
	}
}

// TestConnectRefused covers the tunnels the proxy does not open.
func TestConnectRefused(t *testing.T) {
	t.Run("a port not allowed is 403", func(t *testing.T) {
		p := &Proxy{Forward: true} // 443 only
		addr := serve(t, p)
		for _, target := range []string{"127.0.0.1:22", "127.0.0.1:80"} {
			if _, _, res := connect(t, addr, target); res.StatusCode != http.StatusForbidden {
				t.Errorf("%s: status %d, want 403", target, res.StatusCode)
			}
		}
		if n := p.stats.refusals[refusedPort].Load(); n != 2 {
			t.Errorf("%d refusals for the port counted, want 2", n)
		}
	})

	t.Run("a denied host is 403", func(t *testing.T) {
		ln, port := listen(t)
		p := &Proxy{Forward: true, ConnectPorts: []int{port}, DenyHosts: []string{"denied.test", "127.0.0.0/8"}}
		addr := serve(t, p)
		targets := []string{
			"denied.test:" + strconv.Itoa(port),
			ln.Addr().String(),
			"localhost:" + strconv.Itoa(port), // denied once resolved
		}
		for _, target := range targets {
			if _, _, res := connect(t, addr, target); res.StatusCode != http.StatusForbidden {
				t.Errorf("%s: status %d, want 403", target, res.StatusCode)
			}
		}
		if n := p.stats.refusals[refusedHost].Load(); n != uint64(len(targets)) {
			t.Errorf("%d refusals for the host counted, want %d", n, len(targets))
		}
	})

	t.Run("a closed port is 502 at once", func(t *testing.T) {
		target := closedPort(t)
		_, port, _ := net.SplitHostPort(target)
		addr := serve(t, &Proxy{Forward: true, ConnectPorts: []int{atoi(t, port)}, DialTimeout: 30 * time.Second})
		start := time.Now()
		_, _, res := connect(t, addr, target)
		if res.StatusCode != http.StatusBadGateway {
			t.Errorf("status %d, want 502", res.StatusCode)
		}
		if d := time.Since(start); d > 10*time.Second {
			t.Errorf("the 502 took %v: the dial's failure was not answered at once", d)
		}
	})

	t.Run("no port is 400", func(t *testing.T) {
		addr := serve(t, &Proxy{Forward: true})
		if _, _, res := connect(t, addr, "127.0.0.1"); res.StatusCode != http.StatusBadRequest {
			t.Errorf("status %d, want 400", res.StatusCode)
		}
	})
}

// TestConnectHalfClose sends bytes through a tunnel, the first with the
// CONNECT itself (so that the proxy holds them in its buffer when it takes
// the connection over), then half-closes: the origin reads to EOF, answers
// and closes, and the client reads the answer to EOF.
func TestConnectHalfClose(t *testing.T) {
	ln, port := listen(t)
	origin := acceptOne(t, ln, func(c net.Conn) string {
		n, err := io.Copy(io.Discard, c)
		if err != nil {
			return err.Error()
		}
		fmt.Fprintf(c, "got %d bytes", n)
		return ""
	})
	addr := serve(t, &Proxy{Forward: true, ConnectPorts: []int{port}})

	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(time.Minute)) // a hang fails, not waits forever
	const size = 100000
	target := ln.Addr().String()
	msg := "CONNECT " + target + " HTTP/1.1\r\nHost: " + target + "\r\n\r\n" + strings.Repeat("x", size)
	if _, err := io.WriteString(c, msg); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	res, err := http.ReadResponse(br, &http.Request{Method: http.MethodConnect})
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != http.StatusOK {
		t.Fatalf("status %d, want 200", res.StatusCode)
	}
	if err := c.(*net.TCPConn).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	answer, err := io.ReadAll(br)
	if err != nil {
		t.Fatalf("reading the answer: %v (got %q)", err, answer)
	}
	if want := fmt.Sprintf("got %d bytes", size); string(answer) != want {
		t.Errorf("the origin answered %q, want %q", answer, want)
	}
	if msg := await(t, origin); msg != "" {
		t.Errorf("origin: %s", msg)
	}
}

// TestConnectIdle closes a tunnel on which nothing moves for IdleTimeout,
// and keeps one on which bytes move only one way.
func TestConnectIdle(t *testing.T) {
	t.Run("a silent tunnel closes", func(t *testing.T) {
		ln, port := listen(t)
		origin := acceptOne(t, ln, func(c net.Conn) string {
			if _, err := io.Copy(io.Discard, c); err != nil {
				return err.Error()
			}
			return ""
		})
		addr := serve(t, &Proxy{Forward: true, ConnectPorts: []int{port}, IdleTimeout: 300 * time.Millisecond})
		c, br, res := connect(t, addr, ln.Addr().String())
		if res.StatusCode != http.StatusOK {
			t.Fatalf("status %d, want 200", res.StatusCode)
		}
		c.SetReadDeadline(time.Now().Add(time.Minute))
		n, err := br.Read(make([]byte, 1))
		if n != 0 || errors.Is(err, os.ErrDeadlineExceeded) {
			t.Errorf("the silent tunnel read %d bytes, %v; want it closed", n, err)
		}
		if msg := await(t, origin); msg != "" {
			t.Errorf("origin: %s", msg)
		}
	})

	t.Run("traffic one way keeps it open", func(t *testing.T) {
		const idle = 750 * time.Millisecond
		ln, port := listen(t)
		origin := acceptOne(t, ln, func(c net.Conn) string {
			// A byte each 20 ms for over twice the idle timeout, while
			// the client sends nothing.
			tick := time.NewTicker(20 * time.Millisecond)
			defer tick.Stop()
			for start := time.Now(); time.Since(start) < 2*idle+idle/2; {
				<-tick.C
				if _, err := io.WriteString(c, "."); err != nil {
					return err.Error()
				}
			}
			io.WriteString(c, "end")
			return ""
		})
		addr := serve(t, &Proxy{Forward: true, ConnectPorts: []int{port}, IdleTimeout: idle})
		c, br, res := connect(t, addr, ln.Addr().String())
		if res.StatusCode != http.StatusOK {
			t.Fatalf("status %d, want 200", res.StatusCode)
		}
		c.SetReadDeadline(time.Now().Add(time.Minute))
		got, err := io.ReadAll(br)
		if err != nil || !strings.HasSuffix(string(got), "end") {
			t.Errorf("the tunnel carried %d bytes ending %q, %v; want all of them, to the end", len(got), got[max(0, len(got)-5):], err)
		}
		if msg := await(t, origin); msg != "" {
			t.Errorf("origin: %s", msg)
		}
	})
}

// TestConnectProxyStop stops the proxy while a tunnel is open: Serve
// returns, and the tunnel's connections are closed.
func TestConnectProxyStop(t *testing.T) {
	ln, port := listen(t)
	origin := acceptOne(t, ln, func(c net.Conn) string {
		if _, err := io.Copy(io.Discard, c); err != nil {
			return err.Error()
		}
		return ""
	})
	pln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &Proxy{Forward: true, ConnectPorts: []int{port}}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	served := make(chan error, 1)
	go func() { served <- p.Serve(ctx, pln) }()

	c, br, res := connect(t, pln.Addr().String(), ln.Addr().String())
	if res.StatusCode != http.StatusOK {
		t.Fatalf("status %d, want 200", res.StatusCode)
	}
	cancel()
	select {
	case err := <-served:
		if err != nil {
			t.Errorf("Serve returned %v", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("Serve did not return with a tunnel open")
	}
	c.SetReadDeadline(time.Now().Add(time.Minute))
	if n, err := br.Read(make([]byte, 1)); n != 0 || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("the client's connection read %d bytes, %v; want it closed", n, err)
	}
	if msg := await(t, origin); msg != "" {
		t.Errorf("origin: %s", msg)
	}
}
