package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/seed-c202d8a5/revproxy"
)

// idleResult is the proxy's memory before and after n idle clients connect.
type idleResult struct {
	Conns                int
	Connected            int // clients that got the expected answer
	Errors               int
	FirstErr             string
	RSSBefore, RSSAfter  int64 // VmRSS, bytes
	GoBefore, GoAfter    int64 // Go runtime memory in use after a GC, bytes
	GorBefore, GorAfter  int64 // goroutines
	NoFileSelf, NoFileCh uint64
}

func (r idleResult) perConn(before, after int64) float64 {
	return float64(after-before) / float64(r.Conns)
}

// Commands the proxy child reads on its standard input, one per line.
const (
	cmdMem  = "mem"  // answers "mem <go bytes> <goroutines> <nofile>"
	cmdWait = "wait" // "wait POLICY N": answers "ok" once N servers are registered, or "err ..."
	cmdQuit = "quit" // stops the proxy and exits
)

// waitTimeout bounds how long the proxy child waits for servers to register.
const waitTimeout = 30 * time.Second

// runProxyChild is the -role proxy process: a Proxy with default settings
// and no logger (what examples/revproc -q runs, less its log handler) on a
// free loopback port, announced as "addr HOST:PORT" on standard output,
// driven by commands on standard input. It exits when told to or when
// standard input closes. The benchmark runs it as the broker of the
// revproxy systems, and for the idle-connection test.
func runProxyChild() int {
	nofile, err := raiseNoFile()
	if err != nil {
		fmt.Fprintln(os.Stderr, "proxy child:", err)
	}
	ln, err := listen()
	if err != nil {
		fmt.Fprintln(os.Stderr, "proxy child:", err)
		return 1
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	p := &revproxy.Proxy{}
	go func() { served <- p.Serve(ctx, ln) }()
	fmt.Printf("addr %s\n", ln.Addr())

	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		f := strings.Fields(in.Text())
		if len(f) == 0 {
			continue
		}
		switch f[0] {
		case cmdWait:
			n, err := 0, error(nil)
			if len(f) != 3 {
				err = fmt.Errorf("usage: %s POLICY N", cmdWait)
			} else if n, err = strconv.Atoi(f[2]); err == nil {
				wctx, wcancel := context.WithTimeout(ctx, waitTimeout)
				err = p.WaitServers(wctx, f[1], n)
				wcancel()
			}
			if err != nil {
				fmt.Printf("err %s\n", oneLine(err.Error()))
			} else {
				fmt.Println("ok")
			}
		case cmdMem:
			runtime.GC()
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			inUse := ms.HeapInuse + ms.StackInuse + ms.MSpanInuse + ms.MCacheInuse
			fmt.Printf("mem %d %d %d\n", inUse, runtime.NumGoroutine(), nofile)
		case cmdQuit:
			cancel()
			return exitCode(<-served)
		}
	}
	cancel()
	return exitCode(<-served)
}

func exitCode(err error) int {
	if err != nil {
		fmt.Fprintln(os.Stderr, "proxy child:", err)
		return 1
	}
	return 0
}

// proxyChild is the parent's handle on a -role proxy process.
type proxyChild struct {
	cmd  *exec.Cmd
	in   io.WriteCloser
	out  *bufio.Scanner
	addr string
}

func startProxyChild(ctx context.Context) (*proxyChild, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(exe, "-role", "proxy")
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	c := &proxyChild{cmd: cmd, in: in, out: bufio.NewScanner(out)}
	line, err := c.readLine(ctx)
	if err == nil {
		var ok bool
		if c.addr, ok = strings.CutPrefix(line, "addr "); !ok {
			err = fmt.Errorf("proxy child said %q", line)
		}
	}
	if err != nil {
		c.stop()
		return nil, err
	}
	return c, nil
}

// waitServers returns once n servers of policy are registered with the
// child, or the child's error.
func (c *proxyChild) waitServers(ctx context.Context, policy string, n int) error {
	if _, err := fmt.Fprintf(c.in, "%s %s %d\n", cmdWait, policy, n); err != nil {
		return err
	}
	line, err := c.readLine(ctx)
	switch {
	case err != nil:
		return err
	case line == "ok":
		return nil
	}
	return fmt.Errorf("proxy child: %s", strings.TrimPrefix(line, "err "))
}

func (c *proxyChild) pid() int { return c.cmd.Process.Pid }

