package revproxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/seed-c202d8a5/revproxy/internal/wire"
)

// TestRoundRobinOverTCP runs the homework's example end to end: servers 1 and
// 2 serve PP_1, and five messages get replies from 1, 2, 1, 2, 1, each with
// the payload's SHA1.
func TestRoundRobinOverTCP(t *testing.T) {
	p, addr := startProxy(t)
	startServer(t, p, &Server{ID: "1", Policy: "PP_1", ProxyAddr: addr})
	startServer(t, p, &Server{ID: "2", Policy: "PP_1", ProxyAddr: addr})
	c := newClient(t, addr, "50")
	ctx := testContext(t)

	var from []string
	for i := 1; i <= 5; i++ {
		payload := fmt.Sprintf("message %d", i)
		reply, err := c.Send(ctx, "PP_1", payload)
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		if err := VerifySHA1(payload, reply); err != nil {
			t.Errorf("message %d: %v", i, err)
		}
		if reply.DestID != "50" || reply.PayloadSize != 40 {
			t.Errorf("message %d: destid %q, payloadsize %d; want 50, 40", i, reply.DestID, reply.PayloadSize)
		}
		from = append(from, reply.SrcID)
	}
	if diff := cmp.Diff([]string{"1", "2", "1", "2", "1"}, from); diff != "" {
		t.Errorf("replies came from (-want +got):\n%s", diff)
	}
}

func TestNoServerIsAnErrorReply(t *testing.T) {
	p, addr := startProxy(t)
	startServer(t, p, &Server{ID: "1", Policy: "PP_1", ProxyAddr: addr})
	c := newClient(t, addr, "50")

	reply, err := c.Send(testContext(t), "PP_9", "hello")
	if !errors.Is(err, ErrNoServer) {
		t.Fatalf("Send = %v, %v; want ErrNoServer", reply, err)
	}
	var re *RemoteError
	if !errors.As(err, &re) {
		t.Fatalf("%v is not a *RemoteError", err)
	}
	want := &RemoteError{From: "proxy", Code: "no_server", Text: "no server for policy PP_9"}
	if diff := cmp.Diff(want, re); diff != "" {
		t.Errorf("RemoteError (-want +got):\n%s", diff)
	}
	// The connection is still good.
	if _, err := c.Send(testContext(t), "PP_1", "hello"); err != nil {
		t.Errorf("Send after the error: %v", err)
	}
}

