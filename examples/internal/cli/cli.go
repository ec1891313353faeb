// Package cli holds what the example programs share: flag checks, the
// -revproc address form and a logger that prints transcript lines.
package cli

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
)

// Require exits with the usage message and status 2 unless every named flag
// was given on the command line, and no arguments are left over.
func Require(names ...string) {
	set := map[string]bool{}
	flag.Visit(func(f *flag.Flag) { set[f.Name] = true })
	for _, n := range names {
		if !set[n] {
			fmt.Fprintf(flag.CommandLine.Output(), "missing -%s\n", n)
			flag.Usage()
			os.Exit(2)
		}
	}
	if flag.NArg() > 0 {
		fmt.Fprintf(flag.CommandLine.Output(), "unexpected argument %q\n", flag.Arg(0))
		flag.Usage()
		os.Exit(2)
	}
}

// ProxyAddr turns a -revproc value into an address: a bare port means the
// proxy runs on this machine, as in the homework; host:port is used as is.
func ProxyAddr(v string) (string, error) {
	if port, err := strconv.Atoi(v); err == nil {
		if port < 1 || port > 65535 {
			return "", fmt.Errorf("port %d out of range", port)
		}
		return net.JoinHostPort("localhost", v), nil
	}
	if _, _, err := net.SplitHostPort(v); err != nil {
		return "", fmt.Errorf("%q is neither a port nor host:port", v)
	}
	return v, nil
}

// Logger returns a logger that prints each record as one line, "prefix
// message key=value ...", at Debug and above, so the library's messages read
// like the homework's terminal transcripts.
func Logger(w io.Writer, prefix string) *slog.Logger {
	return slog.New(&transcript{w: w, prefix: prefix, mu: new(sync.Mutex)})
}

type transcript struct {
	w      io.Writer
	prefix string
	attrs  []slog.Attr
	mu     *sync.Mutex
}

func (h *transcript) Enabled(context.Context, slog.Level) bool { return true }

func (h *transcript) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	b.WriteString(h.prefix)
	b.WriteString(r.Message)
	write := func(a slog.Attr) bool {
		v := a.Value.String()
		if v == "" || strings.ContainsAny(v, " \t\n\"") {
			v = strconv.Quote(v)
		}
		fmt.Fprintf(&b, " %s=%s", a.Key, v)
		return true
	}
	for _, a := range h.attrs {
		write(a)
	}
	r.Attrs(write)
	b.WriteByte('\n')
	h.mu.Lock()
	defer h.mu.Unlock()
	_, err := io.WriteString(h.w, b.String())
	return err
}

func (h *transcript) WithAttrs(attrs []slog.Attr) slog.Handler {
	c := *h
	c.attrs = append(append([]slog.Attr(nil), h.attrs...), attrs...)
	return &c
}

func (h *transcript) WithGroup(string) slog.Handler { return h }
