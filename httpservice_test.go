package revproxy

import (
	"context"
	"errors"
	"strconv"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/seed-c202d8a5/revproxy/internal/wire"
)

// TestPickHTTP: servers that announce an HTTP service are chosen for HTTP
// requests by the policy's balancer, at the host they registered from and
// the port they announced; the others, and those tried, are passed over;
// Done counts the outcome once.
func TestPickHTTP(t *testing.T) {
	p, addr := startProxy(t)
	for _, s := range []*Server{
		{ID: "a", Policy: "P", ProxyAddr: addr, HTTPPort: 8001},
		{ID: "plain", Policy: "P", ProxyAddr: addr},
		{ID: "b", Policy: "P", ProxyAddr: addr, HTTPPort: 8002},
	} {
		startServer(t, p, s)
	}
	var got []string
	for range 4 {
		tg, err := p.PickHTTP("P", nil)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, tg.ID+" "+tg.Addr)
		tg.Done(nil)
		tg.Done(errors.New("refused")) // a second call counts nothing
	}
	want := []string{"a 127.0.0.1:8001", "b 127.0.0.1:8002", "a 127.0.0.1:8001", "b 127.0.0.1:8002"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("choices (-want +got):\n%s", diff)
	}

	first, _ := p.PickHTTP("P", nil)
	second, err := p.PickHTTP("P", []HTTPTarget{first})
	if err != nil || second.ID == first.ID {
		t.Fatalf("after %s failed: %s, %v; want the other", first.ID, second.ID, err)
	}
	if _, err := p.PickHTTP("P", []HTTPTarget{first, second}); !errors.Is(err, ErrNoServer) {
		t.Errorf("every HTTP server tried: %v; want ErrNoServer", err)
	}
	s := p.Stats()
	counts := map[string]string{}
	for _, sv := range s.Policies[0].Servers {
		counts[sv.ID] = sv.HTTPAddr + " " + strconv.Itoa(sv.InFlight) + " " + strconv.FormatUint(sv.HTTPAnswered, 10)
	}
	if diff := cmp.Diff(map[string]string{"a": "127.0.0.1:8001 1 2", "b": "127.0.0.1:8002 1 2", "plain": " 0 0"}, counts); diff != "" {
		t.Errorf("addr, in flight, answered (-want +got):\n%s", diff)
	}
	first.Done(errors.New("refused"))
	second.Done(errors.New("refused"))
	for _, sv := range p.Stats().Policies[0].Servers {
		if sv.InFlight != 0 || (sv.ID != "plain" && sv.HTTPFailed != 1) {
			t.Errorf("%s: in flight %d, failed %d; want 0 and 1", sv.ID, sv.InFlight, sv.HTTPFailed)
		}
	}
	if _, err := p.PickHTTP("Q", nil); !errors.Is(err, ErrNoServer) {
		t.Errorf("unknown policy: %v; want ErrNoServer", err)
	}
}

// TestPickHTTPSkipsDraining: a server that drains takes no more HTTP
// requests; one that left is not chosen either.
func TestPickHTTPSkipsDraining(t *testing.T) {
	p, addr := startProxy(t)
	startServer(t, p, &Server{ID: "a", Policy: "P", ProxyAddr: addr, HTTPPort: 8001})
	ctx, stop := context.WithCancel(context.Background())
	b := &Server{ID: "b", Policy: "P", ProxyAddr: addr, HTTPPort: 8002}
	ln := listen(t)
	done := make(chan error, 1)
	go func() { done <- b.Serve(ctx, ln) }()
	waitFor(t, "b to register", func() bool { return len(p.Servers("P")) == 2 })
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	waitFor(t, "b to leave", func() bool { return len(p.Servers("P")) == 1 })
	for range 3 {
		tg, err := p.PickHTTP("P", nil)
		if err != nil || tg.ID != "a" {
			t.Fatalf("picked %q, %v; want a", tg.ID, err)
		}
		tg.Done(nil)
	}
}

// TestHTTPPortOutOfRange: a Server refuses an HTTP port that is not one,
// and a proxy refuses a setup message that announces one.
func TestHTTPPortOutOfRange(t *testing.T) {
	_, addr := startProxy(t)
	s := &Server{ID: "a", Policy: "P", ProxyAddr: addr, HTTPPort: 70000}
	if err := s.Serve(context.Background(), listen(t)); !errors.Is(err, ErrConfig) {
		t.Errorf("Serve = %v; want ErrConfig", err)
	}
	c := dialRaw(t, addr)
	c.Write([]byte(`{"type":1,"id":"x","privPolyId":"P","listenport":9,"mux":true,"httpport":-1}` + "\n"))
	if m := readOne(t, c, wire.NewReader(c, 1<<16)); m.Type != TypeError {
		t.Errorf("answer %+v; want an error message", m)
	}
}

// TestAdminHTTPMetrics: a server's HTTP requests show in /metrics, and the
// families Admin.Metrics appends follow the proxy's own, all read by the
// Prometheus parser.
func TestAdminHTTPMetrics(t *testing.T) {
	p, addr := startProxy(t)
	startServer(t, p, &Server{ID: "a", Policy: "P", ProxyAddr: addr, HTTPPort: 8001})
	startServer(t, p, &Server{ID: "plain", Policy: "P", ProxyAddr: addr})
	for _, outcome := range []error{nil, nil, errors.New("refused"), context.Canceled} {
		tg, err := p.PickHTTP("P", nil)
		if err != nil {
			t.Fatal(err)
		}
		tg.Done(outcome) // a client that gave up counts as neither
	}
	extra := func(b []byte) []byte {
		return append(b, "# HELP front_requests_total Requests.\n# TYPE front_requests_total counter\nfront_requests_total 7\n"...)
	}
	_, text := get(t, startAdmin(t, &Admin{Proxy: p, Metrics: extra}, nil)+"metrics")
	families := parseMetrics(t, text)
	f := families["revproxy_server_http_requests_total"]
	for result, want := range map[string]float64{"answered": 2, "failed": 1} {
		if m := sample(f, "policy", "P", "server", "a", "result", result); m == nil || value(m) != want {
			t.Errorf("a's %s requests: %v; want %v", result, m, want)
		}
	}
	if m := sample(f, "policy", "P", "server", "plain", "result", "answered"); m != nil {
		t.Errorf("a server without an HTTP service has a sample: %v", m)
	}
	if m := sample(families["front_requests_total"]); m == nil || value(m) != 7 {
		t.Errorf("the appended family: %v; want 7", m)
	}
}
