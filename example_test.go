package revproxy_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/seed-c202d8a5/revproxy"
)

// runProxy starts p on a free loopback port until ctx ends and returns its
// address.
func runProxy(ctx context.Context, p *revproxy.Proxy) (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	go p.Serve(ctx, ln) // returns nil once ctx ends
	return ln.Addr().String(), nil
}

// Example runs the whole system in one process: a proxy, two SHA1 servers
// for PP_1 and a client whose five messages are shared round robin.
func Example() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	proxy := &revproxy.Proxy{}
	addr, err := runProxy(ctx, proxy)
	if err != nil {
		fmt.Println(err)
		return
	}
	for n, id := range []string{"1", "2"} {
		s := &revproxy.Server{ID: id, Policy: "PP_1", ProxyAddr: addr}
		go s.Serve(ctx, nil)
		// One at a time, so that they take their turns in this order.
		if err := proxy.WaitServers(ctx, "PP_1", n+1); err != nil {
			fmt.Println(err)
			return
		}
	}

	client := &revproxy.Client{ID: "50", ProxyAddr: addr}
	defer client.Close()
	for i := 1; i <= 5; i++ {
		payload := fmt.Sprintf("message %d", i)
		reply, err := client.Send(ctx, "PP_1", payload)
		if err != nil {
			fmt.Println(err)
			return
		}
		fmt.Printf("%s: server %s, sha1 ok: %v\n", payload, reply.SrcID, revproxy.VerifySHA1(payload, reply) == nil)
	}
	// Output:
	// message 1: server 1, sha1 ok: true
	// message 2: server 2, sha1 ok: true
	// message 3: server 1, sha1 ok: true
	// message 4: server 2, sha1 ok: true
	// message 5: server 1, sha1 ok: true
}

// ExampleProxy runs a proxy and shows the error a client gets for a policy no
// server serves.
func ExampleProxy() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Println(err)
		return
	}
	proxy := &revproxy.Proxy{}
	done := make(chan error, 1)
	go func() { done <- proxy.Serve(ctx, ln) }()

	client := &revproxy.Client{ID: "50", ProxyAddr: ln.Addr().String()}
	_, err = client.Send(ctx, "PP_9", "hello")
	fmt.Println(err)
	fmt.Println(errors.Is(err, revproxy.ErrNoServer))
	client.Close()

	cancel()
	fmt.Println("Serve returned:", <-done)
	// Output:
	// revproxy: error from proxy: no server for policy PP_9
	// true
	// Serve returned: <nil>
}

// ExampleProxy_WaitServers starts a server before its proxy: the server
// keeps trying to register, and the program waits until the proxy has it.
func ExampleProxy_WaitServers() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Println(err)
		return
	}
	server := &revproxy.Server{ID: "100", Policy: "PP_1", ProxyAddr: ln.Addr().String()}
	go server.Serve(ctx, nil) // before the proxy serves: it tries again

	proxy := &revproxy.Proxy{}
	go proxy.Serve(ctx, ln)
	if err := proxy.WaitServers(ctx, "PP_1", 1); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(proxy.Servers("PP_1")[0].ID, "serves PP_1")
	// Output: 100 serves PP_1
}

// ExampleServer registers a server with a custom handler.
func ExampleServer() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	proxy := &revproxy.Proxy{}
	addr, err := runProxy(ctx, proxy)
	if err != nil {
		fmt.Println(err)
		return
	}

	server := &revproxy.Server{
		ID:        "100",
		Policy:    "UPPER",
		ProxyAddr: addr,
		Handler: revproxy.HandlerFunc(func(ctx context.Context, m *revproxy.Message) (string, error) {
			return strings.ToUpper(m.Payload), nil
		}),
	}
	go server.ListenAndServe(ctx, "127.0.0.1:0")
	if err := proxy.WaitServers(ctx, "UPPER", 1); err != nil {
		fmt.Println(err)
		return
	}

	client := &revproxy.Client{ID: "50", ProxyAddr: addr}
	defer client.Close()
	reply, err := client.Send(ctx, "UPPER", "hello")
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(reply.SrcID, reply.Payload)
	// Output: 100 HELLO
}

