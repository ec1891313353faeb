package httpproxy

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// cacheClock is the clock a cache test moves by hand.
type cacheClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *cacheClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *cacheClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// cacheRig is a Cache on a fake clock in front of an origin on loopback,
// and a client whose transport is the cache.
type cacheRig struct {
	t      *testing.T
	clock  *cacheClock
	cache  *Cache
	stats  *counters
	origin *httptest.Server
	client *http.Client

	mu   sync.Mutex
	hits map[string]int // origin requests by method and path: "GET /a"
}

// newCacheRig serves h as the origin, which stamps each response with a
// Date from the rig's clock first, and puts cache in front of it.
func newCacheRig(t *testing.T, cache *Cache, h http.HandlerFunc) *cacheRig {
	r := &cacheRig{
		t:     t,
		clock: &cacheClock{now: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)},
		cache: cache,
		stats: new(counters),
		hits:  make(map[string]int),
	}
	cache.now = r.clock.Now
	r.origin = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.mu.Lock()
		r.hits[req.Method+" "+req.URL.Path]++
		r.mu.Unlock()
		w.Header().Set("Date", r.clock.Now().Format(http.TimeFormat))
		h(w, req)
	}))
	next := &http.Transport{}
	r.client = &http.Client{
		Transport:     cache.wrap(next, r.stats, forwardKey),
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	t.Cleanup(func() {
		r.origin.Close()
		next.CloseIdleConnections()
	})
	return r
}

// try sends method path with header fields given as name, value pairs,
// and reads the whole answer.
func (r *cacheRig) try(ctx context.Context, method, path string, header ...string) (*http.Response, string, error) {
	req, err := http.NewRequestWithContext(ctx, method, r.origin.URL+path, nil)
	if err != nil {
		return nil, "", err
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Add(header[i], header[i+1])
	}
	resp, err := r.client.Do(req)
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp, string(body), err
}

// do is try that fails the test on an error.
func (r *cacheRig) do(method, path string, header ...string) (*http.Response, string) {
	r.t.Helper()
	resp, body, err := r.try(context.Background(), method, path, header...)
	if err != nil {
		r.t.Fatalf("%s %s: %v", method, path, err)
	}
	return resp, body
}

// expect does GET path and checks its X-Cache and body.
func (r *cacheRig) expect(path, xcache, body string, header ...string) *http.Response {
	r.t.Helper()
	resp, got := r.do(http.MethodGet, path, header...)
	if x := resp.Header.Get("X-Cache"); x != xcache || got != body {
		r.t.Fatalf("GET %s %q: X-Cache %q, body %s; want %q, %s", path, header, x, short(got), xcache, short(body))
	}
	return resp
}

// short quotes s, or its start and length when it is long.
func short(s string) string {
	if len(s) <= 40 {
		return strconv.Quote(s)
	}
	return fmt.Sprintf("%q… (%d bytes)", s[:40], len(s))
}

// originHits is how many requests for "METHOD /path" reached the origin.
func (r *cacheRig) originHits(key string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.hits[key]
}

func (r *cacheRig) wantOriginHits(key string, want int) {
	r.t.Helper()
	if got := r.originHits(key); got != want {
		r.t.Fatalf("origin saw %s %d times, want %d", key, got, want)
	}
}

// counts is what the rig's counters say, by cacheResult.
func (r *cacheRig) counts() [numCacheResults]uint64 {
	var n [numCacheResults]uint64
	for i := range n {
		n[i] = r.stats.cache[i].Load()
	}
	return n
}

func (r *cacheRig) wantCounts(hit, miss, revalidated, bypass uint64) {
	r.t.Helper()
	if got, want := r.counts(), [numCacheResults]uint64{hit, miss, revalidated, bypass}; got != want {
		r.t.Fatalf("cache counts (hit, miss, revalidated, bypass) %v, want %v", got, want)
	}
}

// fixed answers body with the header fields given as name, value pairs.
func fixed(body string, header ...string) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		for i := 0; i+1 < len(header); i += 2 {
			w.Header().Add(header[i], header[i+1])
		}
		io.WriteString(w, body)
	}
}

