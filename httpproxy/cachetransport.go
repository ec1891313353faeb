package httpproxy

import (
	"bytes"
	"io"
	"net/http"
	"net/textproto"
	"strconv"
	"strings"
	"time"
)

// cacheTransport is the RoundTripper of Cache.wrap: it answers from the
// cache what it may and asks next for the rest.
type cacheTransport struct {
	c     *Cache
	next  http.RoundTripper
	stats *counters
}

// flight is a fetch under way for a key, which other requests for the key
// wait for rather than ask the origin themselves; done is closed once it
// has stored what it may.
type flight struct {
	done    chan struct{}
	waiters int
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
	key := cacheKey(req)
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
			select {
			case <-f.done:
				continue
			case <-req.Context().Done():
				t.stats.cached(cacheMiss)
				return nil, req.Context().Err()
			}
		}
		// Fetch alone when the fetch waited for stored nothing for req and
		// another is under way already; else lead one.
		if f != nil {
			c.mu.Unlock()
			return t.fetch(req, key, s)
		}
		f = &flight{done: make(chan struct{})}
		c.flights[key] = f
		c.mu.Unlock()
		return t.lead(req, key, s, f)
	}
}

// lead fetches req as flight f for key, then ends f and wakes those
// waiting for it.
func (t *cacheTransport) lead(req *http.Request, key string, stale *stored, f *flight) (*http.Response, error) {
	defer func() {
		t.c.mu.Lock()
		delete(t.c.flights, key)
		t.c.mu.Unlock()
		close(f.done)
	}()
	return t.fetch(req, key, stale)
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
		t.c.invalidate(cacheKey(req))
	}
	return resp, err
}

// fetch asks the origin for req, conditionally with stale's validators
// when it has them, stores what it may, and answers req.
func (t *cacheTransport) fetch(req *http.Request, key string, stale *stored) (*http.Response, error) {
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
	resp, err := t.next.RoundTrip(out)
	if err != nil {
		t.stats.cached(cacheMiss)
		return nil, err
	}
	respTime := c.clock()
	if revalidating && resp.StatusCode == http.StatusNotModified {
		io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10)) // lets the connection be reused
		resp.Body.Close()
		return t.revalidated(req, key, stale, resp.Header, reqTime, respTime), nil
	}
	s := c.admit(req, resp.StatusCode, resp.Status, resp.Header, reqTime, respTime)
	if s != nil {
		if body, ok := readBody(resp, c.maxObjectBytes()); ok {
			s.setBody(key, body)
		} else {
			s = nil
		}
	}
	if s == nil {
		if stale != nil && resp.StatusCode < 500 {
			c.put(key, req, nil) // superseded by what may not be stored; an origin's error leaves it be
		}
		t.stats.cached(cacheBypass)
	} else {
		c.put(key, req, s)
		t.stats.cached(cacheMiss)
	}
	resp.Header.Set("X-Cache", "MISS")
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
		s.setBody(key, stale.body)
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

// readBody reads resp's body into memory if it is at most max bytes, and
// reports whether it did; resp.Body then reads it from memory. When the
// body is larger, or breaks off, resp.Body streams what was read, then the
// rest, or the error.
func readBody(resp *http.Response, max int64) ([]byte, bool) {
	if resp.ContentLength > max {
		return nil, false
	}
	var body []byte
	var err error
	if resp.ContentLength >= 0 {
		body = make([]byte, resp.ContentLength)
		var n int
		n, err = io.ReadFull(resp.Body, body)
		body = body[:n]
	} else {
		body, err = io.ReadAll(io.LimitReader(resp.Body, max+1))
		if err == nil && int64(len(body)) > max {
			resp.Body = replayBody{io.MultiReader(bytes.NewReader(body), resp.Body), resp.Body}
			return nil, false
		}
		if cap(body) > len(body)+len(body)/4 {
			body = bytes.Clone(body) // what is stored is what is counted
		}
	}
	if err != nil {
		resp.Body = replayBody{io.MultiReader(bytes.NewReader(body), errReader{err}), resp.Body}
		return nil, false
	}
	resp.Body.Close()
	resp.Body = io.NopCloser(bytes.NewReader(body))
	resp.ContentLength = int64(len(body))
	return body, true
}

// replayBody reads from Reader and closes the origin's body.
type replayBody struct {
	io.Reader
	io.Closer
}

// errReader fails every read with err.
type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }
