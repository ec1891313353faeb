package revproxy

import (
	"context"
	"testing"
)

// Tests for faults found in the adversarial review of the operations core
// (states, stats, balancers, request ids, error log).

// TestTimerFiringAsLinkCloses: a message's timer that fires as its link
// closes has its callback wait for the link's lock, and run after close.
// It must find nothing to expire: a panic in a timer's goroutine ends the
// process.
func TestTimerFiringAsLinkCloses(t *testing.T) {
	l, client, _ := newTestLink(t)
	client.owed.Add(1)
	if l.forward(client, mustFrame(t, `{"type":0,"srcid":1,"privPoliId":"P","payload":"a","seq":1,"timeout":60000}`)) != forwarded {
		t.Fatal("not forwarded")
	}
	l.close(context.Background(), &Proxy{}, nil)
	defer func() {
		if v := recover(); v != nil {
			l.mu.Unlock() // it panicked holding it
			t.Errorf("the timer's callback after close panicked: %v", v)
		}
	}()
	l.expire(0) // the callback, let in once close released the lock
}

