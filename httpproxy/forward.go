package httpproxy

import "net/http"

// serveForward fetches an absolute-form request from its origin and
// streams the response back. (To be written.)
func (p *Proxy) serveForward(w http.ResponseWriter, r *http.Request) {
	http.Error(w, "not yet", http.StatusNotImplemented)
}
