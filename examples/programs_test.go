// Package examples tests the example programs as a user runs them: built
// binaries, real processes, loopback TCP.
package examples

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/seed-c202d8a5/revproxy/internal/testproc"
)

var (
	buildOnce sync.Once
	binDir    string
	buildErr  error
)

// TestMain removes the programs built for the tests.
func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// build compiles the example programs, once for all the tests, and returns
// the directory holding them.
func build(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		if binDir, buildErr = os.MkdirTemp("", "revproxy-examples"); buildErr != nil {
			return
		}
		cmd := exec.Command("go", "build", "-o", binDir+string(filepath.Separator), "./revproc", "./server", "./client", "./demo", "./quickstart")
		cmd.Stderr = os.Stderr
		buildErr = cmd.Run()
	})
	if buildErr != nil {
		t.Fatalf("go build: %v", buildErr)
	}
	return binDir
}

func TestUsageErrors(t *testing.T) {
	bin := build(t)
	for _, tc := range []struct {
		args []string
		want string // in the output, besides the usage
	}{
		{[]string{"revproc"}, "missing -port"},
		{[]string{"revproc", "-port"}, "flag needs an argument"},
		{[]string{"revproc", "-port", "123", "extra"}, `unexpected argument "extra"`},
		{[]string{"revproc", "-port", "99999"}, "out of range"},
		{[]string{"revproc", "-port", "-1"}, "out of range"},
		{[]string{"revproc", "-port", "http"}, "not a port number"},
		{[]string{"revproc", "-port", "123", "-pprof"}, "-pprof needs -admin"},
		{[]string{"revproc", "-port", "123", "-balancer", "fastest"}, "unknown balancer"},
		{[]string{"server", "-id", "100", "-pp", "PP_1", "-listen", "124"}, "missing -revproc"},
		{[]string{"server", "-id", "100"}, "missing -pp, -listen, -revproc"},
		{[]string{"server", "-id", "100", "-pp", "PP_1", "-listen", "70000", "-revproc", "123"}, "out of range"},
		{[]string{"server", "-id", "100", "-pp", "PP_1", "-listen", "124", "-revproc", "no-port"}, "neither a port nor host:port"},
		{[]string{"server", "-id", "100", "-pp", "PP_1", "-listen", "124", "-revproc", "0"}, "out of range"},
		{[]string{"server", "-id", "100", "-pp", "PP_1", "-listen", "124", "-revproc", "localhost:99999"}, "does not end in a port"},
		{[]string{"server", "-id", "100", "-pp", "PP_1", "-listen", "124", "-revproc", "123", "-weight", "0"}, "out of range (1-1000)"},
		{[]string{"server", "-id", "100", "-pp", "PP_1", "-listen", "124", "-revproc", "123", "-weight", "x"}, "not a number"},
		{[]string{"client", "-id", "50", "-revproc", "123"}, "missing -pkt"},
		{[]string{"client"}, "missing -id, -revproc, -pkt"},
		{[]string{"client", "-id", "50", "-revproc", "65536", "-pkt", "x"}, "out of range"},
		{[]string{"client", "-id", "50", "-revproc", "123", "-pkt", "x", "-bogus"}, "flag provided but not defined"},
	} {
		cmd := exec.Command(filepath.Join(bin, tc.args[0]), tc.args[1:]...)
		out, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 2 {
			t.Errorf("%v: err = %v, want exit status 2", tc.args, err)
		}
		if !bytes.Contains(out, []byte("usage: "+tc.args[0])) || !bytes.Contains(out, []byte(tc.want)) {
			t.Errorf("%v: output lacks the usage line or %q:\n%s", tc.args, tc.want, out)
		}
	}
}

// TestHelp: -h says first, in one line, what the program does, then the
// usage, and exits 0.
func TestHelp(t *testing.T) {
	bin := build(t)
	for prog, summary := range map[string]string{
		"revproc": "revproc runs a reverse proxy",
		"server":  "server registers with a reverse proxy",
		"client":  "client sends the data message in a packet file",
	} {
		out, err := exec.Command(filepath.Join(bin, prog), "-h").CombinedOutput()
		if err != nil {
			t.Errorf("%s -h: %v", prog, err)
		}
		first, rest, _ := strings.Cut(string(out), "\n")
		if !strings.HasPrefix(first, summary) || !strings.Contains(rest, "usage: "+prog) {
			t.Errorf("%s -h printed:\n%s\nwant a first line starting %q, then the usage", prog, out, summary)
		}
	}
}

