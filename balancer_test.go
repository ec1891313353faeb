package revproxy

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/seed-c202d8a5/revproxy/internal/wire"
)

// ringOf returns a table whose policy P has servers with the given ids and
// weights (0 for 1), in order.
func ringOf(t *testing.T, weights map[string]int, ids ...string) (*table, map[string]*entry) {
	t.Helper()
	tb := &table{rand: rand.New(rand.NewPCG(1, 2))}
	es := make(map[string]*entry)
	for _, id := range ids {
		e := &entry{id: id, policy: "P", weight: weights[id]}
		if err := tb.add(e, 1000); err != nil {
			t.Fatal(err)
		}
		es[id] = e
	}
	return tb, es
}

// choices returns the ids of n picks with b, each pick's server given a
// message that stays in flight when keep is set.
func choices(tb *table, b Balancer, n int, keep bool) []string {
	var ids []string
	for range n {
		e := tb.pick([]byte("P"), nil, b)
		if e == nil {
			ids = append(ids, "<none>")
			continue
		}
		if keep {
			e.pending.Add(1)
		}
		ids = append(ids, e.id)
	}
	return ids
}

func TestSmoothWeightedRoundRobin(t *testing.T) {
	for _, tc := range []struct {
		weights map[string]int
		want    string
	}{
		{map[string]int{"a": 2}, "a b a a b a"},
		{map[string]int{"a": 5}, "a a a b a a a a a b a a"},
		{map[string]int{"a": 5, "c": 1}, "a a b a c a a a a b a c"},
		{map[string]int{"a": 1, "b": 1}, "a b a b a b"}, // weight 1 is no weight
	} {
		ids := []string{"a", "b"}
		if _, ok := tc.weights["c"]; ok {
			ids = append(ids, "c")
		}
		tb, _ := ringOf(t, tc.weights, ids...)
		want := strings.Fields(tc.want)
		if diff := cmp.Diff(want, choices(tb, RoundRobin, len(want), false)); diff != "" {
			t.Errorf("weights %v (-want +got):\n%s", tc.weights, diff)
		}
	}
}

// TestSmoothWeightsShare: over many turns each server gets exactly its
// share, whatever the weights.
func TestSmoothWeightsShare(t *testing.T) {
	weights := map[string]int{"a": 7, "b": 3, "c": 1, "d": 10}
	tb, _ := ringOf(t, weights, "a", "b", "c", "d")
	got := make(map[string]int)
	for _, id := range choices(tb, RoundRobin, 21*100, false) {
		got[id]++
	}
	want := map[string]int{"a": 700, "b": 300, "c": 100, "d": 1000}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("shares (-want +got):\n%s", diff)
	}
}

func TestLeastInFlight(t *testing.T) {
	tb, es := ringOf(t, nil, "a", "b", "c")
	// Idle, it goes round.
	if diff := cmp.Diff(strings.Fields("a b c a b c"), choices(tb, LeastInFlight, 6, false)); diff != "" {
		t.Errorf("idle (-want +got):\n%s", diff)
	}
	// Messages kept in flight fill the lightest first, level ones in turn.
	es["a"].pending.Store(2)
	if diff := cmp.Diff(strings.Fields("b c b c a b c"), choices(tb, LeastInFlight, 7, true)); diff != "" {
		t.Errorf("loaded (-want +got):\n%s", diff)
	}
	// A slow server that holds many never gets more while others are lighter.
	es["a"].pending.Store(100)
	es["b"].pending.Store(0)
	es["c"].pending.Store(0)
	for _, id := range choices(tb, LeastInFlight, 50, true) {
		if id == "a" {
			t.Fatal("a server with 100 in flight was chosen over lighter ones")
		}
	}
}

func TestLeastInFlightWeighted(t *testing.T) {
	tb, es := ringOf(t, map[string]int{"a": 3}, "a", "b")
	es["a"].pending.Store(5) // 5/3 in flight per weight
	es["b"].pending.Store(2) // 2/1
	if e := tb.pick([]byte("P"), nil, LeastInFlight); e.id != "a" {
		t.Errorf("picked %s; want a, lighter for its weight", e.id)
	}
	// Filling from empty, a takes three for each of b's.
	es["a"].pending.Store(0)
	es["b"].pending.Store(0)
	got := make(map[string]int)
	for _, id := range choices(tb, LeastInFlight, 400, true) {
		got[id]++
	}
	if diff := cmp.Diff(map[string]int{"a": 300, "b": 100}, got); diff != "" {
		t.Errorf("shares (-want +got):\n%s", diff)
	}
}

