package httpproxy

import (
	"bytes"
	"io"
	"net/http"
	"net/textproto"
	"strconv"
	"strings"
	"sync"
	"time"
)

// cacheTransport is the RoundTripper of Cache.wrap: it answers from the
// cache what it may and asks next for the rest.
type cacheTransport struct {
	c     *Cache
	next  http.RoundTripper
	stats *counters
	key   func(*http.Request) string // a request's cache key: forwardKey or reverseKey
}

// flight is a fetch under way for a key, which other requests for the key
// wait for rather than ask the origin themselves; done is closed once it
// has stored what it may, or once its response showed that it will not
// be stored soon.
type flight struct {
	done    chan struct{}
	waiters int
	landed  bool // done is closed; under Cache.mu
}

// land ends flight f of key, unless it ended already: later requests for
// key no longer wait for it, and those that waited wake. A nil f is a
// fetch that nobody waits for.
func (c *Cache) land(key string, f *flight) {
	if f == nil {
		return
	}
	c.mu.Lock()
	landed := f.landed
	if !landed {
		f.landed = true
		delete(c.flights, key) // f is key's flight until it lands
	}
	c.mu.Unlock()
	if !landed {
		close(f.done)
	}
}

// RoundTrip serves req: a fresh stored response if there is one; else,
// for GET, the origin's, asked once for concurrent requests of one key,
// conditionally when a stale response has validators, and stored when it
// may be. Other methods pass through; an unsafe one that succeeds
// invalidates what is stored for its URL.
func (t *cacheTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Method != http.MethodGet && req.Method != http.MethodHead {
		return t.passUnsafe(req)
	}
	rc := parseRequestControl(req.Header)
	if rc.noStore || bypassed(req.Header) {
		return t.pass(req, cacheBypass)
	}
	c := t.c
	key := t.key(req)
	arrived := c.clock()
	for waited := false; ; waited = true {
		now := c.clock()
		c.mu.Lock()
		s := c.lookup(key, req)
		// After waiting, what the fetch stored serves the request even if
		// it asked for revalidation, or the response said no-cache: it
		// came from the origin after the request arrived.
		if s != nil && (s.fresh(now) && rc.allows(s, now) || waited && !s.responseTime.Before(arrived)) {
			c.mu.Unlock()
			return t.serve(req, s, now, cacheHit), nil
		}
		if req.Method == http.MethodHead {
			c.mu.Unlock()
			return t.pass(req, cacheMiss) // HEAD is answered from a stored GET, and never stored
		}
		f := c.flights[key]
		if f != nil && !waited {
			f.waiters++
			if c.waiting != nil {
				c.waiting(key, f.waiters)
			}
			c.mu.Unlock()
			limit := time.NewTimer(c.waitLimit())
			select {
			case <-f.done:
			case <-limit.C: // the fetch is slow, or its client is: ask alone
			case <-req.Context().Done():
				limit.Stop()
				t.stats.cached(cacheMiss)
				return nil, req.Context().Err()
			}
			limit.Stop()
			continue
		}
		// Fetch alone when the fetch waited for stored nothing for req and
		// another is under way already; else lead one.
		if f == nil {
			f = &flight{done: make(chan struct{})}
			c.flights[key] = f
		} else {
			f = nil
		}
		c.mu.Unlock()
		return t.fetch(req, key, s, f)
	}
}

// bypassed reports whether a request with header h passes by the cache: a
// Range request (no partial content is stored), one with a precondition
// the cache does not evaluate (If-Match, If-Unmodified-Since, If-Range),
// and a protocol upgrade such as a WebSocket's.
func bypassed(h http.Header) bool {
	return len(h["Range"]) > 0 || len(h["If-Match"]) > 0 || len(h["If-Unmodified-Since"]) > 0 ||
		len(h["If-Range"]) > 0 || len(h["Upgrade"]) > 0
}

// pass sends req to the origin as it is, counting result.
func (t *cacheTransport) pass(req *http.Request, result cacheResult) (*http.Response, error) {
	t.stats.cached(result)
	resp, err := t.next.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	resp.Header.Set("X-Cache", "MISS")
	return resp, nil
}

// passUnsafe sends a request of a method other than GET and HEAD to the
// origin; when the method is unsafe and the answer a success or a
// redirect, what is stored for its URL is stale from now on (RFC 9111
// §4.4).
func (t *cacheTransport) passUnsafe(req *http.Request) (*http.Response, error) {
	resp, err := t.pass(req, cacheBypass)
	if err == nil && req.Method != http.MethodOptions && req.Method != http.MethodTrace &&
		resp.StatusCode >= 200 && resp.StatusCode < 400 {
		t.c.invalidate(t.key(req))
	}
	return resp, err
}

