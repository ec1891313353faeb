package revproxy

import (
	"log/slog"
	"sync"
	"time"
)

// errorLog keeps the last error messages a proxy sent and logs each cause
// of them once in a while, not once per message: a server that fails under
// load must not flood the log. It is used on error paths only.
type errorLog struct {
	mu     sync.Mutex
	last   [recentErrors]ErrorEvent // a ring, last[n%recentErrors] the next to write
	n      int
	causes map[cause]*causeLog
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
// many if a client makes them up.
const maxCauses = 1024

// once reports whether c should be logged now: the first time, and the
// first time again once logEvery has passed.
func (l *errorLog) once(c cause) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	ok, _ := l.onceLocked(c, time.Now())
	return ok
}

func (l *errorLog) onceLocked(c cause, now time.Time) (bool, int) {
	if l.causes == nil || len(l.causes) >= maxCauses {
		l.causes = make(map[cause]*causeLog)
	}
	cl := l.causes[c]
	if cl == nil {
		l.causes[c] = &causeLog{at: now}
		return true, 0
	}
	if now.Sub(cl.at) < logEvery {
		cl.repeated++
		return false, 0
	}
	n := cl.repeated
	cl.at, cl.repeated = now, 0
	return true, n
}

// answered records an error message sent to a client and logs its cause at
// Info, once in a while.
func (l *errorLog) answered(log *slog.Logger, ev ErrorEvent) {
	ev.Time = time.Now()
	l.mu.Lock()
	l.last[l.n%recentErrors] = ev
	l.n++
	ok, repeated := l.onceLocked(cause{what: ev.Code, policy: ev.Policy, server: ev.Server}, ev.Time)
	l.mu.Unlock()
	if ok {
		log.Info("Answered with an error", "code", ev.Code, "policy", ev.Policy, "server", ev.Server,
			"err", ev.Text, "repeated", repeated)
	}
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
