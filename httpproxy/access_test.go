package httpproxy

import (
	"bufio"
	"encoding/base64"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/time/rate"
)

// clientFrom returns a client whose connections come from ip (all of
// 127/8 is loopback on Linux), sending through the proxy at proxyAddr
// when it is not "".
func clientFrom(t *testing.T, ip, proxyAddr string) *http.Client {
	t.Helper()
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
	tr := &http.Transport{DialContext: d.DialContext}
	if proxyAddr != "" {
		tr.Proxy = http.ProxyURL(&url.URL{Scheme: "http", Host: proxyAddr})
	}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}
}

// getWithAuth sends GET target through c with the Proxy-Authorization auth, when
// not "", and returns the response, its body read and closed.
func getWithAuth(t *testing.T, c *http.Client, target, auth string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, target, nil)
	if err != nil {
		t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Proxy-Authorization", auth)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp
}

// connectWithAuth asks the proxy at proxyAddr for a tunnel to target, over raw
// TCP, with the Proxy-Authorization auth when not "", and returns the
// response's head; the connection is closed.
func connectWithAuth(t *testing.T, proxyAddr, target, auth string) *http.Response {
	t.Helper()
	conn, err := net.Dial("tcp", proxyAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	head := "CONNECT " + target + " HTTP/1.1\r\nHost: " + target + "\r\n"
	if auth != "" {
		head += "Proxy-Authorization: " + auth + "\r\n"
	}
	if _, err := io.WriteString(conn, head+"\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), &http.Request{Method: http.MethodConnect})
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

// admitted reports whether code is not one of admit's refusals: the paths
// behind it may answer anything else.
func admitted(code int) bool {
	return code != http.StatusForbidden && code != http.StatusProxyAuthRequired && code != http.StatusTooManyRequests
}

// refusals are p's refusal counts.
func refusals(p *Proxy) (n [numRefusals]uint64) {
	for i := range n {
		n[i] = p.stats.refusals[i].Load()
	}
	return n
}

// clientBuckets is how many clients' buckets p keeps.
func (p *Proxy) clientBuckets() int { return p.gate.load(&p.Access).buckets.len() }

// fakeClock is a clock that moves only when told.
type fakeClock struct{ elapsed atomic.Int64 }

var clockStart = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func (c *fakeClock) now() time.Time          { return clockStart.Add(time.Duration(c.elapsed.Load())) }
func (c *fakeClock) advance(d time.Duration) { c.elapsed.Add(int64(d)) }

func basic(user, password string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+password))
}

func TestAccessLists(t *testing.T) {
	one, two := netip.MustParsePrefix("127.0.0.1/32"), netip.MustParsePrefix("127.0.0.2/32")
	all := netip.MustParsePrefix("127.0.0.0/8")
	for _, tc := range []struct {
		name    string
		access  Access
		refused string
	}{
		{"allow .1", Access{Allow: []netip.Prefix{one}}, "127.0.0.2"},
		{"allow .2", Access{Allow: []netip.Prefix{two}}, "127.0.0.1"},
		{"deny .1", Access{Deny: []netip.Prefix{one}}, "127.0.0.1"},
		{"deny .2", Access{Deny: []netip.Prefix{two}}, "127.0.0.2"},
		{"allow all, deny .1", Access{Allow: []netip.Prefix{all}, Deny: []netip.Prefix{one}}, "127.0.0.1"},
		{"allow all, deny .2", Access{Allow: []netip.Prefix{all}, Deny: []netip.Prefix{two}}, "127.0.0.2"},
		{"allow both, deny .2", Access{Allow: []netip.Prefix{one, two}, Deny: []netip.Prefix{two}}, "127.0.0.2"},
		{"allow .1, deny .1 and .2", Access{Allow: []netip.Prefix{one}, Deny: []netip.Prefix{two, one}}, "127.0.0.1,127.0.0.2"},
		{"IPv6 only allowed", Access{Allow: []netip.Prefix{netip.MustParsePrefix("::1/128")}}, "127.0.0.1,127.0.0.2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := &Proxy{Forward: true, Access: tc.access}
			addr := serve(t, p)
			origin := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
			t.Cleanup(origin.Close)
			var want [numRefusals]uint64
			for _, ip := range []string{"127.0.0.1", "127.0.0.2"} {
				refused := strings.Contains(tc.refused, ip)
				// A request for the proxy itself, and one to forward (to an
				// origin of its own: forwarded to the proxy, it would come
				// from the proxy's address): the lists apply to both.
				for c, target := range map[*http.Client]string{clientFrom(t, ip, ""): "http://" + addr + "/x", clientFrom(t, ip, addr): origin.URL + "/x"} {
					resp := getWithAuth(t, c, target, "")
					switch {
					case refused && resp.StatusCode != http.StatusForbidden:
						t.Errorf("client %s: status %d, want 403", ip, resp.StatusCode)
					case !refused && !admitted(resp.StatusCode):
						t.Errorf("client %s: status %d, want it admitted", ip, resp.StatusCode)
					}
					if refused {
						want[refusedClient]++
					}
				}
			}
			if got := refusals(p); got != want {
				t.Errorf("refusals %v, want %v", got, want)
			}
		})
	}
}

