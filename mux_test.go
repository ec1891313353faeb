package revproxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/seed-c202d8a5/revproxy/internal/wire"
)

// startServerNoListener runs s with no listener: all its traffic comes over
// the registration connection.
func startServerNoListener(t *testing.T, p *Proxy, s *Server) {
	t.Helper()
	runRole(t, func(ctx context.Context) error { return s.Serve(ctx, nil) })
	waitFor(t, "server "+s.ID+" to register", func() bool { return len(p.Servers(s.Policy)) > 0 })
}

// TestMuxServerNeedsNoListener: a server with no listener is served over its
// registration connection, and the proxy opens no connection to it.
func TestMuxServerNeedsNoListener(t *testing.T) {
	p, addr := startProxy(t)
	startServerNoListener(t, p, &Server{ID: "1", Policy: "PP_1", ProxyAddr: addr})
	c := newClient(t, addr, "50")
	for i := range 3 {
		payload := fmt.Sprint("behind NAT ", i)
		reply, err := c.Send(testContext(t), "PP_1", payload)
		if err != nil {
			t.Fatal(err)
		}
		if err := VerifySHA1(payload, reply); err != nil {
			t.Error(err)
		}
	}
}

// TestOutOfOrderAnswers sends a slow message and then fast ones on one
// Client connection: the fast answers arrive while the slow one is still in
// its handler, and each Send gets its own answer.
func TestOutOfOrderAnswers(t *testing.T) {
	p, addr := startProxy(t)
	release := make(chan struct{})
	echo := HandlerFunc(func(ctx context.Context, m *Message) (string, error) {
		if m.Payload == "slow" {
			select {
			case <-release:
			case <-ctx.Done():
			}
		}
		return m.Payload, nil
	})
	startServerNoListener(t, p, &Server{ID: "1", Policy: "ECHO", ProxyAddr: addr, Handler: echo})
	c := newClient(t, addr, "50")
	ctx := testContext(t)

	slow := make(chan error, 1)
	go func() {
		reply, err := c.Send(ctx, "ECHO", "slow")
		if err == nil && reply.Payload != "slow" {
			err = fmt.Errorf("slow Send got %q", reply.Payload)
		}
		slow <- err
	}()
	for i := range 20 {
		payload := fmt.Sprint("fast ", i)
		reply, err := c.Send(ctx, "ECHO", payload)
		if err != nil {
			t.Fatal(err)
		}
		if reply.Payload != payload {
			t.Fatalf("Send(%q) got %q", payload, reply.Payload)
		}
	}
	select {
	case err := <-slow:
		t.Fatalf("the slow Send finished before it was released: %v", err)
	default:
	}
	close(release)
	if err := <-slow; err != nil {
		t.Error(err)
	}
}

// TestMaxHandlers: no more than MaxHandlers messages are in the handler at
// once, and the others wait rather than fail.
func TestMaxHandlers(t *testing.T) {
	p, addr := startProxy(t)
	var now, peak atomic.Int32
	busy := HandlerFunc(func(ctx context.Context, m *Message) (string, error) {
		n := now.Add(1)
		defer now.Add(-1)
		for {
			old := peak.Load()
			if n <= old || peak.CompareAndSwap(old, n) {
				break
			}
		}
		time.Sleep(5 * time.Millisecond)
		return "ok", nil
	})
	startServerNoListener(t, p, &Server{ID: "1", Policy: "BUSY", ProxyAddr: addr, Handler: busy, MaxHandlers: 3})
	c := newClient(t, addr, "50")
	ctx := testContext(t)
	var wg sync.WaitGroup
	for range 30 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := c.Send(ctx, "BUSY", "x"); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if got := peak.Load(); got != 3 {
		t.Errorf("peak handlers = %d, want 3", got)
	}
}

// TestLinkLostAnswersPending: a server whose link closes with messages
// unanswered leaves the table, and those messages' clients get
// ErrUnavailable at once.
func TestLinkLostAnswersPending(t *testing.T) {
	p, addr := startProxy(t)
	srv, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	io.WriteString(srv, `{"type":1,"id":"1","privPolyId":"P","listenport":0,"hold":true,"mux":true}`)
	waitFor(t, "server to register", func() bool { return len(p.Servers("P")) == 1 })

	c := newClient(t, addr, "50")
	errs := make(chan error, 3)
	for range 3 {
		go func() {
			_, err := c.Send(testContext(t), "P", "x")
			errs <- err
		}()
	}
	r := wire.NewReader(srv, 1<<20)
	for range 4 { // its acknowledgement and the messages, then it dies without answering
		if _, err := r.Next(); err != nil {
			t.Fatal(err)
		}
	}
	srv.Close()
	for range 3 {
		if err := <-errs; !errors.Is(err, ErrUnavailable) {
			t.Errorf("Send = %v, want ErrUnavailable", err)
		}
	}
	if n := len(p.Servers("P")); n != 0 {
		t.Errorf("%d servers still listed", n)
	}
}

// TestLegacyServerWithTaggedClient: messages from a multiplexing Client to a
// Legacy server each go over a connection of their own, concurrently.
func TestLegacyServerWithTaggedClient(t *testing.T) {
	p, addr := startProxy(t)
	var inside, peak atomic.Int32
	slow := HandlerFunc(func(ctx context.Context, m *Message) (string, error) {
		n := inside.Add(1)
		defer inside.Add(-1)
		for old := peak.Load(); n > old && !peak.CompareAndSwap(old, n); old = peak.Load() {
		}
		time.Sleep(20 * time.Millisecond)
		return SHA1Hex(m.Payload), nil
	})
	startServer(t, p, &Server{ID: "1", Policy: "P", ProxyAddr: addr, Legacy: true, Handler: slow})
	c := newClient(t, addr, "50")
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			payload := fmt.Sprint(i)
			reply, err := c.Send(testContext(t), "P", payload)
			if err == nil {
				err = VerifySHA1(payload, reply)
			}
			if err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if peak.Load() < 2 {
		t.Errorf("legacy exchanges ran one at a time (peak %d)", peak.Load())
	}
}

