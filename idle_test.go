package revproxy

import (
	"bufio"
	"net"
	"runtime"
	"testing"
)

// TestIdleConnectionStack checks that answering a client with an error,
// the deepest path a client connection's reader takes, leaves the reader's
// goroutine, parked for the next message, with a 4 KiB stack. Logging on
// that path once grew every such stack to 8 KiB for good, and each idle
// connection cost half as much again. Stack sizes under the race detector
// are not the deployed ones, so there the test measures and logs only; the
// bench's idle figure (bench/memory.go) measures the deployed shape.
func TestIdleConnectionStack(t *testing.T) {
	_, addr := startProxy(t)
	const n = 200
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for range n {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		if _, err := c.Write([]byte(`{"type":0,"seq":1,"srcid":"c","privPoliId":"NONE","payload":"x"}`)); err != nil {
			t.Fatal(err)
		}
		if _, err := bufio.NewReader(c).ReadString('\n'); err != nil { // no_server
			t.Fatal(err)
		}
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	per := (int64(after.StackInuse) - int64(before.StackInuse)) / n
	t.Logf("stack per connection after an error answer: %d bytes (race detector: %v)", per, raceEnabled)
	if !raceEnabled && per > 6<<10 {
		t.Fatalf("a connection answered with an error holds %d bytes of stack, want 4 KiB", per)
	}
}
