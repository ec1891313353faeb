package httpproxy

import (
	"errors"
	"net"
	"net/http"
	"slices"
	"strconv"
	"time"
)

// established is the answer that opens a tunnel.
var established = []byte("HTTP/1.1 200 Connection established\r\n\r\n")

// serveConnect opens a tunnel to the host:port a CONNECT names, and copies
// bytes both ways until both have ended (see tunnel). The port must be in
// ConnectPorts and the host not in DenyHosts (else 403); a destination
// that cannot be reached answers 502 as soon as the dial fails. The tunnel
// counts as a 200 in the proxy's statistics.
func (p *Proxy) serveConnect(w *statusRecorder, r *http.Request) {
	if r.ProtoMajor != 1 {
		// Tunnels take the connection over, which only HTTP/1 has.
		http.Error(w, "tunnels need HTTP/1.1", http.StatusHTTPVersionNotSupported)
		return
	}
	target := r.URL.Host
	if target == "" {
		target = r.Host
	}
	host, portText, err := net.SplitHostPort(target)
	port, perr := strconv.Atoi(portText)
	if err != nil || perr != nil || host == "" || port < 1 || port > 65535 {
		http.Error(w, "CONNECT needs a host:port", http.StatusBadRequest)
		return
	}
	if !p.connectPortAllowed(port) {
		p.stats.refused(refusedPort)
		http.Error(w, "this proxy does not open tunnels to that port", http.StatusForbidden)
		return
	}
	if p.deny.deniesHost(host) {
		p.refuseDestination(w)
		return
	}
	log := logger(p.Logger)
	d := net.Dialer{Timeout: p.dialTimeout(), KeepAlive: 30 * time.Second, ControlContext: p.deny.control()}
	upstream, err := d.DialContext(r.Context(), "tcp", target)
	if err != nil {
		if errors.Is(err, errDeniedAddress) {
			p.refuseDestination(w)
			return
		}
		log.Debug("httpproxy: tunnel's dial failed", "target", target, "err", err)
		http.Error(w, "cannot reach "+target, http.StatusBadGateway)
		return
	}
	client, buffered, err := http.NewResponseController(w).Hijack()
	if err != nil {
		upstream.Close()
		log.Debug("httpproxy: tunnel's connection cannot be taken over", "err", err)
		http.Error(w, "tunnels need HTTP/1.1", http.StatusHTTPVersionNotSupported)
		return
	}
	w.code = http.StatusOK // written below, on the connection taken over
	closed := p.stats.tunnel()
	defer closed()

	t := newTunnel(p.idleTimeout(), client, upstream)
	if _, err := client.Write(established); err != nil {
		t.end(err)
		log.Debug("httpproxy: tunnel's client left", "target", target, "err", err)
		return
	}
	// The client's first bytes may already sit in the server's buffer;
	// they go first, and the rest is read from the connection itself:
	// the server's reader under that buffer takes a read error for the
	// client's leaving and cancels the request's context.
	early, _ := buffered.Reader.Peek(buffered.Reader.Buffered())
	up, down, err := t.run(r.Context(), early)
	log.Debug("httpproxy: tunnel closed", "target", target, "sent", up, "received", down, "err", err)
}

// connectPortAllowed reports whether a tunnel may reach port.
func (p *Proxy) connectPortAllowed(port int) bool {
	if p.ConnectPorts == nil {
		return port == 443
	}
	return slices.Contains(p.ConnectPorts, port)
}
