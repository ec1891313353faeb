package httpproxy

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/seed-c202d8a5/revproxy"
)

// post POSTs body to url and returns the status, the body and the header.
func post(t *testing.T, client *http.Client, url, body string) (int, string, http.Header) {
	t.Helper()
	resp, err := client.Post(url, "text/plain", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b), resp.Header
}

// TestGatewaySHA1: POST /msg/PP_1 reaches a SHA1 server through the
// message protocol, and the answer is the payload's digest, checked here
// independently; the protocol's errors become statuses.
func TestGatewaySHA1(t *testing.T) {
	rp, addr := startTable(t)
	register(t, rp, &revproxy.Server{ID: "100", Policy: "PP_1", ProxyAddr: addr})
	register(t, rp, &revproxy.Server{ID: "bad", Policy: "FAILS", ProxyAddr: addr,
		Handler: revproxy.HandlerFunc(func(context.Context, *revproxy.Message) (string, error) {
			return "", errors.New("no such thing")
		})})
	gw := &revproxy.Client{ID: "gateway", ProxyAddr: addr}
	t.Cleanup(func() { gw.Close() })
	front := "http://" + serve(t, &Proxy{Gateway: gw, MaxGatewayBody: 1000})
	client := newClient(t)

	sum := sha1.Sum([]byte("hello"))
	code, body, h := post(t, client, front+"/msg/PP_1", "hello")
	if code != http.StatusOK || body != hex.EncodeToString(sum[:]) || h.Get("X-Revproxy-Server") != "100" {
		t.Errorf("POST /msg/PP_1 hello: %d %q from %q; want 200 %x from 100", code, body, h.Get("X-Revproxy-Server"), sum)
	}
	for _, tc := range []struct {
		method, path, body string
		code               int
	}{
		{"POST", "/msg/NOBODY", "x", http.StatusServiceUnavailable},
		{"POST", "/msg/FAILS", "x", http.StatusBadGateway},
		{"POST", "/msg/PP_1", strings.Repeat("x", 1001), http.StatusRequestEntityTooLarge},
		{"POST", "/msg/PP_1", "\xff\xfe", http.StatusBadRequest},
		{"GET", "/msg/PP_1", "", http.StatusMethodNotAllowed},
		{"POST", "/msg/", "x", http.StatusNotFound},
	} {
		req, _ := http.NewRequest(tc.method, front+tc.path, strings.NewReader(tc.body))
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.code {
			t.Errorf("%s %s (%d bytes): %s; want %d", tc.method, tc.path, len(tc.body), resp.Status, tc.code)
		}
	}
}

// TestGatewayStatus: each error a Send can return maps to its status.
func TestGatewayStatus(t *testing.T) {
	for _, tc := range []struct {
		err  error
		code int
	}{
		{&revproxy.RemoteError{From: "proxy", Code: "no_server"}, 503},
		{&revproxy.RemoteError{From: "proxy", Code: "overloaded"}, 429},
		{&revproxy.RemoteError{From: "proxy", Code: "timeout"}, 504},
		{context.DeadlineExceeded, 504},
		{&revproxy.RemoteError{From: "proxy", Code: "too_large"}, 413},
		{&revproxy.RemoteError{From: "proxy", Code: "bad_message"}, 400},
		{&revproxy.RemoteError{From: "s", Code: "handler"}, 502},
		{&revproxy.RemoteError{From: "proxy", Code: "unavailable"}, 502},
		{fmt.Errorf("dial: %w", revproxy.ErrNoProxy), 502},
	} {
		if code, _ := gatewayStatus(tc.err); code != tc.code {
			t.Errorf("%v: %d; want %d", tc.err, code, tc.code)
		}
	}
}
