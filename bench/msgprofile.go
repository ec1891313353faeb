package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// A msgLook is one look inside a message broker under load, apart from the
// measured rounds: the system calls and context switches its process makes
// per message (perf stat, when perf is installed) and, for revproxy's
// proxy, where its CPU time goes (a CPU profile through revproc -admin ADDR
// -pprof).
type msgLook struct {
	system  string
	clients int
	servers int  // 0 for the default of 2
	oneConn bool // the clients share one connection
	rps     float64
	msgs    int64    // requests answered while perf counted
	calls   perfStat // per message
	perfErr string
	file    string // the CPU profile, for revproxy
	top     string // go tool pprof -top of it
	err     string
}

// perfStat is what perf stat counted, per message.
type perfStat struct {
	all, read, write, epoll, futex, switches float64 // write: write and writev
}

// msgLookAt is the load of each look: the points the targets are
// about, at 64 B.
var msgLookAt = []msgLook{
	{system: "revproxy", clients: 32}, {system: "nats", clients: 32},
	{system: "revproxy", clients: 256}, {system: "nats", clients: 256},
	{system: "revproxy", clients: 32, oneConn: true}, {system: "nats", clients: 32, oneConn: true},
	{system: "revproxy", clients: 32, servers: 1000},
}

// perfEvents are the events perf stat counts on the broker's process.
var perfEvents = []string{"raw_syscalls:sys_enter", "syscalls:sys_enter_read", "syscalls:sys_enter_write",
	"syscalls:sys_enter_epoll_pwait", "syscalls:sys_enter_futex", "context-switches", "syscalls:sys_enter_writev"}

// lookInside takes each look of msgLookAt. Each system starts afresh and
// runs the closed loop for profileSeconds+2 s; once the clients have run
// a second, perf stat and, for revproxy, the CPU profile cover the next
// profileSeconds, and the requests answered meanwhile are counted.
func lookInside(ctx context.Context, cfg *config) []msgLook {
	if err := os.MkdirAll(cfg.profile, 0o755); err != nil {
		return []msgLook{{err: err.Error()}}
	}
	long := *cfg
	long.duration = (profileSeconds + 2) * time.Second
	var out []msgLook
	for _, l := range msgLookAt {
		if ctx.Err() != nil {
			break
		}
		progress("look inside: %s", l.label())
		l.take(ctx, &long)
		if l.err != "" {
			progress("look inside: %s: %s", l.label(), l.err)
		}
		out = append(out, l)
	}
	return out
}

// label says which system and load the look is of.
func (l *msgLook) label() string {
	s := fmt.Sprintf("%s, %d clients", l.system, l.clients)
	if l.oneConn {
		s = fmt.Sprintf("%s, %d goroutines on one connection", l.system, l.clients)
	}
	if l.servers > 0 {
		s += fmt.Sprintf(", %d servers", l.servers)
	}
	return s + ", 64 B"
}

func (l *msgLook) take(ctx context.Context, cfg *config) {
	var (
		e   *env
		err error
	)
	servers := cmp.Or(l.servers, 2)
	switch l.system {
	case "revproxy":
		e, err = startRevproxy(ctx, cfg, brokerProfiled, false, servers)
	case "nats":
		e, err = startNATS(ctx, cfg)
	default:
		err = fmt.Errorf("no look at %s", l.system)
	}
	if err != nil {
		l.err = err.Error()
		return
	}
	defer e.close()
	if l.oneConn {
		e = shareOne(e)
	}
	var answered atomic.Int64
	connect := e.connect
	e.connect = func(i, n int) (sendFunc, func(), error) {
		send, closeFn, err := connect(i, n)
		if err != nil {
			return nil, nil, err
		}
		return func(ctx context.Context, payload string) error {
			err := send(ctx, payload)
			if err == nil {
				answered.Add(1)
			}
			return err
		}, closeFn, nil
	}
	if l.system == "revproxy" {
		l.file = filepath.Join(cfg.profile, fmt.Sprintf("proxy-%d-%d-%v.pprof", l.clients, servers, l.oneConn))
	}
	looked := make(chan error, 1)
	go func() {
		select {
		case <-time.After(time.Second):
		case <-ctx.Done():
			looked <- ctx.Err()
			return
		}
		var wg sync.WaitGroup
		var profErr error
		if l.file != "" {
			wg.Go(func() {
				profErr = fetchProfile(ctx, "http://"+e.admin+"/debug/pprof/profile?seconds="+strconv.Itoa(profileSeconds), l.file)
			})
		}
		n0 := answered.Load()
		counts, perfErr := perfCount(ctx, e.broker, profileSeconds*time.Second)
		l.msgs = answered.Load() - n0
		wg.Wait()
		if perfErr != nil {
			l.perfErr = perfErr.Error()
		} else if l.msgs > 0 {
			per := func(ev string) float64 { return counts[ev] / float64(l.msgs) }
			l.calls = perfStat{all: per(perfEvents[0]), read: per(perfEvents[1]), write: per(perfEvents[2]) + per(perfEvents[6]),
				epoll: per(perfEvents[3]), futex: per(perfEvents[4]), switches: per(perfEvents[5])}
		}
		looked <- profErr
	}()
	p := measure(ctx, cfg, e, l.clients, scalePayload)
	l.rps = p.RPS()
	if err := <-looked; err != nil {
		l.err = err.Error()
		return
	}
	if p.Errors > 0 {
		l.err = fmt.Sprintf("%d errors (first: %s)", p.Errors, p.FirstErr)
	}
	if l.file != "" {
		top, err := exec.CommandContext(ctx, "go", "tool", "pprof", "-top", "-nodecount="+strconv.Itoa(profileTop), l.file).Output()
		if err != nil {
			l.err = fmt.Sprintf("go tool pprof: %v", err)
		}
		l.top = string(top)
	}
}