// fetch asks the origin for req, conditionally with stale's validators
// when it has them, as flight f of key (nil: nobody waits for it), and
// answers req as soon as the response's header arrives. A response it
// may store reaches req's client through a fillBody, which stores it once
// it has passed whole and lands f then; f lands at once when the
// response shows it will not be stored soon: not storable, too large, or
// of unknown length (a stream, a long poll).
func (t *cacheTransport) fetch(req *http.Request, key string, stale *stored, f *flight) (*http.Response, error) {
	c := t.c
	out := req
	revalidating := stale != nil && stale.hasValidator()
	if revalidating {
		out = req.Clone(req.Context())
		out.Header.Del("If-None-Match") // the client's conditions are evaluated against what comes back
		out.Header.Del("If-Modified-Since")
		if v := stale.header.Get("Etag"); v != "" {
			out.Header.Set("If-None-Match", v)
		}
		if v := stale.header.Get("Last-Modified"); v != "" {
			out.Header.Set("If-Modified-Since", v)
		}
	}
	reqTime := c.clock()
	// Whatever happens below, even a panic, the flight lands unless a
	// fill takes it over: its waiters must not wait for ever.
	handedOver := false
	defer func() {
		if !handedOver {
			c.land(key, f)
		}
	}()
	resp, err := t.next.RoundTrip(out)
	if err != nil {
		c.land(key, f)
		t.stats.cached(cacheMiss)
		return nil, err
	}
	respTime := c.clock()
	if revalidating && resp.StatusCode == http.StatusNotModified {
		io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10)) // lets the connection be reused
		resp.Body.Close()
		answer := t.revalidated(req, key, stale, resp.Header, reqTime, respTime)
		c.land(key, f)
		return answer, nil
	}
	if stale != nil && resp.StatusCode < 500 {
		c.put(key, req, nil) // superseded by what came back; an origin's error leaves it be
	}
	s := c.admit(req, resp.StatusCode, resp.Status, resp.Header, reqTime, respTime)
	resp.Header.Set("X-Cache", "MISS")
	limit := c.maxObjectBytes()
	if s == nil || resp.ContentLength > limit {
		c.land(key, f)
		t.stats.cached(cacheBypass)
		return resp, nil
	}
	if resp.ContentLength < 0 {
		c.land(key, f) // it may never end: its waiters fetch on their own
		f = nil
	} else {
		limit = resp.ContentLength
	}
	fl := &fill{t: t, req: req, key: key, s: s, f: f, limit: limit, sized: resp.ContentLength >= 0}
	if limit == 0 {
		fl.end(true)
		return resp, nil
	}
	resp.Body = &fillBody{rc: resp.Body, fill: fl}
	handedOver = true
	return resp, nil
}

// revalidated answers req with stale, which the origin said is still good
// with a 304 of header h, and stores it with h's fields in place of its
// own (RFC 9111 §4.3.4), unless h made it one not to store.
func (t *cacheTransport) revalidated(req *http.Request, key string, stale *stored, h http.Header, reqTime, respTime time.Time) *http.Response {
	merged := stale.header.Clone()
	for k, vs := range h {
		if k != "Content-Length" {
			merged[k] = vs
		}
	}
	s := t.c.admit(req, stale.status, stale.statusText, merged, reqTime, respTime)
	if s != nil {
		s.setBody(stale.body)
		t.c.put(key, req, s)
	} else {
		t.c.put(key, req, nil) // good for this request, not to store
		s = &stored{
			status:       stale.status,
			statusText:   stale.statusText,
			header:       merged,
			body:         stale.body,
			responseTime: respTime,
			initialAge:   initialAge(merged, reqTime, respTime),
		}
	}
	return t.serve(req, s, respTime, cacheRevalidated)
}

// serve answers req from s at now: with s, its header alone for HEAD, or
// a 304 when req's If-None-Match or If-Modified-Since holds for it.
func (t *cacheTransport) serve(req *http.Request, s *stored, now time.Time, result cacheResult) *http.Response {
	t.stats.cached(result)
	h := s.header.Clone()
	h.Set("Age", strconv.FormatInt(int64(s.age(now)/time.Second), 10))
	h.Set("X-Cache", "HIT")
	resp := &http.Response{
		Status:        s.statusText,
		StatusCode:    s.status,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        h,
		Body:          http.NoBody,
		ContentLength: int64(len(s.body)),
		Request:       req,
	}
	switch {
	case notModified(req.Header, s.header):
		resp.Status, resp.StatusCode, resp.ContentLength = "304 Not Modified", http.StatusNotModified, 0
		h.Del("Content-Length")
	case req.Method != http.MethodHead:
		resp.Body = io.NopCloser(bytes.NewReader(s.body))
	}
	return resp
}

