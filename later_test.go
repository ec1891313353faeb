package revproxy

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// Tests for faults found in the adversarial review of the readers' later
// lists (outbox.go) and the Server's yield before writing.

// TestAwaitRoomWritesWhatItHolds: a client's reader that waits for room in
// its outbox must first write what it holds for others. Its later list
// holds a message for server link L, and L's outbox is marked as on a list,
// so another client's message for L would go on no list and wait too.
// (The review found awaitRoom looking at the outbox twice, so that an
// answer arriving between the looks made it wait holding L; it now looks
// once.)
func TestAwaitRoomWritesWhatItHolds(t *testing.T) {
	sa, sb := tcpPair(t)
	var got atomic.Int64 // bytes the server received
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := sb.Read(buf)
			got.Add(int64(n))
			if err != nil {
				return
			}
		}
	}()
	p := &Proxy{}
	l := p.newLink(p.newPconn(sa, discard))
	l.entry = &entry{id: "S", policy: "P"}
	t.Cleanup(func() { l.close(context.Background(), &Proxy{}, nil) })

	c1, c2 := net.Pipe() // the client does not read
	b := p.newPconn(c1, discard)
	b.out.max = 2000
	b.out.end(append(b.out.begin(), make([]byte, 1100)...)) // over half: no room
	if l.forward(b, mustFrame(t, `{"type":0,"srcid":1,"privPoliId":"P","payload":"a","seq":1}`), &b.later) != forwarded {
		t.Fatal("not forwarded")
	}
	ctx, cancel := context.WithCancel(context.Background())
	waited := make(chan bool, 1)
	go func() { waited <- b.awaitRoom(ctx) }()
	waitFor(t, "the message held for the server to reach it", func() bool { return got.Load() > 0 })
	cancel()
	if <-waited {
		t.Error("awaitRoom found room in an outbox nobody reads")
	}
	c1.Close()
	c2.Close()
	b.out.rest.Wait()
}

// TestBurstOfAnswersNotCharged: a server link's reader that brings in many
// answers for one client at once writes them as it goes, so that a client
// that reads is never charged against the memory budget for them. The
// review found the whole burst queued first (after a large answer grew the
// link's read buffer, one read held 100 KB of small answers): past the
// 16 KiB every connection may queue freely, the budget refused the rest
// and the client was closed as a slow consumer (7 runs in 10).
func TestBurstOfAnswersNotCharged(t *testing.T) {
	p := &Proxy{MaxMemory: 200 << 10, MaxPending: 1 << 20}
	ln := listen(t)
	runRole(t, func(ctx context.Context) error { return p.Serve(ctx, ln) })
	addr := ln.Addr().String()
	srv, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	fmt.Fprintf(srv, `{"type":1,"id":"S","privPolyId":"E","listenport":0,"hold":true,"mux":true}`+"\n")
	waitFor(t, "the server to register", func() bool { return len(p.Servers("E")) == 1 })

	const n = 3000
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	go func() {
		var b strings.Builder
		for i := range n {
			fmt.Fprintf(&b, `{"type":0,"srcid":"c","privPoliId":"E","payload":"p%d","seq":%d}`+"\n", i, i+1)
		}
		c.Write([]byte(b.String()))
	}()
	dec := json.NewDecoder(srv)
	var answers strings.Builder
	srv.SetReadDeadline(time.Now().Add(20 * time.Second))
	for got := 0; got < n; {
		var m struct {
			Type    Type            `json:"type"`
			Seq     uint64          `json:"seq"`
			Payload json.RawMessage `json:"payload"`
		}
		if err := dec.Decode(&m); err != nil {
			t.Fatalf("server: %v after %d messages", err, got)
		}
		if m.Type != TypeData {
			continue
		}
		if got++; got == 1 { // an answer for no waiting message, large: the link's read buffer grows
			fmt.Fprintf(&answers, `{"type":2,"srcid":"S","destid":"c","payload":"%s","seq":99999}`+"\n", strings.Repeat("L", 100<<10))
		}
		fmt.Fprintf(&answers, `{"type":2,"srcid":"S","destid":"c","payload":%s,"seq":%d}`+"\n", m.Payload, m.Seq)
	}
	srv.Write([]byte(answers.String())) // every answer at once

	c.SetReadDeadline(time.Now().Add(20 * time.Second))
	cd := json.NewDecoder(c)
	for i := range n {
		var a Message
		if err := cd.Decode(&a); err != nil {
			t.Fatalf("client: answer %d of %d: %v", i, n, err)
		}
		if a.Type != TypeReply {
			t.Fatalf("client: answer %d: %s %q", i, a.Code, a.Payload)
		}
	}
}

// TestDrainWaitsForQueuedAnswers: a Server's drain is settled only once
// the answers queued on its links are written, not merely queued. The
// review found the pinger, yielding before it writes, holding the last
// handler's answer when the drain, seeing nothing in hand, closed the
// connection: 81 replies lost in 150 drains with a 1 ms heartbeat.
func TestDrainWaitsForQueuedAnswers(t *testing.T) {
	c, got := dialReader(t)
	st := newDrainState()
	out := &outbox{conn: c, room: st.wake}
	st.linkUp(out)
	st.linkDrained(out)
	var l later // stands for a writer about to write: the answer is queued, not written
	if err := out.endLater(append(out.begin(), "answer\n"...), &l); err != nil {
		t.Fatal(err)
	}
	select { // linkUp and linkDrained signalled it
	case <-st.wake:
	default:
	}
	if st.settled() {
		t.Fatal("settled with an answer queued and not written")
	}
	l.flush()
	<-st.wake // the write that left nothing queued wakes the drain
	if !st.settled() {
		t.Fatal("not settled once everything was written")
	}
	c.Close()
	if data := <-got; string(data) != "answer\n" {
		t.Fatalf("peer got %q", data)
	}
}