// ExampleClient sends a message and checks the SHA1 reply.
func ExampleClient() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	proxy := &revproxy.Proxy{}
	addr, err := runProxy(ctx, proxy)
	if err != nil {
		fmt.Println(err)
		return
	}
	go (&revproxy.Server{ID: "100", Policy: "PP_1", ProxyAddr: addr}).Serve(ctx, nil)
	if err := proxy.WaitServers(ctx, "PP_1", 1); err != nil {
		fmt.Println(err)
		return
	}

	client := &revproxy.Client{ID: "50", ProxyAddr: addr}
	defer client.Close()
	reply, err := client.Send(ctx, "PP_1", "hello")
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(reply.Payload)
	fmt.Println(revproxy.VerifySHA1("hello", reply))
	// Output:
	// aaf4c61ddcc5e8a2dabede0f3b482cd9aea9434d
	// <nil>
}

// ExampleClient_retry sends before any server serves the policy: with Retry,
// Send tries again, with backoff, until one does or its context ends. Set
// Retry only when a message handled twice does no harm.
func ExampleClient_retry() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	proxy := &revproxy.Proxy{}
	addr, err := runProxy(ctx, proxy)
	if err != nil {
		fmt.Println(err)
		return
	}

	client := &revproxy.Client{ID: "50", ProxyAddr: addr, Retry: true}
	defer client.Close()
	answer := make(chan string, 1)
	go func() {
		reply, err := client.Send(ctx, "PP_1", "hello") // no_server, for now
		if err != nil {
			answer <- err.Error()
			return
		}
		answer <- "answered by " + reply.SrcID
	}()

	go (&revproxy.Server{ID: "100", Policy: "PP_1", ProxyAddr: addr}).Serve(ctx, nil)
	fmt.Println(<-answer)
	// Output: answered by 100
}

// ExampleRemoteError tells the far side's refusals apart: errors.Is matches
// the sentinel error for the code, errors.As gives who sent it and why.
func ExampleRemoteError() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	proxy := &revproxy.Proxy{}
	addr, err := runProxy(ctx, proxy)
	if err != nil {
		fmt.Println(err)
		return
	}
	picky := revproxy.HandlerFunc(func(ctx context.Context, m *revproxy.Message) (string, error) {
		if m.Payload == "" {
			return "", errors.New("empty payload")
		}
		return m.Payload, nil
	})
	go (&revproxy.Server{ID: "7", Policy: "ECHO", ProxyAddr: addr, Handler: picky}).Serve(ctx, nil)
	if err := proxy.WaitServers(ctx, "ECHO", 1); err != nil {
		fmt.Println(err)
		return
	}

	client := &revproxy.Client{ID: "50", ProxyAddr: addr}
	defer client.Close()
	for _, policy := range []string{"ECHO", "PP_9"} {
		_, err := client.Send(ctx, policy, "")
		var re *revproxy.RemoteError
		if errors.As(err, &re) {
			fmt.Printf("from %s, code %s: %s (handler: %v, no server: %v)\n",
				re.From, re.Code, re.Text, errors.Is(err, revproxy.ErrHandler), errors.Is(err, revproxy.ErrNoServer))
		}
	}
	// Output:
	// from 7, code handler: empty payload (handler: true, no server: false)
	// from proxy, code no_server: no server for policy PP_9 (handler: false, no server: true)
}

// ExampleHandlerFunc turns a function into a Handler; an error it returns
// reaches the client as a RemoteError.
func ExampleHandlerFunc() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	proxy := &revproxy.Proxy{}
	addr, err := runProxy(ctx, proxy)
	if err != nil {
		fmt.Println(err)
		return
	}

	reverse := revproxy.HandlerFunc(func(ctx context.Context, m *revproxy.Message) (string, error) {
		r := []rune(m.Payload)
		for i, j := 0, len(r)-1; i < j; i, j = i+1, j-1 {
			r[i], r[j] = r[j], r[i]
		}
		return string(r), nil
	})
	go (&revproxy.Server{ID: "7", Policy: "REV", ProxyAddr: addr, Handler: reverse}).Serve(ctx, nil)
	if err := proxy.WaitServers(ctx, "REV", 1); err != nil {
		fmt.Println(err)
		return
	}

	client := &revproxy.Client{ID: "50", ProxyAddr: addr}
	defer client.Close()
	reply, err := client.Send(ctx, "REV", "stressed")
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(reply.Payload)
	// Output: desserts
}

