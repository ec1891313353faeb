// Package examples tests the example programs as a user runs them: built
// binaries, real processes, loopback TCP.
package examples

import (
	"bytes"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/seed-c202d8a5/revproxy/internal/testproc"
)

// build compiles the example programs once into a temporary directory.
func build(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	cmd := exec.Command("go", "build", "-o", dir+string(filepath.Separator), "./revproc", "./server", "./client", "./demo")
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("go build: %v", err)
	}
	return dir
}

func TestUsageErrors(t *testing.T) {
	bin := build(t)
	for _, args := range [][]string{
		{"revproc"},
		{"revproc", "-port"},
		{"revproc", "-port", "123", "extra"},
		{"server", "-id", "100", "-pp", "PP_1", "-listen", "124"},
		{"server", "-id", "100", "-pp", "PP_1", "-listen", "124", "-revproc", "no-port"},
		{"client", "-id", "50", "-revproc", "123"},
		{"client", "-id", "50", "-revproc", "123", "-pkt", "x", "-bogus"},
	} {
		cmd := exec.Command(filepath.Join(bin, args[0]), args[1:]...)
		out, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 2 {
			t.Errorf("%v: err = %v, want exit status 2", args, err)
		}
		if !bytes.Contains(out, []byte("usage: "+args[0])) {
			t.Errorf("%v: output lacks the usage line:\n%s", args, out)
		}
	}
}

// TestProgramsEndToEnd runs revproc, a server and the client as separate
// processes, with the homework's command lines.
func TestProgramsEndToEnd(t *testing.T) {
	bin := build(t)
	port := freePort(t)
	proxy := testproc.Start(t, filepath.Join(bin, "revproc"), "-port", port)
	proxy.WaitFor(t, "Running the reverse proxy")
	server := testproc.Start(t, filepath.Join(bin, "server"), "-id", "100", "-pp", "PP_1", "-listen", "0", "-revproc", port)
	proxy.WaitFor(t, "Receiving setup message server=100 policy=PP_1")

	dir := t.TempDir()
	pkt := filepath.Join(dir, "mypkt.json")
	os.WriteFile(pkt, []byte(`{"type": 0, "srcid": 50, "privPoliId": "PP_1", "payloadsize": 5, "payload": "hello"}`), 0o644)
	out, err := exec.Command(filepath.Join(bin, "client"), "-id", "50", "-revproc", port, "-pkt", pkt).CombinedOutput()
	if err != nil {
		t.Fatalf("client: %v\n%s", err, out)
	}
	for _, want := range []string{
		`Sending message "hello" to privacy policy PP_1`,
		"Receiving a response from the server 100 payload: aaf4c61ddcc5e8a2dabede0f3b482cd9aea9434d",
		"SHA1 matches",
	} {
		if !strings.Contains(string(out), want) {
			t.Errorf("client output lacks %q:\n%s", want, out)
		}
	}
	server.WaitFor(t, "Received a message client=50 payload=hello")

	os.WriteFile(pkt, []byte(`{"type": 0, "srcid": 50, "privPoliId": "PP_9", "payload": "nobody"}`), 0o644)
	out, err = exec.Command(filepath.Join(bin, "client"), "-id", "50", "-revproc", "localhost:"+port, "-pkt", pkt).CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 || !strings.Contains(string(out), "no server for policy PP_9") {
		t.Errorf("client for PP_9: err = %v, want exit 1 with the proxy's error:\n%s", err, out)
	}

	server.Stop(t)
	proxy.WaitFor(t, "Server left id=100")
	proxy.Stop(t)
}

func TestDemo(t *testing.T) {
	bin := build(t)
	out, err := exec.Command(filepath.Join(bin, "demo")).CombinedOutput()
	if err != nil {
		t.Fatalf("demo: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "Round robin for PP_1: 100 → 101 → 100 → 101 → 100") {
		t.Errorf("demo output lacks the rotation:\n%s", out)
	}
}

func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
}
