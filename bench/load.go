package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// point is the result of one measured run.
type point struct {
	System    string
	Clients   int
	Payload   int
	Round     int // 1 for the first round of this point
	Requests  int // answered and verified in the window
	Errors    int // failed or wrong answers, warm-up included
	FirstErr  string
	Window    time.Duration
	P50, P99  time.Duration
	CPU       time.Duration // CPU time of every participant in the window
	Broker    time.Duration // of which the broker process's; 0 without one
	HasBroker bool          // the system has a broker process
	CPUErr    string
	Others    float64 // share of the machine other processes used in the window

	P90, P999 time.Duration // the 90th and 99.9th percentiles
	// Served is, for systems that count them, the messages each server
	// was given during the window, in the system's order of servers.
	Served []int64
}

func (p point) RPS() float64 {
	if p.Window <= 0 {
		return 0
	}
	return float64(p.Requests) / p.Window.Seconds()
}

// CPUPerMsg is the CPU time per answered request, in microseconds.
func (p point) CPUPerMsg() float64 {
	if p.Requests == 0 {
		return 0
	}
	return float64(p.CPU.Microseconds()) / float64(p.Requests)
}

// BrokerPerMsg is the broker process's CPU time per answered request, in
// microseconds.
func (p point) BrokerPerMsg() float64 {
	if p.Requests == 0 {
		return 0
	}
	return float64(p.Broker.Microseconds()) / float64(p.Requests)
}

// worker is one closed-loop client's tally.
type worker struct {
	lat   []time.Duration
	errs  int
	first error
}

func (w *worker) fail(err error) {
	w.errs++
	if w.first == nil {
		w.first = err
	}
}

// primeTimeout bounds the first request of every client, which opens its
// connection, before the clock starts.
const primeTimeout = 15 * time.Second

// endGrace is how long requests still in flight at the end of the window
// may take before they are cancelled.
const endGrace = 5 * time.Second

// closedLoop runs one goroutine per sender, each sending a payload of size
// bytes, waiting for the answer and sending again. Every sender first sends
// once to open its connection; then the clock starts: warm-up, then the
// measured window. Requests answered within the window count. served, if
// not nil, returns the messages each server has been given so far; it is
// read at both ends of the window.
func closedLoop(ctx context.Context, senders []sendFunc, size int, warmup, window time.Duration, cpu *cpuMeter, served func() []int64) point {
	n := len(senders)
	ws := make([]worker, n)
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()

	// abandoned is set when requests are cancelled because they took too
	// long; a request cancelled then counts as an error.
	var abandoned atomic.Bool
	var primed, done sync.WaitGroup
	primed.Add(n)
	start := make(chan struct{})
	var wStart, wEnd time.Time // set before start is closed
	for i, send := range senders {
		payload := makePayload(size, uint64(i))
		w := &ws[i]
		// once sends one request; stop reports that the run is over.
		once := func() (lat time.Duration, ok, stop bool) {
			t0 := time.Now()
			err := send(runCtx, payload)
			lat = time.Since(t0)
			switch {
			case err == nil:
				return lat, true, false
			case runCtx.Err() != nil:
				if abandoned.Load() {
					w.fail(fmt.Errorf("no answer %v after sending", lat.Round(time.Millisecond)))
				}
				return lat, false, true
			}
			w.fail(err)
			select { // do not spin on a broken system
			case <-time.After(10 * time.Millisecond):
				return lat, false, false
			case <-runCtx.Done():
				return lat, false, true
			}
		}
		done.Go(func() {
			_, _, stop := once() // opens the connection
			primed.Done()
			if stop {
				return
			}
			select {
			case <-start:
			case <-runCtx.Done():
				return
			}
			for time.Now().Before(wEnd) {
				lat, ok, stop := once()
				if stop {
					return
				}
				if t1 := time.Now(); ok && !t1.Before(wStart) && !t1.After(wEnd) {
					w.lat = append(w.lat, lat)
				}
			}
		})
	}

	p := point{Clients: n, Payload: size}
	finish := func() point {
		cancel()
		done.Wait()
		var lat []time.Duration
		for i := range ws {
			lat = append(lat, ws[i].lat...)
			p.Errors += ws[i].errs
			if p.FirstErr == "" && ws[i].first != nil {
				p.FirstErr = ws[i].first.Error()
			}
		}
		slices.Sort(lat)
		p.Requests = len(lat)
		p.P50, p.P90, p.P99, p.P999 = percentile(lat, 500), percentile(lat, 900), percentile(lat, 990), percentile(lat, 999)
		return p
	}

	allPrimed := make(chan struct{})
	go func() { primed.Wait(); close(allPrimed) }()
	select {
	case <-allPrimed:
	case <-time.After(primeTimeout):
		abandoned.Store(true)
		return finish()
	case <-ctx.Done():
		return finish()
	}

	wStart = time.Now().Add(warmup)
	wEnd = wStart.Add(window)
	close(start)
	if !sleepUntil(ctx, wStart) {
		return finish()
	}
	c0, b0, err0 := cpu.read()
	m0, merr0 := machineBusy()
	var s0 []int64
	if served != nil {
		s0 = served()
	}
	if !sleepUntil(ctx, wEnd) {
		return finish()
	}
	c1, b1, err1 := cpu.read()
	m1, merr1 := machineBusy()
	if served != nil {
		for i, n := range served() {
			p.Served = append(p.Served, n-s0[i])
		}
	}
	p.Window = window
	p.HasBroker = cpu.broker != 0
	if err := firstErr(err0, err1); err != nil {
		p.CPUErr = err.Error()
	} else {
		p.CPU, p.Broker = c1-c0, b1-b0
		if firstErr(merr0, merr1) == nil {
			p.Others = othersShare(m1-m0, p.CPU, window)
		}
	}
	// Let the requests in flight end by themselves, within bounds.
	ended := make(chan struct{})
	go func() { done.Wait(); close(ended) }()
	select {
	case <-ended:
	case <-time.After(endGrace):
		abandoned.Store(true)
	case <-ctx.Done():
	}
	return finish()
}