// TestPowerOfTwo runs with a seeded source: its choices are the same on
// every run.
func TestPowerOfTwo(t *testing.T) {
	tb, es := ringOf(t, nil, "a", "b", "c", "d")
	first := choices(tb, PowerOfTwo, 20, false)
	tb2, _ := ringOf(t, nil, "a", "b", "c", "d")
	if diff := cmp.Diff(first, choices(tb2, PowerOfTwo, 20, false)); diff != "" {
		t.Errorf("same seed, other choices (-first +second):\n%s", diff)
	}
	// The heaviest of four is never the lighter of two distinct servers.
	es["c"].pending.Store(1000)
	got := make(map[string]int)
	for _, id := range choices(tb, PowerOfTwo, 3000, false) {
		got[id]++
	}
	if got["c"] != 0 {
		t.Errorf("the loaded server was chosen %d times", got["c"])
	}
	for _, id := range []string{"a", "b", "d"} {
		if got[id] < 800 || got[id] > 1200 {
			t.Errorf("%s chosen %d times of 3000; want about a third: %v", id, got[id], got)
		}
	}
}

func TestPowerOfTwoWeighted(t *testing.T) {
	tb, _ := ringOf(t, map[string]int{"a": 3}, "a", "b")
	got := make(map[string]int)
	for _, id := range choices(tb, PowerOfTwo, 4000, false) {
		got[id]++
	}
	// Two servers: both are always drawn; idle, the first drawn wins, and
	// a is drawn first three times in four.
	if got["a"] < 2800 || got["a"] > 3200 {
		t.Errorf("a chosen %d times of 4000; want about 3000", got["a"])
	}
}

// TestBalancersSkip: whatever the balancer, a draining or ejected server,
// or one already tried, is not chosen, and none is left when all are.
func TestBalancersSkip(t *testing.T) {
	for _, b := range []Balancer{RoundRobin, LeastInFlight, PowerOfTwo} {
		for _, weights := range []map[string]int{nil, {"a": 2, "d": 3}} {
			t.Run(fmt.Sprint(b, weights), func(t *testing.T) {
				tb, es := ringOf(t, weights, "a", "b", "c", "d")
				tb.setState(es["b"], Draining)
				tb.setState(es["c"], Ejected)
				for _, id := range choices(tb, b, 40, false) {
					if id != "a" && id != "d" {
						t.Fatalf("chose %s", id)
					}
				}
				if e := tb.pick([]byte("P"), []*entry{es["a"]}, b); e != es["d"] {
					t.Errorf("with a tried, chose %v; want d", e)
				}
				if e := tb.pick([]byte("P"), []*entry{es["a"], es["d"]}, b); e != nil {
					t.Errorf("with a and d tried, chose %s; want none", e.id)
				}
			})
		}
	}
}

// TestEjectedRejoinsInPlace: a server that comes back after it was ejected
// takes its old place in the rotation, and the others keep theirs.
func TestEjectedRejoinsInPlace(t *testing.T) {
	tb, es := ringOf(t, nil, "a", "b", "c")
	if was, ok := tb.leave(es["b"]); !ok || was != Up {
		t.Fatalf("leave = %v, %v", was, ok)
	}
	if diff := cmp.Diff(strings.Fields("a c a c"), choices(tb, RoundRobin, 4, false)); diff != "" {
		t.Errorf("b ejected (-want +got):\n%s", diff)
	}
	if got := tb.servers("P"); len(got) != 2 {
		t.Errorf("servers lists %v; want a and c, those up", got)
	}
	if err := tb.add(&entry{id: "b", policy: "P"}, 1000); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(strings.Fields("a b c a b c"), choices(tb, RoundRobin, 6, false)); diff != "" {
		t.Errorf("b back (-want +got):\n%s", diff)
	}
}

// TestDrainingLeavesWhenDone: a drained server leaves the table; an up one
// whose connection ends is ejected and forgotten later.
func TestDrainingLeavesWhenDone(t *testing.T) {
	tb, es := ringOf(t, nil, "a", "b")
	tb.setState(es["a"], Draining)
	if was, _ := tb.leave(es["a"]); was != Draining {
		t.Errorf("a was %v; want draining", was)
	}
	if _, ok := tb.ids["a"]; ok {
		t.Error("a drained server stayed in the table")
	}
	tb.leave(es["b"])
	if es["b"].state != Ejected {
		t.Fatalf("b is %v; want ejected", es["b"].state)
	}
	tb.mu.Lock()
	tb.forgetLocked(es["b"].since.Add(forgetEjected + 1))
	tb.mu.Unlock()
	if len(tb.ids) != 0 || len(tb.policies) != 0 {
		t.Errorf("after %v the ejected server is still in the table: %v", forgetEjected, tb.ids)
	}
}

