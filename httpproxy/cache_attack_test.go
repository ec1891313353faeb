package httpproxy

// Regression tests for what an adversarial review found in the cache: one
// user's page served to another (F1), the forward and reverse paths
// sharing entries (F2), streams held until they end (F3), memory taken
// from an announced Content-Length (F7), and MaxBytes counting a fraction
// of what the cache holds (F8); and, by a second review, a stalled client
// holding others' requests, an empty first Authorization line, a panic
// leaving a fetch open.

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/seed-c202d8a5/revproxy"
)

// cacheGuard is how long a test waits for what must happen at once,
// before it fails: only a broken cache makes it wait that long.
const cacheGuard = 30 * time.Second

// receiveWithin waits for ch to close or yield, failing the test after
// cacheGuard.
func receiveWithin[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(cacheGuard):
		t.Fatalf("%s: nothing within %v", what, cacheGuard)
	}
	var zero T
	return zero
}

// cacheGet GETs url with client, failing the test when no response
// header comes within cacheGuard.
func cacheGet(t *testing.T, client *http.Client, url string) *http.Response {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), cacheGuard)
	t.Cleanup(cancel)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	res, err := client.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	return res
}

// TestCacheCookieNotShared (F1): through the forward proxy, a page that
// depends on the request's Cookie, sent without Cache-Control, is not
// served to another user from the cache.
func TestCacheCookieNotShared(t *testing.T) {
	var asked atomic.Int32
	origin := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		asked.Add(1)
		name := "anonymous"
		if c, err := r.Cookie("session"); err == nil {
			name = c.Value
		}
		fmt.Fprintf(w, "account page of %s", name)
	})
	addr := serve(t, &Proxy{Forward: true, Cache: &Cache{}})
	c := proxyClient(t, addr)
	page := func(user string) string {
		req, err := http.NewRequest(http.MethodGet, origin.URL+"/account", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Cookie", "session="+user)
		res, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, err := io.ReadAll(res.Body)
		if err != nil {
			t.Fatal(err)
		}
		return string(b) + " [" + res.Header.Get("X-Cache") + "]"
	}
	for _, user := range []string{"alice", "bob"} {
		if got, want := page(user), "account page of "+user+" [MISS]"; got != want {
			t.Errorf("%s got %q, want %q", user, got, want)
		}
	}
	if n := asked.Load(); n != 2 {
		t.Errorf("the origin was asked %d times, want 2", n)
	}
}

// TestCacheCredentialsNeedSharedResponse (F1): a request with a Cookie or
// Authorization is not answered with a stored response that does not say
// public or s-maxage, and leaves it stored for the others; one that says
// public answers it.
func TestCacheCredentialsNeedSharedResponse(t *testing.T) {
	for _, tc := range []struct {
		name   string
		cc     string // the response's Cache-Control
		cred   []string
		shared bool
	}{
		{name: "cookie default ttl", cred: []string{"Cookie", "session=alice"}},
		{name: "cookie max-age", cc: "max-age=60", cred: []string{"Cookie", "session=alice"}},
		{name: "cookie public", cc: "public, max-age=60", cred: []string{"Cookie", "session=alice"}, shared: true},
		{name: "cookie s-maxage", cc: "s-maxage=60", cred: []string{"Cookie", "session=alice"}, shared: true},
		{name: "authorization default ttl", cred: []string{"Authorization", "Bearer alice"}},
		{name: "authorization max-age", cc: "max-age=60", cred: []string{"Authorization", "Bearer alice"}},
		{name: "authorization public", cc: "public, max-age=60", cred: []string{"Authorization", "Bearer alice"}, shared: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var header []string
			if tc.cc != "" {
				header = []string{"Cache-Control", tc.cc}
			}
			r := newCacheRig(t, &Cache{}, fixed("page", header...))
			r.expect("/a", "MISS", "page")
			want, hits := "MISS", 2
			if tc.shared {
				want, hits = "HIT", 1
			}
			r.expect("/a", want, "page", tc.cred...)
			r.expect("/a", "HIT", "page") // still stored for requests without credentials
			r.wantOriginHits("GET /a", hits)
		})
	}
}

