package httpproxy

import (
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/seed-c202d8a5/revproxy"
)

// TestCacheForwardCurl: through the forward proxy, curl's second GET is
// answered from the cache, and the origin is asked once.
func TestCacheForwardCurl(t *testing.T) {
	var asked atomic.Int32
	origin := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		asked.Add(1)
		w.Header().Set("Cache-Control", "max-age=60")
		w.Write([]byte("cached page"))
	})
	p := &Proxy{Forward: true, Cache: &Cache{}}
	addr := serve(t, p)
	first := curl(t, "-i", "-x", "http://"+addr, origin.URL+"/page")
	second := curl(t, "-i", "-x", "http://"+addr, origin.URL+"/page")
	if !strings.Contains(first, "X-Cache: MISS") || !strings.Contains(second, "X-Cache: HIT") || !strings.HasSuffix(second, "cached page") {
		t.Errorf("first:\n%s\nsecond:\n%s\nwant a MISS, then a HIT with the page", first, second)
	}
	if n := asked.Load(); n != 1 {
		t.Errorf("the origin was asked %d times; want 1", n)
	}
	if hits := p.stats.cache[cacheHit].Load(); hits != 1 {
		t.Errorf("counted %d hits; want 1", hits)
	}
}

// TestCacheReverseShared: on the reverse path, the cache keys a response
// by the host and path the client asked for, so a policy's servers share
// one entry: the second GET is a hit, whichever server's turn it was.
func TestCacheReverseShared(t *testing.T) {
	rp, addr := startTable(t)
	var asked [2]atomic.Int32
	for i, name := range []string{"a", "b"} {
		srv := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
			asked[i].Add(1)
			w.Header().Set("Cache-Control", "max-age=60")
			w.Write([]byte(name))
		})
		register(t, rp, &revproxy.Server{ID: name, Policy: "web", ProxyAddr: addr, HTTPPort: portOf(t, srv)})
	}
	front := "http://" + serve(t, &Proxy{Table: rp, Routes: []Route{{Policy: "web"}}, Cache: &Cache{}})
	client := newClient(t)
	var got []string
	for range 3 {
		code, body, h := getBody(t, client, front+"/page")
		if code != http.StatusOK {
			t.Fatalf("status %d", code)
		}
		got = append(got, body+" "+h.Get("X-Cache"))
	}
	if want := []string{"a MISS", "a HIT", "a HIT"}; strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("got %v; want %v", got, want)
	}
	if a, b := asked[0].Load(), asked[1].Load(); a != 1 || b != 0 {
		t.Errorf("servers asked %d and %d times; want 1 and 0", a, b)
	}
}