func TestCacheServesSecondGetFromCache(t *testing.T) {
	r := newCacheRig(t, &Cache{}, fixed("hello", "Cache-Control", "max-age=60"))
	r.expect("/a", "MISS", "hello")
	resp := r.expect("/a", "HIT", "hello")
	if age := resp.Header.Get("Age"); age != "0" {
		t.Errorf("Age %q, want 0", age)
	}
	r.wantOriginHits("GET /a", 1)
	r.wantCounts(1, 1, 0, 0)
	if n, b := r.cache.usage(); n != 1 || b < int64(len("hello")) {
		t.Errorf("usage %d entries, %d bytes; want 1 entry of at least 5 bytes", n, b)
	}
}

func TestCacheExpiredEntryIsFetchedAgain(t *testing.T) {
	r := newCacheRig(t, &Cache{}, fixed("hello", "Cache-Control", "max-age=60"))
	r.expect("/a", "MISS", "hello")
	r.clock.Advance(59 * time.Second)
	r.expect("/a", "HIT", "hello")
	r.clock.Advance(2 * time.Second)
	r.expect("/a", "MISS", "hello")
	r.wantOriginHits("GET /a", 2)
}

// TestCacheStorability asks twice for responses a shared cache may or may
// not store, and checks that the second reached the origin exactly when
// the first could not be stored.
func TestCacheStorability(t *testing.T) {
	for _, tc := range []struct {
		name   string
		status int
		resp   []string // response fields
		req    []string // request fields
		stored bool
	}{
		{name: "max-age", resp: []string{"Cache-Control", "max-age=60"}, stored: true},
		{name: "no-store", resp: []string{"Cache-Control", "no-store"}},
		{name: "private", resp: []string{"Cache-Control", "private, max-age=60"}},
		{name: "private on a second line", resp: []string{"Cache-Control", "max-age=60", "Cache-Control", "private"}},
		{name: "private with a field name", resp: []string{"Cache-Control", `max-age=60, private="X-User"`}},
		{name: "malformed max-age", resp: []string{"Cache-Control", "max-age=soon"}},
		{name: "authorization", req: []string{"Authorization", "Bearer x"}, resp: []string{"Cache-Control", "max-age=60"}},
		{name: "authorization public", req: []string{"Authorization", "Bearer x"}, resp: []string{"Cache-Control", "public, max-age=60"}, stored: true},
		{name: "authorization s-maxage", req: []string{"Authorization", "Bearer x"}, resp: []string{"Cache-Control", "s-maxage=60"}, stored: true},
		{name: "authorization must-revalidate", req: []string{"Authorization", "Bearer x"}, resp: []string{"Cache-Control", "must-revalidate, max-age=60"}, stored: true},
		{name: "404 by default", status: 404, stored: true},
		{name: "500", status: 500},
		{name: "302 without freshness", status: 302, resp: []string{"Location", "/b"}},
		{name: "302 with max-age", status: 302, resp: []string{"Location", "/b", "Cache-Control", "max-age=60"}, stored: true},
		{name: "vary star", resp: []string{"Cache-Control", "max-age=60", "Vary", "*"}},
		{name: "set-cookie", resp: []string{"Cache-Control", "max-age=60", "Set-Cookie", "session=1"}},
		{name: "cookie", req: []string{"Cookie", "session=1"}},
		{name: "cookie max-age", req: []string{"Cookie", "session=1"}, resp: []string{"Cache-Control", "max-age=60"}},
		{name: "cookie public", req: []string{"Cookie", "session=1"}, resp: []string{"Cache-Control", "public"}, stored: true},
		{name: "cookie s-maxage", req: []string{"Cookie", "session=1"}, resp: []string{"Cache-Control", "s-maxage=60"}, stored: true},
		{name: "cookie public set-cookie", req: []string{"Cookie", "session=1"}, resp: []string{"Cache-Control", "public", "Set-Cookie", "session=2"}},
		{name: "event stream", resp: []string{"Cache-Control", "max-age=60", "Content-Type", "text/event-stream; charset=utf-8"}},
		{name: "invalid expires", resp: []string{"Expires", "0"}},
		{name: "past expires", resp: []string{"Expires", "Thu, 01 Jan 2015 00:00:00 GMT"}},
		{name: "request no-store", req: []string{"Cache-Control", "no-store"}, resp: []string{"Cache-Control", "max-age=60"}},
		{name: "range request", req: []string{"Range", "bytes=0-1"}, resp: []string{"Cache-Control", "max-age=60"}},
		{name: "if-match request", req: []string{"If-Match", `"v1"`}, resp: []string{"Cache-Control", "max-age=60"}},
		{name: "upgrade request", req: []string{"Upgrade", "websocket"}, resp: []string{"Cache-Control", "max-age=60"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status := cmp.Or(tc.status, http.StatusOK)
			r := newCacheRig(t, &Cache{}, func(w http.ResponseWriter, _ *http.Request) {
				for i := 0; i+1 < len(tc.resp); i += 2 {
					w.Header().Add(tc.resp[i], tc.resp[i+1])
				}
				w.WriteHeader(status)
				io.WriteString(w, "body")
			})
			first, _ := r.do(http.MethodGet, "/a", tc.req...)
			second, body := r.do(http.MethodGet, "/a", tc.req...)
			if first.StatusCode != status || second.StatusCode != status || body != "body" {
				t.Fatalf("statuses %d, %d, body %q; want %d and %q", first.StatusCode, second.StatusCode, body, status, "body")
			}
			want, hits := "MISS", 2
			if tc.stored {
				want, hits = "HIT", 1
			}
			if x := second.Header.Get("X-Cache"); x != want {
				t.Errorf("second X-Cache %q, want %q", x, want)
			}
			r.wantOriginHits("GET /a", hits)
			if n, _ := r.cache.usage(); (n == 1) != tc.stored {
				t.Errorf("%d entries stored", n)
			}
		})
	}
}

