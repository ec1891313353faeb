package revproxy

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/seed-c202d8a5/revproxy/internal/wire"
)

// Tests of the proxy's bounds against peers that send too much, read too
// little or never answer: each peer's excess is refused to that peer alone.

// gate is a handler that holds messages whose payload is "hold" until
// opened, and echoes every payload; big answers "big" with n bytes.
type gate struct {
	open chan struct{}
	big  int
}

func newGate() *gate { return &gate{open: make(chan struct{})} }

func (g *gate) ServeMessage(ctx context.Context, m *Message) (string, error) {
	switch m.Payload {
	case "hold":
		select {
		case <-g.open:
		case <-ctx.Done():
			return "", ctx.Err()
		}
	case "big":
		return strings.Repeat("b", g.big), nil
	}
	return m.Payload, nil
}

// startServers runs multiplexed servers of policy with these ids and waits
// until the proxy lists them all.
func startServers(t *testing.T, p *Proxy, addr, policy string, h Handler, ids ...string) {
	t.Helper()
	startServersOf(t, p, &Server{ProxyAddr: addr, Policy: policy, Handler: h}, ids...)
}

// startServersOf runs copies of s with these ids.
func startServersOf(t *testing.T, p *Proxy, s0 *Server, ids ...string) {
	t.Helper()
	policy := s0.Policy
	for _, id := range ids {
		s := *s0
		s.ID = id
		runRole(t, func(ctx context.Context) error { return s.Serve(ctx, nil) })
	}
	waitFor(t, "servers to register", func() bool { return len(p.Servers(policy)) == len(ids) })
}

// holdMany sends n "hold" messages from their own goroutines and waits
// until the proxy has them all in flight; the returned function waits for
// their answers and reports any error.
func holdMany(t *testing.T, p *Proxy, c *Client, policy string, n int) func() {
	t.Helper()
	errs := make(chan error, n)
	for range n {
		go func() {
			_, err := c.Send(testContext(t), policy, "hold")
			errs <- err
		}()
	}
	waitFor(t, "messages in flight", func() bool { return linksInFlight(p, policy) == n })
	return func() {
		t.Helper()
		for range n {
			if err := <-errs; err != nil {
				t.Errorf("a message in flight beside the refused one: %v", err)
			}
		}
	}
}

// linksInFlight counts the messages the policy's servers have in hand.
func linksInFlight(p *Proxy, policy string) int {
	p.table.mu.Lock()
	defer p.table.mu.Unlock()
	n := 0
	if rg := p.table.policies[policy]; rg != nil {
		for _, e := range rg.entries {
			n += e.inFlight()
		}
	}
	return n
}

// links returns the policy's links, to check later that they are the same.
func links(p *Proxy, policy string) map[*serverLink]bool {
	p.table.mu.Lock()
	defer p.table.mu.Unlock()
	m := map[*serverLink]bool{}
	if rg := p.table.policies[policy]; rg != nil {
		for _, r := range rg.entries {
			m[r.link] = true
		}
	}
	return m
}

func sameLinks(t *testing.T, p *Proxy, policy string, before map[*serverLink]bool) {
	t.Helper()
	after := links(p, policy)
	if len(after) != len(before) {
		t.Fatalf("%d links of %s after, %d before", len(after), policy, len(before))
	}
	for l := range after {
		if !before[l] {
			t.Fatalf("a link of %s was replaced", policy)
		}
	}
}

