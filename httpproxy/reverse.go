package httpproxy

import "net/http"

// serveReverse sends r to a server of its Route's policy. (To be written.)
func (p *Proxy) serveReverse(w http.ResponseWriter, r *http.Request) {
	http.Error(w, "not yet", http.StatusNotImplemented)
}