// TestManyMessagesOneConnection sends concurrently from one Client and checks
// that every reply matches its own message and that one connection was used.
func TestManyMessagesOneConnection(t *testing.T) {
	p := &Proxy{}
	ln := &countingListener{Listener: listen(t)}
	runRole(t, func(ctx context.Context) error { return p.Serve(ctx, ln) })
	addr := ln.Addr().String()
	startServer(t, p, &Server{ID: "1", Policy: "PP_1", ProxyAddr: addr})
	startServer(t, p, &Server{ID: "2", Policy: "PP_1", ProxyAddr: addr})
	accepted := ln.n.Load() // the two registrations

	c := newClient(t, addr, "50")
	ctx := testContext(t)
	var wg sync.WaitGroup
	errs := make(chan error, 40)
	for i := range 40 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			payload := strings.Repeat("x", i) + strconv.Itoa(i)
			reply, err := c.Send(ctx, "PP_1", payload)
			if err == nil {
				err = VerifySHA1(payload, reply)
			}
			if err != nil {
				errs <- fmt.Errorf("message %d: %w", i, err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if got := ln.n.Load() - accepted; got != 1 {
		t.Errorf("client used %d connections, want 1", got)
	}
}

type countingListener struct {
	net.Listener
	n atomic.Int64
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.n.Add(1)
	}
	return c, err
}

func TestCustomHandler(t *testing.T) {
	p, addr := startProxy(t)
	upper := HandlerFunc(func(_ context.Context, m *Message) (string, error) {
		switch m.Payload {
		case "fail":
			return "", errors.New("cannot do that")
		case "panic":
			panic("boom")
		}
		return strings.ToUpper(m.Payload), nil
	})
	startServer(t, p, &Server{ID: "7", Policy: "UPPER", ProxyAddr: addr, Handler: upper})
	c := newClient(t, addr, "50")
	ctx := testContext(t)

	reply, err := c.Send(ctx, "UPPER", "héllo")
	if err != nil {
		t.Fatal(err)
	}
	want := &Message{Type: TypeReply, SrcID: "7", DestID: "50", PayloadSize: 5, Payload: "HÉLLO"}
	if diff := cmp.Diff(want, reply); diff != "" {
		t.Errorf("reply (-want +got):\n%s", diff)
	}

	for _, tt := range []struct{ payload, text string }{
		{"fail", "cannot do that"},
		{"panic", "handler panicked: boom"},
	} {
		_, err := c.Send(ctx, "UPPER", tt.payload)
		var re *RemoteError
		if !errors.Is(err, ErrHandler) || !errors.As(err, &re) {
			t.Fatalf("%s: err = %v, want a RemoteError matching ErrHandler", tt.payload, err)
		}
		if re.From != "7" || re.Text != tt.text {
			t.Errorf("%s: got %+v, want From 7, Text %q", tt.payload, re, tt.text)
		}
	}
	// The server survived the panic.
	if _, err := c.Send(ctx, "UPPER", "still here"); err != nil {
		t.Errorf("after the panic: %v", err)
	}
}

// TestLegacyServer registers the way the tutorial's server does: numbers as
// strings, no newline, over a connection closed at once. The proxy must keep
// it, and forward to it in its own style.
func TestLegacyServer(t *testing.T) {
	p, addr := startProxy(t)
	ln := listen(t)
	port := ln.Addr().(*net.TCPAddr).Port
	got := make(chan string, 1)
	go func() {
		defer ln.Close()
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		buf := make([]byte, 2048)
		n, _ := c.Read(buf) // one recv, as the tutorial does
		got <- string(buf[:n])
		io.WriteString(c, `{"type": "2", "srcid": "9", "destid": "50", "payloadsize": 40, "payload": "`+SHA1Hex("hello")+`"}`)
	}()

	sendRaw(t, addr, fmt.Sprintf(`{"type": "1", "id": "9", "privPolyId": "PP_L", "listenport": "%d"}`, port))
	waitFor(t, "legacy server to register", func() bool { return len(p.Servers("PP_L")) == 1 })
	time.Sleep(20 * time.Millisecond) // the setup connection is closed by now
	if n := len(p.Servers("PP_L")); n != 1 {
		t.Fatalf("after its setup connection closed, the proxy lists %d servers, want 1", n)
	}

	c := newClient(t, addr, "50")
	reply, err := c.Send(testContext(t), "PP_L", "hello")
	if err != nil {
		t.Fatal(err)
	}
	if err := VerifySHA1("hello", reply); err != nil {
		t.Error(err)
	}
	// The homework's keys in the server's style, then optional extensions
	// (here the client's timeout) that such a server ignores.
	want := regexp.MustCompile(`^\{"type":"0","srcid":"50","privPoliId":"PP_L","payloadsize":"5","payload":"hello"(,"timeout":\d+)?\}\n$`)
	if forwarded := <-got; !want.MatchString(forwarded) {
		t.Errorf("server got %s, want %s", forwarded, want)
	}
}

// TestLegacyClient writes two tutorial-style messages in one write with no
// newline and reads the answers, which must come in the client's style.
func TestLegacyClient(t *testing.T) {
	p, addr := startProxy(t)
	startServer(t, p, &Server{ID: "100", Policy: "PP_1", ProxyAddr: addr})
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, `{"type": "0", "srcid": "50", "privPoliId": "PP_1", "payloadsize": "3", "payload": "one"}`+
		`{"type": "0", "srcid": "50", "privPolyId": "PP_1", "payloadsize": "3", "payload": "two", "extra": [1, 2]}`)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	r := wire.NewReader(c, 1<<20)
	for _, payload := range []string{"one", "two"} {
		var m Message
		quoted, err := readMessage(r, &m)
		if err != nil {
			t.Fatal(err)
		}
		if !quoted {
			t.Errorf("%s: reply type not written as a string", payload)
		}
		if err := VerifySHA1(payload, &m); err != nil {
			t.Errorf("%s: %v", payload, err)
		}
	}
}