// dialRaw connects to addr, closed when the test ends.
func dialRaw(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// readOne reads one message from r within 5 seconds.
func readOne(t *testing.T, c net.Conn, r *wire.Reader) Message {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	var m Message
	if _, err := readMessage(r, &m); err != nil {
		t.Fatalf("no message: %v", err)
	}
	return m
}

// payloadFitting returns a payload that makes the Client's first message of
// policy exactly limit bytes long on the wire, newline included.
func payloadFitting(limit int, id, policy string) string {
	n := limit
	for {
		m := Message{Type: TypeData, SrcID: id, Policy: policy, PayloadSize: n, Payload: strings.Repeat("a", n), Seq: 1}
		over := len(appendMessage(nil, &m, false)) + 1 - limit
		if over == 0 {
			return m.Payload
		}
		n -= over
	}
}

// TestForwardedCopyOverLimitRefusedAlone: a message the proxy accepted but
// whose forwarded copy would be over the limit (its own seq is longer, an
// invalid UTF-8 byte becomes three) is refused to its sender alone; the
// servers' links and the messages in flight on them are untouched.
func TestForwardedCopyOverLimitRefusedAlone(t *testing.T) {
	p, addr := startProxy(t)
	g := newGate()
	startServersOf(t, p, &Server{ProxyAddr: addr, Policy: "P", Handler: g, Idempotent: true}, "1", "2")
	before := links(p, "P")
	wait := holdMany(t, p, newClient(t, addr, "40"), "P", 8)

	// 400 KB of 0xff bytes: 1.2 MB once each is made valid UTF-8.
	raw := dialRaw(t, addr)
	io.WriteString(raw, `{"type":0,"srcid":7,"privPoliId":"P","payload":"`+strings.Repeat("\xff", 400_000)+`","seq":3}`)
	if m := readOne(t, raw, wire.NewReader(raw, 1<<20)); m.Code != codeTooLarge || m.Seq != 3 {
		t.Errorf("invalid UTF-8 payload answered %+v, want a too_large error for seq 3", m)
	}
	// A Client's message of exactly the limit: the proxy's seq is longer.
	c := newClient(t, addr, "50")
	if _, err := c.Send(testContext(t), "P", payloadFitting(1<<20, "50", "P")); !errors.Is(err, ErrTooLarge) {
		t.Errorf("Send at the limit = %v, want ErrTooLarge", err)
	}
	close(g.open)
	wait()
	sameLinks(t, p, "P", before)
	if _, err := c.Send(testContext(t), "P", "after"); err != nil {
		t.Errorf("Send after the refusals: %v", err)
	}
}

// TestServerRefusesOversizedMessageAlone: a server whose limit is below the
// proxy's refuses the one message over it and keeps serving its link.
func TestServerRefusesOversizedMessageAlone(t *testing.T) {
	p, addr := startProxy(t)
	g := newGate()
	s := &Server{ID: "1", Policy: "P", ProxyAddr: addr, Handler: g, MaxMessageSize: 4096}
	runRole(t, func(ctx context.Context) error { return s.Serve(ctx, nil) })
	waitFor(t, "server to register", func() bool { return len(p.Servers("P")) == 1 })
	before := links(p, "P")
	wait := holdMany(t, p, newClient(t, addr, "40"), "P", 4)

	c := newClient(t, addr, "50")
	_, err := c.Send(testContext(t), "P", strings.Repeat("x", 8000))
	var re *RemoteError
	if !errors.Is(err, ErrTooLarge) || !errors.As(err, &re) || re.From != "1" {
		t.Errorf("Send over the server's limit = %v, want ErrTooLarge from server 1", err)
	}
	close(g.open)
	wait()
	sameLinks(t, p, "P", before)
}

// TestOversizedAnswerRefusedAlone: an answer over a limit fails its own Send
// and nothing else, whichever role's limit it is over.
func TestOversizedAnswerRefusedAlone(t *testing.T) {
	for _, tt := range []struct {
		name   string
		proxy  int // MaxMessageSize of each role
		server int
		client int
		from   string // who refuses
	}{
		{"over the proxy's limit", 64 << 10, 0, 0, proxyID},
		{"over the server's limit", 0, 64 << 10, 0, "1"},
		{"over the client's limit", 0, 0, 64 << 10, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p := &Proxy{MaxMessageSize: tt.proxy}
			addr := startProxyWith(t, p)
			g := newGate()
			g.big = 100 << 10
			s := &Server{ID: "1", Policy: "P", ProxyAddr: addr, Handler: g, MaxMessageSize: tt.server}
			runRole(t, func(ctx context.Context) error { return s.Serve(ctx, nil) })
			waitFor(t, "server to register", func() bool { return len(p.Servers("P")) == 1 })
			before := links(p, "P")
			c := &Client{ProxyAddr: addr, ID: "50", MaxMessageSize: tt.client}
			t.Cleanup(func() { c.Close() })
			wait := holdMany(t, p, c, "P", 4)

			_, err := c.Send(testContext(t), "P", "big")
			var re *RemoteError
			switch {
			case !errors.Is(err, ErrTooLarge) || !errors.Is(err, ErrBadMessage):
				t.Errorf("Send of a big answer = %v, want ErrTooLarge", err)
			case tt.from != "" && (!errors.As(err, &re) || re.From != tt.from):
				t.Errorf("Send of a big answer = %v, want it from %s", err, tt.from)
			}
			close(g.open)
			wait()
			sameLinks(t, p, "P", before)
			if _, err := c.Send(testContext(t), "P", "after"); err != nil {
				t.Errorf("Send after the big answer: %v", err)
			}
		})
	}
}

