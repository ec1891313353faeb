package httpproxy

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/netip"
	"strings"
	"syscall"
)

// errDeniedAddress is what a dial to an address in DenyHosts fails with.
var errDeniedAddress = errors.New("httpproxy: destination address is in DenyHosts")

// denyList is DenyHosts parsed once: exact host names, domains that also
// deny their subdomains, and IP prefixes (an address is a full-length
// prefix). Names are lower case, without a trailing dot.
type denyList struct {
	names    map[string]struct{}
	domains  map[string]struct{}
	prefixes []netip.Prefix
}

// parseDenyHosts parses DenyHosts entries: "host.name", ".example.com",
// "192.0.2.1", "2001:db8::/32". An entry that is none of these is logged
// as an error and ignored.
func parseDenyHosts(entries []string, log *slog.Logger) denyList {
	d := denyList{names: map[string]struct{}{}, domains: map[string]struct{}{}}
	for _, e := range entries {
		e = strings.TrimSpace(e)
		if e == "" {
			continue
		}
		if strings.Contains(e, "/") {
			if pfx, err := netip.ParsePrefix(e); err == nil {
				d.prefixes = append(d.prefixes, pfx.Masked())
			} else {
				log.Error("httpproxy: DenyHosts entry ignored: not a CIDR prefix", "entry", e, "err", err)
			}
			continue
		}
		if addr, err := netip.ParseAddr(strings.Trim(e, "[]")); err == nil {
			addr = addr.Unmap().WithZone("")
			d.prefixes = append(d.prefixes, netip.PrefixFrom(addr, addr.BitLen()))
			continue
		}
		name, domain := strings.CutPrefix(normalHost(e), ".")
		switch {
		case !validHostName(name):
			log.Error("httpproxy: DenyHosts entry ignored: not a host name, domain, IP address or CIDR prefix", "entry", e)
		case domain:
			d.domains[name] = struct{}{}
		default:
			d.names[name] = struct{}{}
		}
	}
	return d
}

// normalHost is host in lower case without a trailing dot: the form a
// name is compared in.
func normalHost(host string) string {
	return strings.ToLower(strings.TrimSuffix(host, "."))
}

// validHostName reports whether s can be a DNS name: letters, digits,
// '-', '_' and dots between non-empty labels.
func validHostName(s string) bool {
	if s == "" || s[0] == '.' || s[len(s)-1] == '.' || strings.Contains(s, "..") {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

// deniesHost reports whether host, a name or an IP address as a request
// names it (without port or brackets), is denied.
func (d *denyList) deniesHost(host string) bool {
	if host == "" || len(d.names)+len(d.domains)+len(d.prefixes) == 0 {
		return false
	}
	// An IP address ends in a digit (v4) or holds a colon (v6); a name
	// is spared ParseAddr's error.
	if last := host[len(host)-1]; '0' <= last && last <= '9' || strings.Contains(host, ":") {
		if addr, err := netip.ParseAddr(host); err == nil {
			return d.deniesAddr(addr)
		}
	}
	host = normalHost(host)
	if _, ok := d.names[host]; ok {
		return true
	}
	for s := host; s != ""; {
		if _, ok := d.domains[s]; ok {
			return true
		}
		_, s, _ = strings.Cut(s, ".")
	}
	return false
}

// deniesAddr reports whether addr lies in a denied prefix. The
// unspecified address (0.0.0.0, ::) is taken as loopback, which a
// connection to it reaches on Linux.
func (d *denyList) deniesAddr(addr netip.Addr) bool {
	addr = addr.Unmap().WithZone("")
	if addr.IsUnspecified() {
		return d.deniesAddr(netip.AddrFrom4([4]byte{127, 0, 0, 1})) || d.deniesAddr(netip.IPv6Loopback())
	}
	for _, p := range d.prefixes {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}

// control is a net.Dialer's ControlContext that refuses to connect to a
// denied address: it checks the address a name resolved to, which a
// check of the name alone cannot (a name of one's own that resolves to
// 127.0.0.1, say). It is nil when no prefix is denied.
func (d *denyList) control() func(ctx context.Context, network, address string, c syscall.RawConn) error {
	if len(d.prefixes) == 0 {
		return nil
	}
	return func(_ context.Context, _, address string, _ syscall.RawConn) error {
		ap, err := netip.ParseAddrPort(address)
		if err == nil && d.deniesAddr(ap.Addr()) {
			return errDeniedAddress
		}
		return nil
	}
}

// checkDestinationKey marks a request's context as one whose dials
// control checks; the upstream Transport is shared with the reverse path,
// whose destinations DenyHosts does not restrict.
type checkDestinationKey struct{}

// controlMarked is control for dials whose context carries
// checkDestinationKey, and lets the others through. It is nil when no
// prefix is denied.
func (d *denyList) controlMarked() func(ctx context.Context, network, address string, c syscall.RawConn) error {
	check := d.control()
	if check == nil {
		return nil
	}
	return func(ctx context.Context, network, address string, c syscall.RawConn) error {
		if ctx.Value(checkDestinationKey{}) == nil {
			return nil
		}
		return check(ctx, network, address, c)
	}
}

// checkDestination returns ctx marked for controlMarked, or ctx itself
// when there is nothing to check at dial time.
func (d *denyList) checkDestination(ctx context.Context) context.Context {
	if len(d.prefixes) == 0 {
		return ctx
	}
	return context.WithValue(ctx, checkDestinationKey{}, true)
}

// refuseDestination answers, and counts, a request for a destination
// DenyHosts names.
func (p *Proxy) refuseDestination(w http.ResponseWriter) {
	p.stats.refused(refusedHost)
	http.Error(w, "this proxy does not go to that destination", http.StatusForbidden)
}
