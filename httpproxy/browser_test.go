//go:build unix

package httpproxy

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// chromium returns the path of Chromium, or skips the test when it is not
// installed, unless REVPROXY_BROWSER=require (as in .ci/run) makes that a
// failure. (The root package's, which tests cannot share.)
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

// dumpDOM loads url in headless Chromium, with a profile of its own and
// args, and returns the DOM once the page has loaded. Chromium and every
// process it started are killed if it outlives a minute, and when it
// returns.
func dumpDOM(t *testing.T, url string, args ...string) string {
	t.Helper()
	path := chromium(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	args = append([]string{
		"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--disable-extensions", "--user-data-dir=" + t.TempDir(),
	}, append(args, "--dump-dom", url)...)
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

// TestForwardInBrowser loads a page in Chromium through the forward proxy:
// the page's script ran (the DOM says so) and the origin saw the proxy's
// Via on the page's request.
func TestForwardInBrowser(t *testing.T) {
	chromium(t)
	var viaPage atomic.Bool
	origin := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/page" {
			http.NotFound(w, r)
			return
		}
		viaPage.Store(r.Header.Get("Via") == "1.1 revproxy")
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		io.WriteString(w, `<!doctype html><html><body><p id="out">not run</p>`+
			`<script>document.getElementById("out").textContent = "script " + "ran";</script></body></html>`)
	})
	p := &Proxy{Forward: true}
	addr := serve(t, p)

	// Chromium goes to loopback directly unless told <-loopback>.
	dom := dumpDOM(t, origin.URL+"/page", "--proxy-server=http://"+addr, "--proxy-bypass-list=<-loopback>")
	if !strings.Contains(dom, `<p id="out">script ran</p>`) {
		t.Errorf("the page's script did not run:\n%s", dom)
	}
	if !viaPage.Load() {
		t.Error("the origin did not see the page's request come through the proxy (Via: 1.1 revproxy)")
	}
	if n := p.stats.requests[kindForward].Load(); n == 0 {
		t.Error("the proxy counted no forward request")
	}
}
