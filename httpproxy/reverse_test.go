package httpproxy

import (
	"bufio"
	"crypto/sha1"
	"encoding/base64"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/seed-c202d8a5/revproxy"
)

// getBody GETs url with client and returns the status and body.
func getBody(t *testing.T, client *http.Client, url string, header ...string) (int, string, http.Header) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		if header[i] == "Host" {
			req.Host = header[i+1]
			continue
		}
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b), resp.Header
}

// newClient returns a client whose idle connections are closed when the
// test ends.
func newClient(t *testing.T) *http.Client {
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}
}

// TestReverseRoundRobinAndFailover: requests for a policy go round robin
// to the two servers that registered an HTTP service; when one's service
// dies they all go to the other, still answered; when it leaves the
// table, it is no longer tried.
func TestReverseRoundRobinAndFailover(t *testing.T) {
	rp, addr := startTable(t)
	a, b := backend(t, "a"), backend(t, "b")
	register(t, rp, &revproxy.Server{ID: "a", Policy: "web", ProxyAddr: addr, HTTPPort: portOf(t, a)})
	stopB := register(t, rp, &revproxy.Server{ID: "b", Policy: "web", ProxyAddr: addr, HTTPPort: portOf(t, b)})
	front := "http://" + serve(t, &Proxy{Table: rp, Routes: []Route{{Prefix: "/", Policy: "web"}}})
	client := newClient(t)

	var got []string
	for range 4 {
		code, body, h := getBody(t, client, front+"/x")
		if code != http.StatusOK {
			t.Fatalf("status %d: %s", code, body)
		}
		if !strings.Contains(h.Get("Via"), "revproxy") {
			t.Errorf("Via %q; want revproxy in it", h.Get("Via"))
		}
		got = append(got, body)
	}
	if diff := cmp.Diff([]string{"a", "b", "a", "b"}, got); diff != "" {
		t.Errorf("round robin (-want +got):\n%s", diff)
	}

	b.Close() // its service dies; its registration lives on
	for i := range 4 {
		if code, body, _ := getBody(t, client, front+"/x"); code != http.StatusOK || body != "a" {
			t.Errorf("request %d after b's service died: %d %q; want 200 from a", i, code, body)
		}
	}
	stopB()
	waitFor(t, "b to leave", func() bool { return len(rp.Servers("web")) == 1 })
	for i := range 2 {
		if code, body, _ := getBody(t, client, front+"/x"); code != http.StatusOK || body != "a" {
			t.Errorf("request %d after b left: %d %q; want 200 from a", i, code, body)
		}
	}
	stats := map[string][2]uint64{}
	for _, s := range rp.Stats().Policies[0].Servers {
		stats[s.ID] = [2]uint64{s.HTTPAnswered, s.HTTPFailed}
		if s.InFlight != 0 {
			t.Errorf("%s: %d in flight after every request ended", s.ID, s.InFlight)
		}
	}
	if got := stats["a"]; got[0] != 8 || got[1] != 0 {
		t.Errorf("a answered %d, failed %d; want 8 and 0", got[0], got[1])
	}
}

// TestReverseRoutes: a Route by host name and one by path prefix, first
// match wins; a request no Route matches is not found; a policy without a
// server with an HTTP service is 503.
func TestReverseRoutes(t *testing.T) {
	rp, addr := startTable(t)
	api, web := backend(t, "api"), backend(t, "web")
	register(t, rp, &revproxy.Server{ID: "api1", Policy: "api", ProxyAddr: addr, HTTPPort: portOf(t, api)})
	register(t, rp, &revproxy.Server{ID: "web1", Policy: "web", ProxyAddr: addr, HTTPPort: portOf(t, web)})
	register(t, rp, &revproxy.Server{ID: "msg1", Policy: "messages", ProxyAddr: addr})
	front := "http://" + serve(t, &Proxy{Table: rp, Routes: []Route{
		{Host: "api.test", Policy: "api"},
		{Prefix: "/static/", Policy: "web"},
		{Prefix: "/msgs/", Policy: "messages"},
	}})
	client := newClient(t)
	for _, tc := range []struct {
		path, host string
		code       int
		body       string
	}{
		{"/static/x", "api.test", 200, "api"},
		{"/static/x", "", 200, "web"},
		{"/other", "api.test:8080", 200, "api"},
		{"/other", "", 404, ""},
		{"/msgs/x", "", 503, ""},
	} {
		code, body, _ := getBody(t, client, front+tc.path, "Host", tc.host)
		if code != tc.code || (tc.body != "" && body != tc.body) {
			t.Errorf("%s on host %q: %d %q; want %d %q", tc.path, tc.host, code, body, tc.code, tc.body)
		}
	}
}

