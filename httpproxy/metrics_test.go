package httpproxy

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/seed-c202d8a5/revproxy"
)

// TestMetrics: the front door's counters, served by revproxy.Admin next to
// the message proxy's, are read by the Prometheus project's own parser and
// count what the test did.
func TestMetrics(t *testing.T) {
	rp, addr := startTable(t)
	web := backend(t, "web")
	register(t, rp, &revproxy.Server{ID: "w", Policy: "web", ProxyAddr: addr, HTTPPort: portOf(t, web)})
	front := &Proxy{Table: rp, Routes: []Route{{Prefix: "/web/", Policy: "web"}}}
	base := "http://" + serve(t, front)
	client := newClient(t)
	for range 3 {
		if code, body, _ := getBody(t, client, base+"/web/x"); code != http.StatusOK {
			t.Fatalf("GET: %d %s", code, body)
		}
	}
	getBody(t, client, base+"/nothing")
	// A forward request while forwarding is off.
	req, _ := http.NewRequest(http.MethodGet, base, nil)
	req.URL.Path, req.RequestURI = "", ""
	pc := &http.Transport{Proxy: http.ProxyURL(req.URL)}
	t.Cleanup(pc.CloseIdleConnections)
	resp, err := (&http.Client{Transport: pc}).Get("http://example.invalid/")
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()

	admin := httptest.NewServer(&revproxy.Admin{Proxy: rp, Metrics: front.AppendMetrics})
	t.Cleanup(admin.Close)
	_, text, _ := getBody(t, client, admin.URL+"/metrics")
	parser := expfmt.NewTextParser(model.LegacyValidation)
	families, err := parser.TextToMetricFamilies(strings.NewReader(text))
	if err != nil {
		t.Fatalf("the Prometheus parser refuses /metrics: %v\n%s", err, text)
	}
	for _, tc := range []struct {
		family string
		labels []string
		want   float64
	}{
		{"revproxy_http_requests_total", []string{"kind", "reverse"}, 3},
		{"revproxy_http_requests_total", []string{"kind", "none"}, 1},
		{"revproxy_http_requests_total", []string{"kind", "refused"}, 1},
		{"revproxy_http_responses_total", []string{"kind", "reverse", "class", "2xx"}, 3},
		{"revproxy_http_responses_total", []string{"kind", "none", "class", "4xx"}, 1},
		{"revproxy_http_refused_total", []string{"reason", "not_forward"}, 1},
		{"revproxy_server_http_requests_total", []string{"policy", "web", "server", "w", "result", "answered"}, 3},
		{"revproxy_http_tunnels", nil, 0},
	} {
		m := find(families[tc.family], tc.labels...)
		if m == nil {
			t.Errorf("%s%v missing", tc.family, tc.labels)
			continue
		}
		got := m.GetCounter().GetValue() + m.GetGauge().GetValue()
		if got != tc.want {
			t.Errorf("%s%v = %v; want %v", tc.family, tc.labels, got, tc.want)
		}
	}
	h := families["revproxy_http_upstream_latency_seconds"]
	if h.GetType() != dto.MetricType_HISTOGRAM || h.GetMetric()[0].GetHistogram().GetSampleCount() != 3 {
		t.Errorf("upstream latency: %v; want a histogram of 3", h)
	}

	cards := map[string]revproxy.StatusCard{}
	for _, c := range front.StatusCards() {
		cards[c.Title] = c
	}
	if c := cards["HTTP requests"]; c.Value != "5" || c.Detail != "forward 0 · reverse 3 · gateway 0 · tunnels 0" {
		t.Errorf("requests card %+v", c)
	}
	if c := cards["HTTP errors"]; c.Value != "0" || c.Detail != "5xx; 4xx 2, of which refused 1" {
		t.Errorf("errors card %+v", c)
	}
	if c := cards["Upstream p99"]; !strings.HasPrefix(c.Value, "≤ ") || !strings.HasSuffix(c.Detail, " · 3 requests") {
		t.Errorf("upstream card %+v", c)
	}
}

// find returns the sample of f with exactly labels (name, value pairs).
func find(f *dto.MetricFamily, labels ...string) *dto.Metric {
	for _, m := range f.GetMetric() {
		got := map[string]string{}
		for _, l := range m.GetLabel() {
			got[l.GetName()] = l.GetValue()
		}
		match := len(got) == len(labels)/2
		for i := 0; match && i+1 < len(labels); i += 2 {
			match = got[labels[i]] == labels[i+1]
		}
		if match {
			return m
		}
	}
	return nil
}
