package revproxy

import (
	"encoding/json"
	"html/template"
	"net/http"
	"strings"
	"sync"
)

// Admin is an [http.Handler] for the operators of a [Proxy]: metrics for
// Prometheus, a status page for people, the same snapshot as JSON for
// scripts, and a health check for load balancers. It serves
//
//	/              an index linking the others
//	/metrics       the Prometheus text exposition format, version 0.0.4
//	/status        an HTML page that refreshes itself every 2 seconds
//	/status.json   Proxy.Stats as JSON
//	/healthz       200 "ok" while the proxy serves, 503 before and after
//	/debug/pprof/  the runtime's profiles, when Pprof is set
//
// to GET and HEAD; other methods get 405. Its links are relative, so it can
// be mounted under a prefix with [http.StripPrefix]:
//
//	mux.Handle("/admin/", http.StripPrefix("/admin", &revproxy.Admin{Proxy: p}))
//
// Serve it on an address operators reach and the proxy's peers do not: it
// shows every server's id and address, and with Pprof the process's
// memory.
type Admin struct {
	// Proxy is the proxy shown; it may be serving or not yet.
	Proxy *Proxy
	// Pprof serves the runtime's profiles under /debug/pprof/, as
	// net/http/pprof does (go tool pprof reads them), without registering
	// anything on http.DefaultServeMux. Off, the paths are not found: a
	// profile shows the process's memory and costs CPU while it runs.
	Pprof bool
	// Metrics, when set, appends more metric families to /metrics, after
	// the proxy's own, in the same text format: an HTTP front door's
	// (httpproxy.Proxy.AppendMetrics), or a program's. Each family must
	// appear once, and its names must not begin with the proxy's
	// revproxy_ prefixes already used.
	Metrics func(b []byte) []byte
	// Cards, when set, adds figures to /status after the proxy's own, and
	// to /status.json as "cards": an HTTP front door's
	// (httpproxy.Proxy.StatusCards), or a program's. It is called once for
	// each page and each refresh.
	Cards func() []StatusCard
}

// StatusCard is one figure on the status page, as Admin.Cards gives it: a
// title, the figure, and a line that details it. All three are text.
type StatusCard struct {
	Title  string `json:"title"`
	Value  string `json:"value"`
	Detail string `json:"detail"`
}

// cards returns the extra cards, or none.
func (a *Admin) cards() []StatusCard {
	if a.Cards == nil {
		return nil
	}
	return a.Cards()
}

// ServeHTTP serves the page r asks for; see [Admin].
func (a *Admin) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var serve func(http.ResponseWriter, *http.Request)
	switch path := r.URL.Path; {
	case path == "/" || path == "":
		serve = a.serveIndex
	case path == "/metrics":
		serve = a.serveMetrics
	case path == "/status":
		serve = a.serveStatus
	case path == "/status.json":
		serve = a.serveJSON
	case path == "/healthz":
		serve = a.serveHealth
	case a.Pprof && (path == "/debug/pprof" || strings.HasPrefix(path, "/debug/pprof/")):
		serve = servePprof
	default:
		http.NotFound(w, r)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed: use GET or HEAD", http.StatusMethodNotAllowed)
		return
	}
	w.Header().Set("Cache-Control", "no-store") // every answer is of the moment
	w.Header().Set("X-Content-Type-Options", "nosniff")
	serve(w, r)
}

// serveHealth answers 200 while the proxy serves, and 503 before and
// after: what a load balancer or an orchestrator's probe needs.
func (a *Admin) serveHealth(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if a.Proxy.serving.Load() == 0 {
		w.WriteHeader(http.StatusServiceUnavailable)
		w.Write([]byte("not serving\n"))
		return
	}
	w.Write([]byte("ok\n"))
}

// serveJSON writes the proxy's Stats as JSON.
func (a *Admin) serveJSON(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(struct {
		Stats
		Cards []StatusCard `json:"cards,omitempty"`
	}{a.Proxy.Stats(), a.cards()})
}

// indexPage links the admin handler's pages, relative to where it is
// mounted. It is parsed when first served: a program that does not serve
// it does not pay for it at start.
var indexPage = sync.OnceValue(func() *template.Template {
	return template.Must(template.New("index").Parse(indexHTML))
})

const indexHTML = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>revproxy</title>
<style>body{font:15px/1.6 system-ui,sans-serif;margin:2em;color:#1f2328}a{color:#0969da}code{color:#57606a}</style></head>
<body><h1>revproxy</h1><ul>
<li><a href="status">status</a>: policies, servers and recent errors, refreshing itself</li>
<li><a href="status.json">status.json</a>: the same, for scripts</li>
<li><a href="metrics">metrics</a>: for Prometheus</li>
<li><a href="healthz">healthz</a>: <code>ok</code> while the proxy serves</li>
{{if .}}<li><a href="debug/pprof/">debug/pprof</a>: the runtime's profiles</li>{{end}}
</ul></body></html>
`

func (a *Admin) serveIndex(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'")
	indexPage().Execute(w, a.Pprof)
}