// TestReverseRetriesOnlyWhenSafe: a POST whose server took its body and
// failed is not sent again (502); one whose server could not be reached
// is, and answered.
func TestReverseRetriesOnlyWhenSafe(t *testing.T) {
	rp, addr := startTable(t)
	var posts atomic.Int32
	broken := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.ReadAll(r.Body)
		posts.Add(1)
		panic(http.ErrAbortHandler) // the connection closes with no answer
	}))
	t.Cleanup(broken.Close)
	good := backend(t, "good")
	dead := backend(t, "dead")
	deadPort := portOf(t, dead)
	dead.Close()
	register(t, rp, &revproxy.Server{ID: "broken", Policy: "p", ProxyAddr: addr, HTTPPort: portOf(t, broken)})
	register(t, rp, &revproxy.Server{ID: "dead", Policy: "p", ProxyAddr: addr, HTTPPort: deadPort})
	register(t, rp, &revproxy.Server{ID: "good", Policy: "p", ProxyAddr: addr, HTTPPort: portOf(t, good)})
	front := "http://" + serve(t, &Proxy{Table: rp, Routes: []Route{{Policy: "p"}}})
	client := newClient(t)
	post := func() (int, string) {
		resp, err := client.Post(front+"/submit", "text/plain", strings.NewReader("form"))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	// Round robin: broken, then dead, then good.
	if code, _ := post(); code != http.StatusBadGateway || posts.Load() != 1 {
		t.Errorf("POST to the broken server: %d after %d attempts; want 502 after 1", code, posts.Load())
	}
	if code, body := post(); code != http.StatusOK || body != "good" {
		t.Errorf("POST to the dead server: %d %q; want it sent on to good", code, body)
	}
	// A GET is idempotent: the broken server's failure sends it on.
	if code, body, _ := getBody(t, client, front+"/x"); code != http.StatusOK || body == "" {
		t.Errorf("GET: %d %q; want 200", code, body)
	}
}

// TestReverseWebSocket: an Upgrade request passes through the reverse
// proxy, and a WebSocket text frame comes back echoed.
func TestReverseWebSocket(t *testing.T) {
	rp, addr := startTable(t)
	echo := httptest.NewServer(http.HandlerFunc(serveEchoWebSocket))
	t.Cleanup(echo.Close)
	register(t, rp, &revproxy.Server{ID: "ws", Policy: "ws", ProxyAddr: addr, HTTPPort: portOf(t, echo)})
	front := serve(t, &Proxy{Table: rp, Routes: []Route{{Policy: "ws"}}})

	c, err := net.Dial("tcp", front)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	key := base64.StdEncoding.EncodeToString([]byte("0123456789abcdef"))
	io.WriteString(c, "GET /chat HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"+
		"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: "+key+"\r\n\r\n")
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols || resp.Header.Get("Sec-WebSocket-Accept") != wsAccept(key) {
		t.Fatalf("handshake: %s, accept %q", resp.Status, resp.Header.Get("Sec-WebSocket-Accept"))
	}
	for _, msg := range []string{"hello", "through the proxy"} {
		c.Write(wsFrame(msg, true))
		got, err := wsRead(br)
		if err != nil || got != msg {
			t.Errorf("echo of %q: %q, %v", msg, got, err)
		}
	}
}

// serveEchoWebSocket is a WebSocket server that echoes text frames.
func serveEchoWebSocket(w http.ResponseWriter, r *http.Request) {
	if !strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
		http.Error(w, "websocket only", http.StatusBadRequest)
		return
	}
	conn, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return
	}
	defer conn.Close()
	io.WriteString(conn, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Accept: "+wsAccept(r.Header.Get("Sec-WebSocket-Key"))+"\r\n\r\n")
	for {
		msg, err := wsRead(brw.Reader)
		if err != nil {
			return
		}
		conn.Write(wsFrame(msg, false))
	}
}

func wsAccept(key string) string {
	sum := sha1.Sum([]byte(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	return base64.StdEncoding.EncodeToString(sum[:])
}

// wsFrame returns msg as one text frame, masked as a client sends it.
func wsFrame(msg string, masked bool) []byte {
	b := []byte{0x81, byte(len(msg))}
	if !masked {
		return append(b, msg...)
	}
	mask := [4]byte{1, 2, 3, 4}
	b[1] |= 0x80
	b = append(b, mask[:]...)
	for i := range len(msg) {
		b = append(b, msg[i]^mask[i%4])
	}
	return b
}

// wsRead reads one short text frame and returns its text.
func wsRead(r *bufio.Reader) (string, error) {
	var h [2]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return "", err
	}
	n := int(h[1] & 0x7f)
	var mask [4]byte
	if h[1]&0x80 != 0 {
		if _, err := io.ReadFull(r, mask[:]); err != nil {
			return "", err
		}
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		return "", err
	}
	if h[1]&0x80 != 0 {
		for i := range b {
			b[i] ^= mask[i%4]
		}
	}
	return string(b), nil
}
