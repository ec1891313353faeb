package revproxy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/seed-c202d8a5/revproxy/internal/wire"
)

// record is a log record as a test sees it: its level, message and
// attributes as text.
type record struct {
	Level slog.Level
	Msg   string
	Attrs map[string]string
}

// recorder is a slog handler that keeps every record.
type recorder struct {
	mu      sync.Mutex
	records []record
}

func (r *recorder) Enabled(context.Context, slog.Level) bool { return true }
func (r *recorder) Handle(_ context.Context, rec slog.Record) error {
	attrs := make(map[string]string)
	rec.Attrs(func(a slog.Attr) bool {
		attrs[a.Key] = a.Value.String()
		return true
	})
	r.mu.Lock()
	defer r.mu.Unlock()
	r.records = append(r.records, record{rec.Level, rec.Message, attrs})
	return nil
}
func (r *recorder) WithAttrs([]slog.Attr) slog.Handler { return r }
func (r *recorder) WithGroup(string) slog.Handler      { return r }

// with returns the records whose message is msg.
func (r *recorder) with(msg string) []record {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []record
	for _, rec := range r.records {
		if rec.Msg == msg {
			out = append(out, rec)
		}
	}
	return out
}

// failOn is a handler that fails the payload "fail" and hashes others.
var failOn = HandlerFunc(func(ctx context.Context, m *Message) (string, error) {
	if m.Payload == "fail" {
		return "", errors.New("asked to fail")
	}
	return SHA1Handler.ServeMessage(ctx, m)
})

