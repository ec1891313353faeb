package httpproxy

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"net/textproto"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// curl runs curl with args and returns what it wrote to stdout, failing
// the test when it fails. Proxy settings in the environment are dropped:
// the test's own -x is the only proxy. It skips the test when curl is not
// installed, unless REVPROXY_CURL=require (as in .ci/run) makes that a
// failure.
func curl(t *testing.T, args ...string) string {
	t.Helper()
	path, err := exec.LookPath("curl")
	if err != nil {
		if os.Getenv("REVPROXY_CURL") == "require" {
			t.Fatal("curl is not installed, and REVPROXY_CURL=require: apt-get install curl")
		}
		t.Skip("curl is not installed (apt-get install curl); set REVPROXY_CURL=require to fail instead")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, path, append([]string{"--silent", "--show-error"}, args...)...)
	for _, kv := range os.Environ() {
		if name, _, _ := strings.Cut(kv, "="); !strings.HasSuffix(strings.ToLower(name), "_proxy") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("curl %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String()
}

// newOrigin serves h on loopback until the test ends.
func newOrigin(t *testing.T, h http.HandlerFunc) *httptest.Server {
	t.Helper()
	s := httptest.NewServer(h)
	t.Cleanup(s.Close)
	return s
}

// proxyClient returns a client that sends every request through the
// proxy at addr, its idle connections closed when the test ends.
func proxyClient(t *testing.T, addr string) *http.Client {
	t.Helper()
	tr := &http.Transport{Proxy: http.ProxyURL(&url.URL{Scheme: "http", Host: addr})}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}
}

// get fetches url with c and returns the response, its body read.
func get(t *testing.T, c *http.Client, url string) (*http.Response, string) {
	t.Helper()
	res, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res, string(body)
}

// rawRequest writes raw to the proxy at addr on a connection of its own
// and returns the answer, its body read.
func rawRequest(t *testing.T, addr, raw string) (*http.Response, string) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatal(err)
	}
	res, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res, string(body)
}

// closedPort returns a loopback address nothing listens on.
func closedPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// logBuffer is a Logger's output, safe to write from the proxy's
// goroutines while the test reads it.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// debugLogger returns a Logger that writes everything, Debug included, to
// the buffer it returns.
func debugLogger() (*slog.Logger, *logBuffer) {
	b := &logBuffer{}
	return slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug})), b
}

// TestForwardCurl fetches a page through the forward proxy with curl -x:
// the origin sees Via and not the client's address, curl gets the body
// and Via, and the upstream's time to its header is measured.
func TestForwardCurl(t *testing.T) {
	seen := make(chan *http.Request, 1)
	origin := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		seen <- r.Clone(context.Background())
		io.WriteString(w, "hello from the origin")
	})
	p := &Proxy{Forward: true}
	addr := serve(t, p)

	out := curl(t, "--include", "-x", "http://"+addr, origin.URL+"/path?q=1")
	header, body, _ := strings.Cut(out, "\r\n\r\n")
	if body != "hello from the origin" {
		t.Errorf("curl got body %q, want the origin's", body)
	}
	if !strings.Contains(header+"\r\n", "\r\nVia: 1.1 revproxy\r\n") {
		t.Errorf("the response has no Via: 1.1 revproxy:\n%s", header)
	}
	r := <-seen
	if r.URL.RequestURI() != "/path?q=1" {
		t.Errorf("the origin was asked for %q, want /path?q=1", r.URL.RequestURI())
	}
	if got := r.Header.Values("Via"); !cmp.Equal(got, []string{"1.1 revproxy"}) {
		t.Errorf("the origin saw Via %q, want 1.1 revproxy", got)
	}
	for _, h := range []string{"X-Forwarded-For", "Forwarded", "Proxy-Connection"} {
		if v, ok := r.Header[h]; ok {
			t.Errorf("the origin saw %s: %q", h, v)
		}
	}
	if _, n, _ := p.stats.upstream.cumulative(); n != 1 {
		t.Errorf("the upstream's time was measured %d times, want 1", n)
	}
}