func TestServerLeavesWhenItStops(t *testing.T) {
	p, addr := startProxy(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	s := &Server{ID: "1", Policy: "PP_1", ProxyAddr: addr}
	go func() { done <- s.ListenAndServe(ctx, "127.0.0.1:0") }()
	waitFor(t, "server to register", func() bool { return len(p.Servers("PP_1")) == 1 })
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Serve returned %v after cancel", err)
	}
	waitFor(t, "server to leave", func() bool { return len(p.Servers("PP_1")) == 0 })
}

// TestFailover registers a server that cannot be reached ahead of a live one:
// every message still gets the live server's reply. With only dead servers
// the client gets ErrUnavailable.
func TestFailover(t *testing.T) {
	p, addr := startProxy(t)
	dead := listen(t)
	deadPort := dead.Addr().(*net.TCPAddr).Port
	dead.Close()
	sendRaw(t, addr, fmt.Sprintf(`{"type":1,"id":"dead","privPolyId":"PP_1","listenport":%d}`, deadPort))
	waitFor(t, "dead server to register", func() bool { return len(p.Servers("PP_1")) == 1 })
	startServer(t, p, &Server{ID: "live", Policy: "PP_1", ProxyAddr: addr})
	sendRaw(t, addr, fmt.Sprintf(`{"type":1,"id":"dead2","privPolyId":"PP_2","listenport":%d}`, deadPort))
	waitFor(t, "second dead server to register", func() bool { return len(p.Servers("PP_2")) == 1 })

	c := newClient(t, addr, "50")
	ctx := testContext(t)
	for i := range 4 {
		reply, err := c.Send(ctx, "PP_1", "x")
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		if reply.SrcID != "live" {
			t.Errorf("message %d answered by %q", i, reply.SrcID)
		}
	}
	if _, err := c.Send(ctx, "PP_2", "x"); !errors.Is(err, ErrUnavailable) {
		t.Errorf("only dead servers: err = %v, want ErrUnavailable", err)
	}
	// The unreachable servers were ejected; registering again brings one back.
	if diff := cmp.Diff([]string{"live"}, ids(p.Servers("PP_1"))); diff != "" {
		t.Errorf("PP_1 after the failed dial (-want +got):\n%s", diff)
	}
	if _, err := c.Send(ctx, "PP_2", "x"); !errors.Is(err, ErrNoServer) {
		t.Errorf("after ejection: err = %v, want ErrNoServer", err)
	}
	sendRaw(t, addr, fmt.Sprintf(`{"type":1,"id":"dead2","privPolyId":"PP_2","listenport":%d}`, deadPort))
	waitFor(t, "the ejected server to register again", func() bool { return len(p.Servers("PP_2")) == 1 })
}

