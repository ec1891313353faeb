package revproxy

import (
	"context"
	"log/slog"
	"time"

	"github.com/seed-c202d8a5/revproxy/internal/wire"
)

// waiter is whom to answer for a forwarded data message.
type waiter struct {
	client *pconn
	seq    uint64 // the client's tag; 0 when it waits in order
	quoted bool   // the client writes numbers as strings
	destid string // the client's id, for an error message
	policy string // the message's policy, when no server had it
	start  int64  // when it was sent to a server, as now gives it; 0 if it was not
	reqid  string // the message's request id, kept for the access log only
}

// waiterFor returns whom to answer for the data message fr that pc read.
func (pc *pconn) waiterFor(fr *frame) waiter {
	w := waiter{client: pc, seq: fr.seq, quoted: fr.quoted, destid: decodeText(fr.f[wire.KeySrcID])}
	if pc.p.AccessLog != nil {
		w.reqid = decodeText(fr.f[wire.KeyReqID])
	}
	return w
}

// relay queues the answer fr that server e sent.
func (w waiter) relay(e *entry, fr *frame) { w.relayLater(e, fr, nil) }

// relayLater is relay for a server link's reader: the answer is left for
// fl's flush, so that a client's answers that arrive together are written
// together.
func (w waiter) relayLater(e *entry, fr *frame, fl *later) {
	code, text := "", ""
	if fr.typ == TypeError {
		code, text = decodeText(fr.f[wire.KeyCode]), decodeText(fr.f[wire.KeyPayload])
		if code == "" {
			code = "other"
		}
	}
	w.answered(e, code, text, fr)
	out := w.client.out
	w.client.queued(out.endLater(append(appendAnswer(out.begin(), fr, w.seq, w.quoted), '\n'), fl))
	w.client.settle(w.seq)
}

// fail queues an error message of the proxy's own; e is the server that had
// the message, or nil when none did.
func (w waiter) fail(e *entry, code, text string) {
	w.answered(e, code, text, nil)
	w.client.send(newError(proxyID, w.destid, code, text), w.seq, w.quoted)
	w.client.settle(w.seq)
}

// refuseUnsent queues an error message of the proxy's own for a message of
// policy that it did not send to any server: no server is charged with it.
func (w waiter) refuseUnsent(policy, code, text string) {
	w.policy = policy
	w.fail(nil, code, text)
}

// answered is the one place that sees the outcome of every data message the
// proxy forwarded or refused, just before its answer is queued: the server
// that had it (nil when none did), its policy, and the code and text of the
// error that answers it (code "" for a reply); reply is the server's answer
// when the proxy relays one. It counts the outcome for the server and the
// proxy, without a lock, and logs it; what it logs comes before the client
// can have the answer.
func (w waiter) answered(e *entry, code, text string, reply *frame) {
	pc := w.client
	pc.p.totalsFor(pc).count(code)
	policy := w.policy
	if e != nil {
		policy = e.policy
		e.counts.counts.count(code)
		if w.start != 0 { // it was sent: a timeout or a loss takes time too
			e.counts.latency.observe(time.Duration(now() - w.start))
		}
	}
	log := pc.log
	if code != "" {
		server := ""
		if e != nil {
			server = e.id
		}
		pc.p.errs.answered(log, ErrorEvent{Code: code, Policy: policy, Server: server, Text: text})
	}
	if alog := pc.p.AccessLog; alog != nil {
		pc.p.logAccess(alog, w, e, policy, code, reply)
	}
	if reply != nil && log.Enabled(context.Background(), slog.LevelDebug) {
		debugReply(log, e, policy, code, reply)
	}
}

// debugReply logs a server's answer at Debug, apart from answered so that
// the stack of the reader that relays it stays small.
func debugReply(log *slog.Logger, e *entry, policy, code string, reply *frame) {
	log.Debug("Received a reply", "server", e.id, "policy", policy, "client", decodeText(reply.f[wire.KeyDestID]),
		"payload", decodeText(reply.f[wire.KeyPayload]), "code", code)
}