// TestCacheForwardAndReverseKeysApart (F2): a reverse-path request whose
// Host names an origin does not fill the entry that forward-proxy clients
// of that origin are served, nor the other way round.
func TestCacheForwardAndReverseKeysApart(t *testing.T) {
	rp, taddr := startTable(t)
	be := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=600")
		io.WriteString(w, "internal backend page")
	})
	register(t, rp, &revproxy.Server{ID: "a", Policy: "web", ProxyAddr: taddr, HTTPPort: portOf(t, be)})
	origin := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=600")
		io.WriteString(w, "real origin")
	})
	addr := serve(t, &Proxy{Forward: true, Table: rp, Routes: []Route{{Prefix: "/", Policy: "web"}}, Cache: &Cache{}})
	originHost := strings.TrimPrefix(origin.URL, "http://")
	reverse := func() string {
		_, body, h := getBody(t, newClient(t), "http://"+addr+"/login", "Host", originHost)
		return body + " [" + h.Get("X-Cache") + "]"
	}
	forward := func() string {
		res, body := get(t, proxyClient(t, addr), origin.URL+"/login")
		return body + " [" + res.Header.Get("X-Cache") + "]"
	}
	for _, step := range []struct {
		path string
		get  func() string
		want string
	}{
		{"reverse", reverse, "internal backend page [MISS]"},
		{"forward", forward, "real origin [MISS]"},
		{"forward", forward, "real origin [HIT]"},
		{"reverse", reverse, "internal backend page [HIT]"},
	} {
		if got := step.get(); got != step.want {
			t.Errorf("%s client got %q, want %q", step.path, got, step.want)
		}
	}
}

// TestCachePoliciesKeptApart (F2): on the reverse path, one Host and URI
// routed to two policies are two entries.
func TestCachePoliciesKeptApart(t *testing.T) {
	var asked atomic.Int32
	origin := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		fmt.Fprintf(w, "answer %d", asked.Add(1))
	})
	next := &http.Transport{}
	t.Cleanup(next.CloseIdleConnections)
	client := &http.Client{Transport: (&Cache{}).wrap(next, nil, reverseKey)}
	get := func(policy string) string {
		ctx := context.WithValue(t.Context(), policyKey{}, policy)
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, origin.URL+"/page", nil)
		if err != nil {
			t.Fatal(err)
		}
		res, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, err := io.ReadAll(res.Body)
		if err != nil {
			t.Fatal(err)
		}
		return policy + ": " + string(b) + " [" + res.Header.Get("X-Cache") + "]"
	}
	var got []string
	for _, policy := range []string{"a", "b", "a", "b"} {
		got = append(got, get(policy))
	}
	want := []string{"a: answer 1 [MISS]", "b: answer 2 [MISS]", "a: answer 1 [HIT]", "b: answer 2 [HIT]"}
	if strings.Join(got, ", ") != strings.Join(want, ", ") {
		t.Errorf("got %q, want %q", got, want)
	}
}

