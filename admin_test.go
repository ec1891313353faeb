package revproxy

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// adminPrefix is where the tests mount the admin handler, so that every
// test also checks that it works under a prefix.
const adminPrefix = "/admin"

// startAdmin serves a for the test's length, under adminPrefix, and
// returns the URL of its index (ending in a slash). wrap, if not nil,
// wraps the handler, with the prefix still on the path.
func startAdmin(t *testing.T, a *Admin, wrap func(http.Handler) http.Handler) string {
	t.Helper()
	mux := http.NewServeMux()
	mux.Handle(adminPrefix+"/", http.StripPrefix(adminPrefix, a))
	var h http.Handler = mux
	if wrap != nil {
		h = wrap(mux)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL + adminPrefix + "/"
}

// request requests url with method and returns the response and its body.
func request(t *testing.T, method, url string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(testContext(t), method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(body)
}

// get requests url and fails the test unless the answer is 200.
func get(t *testing.T, url string) (*http.Response, string) {
	t.Helper()
	resp, body := request(t, http.MethodGet, url)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s\n%s", url, resp.Status, body)
	}
	return resp, body
}

// runServers runs servers, without listeners, for the test's length, and
// waits until the proxy has them all up.
func runServers(t *testing.T, p *Proxy, servers ...*Server) {
	t.Helper()
	n := map[string]int{}
	for _, s := range servers {
		if _, ok := n[s.Policy]; !ok {
			n[s.Policy] = len(p.Servers(s.Policy))
		}
		runRole(t, func(ctx context.Context) error { return s.Serve(ctx, nil) })
		n[s.Policy]++
	}
	for policy, n := range n {
		if err := p.WaitServers(testContext(t), policy, n); err != nil {
			t.Fatal(err)
		}
	}
}

// send sends n messages to policy, one after the other, and fails the
// test if one is not answered with a reply.
func send(t *testing.T, c *Client, policy string, n int) {
	t.Helper()
	for i := range n {
		if _, err := c.Send(testContext(t), policy, fmt.Sprint("message ", i)); err != nil {
			t.Fatalf("message %d to %s: %v", i, policy, err)
		}
	}
}

// parseMetrics parses a /metrics answer with the Prometheus project's own
// parser, with the names its text format allows, and checks that no family
// repeats a label set (which the parser lets through).
func parseMetrics(t *testing.T, text string) map[string]*dto.MetricFamily {
	t.Helper()
	parser := expfmt.NewTextParser(model.LegacyValidation)
	families, err := parser.TextToMetricFamilies(strings.NewReader(text))
	if err != nil {
		t.Fatalf("the Prometheus parser refuses /metrics: %v\n%s", err, text)
	}
	for name, f := range families {
		seen := map[string]bool{}
		for _, m := range f.GetMetric() {
			key := labelsOf(m).String()
			if seen[key] {
				t.Errorf("%s repeats the labels %s", name, key)
			}
			seen[key] = true
		}
	}
	return families
}

// findServer returns server id of s, or nil when s lacks it.
func findServer(s *Stats, id string) *ServerStats {
	for i := range s.Policies {
		for j := range s.Policies[i].Servers {
			if ss := &s.Policies[i].Servers[j]; ss.ID == id {
				return ss
			}
		}
	}
	return nil
}

func labelsOf(m *dto.Metric) model.LabelSet {
	ls := model.LabelSet{}
	for _, l := range m.GetLabel() {
		ls[model.LabelName(l.GetName())] = model.LabelValue(l.GetValue())
	}
	return ls
}

// sample returns the metric of family with exactly labels (name, value
// pairs), or nil.
func sample(f *dto.MetricFamily, labels ...string) *dto.Metric {
	want := model.LabelSet{}
	for i := 0; i+1 < len(labels); i += 2 {
		want[model.LabelName(labels[i])] = model.LabelValue(labels[i+1])
	}
	for _, m := range f.GetMetric() {
		if labelsOf(m).Equal(want) {
			return m
		}
	}
	return nil
}

// value returns the value of a counter or gauge sample.
func value(m *dto.Metric) float64 {
	if m.GetCounter() != nil {
		return m.GetCounter().GetValue()
	}
	return m.GetGauge().GetValue()
}

// TestAdminMetrics sends 10 messages to two servers, round robin, and one
// to a policy nobody serves, and reads the metrics with the Prometheus
// parser: every family with its type and labels, and the figures the
// traffic makes.
func TestAdminMetrics(t *testing.T) {
	p, addr := startProxy(t)
	runServers(t, p,
		&Server{ID: "100", Policy: "PP_1", ProxyAddr: addr},
		&Server{ID: "101", Policy: "PP_1", ProxyAddr: addr, Weight: 1})
	c := newClient(t, addr, "50")
	send(t, c, "PP_1", 10)
	if _, err := c.Send(testContext(t), "PP_9", "nobody"); err == nil {
		t.Fatal("a message to PP_9 was answered")
	}
	base := startAdmin(t, &Admin{Proxy: p}, nil)
	stats := p.Stats()
	addr100 := findServer(&stats, "100").Addr

	resp, text := get(t, base+"metrics")
	if ct := resp.Header.Get("Content-Type"); ct != "text/plain; version=0.0.4; charset=utf-8" {
		t.Errorf("Content-Type %q", ct)
	}
	families := parseMetrics(t, text)
	serverLabels := []string{"policy", "server"}
	for _, want := range []struct {
		name   string
		typ    dto.MetricType
		labels []string
	}{
		{"revproxy_start_time_seconds", dto.MetricType_GAUGE, nil},
		{"revproxy_uptime_seconds", dto.MetricType_GAUGE, nil},
		{"revproxy_messages_total", dto.MetricType_COUNTER, nil},
		{"revproxy_answered_total", dto.MetricType_COUNTER, nil},
		{"revproxy_errors_total", dto.MetricType_COUNTER, []string{"code"}},
		{"revproxy_connections", dto.MetricType_GAUGE, nil},
		{"revproxy_server_connections", dto.MetricType_GAUGE, nil},
		{"revproxy_memory_used_bytes", dto.MetricType_GAUGE, nil},
		{"revproxy_memory_max_bytes", dto.MetricType_GAUGE, nil},
		{"revproxy_policy_servers", dto.MetricType_GAUGE, []string{"policy", "state"}},
		{"revproxy_server_info", dto.MetricType_GAUGE, []string{"addr", "link", "policy", "server"}},
		{"revproxy_server_up", dto.MetricType_GAUGE, serverLabels},
		{"revproxy_server_state", dto.MetricType_GAUGE, []string{"policy", "server", "state"}},
		{"revproxy_server_weight", dto.MetricType_GAUGE, serverLabels},
		{"revproxy_server_in_flight", dto.MetricType_GAUGE, serverLabels},
		{"revproxy_server_sent_total", dto.MetricType_COUNTER, serverLabels},
		{"revproxy_server_answered_total", dto.MetricType_COUNTER, serverLabels},
		{"revproxy_server_last_seen_seconds", dto.MetricType_GAUGE, serverLabels},
		{"revproxy_server_latency_seconds", dto.MetricType_HISTOGRAM, serverLabels},
	} {
		f := families[want.name]
		if f == nil {
			t.Errorf("no family %s", want.name)
			continue
		}
		if f.GetType() != want.typ || f.GetHelp() == "" {
			t.Errorf("%s: type %v, help %q; want %v and a help text", want.name, f.GetType(), f.GetHelp(), want.typ)
		}
		for _, m := range f.GetMetric() {
			var names []string
			for _, l := range m.GetLabel() {
				names = append(names, l.GetName())
			}
			slices.Sort(names)
			if !slices.Equal(names, want.labels) {
				t.Errorf("%s has labels %v, want %v", want.name, names, want.labels)
			}
		}
	}

	for _, want := range []struct {
		name   string
		labels []string
		value  float64
	}{
		{"revproxy_messages_total", nil, 11},
		{"revproxy_answered_total", nil, 10},
		{"revproxy_errors_total", []string{"code", "no_server"}, 1},
		{"revproxy_errors_total", []string{"code", "unavailable"}, 0},
		{"revproxy_memory_max_bytes", nil, 256 << 20},
		{"revproxy_policy_servers", []string{"policy", "PP_1", "state", "up"}, 2},
		{"revproxy_policy_servers", []string{"policy", "PP_1", "state", "ejected"}, 0},
		{"revproxy_server_info", []string{"policy", "PP_1", "server", "100", "link", "mux", "addr", addr100}, 1},
		{"revproxy_server_sent_total", []string{"policy", "PP_1", "server", "100"}, 5},
		{"revproxy_server_sent_total", []string{"policy", "PP_1", "server", "101"}, 5},
		{"revproxy_server_answered_total", []string{"policy", "PP_1", "server", "100"}, 5},
		{"revproxy_server_answered_total", []string{"policy", "PP_1", "server", "101"}, 5},
		{"revproxy_server_in_flight", []string{"policy", "PP_1", "server", "101"}, 0},
		{"revproxy_server_up", []string{"policy", "PP_1", "server", "100"}, 1},
		{"revproxy_server_state", []string{"policy", "PP_1", "server", "100", "state", "up"}, 1},
		{"revproxy_server_state", []string{"policy", "PP_1", "server", "100", "state", "draining"}, 0},
		{"revproxy_server_weight", []string{"policy", "PP_1", "server", "101"}, 1},
	} {
		m := sample(families[want.name], want.labels...)
		if m == nil {
			t.Errorf("no sample %s%v", want.name, want.labels)
		} else if got := value(m); got != want.value {
			t.Errorf("%s%v = %v, want %v", want.name, want.labels, got, want.value)
		}
	}
	if n := len(families["revproxy_errors_total"].GetMetric()); n != len(codes) {
		t.Errorf("revproxy_errors_total has %d codes, want all %d", n, len(codes))
	}
	if f := families["revproxy_server_errors_total"]; f != nil && len(f.GetMetric()) > 0 {
		t.Errorf("server errors counted where none happened: %v", f.GetMetric())
	}

	bounds := LatencyBounds()
	for _, id := range []string{"100", "101"} {
		h := sample(families["revproxy_server_latency_seconds"], "policy", "PP_1", "server", id).GetHistogram()
		if h.GetSampleCount() != 5 || h.GetSampleSum() <= 0 {
			t.Errorf("server %s: latency count %d, sum %v; want 5 (one per answer) and more than 0", id, h.GetSampleCount(), h.GetSampleSum())
		}
		buckets := h.GetBucket()
		if len(buckets) != len(bounds)+1 {
			t.Fatalf("server %s: %d buckets, want %d and +Inf", id, len(buckets), len(bounds))
		}
		for i, b := range buckets[:len(bounds)] {
			if b.GetUpperBound() != bounds[i].Seconds() {
				t.Errorf("server %s: bucket %d bound %v, want %v", id, i, b.GetUpperBound(), bounds[i].Seconds())
			}
			if i > 0 && b.GetCumulativeCount() < buckets[i-1].GetCumulativeCount() {
				t.Errorf("server %s: bucket counts are not cumulative: %v", id, buckets)
			}
		}
		if inf := buckets[len(bounds)]; inf.GetCumulativeCount() != 5 {
			t.Errorf("server %s: +Inf bucket %d, want 5", id, inf.GetCumulativeCount())
		}
	}
}

// TestMetricsEscapesLabels: server ids and policies come from peers;
// quotes, backslashes, newlines and bytes that are not UTF-8 must not break
// the format, and the parser must read the id back as the proxy has it.
func TestMetricsEscapesLabels(t *testing.T) {
	p, addr := startProxy(t)
	const id, policy = "a\"b\\c\nd}e{f=g,h \xff", "P\"P\n"
	runServers(t, p, &Server{ID: id, Policy: policy, ProxyAddr: addr})
	send(t, newClient(t, addr, "50"), policy, 1)
	_, text := get(t, startAdmin(t, &Admin{Proxy: p}, nil)+"metrics")
	families := parseMetrics(t, text)

	ss := p.Stats().Policies[0].Servers[0]
	valid := func(s string) string { return string([]rune(s)) } // each byte that is not UTF-8 as U+FFFD
	m := sample(families["revproxy_server_sent_total"], "policy", valid(ss.Policy), "server", valid(ss.ID))
	if m == nil || value(m) != 1 {
		t.Errorf("no revproxy_server_sent_total 1 for server %q of policy %q in:\n%s", ss.ID, ss.Policy, text)
	}
}

// TestAdminStatusJSON compares /status.json with Proxy.Stats, but for what
// moves by itself.
func TestAdminStatusJSON(t *testing.T) {
	p, addr := startProxy(t)
	runServers(t, p,
		&Server{ID: "100", Policy: "PP_1", ProxyAddr: addr, Weight: 3},
		&Server{ID: "200", Policy: "PP_2", ProxyAddr: addr})
	c := newClient(t, addr, "50")
	send(t, c, "PP_1", 4)
	send(t, c, "PP_2", 2)
	c.Send(testContext(t), "PP_9", "nobody")
	cards := []StatusCard{{Title: "HTTP requests", Value: "12", Detail: "forward 12"}}
	_, body := get(t, startAdmin(t, &Admin{Proxy: p, Cards: func() []StatusCard { return cards }}, nil)+"status.json")

	var got Stats
	if err := json.Unmarshal([]byte(body), &got); err != nil {
		t.Fatalf("status.json: %v\n%s", err, body)
	}
	var extra struct{ Cards []StatusCard }
	json.Unmarshal([]byte(body), &extra)
	if diff := cmp.Diff(cards, extra.Cards); diff != "" {
		t.Errorf("status.json's cards (-want +got):\n%s", diff)
	}
	want := p.Stats()
	if len(want.Policies) != 2 || len(want.RecentErrors) != 1 || want.Totals.Messages != 7 {
		t.Fatalf("Stats has %d policies, %d recent errors and %d messages, want 2, 1, 7", len(want.Policies), len(want.RecentErrors), want.Totals.Messages)
	}
	if diff := cmp.Diff(want, got, cmpopts.EquateEmpty(),
		cmpopts.IgnoreFields(Stats{}, "Uptime"),
		cmpopts.IgnoreFields(ServerStats{}, "LastSeen")); diff != "" {
		t.Errorf("status.json differs from Stats (-Stats +status.json):\n%s", diff)
	}
}

// TestAdminHealthz: 503 until the proxy serves, then 200 "ok"; HEAD as
// GET.
func TestAdminHealthz(t *testing.T) {
	p := &Proxy{}
	base := startAdmin(t, &Admin{Proxy: p}, nil)
	if resp, body := request(t, http.MethodGet, base+"healthz"); resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("before Serve: %s %q, want 503", resp.Status, body)
	}
	ln := listen(t)
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Serve(ctx, ln) }()
	waitFor(t, "the proxy to serve", func() bool { return p.Stats().Serving })
	if resp, body := request(t, http.MethodGet, base+"healthz"); resp.StatusCode != http.StatusOK || body != "ok\n" {
		t.Errorf("while serving: %s %q, want 200 %q", resp.Status, body, "ok\n")
	}
	if resp, body := request(t, http.MethodHead, base+"healthz"); resp.StatusCode != http.StatusOK || body != "" {
		t.Errorf("HEAD: %s %q, want 200 and no body", resp.Status, body)
	}
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if resp, body := request(t, http.MethodGet, base+"healthz"); resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("after Serve returned: %s %q, want 503", resp.Status, body)
	}
}

