package revproxy

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
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