// TestClientThatNeverReadsIsBounded: a client that pipelines messages and
// reads nothing is no longer read once its queue is half full, so TCP
// pushes back; if the answers to messages already forwarded fill its queue
// all the same, it is closed as a slow consumer. What the proxy holds for it
// stays bounded, and is given back when it leaves.
func TestClientThatNeverReadsIsBounded(t *testing.T) {
	for _, tt := range []struct {
		policy   string
		mayClose bool // answers are in flight when reading stops
	}{
		{"NOBODY", false}, // answered at once: no_server
		{"P", true},
	} {
		t.Run(tt.policy, func(t *testing.T) {
			p := &Proxy{MaxMessageSize: 64 << 10, MaxQueued: 256 << 10, WriteTimeout: -1}
			addr := startProxyWith(t, p)
			startServers(t, p, addr, "P", newGate(), "1")
			c := dialRaw(t, addr)
			if err := floodUntilStopped(c, tt.policy); err != nil && !tt.mayClose {
				t.Fatal(err)
			}
			// At most: the client's queue and the server link's, and a
			// reader buffer of each.
			bound := 2*p.maxQueued() + 2*(p.maxMessageSize()+1)
			if used := p.budget().used.Load(); used > int64(bound) {
				t.Errorf("the proxy holds %d bytes for the client, over %d", used, bound)
			}
			c.Close()
			waitFor(t, "the memory to be given back", func() bool { return p.budget().used.Load() == 0 })
		})
	}
}

// TestClientThatNeverReadsIsCutOff: a client that takes nothing for
// WriteTimeout is closed.
func TestClientThatNeverReadsIsCutOff(t *testing.T) {
	p := &Proxy{MaxMessageSize: 64 << 10, MaxQueued: 256 << 10, WriteTimeout: 200 * time.Millisecond}
	addr := startProxyWith(t, p)
	c := dialRaw(t, addr)
	err := floodUntilStopped(c, "NOBODY")
	for end := time.Now().Add(10 * time.Second); err == nil && time.Now().Before(end); {
		c.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
		if _, werr := c.Write([]byte("{}")); !errors.Is(werr, os.ErrDeadlineExceeded) {
			err = werr
		}
	}
	if err == nil {
		t.Fatal("the client was not cut off after WriteTimeout")
	}
	waitFor(t, "the memory to be given back", func() bool { return p.budget().used.Load() == 0 })
}

// floodUntilStopped pipelines data messages for policy on c, reading
// nothing, until a write waits half a second (TCP pushes back) or fails (the
// proxy closed the connection), which it returns. It fails after 256 MB.
func floodUntilStopped(c net.Conn, policy string) error {
	msg := []byte(`{"type":0,"srcid":7,"privPoliId":"` + policy + `","payload":"` + strings.Repeat("p", 2000) + `","seq":1}`)
	for written := 0; written < 256<<20; {
		c.SetWriteDeadline(time.Now().Add(500 * time.Millisecond))
		n, err := c.Write(msg)
		written += n
		switch {
		case errors.Is(err, os.ErrDeadlineExceeded):
			return nil
		case err != nil:
			return fmt.Errorf("after %d bytes: %w", written, err)
		}
	}
	return errors.New("the proxy read 256 MB from a client that reads nothing")
}

