//go:build unix

package revproxy

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"
)

// The status page's tests in a real browser: headless Chromium loads it
// from a running proxy and the test reads the DOM the page's script made.
// --virtual-time-budget runs the page's timers on a clock of the browser's
// own, which stands still while a fetch is under way: the refreshes happen
// in the same order every run, however long the proxy takes to answer.

// screenshot is where TestStatusPageScreenshot writes its picture, as
// the README's:
//
//	go test -run TestStatusPageScreenshot -screenshot docs/status.png .
var screenshot = flag.String("screenshot", "", "write the status page's screenshot to `FILE`")

// chromium returns the path of Chromium, or skips the test when it is not
// installed, unless REVPROXY_BROWSER=require (as in .ci/run) makes that a
// failure.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if path, err := exec.LookPath(name); err == nil {
			return path
		}
	}
	if os.Getenv("REVPROXY_BROWSER") == "require" {
		t.Fatal("Chromium is not installed, and REVPROXY_BROWSER=require: apt-get install chromium")
	}
	t.Skip("Chromium is not installed (apt-get install chromium); set REVPROXY_BROWSER=require to fail instead")
	return ""
}

// runChromium runs headless Chromium with a profile of its own and args,
// and returns what it printed. Chromium and every process it started are
// killed if it outlives a minute, and when it returns.
func runChromium(t *testing.T, args ...string) string {
	t.Helper()
	path := chromium(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	args = append([]string{
		"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--disable-extensions", "--user-data-dir=" + t.TempDir(),
	}, args...)
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // its renderers and helpers in one group
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if cmd.Process != nil {
		// Its helpers, should one outlive it; the group is ours alone.
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	if err != nil {
		t.Fatalf("chromium %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String()
}

// dumpDOM loads url in Chromium, lets its timers run for budget of the
// browser's virtual time, and returns the DOM then.
func dumpDOM(t *testing.T, url string, budget time.Duration) string {
	t.Helper()
	return runChromium(t, fmt.Sprintf("--virtual-time-budget=%d", budget.Milliseconds()), "--dump-dom", url)
}

// refreshes returns how many times the page says it has refreshed.
func refreshes(t *testing.T, dom string) string {
	t.Helper()
	m := regexp.MustCompile(`<body data-refreshes="(\d+)"`).FindStringSubmatch(dom)
	if m == nil {
		t.Fatalf("the page does not say how often it refreshed:\n%s", dom)
	}
	return m[1]
}

// awaitTable waits until cond holds for p's Stats, woken by the changes of
// its switching table (registrations, departures, states).
func awaitTable(ctx context.Context, p *Proxy, cond func(*Stats) bool) error {
	for {
		_, changed := p.table.watch("")
		s := p.Stats()
		if cond(&s) {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return fmt.Errorf("%w; the proxy has %+v", ctx.Err(), s.Policies)
		}
	}
}

// TestStatusPageInBrowser loads the status page in Chromium from a proxy
// with two live servers: the page names both, and when one leaves while
// the page is open it drops it, without being loaded again.
func TestStatusPageInBrowser(t *testing.T) {
	chromium(t)
	p, addr := startProxy(t)
	runServers(t, p, &Server{ID: "100", Policy: "PP_1", ProxyAddr: addr})
	leaving := &Server{ID: "101", Policy: "PP_1", ProxyAddr: addr}
	stop := startStoppable(t, leaving)
	if err := p.WaitServers(testContext(t), "PP_1", 2); err != nil {
		t.Fatal(err)
	}
	send(t, newClient(t, addr, "50"), "PP_1", 4)

	// The second time the page asks for status.json, server 101 leaves
	// first: the answer is the first without it.
	var pages, fetches atomic.Int32
	var leave atomic.Bool
	base := startAdmin(t, &Admin{Proxy: p}, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			switch r.URL.Path {
			case adminPrefix + "/status":
				pages.Add(1)
			case adminPrefix + "/status.json":
				if fetches.Add(1) == 2 && leave.Load() {
					stop()
					if err := awaitTable(r.Context(), p, func(s *Stats) bool { return findServer(s, "101") == nil }); err != nil {
						t.Errorf("server 101 did not leave: %v", err)
					}
				}
			}
			h.ServeHTTP(w, r)
		})
	})

	t.Run("names the servers", func(t *testing.T) {
		pages.Store(0)
		fetches.Store(0)
		dom := dumpDOM(t, base+"status", 3*time.Second)
		if n := refreshes(t, dom); n != "1" {
			t.Errorf("the page refreshed %s times in 3 s, want 1", n)
		}
		for _, want := range []string{`data-server="100"`, `data-server="101"`, "2 of 2 up", `data-policy="PP_1"`} {
			if !strings.Contains(dom, want) {
				t.Errorf("the page lacks %s:\n%s", want, dom)
			}
		}
	})

	t.Run("updates when one leaves", func(t *testing.T) {
		pages.Store(0)
		fetches.Store(0)
		leave.Store(true)
		dom := dumpDOM(t, base+"status", 9*time.Second)
		if n := refreshes(t, dom); n != "4" {
			t.Errorf("the page refreshed %s times in 9 s, want 4 (at 2, 4, 6 and 8 s)", n)
		}
		if pages.Load() != 1 || fetches.Load() != 4 {
			t.Errorf("the page was loaded %d times and fetched status.json %d times; want once and 4", pages.Load(), fetches.Load())
		}
		if strings.Contains(dom, `data-server="101"`) {
			t.Errorf("the page still shows server 101:\n%s", dom)
		}
		for _, want := range []string{`data-server="100"`, "1 of 1 up"} {
			if !strings.Contains(dom, want) {
				t.Errorf("the page lacks %s:\n%s", want, dom)
			}
		}
	})
}

// startStoppable runs s, without a listener, until the test ends or the
// returned stop is called; stop returns once Serve has.
func startStoppable(t *testing.T, s *Server) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, nil) }()
	var once sync.Once // a second call waits for the first
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("server %s: %v", s.ID, err)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// TestStatusPageEscapesInBrowser: with server ids, a policy and error
// texts that are markup and script, the page, once its script has
// rendered them, shows them as text and runs none of them.
func TestStatusPageEscapesInBrowser(t *testing.T) {
	chromium(t)
	p, addr := startProxy(t)
	base, ids := hostilePeers(t, p, addr)
	dom := dumpDOM(t, base+"status", 3*time.Second)
	if n := refreshes(t, dom); n != "1" {
		t.Errorf("the page refreshed %s times in 3 s, want 1", n)
	}
	if strings.Contains(dom, "data-pwned") {
		t.Errorf("a peer's script ran in the page:\n%s", dom)
	}
	for _, id := range ids {
		// As Chromium writes a text node out.
		text := strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(id)
		if !strings.Contains(dom, text) {
			t.Errorf("the page does not show server %s as text:\n%s", id, dom)
		}
	}
	if !strings.Contains(dom, "&lt;b&gt;bold&lt;/b&gt;") || strings.Contains(dom, "<b>") {
		t.Errorf("the page does not show the handler's error as text:\n%s", dom)
	}
}