// TestForwardHopByHop sends a request with hop-by-hop headers through the
// proxy and has the origin answer with some: neither side sees the
// other's, both see the end-to-end ones and Via appended to what was
// there.
func TestForwardHopByHop(t *testing.T) {
	seen := make(chan http.Header, 1)
	origin := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		seen <- r.Header.Clone()
		h := w.Header()
		h.Set("Connection", "X-Back")
		h.Set("X-Back", "1")
		h.Set("Keep-Alive", "timeout=7")
		h.Set("Proxy-Authenticate", `Basic realm="origin"`)
		h.Set("X-End-Back", "1")
		h.Set("Via", "1.1 origin-cache")
		io.WriteString(w, "ok")
	})
	addr := serve(t, &Proxy{Forward: true})

	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	host := strings.TrimPrefix(origin.URL, "http://")
	fmt.Fprintf(c, "GET %s/hop HTTP/1.1\r\nHost: %s\r\n"+
		"Connection: X-Hop\r\nX-Hop: 1\r\nProxy-Connection: keep-alive\r\nKeep-Alive: timeout=5\r\nTE: trailers\r\n"+
		"X-End: 1\r\nVia: 1.0 downstream\r\nX-Forwarded-For: 192.0.2.7\r\n\r\n", origin.URL, host)

	// Exactly what the origin saw: the end-to-end headers, the client's
	// X-Forwarded-For as it was and none added, no Accept-Encoding of
	// the proxy's own, no User-Agent of Go's.
	want := http.Header{
		"X-End":           {"1"},
		"Via":             {"1.0 downstream, 1.1 revproxy"},
		"X-Forwarded-For": {"192.0.2.7"},
	}
	if diff := cmp.Diff(want, <-seen); diff != "" {
		t.Errorf("the origin saw headers (-want +got):\n%s", diff)
	}

	// Exactly what arrived at the client, read off the wire.
	tp := textproto.NewReader(bufio.NewReader(c))
	status, err := tp.ReadLine()
	if err != nil {
		t.Fatal(err)
	}
	if status != "HTTP/1.1 200 OK" {
		t.Errorf("status line %q", status)
	}
	got, err := tp.ReadMIMEHeader()
	if err != nil {
		t.Fatal(err)
	}
	delete(got, "Date")
	wantBack := textproto.MIMEHeader{
		"Content-Length": {"2"},
		"Content-Type":   {"text/plain; charset=utf-8"},
		"X-End-Back":     {"1"},
		"Via":            {"1.1 origin-cache, 1.1 revproxy"},
	}
	if diff := cmp.Diff(wantBack, got); diff != "" {
		t.Errorf("the client got headers (-want +got):\n%s", diff)
	}
}

// TestForwardKeepAlive sends two requests, one after the other, through
// the proxy: the client's connection to the proxy and the proxy's to the
// origin both serve the two.
func TestForwardKeepAlive(t *testing.T) {
	var originConns atomic.Int32
	origin := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "again")
	}))
	origin.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			originConns.Add(1)
		}
	}
	origin.Start()
	t.Cleanup(origin.Close)
	client := proxyClient(t, serve(t, &Proxy{Forward: true}))

	var reused []bool
	trace := &httptrace.ClientTrace{GotConn: func(info httptrace.GotConnInfo) { reused = append(reused, info.Reused) }}
	ctx := httptrace.WithClientTrace(context.Background(), trace)
	for range 2 {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, origin.URL+"/again", nil)
		if err != nil {
			t.Fatal(err)
		}
		res, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(res.Body)
		res.Body.Close()
		if err != nil || string(body) != "again" {
			t.Fatalf("body %q, %v", body, err)
		}
	}
	if !cmp.Equal(reused, []bool{false, true}) {
		t.Errorf("the client's connection to the proxy was reused %v, want [false true]", reused)
	}
	if n := originConns.Load(); n != 1 {
		t.Errorf("the origin was connected to %d times, want once", n)
	}
}

// TestForwardStreams has the origin answer the first part of a request's
// body before the rest is sent: nothing waits for a whole body, either
// way.
func TestForwardStreams(t *testing.T) {
	origin := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		rc := http.NewResponseController(w)
		rc.EnableFullDuplex()
		first := make([]byte, 4)
		if _, err := io.ReadFull(r.Body, first); err != nil {
			t.Errorf("origin: %v", err)
			return
		}
		fmt.Fprintf(w, "%s? pong.", first)
		rc.Flush()
		rest, err := io.ReadAll(r.Body)
		if err != nil {
			t.Errorf("origin: %v", err)
		}
		fmt.Fprintf(w, " then %s.", rest)
	})
	client := proxyClient(t, serve(t, &Proxy{Forward: true}))

	// A hang would be the failure; the deadline turns it into an error.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	body, send := io.Pipe()
	defer send.Close()
	sent := make(chan error, 1)
	go func() {
		_, err := io.WriteString(send, "ping")
		sent <- err
	}()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, origin.URL+"/stream", body)
	if err != nil {
		t.Fatal(err)
	}
	res, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if err := <-sent; err != nil {
		t.Fatal(err)
	}
	first := make([]byte, len("ping? pong."))
	if _, err := io.ReadFull(res.Body, first); err != nil || string(first) != "ping? pong." {
		t.Fatalf("the answer began %q (%v), want %q before the request's body ended", first, err, "ping? pong.")
	}
	if _, err := io.WriteString(send, "more"); err != nil {
		t.Fatal(err)
	}
	send.Close()
	rest, err := io.ReadAll(res.Body)
	if err != nil || string(rest) != " then more." {
		t.Errorf("the answer went on %q (%v), want %q", rest, err, " then more.")
	}
}

