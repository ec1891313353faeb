package revproxy

import (
	"context"
	"errors"
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

// TestTimeoutCarried: the time a client's context leaves reaches the
// handler as its deadline, and the proxy answers ErrTimeout when it passes.
func TestTimeoutCarried(t *testing.T) {
	p, addr := startProxy(t)
	sawDeadline := make(chan time.Duration, 1)
	stuck := HandlerFunc(func(ctx context.Context, m *Message) (string, error) {
		if d, ok := ctx.Deadline(); ok {
			sawDeadline <- time.Until(d)
		} else {
			sawDeadline <- 0
		}
		<-ctx.Done()
		return "", ctx.Err()
	})
	startServerNoListener(t, p, &Server{ID: "1", Policy: "P", ProxyAddr: addr, Handler: stuck, DrainTimeout: -1})
	c := newClient(t, addr, "50")
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	_, err := c.Send(ctx, "P", "x")
	if !errors.Is(err, ErrTimeout) && !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Send = %v, want a timeout", err)
	}
	if d := <-sawDeadline; d <= 0 || d > 200*time.Millisecond {
		t.Errorf("the handler's deadline was %v away, want within the client's 200ms", d)
	}

}

// TestProxyAnswersTimeout: for a message carrying a timeout, the proxy
// itself answers ErrTimeout when it passes, whatever the client does.
func TestProxyAnswersTimeout(t *testing.T) {
	p, addr := startProxy(t)
	stuck := HandlerFunc(func(ctx context.Context, m *Message) (string, error) {
		<-ctx.Done()
		return "", ctx.Err()
	})
	startServerNoListener(t, p, &Server{ID: "1", Policy: "P", ProxyAddr: addr, Handler: stuck, DrainTimeout: -1, Heartbeat: -1})
	m := rawAnswer(t, addr, `{"type":0,"srcid":9,"privPoliId":"P","payload":"x","seq":7,"timeout":50}`)
	if m.Code != codeTimeout || m.Seq != 7 {
		t.Errorf("answer %+v, want a timeout error for seq 7", m)
	}
}
