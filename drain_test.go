package revproxy

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"
)

// TestGracefulDrain stops a server with messages in its handlers: it leaves
// the rotation at once, every message it had gets its real reply, new
// messages go to the other server, and Serve returns nil.
func TestGracefulDrain(t *testing.T) {
	p, addr := startProxy(t)
	entered := make(chan struct{}, 8)
	slow := HandlerFunc(func(ctx context.Context, m *Message) (string, error) {
		entered <- struct{}{}
		time.Sleep(100 * time.Millisecond)
		if ctx.Err() != nil {
			return "", ctx.Err() // cancelled before the grace ended: a failure here
		}
		return SHA1Hex(m.Payload), nil
	})
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- (&Server{ID: "draining", Policy: "P", ProxyAddr: addr, Handler: slow}).Serve(ctx, nil)
	}()
	waitFor(t, "the first server", func() bool { return len(p.Servers("P")) == 1 })

	c := newClient(t, addr, "50")
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			payload := fmt.Sprint("in flight ", i)
			reply, err := c.Send(testContext(t), "P", payload)
			if err == nil {
				err = VerifySHA1(payload, reply)
			}
			if err != nil {
				t.Errorf("a message in hand at shutdown: %v", err)
			}
		}()
	}
	for range 4 {
		<-entered
	}
	startServerNoListener(t, p, &Server{ID: "other", Policy: "P", ProxyAddr: addr})
	stop()
	waitFor(t, "the draining server to leave the rotation", func() bool {
		return len(ids(p.Servers("P"))) == 1 && p.Servers("P")[0].ID == "other"
	})
	reply, err := c.Send(testContext(t), "P", "new")
	if err != nil || reply.SrcID != "other" {
		t.Errorf("a new message: %v, %v; want the other server's reply", reply, err)
	}
	wg.Wait()
	if err := <-done; err != nil {
		t.Errorf("Serve = %v", err)
	}
}
