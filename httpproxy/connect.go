package httpproxy

import "net/http"

// serveConnect opens a tunnel to the host:port a CONNECT names. (To be
// written.)
func (p *Proxy) serveConnect(w http.ResponseWriter, r *http.Request) {
	http.Error(w, "not yet", http.StatusNotImplemented)
}