// TestProgramsEndToEnd runs revproc, a server and the client as separate
// processes, with the homework's command lines, and checks that each prints
// the lines of the homework's sample terminals.
func TestProgramsEndToEnd(t *testing.T) {
	bin := build(t)
	port := freePort(t)
	listen := freePort(t)
	proxy := testproc.Start(t, filepath.Join(bin, "revproc"), "-port", port)
	proxy.WaitFor(t, "Running the reverse proxy on port "+port+"\n")
	server := testproc.Start(t, filepath.Join(bin, "server"), "-id", "100", "-pp", "PP_1", "-listen", listen, "-revproc", port)
	proxy.WaitFor(t, "Receiving setup message from server id 100 privacy policy PP_1 port "+listen+"\n")
	server.WaitFor(t, "Server running with id 100\nServer serving privacy policy PP_1\nListening on port "+listen+"\nConnecting to the reverse proxy on port "+port+"\n")

	dir := t.TempDir()
	pkt := filepath.Join(dir, "mypkt.json")
	writeFile(t, pkt, `{"type": 0, "srcid": 50, "privPoliId": "PP_1", "payloadsize": 5, "payload": "hello"}`)
	out, err := exec.Command(filepath.Join(bin, "client"), "-id", "50", "-revproc", port, "-pkt", pkt).CombinedOutput()
	if err != nil {
		t.Fatalf("client: %v\n%s", err, out)
	}
	const digest = "aaf4c61ddcc5e8a2dabede0f3b482cd9aea9434d"
	if want := "Sending message hello to privacy policy PP_1 through reverse proxy running on port " + port + "\n" +
		"Receiving a response from the server 100 payload: " + digest + "\n" +
		"SHA1 matches: the message arrived intact\n"; string(out) != want {
		t.Errorf("client printed:\n%s\nwant:\n%s", out, want)
	}
	server.WaitFor(t, "Received a message from client 50 payload: hello\nSending a response to the client 50 payload: "+digest+"\n")
	proxy.WaitFor(t, "Received a data message from client 50 privacy policy PP_1 payload: hello\n"+
		"Forwarding a data message to server id 100 payload: hello\n"+
		"Received a data message from server id 100 payload: "+digest+"\n"+
		"Forwarding a data message to client id 50 payload: "+digest+"\n")

	writeFile(t, pkt, `{"type": 0, "srcid": 50, "privPoliId": "PP_9", "payload": "nobody"}`)
	out, err = exec.Command(filepath.Join(bin, "client"), "-id", "50", "-revproc", "localhost:"+port, "-pkt", pkt).CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 || !strings.Contains(string(out), "revproxy: error from proxy: no server for policy PP_9\n") {
		t.Errorf("client for PP_9: err = %v, want exit 1 with the proxy's error:\n%s", err, out)
	}
	proxy.WaitFor(t, "Answered a message for privacy policy PP_9 with an error message, code no_server: no server for policy PP_9\n")

	server.Stop(t)
	proxy.WaitFor(t, "Server id 100 privacy policy PP_1 left\n")
	proxy.Stop(t)
	for _, p := range []*testproc.Process{proxy, server} {
		if strings.Contains(p.Output(), "=") {
			t.Errorf("a line in key=value style, not the transcript's:\n%s", p.Output())
		}
	}
}

// TestRevprocAdmin: revproc -admin serves the admin pages next to the
// proxy, -pprof the runtime's profiles, and SIGTERM stops both cleanly.
func TestRevprocAdmin(t *testing.T) {
	bin := build(t)
	port := freePort(t)
	proxy := testproc.Start(t, filepath.Join(bin, "revproc"), "-port", port, "-admin", "127.0.0.1:0", "-pprof")
	base := proxy.WaitForMatch(t, regexp.MustCompile(`Serving the admin pages on (http://\S+/)\n`))[1]
	proxy.WaitFor(t, "Running the reverse proxy on port "+port+"\n")
	for path, want := range map[string]string{
		"healthz":      "ok\n",
		"metrics":      "\nrevproxy_messages_total 0\n",
		"status":       "<title>revproxy status</title>",
		"status.json":  `"policies": []`,
		"debug/pprof/": `href="goroutine?debug=2"`,
	} {
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK || !strings.Contains(string(body), want) {
			t.Errorf("GET %s: %s, %v; want 200 and %q in:\n%s", base+path, resp.Status, err, want, body)
		}
	}
	proxy.Stop(t)
}

// TestServerStartedFirst: a server started before its proxy says it keeps
// trying, and registers once the proxy runs.
func TestServerStartedFirst(t *testing.T) {
	bin := build(t)
	port := freePort(t)
	server := testproc.Start(t, filepath.Join(bin, "server"), "-id", "100", "-pp", "PP_1", "-listen", "0", "-revproc", port)
	server.WaitFor(t, "Cannot register with the reverse proxy on port "+port)
	proxy := testproc.Start(t, filepath.Join(bin, "revproc"), "-port", port)
	proxy.WaitFor(t, "Receiving setup message from server id 100 privacy policy PP_1 port ")
	server.WaitFor(t, "Registered with the reverse proxy")
}

// runToEnd runs a program that should end by itself, and its output. One
// that hangs is stopped after two minutes with SIGQUIT, so that its output
// shows where each goroutine waits.
func runToEnd(path string, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGQUIT) }
	return cmd.CombinedOutput()
}

