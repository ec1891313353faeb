// Command plainproxy is the HTTP proxy a Go user writes in ten lines with
// net/http/httputil, for the benchmark to compare the front door with: a
// ReverseProxy that sends each request to the next of its backends, round
// robin, with the default Transport and http.ListenAndServe.
//
//	plainproxy -listen 127.0.0.1:8080 http://127.0.0.1:8001 http://127.0.0.1:8002
//	plainproxy -listen 127.0.0.1:8080 -forward
//
// With -forward it is a forward proxy instead: the absolute-form URL each
// request carries is where it goes.
package main

import (
	"flag"
	"log"
	"net/http"
	"net/http/httputil"
	"net/url"
	"sync/atomic"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:8080", "the `ADDR` to serve on")
	forward := flag.Bool("forward", false, "be a forward proxy: send each request to its absolute-form URL")
	flag.Parse()

	var backends []*url.URL
	for _, arg := range flag.Args() {
		u, err := url.Parse(arg)
		if err != nil {
			log.Fatal(err)
		}
		backends = append(backends, u)
	}
	if !*forward && len(backends) == 0 {
		log.Fatal("give the backends' URLs, or -forward")
	}
	var next atomic.Uint64
	proxy := &httputil.ReverseProxy{Rewrite: func(pr *httputil.ProxyRequest) {
		if !*forward { // a forward request keeps its absolute URL
			pr.SetURL(backends[next.Add(1)%uint64(len(backends))])
		}
		pr.SetXForwarded()
	}}
	log.Fatal(http.ListenAndServe(*listen, proxy))
}