// TestTimedOutMessagesDoNotOverfillLink: messages whose timeout frees their
// slot still count, by their bytes, against a server link that is not read:
// once its queue is full the client gets "overloaded".
func TestTimedOutMessagesDoNotOverfillLink(t *testing.T) {
	p := &Proxy{MaxMessageSize: 64 << 10, MaxQueued: 128 << 10}
	addr := startProxyWith(t, p)
	srv := dialRaw(t, addr) // a server that registers, then reads nothing
	io.WriteString(srv, `{"type":1,"id":"S","privPolyId":"P","listenport":0,"hold":true,"mux":true}`)
	waitFor(t, "server to register", func() bool { return len(p.Servers("P")) == 1 })
	c := dialRaw(t, addr)
	const n = 3000
	go func() { // messages that time out after 5 ms at the proxy
		payload := strings.Repeat("x", 60<<10)
		for i := 1; i <= n; i++ {
			if _, err := fmt.Fprintf(c, `{"type":0,"srcid":7,"privPoliId":"P","payload":%q,"timeout":5,"seq":%d}`, payload, i); err != nil {
				return
			}
		}
	}()
	r := wire.NewReader(c, 1<<20)
	for i := 0; ; i++ {
		if i == n {
			t.Fatalf("%d timed-out messages queued for a server that reads nothing, and no overloaded", n)
		}
		if m := readOne(t, c, r); m.Code == codeOverloaded {
			break
		}
	}
	e := p.table.pick([]byte("P"), nil, RoundRobin)
	if q := e.link.pc.out.queued.Load(); q > int64(p.maxQueued()) {
		t.Errorf("%d bytes queued for the server, over MaxQueued %d", q, p.maxQueued())
	}
	if got := e.inFlight(); got >= p.maxPending() {
		t.Errorf("%d messages in flight: MaxPending, not the queue, said overloaded", got)
	}
}

// silentServer listens for a legacy server that accepts connections and
// never answers; it counts what it accepted and registers it as policy.
func silentServer(t *testing.T, addr, id, policy string) *atomic.Int64 {
	t.Helper()
	ln := listen(t)
	var accepted atomic.Int64
	var held sync.WaitGroup
	go func() {
		var conns []net.Conn
		defer func() {
			for _, c := range conns {
				c.Close()
			}
			held.Done()
		}()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			conns = append(conns, c)
		}
	}()
	held.Add(1)
	t.Cleanup(func() { ln.Close(); held.Wait() })
	port := ln.Addr().(*net.TCPAddr).Port
	m := rawAnswerOrClose(t, addr, fmt.Sprintf(`{"type":1,"id":%q,"privPolyId":%q,"listenport":%d}`, id, policy, port))
	if m.Type == TypeError {
		t.Fatalf("registration refused: %+v", m)
	}
	return &accepted
}

// rawAnswerOrClose writes in on a new connection, closes it for writing,
// and returns the first message sent back, or a zero Message if none.
func rawAnswerOrClose(t *testing.T, addr, in string) Message {
	t.Helper()
	c := dialRaw(t, addr)
	io.WriteString(c, in)
	c.(*net.TCPConn).CloseWrite()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	var m Message
	readMessage(wire.NewReader(c, 1<<20), &m)
	return m
}

