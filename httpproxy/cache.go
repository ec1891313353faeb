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
	"cmp"
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
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
//
// What one client sees another sees only when the origin said so, as
// Varnish holds by default: a response that sets a cookie is never
// stored; a request with credentials (Cookie or Authorization) is answered
// from storage, and its response stored, only when the response says
// public or s-maxage (or, for Authorization, must-revalidate, RFC 9111
// §3.5). The forward path's entries are keyed by the absolute URL asked
// for, the reverse path's by the policy the request was routed to and the
// Host and URI its client asked for: neither path, nor two policies, ever
// share an entry.
//
// Responses reach their clients as they arrive, streams included: the
// cache copies a body as it passes, up to MaxObjectBytes, and stores it
// once it has passed whole. Requests waiting for another's fetch of the
// same URL wait only for a response that will be stored soon: one with a
// Content-Length within MaxObjectBytes; and for 5 seconds at most, since
// the body passes at the pace of the client that asked first, after which
// they ask the origin themselves. Event streams (text/event-stream) are
// never stored.
type Cache struct {
	// MaxBytes bounds the memory of the responses stored, as a whole: it
	// counts their bodies, their header fields and an estimate of the
	// structures that hold them, so it is an approximate bound of the
	// memory of what is stored; the least recently used go first to make
	// room (default 64 MiB). Bodies being copied to be stored take at
	// most a quarter of it more, or MaxObjectBytes if that is more (and
	// within MaxBytes); beyond that, responses pass through without being
	// stored.
	MaxBytes int64
	// MaxObjectBytes bounds one response stored: a larger one is streamed
	// through to its client and not stored (default 8 MiB).
	MaxObjectBytes int64
	// DefaultTTL is how long a storable response that states no freshness
	// of its own (no s-maxage, max-age or Expires) stays fresh (default 5
	// minutes); a negative value stores only responses that state it.
	// A response to a request with credentials (Cookie, Authorization) is
	// stored only when it says public or s-maxage (see Cache), so one
	// that says nothing is stored for DefaultTTL only when its request
	// had none.
	DefaultTTL time.Duration

	now     func() time.Time        // the clock; nil is time.Now
	waiting func(key string, n int) // for tests: a request began waiting for key's fetch, the n-th; called with mu held
	maxWait time.Duration           // how long a request waits for another's fetch; 0 is defaultMaxWait

	initOnce sync.Once
	filling  atomic.Int64 // bytes held by bodies being copied to be stored
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

// The estimated heap bytes of what holds a stored response besides its
// body and header strings, so that MaxBytes bounds memory, not payload
// (TestCacheCountsItsMemory measures them): an entry is the LRU's map
// slot and list element, the entry and its variants; a variant the stored
// struct and its header's map; a header field its map slot and value
// slice; a value its string header.
const (
	entryOverhead   = 240
	variantOverhead = 256
	fieldOverhead   = 64
	valueOverhead   = 16
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

// fillBudget bounds the bytes of the bodies being copied to be stored at
// once: a quarter of MaxBytes, but room for one object as large as may be
// stored.
func (c *Cache) fillBudget() int64 {
	return max(c.maxBytes()/4, min(c.maxObjectBytes(), c.maxBytes()))
}

// reserve takes n bytes of the fill budget, and reports whether there
// were n to take.
func (c *Cache) reserve(n int64) bool {
	if c.filling.Add(n) > c.fillBudget() {
		c.filling.Add(-n)
		return false
	}
	return true
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
// stats. key names what a request asks for: forwardKey or reverseKey,
// whose keys never meet.
func (c *Cache) wrap(next http.RoundTripper, stats *counters, key func(*http.Request) string) http.RoundTripper {
	c.init()
	if stats == nil {
		stats = new(counters)
	}
	return &cacheTransport{c: c, next: next, stats: stats, key: key}
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

	responseTime   time.Time     // when its header arrived or it was last revalidated
	initialAge     time.Duration // its corrected initial age, RFC 9111 §4.2.3
	lifetime       time.Duration // its freshness lifetime; 0 for no-cache
	shared         bool          // it says public or s-maxage: it may answer requests with credentials
	mustRevalidate bool          // it says must-revalidate: it may answer requests with Authorization
	size           int64
}

// lookup returns the stored response that may answer req under key, by
// its Vary and req's credentials, newest variant first, or nil, and marks
// it used. c.mu must be held.
func (c *Cache) lookup(key string, req *http.Request) *stored {
	e, ok := c.lru.Get(key)
	if !ok {
		return nil
	}
	for i := len(e.variants) - 1; i >= 0; i-- {
		if s := e.variants[i]; s.matches(req) && s.allowedFor(req.Header) {
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
	if s != nil && s.size+entryOverhead+int64(len(key)) <= max {
		keep = append(keep, s)
	}
	if len(keep) > maxVariants {
		keep = keep[len(keep)-maxVariants:]
	}
	if len(keep) == 0 {
		return
	}
	e := &entry{variants: keep, size: entryOverhead + int64(len(key))}
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

// forwardKey is the cache key of a forward-path request: the absolute
// URL it asked for (and the Host it sends, should that differ).
func forwardKey(req *http.Request) string {
	key := cmp.Or(req.URL.Scheme, "http") + "://" + strings.ToLower(req.URL.Host) + req.URL.RequestURI()
	if req.Host != "" && !strings.EqualFold(req.Host, req.URL.Host) {
		key += " host " + strings.ToLower(req.Host)
	}
	return key
}

// reverseKey is the cache key of a reverse-path request: the policy it is
// routed to, then the Host and URI its client asked for. The reverse path
// sends req to a backend's address but keeps the client's Host, so every
// server of a policy shares one entry; no other policy, nor the forward
// path, whose keys start with a scheme, shares it.
func reverseKey(req *http.Request) string {
	policy, _ := req.Context().Value(policyKey{}).(string)
	return "policy " + strconv.Itoa(len(policy)) + ":" + policy + " " + strings.ToLower(req.Host) + req.URL.RequestURI()
}

// defaultMaxWait bounds how long a request waits for another's fetch of
// the same key before it asks the origin itself: the fetch's body goes at
// the pace of the client that leads it, which may read slowly or not at
// all.
const defaultMaxWait = 5 * time.Second

func (c *Cache) waitLimit() time.Duration {
	if c.maxWait > 0 {
		return c.maxWait
	}
	return defaultMaxWait
}