// TestEjectedMakesRoomFirst: a full table evicts an ejected server before
// any registration that is up.
func TestEjectedMakesRoomFirst(t *testing.T) {
	tb, es := ringOf(t, nil, "a", "b", "c")
	tb.leave(es["c"])
	if err := tb.add(&entry{id: "d", policy: "P"}, 3); err != nil {
		t.Fatal(err)
	}
	if _, ok := tb.ids["c"]; ok {
		t.Error("the ejected server stayed")
	}
	if _, ok := tb.ids["a"]; !ok {
		t.Error("the oldest server that is up was evicted")
	}
}

func TestBalancerText(t *testing.T) {
	for _, b := range []Balancer{RoundRobin, LeastInFlight, PowerOfTwo} {
		text, err := b.MarshalText()
		if err != nil {
			t.Fatal(err)
		}
		var back Balancer
		if err := back.UnmarshalText(text); err != nil || back != b {
			t.Errorf("%v: back %v, %v", b, back, err)
		}
	}
	var b Balancer
	if err := b.UnmarshalText([]byte("random")); err == nil {
		t.Error("an unknown name was taken")
	}
	if _, err := Balancer(7).MarshalText(); err == nil {
		t.Error("an unknown balancer was named")
	}
}

// TestWeightsEndToEnd: servers announce weights in their setup messages and
// the proxy shares their policy's messages by them.
func TestWeightsEndToEnd(t *testing.T) {
	p, addr := startProxy(t)
	startServer(t, p, &Server{ID: "heavy", Policy: "P", ProxyAddr: addr, Weight: 3})
	startServer(t, p, &Server{ID: "light", Policy: "P", ProxyAddr: addr})
	c := newClient(t, addr, "c")
	ctx := testContext(t)
	for i := range 40 {
		if _, err := c.Send(ctx, "P", fmt.Sprint(i)); err != nil {
			t.Fatal(err)
		}
	}
	got := make(map[string]uint64)
	for _, s := range p.Stats().Policies[0].Servers {
		got[s.ID] = s.Sent
	}
	if diff := cmp.Diff(map[string]uint64{"heavy": 30, "light": 10}, got); diff != "" {
		t.Errorf("messages sent (-want +got):\n%s", diff)
	}
}

func TestWeightOutOfRange(t *testing.T) {
	p, addr := startProxy(t)
	s := &Server{ID: "s", Policy: "P", ProxyAddr: addr, Weight: maxWeight + 1}
	if err := s.Serve(context.Background(), listen(t)); err == nil || !strings.Contains(err.Error(), "Weight") {
		t.Errorf("Serve = %v; want a configuration error naming Weight", err)
	}
	c := dialRaw(t, addr)
	fmt.Fprintf(c, `{"type":1,"id":"s","privPolyId":"P","listenport":1000,"weight":%d}`+"\n", maxWeight+1)
	m := readOne(t, c, wire.NewReader(c, 1<<16))
	if m.Type != TypeError || m.Code != codeBadMessage || !strings.Contains(m.Payload, "weight") {
		t.Errorf("answer %+v; want bad_message about the weight", m)
	}
	if got := p.Servers("P"); len(got) != 0 {
		t.Errorf("registered %v", got)
	}
}

// TestUnknownBalancerRefused: a Proxy set to a balancer that does not exist
// does not serve, rather than balancing some other way and failing to show
// its Stats as JSON.
func TestUnknownBalancerRefused(t *testing.T) {
	for _, p := range []*Proxy{{Balancer: 7}, {PolicyBalancers: map[string]Balancer{"P": -1}}} {
		ln := listen(t)
		if err := p.Serve(context.Background(), ln); !errors.Is(err, ErrConfig) {
			t.Errorf("Serve = %v; want ErrConfig", err)
		}
		ln.Close()
	}
}

// TestUnsentRefusalChargesNoServer: a message refused before any server had
// it (too large as forwarded) counts for the proxy, not for a server.
func TestUnsentRefusalChargesNoServer(t *testing.T) {
	p := &Proxy{MaxMessageSize: 200}
	addr := startProxyWith(t, p)
	startServers(t, p, addr, "P", nil, "s")
	c := dialRaw(t, addr)
	// Under the limit as read; over it as forwarded, with invalid UTF-8
	// written as three bytes each.
	payload := strings.Repeat("\xff", 60)
	fmt.Fprintf(c, "{\"type\":0,\"seq\":1,\"srcid\":\"c\",\"privPoliId\":\"P\",\"payload\":\"%s\"}\n", payload)
	if m := readOne(t, c, wire.NewReader(c, 1<<16)); m.Code != codeTooLarge {
		t.Fatalf("answer %+v; want too_large", m)
	}
	s := p.Stats()
	if got := s.Policies[0].Servers[0]; got.Errors != nil || got.Sent != 0 {
		t.Errorf("server charged: sent %d, errors %v", got.Sent, got.Errors)
	}
	if s.Totals.Errors[codeTooLarge] != 1 {
		t.Errorf("totals %v; want one too_large", s.Totals.Errors)
	}
}
