package httpproxy

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/seed-c202d8a5/revproxy"
)

// Regression tests for what an adversarial review found: peers that are
// hostile or careless, and how the proxy must hold up.

// serverStats returns the table's stats for server id.
func serverStats(t *testing.T, rp *revproxy.Proxy, id string) revproxy.ServerStats {
	t.Helper()
	for _, p := range rp.Stats().Policies {
		for _, s := range p.Servers {
			if s.ID == id {
				return s
			}
		}
	}
	t.Fatalf("no server %s", id)
	return revproxy.ServerStats{}
}

// TestBadSwitchReleasesServer: a server that answers 101 with another
// protocol than asked (or none asked) gets its client a 502, and the
// request stops counting in flight on it (it stayed at 1 for good).
func TestBadSwitchReleasesServer(t *testing.T) {
	rp, addr := startTable(t)
	be := backend(t, "x")
	be.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, _, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer c.Close()
		io.WriteString(c, "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: other\r\n\r\n")
		c.Read(make([]byte, 1)) // until the proxy lets go of the connection
	})
	register(t, rp, &revproxy.Server{ID: "a", Policy: "web", ProxyAddr: addr, HTTPPort: portOf(t, be)})
	front := "http://" + serve(t, &Proxy{Table: rp, Routes: []Route{{Policy: "web"}}})
	if code, _, _ := getBody(t, newClient(t), front+"/x"); code != http.StatusBadGateway {
		t.Errorf("status %d; want 502", code)
	}
	waitFor(t, "the request to stop counting on server a", func() bool { return serverStats(t, rp, "a").InFlight == 0 })
}

// TestUnspecifiedAddressIsLocal: 0.0.0.0 and :: reach this host, so a
// deny list of loopback denies them too, forwarded and tunnelled.
func TestUnspecifiedAddressIsLocal(t *testing.T) {
	ln, err := net.Listen("tcp", ":0")
	if err != nil {
		t.Fatal(err)
	}
	secret := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "SECRET") })}
	go secret.Serve(ln)
	t.Cleanup(func() { secret.Close() })
	port := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	addr := serve(t, &Proxy{Forward: true, ConnectPorts: []int{ln.Addr().(*net.TCPAddr).Port}, DenyHosts: []string{"127.0.0.0/8", "::1", "localhost"}})
	for _, host := range []string{"0.0.0.0", "[::]", "[::ffff:0.0.0.0]"} {
		if res, body := get(t, proxyClient(t, addr), "http://"+host+":"+port+"/"); res.StatusCode != http.StatusForbidden {
			t.Errorf("GET http://%s:%s/: %d %q; want 403", host, port, res.StatusCode, body)
		}
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(c, "CONNECT %s:%s HTTP/1.1\r\nHost: %[1]s:%[2]s\r\n\r\n", host, port)
		res, err := http.ReadResponse(bufio.NewReader(c), nil)
		c.Close()
		if err != nil || res.StatusCode != http.StatusForbidden {
			t.Errorf("CONNECT %s:%s: %v, %v; want 403", host, port, res, err)
		}
	}
}

// TestServeWaitsForItsOwnRequests: a Proxy mounted in another server as
// well stops its own Serve without waiting for that server's requests.
func TestServeWaitsForItsOwnRequests(t *testing.T) {
	inside, release := make(chan struct{}), make(chan struct{})
	origin := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		close(inside)
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	p := &Proxy{Forward: true, IdleTimeout: 100 * time.Millisecond}
	other := httptest.NewServer(p)
	t.Cleanup(other.Close)
	t.Cleanup(func() { close(release) })
	go func() {
		tr := &http.Transport{Proxy: http.ProxyURL(mustURL(other.URL))}
		defer tr.CloseIdleConnections()
		if res, err := (&http.Client{Transport: tr}).Get(origin.URL); err == nil {
			res.Body.Close()
		}
	}()
	<-inside
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Serve(ctx, ln) }()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Serve = %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve waited for another server's request")
	}
}

// TestClientGivingUpIsNoServerFault: a client that gives up before its
// server answers does not count against the server.
func TestClientGivingUpIsNoServerFault(t *testing.T) {
	rp, addr := startTable(t)
	inside := make(chan struct{}, 1)
	be := backend(t, "slow")
	be.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		inside <- struct{}{}
		<-r.Context().Done()
	})
	register(t, rp, &revproxy.Server{ID: "a", Policy: "web", ProxyAddr: addr, HTTPPort: portOf(t, be)})
	front := "http://" + serve(t, &Proxy{Table: rp, Routes: []Route{{Policy: "web"}}})
	client := newClient(t)
	for range 3 {
		ctx, cancel := context.WithCancel(context.Background())
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, front+"/x", nil)
		go func() { <-inside; cancel() }()
		if res, err := client.Do(req); err == nil {
			res.Body.Close()
		}
		cancel()
	}
	waitFor(t, "the requests to stop counting", func() bool { return serverStats(t, rp, "a").InFlight == 0 })
	if s := serverStats(t, rp, "a"); s.HTTPFailed != 0 {
		t.Errorf("server a failed %d requests; its clients gave up, it did not fail", s.HTTPFailed)
	}
}

// TestTimeoutNotSentAgain: a GET whose server does not answer in
// ResponseHeaderTimeout is a 504, not sent on to the policy's other
// servers to time out there too.
func TestTimeoutNotSentAgain(t *testing.T) {
	rp, addr := startTable(t)
	var asked atomic.Int32
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	for _, id := range []string{"a", "b", "c"} {
		be := backend(t, id)
		be.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			asked.Add(1)
			select {
			case <-release:
			case <-r.Context().Done():
			}
		})
		register(t, rp, &revproxy.Server{ID: id, Policy: "web", ProxyAddr: addr, HTTPPort: portOf(t, be)})
	}
	front := "http://" + serve(t, &Proxy{Table: rp, Routes: []Route{{Policy: "web"}}, ResponseHeaderTimeout: 200 * time.Millisecond})
	if code, body, _ := getBody(t, newClient(t), front+"/report"); code != http.StatusGatewayTimeout {
		t.Errorf("status %d %q; want 504", code, strings.TrimSpace(body))
	}
	if n := asked.Load(); n != 1 {
		t.Errorf("one GET reached %d servers; want 1", n)
	}
}

// TestRateLimitPerIPv6Subnet: the addresses of one IPv6 /64 share a
// bucket; another /64 has its own.
func TestRateLimitPerIPv6Subnet(t *testing.T) {
	p := &Proxy{Access: Access{Rate: 1, Burst: 1}}
	served := 0
	for i := range 50 {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.RemoteAddr = fmt.Sprintf("[2001:db8::%x]:1234", i+1)
		w := httptest.NewRecorder()
		p.ServeHTTP(w, r)
		if w.Code != http.StatusTooManyRequests {
			served++
		}
	}
	if served != 1 {
		t.Errorf("one /64 made %d requests at rate 1, burst 1; want 1", served)
	}
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.RemoteAddr = "[2001:db8:0:1::1]:1234"
	w := httptest.NewRecorder()
	p.ServeHTTP(w, r)
	if w.Code == http.StatusTooManyRequests {
		t.Error("another /64 was refused")
	}
}

func mustURL(s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		panic(err)
	}
	return u
}