// TestCacheStreamPassesThrough (F3): an event stream through the forward
// proxy's cache reaches its client event by event while it is open, and
// is not stored.
func TestCacheStreamPassesThrough(t *testing.T) {
	var asked atomic.Int32
	gotFirst := make(chan struct{}, 2)
	origin := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		asked.Add(1)
		w.Header().Set("Content-Type", "text/event-stream")
		w.Header().Set("Cache-Control", "max-age=60")
		io.WriteString(w, "data: first\n\n")
		http.NewResponseController(w).Flush()
		select {
		case <-gotFirst:
		case <-r.Context().Done():
			return
		}
		io.WriteString(w, "data: second\n\n")
		http.NewResponseController(w).Flush()
		<-r.Context().Done() // the stream never ends
	})
	addr := serve(t, &Proxy{Forward: true, Cache: &Cache{}})
	c := proxyClient(t, addr)
	for range 2 {
		ctx, cancel := context.WithTimeout(t.Context(), cacheGuard)
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, origin.URL+"/events", nil)
		if err != nil {
			t.Fatal(err)
		}
		res, err := c.Do(req)
		if err != nil {
			cancel()
			t.Fatalf("no response header while the stream is open: %v", err)
		}
		events := bufio.NewReader(res.Body)
		var got []string
		for i := range 2 {
			line, err := events.ReadString('\n')
			if err != nil {
				t.Fatalf("event %d: %v", i, err)
			}
			events.ReadString('\n') // the blank line after it
			got = append(got, line)
			if i == 0 {
				gotFirst <- struct{}{}
			}
		}
		res.Body.Close()
		cancel()
		if want := "data: first\n,data: second\n"; strings.Join(got, ",") != want || res.Header.Get("X-Cache") != "MISS" {
			t.Errorf("got %q, X-Cache %q; want %q, MISS", got, res.Header.Get("X-Cache"), want)
		}
	}
	if n := asked.Load(); n != 2 {
		t.Errorf("the origin was asked %d times, want 2: a stream is never stored", n)
	}
}

// TestCacheWaitersNotHeldByStreams (F3): requests waiting for another's
// fetch of their URL are let go as soon as its response's header shows it
// will not be stored soon (an event stream; a response of unknown length,
// a long poll), and fetch on their own while it is still open. A storable
// response of unknown length is stored still once it ends.
func TestCacheWaitersNotHeldByStreams(t *testing.T) {
	for _, tc := range []struct {
		name        string
		contentType string
		stored      bool
	}{
		{name: "event stream", contentType: "text/event-stream"},
		{name: "unknown length", contentType: "text/plain", stored: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			const n = 3 // a leader and two waiters
			waiting, release := make(chan struct{}), make(chan struct{})
			cache := &Cache{}
			cache.waiting = func(_ string, k int) {
				if k == n-1 {
					close(waiting)
				}
			}
			var first atomic.Bool
			r := newCacheRig(t, cache, func(w http.ResponseWriter, req *http.Request) {
				if first.CompareAndSwap(false, true) {
					select {
					case <-waiting:
					case <-req.Context().Done():
						return
					}
				}
				w.Header().Set("Content-Type", tc.contentType)
				w.Header().Set("Cache-Control", "max-age=60")
				io.WriteString(w, "first\n")
				http.NewResponseController(w).Flush() // and no Content-Length
				select {
				case <-release:
					io.WriteString(w, "rest")
				case <-req.Context().Done():
				}
			})
			releaseOnce := sync.OnceFunc(func() { close(release) })
			t.Cleanup(releaseOnce) // before the origin closes, should the test fail first
			type result struct {
				line string
				res  *http.Response
				err  error
			}
			results := make(chan result, n)
			for range n {
				go func() {
					req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, r.origin.URL+"/a", nil)
					if err != nil {
						results <- result{err: err}
						return
					}
					res, err := r.client.Do(req)
					if err != nil {
						results <- result{err: err}
						return
					}
					line, err := bufio.NewReader(res.Body).ReadString('\n')
					results <- result{line, res, err}
				}()
			}
			var bodies []io.ReadCloser
			for range n {
				res := receiveWithin(t, results, "a request's first line while the responses are open")
				if res.err != nil || res.line != "first\n" {
					t.Fatalf("got %q, %v; want the first line", res.line, res.err)
				}
				bodies = append(bodies, res.res.Body)
			}
			releaseOnce()
			for _, b := range bodies {
				io.Copy(io.Discard, b)
				b.Close()
			}
			r.wantOriginHits("GET /a", n)
			want := "MISS"
			if tc.stored {
				want = "HIT"
			}
			r.expect("/a", want, "first\nrest")
		})
	}
}