func TestCacheVaryServesOnlyTheMatchingVariant(t *testing.T) {
	r := newCacheRig(t, &Cache{}, func(w http.ResponseWriter, req *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		w.Header().Set("Vary", "Accept-Encoding")
		io.WriteString(w, "enc="+req.Header.Get("Accept-Encoding"))
	})
	r.expect("/a", "MISS", "enc=gzip", "Accept-Encoding", "gzip")
	r.expect("/a", "MISS", "enc=br", "Accept-Encoding", "br")
	r.expect("/a", "HIT", "enc=gzip", "Accept-Encoding", "gzip")
	r.expect("/a", "HIT", "enc=br", "Accept-Encoding", "br")
	r.wantOriginHits("GET /a", 2)
	if n, _ := r.cache.usage(); n != 2 {
		t.Errorf("%d entries, want 2 variants", n)
	}
}

func TestCacheSMaxAgeBeatsMaxAge(t *testing.T) {
	r := newCacheRig(t, &Cache{}, func(w http.ResponseWriter, req *http.Request) {
		if req.URL.Path == "/long" {
			w.Header().Set("Cache-Control", "max-age=10, s-maxage=100")
		} else {
			w.Header().Set("Cache-Control", "max-age=100, s-maxage=10")
		}
		io.WriteString(w, req.URL.Path)
	})
	r.expect("/long", "MISS", "/long")
	r.expect("/short", "MISS", "/short")
	r.clock.Advance(50 * time.Second)
	r.expect("/long", "HIT", "/long")
	r.expect("/short", "MISS", "/short")
}

func TestCacheExpires(t *testing.T) {
	var clock *cacheClock
	r := newCacheRig(t, &Cache{}, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Expires", clock.Now().Add(100*time.Second).Format(http.TimeFormat))
		io.WriteString(w, "hello")
	})
	clock = r.clock
	r.expect("/a", "MISS", "hello")
	r.clock.Advance(99 * time.Second)
	r.expect("/a", "HIT", "hello")
	r.clock.Advance(2 * time.Second)
	r.expect("/a", "MISS", "hello")
	r.wantOriginHits("GET /a", 2)
}