// TestAdminMethods: what is served answers GET and HEAD, and 405 to the
// rest; what is not served is not found, whatever the method.
func TestAdminMethods(t *testing.T) {
	p, _ := startProxy(t)
	base := startAdmin(t, &Admin{Proxy: p}, nil)
	for _, tc := range []struct {
		method, path string
		want         int
	}{
		{http.MethodGet, "", http.StatusOK},
		{http.MethodGet, "status", http.StatusOK},
		{http.MethodHead, "metrics", http.StatusOK},
		{http.MethodHead, "status.json", http.StatusOK},
		{http.MethodPost, "metrics", http.StatusMethodNotAllowed},
		{http.MethodPut, "status.json", http.StatusMethodNotAllowed},
		{http.MethodDelete, "healthz", http.StatusMethodNotAllowed},
		{http.MethodPost, "", http.StatusMethodNotAllowed},
		{http.MethodGet, "nothing", http.StatusNotFound},
		{http.MethodPost, "nothing", http.StatusNotFound},
		{http.MethodGet, "status/", http.StatusNotFound},
	} {
		resp, _ := request(t, tc.method, base+tc.path)
		if resp.StatusCode != tc.want {
			t.Errorf("%s %s: %s, want %d", tc.method, tc.path, resp.Status, tc.want)
		}
		if tc.want == http.StatusMethodNotAllowed && resp.Header.Get("Allow") != "GET, HEAD" {
			t.Errorf("%s %s: Allow %q, want GET, HEAD", tc.method, tc.path, resp.Header.Get("Allow"))
		}
	}
}