// TestCacheStoresWhatItStreamed (F3): a storable response reaches the
// leader's client as it arrives, and is stored once it has passed whole;
// a request that waited for it meanwhile is then served from storage.
func TestCacheStoresWhatItStreamed(t *testing.T) {
	half := strings.Repeat("x", 1000)
	gotHalf, waiting := make(chan struct{}), make(chan struct{})
	cache := &Cache{}
	cache.waiting = func(string, int) { close(waiting) }
	r := newCacheRig(t, cache, func(w http.ResponseWriter, req *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		w.Header().Set("Content-Length", strconv.Itoa(2*len(half)))
		io.WriteString(w, half)
		http.NewResponseController(w).Flush()
		select {
		case <-gotHalf:
			io.WriteString(w, half)
		case <-req.Context().Done():
		}
	})
	gotHalfOnce := sync.OnceFunc(func() { close(gotHalf) })
	t.Cleanup(gotHalfOnce)
	res := cacheGet(t, r.client, r.origin.URL+"/a")
	defer res.Body.Close()
	buf := make([]byte, len(half))
	if _, err := io.ReadFull(res.Body, buf); err != nil {
		t.Fatalf("the first half: %v", err)
	}
	waiter := make(chan string, 1)
	go func() {
		resp, body, err := r.try(t.Context(), http.MethodGet, "/a")
		if err != nil {
			waiter <- err.Error()
			return
		}
		waiter <- resp.Header.Get("X-Cache") + " " + short(body)
	}()
	receiveWithin(t, waiting, "the second request to wait for the first's fetch")
	gotHalfOnce()
	rest, err := io.ReadAll(res.Body)
	if err != nil || string(rest) != half || res.Header.Get("X-Cache") != "MISS" {
		t.Fatalf("the rest: %d bytes, %v, X-Cache %q; want %d bytes of a MISS", len(rest), err, res.Header.Get("X-Cache"), len(half))
	}
	if got, want := receiveWithin(t, waiter, "the waiter's answer"), "HIT "+short(half+half); got != want {
		t.Errorf("the waiter got %s, want %s", got, want)
	}
	r.wantOriginHits("GET /a", 1)
}

// TestCacheClientGoneStoresNothing (F3): when the leader's client closes
// the body before its end, nothing is stored and the request that waited
// for it fetches on its own.
func TestCacheClientGoneStoresNothing(t *testing.T) {
	half := strings.Repeat("x", 1000)
	waiting := make(chan struct{})
	cache := &Cache{}
	cache.waiting = func(string, int) { close(waiting) }
	var first atomic.Bool
	r := newCacheRig(t, cache, func(w http.ResponseWriter, req *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		w.Header().Set("Content-Length", strconv.Itoa(2*len(half)))
		io.WriteString(w, half)
		if first.CompareAndSwap(false, true) {
			http.NewResponseController(w).Flush()
			<-req.Context().Done() // the leader's client leaves first
			return
		}
		io.WriteString(w, half)
	})
	res := cacheGet(t, r.client, r.origin.URL+"/a")
	if _, err := io.ReadFull(res.Body, make([]byte, len(half))); err != nil {
		t.Fatalf("the first half: %v", err)
	}
	waiter := make(chan string, 1)
	go func() {
		resp, body, err := r.try(t.Context(), http.MethodGet, "/a")
		if err != nil {
			waiter <- err.Error()
			return
		}
		waiter <- resp.Header.Get("X-Cache") + " " + short(body)
	}()
	receiveWithin(t, waiting, "the second request to wait for the first's fetch")
	res.Body.Close()
	if got, want := receiveWithin(t, waiter, "the waiter's answer"), "MISS "+short(half+half); got != want {
		t.Errorf("the waiter got %s, want %s", got, want)
	}
	r.wantOriginHits("GET /a", 2)
	r.expect("/a", "HIT", half+half) // the waiter's own fetch was stored
}

