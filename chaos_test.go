package revproxy

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestChaos runs a proxy, three idempotent servers and sixteen retrying
// clients under load while it kills and restarts servers and restarts the
// proxy. Every request must get exactly one answer, every reply the right
// digest, and, with at least one server alive at all times, none may fail.
// TestMain checks that no goroutine is left behind.
func TestChaos(t *testing.T) {
	const (
		servers   = 3
		clients   = 16
		load      = 4 * time.Second
		killEvery = 250 * time.Millisecond
		restartP  = 1300 * time.Millisecond
	)
	ln := listen(t)
	addr := ln.Addr().String()

	// The proxy, restarted on the same address.
	var proxyMu sync.Mutex
	var stopProxy func()
	startProxyOn := func(ln net.Listener) {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- (&Proxy{}).Serve(ctx, ln) }()
		stopProxy = func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("proxy Serve: %v", err)
			}
		}
	}
	startProxyOn(ln)
	restartProxy := func() {
		proxyMu.Lock()
		defer proxyMu.Unlock()
		stopProxy()
		for {
			ln, err := net.Listen("tcp", addr)
			if err == nil {
				startProxyOn(ln)
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
	}

	// Servers, each run by a supervisor that starts it again when Serve
	// fails (the proxy may be down at that moment) until it is killed.
	var handled atomic.Int64
	sha1 := HandlerFunc(func(ctx context.Context, m *Message) (string, error) {
		handled.Add(1)
		return SHA1Hex(m.Payload), nil
	})
	var serversWG sync.WaitGroup
	kill := make([]func(), servers)
	runServer := func(i int) {
		ctx, cancel := context.WithCancel(context.Background())
		serversWG.Add(1)
		go func() {
			defer serversWG.Done()
			// DrainTimeout -1: a kill is abrupt, so messages in hand are lost
			// with the server and must be sent again by the proxy.
			s := &Server{ID: fmt.Sprint("s", i), Policy: "P", ProxyAddr: addr, Handler: sha1, Idempotent: true, DrainTimeout: -1}
			for ctx.Err() == nil {
				if err := s.Serve(ctx, nil); err != nil && ctx.Err() == nil {
					time.Sleep(20 * time.Millisecond)
				}
			}
		}()
		kill[i] = cancel
	}
	for i := range servers {
		runServer(i)
	}

	// Clients: each sends until the load window ends.
	var sent, answered, failed, wrong atomic.Int64
	var firstErr atomic.Value
	loadCtx, endLoad := context.WithTimeout(context.Background(), load)
	defer endLoad()
	var clientsWG sync.WaitGroup
	for i := range clients {
		clientsWG.Add(1)
		go func() {
			defer clientsWG.Done()
			c := &Client{ID: fmt.Sprint("c", i), ProxyAddr: addr, Retry: true}
			defer c.Close()
			for n := 0; loadCtx.Err() == nil; n++ {
				payload := fmt.Sprintf("client %d message %d", i, n)
				ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
				sent.Add(1)
				reply, err := c.Send(ctx, "P", payload)
				cancel()
				answered.Add(1)
				switch {
				case err != nil:
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err)
				case VerifySHA1(payload, reply) != nil:
					wrong.Add(1)
				}
			}
		}()
	}

	// Chaos until the load ends: one server down at a time, and the proxy
	// now and then.
	lastProxyRestart := time.Now()
	kills, proxyRestarts := 0, 0
	for loadCtx.Err() == nil {
		time.Sleep(killEvery)
		i := rand.IntN(servers)
		kill[i]()
		kills++
		time.Sleep(killEvery / 3)
		runServer(i)
		if time.Since(lastProxyRestart) > restartP {
			restartProxy()
			proxyRestarts++
			lastProxyRestart = time.Now()
		}
	}

	clientsWG.Wait()
	for i := range servers {
		kill[i]()
	}
	serversWG.Wait()
	proxyMu.Lock()
	stopProxy()
	proxyMu.Unlock()

	t.Logf("%d servers killed, %d proxy restarts; %d requests, %d handled by servers (resent ones count twice)",
		kills, proxyRestarts, sent.Load(), handled.Load())
	if sent.Load() != answered.Load() {
		t.Errorf("%d requests sent, %d answered", sent.Load(), answered.Load())
	}
	if wrong.Load() > 0 {
		t.Errorf("%d replies had a wrong digest", wrong.Load())
	}
	if n := failed.Load(); n > 0 {
		err, _ := firstErr.Load().(error)
		t.Errorf("%d requests failed; the first: %v", n, err)
	}
	if sent.Load() < 100 {
		t.Errorf("only %d requests in %v: the system made little progress", sent.Load(), load)
	}
}
