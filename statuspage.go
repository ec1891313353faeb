package revproxy

import (
	"bytes"
	"crypto/sha256"
	_ "embed"
	"encoding/base64"
	"html/template"
	"maps"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// statusHTML is the /status page: a template that renders a Stats, so the
// page shows everything at once and without JavaScript, and a script that
// fetches status.json every 2 seconds and renders it again, the same way,
// into the DOM. Both write what came from peers (server ids, policies,
// error texts) as text only: html/template escapes it, and the script sets
// textContent and never innerHTML.
//
//go:embed status.html
var statusHTML string

// statusPage is the parsed page and the Content-Security-Policy it is
// served with, made when the page is first served. The policy lets only
// the page's own script run (by its hash) and fetch only from the page's
// origin: were anything a peer sent to slip through the escaping, it still
// could not run.
var statusPage = sync.OnceValues(func() (*template.Template, string) {
	t := template.Must(template.New("status").Funcs(template.FuncMap{
		"num":     fmtCount,
		"bytes":   fmtBytes,
		"latency": fmtLatency,
		"uptime":  fmtUptime,
		"ago":     fmtAgo,
		"span":    fmtSpan,
		"percent": fmtPercent,
		"sum":     sumCounts,
		"codes":   codeCounts,
		"up":      upServers,
		"rfc3339": func(t time.Time) string { return t.UTC().Format(time.RFC3339) },
		"clock":   func(t time.Time) string { return t.UTC().Format("15:04:05 UTC") },
		"date":    func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04 UTC") },
	}).Parse(statusHTML))
	// The script's hash is taken as the template writes it: html/template
	// drops its comments.
	var b strings.Builder
	if err := t.Execute(&b, &statusView{}); err != nil {
		panic(err)
	}
	_, script, ok := strings.Cut(b.String(), "<script>")
	script, _, ok2 := strings.Cut(script, "</script>")
	if !ok || !ok2 {
		panic("revproxy: status.html has no script")
	}
	sum := sha256.Sum256([]byte(script))
	csp := "default-src 'none'; script-src 'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'; " +
		"style-src 'unsafe-inline'; connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'"
	return t, csp
})

// statusView is what the page's template renders: a snapshot and the
// proxy's time when it was taken, which ages are counted from (the
// browser's clock may differ from the proxy's).
type statusView struct {
	Stats
	Now   time.Time
	Cards []StatusCard // Admin.Cards
}

// serveStatus writes the status page, rendered with a snapshot taken now.
func (a *Admin) serveStatus(w http.ResponseWriter, _ *http.Request) {
	page, csp := statusPage()
	v := statusView{Stats: a.Proxy.Stats(), Now: time.Now(), Cards: a.cards()}
	if !v.Started.IsZero() {
		v.Now = v.Started.Add(v.Uptime)
	}
	var b bytes.Buffer // a failure is a 500, not half a page
	if err := page.Execute(&b, &v); err != nil {
		http.Error(w, "status page: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Content-Security-Policy", csp)
	w.Write(b.Bytes())
}

// The functions below format the page's figures; the page's script has
// one of the same name for each, which must agree with it.

// fmtCount writes n with thousands separators: 12,345.
func fmtCount(n any) string {
	var s string
	switch n := n.(type) {
	case uint64:
		s = strconv.FormatUint(n, 10)
	case int:
		s = strconv.Itoa(n)
	case int64:
		s = strconv.FormatInt(n, 10)
	default:
		panic("revproxy: fmtCount of a non-integer")
	}
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	if neg {
		b.WriteByte('-')
	}
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

// fmtBytes writes a size in B, KiB, MiB or GiB.
func fmtBytes(n int64) string {
	if n < 1024 {
		return strconv.FormatInt(n, 10) + " B"
	}
	f, unit := float64(n)/1024, "KiB"
	for _, u := range []string{"MiB", "GiB"} {
		if f < 1024 {
			break
		}
		f, unit = f/1024, u
	}
	return fixed(f, 1) + " " + unit
}

// fmtLatency writes a latency in µs, ms or s, with 2 or 3 significant
// digits.
func fmtLatency(d time.Duration) string {
	switch ns := float64(d); {
	case d < time.Millisecond:
		return fixed(ns/1e3, 0) + " µs"
	case d < 10*time.Millisecond:
		return fixed(ns/1e6, 2) + " ms"
	case d < time.Second:
		return fixed(ns/1e6, 1) + " ms"
	default:
		return fixed(ns/1e9, 2) + " s"
	}
}

// fixed writes x, which is not negative, with digits decimals, rounding
// halves up. It is how the page's script rounds too (strconv rounds
// halves to even), so that both write the same figures.
func fixed(x float64, digits int) string {
	s := strconv.FormatInt(int64(math.Round(x*math.Pow10(digits))), 10)
	if digits == 0 {
		return s
	}
	s = strings.Repeat("0", max(0, digits+1-len(s))) + s
	return s[:len(s)-digits] + "." + s[len(s)-digits:]
}

// fmtSpan writes a span of time roughly: 42 s, 5 min, 3 h, 2 d.
func fmtSpan(d time.Duration) string {
	switch {
	case d < time.Minute:
		return strconv.Itoa(int(d/time.Second)) + " s"
	case d < time.Hour:
		return strconv.Itoa(int(d/time.Minute)) + " min"
	case d < 48*time.Hour:
		return strconv.Itoa(int(d/time.Hour)) + " h"
	}
	return strconv.Itoa(int(d/(24*time.Hour))) + " d"
}

// fmtAgo writes how long before now t was: "now", "42 s ago", or "never"
// for the zero time.
func fmtAgo(now, t time.Time) string {
	switch d := now.Sub(t); {
	case t.IsZero():
		return "never"
	case d < time.Second:
		return "now"
	default:
		return fmtSpan(d) + " ago"
	}
}

// fmtUptime writes an uptime in its two largest units: 42 s, 5 min 03 s,
// 2 h 05 min, 3 d 4 h.
func fmtUptime(d time.Duration) string {
	two := func(n int) string { return strconv.Itoa(n/10) + strconv.Itoa(n%10) }
	s := int(d / time.Second)
	switch {
	case s < 60:
		return strconv.Itoa(s) + " s"
	case s < 3600:
		return strconv.Itoa(s/60) + " min " + two(s%60) + " s"
	case s < 86400:
		return strconv.Itoa(s/3600) + " h " + two(s%3600/60) + " min"
	}
	return strconv.Itoa(s/86400) + " d " + strconv.Itoa(s%86400/3600) + " h"
}

// fmtPercent writes used as a percentage of max, from 0 to 100, for the
// width of a bar.
func fmtPercent(used, max int64) string {
	if max <= 0 || used <= 0 {
		return "0"
	}
	return fixed(min(100, 100*float64(used)/float64(max)), 1)
}

// sumCounts adds up errors by code.
func sumCounts(m map[string]uint64) uint64 {
	var n uint64
	for _, v := range m {
		n += v
	}
	return n
}

// codeCount is one error code and how many times it answered.
type codeCount struct {
	Code string
	N    uint64
}

// codeCounts lists errors by code, in the order of the codes' names.
func codeCounts(m map[string]uint64) []codeCount {
	var cs []codeCount
	for _, code := range slices.Sorted(maps.Keys(m)) {
		if n := m[code]; n > 0 {
			cs = append(cs, codeCount{code, n})
		}
	}
	return cs
}

// upServers counts the servers that are up.
func upServers(servers []ServerStats) int {
	n := 0
	for _, s := range servers {
		if s.State == Up {
			n++
		}
	}
	return n
}