// TestCacheAllocatesAsBytesArrive (F7): 24 responses that announce 8 MiB
// and send none take next to no memory: the cache's copy of a body grows
// as its bytes arrive. (Before, it was 193 MiB, and the responses reached
// their clients only once their bodies had arrived whole.)
func TestCacheAllocatesAsBytesArrive(t *testing.T) {
	const n = 24
	r := newCacheRig(t, &Cache{}, func(w http.ResponseWriter, req *http.Request) {
		w.Header().Set("Content-Length", strconv.Itoa(8<<20))
		w.Header().Set("Cache-Control", "max-age=60")
		w.WriteHeader(http.StatusOK)
		http.NewResponseController(w).Flush()
		<-req.Context().Done() // stalls until its client leaves
	})
	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	headers := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("%s/%d", r.origin.URL, i), nil)
			if err != nil {
				headers <- err
				return
			}
			res, err := r.client.Do(req)
			headers <- err
			if err == nil {
				<-ctx.Done() // holds the response open
				res.Body.Close()
			}
		})
	}
	for range n {
		if err := receiveWithin(t, headers, "a stalled response's header"); err != nil {
			t.Fatal(err)
		}
	}
	runtime.GC()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	grown := int64(after.HeapAlloc) - int64(before.HeapAlloc)
	t.Logf("heap grew %d KiB for %d stalled responses", grown>>10, n)
	if grown > 16<<20 {
		t.Errorf("heap grew %d MiB for %d responses that sent no body", grown>>20, n)
	}
}

// TestCacheFillBudgetBoundsCopies (F7): bodies being copied to be stored
// hold at most the fill budget together; one that would take more passes
// through without being stored.
func TestCacheFillBudgetBoundsCopies(t *testing.T) {
	const size, part = 768 << 10, 600 << 10
	cache := &Cache{MaxBytes: 4 << 20, MaxObjectBytes: 1 << 20} // a budget of 1 MiB
	release := make(chan struct{})
	body := strings.Repeat("x", size)
	r := newCacheRig(t, cache, func(w http.ResponseWriter, req *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		w.Header().Set("Content-Length", strconv.Itoa(size))
		io.WriteString(w, body[:part])
		http.NewResponseController(w).Flush()
		select {
		case <-release:
			io.WriteString(w, body[part:])
		case <-req.Context().Done():
		}
	})
	releaseOnce := sync.OnceFunc(func() { close(release) })
	t.Cleanup(releaseOnce)
	var open []*http.Response
	for _, path := range []string{"/a", "/b"} { // /a holds 768 KiB of the budget, /b cannot take 512 KiB more
		res, err := r.client.Get(r.origin.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		if _, err := io.ReadFull(res.Body, make([]byte, part)); err != nil {
			t.Fatal(err)
		}
		if held := cache.filling.Load(); held > cache.fillBudget() {
			t.Errorf("fills hold %d bytes, over the budget of %d", held, cache.fillBudget())
		}
		open = append(open, res)
	}
	releaseOnce()
	for _, res := range open {
		if rest, err := io.ReadAll(res.Body); err != nil || len(rest) != size-part {
			t.Fatalf("the rest: %d bytes, %v", len(rest), err)
		}
	}
	if held := cache.filling.Load(); held != 0 {
		t.Errorf("fills hold %d bytes once done, want 0", held)
	}
	r.expect("/a", "HIT", body)
	r.expect("/b", "MISS", body)
	r.wantCounts(1, 2, 0, 1)
}

// TestCacheCountsItsMemory (F8): for tiny responses, where the structures
// around them weigh most, what MaxBytes counts is within twice the heap
// the cache holds, either way. (Before, it counted a ninth of it.)
func TestCacheCountsItsMemory(t *testing.T) {
	c := &Cache{MaxBytes: 8 << 20}
	c.init()
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	now := time.Now()
	for i := 0; ; i++ {
		req := httptest.NewRequest(http.MethodGet, "http://a.example/?"+strconv.Itoa(i), nil)
		h := http.Header{"Content-Type": {"text/plain"}, "Date": {now.Format(http.TimeFormat)}, "Content-Length": {"1"}}
		s := c.admit(req, http.StatusOK, "200 OK", h, now, now)
		s.setBody([]byte("x"))
		c.put(forwardKey(req), req, s)
		if _, b := c.usage(); b >= c.MaxBytes-1000 {
			break
		}
	}
	runtime.GC()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	entries, counted := c.usage()
	heap := int64(after.HeapAlloc) - int64(before.HeapAlloc)
	ratio := float64(heap) / float64(counted)
	t.Logf("%d entries, counted %d KiB, heap %d KiB (%.2fx)", entries, counted>>10, heap>>10, ratio)
	if ratio > 2 || ratio < 0.5 {
		t.Errorf("the cache holds %.2fx the bytes it counts; want within 2x either way", ratio)
	}
	runtime.KeepAlive(c)
}

// Found by a second review, of the reworked cache.

// TestCacheStalledLeaderHoldsNoOne: a client that asks for a large
// cacheable page and never reads it leads the fetch, whose body goes at
// its pace; another client asking for the page waits only so long, then
// fetches alone (it waited for as long as the first client stayed).
func TestCacheStalledLeaderHoldsNoOne(t *testing.T) {
	body := strings.Repeat("x", 8<<20-1)
	asked := make(chan struct{}, 4)
	origin := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		asked <- struct{}{}
		w.Header().Set("Cache-Control", "max-age=60")
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		io.WriteString(w, body)
	})
	addr := serve(t, &Proxy{Forward: true, Cache: &Cache{maxWait: 200 * time.Millisecond}})
	stalled, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer stalled.Close()
	stalled.(*net.TCPConn).SetReadBuffer(4096)
	fmt.Fprintf(stalled, "GET %s/big HTTP/1.1\r\nHost: %s\r\n\r\n", origin.URL, origin.Listener.Addr())
	receiveWithin(t, asked, "the stalled client's fetch")

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second) // fails a cache that makes it wait for the stalled client
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, origin.URL+"/big", nil)
	res, err := proxyClient(t, addr).Do(req)
	if err != nil {
		t.Fatalf("a second client waited on the stalled one: %v", err)
	}
	n, err := io.Copy(io.Discard, res.Body)
	res.Body.Close()
	if n != int64(len(body)) || err != nil {
		t.Fatalf("second client: %d bytes, %v", n, err)
	}
}

