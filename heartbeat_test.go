package revproxy

import (
	"context"
	"io"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/seed-c202d8a5/revproxy/internal/wire"
)

// TestSilentServerDropped: a server that announced heartbeats and then goes
// silent, its connection still open, leaves the table.
func TestSilentServerDropped(t *testing.T) {
	p, addr := startProxy(t)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, `{"type":1,"id":"1","privPolyId":"P","hold":true,"mux":true,"heartbeat":30}`)
	waitFor(t, "the server to register", func() bool { return len(p.Servers("P")) == 1 })
	waitFor(t, "the silent server to be dropped", func() bool { return len(p.Servers("P")) == 0 })
}

// TestHeartbeatKeepsServer: a server that pings stays registered well past
// three intervals, and serves.
func TestHeartbeatKeepsServer(t *testing.T) {
	p, addr := startProxy(t)
	// Each side drops the other after three silent intervals: at 100ms,
	// that is a 300ms stall, which even a busy machine under -race does not
	// reach, where 20ms intervals were dropped.
	startServerNoListener(t, p, &Server{ID: "1", Policy: "P", ProxyAddr: addr, Heartbeat: 100 * time.Millisecond})
	time.Sleep(time.Second) // ten intervals
	if n := len(p.Servers("P")); n != 1 {
		t.Fatalf("%d servers registered, want 1", n)
	}
	c := newClient(t, addr, "50")
	if _, err := c.Send(testContext(t), "P", "x"); err != nil {
		t.Error(err)
	}
}

// TestSilentProxyDetected: a proxy that acknowledges and then neither
// answers pings nor closes is taken for gone, and the server registers
// again.
func TestSilentProxyDetected(t *testing.T) {
	ln := listen(t)
	defer ln.Close()
	var registrations atomic.Int32
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			registrations.Add(1)
			go func() {
				defer c.Close()
				if _, err := wire.NewReader(c, 1<<20).Next(); err != nil {
					return
				}
				io.WriteString(c, `{"type":1,"id":"1","privPolyId":"P"}`+"\n")
				io.Copy(io.Discard, c) // silent from now on
			}()
		}
	}()
	runRole(t, func(ctx context.Context) error {
		return (&Server{ID: "1", Policy: "P", ProxyAddr: ln.Addr().String(), Heartbeat: 20 * time.Millisecond}).Serve(ctx, nil)
	})
	waitFor(t, "the server to register again", func() bool { return registrations.Load() >= 2 })
}
