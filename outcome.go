package revproxy

import (
	"context"
	"log/slog"

	"github.com/seed-c202d8a5/revproxy/internal/wire"
)

// waiter is whom to answer for a forwarded data message.
type waiter struct {
	client *pconn
	seq    uint64 // the client's tag; 0 when it waits in order
	quoted bool   // the client writes numbers as strings
	destid string // the client's id, for an error message
	policy string // the message's policy, when no server had it
}

// waiterFor returns whom to answer for the data message fr that pc read.
func (pc *pconn) waiterFor(fr *frame) waiter {
	return waiter{client: pc, seq: fr.seq, quoted: fr.quoted, destid: decodeText(fr.f[wire.KeySrcID])}
}

// relay queues the answer fr that server e sent.
func (w waiter) relay(e *entry, fr *frame) {
	code := ""
	if fr.typ == TypeError {
		code = decodeText(fr.f[wire.KeyCode])
	}
	w.answered(e, code, fr)
	out := w.client.out
	w.client.queued(out.end(append(appendAnswer(out.begin(), fr, w.seq, w.quoted), '\n')))
	w.client.settle(w.seq)
}

// fail queues an error message of the proxy's own; e is the server that had
// the message, or nil when none did.
func (w waiter) fail(e *entry, code, text string) {
	w.answered(e, code, nil)
	w.client.send(newError(proxyID, w.destid, code, text), w.seq, w.quoted)
	w.client.settle(w.seq)
}

// answered is the one place that sees the outcome of every data message the
// proxy forwarded or refused, just before its answer is queued: the server
// that had it (nil when none did), its policy, and the code of the error
// that answers it ("" for a reply); reply is the server's answer when the
// proxy relays one. Counters and an access log belong here; what it logs
// comes before the client can have the answer.
func (w waiter) answered(e *entry, code string, reply *frame) {
	policy := w.policy
	if e != nil {
		policy = e.policy
	}
	if log := w.client.log; reply != nil && log.Enabled(context.Background(), slog.LevelDebug) {
		log.Debug("Received a reply", "server", e.id, "policy", policy, "client", decodeText(reply.f[wire.KeyDestID]),
			"payload", decodeText(reply.f[wire.KeyPayload]), "code", code)
	}
}