// hrefs are the links and sources of an HTML page.
var hrefs = regexp.MustCompile(`(?:href|src)="([^"]*)"`)

// TestAdminLinksAreRelative: the index, the status page and the profiles'
// index link only relative to where the handler is mounted, and each link
// is served.
func TestAdminLinksAreRelative(t *testing.T) {
	p, addr := startProxy(t)
	runServers(t, p, &Server{ID: "100", Policy: "PP_1", ProxyAddr: addr})
	base := startAdmin(t, &Admin{Proxy: p, Pprof: true}, nil)
	for _, page := range []string{"", "status", "debug/pprof/"} {
		_, body := get(t, base+page)
		links := hrefs.FindAllStringSubmatch(body, -1)
		if len(links) < 3 {
			t.Errorf("%s has %d links, want at least 3", base+page, len(links))
		}
		for _, l := range links {
			link := l[1]
			if strings.HasPrefix(link, "/") || strings.Contains(link, ":") {
				t.Errorf("%s links to %q, not relative", base+page, link)
				continue
			}
			if strings.Contains(link, "seconds=") {
				continue // a CPU profile takes seconds; see TestAdminPprof
			}
			dir := base + page[:strings.LastIndex(page, "/")+1]
			get(t, dir+strings.ReplaceAll(link, "&amp;", "&"))
		}
	}
}

