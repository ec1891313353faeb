package revproxy

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
	"time"
)

// TestOutboxLargeBatches writes batches larger than the buffer an outbox
// keeps, from many goroutines, and checks every byte arrives unmixed.
func TestOutboxLargeBatches(t *testing.T) {
	ln := listen(t)
	defer ln.Close()
	got := make(chan []byte, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			got <- nil
			return
		}
		defer c.Close()
		data, _ := io.ReadAll(c)
		got <- data
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
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