func TestProxyAuth(t *testing.T) {
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Proxy-Authorization") != "" {
			t.Error("the proxy's credentials reached the origin")
		}
	}))
	defer origin.Close()
	originPort := origin.Listener.Addr().(*net.TCPAddr).Port
	p := &Proxy{
		Forward:      true,
		ConnectPorts: []int{originPort},
		Access:       Access{Users: map[string]string{"alice": "open sesame", "bob": "a:b:c"}},
	}
	addr := serve(t, p)
	viaProxy := clientFrom(t, "127.0.0.1", addr)
	direct := clientFrom(t, "127.0.0.1", "")
	const wantChallenge = `Basic realm="revproxy"`

	var want [numRefusals]uint64
	for _, tc := range []struct {
		name string
		auth string
		ok   bool
	}{
		{"no credentials", "", false},
		{"wrong password", basic("alice", "open"), false},
		{"password with a suffix", basic("alice", "open sesame!"), false},
		{"empty password", basic("alice", ""), false},
		{"another user's password", basic("alice", "a:b:c"), false},
		{"unknown user", basic("mallory", "open sesame"), false},
		{"no colon", "Basic " + base64.StdEncoding.EncodeToString([]byte("alice")), false},
		{"not base64", "Basic !!!!", false},
		{"another scheme", "Bearer " + base64.StdEncoding.EncodeToString([]byte("alice:open sesame")), false},
		{"too long", basic("alice", strings.Repeat("x", 2*maxCredentials)), false},
		{"right", basic("alice", "open sesame"), true},
		{"right, scheme in lower case", "basic " + base64.StdEncoding.EncodeToString([]byte("alice:open sesame")), true},
		{"right, password with colons", basic("bob", "a:b:c"), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			forward := getWithAuth(t, viaProxy, origin.URL+"/", tc.auth)
			tunnel := connectWithAuth(t, addr, origin.Listener.Addr().String(), tc.auth)
			for _, r := range []struct {
				what string
				resp *http.Response
			}{{"forward request", forward}, {"CONNECT", tunnel}} {
				if tc.ok {
					if !admitted(r.resp.StatusCode) {
						t.Errorf("%s: status %d, want it admitted", r.what, r.resp.StatusCode)
					}
					continue
				}
				want[refusedAuth]++
				if r.resp.StatusCode != http.StatusProxyAuthRequired {
					t.Errorf("%s: status %d, want 407", r.what, r.resp.StatusCode)
				}
				if got := r.resp.Header.Values("Proxy-Authenticate"); len(got) != 1 || got[0] != wantChallenge {
					t.Errorf("%s: Proxy-Authenticate %q, want [%q]", r.what, got, wantChallenge)
				}
			}
			// A request for the proxy itself is not asking a proxy:
			// Proxy-Authorization does not apply to it.
			if resp := getWithAuth(t, direct, "http://"+addr+"/x", tc.auth); !admitted(resp.StatusCode) {
				t.Errorf("origin-form request: status %d, want it admitted", resp.StatusCode)
			}
		})
	}
	if got := refusals(p); got != want {
		t.Errorf("refusals %v, want %v", got, want)
	}
}

func TestChallenge(t *testing.T) {
	for realm, want := range map[string]string{
		"":             `Basic realm="revproxy"`,
		"corp":         `Basic realm="corp"`,
		`say "hi" \o/`: `Basic realm="say \"hi\" \\o/"`,
	} {
		if got := challenge(realm); got != want {
			t.Errorf("challenge(%q) = %s, want %s", realm, got, want)
		}
	}
}