// TestStatusPageScreenshot takes the README's picture of the status page,
// of a proxy as an operator might find it (see operatorsView). With
// -screenshot FILE it writes the picture there; without, to a temporary
// file, to check that it can be taken.
func TestStatusPageScreenshot(t *testing.T) {
	chromium(t)
	base := operatorsView(t)
	file := *screenshot
	if file == "" {
		file = filepath.Join(t.TempDir(), "status.png")
	}
	file, err := filepath.Abs(file) // Chromium runs elsewhere
	if err != nil {
		t.Fatal(err)
	}
	runChromium(t, "--hide-scrollbars", "--window-size=1200,1000", "--virtual-time-budget=2500",
		"--screenshot="+file, base+"status")
	png, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(png, []byte("\x89PNG\r\n\x1a\n")) || len(png) < 10000 {
		t.Errorf("%s is not a PNG of a page (%d bytes)", file, len(png))
	}
	if *screenshot != "" {
		t.Logf("wrote %s", file)
	}
}

// TestStatusPageScriptMatchesTemplate: the page's script renders a
// snapshot as the template on the server does, element for element,
// through every state and kind of figure. The proxy does not change
// between the two loads; only the ages may, and are left out.
func TestStatusPageScriptMatchesTemplate(t *testing.T) {
	chromium(t)
	base := operatorsView(t)
	main := regexp.MustCompile(`(?s)<main id="main">.*</main>`)
	ages := regexp.MustCompile(`\b(\d+ (s|min|h|d)( ago)?|now)\b`)
	render := func(budget time.Duration, scripted bool) string {
		dom := dumpDOM(t, base+"status", budget)
		// The template's page is the one not yet refreshed; the script's,
		// one refreshed once or more (a loaded machine's virtual time may
		// let a second refresh in).
		if n := refreshes(t, dom); (n != "0") != scripted {
			t.Fatalf("the page refreshed %s times in %v; want it scripted: %v", n, budget, scripted)
		}
		m := main.FindString(dom)
		if m == "" {
			t.Fatalf("no main element in:\n%s", dom)
		}
		m = regexp.MustCompile(`>\s+<`).ReplaceAllString(m, "><")
		return ages.ReplaceAllString(m, "AGE")
	}
	template := render(time.Second, false)
	script := render(3*time.Second, true)
	if template != script {
		t.Errorf("the script renders differently from the template:\ntemplate: %s\nscript:   %s", template, script)
	}
	for _, want := range []string{"ejected", "draining", "legacy", "least-in-flight", "p2c", "no_server", "unavailable", "handler", "forward 1,000 · reverse 234", "&lt;b&gt;Tunnels&lt;/b&gt;"} {
		if !strings.Contains(script, want) {
			t.Errorf("the page lacks %q", want)
		}
	}
}