// TestBadInput sends what is not a valid message: the proxy answers with an
// error message where it can, closes that connection, and goes on serving.
func TestBadInput(t *testing.T) {
	p, addr := startProxy(t)
	startServer(t, p, &Server{ID: "1", Policy: "PP_1", ProxyAddr: addr})
	for _, in := range []string{
		`{"type":7,"srcid":50}`,
		`{"type":2,"srcid":50,"payload":"a reply from a client"}`,
		`{"type":"zero"}`,
		`{"type":0,"payload":"x"`, // cut short, then more garbage
		`not json at all`,
		`{"type":0,"srcid":50,"payload":"no policy"}`,
		`{"type":1,"id":"5","privPolyId":"PP_1","listenport":0}`,
		`{"type":1,"id":"5","listenport":80}`,
	} {
		t.Run(in, func(t *testing.T) {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			io.WriteString(c, in)
			if strings.HasSuffix(in, `"x"`) {
				io.WriteString(c, ` garbage }`)
			}
			c.SetReadDeadline(time.Now().Add(5 * time.Second))
			r := wire.NewReader(c, 1<<20)
			var m Message
			if _, err := readMessage(r, &m); err != nil {
				t.Fatalf("no error message: %v", err)
			}
			if m.Type != TypeError || m.Code != "bad_message" {
				t.Errorf("got %+v, want an error message with code bad_message", m)
			}
			if _, err := readMessage(r, &m); !errors.Is(err, io.EOF) {
				t.Errorf("connection not closed after the error: %v", err)
			}
		})
	}
	// The proxy still serves, and the refused setups registered nothing.
	c := newClient(t, addr, "50")
	if _, err := c.Send(testContext(t), "PP_1", "ok"); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"1"}, ids(p.Servers("PP_1"))); diff != "" {
		t.Errorf("servers (-want +got):\n%s", diff)
	}
}

// TestSendCancelled abandons a Send whose reply is slow: the late reply must
// not be taken for the next Send's. The Send is cancelled once its message
// is in the handler, and the handler answers only after that, so the reply
// is late whatever the timing. With one handler at a time, the late reply
// reaches the client before the next Send's.
func TestSendCancelled(t *testing.T) {
	p, addr := startProxy(t)
	entered := make(chan struct{})
	release := make(chan struct{})
	slow := HandlerFunc(func(ctx context.Context, m *Message) (string, error) {
		if m.Payload == "slow" {
			close(entered)
			select {
			case <-release:
			case <-ctx.Done():
				// The handler's deadline is the client's: an answer now
				// would race the client's own timer.
				return "", ctx.Err()
			}
		}
		return m.Payload, nil
	})
	startServer(t, p, &Server{ID: "1", Policy: "ECHO", ProxyAddr: addr, Handler: slow, MaxHandlers: 1})
	c := newClient(t, addr, "50")

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-entered:
			cancel()
		case <-ctx.Done():
		}
	}()
	if _, err := c.Send(ctx, "ECHO", "slow"); !errors.Is(err, context.Canceled) {
		t.Fatalf("slow Send = %v, want Canceled", err)
	}
	close(release)
	reply, err := c.Send(testContext(t), "ECHO", "fast")
	if err != nil {
		t.Fatal(err)
	}
	if reply.Payload != "fast" {
		t.Errorf("got the reply %q, want %q", reply.Payload, "fast")
	}
}