func TestDemo(t *testing.T) {
	bin := build(t)
	out, err := runToEnd(filepath.Join(bin, "demo"))
	if err != nil {
		t.Fatalf("demo: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "Round robin for PP_1: 100 → 101 → 100 → 101 → 100") {
		t.Errorf("demo output lacks the rotation:\n%s", out)
	}
}

// freePort returns a port that is free now, for a program to listen on
// once started. It is drawn below the kernel's ephemeral range, which is
// where a listener on port 0 (revproc's -admin 127.0.0.1:0, a server's
// -listen 0) or an outgoing connection takes its port: a port from that
// range, freed for the program, can be taken by one of those first (seen
// as "address already in use").
func freePort(t *testing.T) string {
	t.Helper()
	low := 32768
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if n, err := strconv.Atoi(f[0]); err == nil && n > 2048 {
				low = n
			}
		}
	}
	for range 100 {
		port := strconv.Itoa(1024 + rand.IntN(low-1024))
		if ln, err := net.Listen("tcp", ":"+port); err == nil {
			ln.Close()
			return port
		}
	}
	t.Fatal("no free port below the ephemeral range in 100 tries")
	return ""
}

// TestQuickstart runs the program the README and the package doc show: it
// must succeed, every time, as written.
func TestQuickstart(t *testing.T) {
	bin := build(t)
	out, err := runToEnd(filepath.Join(bin, "quickstart"))
	if err != nil {
		t.Fatalf("quickstart: %v\n%s", err, out)
	}
	if want := "server 100 answered aaf4c61ddcc5e8a2dabede0f3b482cd9aea9434d"; !strings.Contains(string(out), want) {
		t.Errorf("quickstart printed %q, want %q", out, want)
	}
}

// TestSnippetsAreQuickstart: the program in the README and in doc.go is
// quickstart/main.go, character for character.
func TestSnippetsAreQuickstart(t *testing.T) {
	src, err := os.ReadFile(filepath.Join("quickstart", "main.go"))
	if err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile(filepath.Join("..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(readme, []byte("```go\n"+string(src)+"```\n")) {
		t.Error("README.md does not show examples/quickstart/main.go as it is, in a ```go block")
	}
	var doc strings.Builder // the program as a code block of a doc comment
	for _, line := range strings.SplitAfter(string(src), "\n") {
		switch line {
		case "":
		case "\n":
			doc.WriteString("//\n")
		default:
			doc.WriteString("//\t" + line)
		}
	}
	pkgdoc, err := os.ReadFile(filepath.Join("..", "doc.go"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(pkgdoc, []byte(doc.String())) {
		t.Error("doc.go does not show examples/quickstart/main.go as it is")
	}
}

func writeFile(t *testing.T, name, content string) {
	t.Helper()
	if err := os.WriteFile(name, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestRevprocHTTP: revproc -http serves the HTTP front door next to the
// proxy: the gateway answers a POST with the SHA1 a server program
// computed, and the forward proxy fetches a page.
func TestRevprocHTTP(t *testing.T) {
	bin := build(t)
	port := freePort(t)
	web := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("web service at " + r.URL.Path))
	}))
	defer web.Close()
	webPort := strconv.Itoa(web.Listener.Addr().(*net.TCPAddr).Port)
	proxy := testproc.Start(t, filepath.Join(bin, "revproc"), "-port", port, "-http", "127.0.0.1:0", "-route", "/web/=WEB")
	front := proxy.WaitForMatch(t, regexp.MustCompile(`Serving HTTP on (http://\S+)/:`))[1]
	proxy.WaitFor(t, "Running the reverse proxy on port "+port+"\n")
	testproc.Start(t, filepath.Join(bin, "server"), "-id", "100", "-pp", "PP_1", "-listen", "0", "-revproc", port)
	proxy.WaitFor(t, "Receiving setup message from server id 100 privacy policy PP_1")

	testproc.Start(t, filepath.Join(bin, "server"), "-id", "200", "-pp", "WEB", "-listen", "0", "-revproc", port, "-http-port", webPort)
	proxy.WaitFor(t, "Receiving setup message from server id 200 privacy policy WEB")
	resp, err := http.Get(front + "/web/page")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || string(body) != "web service at /web/page" {
		t.Errorf("GET /web/page through -route: %s %q", resp.Status, body)
	}

	resp, err = http.Post(front+"/msg/PP_1", "text/plain", strings.NewReader("hello"))
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if want := "aaf4c61ddcc5e8a2dabede0f3b482cd9aea9434d"; resp.StatusCode != http.StatusOK || string(body) != want {
		t.Errorf("POST /msg/PP_1: %s %q; want 200 %q", resp.Status, body, want)
	}

	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("page via " + r.Header.Get("Via")))
	}))
	defer origin.Close()
	proxyURL, _ := url.Parse(front)
	tr := &http.Transport{Proxy: http.ProxyURL(proxyURL)}
	defer tr.CloseIdleConnections()
	resp, err = (&http.Client{Transport: tr}).Get(origin.URL + "/page")
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "page via 1.1 revproxy") {
		t.Errorf("GET through the forward proxy: %s %q", resp.Status, body)
	}
	proxy.Stop(t)
}
