package httpproxy_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"

	"golang.org/x/sync/errgroup"

	"github.com/seed-c202d8a5/revproxy"
	"github.com/seed-c202d8a5/revproxy/httpproxy"
)

// Example puts the front door before a message proxy: a server for PP_1
// that also runs an HTTP service, reached by the path prefix /api/, and
// the gateway, which sends a POST's body to PP_1 as a data message.
func Example() {
	ctx, cancel := context.WithCancel(context.Background())
	g, ctx := errgroup.WithContext(ctx)
	defer g.Wait()
	defer cancel()

	proxy := &revproxy.Proxy{}
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	g.Go(func() error { return proxy.Serve(ctx, ln) })

	// The server's HTTP service, and the server, which announces it.
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "api answered %s", r.URL.Path)
	}))
	defer api.Close()
	_, port, _ := net.SplitHostPort(api.Listener.Addr().String())
	httpPort, _ := strconv.Atoi(port)
	server := &revproxy.Server{ID: "100", Policy: "PP_1", ProxyAddr: ln.Addr().String(), HTTPPort: httpPort}
	g.Go(func() error { return server.Serve(ctx, nil) })
	proxy.WaitServers(ctx, "PP_1", 1)

	client := &revproxy.Client{ID: "gateway", ProxyAddr: ln.Addr().String()}
	defer client.Close()
	front := &httpproxy.Proxy{
		Table:   proxy,
		Routes:  []httpproxy.Route{{Prefix: "/api/", Policy: "PP_1"}},
		Gateway: client,
	}
	fln, _ := net.Listen("tcp", "127.0.0.1:0")
	g.Go(func() error { return front.Serve(ctx, fln) })
	base := "http://" + fln.Addr().String()

	show := func(resp *http.Response, err error) {
		if err != nil {
			fmt.Println(err)
			return
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		fmt.Println(resp.StatusCode, string(body))
	}
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr}
	show(c.Get(base + "/api/users"))
	show(c.Post(base+"/msg/PP_1", "text/plain", strings.NewReader("hello")))
	// Output:
	// 200 api answered /api/users
	// 200 aaf4c61ddcc5e8a2dabede0f3b482cd9aea9434d
}

// ExampleProxy_forward is a forward proxy, as browsers and curl -x use
// one: the client names the proxy, and asks it for absolute URLs.
func ExampleProxy_forward() {
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello from the origin, via %s", r.Header.Get("Via"))
	}))
	defer origin.Close()

	ctx, cancel := context.WithCancel(context.Background())
	front := &httpproxy.Proxy{Forward: true}
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	done := make(chan error, 1)
	go func() { done <- front.Serve(ctx, ln) }()
	defer func() { cancel(); <-done }()

	proxyURL, _ := url.Parse("http://" + ln.Addr().String())
	tr := &http.Transport{Proxy: http.ProxyURL(proxyURL)}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Get(origin.URL)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	fmt.Println(string(body))
	// Output:
	// hello from the origin, via 1.1 revproxy
}