// TestShutdownWhileBusy cancels the proxy and the server while a message is
// in a handler: both return nil, the waiting Send fails, nothing leaks (see
// TestMain).
func TestShutdownWhileBusy(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	p := &Proxy{}
	pln := listen(t)
	addr := pln.Addr().String()
	entered := make(chan struct{})
	block := HandlerFunc(func(ctx context.Context, m *Message) (string, error) {
		close(entered)
		<-ctx.Done()
		return "", ctx.Err()
	})
	s := &Server{ID: "1", Policy: "PP_1", ProxyAddr: addr, Handler: block, DrainTimeout: -1}
	errs := make(chan error, 2)
	go func() { errs <- p.Serve(ctx, pln) }()
	go func() { errs <- s.ListenAndServe(ctx, "127.0.0.1:0") }()
	waitFor(t, "server to register", func() bool { return len(p.Servers("PP_1")) == 1 })

	c := newClient(t, addr, "50")
	sent := make(chan error, 1)
	go func() {
		_, err := c.Send(context.Background(), "PP_1", "x")
		sent <- err
	}()
	<-entered
	cancel()
	for range 2 {
		select {
		case err := <-errs:
			if err != nil {
				t.Errorf("role returned %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("role did not stop")
		}
	}
	if err := <-sent; err == nil {
		t.Error("Send succeeded though the proxy stopped")
	}
}

// TestClientReconnects: after its proxy restarts on the same address, a
// Client connects again on its next Send.
func TestClientReconnects(t *testing.T) {
	ln := listen(t)
	addr := ln.Addr().String()
	ctx1, cancel1 := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- (&Proxy{}).Serve(ctx1, ln) }()

	c := newClient(t, addr, "50")
	if _, err := c.Send(testContext(t), "PP_1", "x"); !errors.Is(err, ErrNoServer) {
		t.Fatalf("first proxy: %v, want ErrNoServer", err)
	}
	cancel1()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the client to see its connection close", func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		return !c.cur.alive()
	})

	ln2, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	p2 := &Proxy{}
	runRole(t, func(ctx context.Context) error { return p2.Serve(ctx, ln2) })
	startServer(t, p2, &Server{ID: "1", Policy: "PP_1", ProxyAddr: addr})
	reply, err := c.Send(testContext(t), "PP_1", "x")
	if err != nil {
		t.Fatalf("after the restart: %v", err)
	}
	if err := VerifySHA1("x", reply); err != nil {
		t.Error(err)
	}
}

func TestConfigErrors(t *testing.T) {
	ctx := testContext(t)
	for _, s := range []*Server{
		{Policy: "P", ProxyAddr: "x:1"},
		{ID: "1", ProxyAddr: "x:1"},
		{ID: "1", Policy: "P"},
	} {
		if err := s.Serve(ctx, listen(t)); !errors.Is(err, ErrConfig) {
			t.Errorf("%+v: Serve = %v, want ErrConfig", s, err)
		}
	}
	if _, err := (&Client{}).Send(ctx, "P", "x"); !errors.Is(err, ErrConfig) {
		t.Errorf("Client without ProxyAddr: %v, want ErrConfig", err)
	}
	c := &Client{ProxyAddr: "127.0.0.1:1"}
	c.Close()
	if _, err := c.Send(ctx, "P", "x"); !errors.Is(err, ErrClosed) {
		t.Errorf("closed Client: %v, want ErrClosed", err)
	}
}

// TestServerWithoutProxy: with FailFast, a Server with a listener whose
// proxy cannot be reached returns ErrNoProxy (without it, it keeps trying:
// TestServerStartedBeforeProxy).
func TestServerWithoutProxy(t *testing.T) {
	s := &Server{ID: "1", Policy: "P", ProxyAddr: freeAddr(t), FailFast: true}
	if err := s.ListenAndServe(testContext(t), "127.0.0.1:0"); !errors.Is(err, ErrNoProxy) {
		t.Errorf("Serve with no proxy = %v, want ErrNoProxy", err)
	}
}

// TestRegistrationRefused: an error message on the registration connection
// ends Serve with a RemoteError.
func TestRegistrationRefused(t *testing.T) {
	ln := listen(t)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		io.WriteString(c, `{"type":3,"srcid":"proxy","payload":"no thanks","code":"bad_message"}`)
		io.Copy(io.Discard, c)
	}()
	defer ln.Close()
	s := &Server{ID: "1", Policy: "P", ProxyAddr: ln.Addr().String()}
	err := s.ListenAndServe(testContext(t), "127.0.0.1:0")
	var re *RemoteError
	if !errors.As(err, &re) || re.Text != "no thanks" || !errors.Is(err, ErrBadMessage) {
		t.Errorf("Serve = %v, want the proxy's RemoteError", err)
	}
}

// sendRaw connects to addr, writes s and closes.
func sendRaw(t *testing.T, addr, s string) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, s); err != nil {
		t.Fatal(err)
	}
}

func ids(infos []ServerInfo) []string {
	var out []string
	for _, i := range infos {
		out = append(out, i.ID)
	}
	return out
}
