package cli

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/seed-c202d8a5/revproxy"
)

// syncBuffer is a bytes.Buffer safe for the roles' goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// proxyTranscript runs a proxy logging with out, sends n messages through
// it, and returns what the proxy printed.
func proxyTranscript(t *testing.T, out *Output, n int) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	var w syncBuffer
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &revproxy.Proxy{Logger: out.Logger(&w, "")}
	s := &revproxy.Server{ID: "100", Policy: "PP_1", ProxyAddr: ln.Addr().String()}
	done := make(chan error, 2)
	go func() { done <- p.Serve(ctx, ln) }()
	go func() { done <- s.Serve(ctx, nil) }()
	defer func() {
		cancel()
		for range 2 {
			if err := <-done; err != nil {
				t.Error(err)
			}
		}
	}()
	if err := p.WaitServers(ctx, "PP_1", 1); err != nil {
		t.Fatal(err)
	}
	c := &revproxy.Client{ID: "50", ProxyAddr: ln.Addr().String()}
	defer c.Close()
	for i := range n {
		if _, err := c.Send(ctx, "PP_1", fmt.Sprint("m", i)); err != nil {
			t.Fatal(err)
		}
	}
	// The proxy logs a reply before it relays it: all is written by now.
	return w.String()
}

// TestTranscriptLevels: by default the proxy prints the lines of the first
// Shown messages, then a note, and no more per message; -v prints every
// message's, -q none.
func TestTranscriptLevels(t *testing.T) {
	const n = 2 * Shown
	count := func(s string) int { return strings.Count(s, "Received a data message from client 50") }

	def := proxyTranscript(t, &Output{}, n)
	if got := count(def); got != Shown || !strings.Contains(def, "-v shows them all") {
		t.Errorf("by default: %d messages shown of %d, want %d and a note:\n%s", got, n, Shown, def)
	}
	if !strings.Contains(def, "Receiving setup message from server id 100 privacy policy PP_1") {
		t.Errorf("by default, the registration is not shown:\n%s", def)
	}
	if verbose := proxyTranscript(t, &Output{Verbose: true}, n); count(verbose) != n || strings.Count(verbose, "Forwarding a data message to client id 50 payload: ") != n {
		t.Errorf("with -v: want every message's lines:\n%s", verbose)
	}
	if quiet := proxyTranscript(t, &Output{Quiet: true}, n); quiet != "" {
		t.Errorf("with -q: printed\n%s\nwant nothing", quiet)
	}
	stamped := proxyTranscript(t, &Output{Timestamps: true}, 1)
	for _, line := range strings.Split(strings.TrimSuffix(stamped, "\n"), "\n") {
		if !regexp.MustCompile(`^\d\d:\d\d:\d\d\.\d\d\d \S`).MatchString(line) {
			t.Errorf("with -timestamps: line %q does not begin with the time", line)
		}
	}
}

// TestRenderOneStyle: records the transcript does not know are written as
// prose, not key=value.
func TestRenderOneStyle(t *testing.T) {
	var w syncBuffer
	log := (&Output{}).Logger(&w, "")
	log.Warn("Connection failed", "from", "127.0.0.1:5555", "err", "EOF")
	if want := "Connection failed: from 127.0.0.1:5555, err EOF\n"; w.String() != want {
		t.Errorf("printed %q, want %q", w.String(), want)
	}
}
