package revproxy

import (
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"syscall"
	"testing"
	"time"
)

// FuzzProxyConn feeds arbitrary bytes to a proxy connection: the proxy must
// answer or close it, never hang or crash, and go on serving others.
func FuzzProxyConn(f *testing.F) {
	for _, s := range []string{
		`{"type":0,"srcid":50,"privPoliId":"PP_1","payload":"hello","seq":1}`,
		`{"type":"0","srcid":"50","privPolyId":"PP_1","payload":"a"}{"type":0,"privPoliId":"PP_1"}`,
		`{"type":1,"id":"9","privPolyId":"PP_1","listenport":1,"hold":true}`,
		`{"type":1,"id":"8","privPolyId":"PP_2","mux":true}{"type":2,"seq":1}`,
		`{"type":2,"srcid":1}`, `{"type":0,"payload":"x"`, `nonsense`, `{}`, `[{]}`,
	} {
		f.Add([]byte(s))
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &Proxy{FirstMessageTimeout: time.Second, IdleTimeout: time.Second}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		f.Fatal(err)
	}
	addr := ln.Addr().String()
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); p.Serve(ctx, ln) }()
	go func() { defer wg.Done(); (&Server{ID: "1", Policy: "PP_1", ProxyAddr: addr}).Serve(ctx, nil) }()
	f.Cleanup(func() { cancel(); wg.Wait() })
	for len(p.Servers("PP_1")) == 0 {
		time.Sleep(time.Millisecond)
	}
	client := &Client{ID: "50", ProxyAddr: addr}
	f.Cleanup(func() { client.Close() })

	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.Write(data)
		c.(*net.TCPConn).CloseWrite()
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		// A reset is a close too: the proxy may refuse before reading all.
		if _, err := io.Copy(io.Discard, c); err != nil && !errors.Is(err, syscall.ECONNRESET) {
			t.Fatalf("the proxy neither answered nor closed: %v", err)
		}
		sendCtx, stop := context.WithTimeout(context.Background(), 5*time.Second)
		defer stop()
		if _, err := client.Send(sendCtx, "PP_1", "still serving"); err != nil {
			t.Fatalf("after %q the proxy no longer serves: %v", data, err)
		}
	})
}