// TestForwardErrors covers what the forward proxy answers when it does
// not fetch: an origin that cannot be reached, one that does not answer,
// denied destinations, an https URL.
func TestForwardErrors(t *testing.T) {
	t.Run("unreachable is 502, logged at Debug", func(t *testing.T) {
		log, logged := debugLogger()
		client := proxyClient(t, serve(t, &Proxy{Forward: true, Logger: log}))
		target := closedPort(t)
		res, _ := get(t, client, "http://"+target+"/")
		if res.StatusCode != http.StatusBadGateway {
			t.Errorf("status %d, want 502", res.StatusCode)
		}
		if out := logged.String(); !strings.Contains(out, "level=DEBUG") || !strings.Contains(out, "status=502") || !strings.Contains(out, target) {
			t.Errorf("the failure was not logged at Debug with its status and host:\n%s", out)
		}
	})

	t.Run("no response header in time is 504", func(t *testing.T) {
		origin := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
			<-r.Context().Done() // the proxy gives up and closes the connection
		})
		client := proxyClient(t, serve(t, &Proxy{Forward: true, ResponseHeaderTimeout: 100 * time.Millisecond}))
		res, _ := get(t, client, origin.URL+"/slow")
		if res.StatusCode != http.StatusGatewayTimeout {
			t.Errorf("status %d, want 504", res.StatusCode)
		}
	})

	t.Run("denied destinations are 403", func(t *testing.T) {
		var asked atomic.Int32
		origin := newOrigin(t, func(w http.ResponseWriter, r *http.Request) { asked.Add(1) })
		_, port, _ := net.SplitHostPort(strings.TrimPrefix(origin.URL, "http://"))
		p := &Proxy{Forward: true, DenyHosts: []string{"denied.test", ".example.test", "192.0.2.0/24", "127.0.0.0/8", "::1"}}
		client := proxyClient(t, serve(t, p))
		urls := []string{
			"http://denied.test/",
			"http://DENIED.test./",
			"http://example.test/",
			"http://www.example.test:8080/",
			"http://192.0.2.9/",
			origin.URL + "/",
			"http://[::1]:" + port + "/",
			// A name that resolves to a denied address, found at dial time.
			"http://localhost:" + port + "/",
		}
		for _, u := range urls {
			if res, _ := get(t, client, u); res.StatusCode != http.StatusForbidden {
				t.Errorf("%s: status %d, want 403", u, res.StatusCode)
			}
		}
		if n := p.stats.refusals[refusedHost].Load(); n != uint64(len(urls)) {
			t.Errorf("%d refusals for the host counted, want %d", n, len(urls))
		}
		if n := asked.Load(); n != 0 {
			t.Errorf("the denied origin was asked %d times", n)
		}
	})

	t.Run("an https URL is 400", func(t *testing.T) {
		addr := serve(t, &Proxy{Forward: true})
		res, body := rawRequest(t, addr, "GET https://127.0.0.1:1/ HTTP/1.1\r\nHost: 127.0.0.1:1\r\n\r\n")
		if res.StatusCode != http.StatusBadRequest || !strings.Contains(body, "CONNECT") {
			t.Errorf("status %d, body %q; want 400 that points to CONNECT", res.StatusCode, body)
		}
	})
}

// TestForwardOff refuses absolute-form requests and tunnels with 403 when
// Forward is off: a reverse proxy is not an open proxy.
func TestForwardOff(t *testing.T) {
	var asked atomic.Int32
	origin := newOrigin(t, func(w http.ResponseWriter, r *http.Request) { asked.Add(1) })
	host := strings.TrimPrefix(origin.URL, "http://")
	_, port, _ := net.SplitHostPort(host)
	addr := serve(t, &Proxy{ConnectPorts: []int{atoi(t, port)}})

	res, _ := rawRequest(t, addr, "GET "+origin.URL+"/ HTTP/1.1\r\nHost: "+host+"\r\n\r\n")
	if res.StatusCode != http.StatusForbidden {
		t.Errorf("absolute-form: status %d, want 403", res.StatusCode)
	}
	if _, _, res := connect(t, addr, host); res.StatusCode != http.StatusForbidden {
		t.Errorf("CONNECT: status %d, want 403", res.StatusCode)
	}
	if n := asked.Load(); n != 0 {
		t.Errorf("the origin was asked %d times", n)
	}
}
