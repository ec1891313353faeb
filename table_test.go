package revproxy

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func picks(t *testing.T, tb *table, policy string, n int) []string {
	t.Helper()
	var ids []string
	for range n {
		r := tb.pick([]byte(policy), nil, RoundRobin)
		if r == nil {
			ids = append(ids, "<none>")
			continue
		}
		ids = append(ids, r.id)
	}
	return ids
}

// TestRoundRobinHomeworkExample is the homework's example: five messages for
// PP_1 and servers 1 and 2 go to 1, 2, 1, 2, 1.
func TestRoundRobinHomeworkExample(t *testing.T) {
	var tb table
	tb.add(&entry{id: "1", policy: "PP_1"}, 1000)
	tb.add(&entry{id: "2", policy: "PP_1"}, 1000)
	tb.add(&entry{id: "3", policy: "PP_2"}, 1000)
	want := []string{"1", "2", "1", "2", "1"}
	if diff := cmp.Diff(want, picks(t, &tb, "PP_1", 5)); diff != "" {
		t.Errorf("PP_1 picks (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"3", "3"}, picks(t, &tb, "PP_2", 2)); diff != "" {
		t.Errorf("PP_2 picks (-want +got):\n%s", diff)
	}
	if r := tb.pick([]byte("PP_9"), nil, RoundRobin); r != nil {
		t.Errorf("PP_9: got %v; want nothing", r)
	}
}

func TestRoundRobinReplaceKeepsPlace(t *testing.T) {
	var tb table
	tb.add(&entry{id: "1", policy: "P", addr: "old"}, 1000)
	tb.add(&entry{id: "2", policy: "P"}, 1000)
	tb.add(&entry{id: "1", policy: "P", addr: "new"}, 1000)
	want := []ServerInfo{{ID: "1", Policy: "P", Addr: "new"}, {ID: "2", Policy: "P"}}
	if diff := cmp.Diff(want, tb.servers("P")); diff != "" {
		t.Errorf("servers (-want +got):\n%s", diff)
	}
}

func TestRoundRobinMoveToOtherPolicy(t *testing.T) {
	var tb table
	tb.add(&entry{id: "1", policy: "A"}, 1000)
	tb.add(&entry{id: "1", policy: "B"}, 1000)
	if got := tb.servers("A"); got != nil {
		t.Errorf("A still has %v", got)
	}
	if diff := cmp.Diff([]string{"1"}, picks(t, &tb, "B", 1)); diff != "" {
		t.Errorf("B picks (-want +got):\n%s", diff)
	}
}

func TestRoundRobinRemove(t *testing.T) {
	var tb table
	r1, r2, r3 := &entry{id: "1", policy: "P"}, &entry{id: "2", policy: "P"}, &entry{id: "3", policy: "P"}
	tb.add(r1, 1000)
	tb.add(r2, 1000)
	tb.add(r3, 1000)
	picks(t, &tb, "P", 2) // 1, 2: 3 is next
	if !tb.remove(r1) {
		t.Fatal("remove(r1) = false")
	}
	if diff := cmp.Diff([]string{"3", "2", "3"}, picks(t, &tb, "P", 3)); diff != "" {
		t.Errorf("after removing 1 (-want +got):\n%s", diff)
	}
	stale := &entry{id: "2", policy: "P"}
	if tb.remove(stale) {
		t.Error("removed a route that is not the entry for its id")
	}
	tb.remove(r2)
	tb.remove(r3)
	if r := tb.pick([]byte("P"), nil, RoundRobin); r != nil {
		t.Errorf("empty policy picked %v", r.id)
	}
}

// TestPickSkipsTried: a message offered to servers that could not take it
// goes to each other server once, in rotation, then to none.
func TestPickSkipsTried(t *testing.T) {
	var tb table
	es := []*entry{{id: "1", policy: "P"}, {id: "2", policy: "P"}, {id: "3", policy: "P"}}
	for _, e := range es {
		tb.add(e, 1000)
	}
	var tried []*entry
	var got []string
	for e := tb.pick([]byte("P"), tried, RoundRobin); e != nil; e = tb.pick([]byte("P"), tried, RoundRobin) {
		tried = append(tried, e)
		got = append(got, e.id)
	}
	if diff := cmp.Diff([]string{"1", "2", "3"}, got); diff != "" {
		t.Errorf("picks with tried (-want +got):\n%s", diff)
	}
	// The next message starts where the rotation stands, after 3.
	if diff := cmp.Diff([]string{"1", "2"}, picks(t, &tb, "P", 2)); diff != "" {
		t.Errorf("after (-want +got):\n%s", diff)
	}
	tb.remove(es[0]) // a server leaves while a message is being offered
	if e := tb.pick([]byte("P"), es[1:2], RoundRobin); e != es[2] {
		t.Errorf("picked %v, want 3", e)
	}
}