// TestAdminPprof: the profiles are not found unless Pprof is set; then
// the index lists them, each can be read, and a CPU profile of a second
// comes back in the form go tool pprof reads.
func TestAdminPprof(t *testing.T) {
	p, _ := startProxy(t)
	off := startAdmin(t, &Admin{Proxy: p}, nil)
	for _, path := range []string{"debug/pprof/", "debug/pprof", "debug/pprof/heap", "debug/pprof/profile?seconds=1"} {
		if resp, _ := request(t, http.MethodGet, off+path); resp.StatusCode != http.StatusNotFound {
			t.Errorf("Pprof off: GET %s: %s, want 404", path, resp.Status)
		}
	}

	on := startAdmin(t, &Admin{Proxy: p, Pprof: true}, nil)
	resp, body := get(t, on+"debug/pprof") // redirected, relative to the prefix
	if resp.Request.URL.Path != adminPrefix+"/debug/pprof/" {
		t.Errorf("debug/pprof led to %s, want %s/debug/pprof/", resp.Request.URL.Path, adminPrefix)
	}
	for _, name := range []string{"goroutine", "heap", "allocs", "mutex", "block", "threadcreate"} {
		if !strings.Contains(body, `href="`+name+`?debug=1"`) {
			t.Errorf("the index lacks %s:\n%s", name, body)
		}
	}
	if _, text := get(t, on+"debug/pprof/goroutine?debug=1"); !strings.Contains(text, "goroutine profile:") {
		t.Errorf("goroutine?debug=1 is not the text form:\n%.300s", text)
	}
	if resp, _ := request(t, http.MethodGet, on+"debug/pprof/nosuch"); resp.StatusCode != http.StatusNotFound {
		t.Errorf("an unknown profile: %s, want 404", resp.Status)
	}
	for _, q := range []string{"0", "61", "x"} {
		if resp, _ := request(t, http.MethodGet, on+"debug/pprof/profile?seconds="+q); resp.StatusCode != http.StatusBadRequest {
			t.Errorf("profile?seconds=%s: %s, want 400", q, resp.Status)
		}
	}
	if f := flag.Lookup("test.cpuprofile"); f != nil && f.Value.String() != "" {
		t.Skip("the test binary profiles the CPU itself (-cpuprofile); one profile runs at a time")
	}
	resp, profile := get(t, on+"debug/pprof/profile?seconds=1")
	if ct := resp.Header.Get("Content-Type"); ct != "application/octet-stream" || !strings.HasPrefix(profile, "\x1f\x8b") {
		t.Errorf("CPU profile: Content-Type %q, %d bytes beginning %q; want a gzipped profile", ct, len(profile), profile[:min(len(profile), 8)])
	}
}

