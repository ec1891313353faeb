package revproxy

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"

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
	if l.forward(client, mustFrame(t, `{"type":0,"srcid":1,"privPoliId":"P","payload":"a","seq":1,"timeout":60000}`), nil) != forwarded {
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

// heapInUse returns the bytes of live heap after a collection.
func heapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// TestEjectedServersKeepNoBuffers: an ejected server stays in the table
// for ten minutes, up to MaxServers of them; it must not keep its closed
// connection's buffers alive with it (its read buffer, the size of its
// largest answer, and its write queue), which MaxMemory no longer counts.
func TestEjectedServersKeepNoBuffers(t *testing.T) {
	p := &Proxy{}
	addr := startProxyWith(t, p)
	const servers, size = 16, 900 << 10
	answer := strings.Repeat("a", size)
	before := heapInUse()
	for i := range servers {
		id := fmt.Sprint("big", i)
		raw := dialRaw(t, addr)
		fmt.Fprintf(raw, `{"type":1,"id":%q,"privPolyId":%q,"mux":true}`+"\n", id, id)
		r := wire.NewReader(raw, 1<<20)
		if m := readOne(t, raw, r); m.Type != TypeSetup {
			t.Fatalf("registration answered %+v", m)
		}
		client := dialRaw(t, addr)
		fmt.Fprintf(client, `{"type":0,"seq":1,"srcid":"c","privPoliId":%q,"payload":"x"}`+"\n", id)
		m := readOne(t, raw, r)
		fmt.Fprintf(raw, `{"type":2,"seq":%d,"srcid":%q,"destid":"c","payload":%q}`+"\n", m.Seq, id, answer)
		cr := wire.NewReader(client, 1<<20)
		if m := readOne(t, client, cr); m.Type != TypeReply {
			t.Fatalf("answer %.80v", m)
		}
		cr.Release()
		raw.Close()
		client.Close()
		waitFor(t, id+" to be ejected", func() bool { return stateOf(p, id) == "ejected" })
	}
	waitFor(t, "the connections to end", func() bool { return p.Stats().Conns == 0 })
	grown := int64(heapInUse()) - int64(before)
	if grown > servers*size/4 {
		t.Errorf("the heap grew by %d KiB with %d servers ejected after a %d KiB answer each", grown>>10, servers, size>>10)
	}
}

// TestResentMessageKeepsRequestID: with an access log, a message sent again
// after its idempotent server went away carries the request id the proxy
// gave it to the next server, and its access log line has it too.
func TestResentMessageKeepsRequestID(t *testing.T) {
	rec := &recorder{}
	p := &Proxy{AccessLog: slog.New(rec)}
	addr := startProxyWith(t, p)
	register := func(id string) (net.Conn, *wire.Reader) {
		raw := dialRaw(t, addr)
		fmt.Fprintf(raw, `{"type":1,"id":%q,"privPolyId":"P","mux":true,"idempotent":true}`+"\n", id)
		r := wire.NewReader(raw, 1<<16)
		if m := readOne(t, raw, r); m.Type != TypeSetup {
			t.Fatalf("registration answered %+v", m)
		}
		return raw, r
	}
	a, ar := register("a")
	b, br := register("b")
	client := dialRaw(t, addr)
	fmt.Fprint(client, `{"type":0,"seq":1,"srcid":"c","privPoliId":"P","payload":"x"}`+"\n")
	first := readOne(t, a, ar)
	if first.RequestID == "" {
		t.Fatal("the message came without a request id")
	}
	a.Close() // a goes away with the message: it goes to b
	again := readOne(t, b, br)
	if again.RequestID != first.RequestID {
		t.Errorf("the message sent again has request id %q; it had %q", again.RequestID, first.RequestID)
	}
	fmt.Fprintf(b, `{"type":2,"seq":%d,"srcid":"b","destid":"c","payload":"y"}`+"\n", again.Seq)
	if m := readOne(t, client, wire.NewReader(client, 1<<16)); m.Type != TypeReply {
		t.Fatalf("answer %+v", m)
	}
	var logged []string
	for _, l := range rec.with("message") {
		logged = append(logged, l.Attrs["reqid"])
	}
	if len(logged) != 1 || logged[0] != first.RequestID {
		t.Errorf("access log request ids %q; want [%q]", logged, first.RequestID)
	}
}

// BenchmarkStatsTenThousandServers: a snapshot of a table of 10,000
// servers, which holds the table's lock (and so every message's choice of
// server) only while it lists them.
func BenchmarkStatsTenThousandServers(b *testing.B) {
	p := &Proxy{}
	for i := range 10000 {
		e := &entry{id: fmt.Sprint("s", i), policy: fmt.Sprint("P", i%10), addr: "127.0.0.1:1"}
		if err := p.table.add(e, 10000); err != nil {
			b.Fatal(err)
		}
		e.counts.latency.observe(time.Duration(i) * time.Microsecond)
		e.counts.counts.count(codeTimeout)
	}
	for b.Loop() {
		p.Stats()
	}
}

// TestDrainingServerReplacedFromNewConnection: a server that drains, with
// a message in hand, may register again from a new connection; the old
// link still relays its answer, and its closing takes nothing away from
// the new registration.
func TestDrainingServerReplacedFromNewConnection(t *testing.T) {
	p := &Proxy{}
	addr := startProxyWith(t, p)
	register := func() (net.Conn, *wire.Reader) {
		raw := dialRaw(t, addr)
		fmt.Fprint(raw, `{"type":1,"id":"a","privPolyId":"P","mux":true}`+"\n")
		r := wire.NewReader(raw, 1<<16)
		if m := readOne(t, raw, r); m.Type != TypeSetup {
			t.Fatalf("registration answered %+v", m)
		}
		return raw, r
	}
	old, oldr := register()
	client := dialRaw(t, addr)
	cr := wire.NewReader(client, 1<<16)
	fmt.Fprint(client, `{"type":0,"seq":1,"srcid":"c","privPoliId":"P","payload":"one"}`+"\n")
	first := readOne(t, old, oldr)
	fmt.Fprint(old, `{"type":5}`+"\n")
	if m := readOne(t, old, oldr); m.Type != TypeDrain {
		t.Fatalf("drain answered %+v", m)
	}
	if got := stateOf(p, "a"); got != "draining" {
		t.Fatalf("state %q; want draining", got)
	}
	conns := p.Stats().Conns
	renewed, rr := register()
	fmt.Fprint(client, `{"type":0,"seq":2,"srcid":"c","privPoliId":"P","payload":"two"}`+"\n")
	second := readOne(t, renewed, rr)
	fmt.Fprintf(old, `{"type":2,"seq":%d,"srcid":"a","destid":"c","payload":"1"}`+"\n", first.Seq)
	if m := readOne(t, client, cr); m.Type != TypeReply || m.Seq != 1 {
		t.Fatalf("answer %+v; want the reply to seq 1", m)
	}
	old.Close()
	waitFor(t, "the old link to end", func() bool { return p.Stats().Conns == conns })
	if got := stateOf(p, "a"); got != "up" {
		t.Errorf("after the old link closed, state %q; want up", got)
	}
	fmt.Fprintf(renewed, `{"type":2,"seq":%d,"srcid":"a","destid":"c","payload":"2"}`+"\n", second.Seq)
	if m := readOne(t, client, cr); m.Type != TypeReply || m.Seq != 2 {
		t.Fatalf("answer %+v; want the reply to seq 2", m)
	}
	if got := p.Stats().Totals; got.Messages != 2 || got.Answered != 2 || len(got.Errors) != 0 {
		t.Errorf("totals %+v", got)
	}
}
