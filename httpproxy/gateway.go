package httpproxy

import "net/http"

// gatewayPrefix begins the paths the gateway serves: POST /msg/{policy}.
const gatewayPrefix = "/msg/"

// serveGateway sends r's body as a data message. (To be written.)
func (p *Proxy) serveGateway(w http.ResponseWriter, r *http.Request) {
	http.Error(w, "not yet", http.StatusNotImplemented)
}
