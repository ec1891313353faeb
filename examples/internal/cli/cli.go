// Package cli holds what the example programs share: their usage message,
// flag checks, the -revproc address form, and a slog handler that prints the
// library's log records as the lines of the homework's sample terminals.
package cli

import (
	"flag"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
)

// Program describes an example program for its usage message.
type Program struct {
	Name     string // the command's name, as in "usage: NAME ..."
	Summary  string // one line saying what the program does
	Synopsis string // its arguments, as the homework writes them
}

// Parse sets the usage message and parses the command line. A bad flag or
// value prints the usage and exits with status 2, as the flag package does;
// so do missing flags, all named at once, and left-over arguments. -h
// prints the usage and exits 0.
func (p Program) Parse(required ...string) {
	flag.Usage = func() {
		w := flag.CommandLine.Output()
		fmt.Fprintln(w, p.Summary)
		fmt.Fprintf(w, "\nusage: %s %s\n\n", p.Name, p.Synopsis)
		flag.PrintDefaults()
	}
	flag.Parse()
	set := map[string]bool{}
	flag.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var missing []string
	for _, n := range required {
		if !set[n] {
			missing = append(missing, "-"+n)
		}
	}
	switch {
	case len(missing) > 0:
		fmt.Fprintf(flag.CommandLine.Output(), "missing %s\n", strings.Join(missing, ", "))
	case flag.NArg() > 0:
		fmt.Fprintf(flag.CommandLine.Output(), "unexpected argument %q\n", flag.Arg(0))
	default:
		return
	}
	flag.Usage()
	os.Exit(2)
}

// Port is a TCP port given as a flag: 0 to 65535, where 0 lets the system
// pick a free one.
type Port int

// PortFlag defines a port flag.
func PortFlag(name, usage string) *Port {
	p := new(Port)
	flag.Var(p, name, usage)
	return p
}

// String returns the port in decimal.
func (p *Port) String() string { return strconv.Itoa(int(*p)) }

// Set parses a port, refusing anything outside 0-65535.
func (p *Port) Set(v string) error {
	n, err := strconv.Atoi(v)
	if err != nil {
		return fmt.Errorf("%q is not a port number", v)
	}
	if n < 0 || n > 65535 {
		return fmt.Errorf("port %d is out of range (0-65535)", n)
	}
	*p = Port(n)
	return nil
}

// Addr returns the address to listen on all interfaces at the port.
func (p *Port) Addr() string { return net.JoinHostPort("", p.String()) }

// Int is an integer flag that refuses values outside Min to Max.
type Int struct {
	Value, Min, Max int
}

// IntFlag defines an integer flag from lo to hi, value by default.
func IntFlag(name string, value, lo, hi int, usage string) *Int {
	n := &Int{Value: value, Min: lo, Max: hi}
	flag.Var(n, name, usage)
	return n
}

// String returns the value in decimal.
func (n *Int) String() string { return strconv.Itoa(n.Value) }

// Set parses an integer, refusing anything outside Min to Max.
func (n *Int) Set(v string) error {
	i, err := strconv.Atoi(v)
	if err != nil {
		return fmt.Errorf("%q is not a number", v)
	}
	if i < n.Min || i > n.Max {
		return fmt.Errorf("%d is out of range (%d-%d)", i, n.Min, n.Max)
	}
	n.Value = i
	return nil
}

// ProxyAddr is a -revproc value: a bare port means the proxy runs on this
// machine, as in the homework; host:port is used as is.
type ProxyAddr string

// ProxyAddrFlag defines a -revproc style flag.
func ProxyAddrFlag(name, usage string) *ProxyAddr {
	a := new(ProxyAddr)
	flag.Var(a, name, usage)
	return a
}

// String returns the address.
func (a *ProxyAddr) String() string { return string(*a) }

// Set parses a port (1-65535) or host:port.
func (a *ProxyAddr) Set(v string) error {
	if port, err := strconv.Atoi(v); err == nil {
		if port < 1 || port > 65535 {
			return fmt.Errorf("port %d is out of range (1-65535)", port)
		}
		*a = ProxyAddr(net.JoinHostPort("localhost", v))
		return nil
	}
	host, port, err := net.SplitHostPort(v)
	if err != nil || host == "" {
		return fmt.Errorf("%q is neither a port nor host:port", v)
	}
	var p Port
	if err := p.Set(port); err != nil || p == 0 {
		return fmt.Errorf("%q does not end in a port (1-65535)", v)
	}
	*a = ProxyAddr(v)
	return nil
}
