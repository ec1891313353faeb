package revproxy

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestThreeProxies: servers register with three proxies (and one address
// where none listens), clients know all three, and two proxies stop under
// load: every request is still answered.
func TestThreeProxies(t *testing.T) {
	type running struct {
		p    *Proxy
		addr string
		stop func()
	}
	var proxies []running
	for range 3 {
		ctx, cancel := context.WithCancel(context.Background())
		p := &Proxy{}
		ln := listen(t)
		done := make(chan error, 1)
		go func() { done <- p.Serve(ctx, ln) }()
		var once sync.Once
		stop := func() { once.Do(func() { cancel(); <-done }) }
		t.Cleanup(stop)
		proxies = append(proxies, running{p, ln.Addr().String(), stop})
	}
	dead := listen(t)
	deadAddr := dead.Addr().String()
	dead.Close()
	addrs := []string{proxies[0].addr, proxies[1].addr, proxies[2].addr}

	for _, id := range []string{"1", "2"} {
		s := &Server{ID: id, Policy: "P", ProxyAddrs: append([]string{deadAddr}, addrs...), Idempotent: true}
		runRole(t, func(ctx context.Context) error { return s.Serve(ctx, nil) })
	}
	for i, r := range proxies {
		waitFor(t, fmt.Sprint("both servers on proxy ", i), func() bool { return len(r.p.Servers("P")) == 2 })
	}

	var sent, failed atomic.Int64
	load, stopLoad := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := &Client{ID: fmt.Sprint(i), ProxyAddrs: addrs, Retry: true}
			defer c.Close()
			for n := 0; load.Err() == nil; n++ {
				payload := fmt.Sprint(i, " ", n)
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				reply, err := c.Send(ctx, "P", payload)
				cancel()
				sent.Add(1)
				if err == nil {
					err = VerifySHA1(payload, reply)
				}
				if err != nil {
					failed.Add(1)
					t.Error(err)
					return
				}
			}
		}()
	}
	// Each phase lasts until the clients have made progress in it.
	progress := func(what string) {
		mark := sent.Load()
		waitFor(t, what, func() bool { return sent.Load() >= mark+20 || failed.Load() > 0 })
	}
	progress("requests through all three proxies")
	proxies[0].stop()
	progress("requests after the first proxy stopped")
	proxies[1].stop()
	progress("requests through the last proxy")
	stopLoad()
	wg.Wait()
	t.Logf("%d requests across the failovers", sent.Load())
	if failed.Load() > 0 {
		t.Errorf("%d of %d requests failed", failed.Load(), sent.Load())
	}
}