// TestStatsCounts: after a known mix of messages, the snapshot counts each
// outcome for the proxy and for the server that had it.
func TestStatsCounts(t *testing.T) {
	p := &Proxy{}
	addr := startProxyWith(t, p)
	startServer(t, p, &Server{ID: "p1", Policy: "P", ProxyAddr: addr})
	startServer(t, p, &Server{ID: "p2", Policy: "P", ProxyAddr: addr})
	startServers(t, p, addr, "Q", failOn, "q1")
	c := newClient(t, addr, "c")
	ctx := testContext(t)
	for i := range 10 {
		if _, err := c.Send(ctx, "P", fmt.Sprint(i)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.Send(ctx, "Q", "ok"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Send(ctx, "Q", "fail"); !errors.Is(err, ErrHandler) {
		t.Fatalf("Send = %v; want ErrHandler", err)
	}
	for range 3 {
		if _, err := c.Send(ctx, "PP_9", "x"); !errors.Is(err, ErrNoServer) {
			t.Fatalf("Send = %v; want ErrNoServer", err)
		}
	}
	s := p.Stats()
	if s.Started.IsZero() || s.Uptime <= 0 || s.Conns != 4 || s.MemoryMax != defaultMaxMemory {
		t.Errorf("proxy-wide: started %v, uptime %v, %d conns, memory max %d", s.Started, s.Uptime, s.Conns, s.MemoryMax)
	}
	wantTotals := Counts{Messages: 15, Answered: 11, Errors: map[string]uint64{codeHandler: 1, codeNoServer: 3}}
	if diff := cmp.Diff(wantTotals, s.Totals); diff != "" {
		t.Errorf("totals (-want +got):\n%s", diff)
	}
	server := func(id, policy string, sent, answered uint64, errs map[string]uint64) ServerStats {
		return ServerStats{ID: id, Policy: policy, Mux: true, Weight: 1, State: Up, Sent: sent, Answered: answered, Errors: errs}
	}
	want := []PolicyStats{
		{Name: "P", Servers: []ServerStats{server("p1", "P", 5, 5, nil), server("p2", "P", 5, 5, nil)}},
		{Name: "Q", Servers: []ServerStats{server("q1", "Q", 2, 1, map[string]uint64{codeHandler: 1})}},
	}
	moving := cmpopts.IgnoreFields(ServerStats{}, "Addr", "Since", "LastSeen", "Latency")
	if diff := cmp.Diff(want, s.Policies, moving); diff != "" {
		t.Errorf("policies (-want +got):\n%s", diff)
	}
	for _, ps := range s.Policies {
		for _, ss := range ps.Servers {
			l := ss.Latency
			if l.Count != ss.Answered+ss.Errors[codeHandler] || l.Buckets[len(l.Buckets)-1] != l.Count {
				t.Errorf("%s: latency counted %d (last bucket %d) for %d answers", ss.ID, l.Count, l.Buckets[len(l.Buckets)-1], ss.Answered)
			}
			if l.Count > 0 && (l.P50 <= 0 || l.P50 > l.P99 || l.Sum <= 0) {
				t.Errorf("%s: latency %+v", ss.ID, l)
			}
			if time.Since(ss.LastSeen) > time.Minute || time.Since(ss.Since) > time.Minute {
				t.Errorf("%s: last seen %v, since %v", ss.ID, ss.LastSeen, ss.Since)
			}
		}
	}
	var codes []string
	for _, e := range s.RecentErrors {
		codes = append(codes, e.Code+" "+e.Policy+" "+e.Server)
	}
	wantCodes := []string{"no_server PP_9 ", "no_server PP_9 ", "no_server PP_9 ", "handler Q q1"}
	if diff := cmp.Diff(wantCodes, codes); diff != "" {
		t.Errorf("recent errors, newest first (-want +got):\n%s", diff)
	}
	// A snapshot is the caller's: changing it changes nothing in the next.
	s.Totals.Errors[codeHandler] = 99
	s.Policies[0].Servers[0].ID = "changed"
	if again := p.Stats(); again.Totals.Errors[codeHandler] != 1 || again.Policies[0].Servers[0].ID != "p1" {
		t.Error("a change to a snapshot showed in the next")
	}
}

// TestStatsStates: a server that drains shows as draining while it still
// has a message, and leaves once it has answered; one whose connection
// fails shows as ejected, and takes its place again when it comes back.
func TestStatsStates(t *testing.T) {
	p := &Proxy{}
	addr := startProxyWith(t, p)
	g := newGate()
	ctx, stop := context.WithCancel(context.Background())
	s := &Server{ID: "d", Policy: "P", ProxyAddr: addr, Handler: g, DrainTimeout: time.Minute}
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, nil) }()
	waitFor(t, "d", func() bool { return len(p.Servers("P")) == 1 })
	startServer(t, p, &Server{ID: "up", Policy: "P", ProxyAddr: addr})
	c := newClient(t, addr, "c")
	answered := make(chan error, 1)
	go func() {
		_, err := c.Send(testContext(t), "P", "hold")
		answered <- err
	}()
	waitFor(t, "the message to reach d", func() bool { return linksInFlight(p, "P") == 1 })
	stop() // d drains, with the message in hand
	waitFor(t, "d to drain", func() bool { return stateOf(p, "d") == "draining" })
	if got := p.Servers("P"); len(got) != 1 || got[0].ID != "up" {
		t.Errorf("Servers lists %v; want only the server that is up", got)
	}
	close(g.open)
	if err := <-answered; err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	waitFor(t, "d to leave", func() bool { return stateOf(p, "d") == "" })

	// A server whose link fails without draining is ejected.
	raw := dialRaw(t, addr)
	fmt.Fprint(raw, `{"type":1,"id":"x","privPolyId":"P","mux":true}`+"\n")
	r := wire.NewReader(raw, 1<<16)
	if m := readOne(t, raw, r); m.Type != TypeSetup {
		t.Fatalf("registration answered %+v", m)
	}
	raw.Close()
	waitFor(t, "x to be ejected", func() bool { return stateOf(p, "x") == "ejected" })
	if got := ids(p.Servers("P")); !cmp.Equal(got, []string{"up"}) {
		t.Errorf("Servers lists %v", got)
	}
	raw2 := dialRaw(t, addr)
	fmt.Fprint(raw2, `{"type":1,"id":"x","privPolyId":"P","mux":true}`+"\n")
	readOne(t, raw2, wire.NewReader(raw2, 1<<16))
	if got := ids(p.Servers("P")); !cmp.Equal(got, []string{"up", "x"}) {
		t.Errorf("Servers lists %v after x came back", got)
	}
}

// stateOf returns the state of server id in p's snapshot, or "" if it is
// not there.
func stateOf(p *Proxy, id string) string {
	for _, ps := range p.Stats().Policies {
		for _, s := range ps.Servers {
			if s.ID == id {
				return s.State.String()
			}
		}
	}
	return ""
}

// TestLegacyServerEjected: a legacy server the proxy cannot reach is
// ejected, shown so, and logged once with its id, policy and address.
func TestLegacyServerEjected(t *testing.T) {
	rec := &recorder{}
	p := &Proxy{Logger: slog.New(rec)}
	addr := startProxyWith(t, p)
	ln := listen(t)
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close() // nobody listens there now
	m := rawAnswerOrClose(t, addr, fmt.Sprintf(`{"type":1,"id":"gone","privPolyId":"P","listenport":%d}`, port))
	if m.Type == TypeError {
		t.Fatalf("registration refused: %+v", m)
	}
	waitFor(t, "registration", func() bool { return len(p.Servers("P")) == 1 })
	c := newClient(t, addr, "c")
	if _, err := c.Send(testContext(t), "P", "x"); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Send = %v; want ErrUnavailable", err)
	}
	if got := stateOf(p, "gone"); got != "ejected" {
		t.Errorf("state %q; want ejected", got)
	}
	ej := rec.with("Server ejected")
	if len(ej) != 1 || ej[0].Attrs["server"] != "gone" || ej[0].Attrs["policy"] != "P" ||
		ej[0].Attrs["addr"] != fmt.Sprint("127.0.0.1:", port) || ej[0].Attrs["err"] == "" {
		t.Errorf("ejection logged as %+v", ej)
	}
}