// TestStatusPageEscapes: server ids, policies and error texts that peers
// chose are text on the status page, never markup.
func TestStatusPageEscapes(t *testing.T) {
	p, addr := startProxy(t)
	base, _ := hostilePeers(t, p, addr)
	_, page := get(t, base+"status")
	for _, raw := range []string{"<script>document", "<img", "<svg", "<b>", "<i>"} {
		if strings.Contains(page, raw) {
			t.Errorf("the status page has %q unescaped", raw)
		}
	}
	for _, escaped := range []string{"&lt;script&gt;document", "&lt;/script&gt;&lt;img", "&lt;svg", "&lt;b&gt;"} {
		if !strings.Contains(page, escaped) {
			t.Errorf("the status page lacks %q, escaped", escaped)
		}
	}
	if n := strings.Count(page, "<script>"); n != 1 {
		t.Errorf("the status page has %d scripts, want its own only", n)
	}
}

// hostilePeers registers servers whose ids and policy are markup and
// script, gets error messages whose texts are too, and serves the admin
// handler; it returns its URL and the ids.
func hostilePeers(t *testing.T, p *Proxy, addr string) (string, []string) {
	t.Helper()
	ids := []string{
		`<script>document.body.dataset.pwned="script"</script>`,
		`</script><img src=x onerror="document.body.dataset.pwned='img'">`,
	}
	const policy = `"><svg onload="document.body.dataset.pwned='svg'">`
	fail := HandlerFunc(func(context.Context, *Message) (string, error) {
		return "", fmt.Errorf(`<img src=x onerror="document.body.dataset.pwned='error'"><b>bold</b>`)
	})
	// One after the other: the first message goes to the first.
	runServers(t, p, &Server{ID: ids[0], Policy: policy, ProxyAddr: addr})
	runServers(t, p, &Server{ID: ids[1], Policy: policy, ProxyAddr: addr, Handler: fail})
	c := newClient(t, addr, "50")
	send(t, c, policy, 1)
	if _, err := c.Send(testContext(t), policy, "fails"); err == nil {
		t.Fatal("the failing handler's message got a reply")
	}
	c.Send(testContext(t), `<i>nobody</i>`, "nobody")
	return startAdmin(t, &Admin{Proxy: p}, nil), ids
}

