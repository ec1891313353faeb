package revproxy

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/seed-c202d8a5/revproxy/internal/wire"
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

// errLogBytes is how many bytes of text p's error log holds.
func errLogBytes(p *Proxy) int {
	l := &p.errs
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for c := range l.causes {
		n += len(c.what) + len(c.policy) + len(c.server)
	}
	for _, ev := range l.last {
		n += len(ev.Code) + len(ev.Policy) + len(ev.Server) + len(ev.Text)
	}
	return n
}

// TestErrorLogBoundedWithLongPolicies: a client that names policies no
// server serves, each long and each different, must not make the proxy
// keep what it sent: the error log remembers causes and recent errors by
// policy, outside MaxMemory (at the default limits, 1023 causes of 1 MiB
// each would be a gigabyte).
func TestErrorLogBoundedWithLongPolicies(t *testing.T) {
	p := &Proxy{}
	addr := startProxyWith(t, p)
	raw := dialRaw(t, addr)
	r := wire.NewReader(raw, 1<<20)
	const n, size = 40, 64 << 10
	for i := range n {
		policy := fmt.Sprintf("%06d", i) + strings.Repeat("p", size)
		fmt.Fprintf(raw, `{"type":0,"seq":%d,"srcid":"c","privPoliId":"%s","payload":"x"}`+"\n", i+1, policy)
		if m := readOne(t, raw, r); m.Code != codeNoServer {
			t.Fatalf("answer %.80v; want no_server", m)
		}
	}
	if got := errLogBytes(p); got > 256<<10 {
		t.Errorf("the error log holds %d KiB of text after %d messages of %d KiB policies", got>>10, n, size>>10)
	}
}

// TestErrorLogNotFloodedByMadeUpPolicies: a client that names a new policy
// in every message must not get a log line for each: past maxCauses causes
// at once, the rest share one per code.
func TestErrorLogNotFloodedByMadeUpPolicies(t *testing.T) {
	rec := &recorder{}
	p := &Proxy{Logger: slog.New(rec)}
	addr := startProxyWith(t, p)
	raw := dialRaw(t, addr)
	r := wire.NewReader(raw, 1<<20)
	const n = 3 * maxCauses
	go func() {
		for i := range n {
			fmt.Fprintf(raw, `{"type":0,"seq":%d,"srcid":"c","privPoliId":"made-up-%d","payload":"x"}`+"\n", i+1, i)
		}
	}()
	for range n {
		if m := readOne(t, raw, r); m.Code != codeNoServer {
			t.Fatalf("answer %+v; want no_server", m)
		}
	}
	if got := len(rec.with("Answered with an error")); got > maxCauses+1 {
		t.Errorf("%d error messages of made-up policies logged %d times; want at most %d", n, got, maxCauses+1)
	}
	if got := p.Stats().Totals.Errors[codeNoServer]; got != n {
		t.Errorf("%d no_server counted; want %d", got, n)
	}
}

// TestClip: a name cut for the error log is at most n bytes, whole runes,
// and marked as cut.
func TestClip(t *testing.T) {
	for _, tc := range []struct {
		s    string
		n    int
		want string
	}{
		{"short", 8, "short"},
		{"exactly8", 8, "exactly8"},
		{"abcdefghij", 8, "abcde…"},
		{"ééééé", 8, "éé…"}, // 10 bytes; é is 2
	} {
		got := clip(tc.s, tc.n)
		if got != tc.want || len(got) > tc.n {
			t.Errorf("clip(%q, %d) = %q; want %q", tc.s, tc.n, got, tc.want)
		}
	}
}
