package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
)

var (
	seedProxyPort  = regexp.MustCompile(`Running the reverse proxy on port (\d+)`)
	seedServerPort = regexp.MustCompile(`Listening on port (\d+)`)
)

// seedNA is why the Python proxy cannot carry a 4 KiB payload: it reads
// each message with one recv(2048).
const seedNA = "n/a (recv(2048) cannot carry 4 KiB)"

// startSeed runs the Python proxy and 2 Python SHA1 servers of testdata/.
// That proxy ignores messages whose "type" is a JSON number, so its clients
// write numbers as strings.
func startSeed(ctx context.Context, cfg *config) (*env, error) {
	python, err := exec.LookPath("python3")
	if err != nil {
		return nil, &skipError{"python3 is not on PATH"}
	}
	revproc := filepath.Join(cfg.testdata, "revproc.py")
	server := filepath.Join(cfg.testdata, "server.py")
	for _, f := range []string{revproc, server} {
		if _, err := os.Stat(f); err != nil {
			return nil, &skipError{fmt.Sprintf("%s not found (set -testdata)", f)}
		}
	}
	version := "Python"
	if out, err := exec.CommandContext(ctx, python, "--version").Output(); err == nil {
		version = strings.TrimSpace(string(out))
	}
	dir, err := os.MkdirTemp("", "bench-seed-")
	if err != nil {
		return nil, err
	}
	var procs []*proc
	teardown := func() {
		for i := len(procs) - 1; i >= 0; i-- {
			procs[i].stop()
		}
		os.RemoveAll(dir)
	}
	fail := func(err error) (*env, error) {
		teardown()
		return nil, err
	}

	px, err := startProc(dir, "revproc", python, revproc, "-port", "0")
	if err != nil {
		return fail(err)
	}
	procs = append(procs, px)
	m, err := px.waitLog(ctx, seedProxyPort, 10*time.Second)
	if err != nil {
		return fail(err)
	}
	proxyPort := m[1]
	for i := 1; i <= 2; i++ {
		id := strconv.Itoa(i)
		sp, err := startProc(dir, "server-"+id, python, server, "-id", id, "-pp", policy, "-listen", "0", "-revproc", proxyPort)
		if err != nil {
			return fail(err)
		}
		procs = append(procs, sp)
		if _, err := sp.waitLog(ctx, seedServerPort, 10*time.Second); err != nil {
			return fail(err)
		}
		registered := regexp.MustCompile(`Receiving setup message from server id ` + id + `\b`)
		if _, err := px.waitLog(ctx, registered, 10*time.Second); err != nil {
			return fail(err)
		}
	}
	addr := "127.0.0.1:" + proxyPort
	var pids []int // the servers; the proxy is the broker
	for _, p := range procs[1:] {
		pids = append(pids, p.pid())
	}
	return &env{
		connect: func(i, _ int) (sendFunc, func(), error) {
			send, closeFn := revproxySender(strconv.Itoa(1000+i), addr, true)
			return send, closeFn, nil
		},
		broker:  px.pid(),
		pids:    pids,
		close:   teardown,
		version: version,
	}, nil
}