// BenchmarkAdminMetrics writes /metrics for a proxy with 4 policies of 4
// servers each that have answered messages: what a scrape costs.
func BenchmarkAdminMetrics(b *testing.B) {
	p := &Proxy{}
	for i := range 16 {
		e := &entry{id: fmt.Sprint(100 + i), policy: fmt.Sprint("PP_", i/4), addr: "127.0.0.1:1"}
		if err := p.table.add(e, 100); err != nil {
			b.Fatal(err)
		}
		for range 100 {
			e.counts.sent.Add(1)
			e.counts.counts.count("")
			e.counts.latency.observe(300e3)
		}
		e.counts.counts.count(codeTimeout)
	}
	a := &Admin{Proxy: p}
	req := httptest.NewRequest(http.MethodGet, "/metrics", nil)
	w := &discardResponse{h: http.Header{}}
	b.ReportAllocs()
	for b.Loop() {
		a.ServeHTTP(w, req)
	}
	b.ReportMetric(float64(w.n)/float64(b.N), "B/scrape")
}

// discardResponse is an http.ResponseWriter that counts what is written.
type discardResponse struct {
	h http.Header
	n int
}

func (w *discardResponse) Header() http.Header { return w.h }
func (w *discardResponse) WriteHeader(int)     {}
func (w *discardResponse) Write(b []byte) (int, error) {
	w.n += len(b)
	return len(b), nil
}
