package httpproxy

import (
	"errors"
	"net/http"
	"net/textproto"
	"strconv"
	"strings"
	"time"

	"github.com/pquerna/cachecontrol/cacheobject"
)

// admit describes the response (status, header) to req, sent at reqTime
// and received at respTime, as a response to store, or returns nil when a
// shared cache may not store it (RFC 9111 §3) or it would be of no use:
// a 1xx (a switched protocol's body is a connection), 206 or 304,
// Set-Cookie (one client's session must not reach another, as nginx and
// Varnish hold by default), an event stream, Vary: *, a malformed
// Cache-Control, what cachecontrol refuses (Authorization without public,
// s-maxage or must-revalidate among them), a response to a request with a
// Cookie that says neither public nor s-maxage (it may be that client's
// page, as Varnish assumes), and one stale on arrival with no validator
// to revalidate it with. The body is the caller's to add.
func (c *Cache) admit(req *http.Request, status int, statusText string, h http.Header, reqTime, respTime time.Time) *stored {
	if status < http.StatusOK || status == http.StatusPartialContent || status == http.StatusNotModified ||
		len(h["Set-Cookie"]) > 0 || isEventStream(h) {
		return nil
	}
	vary, ok := varyNames(h)
	if !ok {
		return nil
	}
	dirs, err := cacheobject.ParseResponseCacheControl(headerValue(h, "Cache-Control"))
	if err != nil {
		return nil
	}
	obj := cacheobject.Object{
		RespDirectives: dirs,
		RespHeaders:    h,
		RespStatusCode: status,
		ReqHeaders:     req.Header,
		ReqMethod:      req.Method,
	}
	var res cacheobject.ObjectResults
	cacheobject.CachableObject(&obj, &res)
	if len(res.OutReasons) > 0 {
		return nil
	}
	shared := dirs.Public || dirs.SMaxAge >= 0
	if len(req.Header["Cookie"]) > 0 && !shared {
		return nil
	}
	// Any Authorization line counts, as allowedFor counts it: cachecontrol
	// looks at the first only, which may be empty.
	if len(req.Header["Authorization"]) > 0 && !shared && !dirs.MustRevalidate {
		return nil
	}
	lifetime, explicit := freshnessLifetime(dirs, h, respTime)
	if !explicit {
		if lifetime = c.defaultTTL(); lifetime < 0 {
			return nil
		}
	}
	if dirs.NoCachePresent {
		lifetime = 0 // stored, but validated before each use
	}
	s := &stored{
		status:         status,
		statusText:     statusText,
		header:         h.Clone(),
		vary:           vary,
		responseTime:   respTime,
		initialAge:     initialAge(h, reqTime, respTime),
		lifetime:       lifetime,
		shared:         shared,
		mustRevalidate: dirs.MustRevalidate,
	}
	s.header.Del("Age")
	if s.lifetime <= s.initialAge && !s.hasValidator() {
		return nil
	}
	if len(vary) > 0 {
		s.varyValues = make([]string, len(vary))
		for i, name := range vary {
			s.varyValues[i] = headerValue(req.Header, name)
		}
	}
	return s
}

// isEventStream reports whether a response with header h is a stream of
// server-sent events, which never ends and is never stored.
func isEventStream(h http.Header) bool {
	mt, _, _ := strings.Cut(h.Get("Content-Type"), ";")
	return strings.EqualFold(textproto.TrimString(mt), "text/event-stream")
}

// allowedFor reports whether s may answer a request with header h by its
// credentials: one with a Cookie only when s says public or s-maxage, one
// with Authorization only when it says so or must-revalidate (RFC 9111
// §3.5), the rules a response to such a request is stored by.
func (s *stored) allowedFor(h http.Header) bool {
	if len(h["Cookie"]) > 0 && !s.shared {
		return false
	}
	return len(h["Authorization"]) == 0 || s.shared || s.mustRevalidate
}

// setBody adds the body to s and counts its size: body, header and the
// request values it varies on, and the memory around them.
func (s *stored) setBody(body []byte) {
	s.body = body
	n := variantOverhead + len(body) + len(s.statusText)
	for k, vs := range s.header {
		n += fieldOverhead + len(k)
		for _, v := range vs {
			n += valueOverhead + len(v)
		}
	}
	for i := range s.vary {
		n += len(s.vary[i]) + len(s.varyValues[i])
	}
	s.size = int64(n)
}

