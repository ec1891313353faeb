package revproxy

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/seed-c202d8a5/revproxy/internal/wire"
)

// logRecords is a slog handler that sends each record's message to a
// channel, so that a test can wait for a log line as an event.
type logRecords chan string

func (l logRecords) Enabled(context.Context, slog.Level) bool { return true }
func (l logRecords) Handle(_ context.Context, r slog.Record) error {
	select {
	case l <- r.Message:
	default: // nobody is waiting for this one
	}
	return nil
}
func (l logRecords) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l logRecords) WithGroup(string) slog.Handler      { return l }

// awaitLog waits for a record whose message starts with prefix.
func awaitLog(t *testing.T, records logRecords, prefix string) {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case m := <-records:
			if strings.HasPrefix(m, prefix) {
				return
			}
		case <-timeout:
			t.Fatalf("no log record %q within 10s", prefix)
		}
	}
}

// freeAddr returns a loopback address nothing listens on (for the moment).
func freeAddr(t *testing.T) string {
	t.Helper()
	ln := listen(t)
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// TestServerStartedBeforeProxy: a Server whose proxy is not up yet keeps
// trying, says so in its log, and is served once the proxy starts.
func TestServerStartedBeforeProxy(t *testing.T) {
	addr := freeAddr(t)
	records := make(logRecords, 64)
	s := &Server{ID: "100", Policy: "PP_1", ProxyAddr: addr, Logger: slog.New(records)}
	runRole(t, func(ctx context.Context) error { return s.Serve(ctx, nil) })
	awaitLog(t, records, "Registering with the reverse proxy again")

	p := &Proxy{}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("the port was taken meanwhile: %v", err)
	}
	runRole(t, func(ctx context.Context) error { return p.Serve(ctx, ln) })
	ctx := testContext(t)
	if err := p.WaitServers(ctx, "PP_1", 1); err != nil {
		t.Fatal(err)
	}
	reply, err := newClient(t, addr, "50").Send(ctx, "PP_1", "hello")
	if err != nil {
		t.Fatal(err)
	}
	if err := VerifySHA1("hello", reply); err != nil {
		t.Error(err)
	}
}

// TestServerFailFast: with FailFast, a proxy that cannot be reached at
// first is an error from Serve, said once.
func TestServerFailFast(t *testing.T) {
	s := &Server{ID: "100", Policy: "PP_1", ProxyAddr: freeAddr(t), FailFast: true}
	err := s.Serve(testContext(t), nil)
	if !errors.Is(err, ErrNoProxy) {
		t.Fatalf("Serve = %v, want ErrNoProxy", err)
	}
	if n := strings.Count(err.Error(), "revproxy:"); n != 1 {
		t.Errorf("%q says revproxy: %d times, want once", err, n)
	}
}

// TestWaitServers: WaitServers returns once the policy has n servers, at
// once when it has them already, and with ctx's error, saying how many
// there are, when ctx ends first.
func TestWaitServers(t *testing.T) {
	p, addr := startProxy(t)
	ctx := testContext(t)
	done := make(chan error, 1)
	go func() { done <- p.WaitServers(ctx, "PP_1", 2) }()

	runRole(t, func(ctx context.Context) error {
		return (&Server{ID: "1", Policy: "PP_1", ProxyAddr: addr}).Serve(ctx, nil)
	})
	runRole(t, func(ctx context.Context) error {
		return (&Server{ID: "2", Policy: "PP_2", ProxyAddr: addr}).Serve(ctx, nil)
	})
	if err := p.WaitServers(ctx, "PP_2", 1); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		t.Fatalf("WaitServers for 2 servers of PP_1 returned %v with one", err)
	default:
	}
	runRole(t, func(ctx context.Context) error {
		return (&Server{ID: "3", Policy: "PP_1", ProxyAddr: addr}).Serve(ctx, nil)
	})
	if err := <-done; err != nil {
		t.Fatalf("WaitServers = %v", err)
	}
	if n := len(p.Servers("PP_1")); n != 2 {
		t.Errorf("WaitServers returned with %d servers of PP_1", n)
	}
	if err := p.WaitServers(ctx, "PP_1", 2); err != nil {
		t.Errorf("WaitServers with the servers there = %v", err)
	}

	short, cancel := context.WithCancel(ctx)
	cancel()
	err := p.WaitServers(short, "PP_1", 3)
	if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "2 registered") {
		t.Errorf("WaitServers for 3 = %v, want context.Canceled saying 2 registered", err)
	}
}