func TestRateLimit(t *testing.T) {
	var clock fakeClock
	p := &Proxy{Access: Access{Rate: rate.Every(time.Hour), Burst: 2}}
	p.gate.now = clock.now
	addr := serve(t, p)
	target := "http://" + addr + "/x"
	one, two := clientFrom(t, "127.0.0.1", ""), clientFrom(t, "127.0.0.2", "")
	var refused uint64
	expectAdmitted := func(c *http.Client, what string) {
		t.Helper()
		if resp := getWithAuth(t, c, target, ""); !admitted(resp.StatusCode) {
			t.Errorf("%s: status %d, want it admitted", what, resp.StatusCode)
		}
	}
	expectRefused := func(c *http.Client, what, retryAfter string) {
		t.Helper()
		refused++
		resp := getWithAuth(t, c, target, "")
		if resp.StatusCode != http.StatusTooManyRequests {
			t.Errorf("%s: status %d, want 429", what, resp.StatusCode)
		}
		if got := resp.Header.Values("Retry-After"); len(got) != 1 || got[0] != retryAfter {
			t.Errorf("%s: Retry-After %q, want [%s]", what, got, retryAfter)
		}
	}

	expectAdmitted(one, "first request")
	expectAdmitted(one, "second request, the burst")
	for range 5 {
		expectRefused(one, "third request", "3600")
	}
	expectAdmitted(two, "another client")
	clock.advance(30 * time.Minute)
	expectRefused(one, "half an hour later", "1800")
	// An hour after the burst, one token has come back: the refused
	// requests took none.
	clock.advance(30 * time.Minute)
	expectAdmitted(one, "an hour later")
	expectRefused(one, "the request after", "3600")

	want := [numRefusals]uint64{refusedRate: refused}
	if got := refusals(p); got != want {
		t.Errorf("refusals %v, want %v", got, want)
	}
}

// TestRefusalsOverlap refuses one client from many goroutines at once:
// still no refusal takes a token (reserving and cancelling would lose
// some when cancellations come out of order).
func TestRefusalsOverlap(t *testing.T) {
	b := newBuckets(rate.Every(time.Hour), 1, 10)
	client := netip.MustParseAddr("127.0.0.1")
	if ok, _ := b.take(client, clockStart); !ok {
		t.Fatal("first request refused")
	}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 200 {
				if ok, retry := b.take(client, clockStart); ok || retry != 3600 {
					t.Errorf("take = %v, %d; want false, 3600", ok, retry)
					return
				}
			}
		})
	}
	wg.Wait()
	if ok, _ := b.take(client, clockStart.Add(time.Hour)); !ok {
		t.Error("refused an hour later: refusals took tokens")
	}
}

func TestRetryAfter(t *testing.T) {
	for _, tc := range []struct {
		wait float64
		want int64
	}{
		{0, 1}, {-1, 1}, {1e-9, 1}, {0.5, 1}, {1, 1}, {1.000001, 2},
		{3600.0000000000005, 3600}, {3599.9999999999995, 3600},
		{1e300, maxRetryAfter},
	} {
		if got := retryAfter(tc.wait); got != tc.want {
			t.Errorf("retryAfter(%v) = %d, want %d", tc.wait, got, tc.want)
		}
	}
}

func TestMaxClients(t *testing.T) {
	var clock fakeClock
	p := &Proxy{Access: Access{Rate: rate.Every(time.Hour), Burst: 1, MaxClients: 2}}
	p.gate.now = clock.now
	addr := serve(t, p)
	target := "http://" + addr + "/x"
	clients := map[string]*http.Client{}
	for _, ip := range []string{"127.0.0.1", "127.0.0.2", "127.0.0.3"} {
		clients[ip] = clientFrom(t, ip, "")
	}
	for i, step := range []struct {
		ip      string
		code    int // 0: admitted
		clients int
	}{
		{"127.0.0.1", 0, 1},
		{"127.0.0.1", http.StatusTooManyRequests, 1},
		{"127.0.0.2", 0, 2},
		{"127.0.0.3", 0, 2}, // .1, the least recently seen, goes
		{"127.0.0.1", 0, 2}, // and starts again with a full bucket
		{"127.0.0.1", http.StatusTooManyRequests, 2},
	} {
		resp := getWithAuth(t, clients[step.ip], target, "")
		if step.code == 0 && !admitted(resp.StatusCode) || step.code != 0 && resp.StatusCode != step.code {
			t.Errorf("step %d, client %s: status %d, want %d (0: admitted)", i, step.ip, resp.StatusCode, step.code)
		}
		if n := p.clientBuckets(); n != step.clients {
			t.Errorf("step %d: %d clients' buckets, want %d", i, n, step.clients)
		}
	}
	want := [numRefusals]uint64{refusedRate: 2}
	if got := refusals(p); got != want {
		t.Errorf("refusals %v, want %v", got, want)
	}
}