// ExampleServer_Serve runs a server with no listener: a revproxy Proxy sends
// it messages over the connection it registered on, so it needs no open
// port and can sit behind NAT.
func ExampleServer_Serve() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	proxy := &revproxy.Proxy{}
	addr, err := runProxy(ctx, proxy)
	if err != nil {
		fmt.Println(err)
		return
	}

	server := &revproxy.Server{ID: "100", Policy: "PP_1", ProxyAddr: addr}
	go server.Serve(ctx, nil)
	if err := proxy.WaitServers(ctx, "PP_1", 1); err != nil {
		fmt.Println(err)
		return
	}

	client := &revproxy.Client{ID: "50", ProxyAddr: addr}
	defer client.Close()
	reply, err := client.Send(ctx, "PP_1", "hello")
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(reply.SrcID, revproxy.VerifySHA1("hello", reply) == nil)
	// Output: 100 true
}

// Example_tLS runs every link over TLS: the proxy presents a certificate,
// and the server and client trust it. (Here it is self-signed and made on
// the spot; use your own.)
func Example_tLS() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cert, roots, err := selfSigned("127.0.0.1")
	if err != nil {
		fmt.Println(err)
		return
	}
	proxy := &revproxy.Proxy{TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}}}
	addr, err := runProxy(ctx, proxy)
	if err != nil {
		fmt.Println(err)
		return
	}
	trust := &tls.Config{RootCAs: roots}
	go (&revproxy.Server{ID: "100", Policy: "PP_1", ProxyAddr: addr, TLSConfig: trust}).Serve(ctx, nil)
	if err := proxy.WaitServers(ctx, "PP_1", 1); err != nil {
		fmt.Println(err)
		return
	}

	client := &revproxy.Client{ID: "50", ProxyAddr: addr, TLSConfig: trust}
	defer client.Close()
	reply, err := client.Send(ctx, "PP_1", "hello")
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(reply.SrcID, revproxy.VerifySHA1("hello", reply) == nil)
	// Output: 100 true
}

// selfSigned makes a certificate for ip and a pool that trusts it.
func selfSigned(ip string) (tls.Certificate, *x509.CertPool, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		IPAddresses:  []net.IP{net.ParseIP(ip)},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	roots := x509.NewCertPool()
	roots.AddCert(leaf)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, roots, nil
}

// ExampleAdmin serves a proxy's admin pages under /admin/ of a program's
// own web server, and reads the snapshot at /admin/status.json as a script
// would.
func ExampleAdmin() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	proxy := &revproxy.Proxy{}
	addr, err := runProxy(ctx, proxy)
	if err != nil {
		fmt.Println(err)
		return
	}
	server := &revproxy.Server{ID: "100", Policy: "PP_1", ProxyAddr: addr}
	go server.Serve(ctx, nil)
	if err := proxy.WaitServers(ctx, "PP_1", 1); err != nil {
		fmt.Println(err)
		return
	}

	mux := http.NewServeMux()
	mux.Handle("/admin/", http.StripPrefix("/admin", &revproxy.Admin{Proxy: proxy}))
	web := httptest.NewServer(mux) // or an http.Server of your own
	defer web.Close()

	resp, err := http.Get(web.URL + "/admin/status.json")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer resp.Body.Close()
	var stats revproxy.Stats
	if err := json.NewDecoder(resp.Body).Decode(&stats); err != nil {
		fmt.Println(err)
		return
	}
	for _, p := range stats.Policies {
		for _, s := range p.Servers {
			fmt.Printf("%s (%s): server %s is %s\n", p.Name, p.Balancer, s.ID, s.State)
		}
	}
	// Output:
	// PP_1 (round-robin): server 100 is up
}