// TestErrorsLoggedOncePerCause: a burst of error messages with one cause
// makes one log line, and each other cause one more; all are counted.
func TestErrorsLoggedOncePerCause(t *testing.T) {
	rec := &recorder{}
	p := &Proxy{Logger: slog.New(rec)}
	addr := startProxyWith(t, p)
	c := newClient(t, addr, "c")
	ctx := testContext(t)
	for range 50 {
		c.Send(ctx, "PP_9", "x")
	}
	c.Send(ctx, "PP_8", "x")
	got := rec.with("Answered with an error")
	var causes []string
	for _, r := range got {
		causes = append(causes, r.Attrs["code"]+" "+r.Attrs["policy"])
		if r.Level != slog.LevelInfo {
			t.Errorf("logged at %v; want Info", r.Level)
		}
	}
	if diff := cmp.Diff([]string{"no_server PP_9", "no_server PP_8"}, causes); diff != "" {
		t.Errorf("causes logged (-want +got):\n%s", diff)
	}
	if n := p.Stats().Totals.Errors[codeNoServer]; n != 51 {
		t.Errorf("%d no_server counted; want 51", n)
	}
}

// TestOnceAgainAfterAWhile: a cause is logged again once logEvery has
// passed, saying how often it happened unlogged.
func TestOnceAgainAfterAWhile(t *testing.T) {
	var l errorLog
	c := cause{what: "x"}
	t0 := time.Now()
	var got []string
	for _, at := range []time.Duration{0, time.Second, 2 * time.Second, logEvery + time.Second, logEvery + 2*time.Second} {
		ok, n := l.onceLocked(c, t0.Add(at))
		got = append(got, fmt.Sprint(ok, n))
	}
	if diff := cmp.Diff([]string{"true 0", "false 0", "false 0", "true 2", "false 0"}, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	for i := range maxCauses + 10 {
		l.once(cause{policy: fmt.Sprint(i)})
	}
	if len(l.causes) > maxCauses {
		t.Errorf("%d causes remembered; want at most %d", len(l.causes), maxCauses)
	}
}

// TestServerKilledLogged: a multiplexed server whose connection fails with
// messages in hand is logged once, as ejected, with what it owed; its
// messages get "unavailable".
func TestServerKilledLogged(t *testing.T) {
	rec := &recorder{}
	p := &Proxy{Logger: slog.New(rec)}
	addr := startProxyWith(t, p)
	raw := dialRaw(t, addr)
	fmt.Fprint(raw, `{"type":1,"id":"k","privPolyId":"P","mux":true}`+"\n")
	r := wire.NewReader(raw, 1<<16)
	readOne(t, raw, r)
	c := newClient(t, addr, "c")
	errs := make(chan error, 7)
	for range 7 {
		go func() {
			_, err := c.Send(testContext(t), "P", "x")
			errs <- err
		}()
	}
	for range 7 {
		readOne(t, raw, r) // the server has them all
	}
	raw.Close()
	for range 7 {
		if err := <-errs; !errors.Is(err, ErrUnavailable) {
			t.Errorf("Send = %v; want ErrUnavailable", err)
		}
	}
	ej := rec.with("Server ejected")
	if len(ej) != 1 {
		t.Fatalf("ejection logged %d times: %+v", len(ej), ej)
	}
	a := ej[0].Attrs
	if a["server"] != "k" || a["policy"] != "P" || !strings.HasPrefix(a["addr"], "127.0.0.1:") || a["failed"] != "7" || a["reason"] == "" {
		t.Errorf("ejection logged with %v", a)
	}
	if n := len(rec.with("Answered with an error")); n != 1 {
		t.Errorf("7 errors of one cause logged %d times", n)
	}
}

// TestAccessLog: every message answered makes one access log line whose
// request id the server saw too; a request id the client sent is kept.
func TestAccessLog(t *testing.T) {
	rec := &recorder{}
	p := &Proxy{AccessLog: slog.New(rec)}
	addr := startProxyWith(t, p)
	var mu sync.Mutex
	var seen []string
	h := HandlerFunc(func(ctx context.Context, m *Message) (string, error) {
		mu.Lock()
		seen = append(seen, m.RequestID)
		mu.Unlock()
		return SHA1Handler.ServeMessage(ctx, m)
	})
	startServers(t, p, addr, "P", h, "s")
	c := newClient(t, addr, "c")
	for i := range 3 {
		if _, err := c.Send(testContext(t), "P", fmt.Sprint(i)); err != nil {
			t.Fatal(err)
		}
	}
	raw := dialRaw(t, addr)
	fmt.Fprint(raw, `{"type":0,"seq":1,"srcid":"r","privPoliId":"P","payload":"x","reqid":"trace-1"}`+"\n")
	if m := readOne(t, raw, wire.NewReader(raw, 1<<16)); m.Type != TypeReply || m.RequestID != "trace-1" {
		t.Errorf("answer %+v; want a reply with the request id", m)
	}
	lines := rec.with("message")
	var logged []string
	for _, l := range lines {
		logged = append(logged, l.Attrs["reqid"])
		if l.Attrs["server"] != "s" || l.Attrs["policy"] != "P" || l.Attrs["outcome"] != "reply" || l.Attrs["latency"] == "0s" {
			t.Errorf("access log line %v", l.Attrs)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if diff := cmp.Diff(seen, logged); diff != "" {
		t.Errorf("request ids the server saw (-) and the access log wrote (+):\n%s", diff)
	}
	if len(seen) != 4 || seen[3] != "trace-1" || seen[0] == seen[1] || seen[0] == "" {
		t.Errorf("request ids %q", seen)
	}
}
