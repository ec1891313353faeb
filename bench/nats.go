package main

import (
	"bytes"
	"context"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
)

// startNATS runs nats-server, the broker, on a free loopback port and 2
// SHA1 responders in queue group sha1 in this process.
func startNATS(ctx context.Context, _ *config) (*env, error) {
	bin, err := findDebian(ctx, "nats-server", "nats-server")
	if err != nil {
		return nil, err
	}
	version := "nats-server"
	if out, err := exec.CommandContext(ctx, bin, "--version").Output(); err == nil {
		version = strings.TrimSpace(string(out))
	}
	dir, err := os.MkdirTemp("", "bench-nats-")
	if err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	srv, err := startProc(dir, "nats-server", bin, "-a", "127.0.0.1", "-p", strconv.Itoa(port))
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	url := fmt.Sprintf("nats://127.0.0.1:%d", port)
	var conns []*nats.Conn
	teardown := func() {
		for _, nc := range conns {
			nc.Close()
		}
		srv.stop()
		os.RemoveAll(dir)
	}
	fail := func(err error) (*env, error) {
		teardown()
		return nil, err
	}
	// The server is ready when it accepts a client.
	var first *nats.Conn
	err = waitFor(ctx, 10*time.Second, "nats-server to accept clients",
		func() error {
			select {
			case <-srv.done:
				b, _ := os.ReadFile(srv.log)
				return fmt.Errorf("nats-server exited (%v): %s", srv.err, tail(b, 400))
			default:
				return nil
			}
		},
		func() bool {
			nc, err := nats.Connect(url, nats.Name("responder 1"))
			if err != nil {
				return false
			}
			first = nc
			return true
		})
	if err != nil {
		return fail(err)
	}
	conns = append(conns, first)
	for i := 1; i < 2; i++ {
		nc, err := nats.Connect(url, nats.Name(fmt.Sprintf("responder %d", i+1)))
		if err != nil {
			return fail(err)
		}
		conns = append(conns, nc)
	}
	for _, nc := range conns {
		_, err := nc.QueueSubscribe(policy, "sha1", func(m *nats.Msg) {
			sum := sha1.Sum(m.Data)
			m.Respond([]byte(hex.EncodeToString(sum[:])))
		})
		if err == nil {
			err = nc.Flush()
		}
		if err != nil {
			return fail(err)
		}
	}
	return &env{
		connect: func(i, _ int) (sendFunc, func(), error) {
			nc, err := nats.Connect(url, nats.Name("client "+strconv.Itoa(i)))
			if err != nil {
				return nil, nil, err
			}
			send := func(ctx context.Context, payload string) error {
				m, err := nc.RequestWithContext(ctx, policy, []byte(payload))
				if err != nil {
					return err
				}
				sum := sha1.Sum([]byte(payload))
				want := hex.EncodeToString(sum[:])
				if !bytes.Equal(m.Data, []byte(want)) {
					return errors.New("SHA1 mismatch: got " + tail(m.Data, 60))
				}
				return nil
			}
			return send, nc.Close, nil
		},
		broker:  srv.pid(),
		close:   teardown,
		version: version,
	}, nil
}