// TestRefusalSaidOnce: the error for a refused registration names the
// package once and the reason once, and still matches its sentinel and
// *RemoteError.
func TestRefusalSaidOnce(t *testing.T) {
	p, addr := startProxy(t)
	startServerNoListener(t, p, &Server{ID: "100", Policy: "PP_1", ProxyAddr: addr})
	err := (&Server{ID: "100", Policy: "PP_1", ProxyAddr: addr}).Serve(testContext(t), nil)
	if !errors.Is(err, ErrIDInUse) {
		t.Fatalf("Serve = %v, want ErrIDInUse", err)
	}
	var re *RemoteError
	if !errors.As(err, &re) || re.Code != codeIDInUse {
		t.Errorf("Serve = %#v, want a *RemoteError with code %s", err, codeIDInUse)
	}
	msg := err.Error()
	if strings.Count(msg, "revproxy:") != 1 || strings.Count(msg, "in use") != 1 || !strings.Contains(msg, "refused") {
		t.Errorf("Serve = %q, want revproxy:, refused and in use once each", msg)
	}

	_, err = newClient(t, freeAddr(t), "50").Send(testContext(t), "PP_1", "x")
	if !errors.Is(err, ErrNoProxy) || strings.Count(err.Error(), "revproxy:") != 1 {
		t.Errorf("Send to no proxy = %q, want ErrNoProxy saying revproxy: once", err)
	}
}

// serialProxy is a proxy as some are written from the homework: it serves
// one connection at a time and reads it until the peer closes it, then
// forwards any data message to the last registered server's listen port.
// It reports each setup message it has read to its end.
type serialProxy struct {
	ln    net.Listener
	setup chan string // the setup messages, each once its connection closed
}

func startSerialProxy(t *testing.T) *serialProxy {
	sp := &serialProxy{ln: listen(t), setup: make(chan string, 4)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := sp.ln.Accept()
			if err != nil {
				return
			}
			data, _ := io.ReadAll(c) // until the peer closes
			c.Close()
			sp.setup <- string(data)
		}
	}()
	t.Cleanup(func() { sp.ln.Close(); <-done })
	return sp
}

// TestServerNotAcknowledgedServesListener: a Server whose proxy never
// acknowledges closes its registration after AckTimeout, so that a proxy
// serving one connection at a time can go on, and serves its listener.
func TestServerNotAcknowledgedServesListener(t *testing.T) {
	sp := startSerialProxy(t)
	ln := listen(t)
	records := make(logRecords, 64)
	s := &Server{ID: "100", Policy: "PP_1", ProxyAddr: sp.ln.Addr().String(), AckTimeout: 50 * time.Millisecond, Logger: slog.New(records)}
	runRole(t, func(ctx context.Context) error { return s.Serve(ctx, ln) })

	var setup string
	select {
	case setup = <-sp.setup:
	case <-time.After(10 * time.Second):
		t.Fatal("the Server did not close its registration connection")
	}
	var m Message
	_, err := decodeMessage([]byte(strings.TrimSpace(setup)), &m)
	if err != nil || m.Type != TypeSetup || m.ListenPort != ln.Addr().(*net.TCPAddr).Port {
		t.Fatalf("the proxy read %q (%v), want a setup message with the listen port", setup, err)
	}
	awaitLog(t, records, "The proxy did not acknowledge the registration")

	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, `{"type": 0, "srcid": 50, "privPoliId": "PP_1", "payloadsize": 5, "payload": "hello"}`)
	reply := new(Message)
	if _, err := readMessage(wire.NewReader(c, 1<<20), reply); err != nil {
		t.Fatal(err)
	}
	if err := VerifySHA1("hello", reply); err != nil {
		t.Error(err)
	}
}

// TestServerWithoutListenerNotAcknowledged: a Server with no listener cannot
// serve a proxy that does not acknowledge it; Serve says so.
func TestServerWithoutListenerNotAcknowledged(t *testing.T) {
	sp := startSerialProxy(t)
	s := &Server{ID: "100", Policy: "PP_1", ProxyAddr: sp.ln.Addr().String(), AckTimeout: 50 * time.Millisecond}
	err := s.Serve(testContext(t), nil)
	if !errors.Is(err, ErrNoProxy) || !strings.Contains(err.Error(), "did not acknowledge") {
		t.Errorf("Serve = %v, want ErrNoProxy saying the proxy did not acknowledge", err)
	}
	<-sp.setup
}