// TestSilentLegacyServerBounded: a client pipelining messages at a legacy
// server that never answers gets "overloaded" past MaxPending, and the proxy
// holds no more connections to servers than MaxServerConns; the server is
// not blamed, and other policies are served meanwhile.
func TestSilentLegacyServerBounded(t *testing.T) {
	for _, tt := range []struct {
		name          string
		pending, outs int
		servers       int
		want          int // connections the servers get
	}{
		{"MaxPending", 10, 100, 1, 10},
		{"a quarter of MaxServerConns per server", 100, 20, 1, 5},
		{"MaxServerConns", 100, 20, 5, 20},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p := &Proxy{MaxPending: tt.pending, MaxServerConns: tt.outs, ServerTimeout: time.Minute}
			addr := startProxyWith(t, p)
			startServers(t, p, addr, "OK", nil, "ok")
			for i := range tt.servers {
				silentServer(t, addr, fmt.Sprint("L", i), "SILENT")
			}
			count := func() int64 { return int64(linksInFlight(p, "SILENT")) }
			c := dialRaw(t, addr)
			var batch strings.Builder
			const n = 300
			for i := 1; i <= n; i++ {
				fmt.Fprintf(&batch, `{"type":0,"srcid":7,"privPoliId":"SILENT","payload":"x","seq":%d}`, i)
			}
			io.WriteString(c, batch.String())
			r := wire.NewReader(c, 1<<20)
			for range n - tt.want {
				if m := readOne(t, c, r); m.Code != codeOverloaded {
					t.Fatalf("answered %+v, want overloaded", m)
				}
			}
			waitFor(t, "the exchanges", func() bool { return count() == int64(tt.want) })
			if got := p.serverConns.Load(); got != int64(tt.want) {
				t.Errorf("%d connections to servers open, want %d", got, tt.want)
			}
			if len(p.Servers("SILENT")) != tt.servers {
				t.Error("a silent server was dropped")
			}
			if _, err := newClient(t, addr, "50").Send(testContext(t), "OK", "x"); err != nil {
				t.Errorf("another policy meanwhile: %v", err)
			}
		})
	}
}

// TestLocalFault: a dial that fails for want of the proxy's own resources is
// told apart from one the server is to blame for.
func TestLocalFault(t *testing.T) {
	for _, tt := range []struct {
		err  error
		want bool
	}{
		{&net.OpError{Op: "dial", Err: &net.DNSError{}}, false},
		{&net.OpError{Op: "dial", Err: errors.New("connection refused")}, false},
		{&net.OpError{Op: "dial", Err: os.NewSyscallError("socket", syscall.EMFILE)}, true},
	} {
		if got := localFault(tt.err); got != tt.want {
			t.Errorf("localFault(%v) = %v, want %v", tt.err, got, tt.want)
		}
	}
}

// TestRegistrationsBounded: one connection registers one server id; the
// table holds MaxServers, and a full table makes room by dropping the oldest
// registration that no connection holds, never one that is held.
func TestRegistrationsBounded(t *testing.T) {
	p := &Proxy{MaxServers: 3}
	addr := startProxyWith(t, p)
	c := dialRaw(t, addr)
	var batch strings.Builder
	for i := range 1000 {
		fmt.Fprintf(&batch, `{"type":1,"id":"s%d","privPolyId":"P","listenport":9}`, i)
	}
	io.WriteString(c, batch.String())
	if m := readOne(t, c, wire.NewReader(c, 1<<20)); m.Code != codeBadMessage {
		t.Errorf("a second id on one connection answered %+v, want bad_message", m)
	}
	if got := len(p.Servers("P")); got != 1 {
		t.Fatalf("one connection registered %d servers", got)
	}
	for i := range 2 {
		if m := rawAnswerOrClose(t, addr, fmt.Sprintf(`{"type":1,"id":"t%d","privPolyId":"P","listenport":9}`, i)); m.Type == TypeError {
			t.Fatalf("registration %d refused: %+v", i, m)
		}
	}
	waitFor(t, "three servers", func() bool { return len(p.Servers("P")) == 3 })
	ids := func() string {
		var s []string
		for _, info := range p.Servers("P") {
			s = append(s, info.ID)
		}
		return strings.Join(s, " ")
	}
	// Full: a new registration takes the oldest one's place.
	for i := range 3 {
		if m := rawAnswerOrClose(t, addr, fmt.Sprintf(`{"type":1,"id":"u%d","privPolyId":"P","listenport":9}`, i)); m.Type == TypeError {
			t.Fatalf("registration u%d refused: %+v", i, m)
		}
	}
	waitFor(t, "the newest three", func() bool { return ids() == "u0 u1 u2" })
	// Held registrations are never dropped for another.
	startServersOf(t, p, &Server{ProxyAddr: addr, Policy: "H"}, "h0", "h1", "h2")
	if m := rawAnswerOrClose(t, addr, `{"type":1,"id":"v","privPolyId":"P","listenport":9}`); m.Code != codeOverloaded {
		t.Errorf("a registration with every one held answered %+v, want overloaded", m)
	}
	if len(p.Servers("H")) != 3 || len(p.Servers("P")) != 0 {
		t.Errorf("servers %v of H and %q of P, want the three held ones only", p.Servers("H"), ids())
	}
}

