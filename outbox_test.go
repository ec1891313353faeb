package revproxy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// dialReader returns a loopback connection whose peer reads everything
// sent, and gives it on got once the connection closes.
func dialReader(t *testing.T) (c net.Conn, got <-chan []byte) {
	t.Helper()
	ln := listen(t)
	t.Cleanup(func() { ln.Close() })
	data := make(chan []byte, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			data <- nil
			return
		}
		defer c.Close()
		b, _ := io.ReadAll(c)
		data <- b
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	return c, data
}

// TestOutboxLargeBatches writes batches larger than the buffer an outbox
// keeps, from many goroutines, and checks every byte arrives unmixed.
func TestOutboxLargeBatches(t *testing.T) {
	c, got := dialReader(t)
	o := &outbox{conn: c}
	const writers, lines = 4, 40
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			line := bytes.Repeat([]byte{byte('a' + w)}, 20<<10) // 20 KiB lines: batches pass 64 KiB
			for i := range lines {
				b := o.begin()
				b = fmt.Appendf(b, "%d %d ", w, i)
				b = append(append(b, line...), '\n')
				if err := o.end(b); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	c.Close()
	data := <-got
	seen := 0
	for _, l := range bytes.Split(bytes.TrimSuffix(data, []byte("\n")), []byte("\n")) {
		var w, i int
		if _, err := fmt.Sscanf(string(l), "%d %d ", &w, &i); err != nil {
			t.Fatalf("line %d is mangled: %.40q", seen, l)
		}
		body := l[bytes.LastIndexByte(l, ' ')+1:]
		if len(body) != 20<<10 || bytes.Count(body, []byte{byte('a' + w)}) != len(body) {
			t.Fatalf("line %d (writer %d, #%d) is mixed with another", seen, w, i)
		}
		seen++
	}
	if seen != writers*lines {
		t.Errorf("got %d lines, want %d", seen, writers*lines)
	}
}

// TestNonblockingOutboxNeverWaits queues far more than the socket buffers
// hold for a peer that is not reading: no writer may wait, and once the
// peer reads, every byte arrives in order.
func TestNonblockingOutboxNeverWaits(t *testing.T) {
	ln := listen(t)
	defer ln.Close()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	peer, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	o := newNonblockingOutbox(c)

	const chunks, size = 256, 32 << 10 // 8 MiB
	wrote := make(chan struct{})
	go func() {
		defer close(wrote)
		for i := range chunks {
			b := o.begin()
			b = append(b, bytes.Repeat([]byte{byte(i)}, size)...)
			if err := o.end(b); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	select {
	case <-wrote:
	case <-time.After(10 * time.Second):
		t.Fatal("a writer waited for a peer that does not read")
	}

	got := make([]byte, chunks*size)
	if _, err := io.ReadFull(peer, got); err != nil {
		t.Fatal(err)
	}
	for i := range chunks {
		chunk := got[i*size : (i+1)*size]
		if bytes.Count(chunk, []byte{byte(i)}) != size {
			t.Fatalf("chunk %d arrived mixed or out of order", i)
		}
	}
	o.shutdown(time.Second)
	if err := o.end(append(o.begin(), "late"...)); err == nil {
		t.Error("a drained outbox accepted a write")
	}
	c.Close()
}

// TestDrainWhileWriting ends an outbox while other goroutines keep writing
// to it through the finishing goroutine (net.Pipe has no raw conn, so every
// batch takes that path): drain must neither panic nor return while a
// goroutine it started is still running, and later writes must fail.
func TestDrainWhileWriting(t *testing.T) {
	for range 20 {
		c, peer := net.Pipe()
		go io.Copy(io.Discard, peer)
		o := newNonblockingOutbox(c)
		var wg sync.WaitGroup
		for range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range 200 {
					if o.end(append(o.begin(), "message\n"...)) != nil {
						return
					}
				}
			}()
		}
		time.Sleep(time.Millisecond)
		o.shutdown(time.Second)
		if err := o.end(append(o.begin(), "late\n"...)); err == nil {
			t.Fatal("a drained outbox accepted a write")
		}
		wg.Wait()
		c.Close()
		peer.Close()
	}
}

// writeCounter counts the writes made on a connection.
type writeCounter struct {
	net.Conn
	writes atomic.Int32
}

func (c *writeCounter) Write(p []byte) (int, error) {
	c.writes.Add(1)
	return c.Conn.Write(p)
}

// TestOutboxLater checks that what a reader queues with endLater waits for
// its flush and then goes out in one write, and that a writer coming
// between writes it instead, leaving the flush nothing to do.
func TestOutboxLater(t *testing.T) {
	for _, nonblock := range []bool{false, true} {
		t.Run(fmt.Sprintf("nonblock=%v", nonblock), func(t *testing.T) {
			c, got := dialReader(t)
			wc := &writeCounter{Conn: c} // no SyscallConn: a non-blocking outbox's writes go to a goroutine
			o := &outbox{conn: wc}
			o.idle = sync.NewCond(&o.mu)
			if nonblock {
				o = newNonblockingOutbox(wc)
			}
			var l later
			queue := func(i int) {
				if err := o.endLater(fmt.Appendf(o.begin(), "%d\n", i), &l); err != nil {
					t.Fatal(err)
				}
			}
			var want []byte
			for i := range 10 {
				queue(i)
				want = fmt.Appendf(want, "%d\n", i)
			}
			if n := o.writes(wc); n != 0 {
				t.Fatalf("%d writes before the flush, want 0", n)
			}
			if q := o.queued.Load(); q != int64(len(want)) {
				t.Fatalf("%d bytes queued, want %d", q, len(want))
			}
			l.flush()
			if n := o.writes(wc); n != 1 {
				t.Fatalf("%d writes for ten messages flushed together, want 1", n)
			}
			queue(10)
			queue(11)
			want = append(want, "10\n11\n"...)
			if err := o.end(append(o.begin(), "12\n"...)); err != nil { // another goroutine's write
				t.Fatal(err)
			}
			want = append(want, "12\n"...)
			if n := o.writes(wc); n != 2 {
				t.Fatalf("%d writes after a writer came between, want 2", n)
			}
			l.flush()
			if n := o.writes(wc); n != 2 {
				t.Fatalf("the flush wrote again (%d writes); the writer had written everything", n)
			}
			if len(l.outs) != 0 || o.later {
				t.Fatalf("the list still holds the outbox after a flush")
			}
			c.Close()
			if data := <-got; !bytes.Equal(data, want) {
				t.Fatalf("peer got %q, want %q", data, want)
			}
		})
	}
}

// writes waits until nothing is being written or queued on o, then
// returns how many writes c has seen.
func (o *outbox) writes(c *writeCounter) int32 {
	o.mu.Lock()
	for o.writing {
		o.idle.Wait()
	}
	o.mu.Unlock()
	return c.writes.Load()
}

// TestReaderFlushesBeforeWaiting sends, in one write on one connection, a
// message for a server and then one whose Authorize hook waits until the
// server has handled the first. The proxy's reader leaves the first
// message queued while it handles what it read; unless it writes it out
// before calling the hook, which may take its time, the two wait on each
// other (the servers do not ping, which would write the link's queue).
func TestReaderFlushesBeforeWaiting(t *testing.T) {
	handled := make(chan struct{})
	var once sync.Once
	p := &Proxy{Authorize: func(r *AuthRequest) error {
		if r.Policy != "P2" {
			return nil
		}
		select {
		case <-handled:
			return nil
		case <-time.After(10 * time.Second):
			return errors.New("the first message never reached its server")
		}
	}}
	ln := listen(t)
	runRole(t, func(ctx context.Context) error { return p.Serve(ctx, ln) })
	addr := ln.Addr().String()
	for _, policy := range []string{"P1", "P2"} {
		startServer(t, p, &Server{ID: "s-" + policy, Policy: policy, ProxyAddr: addr, Heartbeat: -1, Handler: HandlerFunc(func(ctx context.Context, m *Message) (string, error) {
			if m.Policy == "P1" {
				once.Do(func() { close(handled) })
			}
			return "ok " + m.Payload, nil
		})})
	}
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	_, err = c.Write([]byte(`{"type":0,"srcid":"c","privPoliId":"P1","payload":"a","seq":1}{"type":0,"srcid":"c","privPoliId":"P2","payload":"b","seq":2}`))
	if err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(c)
	got := map[uint64]string{}
	for range 2 {
		var m Message
		if err := dec.Decode(&m); err != nil {
			t.Fatal(err)
		}
		if m.Type != TypeReply {
			t.Fatalf("answer to seq %d: %s %q", m.Seq, m.Code, m.Payload)
		}
		got[m.Seq] = m.Payload
	}
	if diff := cmp.Diff(map[uint64]string{1: "ok a", 2: "ok b"}, got); diff != "" {
		t.Fatalf("answers (-want +got):\n%s", diff)
	}
}