// operatorsView runs a proxy as an operator might find it, and its admin
// handler, whose URL it returns: three policies with a balancer each;
// servers that take their time, one ejected, one draining, one dialled
// per message; errors of several kinds. Once it returns, the proxy's
// figures do not change.
func operatorsView(t *testing.T) string {
	t.Helper()
	p := &Proxy{PolicyBalancers: map[string]Balancer{"PP_2": LeastInFlight, "PP_3": PowerOfTwo}}
	ln := listen(t)
	addr := ln.Addr().String()
	runRole(t, func(ctx context.Context) error { return p.Serve(ctx, ln) })

	slow := func(min, spread time.Duration) Handler {
		var n atomic.Int64
		return HandlerFunc(func(ctx context.Context, m *Message) (string, error) {
			d := min + time.Duration(n.Add(7)%11)*spread/10
			select {
			case <-time.After(d): // work, not a wait for an event
			case <-ctx.Done():
				return "", ctx.Err()
			}
			if strings.HasPrefix(m.Payload, "bad") {
				return "", errors.New("cannot parse order " + strings.TrimPrefix(m.Payload, "bad "))
			}
			return SHA1Handler.ServeMessage(ctx, m)
		})
	}
	held, holding := make(chan struct{}), make(chan struct{}, 1)
	hold := HandlerFunc(func(ctx context.Context, m *Message) (string, error) {
		if m.Payload == "hold" {
			holding <- struct{}{}
			<-held
		}
		return SHA1Handler.ServeMessage(ctx, m)
	})
	// One at a time, so that the table's order is the same every run.
	runServers(t, p, &Server{ID: "100", Policy: "PP_1", ProxyAddr: addr, Handler: slow(200*time.Microsecond, 600*time.Microsecond)})
	runServers(t, p, &Server{ID: "101", Policy: "PP_1", ProxyAddr: addr, Handler: slow(300*time.Microsecond, time.Millisecond)})
	ejected := registerRaw(t, addr, "102", "PP_1")
	runServers(t, p, &Server{ID: "200", Policy: "PP_2", ProxyAddr: addr, Weight: 2, Handler: slow(time.Millisecond, 2*time.Millisecond)})
	stopDraining := startStoppable(t, &Server{ID: "201", Policy: "PP_2", ProxyAddr: addr, Handler: hold, DrainTimeout: time.Minute})
	if err := p.WaitServers(testContext(t), "PP_2", 2); err != nil {
		t.Fatal(err)
	}
	legacy := &Server{ID: "202", Policy: "PP_2", ProxyAddr: addr, Legacy: true, Handler: slow(2*time.Millisecond, 3*time.Millisecond)}
	legacyLn := listen(t)
	runRole(t, func(ctx context.Context) error { return legacy.Serve(ctx, legacyLn) })
	if err := p.WaitServers(testContext(t), "PP_2", 3); err != nil {
		t.Fatal(err)
	}
	runServers(t, p, &Server{ID: "300", Policy: "PP_3", ProxyAddr: addr, Weight: 3, Handler: slow(4*time.Millisecond, 8*time.Millisecond)})
	runServers(t, p, &Server{ID: "301", Policy: "PP_3", ProxyAddr: addr, Handler: slow(5*time.Millisecond, 15*time.Millisecond)})
	// A deadline far enough for a loaded machine: a message sent with one
	// is answered "timeout" when it passes.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)

	// Server 102 takes a message and goes without answering: it is
	// ejected, and the message's client gets "unavailable".
	c := newClient(t, addr, "50")
	send(t, c, "PP_1", 2) // to 100 and 101
	lost := make(chan error, 1)
	go func() { _, err := c.Send(ctx, "PP_1", "lost"); lost <- err }()
	ejected.awaitMessage(t)
	ejected.conn.Close()
	if err := <-lost; !errors.Is(err, ErrUnavailable) {
		t.Fatalf("the message lost with server 102: %v, want ErrUnavailable", err)
	}

	// Traffic from a few clients, a handler's error now and then.
	var g errgroup.Group
	for i := range 4 {
		c := newClient(t, addr, fmt.Sprint(60+i))
		g.Go(func() error {
			for j := range 60 {
				policy := []string{"PP_1", "PP_1", "PP_2", "PP_3"}[(i+j)%4]
				payload := fmt.Sprintf("order %d-%d", i, j)
				if j == 25+i {
					payload = fmt.Sprintf("bad %d-%d", i, j)
				}
				if _, err := c.Send(ctx, policy, payload); err != nil && !errors.Is(err, ErrHandler) {
					return fmt.Errorf("%s %q: %w", policy, payload, err)
				}
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
	c.Send(ctx, "PP_4", "nobody serves it")

	// Server 201 gets a message it holds (least in flight gives each of
	// PP_2's servers its turn while none has one), then is asked to stop:
	// it drains, and keeps its message in flight until the test ends.
	holdCtx, cancelHold := context.WithCancel(context.Background())
	t.Cleanup(cancelHold)
	for held := false; !held; {
		answered := make(chan struct{})
		go func() {
			// Without a deadline: held until the test ends, the message
			// must not time out and change the figures.
			c.Send(holdCtx, "PP_2", "hold")
			close(answered)
		}()
		select {
		case <-holding:
			held = true
		case <-answered:
		}
	}
	go stopDraining()
	t.Cleanup(func() { close(held) }) // before stopDraining's cleanup waits
	draining := func(s *Stats) bool { ss := findServer(s, "201"); return ss != nil && ss.State == Draining }
	if err := awaitTable(ctx, p, draining); err != nil {
		t.Fatal(err)
	}
	cards := func() []StatusCard {
		return []StatusCard{{Title: "HTTP requests", Value: "1,234", Detail: "forward 1,000 · reverse 234"}, {Title: "<b>Tunnels</b>", Value: "3", Detail: ""}}
	}
	return startAdmin(t, &Admin{Proxy: p, Cards: cards}, nil)
}

// handRegistration is a server registered by hand, to misbehave.
type handRegistration struct {
	conn net.Conn
	buf  []byte
}

// registerRaw registers server id for policy over a multiplexed link
// that the test holds, and waits for the proxy's acknowledgement.
func registerRaw(t *testing.T, addr, id, policy string) *handRegistration {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	fmt.Fprintf(conn, `{"type":1,"id":%q,"privPolyId":%q,"listenport":0,"hold":true,"mux":true}`+"\n", id, policy)
	rs := &handRegistration{conn: conn}
	rs.await(t, `"type":1`)
	return rs
}

// await reads until what the proxy sent holds s.
func (rs *handRegistration) await(t *testing.T, s string) {
	t.Helper()
	rs.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 4096)
	for !bytes.Contains(rs.buf, []byte(s)) {
		n, err := rs.conn.Read(buf)
		if err != nil {
			t.Fatalf("waiting for %s from the proxy: %v (read %q)", s, err, rs.buf)
		}
		rs.buf = append(rs.buf, buf[:n]...)
	}
}

// awaitMessage waits for a data message.
func (rs *handRegistration) awaitMessage(t *testing.T) { rs.await(t, `"type":0`) }