// TestCacheNoCacheRevalidatesWithETag: a no-cache response is stored, and
// each use asks the origin with If-None-Match: a 304 serves the stored
// body, a 200 replaces it.
func TestCacheNoCacheRevalidatesWithETag(t *testing.T) {
	var mu sync.Mutex
	version, seen := "v1", []string{}
	r := newCacheRig(t, &Cache{}, func(w http.ResponseWriter, req *http.Request) {
		mu.Lock()
		v := version
		seen = append(seen, req.Header.Get("If-None-Match"))
		mu.Unlock()
		w.Header().Set("Cache-Control", "no-cache")
		w.Header().Set("Etag", `"`+v+`"`)
		if req.Header.Get("If-None-Match") == `"`+v+`"` {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		io.WriteString(w, "body "+v)
	})
	r.expect("/a", "MISS", "body v1")
	r.expect("/a", "HIT", "body v1")
	r.wantCounts(0, 1, 1, 0)
	mu.Lock()
	version = "v2"
	mu.Unlock()
	r.expect("/a", "MISS", "body v2")
	r.expect("/a", "HIT", "body v2")
	mu.Lock()
	defer mu.Unlock()
	if want := []string{"", `"v1"`, `"v1"`, `"v2"`}; strings.Join(seen, " ") != strings.Join(want, " ") {
		t.Errorf("origin saw If-None-Match %q, want %q", seen, want)
	}
}

// TestCacheRevalidatesWithLastModified: a stale entry with a Last-Modified
// is asked for with If-Modified-Since, and a 304 makes it fresh again.
func TestCacheRevalidatesWithLastModified(t *testing.T) {
	const modified = "Mon, 01 Jan 2029 00:00:00 GMT"
	var ims atomic.Value
	r := newCacheRig(t, &Cache{}, func(w http.ResponseWriter, req *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		w.Header().Set("Last-Modified", modified)
		if v := req.Header.Get("If-Modified-Since"); v != "" {
			ims.Store(v)
			w.WriteHeader(http.StatusNotModified)
			return
		}
		io.WriteString(w, "hello")
	})
	r.expect("/a", "MISS", "hello")
	r.clock.Advance(61 * time.Second)
	resp := r.expect("/a", "HIT", "hello")
	if got, _ := ims.Load().(string); got != modified {
		t.Errorf("origin saw If-Modified-Since %q, want %q", got, modified)
	}
	if resp.Header.Get("Age") != "0" {
		t.Errorf("revalidated response's Age %q, want 0", resp.Header.Get("Age"))
	}
	r.clock.Advance(30 * time.Second)
	r.expect("/a", "HIT", "hello")
	r.wantOriginHits("GET /a", 2)
	r.wantCounts(1, 1, 1, 0)
}

func TestCacheUnsafeMethodInvalidates(t *testing.T) {
	var postStatus atomic.Int64
	r := newCacheRig(t, &Cache{}, func(w http.ResponseWriter, req *http.Request) {
		if req.Method == http.MethodPost {
			w.WriteHeader(int(postStatus.Load()))
			return
		}
		w.Header().Set("Cache-Control", "max-age=60")
		io.WriteString(w, "hello")
	})
	r.expect("/a", "MISS", "hello")
	r.expect("/a", "HIT", "hello")
	postStatus.Store(http.StatusInternalServerError)
	r.do(http.MethodPost, "/a")
	r.expect("/a", "HIT", "hello") // a failed POST changed nothing
	postStatus.Store(http.StatusNoContent)
	if resp, _ := r.do(http.MethodPost, "/a"); resp.Header.Get("X-Cache") != "MISS" {
		t.Errorf("POST's X-Cache %q, want MISS", resp.Header.Get("X-Cache"))
	}
	r.expect("/a", "MISS", "hello")
	r.wantOriginHits("GET /a", 2)
	r.wantCounts(2, 2, 0, 2)
}

func TestCacheDefaultTTL(t *testing.T) {
	r := newCacheRig(t, &Cache{}, fixed("hello"))
	r.expect("/a", "MISS", "hello")
	r.clock.Advance(5*time.Minute - time.Second)
	r.expect("/a", "HIT", "hello")
	r.clock.Advance(2 * time.Second)
	r.expect("/a", "MISS", "hello")
	r.wantOriginHits("GET /a", 2)
}

// TestCacheAge: a hit's Age counts the Age the origin sent and the time
// stored, and so does its freshness.
func TestCacheAge(t *testing.T) {
	r := newCacheRig(t, &Cache{}, fixed("hello", "Cache-Control", "max-age=100", "Age", "10"))
	r.expect("/a", "MISS", "hello")
	for _, step := range []struct {
		advance time.Duration
		age     string
	}{{30 * time.Second, "40"}, {59 * time.Second, "99"}} {
		r.clock.Advance(step.advance)
		if resp := r.expect("/a", "HIT", "hello"); resp.Header.Get("Age") != step.age {
			t.Errorf("Age %q, want %s", resp.Header.Get("Age"), step.age)
		}
	}
	r.clock.Advance(2 * time.Second) // 101 s old
	r.expect("/a", "MISS", "hello")
}

// concurrentMisses sends n GETs for one URL at once to an origin that
// answers with header fields given as name, value pairs, and holds its
// first request until the n-1 others wait for it. It returns the rig and
// how many answers had each X-Cache.
func concurrentMisses(t *testing.T, n int, header ...string) (*cacheRig, map[string]int) {
	waiting := make(chan struct{})
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
			case <-time.After(time.Minute): // only when the others never wait: the test fails then
				t.Error("the other requests did not wait for the first")
			}
		}
		for i := 0; i+1 < len(header); i += 2 {
			w.Header().Add(header[i], header[i+1])
		}
		io.WriteString(w, "body")
	})
	xcache := make(chan string, n)
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			resp, body, err := r.try(t.Context(), http.MethodGet, "/a")
			if err != nil || body != "body" {
				t.Errorf("GET: %v, body %q", err, body)
				xcache <- ""
				return
			}
			xcache <- resp.Header.Get("X-Cache")
		})
	}
	wg.Wait()
	close(xcache)
	got := make(map[string]int)
	for x := range xcache {
		got[x]++
	}
	return r, got
}