func sleepUntil(ctx context.Context, t time.Time) bool {
	select {
	case <-time.After(time.Until(t)):
		return true
	case <-ctx.Done():
		return false
	}
}

func firstErr(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// percentile returns the nearest-rank percentile of sorted durations, in
// permille: 990 is the 99th percentile, 999 the 99.9th.
func percentile(sorted []time.Duration, permille int) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := (len(sorted)*permille + 999) / 1000 // ceil(len*permille/1000)
	return sorted[max(rank, 1)-1]
}

// makePayload returns size printable ASCII bytes, different for each seed.
func makePayload(size int, seed uint64) string {
	const alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	r := rand.New(rand.NewPCG(seed, 0x5eed))
	var b strings.Builder
	b.Grow(size)
	for range size {
		b.WriteByte(alphabet[r.IntN(len(alphabet))])
	}
	return b.String()
}

// cpuMeter reads the CPU time of this process, of the broker process and
// of other outside processes.
type cpuMeter struct {
	broker int // 0: none
	pids   []int
}

// clockTicks is the unit of /proc/PID/stat times (USER_HZ).
const clockTicks = 100

// read returns the CPU time of every participant, and of the broker alone.
func (m *cpuMeter) read() (total, broker time.Duration, err error) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, 0, err
	}
	total = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	if m.broker != 0 {
		if broker, err = procCPU(m.broker); err != nil {
			return 0, 0, err
		}
		total += broker
	}
	for _, pid := range m.pids {
		t, err := procCPU(pid)
		if err != nil {
			return 0, 0, err
		}
		total += t
	}
	return total, broker, nil
}

// procCPU returns utime+stime of a process from /proc/PID/stat.
func procCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name, in parentheses, may hold spaces: fields count
	// from the last ')'. After it come state (field 3) ... utime (14),
	// stime (15).
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, fmt.Errorf("unexpected /proc/%d/stat: %q", pid, s)
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0, fmt.Errorf("unexpected /proc/%d/stat: %q", pid, s)
	}
	utime, err1 := strconv.ParseUint(f[11], 10, 64)
	stime, err2 := strconv.ParseUint(f[12], 10, 64)
	if err := firstErr(err1, err2); err != nil {
		return 0, err
	}
	return time.Duration(utime+stime) * time.Second / clockTicks, nil
}

// machineBusy returns the CPU time all processes have used, from /proc/stat.
func machineBusy() (time.Duration, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, err
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line) // cpu user nice system idle iowait irq softirq steal ...
	if len(f) < 9 || f[0] != "cpu" {
		return 0, fmt.Errorf("unexpected /proc/stat: %q", line)
	}
	var ticks uint64
	for _, i := range []int{1, 2, 3, 6, 7, 8} {
		v, err := strconv.ParseUint(f[i], 10, 64)
		if err != nil {
			return 0, err
		}
		ticks += v
	}
	return time.Duration(ticks) * time.Second / clockTicks, nil
}

// othersShare is the share of the machine's CPUs that processes other than
// the participants used: busy time less ours, over the elapsed time.
func othersShare(busy, ours, elapsed time.Duration) float64 {
	capacity := float64(elapsed) * float64(runtime.NumCPU())
	return max(0, float64(busy-ours)/capacity)
}
