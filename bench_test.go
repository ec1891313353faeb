package revproxy

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/seed-c202d8a5/revproxy/internal/wire"
)

var benchMessage = []byte(`{"type":0,"srcid":50,"privPoliId":"PP_1","payloadsize":64,"payload":"` +
	strings.Repeat("x", 64) + `","seq":12345}`)

// BenchmarkDecode compares the encoding/json-based reference decoder with
// the hand-written one, and with the proxy's frame, which decodes only what
// it routes on.
func BenchmarkDecode(b *testing.B) {
	b.Run("reference", func(b *testing.B) {
		b.ReportAllocs()
		var m Message
		for b.Loop() {
			referenceDecode(benchMessage, &m)
		}
	})
	b.Run("message", func(b *testing.B) {
		b.ReportAllocs()
		var m Message
		for b.Loop() {
			decodeMessage(benchMessage, &m)
		}
	})
	b.Run("frame", func(b *testing.B) {
		b.ReportAllocs()
		var fr frame
		for b.Loop() {
			fr.decode(benchMessage)
			fr.policy()
		}
	})
}

func BenchmarkEncode(b *testing.B) {
	var m Message
	decodeMessage(benchMessage, &m)
	var fr frame
	fr.decode(benchMessage)
	buf := make([]byte, 0, 512)
	b.Run("message", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			buf = appendMessage(buf[:0], &m, false)
		}
	})
	b.Run("frame", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			buf = appendData(buf[:0], &fr, 7, false)
		}
	})
}

// BenchmarkProxyPath measures the proxy alone: a raw client pipelines
// tagged data messages and a raw multiplexed server answers them, both
// without allocating, so allocs/op is the proxy's per-message figure.
func BenchmarkProxyPath(b *testing.B) {
	for _, size := range []int{64, 4096} {
		b.Run(fmt.Sprintf("payload=%d", size), func(b *testing.B) { proxyPath(b, size) })
	}
}

// TestProxyPathAllocatesNothing: counting every message for Stats keeps the
// proxy's path free of allocations. The count is the whole process's, so
// goroutines that other tests left winding down may add a few: one
// allocation per message would be 1.0, and the better of two runs must stay
// under a tenth of that.
func TestProxyPathAllocatesNothing(t *testing.T) {
	best := 1e9
	for range 2 {
		r := testing.Benchmark(func(b *testing.B) { proxyPath(b, 64) })
		if r.N < 1000 {
			t.Fatalf("only %d messages went through", r.N)
		}
		best = min(best, float64(r.MemAllocs)/float64(r.N))
	}
	if best >= 0.1 {
		t.Errorf("%.3f allocations per message; want none", best)
	}
}

// proxyPath pipelines b.N messages of size bytes through a proxy, from a
// raw client to a raw multiplexed server.
func proxyPath(b *testing.B, size int) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	p := &Proxy{}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); p.Serve(ctx, ln) }()
	defer wg.Wait()
	defer cancel()
	addr := ln.Addr().String()

	srv, err := net.Dial("tcp", addr)
	if err != nil {
		b.Fatal(err)
	}
	defer srv.Close()
	srv.Write([]byte(`{"type":1,"id":"1","privPolyId":"PP_1","listenport":0,"hold":true,"mux":true}` + "\n"))
	go rawServer(srv)
	for len(p.Servers("PP_1")) == 0 {
	}

	cl, err := net.Dial("tcp", addr)
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	payload := strings.Repeat("x", size)
	const window = 128
	credits := make(chan struct{}, window)
	done := make(chan error, 1)
	go func() { done <- rawReader(cl, b.N, credits) }()

	b.ReportAllocs()
	b.SetBytes(int64(size))
	b.ResetTimer()
	var out []byte
	for i := 1; i <= b.N; i++ {
		credits <- struct{}{}
		out = append(out[:0], `{"type":0,"srcid":50,"privPoliId":"PP_1","payloadsize":`...)
		out = strconv.AppendInt(out, int64(size), 10)
		out = append(out, `,"payload":"`...)
		out = append(out, payload...)
		out = append(out, `","seq":`...)
		out = strconv.AppendInt(out, int64(i), 10)
		out = append(out, "}\n"...)
		if _, err := cl.Write(out); err != nil {
			b.Fatal(err)
		}
	}
	if err := <-done; err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
}

