package revproxy

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/seed-c202d8a5/revproxy/internal/testproc"
)

// The interop tests run the Python peers in testdata, written from the
// homework and tutorial texts, against the Go roles.

func python(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 is not on the PATH; the interop tests need it to run the peers in testdata")
	}
	return path
}

// TestInteropPythonPeersThroughGoProxy: a Python server and a Go server share
// PP_1 behind the Go proxy; the Python client sends five messages on one
// connection, in the homework's style and then in the tutorial's.
func TestInteropPythonPeersThroughGoProxy(t *testing.T) {
	py := python(t)
	p, addr := startProxy(t)
	port := portOf(t, addr)

	pyServer := testproc.Start(t, py, "testdata/server.py", "-id", "100", "-pp", "PP_1", "-listen", "0", "-revproc", port)
	pyServer.WaitFor(t, "Listening on port")
	waitFor(t, "the Python server to register", func() bool { return len(p.Servers("PP_1")) == 1 })
	startServer(t, p, &Server{ID: "200", Policy: "PP_1", ProxyAddr: addr})

	// The rotation goes on across the two runs: the second starts at 200.
	for run, pkt := range []string{
		`{"type": 0, "srcid": 50, "privPoliId": "PP_1", "payloadsize": 5, "payload": "hello"}`,
		`{"type": "0", "srcid": "50", "privPoliId": "PP_1", "payloadsize": "5", "payload": "hello"}`,
	} {
		file := filepath.Join(t.TempDir(), "mypkt.json")
		if err := os.WriteFile(file, []byte(pkt), 0o644); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(py, "testdata/client.py", "-id", "50", "-revproc", port, "-pkt", file, "-count", "5").CombinedOutput()
		if err != nil {
			t.Fatalf("client.py with %s: %v\n%s", pkt, err, out)
		}
		if n := len(regexp.MustCompile(`SHA1 OK`).FindAll(out, -1)); n != 5 {
			t.Errorf("client.py with %s: %d of 5 replies verified:\n%s", pkt, n, out)
		}
		var from []string
		for _, m := range regexp.MustCompile(`from the server (\S+) `).FindAllSubmatch(out, -1) {
			from = append(from, string(m[1]))
		}
		want := []string{"100", "200", "100", "200", "100"}
		if run == 1 {
			want = []string{"200", "100", "200", "100", "200"}
		}
		if diff := cmp.Diff(want, from); diff != "" {
			t.Errorf("client.py with %s: replies came from (-want +got):\n%s\n%s", pkt, diff, out)
		}
	}
	pyServer.WaitFor(t, "Received a message from client 50 payload: hello 5")
	pyServer.Stop(t)
}

// TestInteropGoPeersThroughPythonProxy: two Go servers register with the
// Python proxy, which, like the tutorial's, reads only string-typed
// messages; a Go client's messages go round robin between them.
func TestInteropGoPeersThroughPythonProxy(t *testing.T) {
	py := python(t)
	proxy := testproc.Start(t, py, "testdata/revproc.py", "-port", "0")
	port := proxy.WaitForMatch(t, regexp.MustCompile(`Running the reverse proxy on port (\d+)`))[1]
	addr := "127.0.0.1:" + port

	for _, id := range []string{"100", "200"} {
		s := &Server{ID: id, Policy: "PP_1", ProxyAddr: addr, StringFields: true}
		ln := listen(t)
		runRole(t, func(ctx context.Context) error { return s.Serve(ctx, ln) })
		proxy.WaitFor(t, "Receiving setup message from server id "+id+" privacy policy PP_1")
	}

	c := &Client{ID: "50", ProxyAddr: addr, StringFields: true}
	defer c.Close()
	ctx := testContext(t)
	var from []string
	for i := 1; i <= 5; i++ {
		payload := fmt.Sprintf("hello %d", i)
		reply, err := c.Send(ctx, "PP_1", payload)
		if err != nil {
			t.Fatalf("message %d: %v\nproxy output:\n%s", i, err, proxy.Output())
		}
		if err := VerifySHA1(payload, reply); err != nil {
			t.Errorf("message %d: %v", i, err)
		}
		from = append(from, reply.SrcID)
	}
	if diff := cmp.Diff([]string{"100", "200", "100", "200", "100"}, from); diff != "" {
		t.Errorf("replies came from (-want +got):\n%s", diff)
	}
	proxy.Stop(t)
}

// TestInteropGoPeersThroughSerialProxy: a proxy that serves one connection
// at a time and reads it until the peer closes it, as some are written from
// the homework. Each Go server closes its registration once it is not
// acknowledged, so the proxy goes on to the next server and to the client,
// whose five messages go round robin between the two.
func TestInteropGoPeersThroughSerialProxy(t *testing.T) {
	py := python(t)
	proxy := testproc.Start(t, py, "testdata/revproc_serial.py", "-port", "0")
	port := proxy.WaitForMatch(t, regexp.MustCompile(`Running the reverse proxy on port (\d+)`))[1]
	addr := "127.0.0.1:" + port

	for _, id := range []string{"100", "200"} {
		s := &Server{ID: id, Policy: "PP_1", ProxyAddr: addr}
		ln := listen(t)
		runRole(t, func(ctx context.Context) error { return s.Serve(ctx, ln) })
		// Printed once the proxy reads it, before the Server closes the
		// connection: the next server registers after this one.
		proxy.WaitFor(t, fmt.Sprintf("Receiving setup message from server id %s privacy policy PP_1 port %d", id, ln.Addr().(*net.TCPAddr).Port))
	}

	c := &Client{ID: "50", ProxyAddr: addr}
	defer c.Close()
	ctx := testContext(t)
	var from []string
	for i := 1; i <= 5; i++ {
		payload := fmt.Sprintf("hello %d", i)
		reply, err := c.Send(ctx, "PP_1", payload)
		if err != nil {
			t.Fatalf("message %d: %v\nproxy output:\n%s", i, err, proxy.Output())
		}
		if err := VerifySHA1(payload, reply); err != nil {
			t.Errorf("message %d: %v", i, err)
		}
		from = append(from, reply.SrcID)
	}
	if diff := cmp.Diff([]string{"100", "200", "100", "200", "100"}, from); diff != "" {
		t.Errorf("replies came from (-want +got):\n%s", diff)
	}
	c.Close() // the proxy is serving this connection: let it go before stopping
	proxy.Stop(t)
}

func portOf(t *testing.T, addr string) string {
	t.Helper()
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	return port
}