// freshnessLifetime is how long a response with directives d and header h
// stays fresh, by RFC 9111 §4.2.1 for a shared cache: s-maxage, else
// max-age, else Expires minus Date (an invalid Expires, such as "0",
// meaning already expired, §5.3); explicit is false when it says none of
// them.
func freshnessLifetime(d *cacheobject.ResponseCacheDirectives, h http.Header, respTime time.Time) (lifetime time.Duration, explicit bool) {
	switch {
	case d.SMaxAge >= 0:
		return time.Duration(d.SMaxAge) * time.Second, true
	case d.MaxAge >= 0:
		return time.Duration(d.MaxAge) * time.Second, true
	}
	exp := h.Values("Expires")
	if len(exp) == 0 {
		return 0, false
	}
	expires, err := http.ParseTime(exp[0])
	if err != nil || len(exp) > 1 {
		return 0, true
	}
	date, err := http.ParseTime(h.Get("Date"))
	if err != nil {
		date = respTime
	}
	return max(0, expires.Sub(date)), true
}

// maxAgeSeconds is the largest Age a cache counts, RFC 9111 §1.2.2.
const maxAgeSeconds = 1 << 31

// initialAge is the corrected initial age of a response with header h,
// RFC 9111 §4.2.3: the larger of its apparent age (respTime - Date) and
// its Age plus the time the request took.
func initialAge(h http.Header, reqTime, respTime time.Time) time.Duration {
	var apparent time.Duration
	if date, err := http.ParseTime(h.Get("Date")); err == nil {
		apparent = max(0, respTime.Sub(date))
	}
	var age time.Duration
	if v := h.Get("Age"); v != "" {
		if n, err := strconv.ParseUint(v, 10, 64); err == nil || errors.Is(err, strconv.ErrRange) {
			age = time.Duration(min(n, maxAgeSeconds)) * time.Second
		}
	}
	return max(apparent, age+respTime.Sub(reqTime))
}

// age is s's current age at now, RFC 9111 §4.2.3.
func (s *stored) age(now time.Time) time.Duration {
	return s.initialAge + now.Sub(s.responseTime)
}

// fresh reports whether s may be served at now without asking the origin.
func (s *stored) fresh(now time.Time) bool { return s.lifetime > s.age(now) }

// hasValidator reports whether s can be revalidated: it has an ETag or a
// Last-Modified.
func (s *stored) hasValidator() bool {
	return s.header.Get("Etag") != "" || s.header.Get("Last-Modified") != ""
}

// matches reports whether s may answer req by its Vary: req has the
// values of the fields s varies on that s's request had.
func (s *stored) matches(req *http.Request) bool {
	for i, name := range s.vary {
		if headerValue(req.Header, name) != s.varyValues[i] {
			return false
		}
	}
	return true
}

// varyNames returns the canonical names of the request fields a response
// with header h varies on; ok is false for Vary: *, which no request
// matches.
func varyNames(h http.Header) (names []string, ok bool) {
	for _, line := range h.Values("Vary") {
		for name := range strings.SplitSeq(line, ",") {
			name = textproto.TrimString(name)
			switch name {
			case "":
			case "*":
				return nil, false
			default:
				names = append(names, http.CanonicalHeaderKey(name))
			}
		}
	}
	return names, true
}

// headerValue is the value of h's field name, its lines joined.
func headerValue(h http.Header, name string) string {
	vs := h.Values(name)
	switch len(vs) {
	case 0:
		return ""
	case 1:
		return vs[0]
	}
	return strings.Join(vs, ", ")
}

// requestControl is what a request's own Cache-Control asks of the cache.
type requestControl struct {
	noStore bool          // nothing for it from the cache, nor of it into the cache
	noCache bool          // no stored response without revalidating it
	maxAge  time.Duration // no stored response older than this; -1: any
}

// parseRequestControl reads h's Cache-Control, or Pragma: no-cache when
// there is none (RFC 9111 §5.4). A malformed Cache-Control is taken as
// no-store: the request passes by the cache.
func parseRequestControl(h http.Header) requestControl {
	rc := requestControl{maxAge: -1}
	cc := headerValue(h, "Cache-Control")
	if cc == "" {
		if p := h.Get("Pragma"); p != "" && strings.Contains(strings.ToLower(p), "no-cache") {
			rc.noCache = true
		}
		return rc
	}
	d, err := cacheobject.ParseRequestCacheControl(cc)
	if err != nil {
		rc.noStore = true
		return rc
	}
	rc.noStore, rc.noCache = d.NoStore, d.NoCache
	if d.MaxAge >= 0 {
		rc.maxAge = time.Duration(d.MaxAge) * time.Second
	}
	return rc
}

// allows reports whether the request lets s serve it at now, s being fresh.
func (rc requestControl) allows(s *stored, now time.Time) bool {
	return !rc.noCache && (rc.maxAge < 0 || s.age(now) <= rc.maxAge)
}