// CloseIdleConnections closes the idle connections of the transport
// behind the cache, so that http.Client.CloseIdleConnections reaches it.
func (t *cacheTransport) CloseIdleConnections() {
	if ci, ok := t.next.(interface{ CloseIdleConnections() }); ok {
		ci.CloseIdleConnections()
	}
}

// notModified reports whether a request with header req has a condition
// that a stored response with header h satisfies, so that a 304 answers
// it: If-None-Match, else If-Modified-Since (RFC 9110 §13.2.2).
func notModified(req, h http.Header) bool {
	if inm := headerValue(req, "If-None-Match"); inm != "" {
		etag := strings.TrimPrefix(h.Get("Etag"), "W/")
		for tag := range strings.SplitSeq(inm, ",") {
			tag = textproto.TrimString(tag)
			if tag == "*" || etag != "" && strings.TrimPrefix(tag, "W/") == etag {
				return true
			}
		}
		return false
	}
	ims := req.Get("If-Modified-Since")
	if ims == "" {
		return false
	}
	since, err := http.ParseTime(ims)
	if err != nil {
		return false
	}
	modified, err := http.ParseTime(h.Get("Last-Modified"))
	return err == nil && !modified.After(since)
}

// fillBody is the body of a response the cache may store, on its way to
// the client: it copies what passes, and stores the response once it has
// passed whole. It gives storing up when the body grows past its limit or
// the fill budget, breaks off, or is closed before its end.
type fillBody struct {
	rc   io.ReadCloser
	mu   sync.Mutex // for fill: Close may come from another goroutine than Read
	fill *fill      // nil once stored or given up
}

func (b *fillBody) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	b.mu.Lock()
	defer b.mu.Unlock()
	if fl := b.fill; fl != nil {
		whole := fl.sized && int64(len(fl.buf)+n) == fl.limit || !fl.sized && err == io.EOF
		switch {
		case !fl.write(p[:n]):
			b.end(false)
		case whole || err != nil:
			b.end(whole)
		}
	}
	return n, err
}

func (b *fillBody) Close() error {
	b.mu.Lock()
	if b.fill != nil {
		b.end(false)
	}
	b.mu.Unlock()
	return b.rc.Close()
}

// end ends b's fill, storing the response when its body came whole. b.mu
// must be held.
func (b *fillBody) end(whole bool) {
	fl := b.fill
	b.fill = nil
	fl.end(whole)
}

// fill is a response being copied to be stored.
type fill struct {
	t        *cacheTransport
	req      *http.Request
	key      string
	s        *stored // the response, its body to come
	f        *flight // the flight it ends; nil when its waiters were let go
	buf      []byte
	limit    int64 // the most bytes it may hold: the Content-Length, else MaxObjectBytes
	sized    bool  // limit is the Content-Length
	reserved int64 // bytes of the fill budget it holds: cap(buf)
}

// minFillBuffer is the least a fill's buffer grows by.
const minFillBuffer = 4 << 10

// write copies p, growing the buffer as bytes arrive rather than by the
// length the origin announced, and reports whether it could: within the
// fill's limit and the cache's fill budget.
func (fl *fill) write(p []byte) bool {
	need := int64(len(fl.buf) + len(p))
	if need > fl.limit {
		return false
	}
	if have := int64(cap(fl.buf)); need > have {
		size := min(max(need, 2*have, minFillBuffer), fl.limit)
		if !fl.t.c.reserve(size - have) {
			return false
		}
		fl.reserved = size
		buf := make([]byte, len(fl.buf), size)
		copy(buf, fl.buf)
		fl.buf = buf
	}
	fl.buf = append(fl.buf, p...)
	return true
}

// end stores the response when its body came whole, gives back the fill
// budget, lands the flight and counts the request: a miss if stored, else
// a bypass.
func (fl *fill) end(whole bool) {
	c := fl.t.c
	if whole {
		body := fl.buf
		if cap(body) > len(body)+len(body)/4 {
			body = bytes.Clone(body) // what is stored is what is counted
		}
		fl.s.setBody(body)
		c.put(fl.key, fl.req, fl.s)
	}
	c.filling.Add(-fl.reserved)
	fl.buf = nil
	c.land(fl.key, fl.f)
	if whole {
		fl.t.stats.cached(cacheMiss)
	} else {
		fl.t.stats.cached(cacheBypass)
	}
}
