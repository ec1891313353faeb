package revproxy

import (
	"fmt"
	"slices"
	"sync"
)

// entry is one registered server: where to reach it and how it writes.
type entry struct {
	id     string
	policy string
	addr   string      // host:port to dial for each message
	quoted bool        // the server writes numbers as strings
	link   *serverLink // the multiplexed link, or nil: dial addr per message
	owner  *pconn      // the connection whose closing ends the registration

	idempotent bool   // a message lost with the server may go to another
	added      uint64 // when it registered, in the table's count

	// For a server dialled per message: its exchanges under way, and its
	// drain, answered once the last of them ends.
	mu        sync.Mutex
	exchanges int
	draining  bool
	drained   func()
}

// ServerInfo describes a registered server.
type ServerInfo struct {
	ID     string // the id it registered with
	Policy string // the policy it serves
	// Addr is where the server is reached: the registering host and the
	// listen port for a server the proxy dials per message, or the far end
	// of the link for a multiplexed one.
	Addr string
}

// table is the message switching table: for each policy, its servers in the
// order they registered, and a round-robin cursor. Server ids are unique
// across the table: registering an id again replaces its entry.
type table struct {
	mu       sync.Mutex
	policies map[string]*ring
	ids      map[string]*entry
	changed  chan struct{} // closed when the table changes; see watch
	added    uint64        // registrations so far, to order them
}

// ring is the servers of one policy and the index of the next to pick.
type ring struct {
	entries []*entry
	next    int
}

// add registers r. An entry with the same id is replaced in place when the
// policy is the same, so the rotation keeps its order; otherwise the old
// entry leaves its policy and r joins the end of its own. An entry held by a
// live connection is not replaced from another connection: that is
// ErrIDInUse.
func (t *table) add(r *entry, max int) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.policies == nil {
		t.policies = make(map[string]*ring)
		t.ids = make(map[string]*entry)
	}
	old, ok := t.ids[r.id]
	if !ok && len(t.ids) >= max && !t.evictLocked() {
		return fmt.Errorf("%w: the proxy has %d servers registered, as many as it may", ErrOverloaded, len(t.ids))
	}
	t.added++
	r.added = t.added
	if ok {
		if old.owner != nil && old.owner != r.owner {
			return fmt.Errorf("%w: server %s is registered from %s", ErrIDInUse, r.id, old.addr)
		}
		if old.policy == r.policy {
			rg := t.policies[r.policy]
			rg.entries[rg.index(old)] = r
			t.ids[r.id] = r
			return nil
		}
		t.removeLocked(old)
	}
	rg := t.policies[r.policy]
	if rg == nil {
		rg = &ring{}
		t.policies[r.policy] = rg
	}
	rg.entries = append(rg.entries, r)
	t.ids[r.id] = r
	t.notifyLocked()
	return nil
}

// evictLocked makes room in a full table: the oldest registration that no
// connection holds leaves, so that registrations nobody answers for cannot
// lock out a server that holds its connection. It reports false when every
// registration is held.
func (t *table) evictLocked() bool {
	var oldest *entry
	for _, r := range t.ids {
		if r.owner == nil && (oldest == nil || r.added < oldest.added) {
			oldest = r
		}
	}
	if oldest == nil {
		return false
	}
	t.removeLocked(oldest)
	return true
}

// remove deletes r if it is still the entry for its id, and reports whether
// it was.
func (t *table) remove(r *entry) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.ids[r.id] != r {
		return false
	}
	t.removeLocked(r)
	return true
}

func (t *table) removeLocked(r *entry) {
	t.notifyLocked()
	delete(t.ids, r.id)
	rg := t.policies[r.policy]
	i := rg.index(r)
	rg.entries = append(rg.entries[:i], rg.entries[i+1:]...)
	if i < rg.next {
		rg.next--
	}
	if len(rg.entries) == 0 {
		delete(t.policies, r.policy)
	} else if rg.next >= len(rg.entries) {
		rg.next = 0
	}
}

// pick returns the policy's next server in rotation that is not among
// tried, the servers already offered the message; nil when none is left or
// none serves the policy. The rotation moves on past the server picked, so
// that messages go round robin: 1, 2, 1, 2, 1.
func (t *table) pick(policy []byte, tried []*entry) *entry {
	t.mu.Lock()
	defer t.mu.Unlock()
	rg := t.policies[string(policy)]
	if rg == nil {
		return nil
	}
	n := len(rg.entries)
	for i := range n {
		k := (rg.next + i) % n
		if e := rg.entries[k]; !slices.Contains(tried, e) {
			rg.next = (k + 1) % n
			return e
		}
	}
	return nil
}

// inFlight returns the messages the server has in hand: on its link, or in
// exchanges under way.
func (e *entry) inFlight() int {
	if e.link != nil {
		return e.link.inFlight()
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.exchanges
}

// servers lists the policy's servers in rotation order from the first
// registered.
func (t *table) servers(policy string) []ServerInfo {
	t.mu.Lock()
	defer t.mu.Unlock()
	rg := t.policies[policy]
	if rg == nil {
		return nil
	}
	infos := make([]ServerInfo, len(rg.entries))
	for i, r := range rg.entries {
		infos[i] = ServerInfo{ID: r.id, Policy: r.policy, Addr: r.addr}
	}
	return infos
}

func (rg *ring) index(r *entry) int {
	for i, x := range rg.entries {
		if x == r {
			return i
		}
	}
	panic("revproxy: entry missing from its ring")
}