// errNoPerf: perf is not installed; the looks then give CPU profiles only.
var errNoPerf = errors.New("perf is not installed (Debian package linux-perf)")

// perfCount counts perfEvents on process pid for d with perf stat.
func perfCount(ctx context.Context, pid int, d time.Duration) (map[string]float64, error) {
	bin, err := exec.LookPath("perf")
	if err != nil {
		return nil, errNoPerf
	}
	secs := strconv.FormatFloat(d.Seconds(), 'f', -1, 64)
	cmd := exec.CommandContext(ctx, bin, "stat", "-x", ",", "-e", strings.Join(perfEvents, ","), "-p", strconv.Itoa(pid), "--", "sleep", secs)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("perf stat: %v: %s", err, tail(out, 300))
	}
	counts := map[string]float64{}
	for line := range strings.Lines(string(out)) {
		f := strings.Split(strings.TrimSpace(line), ",")
		if len(f) < 3 {
			continue
		}
		if v, err := strconv.ParseFloat(f[0], 64); err == nil {
			counts[f[2]] = v
		}
	}
	for _, ev := range perfEvents {
		if _, ok := counts[ev]; !ok {
			return nil, fmt.Errorf("perf stat counted no %s: %s", ev, tail(out, 300))
		}
	}
	return counts, nil
}

// lookSection renders the looks: system calls per message side by side,
// then where revproxy's proxy spends its CPU time.
func lookSection(looks []msgLook) string {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	w("\n## Inside the brokers\n\n")
	w("`-profile DIR`: after the rounds, each system afresh under the same closed loop for %d s; once the clients have run a second, `perf stat` counts the broker process's system calls and context switches for %d s (divided by the requests answered meanwhile), and revproxy's proxy, run as `revproc -admin ADDR -pprof`, gives a %d s CPU profile (into DIR) at the same time. Apart from the measured rounds.\n\n",
		profileSeconds+2, profileSeconds, profileSeconds)
	w("| system | load | req/s | system calls per message | read | write, writev | epoll_pwait | futex | context switches per message |\n")
	w("|---|---|--:|--:|--:|--:|--:|--:|--:|\n")
	for _, l := range looks {
		load := strings.TrimPrefix(l.label(), l.system+", ")
		switch {
		case l.err != "" && l.msgs == 0:
			w("| %s | %s | – | %s | | | | | |\n", l.system, load, oneLine(l.err))
		case l.perfErr != "":
			w("| %s | %s | %s | %s | | | | | |\n", l.system, load, fmtRate(l.rps), oneLine(l.perfErr))
		default:
			c := l.calls
			w("| %s | %s | %s | %.2f | %.2f | %.2f | %.2f | %.2f | %.2f |\n", l.system, load, fmtRate(l.rps), c.all, c.read, c.write, c.epoll, c.futex, c.switches)
		}
	}
	for _, l := range looks {
		if l.top == "" {
			continue
		}
		w("\nrevproxy's proxy, %s (`%s`): `go tool pprof -top`, the first %d functions by their own time:\n\n```\n%s```\n",
			strings.TrimPrefix(l.label(), "revproxy, "), filepath.Base(l.file), profileTop, trimPprofHeader(l.top))
	}
	return b.String()
}