// readLine reads one line of the child's output within 30 seconds (more
// than waitTimeout).
func (c *proxyChild) readLine(ctx context.Context) (string, error) {
	got := make(chan bool, 1)
	go func() { got <- c.out.Scan() }()
	select {
	case ok := <-got:
		if !ok {
			return "", fmt.Errorf("proxy child ended its output: %v", c.out.Err())
		}
		return c.out.Text(), nil
	case <-time.After(waitTimeout + 5*time.Second):
		c.cmd.Process.Kill() // unblocks the reader
		<-got
		return "", fmt.Errorf("proxy child did not answer within %v", waitTimeout+5*time.Second)
	case <-ctx.Done():
		c.cmd.Process.Kill()
		<-got
		return "", ctx.Err()
	}
}

// mem asks the child for its Go memory and goroutines, then reads its VmRSS.
func (c *proxyChild) mem(ctx context.Context) (goBytes, goroutines, rss int64, nofile uint64, err error) {
	if _, err = fmt.Fprintln(c.in, cmdMem); err != nil {
		return
	}
	line, err := c.readLine(ctx)
	if err != nil {
		return
	}
	if _, err = fmt.Sscanf(line, "mem %d %d %d", &goBytes, &goroutines, &nofile); err != nil {
		err = fmt.Errorf("proxy child said %q: %w", line, err)
		return
	}
	rss, err = vmRSS(c.cmd.Process.Pid)
	return
}

// stop tells the child to quit and reaps it, killing it if it lingers.
func (c *proxyChild) stop() {
	fmt.Fprintln(c.in, cmdQuit)
	c.in.Close()
	done := make(chan struct{})
	go func() { c.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		c.cmd.Process.Kill()
		<-done
	}
}

// vmRSS reads a process's resident set size from /proc/PID/status.
func vmRSS(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for line := range strings.Lines(string(b)) {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(rest) // "1234 kB"
			if len(f) == 2 && f[1] == "kB" {
				kb, err := strconv.ParseInt(f[0], 10, 64)
				return kb * 1024, err
			}
		}
	}
	return 0, fmt.Errorf("no VmRSS in /proc/%d/status", pid)
}

// idleMemory runs a Proxy in a child process, connects n Clients to it that
// each send one message to a policy nobody serves (the proxy answers at
// once, so the connection is established and then idle), and measures the
// child's memory before and after.
func idleMemory(ctx context.Context, n int) (idleResult, error) {
	r := idleResult{Conns: n}
	var err error
	if r.NoFileSelf, err = raiseNoFile(); err != nil {
		return r, err
	}
	if r.NoFileSelf < uint64(n)+256 {
		return r, fmt.Errorf("open-file limit %d is too low for %d connections", r.NoFileSelf, n)
	}
	child, err := startProxyChild(ctx)
	if err != nil {
		return r, err
	}
	defer child.stop()
	time.Sleep(300 * time.Millisecond)
	if r.GoBefore, r.GorBefore, r.RSSBefore, r.NoFileCh, err = child.mem(ctx); err != nil {
		return r, err
	}
	if r.NoFileCh < uint64(n)+256 {
		return r, fmt.Errorf("the proxy child's open-file limit %d is too low for %d connections", r.NoFileCh, n)
	}

	clients := make([]*revproxy.Client, n)
	defer func() { // close every connection, in parallel
		var wg sync.WaitGroup
		for part := range 16 {
			wg.Go(func() {
				for i := part; i < n; i += 16 {
					if clients[i] != nil {
						clients[i].Close()
					}
				}
			})
		}
		wg.Wait()
	}()
	var next, connected atomic.Int64
	var mu sync.Mutex // guards r.Errors and r.FirstErr
	var wg sync.WaitGroup
	for range 32 {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n || ctx.Err() != nil {
					return
				}
				c := &revproxy.Client{ID: strconv.Itoa(100000 + i), ProxyAddr: child.addr}
				clients[i] = c
				sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
				_, err := c.Send(sctx, "PP_NONE", "x")
				cancel()
				if errors.Is(err, revproxy.ErrNoServer) {
					connected.Add(1)
					continue
				}
				if err == nil {
					err = errors.New("a reply from a policy nobody serves")
				}
				mu.Lock()
				if r.Errors++; r.FirstErr == "" {
					r.FirstErr = err.Error()
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	r.Connected = int(connected.Load())
	if err := ctx.Err(); err != nil {
		return r, err
	}
	time.Sleep(500 * time.Millisecond)
	if r.GoAfter, r.GorAfter, r.RSSAfter, _, err = child.mem(ctx); err != nil {
		return r, err
	}
	return r, nil
}
