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
	out := w.client.out
	w.client.queued(out.end(append(appendAnswer(out.begin(), fr, w.seq, w.quoted), '\n')))
	code := ""
	if fr.typ == TypeError {
		code = decodeText(fr.f[wire.KeyCode])
	}
	w.answered(e, code, fr)
}

// fail queues an error message of the proxy's own; e is the server that had
// the message, or nil when none did.
func (w waiter) fail(e *entry, code, text string) {
	w.client.send(newError(proxyID, w.destid, code, text), w.seq, w.quoted)
	w.answered(e, code, nil)
}

// answered is the one place that sees the outcome of every data message the
// proxy forwarded or refused: the server that had it (nil when none did),
// its policy, and the code of the error that answered it ("" for a reply);
// reply is the server's answer when the proxy relayed one. Counters and an
// access log belong here. It lets the client's connection go on.
func (w waiter) answered(e *entry, code string, reply *frame) {
	policy := w.policy
	if e != nil {
		policy = e.policy
	}
	if log := w.client.log; reply != nil && log.Enabled(context.Background(), slog.LevelDebug) {
		log.Debug("Received a reply", "server", e.id, "policy", policy, "client", decodeText(reply.f[wire.KeyDestID]),
			"payload", decodeText(reply.f[wire.KeyPayload]), "code", code)
	}
	w.client.settle(w.seq)
}
