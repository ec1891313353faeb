package cli

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
)

// Output is how much a program prints, set by its -v, -q and -timestamps
// flags.
type Output struct {
	Verbose    bool // every message's lines
	Quiet      bool // failures only
	Timestamps bool // each line begins with the time
}

// OutputFlags defines -v, -q and -timestamps.
func OutputFlags() *Output {
	o := new(Output)
	flag.BoolVar(&o.Verbose, "v", false, "print the lines of every message, not only the first few")
	flag.BoolVar(&o.Quiet, "q", false, "print failures only")
	flag.BoolVar(&o.Timestamps, "timestamps", false, "begin each line with the time")
	return o
}

// Shown is how many messages' lines a program prints by default: enough to
// follow the first exchanges as in the homework's sample terminals, while a
// proxy under load does not write several lines per message.
const Shown = 10

// Logger returns a logger that prints each record as the homework's
// sample terminals do, such as "Receiving setup message from server id 100
// privacy policy PP_1 port 124", one record a line (two for a relayed
// reply), with prefix before each. By default it prints what happens to
// servers and failures, and the lines of the first [Shown] messages; -v
// prints every message's, -q failures only.
func (o *Output) Logger(w io.Writer, prefix string) *slog.Logger {
	return slog.New(&transcript{out: o, w: w, prefix: prefix, shared: new(shared)})
}

// transcript is the slog.Handler behind Logger.
type transcript struct {
	out    *Output
	w      io.Writer
	prefix string
	attrs  []slog.Attr
	shared *shared
}

// shared is what a transcript and those made from it by WithAttrs share.
type shared struct {
	mu       sync.Mutex
	messages int  // message-start records seen
	noted    bool // the note that messages are no longer shown was printed
}

// starts are the records that begin a message's lines.
var starts = map[string]bool{"Received a data message": true, "Received a message": true}

func (h *transcript) Enabled(_ context.Context, l slog.Level) bool {
	switch {
	case h.out.Quiet:
		return l >= slog.LevelWarn
	case h.out.Verbose:
		return true
	}
	h.shared.mu.Lock()
	defer h.shared.mu.Unlock()
	return l >= slog.LevelInfo || h.shared.messages <= Shown
}

func (h *transcript) Handle(_ context.Context, r slog.Record) error {
	a := map[string]string{}
	for _, at := range h.attrs {
		a[at.Key] = at.Value.String()
	}
	r.Attrs(func(at slog.Attr) bool {
		a[at.Key] = at.Value.String()
		return true
	})
	lines := render(r.Message, a, r)

	h.shared.mu.Lock()
	defer h.shared.mu.Unlock()
	if r.Level < slog.LevelInfo && !h.out.Verbose {
		if starts[r.Message] {
			h.shared.messages++
		}
		if h.shared.messages > Shown {
			if h.shared.noted {
				return nil
			}
			h.shared.noted = true
			lines = []string{fmt.Sprintf("(Not showing each message after the first %d; -v shows them all)", Shown)}
		}
	}
	var b strings.Builder
	for _, line := range lines {
		if h.out.Timestamps {
			b.WriteString(r.Time.Format("15:04:05.000 "))
		}
		b.WriteString(h.prefix)
		b.WriteString(line)
		b.WriteByte('\n')
	}
	_, err := io.WriteString(h.w, b.String())
	return err
}

func (h *transcript) WithAttrs(attrs []slog.Attr) slog.Handler {
	c := *h
	c.attrs = append(append([]slog.Attr(nil), h.attrs...), attrs...)
	return &c
}

func (h *transcript) WithGroup(string) slog.Handler { return h }

