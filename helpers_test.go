package revproxy

import (
	"context"
	"net"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// TestMain fails the run if any goroutine outlives the tests.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// runRole runs serve in the background until the test ends, then cancels it
// and checks that it returned nil.
func runRole(t *testing.T, serve func(ctx context.Context) error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("role returned %v after cancel", err)
			}
		case <-time.After(5 * time.Second):
			t.Error("role did not stop within 5s of cancel")
		}
	})
}

func listen(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

// startProxy runs a Proxy on loopback and returns it and its address.
func startProxy(t *testing.T) (*Proxy, string) {
	t.Helper()
	p := &Proxy{}
	ln := listen(t)
	runRole(t, func(ctx context.Context) error { return p.Serve(ctx, ln) })
	return p, ln.Addr().String()
}

// startServer runs s on loopback and waits until p lists it.
func startServer(t *testing.T, p *Proxy, s *Server) {
	t.Helper()
	ln := listen(t)
	runRole(t, func(ctx context.Context) error { return s.Serve(ctx, ln) })
	waitFor(t, "server "+s.ID+" to register", func() bool {
		for _, info := range p.Servers(s.Policy) {
			if info.ID == s.ID && (!s.Legacy || info.Addr == ln.Addr().String()) {
				return true
			}
		}
		return false
	})
}

// newClient returns a Client of the proxy at addr, closed when the test ends.
func newClient(t *testing.T, addr, id string) *Client {
	t.Helper()
	c := &Client{ProxyAddr: addr, ID: id}
	t.Cleanup(func() { c.Close() })
	return c
}

// waitFor polls cond until it holds, failing the test after 5s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}