// TestCacheConcurrentMissesReachOriginOnce: 100 concurrent misses for one
// URL reach the origin once, and the 99 that waited are served what it
// stored.
func TestCacheConcurrentMissesReachOriginOnce(t *testing.T) {
	const n = 100
	r, got := concurrentMisses(t, n, "Cache-Control", "max-age=60")
	if got["MISS"] != 1 || got["HIT"] != n-1 {
		t.Errorf("X-Cache %v, want 1 MISS and %d HIT", got, n-1)
	}
	r.wantOriginHits("GET /a", 1)
	r.wantCounts(n-1, 1, 0, 0)
}

// TestCacheWaitersServedNoCacheFetch: what the fetch waited for stored
// serves the waiters even when it says no-cache, since it came from the
// origin after they arrived.
func TestCacheWaitersServedNoCacheFetch(t *testing.T) {
	const n = 10
	r, got := concurrentMisses(t, n, "Cache-Control", "no-cache", "Etag", `"v1"`)
	if got["MISS"] != 1 || got["HIT"] != n-1 {
		t.Errorf("X-Cache %v, want 1 MISS and %d HIT", got, n-1)
	}
	r.wantOriginHits("GET /a", 1)
}

// TestCacheWaitersFetchAloneWhenNothingStored: when the fetch waited for
// answers what may not be stored, each waiter asks the origin itself.
func TestCacheWaitersFetchAloneWhenNothingStored(t *testing.T) {
	const n = 10
	r, got := concurrentMisses(t, n, "Cache-Control", "no-store")
	if got["MISS"] != n {
		t.Errorf("X-Cache %v, want %d MISS", got, n)
	}
	r.wantOriginHits("GET /a", n)
	r.wantCounts(0, 0, 0, n)
}

// TestCacheWaiterCancels: a request waiting for another's fetch ends when
// its own context does.
func TestCacheWaiterCancels(t *testing.T) {
	arrived, waiting, release := make(chan struct{}), make(chan struct{}), make(chan struct{})
	cache := &Cache{}
	cache.waiting = func(string, int) { close(waiting) }
	r := newCacheRig(t, cache, func(w http.ResponseWriter, req *http.Request) {
		close(arrived) // once: the waiter never reaches the origin
		select {
		case <-release:
		case <-req.Context().Done():
			return
		}
		w.Header().Set("Cache-Control", "max-age=60")
		io.WriteString(w, "hello")
	})
	releaseOnce := sync.OnceFunc(func() { close(release) })
	t.Cleanup(releaseOnce) // before the origin closes, should the test fail first
	leader := make(chan string, 1)
	go func() {
		_, body, err := r.try(t.Context(), http.MethodGet, "/a")
		if err != nil {
			t.Error(err)
		}
		leader <- body
	}()
	<-arrived
	ctx, cancel := context.WithCancel(t.Context())
	waiter := make(chan error, 1)
	go func() {
		_, _, err := r.try(ctx, http.MethodGet, "/a")
		waiter <- err
	}()
	<-waiting
	cancel()
	select {
	case err := <-waiter:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("cancelled waiter got %v, want context.Canceled", err)
		}
	case <-time.After(time.Minute): // only when cancelling does not end the wait: the test fails then
		t.Fatal("the cancelled waiter still waits")
	}
	releaseOnce()
	if body := <-leader; body != "hello" {
		t.Errorf("leader got %q", body)
	}
	r.expect("/a", "HIT", "hello")
}