// render turns a record into the lines of a transcript.
func render(msg string, a map[string]string, r slog.Record) []string {
	switch msg {
	// The proxy.
	case "Running the reverse proxy":
		line := "Running the reverse proxy on port " + port(a["addr"])
		if a["tls"] == "true" {
			line += " (TLS)"
		}
		return []string{line}
	case "Receiving setup message":
		line := fmt.Sprintf("Receiving setup message from server id %s privacy policy %s", a["server"], a["policy"])
		if p := a["port"]; p != "" && p != "0" {
			return []string{line + " port " + p}
		}
		return []string{line + ", served over its own connection"}
	case "Received a data message":
		return []string{fmt.Sprintf("Received a data message from client %s privacy policy %s payload: %s", a["client"], a["policy"], a["payload"])}
	case "Forwarding a data message":
		return []string{fmt.Sprintf("Forwarding a data message to server id %s payload: %s", a["server"], a["payload"])}
	case "Received a reply": // which the proxy relays at once
		return []string{
			fmt.Sprintf("Received a data message from server id %s payload: %s", a["server"], a["payload"]),
			fmt.Sprintf("Forwarding a data message to client id %s payload: %s", a["client"], a["payload"]),
		}
	case "Answered with an error":
		line := fmt.Sprintf("Answered a message for privacy policy %s with an error message, code %s: %s", a["policy"], a["code"], a["err"])
		if a["server"] != "" {
			line += " (server id " + a["server"] + ")"
		}
		if n := a["repeated"]; n != "" && n != "0" {
			line += "; " + n + " more like it since this was last shown"
		}
		return []string{line}
	case "Server left", "Server draining":
		return []string{fmt.Sprintf("Server id %s privacy policy %s %s", a["server"], a["policy"], map[string]string{"Server left": "left", "Server draining": "is draining"}[msg])}
	case "Server ejected":
		line := fmt.Sprintf("Server id %s privacy policy %s was ejected: %s", a["server"], a["policy"], a["reason"])
		if a["failed"] != "" && a["failed"] != "0" {
			line += "; " + a["failed"] + " of its messages got error messages"
		}
		if a["resent"] != "" && a["resent"] != "0" {
			line += "; " + a["resent"] + " went to another server"
		}
		return []string{line}

	// The server.
	case "Server running":
		lines := []string{"Server running with id " + a["id"], "Server serving privacy policy " + a["policy"]}
		if a["port"] == "0" {
			return append(lines, "Not listening: messages come over the connection to the reverse proxy")
		}
		return append(lines, "Listening on port "+a["port"])
	case "Connecting to the reverse proxy":
		return []string{"Connecting to the reverse proxy" + where(a["addr"])}
	case "Registered with the reverse proxy":
		return []string{fmt.Sprintf("Registered with the reverse proxy%s as server id %s privacy policy %s", where(a["proxy"]), a["id"], a["policy"])}
	case "Drained":
		return []string{"Stopped: every message in hand was answered"}
	case "Received a message":
		return []string{fmt.Sprintf("Received a message from client %s payload: %s", a["client"], a["payload"])}
	case "Sending a response":
		return []string{fmt.Sprintf("Sending a response to the client %s payload: %s", a["client"], a["payload"])}
	case "The proxy did not acknowledge the registration; serving the listener":
		return []string{fmt.Sprintf("The reverse proxy%s did not acknowledge the registration within %s: a proxy written from the homework; it will connect to the listen port", where(a["proxy"]), a["after"])}
	case "The proxy closed the registration connection; serving the listener":
		return []string{fmt.Sprintf("The reverse proxy%s closed the registration connection: a proxy written from the homework; it will connect to the listen port", where(a["proxy"]))}
	case "Registering with the reverse proxy again":
		return []string{fmt.Sprintf("Cannot register with the reverse proxy%s (%s); trying again in %s", where(a["proxy"]), a["err"], a["in"])}

	// The client.
	case "Sending message":
		return []string{fmt.Sprintf("Sending message %s to privacy policy %s through reverse proxy running%s", a["payload"], a["policy"], where(a["proxy"]))}
	case "Receiving a response":
		return []string{fmt.Sprintf("Receiving a response from the server %s payload: %s", a["server"], a["payload"])}
	}
	// Anything else: the message, then its details in the same prose style.
	var details []string
	r.Attrs(func(at slog.Attr) bool {
		details = append(details, at.Key+" "+at.Value.String())
		return true
	})
	if len(details) == 0 {
		return []string{msg}
	}
	return []string{msg + ": " + strings.Join(details, ", ")}
}

// where says where a proxy is, after a space, as the homework does for one
// on this machine: " on port 123". It is empty when addr is.
func where(addr string) string {
	if addr == "" {
		return ""
	}
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return " at " + addr
	}
	switch host {
	case "", "localhost", "127.0.0.1", "::1", "::", "0.0.0.0":
		return " on port " + p
	}
	return " at " + addr
}

// port returns the port of addr, or addr itself.
func port(addr string) string {
	if _, p, err := net.SplitHostPort(addr); err == nil {
		return p
	}
	return addr
}