// TestClientDirectToServer: a Client may talk to a Server's listener with no
// proxy between them.
func TestClientDirectToServer(t *testing.T) {
	p, addr := startProxy(t)
	ln := listen(t)
	s := &Server{ID: "1", Policy: "P", ProxyAddr: addr}
	runRole(t, func(ctx context.Context) error { return s.Serve(ctx, ln) })
	waitFor(t, "server to register", func() bool { return len(p.Servers("P")) == 1 })
	c := newClient(t, ln.Addr().String(), "50")
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			payload := fmt.Sprint("direct ", i)
			reply, err := c.Send(testContext(t), "P", payload)
			if err == nil {
				err = VerifySHA1(payload, reply)
			}
			if err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
}

// TestServerListenerMustBeTCP refuses listeners that have no port to announce.
func TestServerListenerMustBeTCP(t *testing.T) {
	dir := t.TempDir()
	ln, err := net.Listen("unix", dir+"/s")
	if err != nil {
		t.Skip("no unix sockets:", err)
	}
	s := &Server{ID: "1", Policy: "P", ProxyAddr: "127.0.0.1:1"}
	if err := s.Serve(testContext(t), ln); !errors.Is(err, ErrConfig) {
		t.Errorf("Serve on a unix listener = %v, want ErrConfig", err)
	}
	if err := (&Server{ID: "1", Policy: "P", ProxyAddr: "x:1", Legacy: true}).Serve(testContext(t), nil); !errors.Is(err, ErrConfig) {
		t.Errorf("Legacy Serve without listener = %v, want ErrConfig", err)
	}
}

// TestSlowClientDelaysNoOne: a client that sends a lot and never reads its
// answers must not stall another client served by the same server link.
func TestSlowClientDelaysNoOne(t *testing.T) {
	const stuckMessages = 800 // 25 MiB of answers that nobody reads
	p, addr := startProxy(t)
	big := strings.Repeat("x", 32<<10)
	var handled atomic.Int32
	handledAll := make(chan struct{})
	echo := HandlerFunc(func(_ context.Context, m *Message) (string, error) {
		if m.SrcID == "9" { // the stuck client
			if handled.Add(1) == stuckMessages {
				close(handledAll)
			}
			return big, nil
		}
		return m.Payload, nil
	})
	// No heartbeats: the server's pings queue behind the answers it writes,
	// and on a busy machine relaying them can take longer than three
	// intervals, which would end the link.
	startServerNoListener(t, p, &Server{ID: "1", Policy: "ECHO", ProxyAddr: addr, Handler: echo, Heartbeat: -1})

	stuck, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer stuck.Close()
	sent := make(chan struct{})
	go func() {
		defer close(sent)
		for i := 1; i <= stuckMessages; i++ {
			msg := fmt.Sprintf(`{"type":0,"srcid":"9","privPoliId":"ECHO","payload":"%d","seq":%d}`, i, i)
			if _, err := io.WriteString(stuck, msg); err != nil {
				return
			}
		}
	}()
	// Once the server has handled every message of the stuck client, the
	// messages below reach it after all of them, and their answers follow
	// the stuck client's on the link: far more than the stuck client's
	// socket holds, so a proxy that waited for it would never relay ours.
	// The bounds are only watchdogs, far above what the work takes even
	// on a busy machine.
	select {
	case <-handledAll:
	case <-time.After(time.Minute):
		t.Fatalf("the server handled %d of the stuck client's %d messages", handled.Load(), stuckMessages)
	}
	<-sent

	c := newClient(t, addr, "50")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for i := range 20 {
		payload := fmt.Sprint("still served ", i)
		reply, err := c.Send(ctx, "ECHO", payload)
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		if reply.Payload != payload {
			t.Fatalf("message %d: got %q", i, reply.Payload)
		}
	}
}

// TestIdempotentMessagesSentAgain: messages lost with an idempotent server
// go to another server of the policy, and their clients get real replies.
func TestIdempotentMessagesSentAgain(t *testing.T) {
	p, addr := startProxy(t)
	dying, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer dying.Close()
	io.WriteString(dying, `{"type":1,"id":"dying","privPolyId":"P","hold":true,"mux":true,"idempotent":true}`)
	waitFor(t, "the dying server to register", func() bool { return len(p.Servers("P")) == 1 })

	c := newClient(t, addr, "50")
	errs := make(chan error, 2)
	for i := range 2 {
		go func() {
			payload := fmt.Sprint("again ", i)
			reply, err := c.Send(testContext(t), "P", payload)
			if err == nil {
				err = VerifySHA1(payload, reply)
			}
			if err == nil && reply.SrcID != "live" {
				err = fmt.Errorf("answered by %s", reply.SrcID)
			}
			errs <- err
		}()
	}
	r := wire.NewReader(dying, 1<<20)
	for range 3 { // its acknowledgement, then the two messages
		if _, err := r.Next(); err != nil {
			t.Fatal(err)
		}
	}
	startServerNoListener(t, p, &Server{ID: "live", Policy: "P", ProxyAddr: addr, Idempotent: true})
	waitFor(t, "both servers", func() bool { return len(p.Servers("P")) == 2 })
	dying.Close()
	for range 2 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}
