package revproxy

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"
)

// entry is one registered server: where to reach it and how it writes.
type entry struct {
	id     string
	policy string
	addr   string // host:port to dial for each message
	// httpAddr is the host:port of the server's HTTP service, or "".
	httpAddr string
	quoted   bool        // the server writes numbers as strings
	link     *serverLink // the multiplexed link, or nil: dial addr per message
	owner    *pconn      // the connection whose closing ends the registration

	idempotent bool   // a message lost with the server may go to another
	added      uint64 // when it registered, in the table's count
	weight     int    // its share of messages, at least 1

	// Guarded by the table's lock.
	state   ServerState
	since   time.Time // when it registered or entered its state
	current int       // smooth weighted round robin's standing

	pending atomic.Int32 // messages in flight: on its link, or in exchanges; and HTTP requests
	counts  serverCounts
	http    httpCounts

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
	rand     *rand.Rand    // for PowerOfTwo; seeded from the runtime unless a test sets it
}

// ring is the servers of one policy, up or not, and the index of the next
// to pick.
type ring struct {
	entries  []*entry
	next     int
	weighted int // servers whose weight is not 1
}

// forgetEjected is how long an ejected server stays in the table, shown in
// Stats, waiting to register again.
const forgetEjected = 10 * time.Minute

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
	now := time.Now()
	t.forgetLocked(now)
	old, ok := t.ids[r.id]
	if !ok && len(t.ids) >= max && !t.evictLocked() {
		return fmt.Errorf("%w: the proxy has %d servers registered, as many as it may", ErrOverloaded, len(t.ids))
	}
	t.added++
	r.added, r.state, r.since = t.added, Up, now
	r.weight = max1(r.weight)
	if ok {
		if old.owner != nil && old.owner != r.owner && old.state == Up {
			return fmt.Errorf("%w: server %s is registered from %s", ErrIDInUse, r.id, old.addr)
		}
		if old.policy == r.policy {
			// In old's place: one coming back, after it was ejected or
			// while it drains, does not reorder the others.
			rg := t.policies[r.policy]
			rg.entries[rg.index(old)] = r
			rg.weighted += weighted(r) - weighted(old)
			t.ids[r.id] = r
			t.notifyLocked()
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
	rg.weighted += weighted(r)
	t.ids[r.id] = r
	t.notifyLocked()
	return nil
}

// weighted is 1 for a server whose weight is not 1, for ring.weighted.
func weighted(r *entry) int {
	if r.weight != 1 {
		return 1
	}
	return 0
}

func max1(n int) int { return max(n, 1) }

// setState moves r, if it is still in the table, to state s, and reports
// whether it was in the table and up.
func (t *table) setState(r *entry, s ServerState) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.ids[r.id] != r {
		return false
	}
	was := r.state
	if was != s {
		r.state, r.since = s, time.Now()
		t.notifyLocked()
	}
	return was == Up
}

// forgetLocked removes the servers ejected longer ago than forgetEjected.
func (t *table) forgetLocked(now time.Time) {
	for _, r := range t.ids {
		if r.state == Ejected && now.Sub(r.since) > forgetEjected {
			t.removeLocked(r)
		}
	}
}

// evictLocked makes room in a full table: the oldest ejected server leaves,
// else the oldest registration that no connection holds, so that
// registrations nobody answers for cannot lock out a server that holds its
// connection. It reports false when every registration is held.
func (t *table) evictLocked() bool {
	var oldest *entry
	for _, r := range t.ids {
		if (r.owner == nil || r.state == Ejected) && (oldest == nil || evictFirst(r, oldest)) {
			oldest = r
		}
	}
	if oldest == nil {
		return false
	}
	t.removeLocked(oldest)
	return true
}

// evictFirst reports whether a should make room before b: ejected servers
// first, then the oldest.
func evictFirst(a, b *entry) bool {
	if (a.state == Ejected) != (b.state == Ejected) {
		return a.state == Ejected
	}
	return a.added < b.added
}

// leave takes r out of service, if it is still the entry for its id: a
// server that drained leaves the table, one that was up is ejected (see
// Ejected). It returns the state r was in, and false when it was no longer
// in the table.
func (t *table) leave(r *entry) (ServerState, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.ids[r.id] != r {
		return 0, false
	}
	was := r.state
	switch was {
	case Up:
		r.state, r.since = Ejected, time.Now()
		t.notifyLocked()
	case Draining:
		t.removeLocked(r)
	}
	return was, true
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
	rg.weighted -= weighted(r)
	if i < rg.next {
		rg.next--
	}
	if len(rg.entries) == 0 {
		delete(t.policies, r.policy)
	} else if rg.next >= len(rg.entries) {
		rg.next = 0
	}
}

// pick returns the policy's next server for its balancer that is up and not
// among tried, the servers already offered the message; nil when none is
// left or none serves the policy.
func (t *table) pick(policy []byte, tried []*entry, b Balancer) *entry {
	t.mu.Lock()
	defer t.mu.Unlock()
	rg := t.policies[string(policy)]
	if rg == nil {
		return nil
	}
	t.seedRand(b)
	return rg.choose(b, tried, t.rand)
}

// seedRand gives the table its random source, the first time b needs one;
// t.mu is held.
func (t *table) seedRand(b Balancer) {
	if b == PowerOfTwo && t.rand == nil {
		t.rand = rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
	}
}

// inFlight returns the messages the server has in hand: on its link, or in
// exchanges under way.
func (e *entry) inFlight() int { return int(e.pending.Load()) }

// servers lists the policy's servers that are up, in the table's order.
func (t *table) servers(policy string) []ServerInfo {
	t.mu.Lock()
	defer t.mu.Unlock()
	rg := t.policies[policy]
	if rg == nil {
		return nil
	}
	var infos []ServerInfo
	for _, r := range rg.entries {
		if r.state == Up {
			infos = append(infos, ServerInfo{ID: r.id, Policy: r.policy, Addr: r.addr})
		}
	}
	return infos
}

// up counts the policy's servers that are up; t.mu is held.
func (rg *ring) up() int {
	n := 0
	for _, r := range rg.entries {
		if r.state == Up {
			n++
		}
	}
	return n
}

func (rg *ring) index(r *entry) int {
	for i, x := range rg.entries {
		if x == r {
			return i
		}
	}
	panic("revproxy: entry missing from its ring")
}
