// Package testproc runs programs for tests: it collects their output, waits
// for lines in it, and stops them when the test ends.
package testproc

import (
	"bufio"
	"fmt"
	"io"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Process is a running program whose stdout and stderr are collected.
type Process struct {
	cmd  *exec.Cmd
	mu   sync.Mutex
	out  strings.Builder
	done chan struct{}
}

// Start runs name with args; the program is killed when the test ends.
func Start(t testing.TB, name string, args ...string) *Process {
	t.Helper()
	p := &Process{cmd: exec.Command(name, args...), done: make(chan struct{})}
	stdout, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	p.cmd.Stderr = p.cmd.Stdout
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(p.done)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			p.mu.Lock()
			fmt.Fprintln(&p.out, sc.Text())
			p.mu.Unlock()
		}
		io.Copy(io.Discard, stdout)
	}()
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		<-p.done
		p.cmd.Wait()
	})
	return p
}

// Output returns what the program has printed so far.
func (p *Process) Output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.String()
}

// WaitFor waits up to 10 seconds for the program to print s.
func (p *Process) WaitFor(t testing.TB, s string) {
	t.Helper()
	p.WaitForMatch(t, regexp.MustCompile(regexp.QuoteMeta(s)))
}

// WaitForMatch waits up to 10 seconds for output matching re and returns
// the first match's submatches.
func (p *Process) WaitForMatch(t testing.TB, re *regexp.Regexp) []string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if m := re.FindStringSubmatch(p.Output()); m != nil {
			return m
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never printed %q; it printed:\n%s", p.cmd.Path, re, p.Output())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Stop sends SIGTERM and fails the test unless the program exits cleanly.
func (p *Process) Stop(t testing.TB) {
	t.Helper()
	p.cmd.Process.Signal(syscall.SIGTERM)
	<-p.done
	if err := p.cmd.Wait(); err != nil {
		t.Errorf("%s exited with %v after SIGTERM; output:\n%s", p.cmd.Path, err, p.Output())
	}
}
