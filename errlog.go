package revproxy

import (
	"log/slog"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// errorLog keeps the last error messages a proxy sent and logs each cause
// of them once in a while, not once per message: a server that fails under
// load must not flood the log. It is used on error paths only.
type errorLog struct {
	mu     sync.Mutex
	last   [recentErrors]ErrorEvent // a ring, last[n%recentErrors] the next to write
	n      int
	causes map[cause]*causeLog
	forgot time.Time // when forgetLocked last looked
}

// recentErrors is how many error messages Stats shows.
const recentErrors = 32

// cause is what an error is logged once for: the kind of failure, and the
// policy and server it came from.
type cause struct {
	what   string // an error code, or another failure's name
	policy string
	server string
}

// causeLog is when a cause was last logged, and how often it has happened
// since.
type causeLog struct {
	at       time.Time
	repeated int
}

// logEvery is how often one cause is logged at most.
const logEvery = time.Minute

// maxCauses bounds the causes remembered: policies named by clients are
// many if a client makes them up. Near it, causes not logged within
// logEvery are forgotten, and if that is not enough, the new ones share a
// cause per code (see many).
const maxCauses = 1024

// maxName bounds the policy and server names the log keeps and writes, and
// maxText an error's text: a client names policies, and a server writes
// its errors' text, as long as a message may be.
const (
	maxName = 128
	maxText = 512
)

// many stands for the policy and server of causes beyond maxCauses.
const many = "(many)"

// clip returns s cut to at most n bytes, at a rune's start, and copied
// when cut, so that it does not keep the rest of s alive.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	n -= len("…")
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return strings.Clone(s[:n]) + "…"
}

// once reports whether c should be logged now: the first time, and the
// first time again once logEvery has passed.
func (l *errorLog) once(c cause) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	ok, _ := l.onceLocked(c, time.Now())
	return ok
}

// onceLocked reports whether c should be logged at now, and how many times
// it happened unlogged before.
func (l *errorLog) onceLocked(c cause, now time.Time) (bool, int) {
	_, ok, n := l.logLocked(c, now)
	return ok, n
}

// logLocked is onceLocked that also returns the cause c was counted as:
// c with its names clipped, or the cause it shares with others when too
// many are remembered.
func (l *errorLog) logLocked(c cause, now time.Time) (cause, bool, int) {
	if l.causes == nil {
		l.causes = make(map[cause]*causeLog)
	}
	c = cause{what: clip(c.what, maxName), policy: clip(c.policy, maxName), server: clip(c.server, maxName)}
	cl := l.causes[c]
	if full := maxCauses - len(codes); cl == nil && len(l.causes) >= full {
		l.forgetLocked(now)
		if len(l.causes) >= full { // the rest of the room is for these
			c = cause{what: codes[codeIndex(c.what)], policy: many, server: many}
			cl = l.causes[c]
		}
	}
	if cl == nil {
		l.causes[c] = &causeLog{at: now}
		return c, true, 0
	}
	if now.Sub(cl.at) < logEvery {
		cl.repeated++
		return c, false, 0
	}
	n := cl.repeated
	cl.at, cl.repeated = now, 0
	return c, true, n
}

// forgetLocked forgets the causes last logged logEvery ago or more, as a
// full map makes room: logged again the next time, they lose only the
// count of their repeats since. It does so once a second at most, so that
// a flood of new causes does not scan the map for each.
func (l *errorLog) forgetLocked(now time.Time) {
	if now.Sub(l.forgot) < time.Second {
		return
	}
	l.forgot = now
	for c, cl := range l.causes {
		if now.Sub(cl.at) >= logEvery {
			delete(l.causes, c)
		}
	}
}

// answered records an error message sent to a client and logs its cause at
// Info, once in a while.
func (l *errorLog) answered(log *slog.Logger, ev ErrorEvent) {
	ev.Time = time.Now()
	ev.Code, ev.Policy, ev.Server = clip(ev.Code, maxName), clip(ev.Policy, maxName), clip(ev.Server, maxName)
	ev.Text = clip(ev.Text, maxText)
	l.mu.Lock()
	l.last[l.n%recentErrors] = ev
	l.n++
	c, ok, repeated := l.logLocked(cause{what: ev.Code, policy: ev.Policy, server: ev.Server}, ev.Time)
	l.mu.Unlock()
	if ok {
		logAnswered(log, &ev, c, repeated)
	}
}

// logAnswered logs an error message's cause. It is apart from answered so
// that the stack of a connection's reader, which answers, stays small.
func logAnswered(log *slog.Logger, ev *ErrorEvent, c cause, repeated int) {
	log.Info("Answered with an error", "code", ev.Code, "policy", c.policy, "server", c.server,
		"err", ev.Text, "repeated", repeated)
}

// recent returns the last error messages, the newest first.
func (l *errorLog) recent() []ErrorEvent {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := min(l.n, recentErrors)
	events := make([]ErrorEvent, n)
	for i := range n {
		events[i] = l.last[(l.n-1-i)%recentErrors]
	}
	return events
}