// rawServer answers each data message with a fixed reply carrying its seq.
func rawServer(c net.Conn) {
	r := wire.NewReader(c, 1<<20)
	var fr frame
	out := make([]byte, 0, 256)
	for {
		data, err := r.Next()
		if err != nil {
			return
		}
		if fr.decode(data) != nil || fr.typ != TypeData {
			continue
		}
		out = append(out[:0], `{"type":2,"srcid":1,"destid":50,"payloadsize":40,"payload":"0123456789012345678901234567890123456789","seq":`...)
		out = strconv.AppendUint(out, fr.seq, 10)
		out = append(out, "}\n"...)
		if _, err := c.Write(out); err != nil {
			return
		}
	}
}

// rawReader reads n answers, returning a credit for each.
func rawReader(c net.Conn, n int, credits chan struct{}) error {
	r := wire.NewReader(c, 1<<20)
	var fr frame
	for range n {
		data, err := r.Next()
		if err != nil {
			return err
		}
		if err := fr.decode(data); err != nil {
			return err
		}
		if fr.typ != TypeReply {
			return fmt.Errorf("got a %s message: %s", fr.typ, data)
		}
		<-credits
	}
	return nil
}

// BenchmarkEndToEnd runs Client → Proxy → 2 Servers in one process with
// 32 goroutines sharing one Client.
func BenchmarkEndToEnd(b *testing.B) {
	ctx, cancel := context.WithCancel(context.Background())
	p := &Proxy{}
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	var wg sync.WaitGroup
	start := func(f func()) { wg.Add(1); go func() { defer wg.Done(); f() }() }
	start(func() { p.Serve(ctx, ln) })
	for _, id := range []string{"1", "2"} {
		s := &Server{ID: id, Policy: "PP_1", ProxyAddr: ln.Addr().String()}
		start(func() { s.Serve(ctx, nil) })
	}
	for len(p.Servers("PP_1")) < 2 {
	}
	c := &Client{ID: "50", ProxyAddr: ln.Addr().String()}
	payload := strings.Repeat("x", 64)
	b.ReportAllocs()
	b.SetParallelism(16) // × GOMAXPROCS goroutines
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := c.Send(ctx, "PP_1", payload); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	c.Close()
	cancel()
	wg.Wait()
}

// BenchmarkServers runs 32 clients, each with its own connection, against
// a policy served by 2 or 1000 Servers, as the bench's scale test does.
func BenchmarkServers(b *testing.B) {
	for _, n := range []int{1, 2, 1000} {
		b.Run(fmt.Sprintf("servers=%d", n), func(b *testing.B) {
			ctx, cancel := context.WithCancel(context.Background())
			p := &Proxy{}
			ln, _ := net.Listen("tcp", "127.0.0.1:0")
			var wg sync.WaitGroup
			start := func(f func()) { wg.Add(1); go func() { defer wg.Done(); f() }() }
			start(func() { p.Serve(ctx, ln) })
			for i := range n {
				s := &Server{ID: strconv.Itoa(i), Policy: "PP_1", ProxyAddr: ln.Addr().String()}
				start(func() { s.Serve(ctx, nil) })
			}
			for len(p.Servers("PP_1")) < n {
			}
			clients := make(chan *Client, 32)
			for range 32 {
				clients <- &Client{ID: "50", ProxyAddr: ln.Addr().String()}
			}
			payload := strings.Repeat("x", 64)
			b.ReportAllocs()
			b.SetParallelism(16)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				c := <-clients
				defer func() { clients <- c }()
				for pb.Next() {
					if _, err := c.Send(ctx, "PP_1", payload); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.StopTimer()
			for range 32 {
				(<-clients).Close()
			}
			cancel()
			wg.Wait()
		})
	}
}