// TestMemoryBudget: connections holding unfinished large messages cannot
// push the proxy past MaxMemory: past it they are refused with
// "overloaded", while small messages, and servers' large answers, keep
// flowing.
func TestMemoryBudget(t *testing.T) {
	p := &Proxy{MaxMemory: 4 << 20}
	addr := startProxyWith(t, p)
	startServers(t, p, addr, "P", nil, "1")
	g := newGate()
	g.big = 200 << 10
	startServers(t, p, addr, "BIG", g, "2")
	const conns = 12
	var refused atomic.Int64
	for range conns {
		c := dialRaw(t, addr)
		go func() {
			var m Message
			if _, err := readMessage(wire.NewReader(c, 1<<20), &m); err == nil && m.Code == codeOverloaded {
				refused.Add(1)
			}
		}()
		io.WriteString(c, `{"type":0,"srcid":1,"privPoliId":"P","payload":"`+strings.Repeat("x", 700_000))
	}
	waitFor(t, "connections over the budget to be refused", func() bool {
		if used := p.budget().used.Load(); used > 4<<20 {
			t.Fatalf("%d bytes held, over MaxMemory", used)
		}
		return refused.Load() >= conns-4
	})
	c := newClient(t, addr, "50")
	if _, err := c.Send(testContext(t), "P", "small"); err != nil {
		t.Errorf("a small message with the budget used up: %v", err)
	}
	// Clients cannot take the share kept for reading servers' answers.
	if reply, err := c.Send(testContext(t), "BIG", "big"); err != nil || len(reply.Payload) != g.big {
		t.Errorf("a large answer with the budget used up by clients: %v", err)
	}
}

// TestHalfClosedClientWaitsForSlowHandler: a client that half-closes gets
// the answer to a message in flight however long its handler takes.
func TestHalfClosedClientWaitsForSlowHandler(t *testing.T) {
	t.Parallel()
	p, addr := startProxy(t)
	slow := HandlerFunc(func(ctx context.Context, m *Message) (string, error) {
		select {
		case <-time.After(6 * time.Second): // longer than any grace a proxy might give
		case <-ctx.Done():
		}
		return m.Payload, nil
	})
	startServerNoListener(t, p, &Server{ID: "1", Policy: "P", ProxyAddr: addr, Handler: slow})
	c := dialRaw(t, addr)
	io.WriteString(c, `{"type":0,"srcid":9,"privPoliId":"P","payload":"a","seq":1}`)
	c.(*net.TCPConn).CloseWrite()
	c.SetReadDeadline(time.Now().Add(20 * time.Second))
	var m Message
	if _, err := readMessage(wire.NewReader(c, 1<<20), &m); err != nil || m.Payload != "a" || m.Seq != 1 {
		t.Fatalf("answer %+v, %v; want the reply to seq 1", m, err)
	}
}

// TestTruncatedMessageAnswered: a message cut short by the client's closing
// gets a bad_message error, not silence.
func TestTruncatedMessageAnswered(t *testing.T) {
	_, addr := startProxy(t)
	m := rawAnswerOrClose(t, addr, `{"type":0,"srcid":9,"privPoliId":"P","payload":"ab`)
	if m.Code != codeBadMessage {
		t.Errorf("truncated message answered %+v, want bad_message", m)
	}
}

// TestLegacyTimeoutIsTimeout: a legacy server that does not answer within
// the message's timeout gives the client a timeout error.
func TestLegacyTimeoutIsTimeout(t *testing.T) {
	p := &Proxy{}
	addr := startProxyWith(t, p)
	silentServer(t, addr, "L", "SILENT")
	m := rawAnswerOrClose(t, addr, `{"type":0,"srcid":9,"privPoliId":"SILENT","payload":"x","timeout":100}`)
	if m.Code != codeTimeout {
		t.Errorf("answered %+v, want a timeout error", m)
	}
}