func TestCacheEvictsLeastRecentlyUsed(t *testing.T) {
	const maxBytes = 25_000 // two 10 kB responses and their headers, not three
	r := newCacheRig(t, &Cache{MaxBytes: maxBytes}, func(w http.ResponseWriter, req *http.Request) {
		w.Header().Set("Cache-Control", "max-age=600")
		io.WriteString(w, strings.Repeat(req.URL.Path[1:], 10_000))
	})
	body := func(path string) string { return strings.Repeat(path[1:], 10_000) }
	for _, step := range []struct{ path, xcache string }{
		{"/a", "MISS"}, {"/b", "MISS"}, {"/a", "HIT"},
		{"/c", "MISS"}, // evicts b, the least recently used
		{"/a", "HIT"}, {"/c", "HIT"}, {"/b", "MISS"},
	} {
		r.expect(step.path, step.xcache, body(step.path))
		if n, b := r.cache.usage(); b > maxBytes || n > 2 {
			t.Fatalf("after GET %s: %d entries, %d bytes; want at most 2 and %d", step.path, n, b, maxBytes)
		}
	}
	r.wantOriginHits("GET /b", 2)
}

// TestCacheLargeResponseStreamedNotStored: a response over MaxObjectBytes,
// with a Content-Length or without, reaches its client whole and is not
// stored; a small one without a Content-Length is.
func TestCacheLargeResponseStreamedNotStored(t *testing.T) {
	large := strings.Repeat("0123456789", 500) // 5000 bytes
	r := newCacheRig(t, &Cache{MaxObjectBytes: 1000}, func(w http.ResponseWriter, req *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		switch req.URL.Path {
		case "/sized":
			w.Header().Set("Content-Length", strconv.Itoa(len(large)))
			io.WriteString(w, large)
		case "/chunked":
			for i := 0; i < len(large); i += 700 {
				io.WriteString(w, large[i:min(i+700, len(large))])
				http.NewResponseController(w).Flush()
			}
		case "/small":
			io.WriteString(w, large[:500])
			http.NewResponseController(w).Flush()
			io.WriteString(w, large[500:900])
		}
	})
	for _, path := range []string{"/sized", "/chunked"} {
		r.expect(path, "MISS", large)
		r.expect(path, "MISS", large)
		r.wantOriginHits("GET "+path, 2)
	}
	if n, b := r.cache.usage(); n != 0 || b != 0 {
		t.Errorf("%d entries, %d bytes stored; want none", n, b)
	}
	r.expect("/small", "MISS", large[:900])
	r.expect("/small", "HIT", large[:900])
	r.wantCounts(1, 1, 0, 4)
}

func TestCacheHeadAnsweredFromStoredGet(t *testing.T) {
	r := newCacheRig(t, &Cache{}, fixed("hello", "Cache-Control", "max-age=60"))
	if resp, body := r.do(http.MethodHead, "/a"); resp.Header.Get("X-Cache") != "MISS" || body != "" {
		t.Fatalf("first HEAD: X-Cache %q, body %q", resp.Header.Get("X-Cache"), body)
	}
	r.expect("/a", "MISS", "hello") // a HEAD stores nothing
	resp, body := r.do(http.MethodHead, "/a")
	if resp.Header.Get("X-Cache") != "HIT" || body != "" || resp.ContentLength != 5 || resp.Header.Get("Content-Length") != "5" {
		t.Errorf("HEAD: X-Cache %q, body %q, length %d, Content-Length %q; want a HIT of 5 bytes without a body",
			resp.Header.Get("X-Cache"), body, resp.ContentLength, resp.Header.Get("Content-Length"))
	}
	r.wantOriginHits("HEAD /a", 1)
	r.wantOriginHits("GET /a", 1)
}

// TestCacheAnswersConditionalRequests: a client's If-None-Match that the
// stored response satisfies is answered 304 from the cache.
func TestCacheAnswersConditionalRequests(t *testing.T) {
	r := newCacheRig(t, &Cache{}, fixed("hello", "Cache-Control", "max-age=60", "Etag", `W/"v1"`))
	r.expect("/a", "MISS", "hello")
	resp, body := r.do(http.MethodGet, "/a", "If-None-Match", `"v0", "v1"`)
	if resp.StatusCode != http.StatusNotModified || body != "" || resp.Header.Get("X-Cache") != "HIT" {
		t.Errorf("matching If-None-Match: %s, body %q, X-Cache %q; want a 304 HIT", resp.Status, body, resp.Header.Get("X-Cache"))
	}
	r.expect("/a", "HIT", "hello", "If-None-Match", `"v0"`)
	r.wantOriginHits("GET /a", 1)
}
