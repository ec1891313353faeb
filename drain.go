package revproxy

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// drainState is what a run of Server.Serve knows for draining: the messages it
// has read and not yet answered, and its acknowledged registrations, each
// with whether the proxy has confirmed the drain.
type drainState struct {
	mu       sync.Mutex
	busy     int
	links    map[*outbox]bool // drained?
	draining time.Time        // when draining began and for how long: its end
	wake     chan struct{}    // signalled on every change
}

func newDrainState() *drainState {
	return &drainState{links: make(map[*outbox]bool), wake: make(chan struct{}, 1)}
}

func (st *drainState) update(f func()) {
	st.mu.Lock()
	f()
	st.mu.Unlock()
	select {
	case st.wake <- struct{}{}:
	default:
	}
}

func (st *drainState) took()     { st.update(func() { st.busy++ }) }
func (st *drainState) answered() { st.update(func() { st.busy-- }) }

// linkUp records an acknowledged registration; one that comes while the
// server drains is asked to drain at once.
func (st *drainState) linkUp(out *outbox) {
	var until time.Time
	st.update(func() {
		st.links[out] = false
		until = st.draining
	})
	if !until.IsZero() {
		askDrain(out, until)
	}
}

func (st *drainState) linkDrained(out *outbox) { st.update(func() { st.links[out] = true }) }
func (st *drainState) linkDown(out *outbox)    { st.update(func() { delete(st.links, out) }) }

// settled reports whether nothing is in hand, every link has drained, and
// every answer queued on a link has been written: an answer another
// goroutine is about to write (the pinger, say, which yields before
// writing) must not be cut off by the close that follows.
func (st *drainState) settled() bool {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.busy > 0 {
		return false
	}
	for out, drained := range st.links {
		if !drained || out.queued.Load() > 0 {
			return false
		}
	}
	return true
}

// drain asks every acknowledged proxy to send nothing new, then waits, up to
// grace, until those proxies have confirmed and every message in hand is
// answered.
func (st *drainState) drain(grace time.Duration, log *slog.Logger) {
	until := time.Now().Add(grace)
	st.mu.Lock()
	st.draining = until
	outs := make([]*outbox, 0, len(st.links))
	for out := range st.links {
		outs = append(outs, out)
	}
	st.mu.Unlock()
	for _, out := range outs {
		askDrain(out, until)
	}
	timer := time.NewTimer(time.Until(until))
	defer timer.Stop()
	for !st.settled() {
		select {
		case <-st.wake:
		case <-timer.C:
			log.Warn("Drain timed out; closing with messages in hand", "grace", grace)
			return
		}
	}
	log.Info("Drained")
}

// drainOnStop waits for stop, then drains (unless grace is not positive)
// and calls kill; it returns early if done ends first.
func (st *drainState) drainOnStop(stop, done context.Context, grace time.Duration, kill func(), log *slog.Logger) {
	select {
	case <-stop.Done():
	case <-done.Done():
		return
	}
	defer kill()
	if grace > 0 {
		st.drain(grace, log)
	}
}

// askDrain sends a drain request, giving up at until: a proxy that does not
// read must not hold the shutdown past its grace period.
func askDrain(out *outbox, until time.Time) {
	out.conn.SetWriteDeadline(until)
	sendMessage(out, &Message{Type: TypeDrain}, false)
}
