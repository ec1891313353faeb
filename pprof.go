package revproxy

import (
	"html/template"
	"net/http"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"time"
)

// The admin handler serves profiles itself over runtime/pprof rather than
// importing net/http/pprof: that package's init registers its handlers on
// http.DefaultServeMux, which every program importing revproxy would then
// serve without asking.

// maxProfileSeconds bounds a CPU profile: a request cannot keep the
// profiler (one per process) for longer.
const maxProfileSeconds = 60

// servePprof serves /debug/pprof/: an index of the profiles, each profile
// by name (?debug=N for text, ?gc=1 to collect garbage before the heap
// profile), and /debug/pprof/profile?seconds=N, a CPU profile of N seconds
// (30 unless given, at most maxProfileSeconds). The binary forms are what
// go tool pprof reads.
func servePprof(w http.ResponseWriter, r *http.Request) {
	name := strings.TrimPrefix(r.URL.Path, "/debug/pprof")
	switch name {
	case "":
		// Relative to the request's own path, which a prefix the handler is
		// mounted under is part of (http.Redirect would use the path
		// without it).
		w.Header().Set("Location", "pprof/")
		w.WriteHeader(http.StatusMovedPermanently)
	case "/":
		servePprofIndex(w)
	case "/profile":
		serveCPUProfile(w, r)
	default:
		serveProfile(w, r, name[1:])
	}
}

// pprofIndex lists the profiles, with links relative to /debug/pprof/.
var pprofIndex = sync.OnceValue(func() *template.Template {
	return template.Must(template.New("pprof").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>revproxy: profiles</title>
<style>body{font:15px/1.6 system-ui,sans-serif;margin:2em;color:#1f2328}a{color:#0969da}td{padding:0 1em 0 0}</style></head>
<body><h1>Profiles</h1>
<p>Each is read by <code>go tool pprof URL</code>; <code>?debug=1</code> shows it as text.</p>
<table>
{{range .Profiles}}<tr><td style="text-align:right">{{.Count}}</td><td><a href="{{.Name}}?debug=1">{{.Name}}</a></td></tr>
{{end}}<tr><td></td><td><a href="goroutine?debug=2">goroutine?debug=2</a>: every goroutine's stack</td></tr>
<tr><td></td><td><a href="profile?seconds=10">profile?seconds=10</a>: CPU, for 10 seconds (at most {{.MaxSeconds}})</td></tr>
</table></body></html>
`))
})

// servePprofIndex writes the list of profiles.
func servePprofIndex(w http.ResponseWriter) {
	type row struct {
		Name  string
		Count int
	}
	index := struct {
		Profiles   []row
		MaxSeconds int
	}{MaxSeconds: maxProfileSeconds}
	for _, p := range pprof.Profiles() {
		index.Profiles = append(index.Profiles, row{p.Name(), p.Count()})
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'")
	pprofIndex().Execute(w, index)
}

// serveProfile writes the profile name: as text with ?debug=N (N > 0), or
// in the binary form go tool pprof reads.
func serveProfile(w http.ResponseWriter, r *http.Request, name string) {
	p := pprof.Lookup(name)
	if p == nil {
		http.Error(w, "unknown profile "+strconv.Quote(name), http.StatusNotFound)
		return
	}
	debug, err := queryInt(r, "debug", 0)
	if err != nil || debug < 0 {
		http.Error(w, "debug must be a number, 0 or more", http.StatusBadRequest)
		return
	}
	if name == "heap" && r.FormValue("gc") != "" {
		runtime.GC()
	}
	if debug > 0 {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	} else {
		binaryHeaders(w, name)
	}
	p.WriteTo(w, debug)
}

// serveCPUProfile profiles the CPU for ?seconds=N and writes the profile,
// or less if the request is cancelled. Only one CPU profile runs at a time
// in a process; a second request gets 409.
func serveCPUProfile(w http.ResponseWriter, r *http.Request) {
	sec, err := queryInt(r, "seconds", 30)
	if err != nil || sec < 1 || sec > maxProfileSeconds {
		http.Error(w, "seconds must be from 1 to "+strconv.Itoa(maxProfileSeconds), http.StatusBadRequest)
		return
	}
	if r.Method == http.MethodHead {
		binaryHeaders(w, "profile")
		return
	}
	// The profile is written to w as it is made, so the headers go first;
	// if profiling cannot start, nothing was written yet.
	binaryHeaders(w, "profile")
	if err := pprof.StartCPUProfile(w); err != nil {
		w.Header().Del("Content-Disposition")
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		http.Error(w, "cannot profile the CPU: "+err.Error(), http.StatusConflict)
		return
	}
	t := time.NewTimer(time.Duration(sec) * time.Second)
	select {
	case <-t.C:
	case <-r.Context().Done():
		t.Stop()
	}
	pprof.StopCPUProfile()
}

func binaryHeaders(w http.ResponseWriter, name string) {
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Disposition", `attachment; filename="`+name+`"`)
}

// queryInt returns the query parameter key as an int, or def if it is
// absent.
func queryInt(r *http.Request, key string, def int) (int, error) {
	v := r.FormValue(key)
	if v == "" {
		return def, nil
	}
	return strconv.Atoi(v)
}
