package revproxy

import (
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// requestIDs makes the request ids a proxy gives messages that come
// without: a random prefix for the proxy, and a count.
type requestIDs struct {
	once   sync.Once
	prefix string
	n      atomic.Uint64
}

// newRequestID appends a new request id, as a JSON string, to dst.
func (p *Proxy) newRequestID(dst []byte) []byte {
	ids := &p.reqids
	ids.once.Do(func() {
		var b [4]byte
		rand.Read(b[:])
		ids.prefix = hex.EncodeToString(b[:])
	})
	dst = append(dst, '"')
	dst = append(dst, ids.prefix...)
	dst = append(dst, '-')
	dst = strconv.AppendUint(dst, ids.n.Add(1), 10)
	return append(dst, '"')
}

// logAccess writes the access log's line for a message answered: by the
// reply or error the server e sent (reply), or by the proxy's own error
// code.
func (p *Proxy) logAccess(log *slog.Logger, w waiter, e *entry, policy, code string, reply *frame) {
	server, latency := "", time.Duration(0)
	if e != nil {
		server = e.id
	}
	if w.start != 0 {
		latency = time.Duration(now() - w.start)
	}
	outcome := "reply"
	switch {
	case code == "":
	case reply != nil:
		outcome = "server error"
	default:
		outcome = "proxy error"
	}
	log.Info("message", "reqid", w.reqid, "client", w.destid, "policy", policy, "server", server,
		"outcome", outcome, "code", code, "latency", latency)
}
