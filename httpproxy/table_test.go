package httpproxy

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/seed-c202d8a5/revproxy"
)

// startTable runs a revproxy.Proxy on loopback for the test's length and
// returns it and its address.
func startTable(t *testing.T) (*revproxy.Proxy, string) {
	t.Helper()
	rp := &revproxy.Proxy{}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	runUntilCleanup(t, "the revproxy Proxy", func(ctx context.Context) error { return rp.Serve(ctx, ln) })
	return rp, ln.Addr().String()
}

// register runs s, without a listener of its own, until the test ends or
// stop is called, and waits until rp lists it. stop waits for it to have
// drained and left.
func register(t *testing.T, rp *revproxy.Proxy, s *revproxy.Server) (stop func()) {
	t.Helper()
	stop = runUntilCleanup(t, "server "+s.ID, func(ctx context.Context) error { return s.Serve(ctx, nil) })
	waitFor(t, "server "+s.ID+" to register", func() bool {
		return slices.ContainsFunc(rp.Servers(s.Policy), func(i revproxy.ServerInfo) bool { return i.ID == s.ID })
	})
	return stop
}

// runUntilCleanup runs serve until the test ends or stop is called, and
// checks that it returned nil within 10 s of being stopped.
func runUntilCleanup(t *testing.T, what string, serve func(context.Context) error) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serve(ctx) }()
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("%s returned %v after cancel", what, err)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("%s did not stop within 10s of cancel", what)
		}
	}
	t.Cleanup(stop)
	return stop
}

// waitFor polls cond until it holds, failing the test after 10 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// backend is an HTTP service that answers with its name, closed when the
// test ends.
func backend(t *testing.T, name string) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Backend", name)
		w.Write([]byte(name))
	}))
	t.Cleanup(srv.Close)
	return srv
}

// portOf returns the port of srv's listener.
func portOf(t *testing.T, srv *httptest.Server) int {
	t.Helper()
	_, port, err := net.SplitHostPort(srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.Atoi(port)
	if err != nil {
		t.Fatal(err)
	}
	return n
}