// TestCloseWhileDialling: Close ends the dial that Sends wait on, and they
// return ErrClosed at once.
func TestCloseWhileDialling(t *testing.T) {
	ln := listen(t) // accepts, and never answers the TLS handshake
	accepted := make(chan net.Conn, 10)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted <- c
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		close(accepted)
		for c := range accepted {
			c.Close()
		}
	})
	c := &Client{ProxyAddr: ln.Addr().String(), TLSConfig: &tls.Config{InsecureSkipVerify: true}}
	errs := make(chan error, 3)
	for range 3 {
		go func() {
			_, err := c.Send(context.Background(), "P", "x")
			errs <- err
		}()
	}
	select {
	case conn := <-accepted:
		defer conn.Close()
	case <-time.After(5 * time.Second):
		t.Fatal("the client did not connect")
	}
	c.Close()
	for range 3 {
		select {
		case err := <-errs:
			if !errors.Is(err, ErrClosed) {
				t.Errorf("Send = %v, want ErrClosed", err)
			}
		case <-time.After(5 * time.Second): // the dial timeout is 10s
			t.Fatal("a Send still waits for its dial after Close")
		}
	}
}

// TestLegacyDrainLosesNothing: a Legacy server that drains under load loses
// no message: its listener closes only once the proxy has nothing more on
// the way to it.
func TestLegacyDrainLosesNothing(t *testing.T) {
	p, addr := startProxy(t)
	startServer(t, p, &Server{ID: "2", Policy: "P", ProxyAddr: addr, Legacy: true})
	ln := listen(t)
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- (&Server{ID: "1", Policy: "P", ProxyAddr: addr, Legacy: true}).Serve(ctx, ln)
	}()
	defer func() { stop(); <-done }()
	waitFor(t, "server 1", func() bool { return len(p.Servers("P")) == 2 })

	var sent, failed atomic.Int64
	var wg sync.WaitGroup
	quit := make(chan struct{})
	for i := range 8 {
		c := newClient(t, addr, strconv.Itoa(i))
		wg.Go(func() {
			for {
				select {
				case <-quit:
					return
				default:
				}
				if _, err := c.Send(testContext(t), "P", "x"); err != nil {
					failed.Add(1)
					t.Errorf("Send: %v", err)
				}
				sent.Add(1)
			}
		})
	}
	waitFor(t, "traffic", func() bool { return sent.Load() > 200 })
	stop() // server 1 drains under load
	if err := <-done; err != nil {
		t.Errorf("Serve: %v", err)
	}
	done <- nil
	mark := sent.Load()
	waitFor(t, "more traffic", func() bool { return sent.Load() > mark+200 })
	close(quit)
	wg.Wait()
	if failed.Load() > 0 {
		t.Errorf("%d of %d messages lost while a server drained", failed.Load(), sent.Load())
	}
}

// TestLegacyServerThatNeverReads: a legacy server that accepts and never
// reads cannot hold a message, and its client, past the message's
// timeout: the deadline covers the write too.
func TestLegacyServerThatNeverReads(t *testing.T) {
	p := &Proxy{MaxMessageSize: 16 << 20}
	addr := startProxyWith(t, p)
	silentServer(t, addr, "L", "DEAF")
	c := dialRaw(t, addr)
	go io.WriteString(c, `{"type":0,"srcid":9,"privPoliId":"DEAF","payload":"`+strings.Repeat("x", 12<<20)+`","timeout":300,"seq":1}`)
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	var m Message
	if _, err := readMessage(wire.NewReader(c, 1<<20), &m); err != nil || m.Code != codeTimeout || m.Seq != 1 {
		t.Fatalf("answer %+v, %v; want a timeout error for seq 1", m, err)
	}
}

