package httpproxy

// The cache takes from github.com/pquerna/cachecontrol its Cache-Control
// parser and its storability rules (cacheobject.CachableObject, as a shared
// cache: no-store, private, Authorization without public, s-maxage or
// must-revalidate, a status not cacheable by default without explicit
// freshness), and computes freshness and age itself (RFC 9111 §4.2), in
// freshness.go, because the library's expiration does not fit a shared
// proxy cache: CachableResponse reads its clock from time.Now, ignores the
// Age an upstream sent (so a response already 50 s old with max-age=60 is
// fresh for 60 s more), turns an invalid Expires such as "0" into no
// Expires, which falls through to a heuristic instead of "already expired"
// (RFC 9111 §5.3), has its own Last-Modified heuristic where this cache
// applies DefaultTTL, and parses only the first Cache-Control field line,
// so a private on a second line would go unseen: the cache joins the lines
// before parsing.

import (
	"math"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/golang-lru/v2/simplelru"
)

// Cache is a shared HTTP cache (RFC 9111) for GET and HEAD, which a Proxy
// puts in front of its upstreams for the forward and reverse paths. It
// stores what responses allow a shared cache to store, serves them while
// they are fresh, revalidates them with their validators once they are
// stale, and sends one request to the origin for concurrent misses of one
// URL. Responses it serves carry X-Cache: HIT and an Age; the others
// X-Cache: MISS. Set its fields before its first use; the zero Cache is
// ready to use with the defaults.
type Cache struct {
	// MaxBytes bounds the bytes of the responses stored, bodies and
	// headers, as a whole; the least recently used go first to make room
	// (default 64 MiB).
	MaxBytes int64
	// MaxObjectBytes bounds one response stored: a larger one is streamed
	// through to its client and not stored (default 8 MiB). It is also
	// how much of a response the cache holds in memory at once.
	MaxObjectBytes int64
	// DefaultTTL is how long a storable response that states no freshness
	// of its own (no s-maxage, max-age or Expires) stays fresh (default 5
	// minutes); a negative value stores only responses that state it.
	DefaultTTL time.Duration

	now     func() time.Time        // the clock; nil is time.Now
	waiting func(key string, n int) // for tests: a request began waiting for key's fetch, the n-th; called with mu held

	initOnce sync.Once
	mu       sync.Mutex
	lru      *simplelru.LRU[string, *entry] // by key; bounded by bytes, not count
	bytes    int64                          // size of every stored response
	stored   int                            // stored responses, variants included
	flights  map[string]*flight             // fetches under way by key, for the requests that wait for them
}

// Defaults for the Cache's zero fields.
const (
	defaultCacheMaxBytes  = 64 << 20
	defaultMaxObjectBytes = 8 << 20
	defaultTTL            = 5 * time.Minute
	maxVariants           = 8 // stored responses of one URL that differ by Vary; the oldest goes first
)

// maxBytes, maxObjectBytes, defaultTTL and clock are the fields in use,
// defaults applied.
func (c *Cache) maxBytes() int64 {
	if c.MaxBytes > 0 {
		return c.MaxBytes
	}
	return defaultCacheMaxBytes
}

func (c *Cache) maxObjectBytes() int64 {
	if c.MaxObjectBytes > 0 {
		return c.MaxObjectBytes
	}
	return defaultMaxObjectBytes
}

func (c *Cache) defaultTTL() time.Duration {
	if c.DefaultTTL == 0 {
		return defaultTTL
	}
	return c.DefaultTTL
}

func (c *Cache) clock() time.Time {
	if c.now != nil {
		return c.now()
	}
	return time.Now()
}

// init makes the storage, once, however many transports wrap c.
func (c *Cache) init() {
	c.initOnce.Do(func() {
		// The count bound is never reached: put evicts by bytes.
		c.lru, _ = simplelru.NewLRU[string, *entry](math.MaxInt, nil)
		c.flights = make(map[string]*flight)
	})
}

// wrap returns a RoundTripper that answers from the cache what it may,
// asks next for the rest, and counts what it did for each request in
// stats.
func (c *Cache) wrap(next http.RoundTripper, stats *counters) http.RoundTripper {
	c.init()
	if stats == nil {
		stats = new(counters)
	}
	return &cacheTransport{c: c, next: next, stats: stats}
}

// usage says how many responses are stored and their size in bytes.
func (c *Cache) usage() (entries int, bytes int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stored, c.bytes
}

// entry is what is stored for one key: its responses, one per variant of
// its Vary, oldest first. An entry is not changed once stored; put
// replaces it.
type entry struct {
	variants []*stored
	size     int64
}

// stored is one stored response, not changed once stored.
type stored struct {
	status     int
	statusText string      // as in http.Response.Status: "200 OK"
	header     http.Header // without Age, which is computed for each use
	body       []byte
	vary       []string // canonical names of the request fields it varies on
	varyValues []string // the request's values of them

	responseTime time.Time     // when its header arrived or it was last revalidated
	initialAge   time.Duration // its corrected initial age, RFC 9111 §4.2.3
	lifetime     time.Duration // its freshness lifetime; 0 for no-cache
	size         int64
}

// lookup returns the stored response for req under key, newest variant
// first, or nil, and marks it used. c.mu must be held.
func (c *Cache) lookup(key string, req *http.Request) *stored {
	e, ok := c.lru.Get(key)
	if !ok {
		return nil
	}
	for i := len(e.variants) - 1; i >= 0; i-- {
		if s := e.variants[i]; s.matches(req) {
			return s
		}
	}
	return nil
}

// put stores s, the response to req, under key, in place of the variants
// req would have been served; a nil s only removes them. Then it evicts
// the least recently used keys until the stored bytes are within MaxBytes.
// A response larger than MaxBytes is not stored.
func (c *Cache) put(key string, req *http.Request, s *stored) {
	max := c.maxBytes()
	c.mu.Lock()
	defer c.mu.Unlock()
	var keep []*stored
	if old, ok := c.lru.Peek(key); ok {
		for _, v := range old.variants {
			if !v.matches(req) {
				keep = append(keep, v)
			}
		}
		c.remove(key, old)
	}
	if s != nil && s.size <= max {
		keep = append(keep, s)
	}
	if len(keep) > maxVariants {
		keep = keep[len(keep)-maxVariants:]
	}
	if len(keep) == 0 {
		return
	}
	e := &entry{variants: keep}
	for _, v := range keep {
		e.size += v.size
	}
	c.lru.Add(key, e)
	c.bytes += e.size
	c.stored += len(keep)
	for c.bytes > max {
		k, old, ok := c.lru.GetOldest()
		if !ok {
			break
		}
		c.remove(k, old)
	}
}

// invalidate removes every response stored under key.
func (c *Cache) invalidate(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.lru.Peek(key); ok {
		c.remove(key, e)
	}
}

// remove takes e, stored under key, out. c.mu must be held.
func (c *Cache) remove(key string, e *entry) {
	c.lru.Remove(key)
	c.bytes -= e.size
	c.stored -= len(e.variants)
}

// cacheKey is the URL req asked for, as its client asked it: the reverse
// path sends req to a backend's address but keeps the client's Host, so
// that every backend of a policy shares one entry.
func cacheKey(req *http.Request) string {
	scheme := req.URL.Scheme
	if scheme == "" {
		scheme = "http"
	}
	host := req.Host
	if host == "" {
		host = req.URL.Host
	}
	return scheme + "://" + strings.ToLower(host) + req.URL.RequestURI()
}