// TestCacheEmptyFirstAuthorization: a request whose first Authorization
// line is empty still carries credentials: what it fetched is not stored.
func TestCacheEmptyFirstAuthorization(t *testing.T) {
	r := newCacheRig(t, &Cache{}, func(w http.ResponseWriter, req *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		if v := strings.TrimSpace(strings.Join(req.Header.Values("Authorization"), "")); v != "" {
			io.WriteString(w, "page of "+v)
			return
		}
		io.WriteString(w, "public page")
	})
	r.do(http.MethodGet, "/a", "Authorization", "", "Authorization", "Bearer alice")
	if _, body := r.do(http.MethodGet, "/a"); body != "public page" {
		t.Fatalf("an anonymous client got %q", body)
	}
}

// panicOnce is a RoundTripper whose first request panics.
type panicOnce struct {
	next   http.RoundTripper
	panics atomic.Bool
}

func (p *panicOnce) RoundTrip(r *http.Request) (*http.Response, error) {
	if p.panics.CompareAndSwap(false, true) {
		panic("boom")
	}
	return p.next.RoundTrip(r)
}

// TestCachePanicLandsFlight: a panic under the cache (which http.Server
// recovers) does not leave the key's fetch open for the next request to
// wait on.
func TestCachePanicLandsFlight(t *testing.T) {
	r := newCacheRig(t, &Cache{maxWait: time.Minute}, fixed("ok", "Cache-Control", "max-age=60"))
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	r.client.Transport = r.cache.wrap(&panicOnce{next: tr}, r.stats, forwardKey)
	func() {
		defer func() { recover() }()
		r.try(context.Background(), http.MethodGet, "/a")
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second) // under maxWait: a wait fails the test
	defer cancel()
	if _, _, err := r.try(ctx, http.MethodGet, "/a"); err != nil {
		t.Fatalf("the next request for the key: %v", err)
	}
}