// TestOversizedAnswerWithSeqLate: an answer over the proxy's limit whose
// seq is not among its first bytes cannot be refused alone: the link
// closes, so that its messages get errors rather than silence.
func TestOversizedAnswerWithSeqLate(t *testing.T) {
	p := &Proxy{MaxMessageSize: 64 << 10}
	addr := startProxyWith(t, p)
	srv := dialRaw(t, addr)
	io.WriteString(srv, `{"type":1,"id":"S","privPolyId":"P","listenport":0,"hold":true,"mux":true}`)
	waitFor(t, "server", func() bool { return len(p.Servers("P")) == 1 })
	go func() {
		sr := wire.NewReader(srv, 1<<20)
		for {
			var m Message
			if _, err := readMessage(sr, &m); err != nil {
				return
			}
			if m.Type == TypeData { // seq last, after a large payload
				big := strings.Repeat("b", 100<<10)
				fmt.Fprintf(srv, `{"type":2,"srcid":"S","destid":%q,"payload":%q,"seq":%d}`, m.SrcID, big, m.Seq)
			}
		}
	}()
	c := dialRaw(t, addr)
	io.WriteString(c, `{"type":0,"srcid":9,"privPoliId":"P","payload":"big","seq":1}`)
	if m := readOne(t, c, wire.NewReader(c, 1<<20)); m.Type != TypeError || m.Seq != 1 {
		t.Errorf("answered %+v, want an error for seq 1", m)
	}
}

// TestClientMessageOverProxyLimit: a client's message over the proxy's
// limit gets too_large, tagged with its seq, before the connection closes.
func TestClientMessageOverProxyLimit(t *testing.T) {
	p := &Proxy{MaxMessageSize: 64 << 10}
	addr := startProxyWith(t, p)
	startServers(t, p, addr, "P", nil, "1")
	m := rawAnswerOrClose(t, addr, `{"type":0,"srcid":9,"privPoliId":"P","seq":3,"payload":"`+strings.Repeat("x", 100<<10)+`"}`)
	if m.Code != codeTooLarge || m.Seq != 3 {
		t.Errorf("answered code %q seq %d, want too_large for seq 3", m.Code, m.Seq)
	}
	c := newClient(t, addr, "50")
	if _, err := c.Send(testContext(t), "P", strings.Repeat("x", 100<<10)); !errors.Is(err, ErrTooLarge) {
		t.Errorf("Send over the proxy's limit = %v, want ErrTooLarge", err)
	}
}

// deadlineConn takes every write at once and records the write deadlines
// set and the largest write.
type deadlineConn struct {
	net.Conn
	deadlines, largest int
}

func (c *deadlineConn) Write(p []byte) (int, error) {
	c.largest = max(c.largest, len(p))
	return len(p), nil
}

func (c *deadlineConn) SetWriteDeadline(time.Time) error { c.deadlines++; return nil }

// TestWriteTimeoutPerChunk: a write waited on goes in chunks, each with a
// deadline of its own, so that a peer that keeps reading, however slowly,
// is not cut off by WriteTimeout; one that takes nothing is.
func TestWriteTimeoutPerChunk(t *testing.T) {
	c := &deadlineConn{}
	o := &outbox{conn: c, wait: time.Second}
	if err := o.write(make([]byte, 200<<10)); err != nil {
		t.Fatal(err)
	}
	if c.deadlines < 4 || c.largest > writeChunk {
		t.Errorf("200 KiB written with %d deadlines, largest write %d", c.deadlines, c.largest)
	}
}

// TestControlMessagesOutsideBudget: the proxy's own small messages to a
// server (heartbeat, drain, acknowledgement) are queued when others have
// used up the memory budget, where a data message is not.
func TestControlMessagesOutsideBudget(t *testing.T) {
	mem := &budget{max: 1 << 20}
	mem.used.Store(mem.max)
	o := &outbox{conn: &deadlineConn{}, max: 1 << 20, mem: mem}
	o.queued.Store(freeQueue) // past what the budget leaves free
	if err := o.end(append(o.begin(), `{"type":0}`...)); err != errQueueFull {
		t.Errorf("a data message over the budget: %v, want errQueueFull", err)
	}
	if err := o.endControl(append(o.begin(), `{"type":4}`...)); err != nil {
		t.Errorf("a heartbeat over the budget: %v", err)
	}
}