func TestRefusalLogged(t *testing.T) {
	for _, level := range []slog.Level{slog.LevelDebug, slog.LevelInfo} {
		t.Run(level.String(), func(t *testing.T) {
			var log logBuffer
			p := &Proxy{
				Access: Access{Deny: []netip.Prefix{netip.MustParsePrefix("127.0.0.2/32")}},
				Logger: slog.New(slog.NewTextHandler(&log, &slog.HandlerOptions{Level: level})),
			}
			addr := serve(t, p)
			getWithAuth(t, clientFrom(t, "127.0.0.1", ""), "http://"+addr+"/x", "")
			getWithAuth(t, clientFrom(t, "127.0.0.2", ""), "http://"+addr+"/x", "")
			got := log.String()
			if level == slog.LevelInfo {
				if got != "" {
					t.Errorf("logged at Info:\n%s", got)
				}
				return
			}
			lines := strings.Split(strings.TrimSpace(got), "\n")
			if len(lines) != 1 || !strings.Contains(lines[0], "level=DEBUG") ||
				!strings.Contains(lines[0], "reason=client") || !strings.Contains(lines[0], "client=127.0.0.2:") {
				t.Errorf("log:\n%s\nwant one Debug line for the refused client", got)
			}
		})
	}
}

func TestClientAddr(t *testing.T) {
	for remote, want := range map[string]string{
		"127.0.0.2:1234":          "127.0.0.2",
		"[::ffff:127.0.0.2]:1234": "127.0.0.2",
		"[::1]:80":                "::1",
		"[fe80::1%eth0]:80":       "fe80::1",
		"10.0.0.1":                "10.0.0.1", // rewritten by middleware, without a port
		"@":                       "",         // a Unix socket
		"":                        "",
	} {
		got, ok := clientAddr(remote)
		if ok != (want != "") || ok && got.String() != want {
			t.Errorf("clientAddr(%q) = %v, %v; want %q", remote, got, ok, want)
		}
	}
	// An address that cannot be read is refused by the lists, whatever
	// they say.
	p := &Proxy{Access: Access{Deny: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}}
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.RemoteAddr = "@"
	if w := httptest.NewRecorder(); p.admit(w, r, false) || w.Code != http.StatusForbidden {
		t.Errorf("unreadable address: admitted or status %d, want 403", w.Code)
	}
}

// admitCases are Access configurations whose admission of a known client
// should cost no allocation.
var admitCases = []struct {
	name     string
	access   Access
	proxying bool
}{
	{"open", Access{}, true},
	{"lists and rate", Access{
		Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")},
		Deny:  []netip.Prefix{netip.MustParsePrefix("127.0.0.2/32")},
		Rate:  1e9,
	}, false},
	{"rate and credentials", Access{Rate: 1e9, Users: map[string]string{"alice": "open sesame"}}, true},
}

// admitRequest is a request from a known client, with credentials.
func admitRequest(tb testing.TB, p *Proxy, proxying bool) *http.Request {
	r := httptest.NewRequest(http.MethodGet, "http://example.invalid/", nil)
	r.RemoteAddr = "127.0.0.1:40000"
	r.Header.Set("Proxy-Authorization", basic("alice", "open sesame"))
	if !p.admit(httptest.NewRecorder(), r, proxying) { // the client is known from now on
		tb.Fatal("refused")
	}
	return r
}

func TestAdmitAllocs(t *testing.T) {
	for _, tc := range admitCases {
		p := &Proxy{Access: tc.access}
		r, w := admitRequest(t, p, tc.proxying), httptest.NewRecorder()
		allocs := testing.AllocsPerRun(100, func() {
			if !p.admit(w, r, tc.proxying) {
				t.Fatal("refused")
			}
		})
		if allocs != 0 {
			t.Errorf("%s: %v allocations per admission, want 0", tc.name, allocs)
		}
	}
}

func BenchmarkAdmit(b *testing.B) {
	for _, tc := range admitCases {
		b.Run(tc.name, func(b *testing.B) {
			p := &Proxy{Access: tc.access}
			r, w := admitRequest(b, p, tc.proxying), httptest.NewRecorder()
			b.ReportAllocs()
			for b.Loop() {
				if !p.admit(w, r, tc.proxying) {
					b.Fatal("refused")
				}
			}
		})
	}
}
