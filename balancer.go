package revproxy

import (
	"fmt"
	"math/rand/v2"
	"slices"
)

// Balancer is how a proxy chooses which server of a policy gets a message.
// The zero Balancer is RoundRobin. Whichever is used, a server that is
// draining or ejected is never chosen, and a server that cannot take a
// message (it is busy, or cannot be reached) is passed over for another.
type Balancer int

const (
	// RoundRobin gives each server its turn in the order they registered:
	// with two servers, 1, 2, 1, 2, 1. Servers that announce weights get
	// turns in proportion to them, spread out (smooth weighted round
	// robin): weights 2 and 1 give 1, 2, 1, 1, 2, 1.
	RoundRobin Balancer = iota
	// LeastInFlight gives each message to the server with the fewest
	// messages in flight for its weight; servers level with each other
	// take turns. A slow server keeps more messages in flight, and so gets
	// fewer.
	LeastInFlight
	// PowerOfTwo picks two servers at random, in proportion to their
	// weights, and gives the message to the one with fewer messages in
	// flight for its weight: nearly as good as LeastInFlight, at a cost
	// that does not grow with the number of servers.
	PowerOfTwo
)

// balancerNames are the Balancers' names, as String gives them.
var balancerNames = [...]string{RoundRobin: "round-robin", LeastInFlight: "least-in-flight", PowerOfTwo: "p2c"}

// String returns the balancer's name: "round-robin", "least-in-flight" or
// "p2c".
func (b Balancer) String() string {
	if b >= 0 && int(b) < len(balancerNames) {
		return balancerNames[b]
	}
	return fmt.Sprintf("Balancer(%d)", int(b))
}

// MarshalText returns the balancer's name.
func (b Balancer) MarshalText() ([]byte, error) {
	if b < 0 || int(b) >= len(balancerNames) {
		return nil, fmt.Errorf("revproxy: unknown balancer %d", int(b))
	}
	return []byte(b.String()), nil
}

// UnmarshalText sets b from a name String gives; "rr", "least" and
// "power-of-two" are also understood. It lets a Balancer be a flag.Value
// (through flag.TextVar) or a JSON string.
func (b *Balancer) UnmarshalText(text []byte) error {
	switch s := string(text); s {
	case "round-robin", "rr", "":
		*b = RoundRobin
	case "least-in-flight", "least":
		*b = LeastInFlight
	case "p2c", "power-of-two":
		*b = PowerOfTwo
	default:
		return fmt.Errorf("revproxy: unknown balancer %q: want round-robin, least-in-flight or p2c", s)
	}
	return nil
}

// maxWeight bounds the weight a server may announce, so that smooth
// weighted round robin's sums stay small.
const maxWeight = 1000

// choose returns the ring's next server for b that can be chosen and is not
// among tried, or nil when there is none. t.mu is held.
func (rg *ring) choose(b Balancer, tried []*entry, rnd *rand.Rand) *entry {
	switch {
	case b == LeastInFlight:
		return rg.least(tried)
	case b == PowerOfTwo:
		return rg.twoChoices(tried, rnd)
	case rg.weighted > 0:
		return rg.smooth(tried)
	}
	return rg.turn(tried)
}

// choosable reports whether e may be given a message that tried were
// offered already.
func choosable(e *entry, tried []*entry) bool {
	return e.state == Up && !slices.Contains(tried, e)
}

// turn returns the next server in rotation and moves the rotation past it:
// round robin among equal weights.
func (rg *ring) turn(tried []*entry) *entry {
	n := len(rg.entries)
	for i := range n {
		k := (rg.next + i) % n
		if e := rg.entries[k]; choosable(e, tried) {
			rg.next = (k + 1) % n
			return e
		}
	}
	return nil
}

// smooth is smooth weighted round robin: every choosable server gains its
// weight, the one with the most is chosen and pays back what all gained.
// Over any run of turns each server is chosen in proportion to its weight,
// and never many times in a row when others are due.
func (rg *ring) smooth(tried []*entry) *entry {
	var best *entry
	total := 0
	for _, e := range rg.entries {
		if !choosable(e, tried) {
			continue
		}
		e.current += e.weight
		total += e.weight
		if best == nil || e.current > best.current {
			best = e
		}
	}
	if best != nil {
		best.current -= total
	}
	return best
}

// least returns the choosable server with the fewest messages in flight for
// its weight; among those level, the first from the rotation's place, which
// then moves past it, so that an idle policy still goes round.
func (rg *ring) least(tried []*entry) *entry {
	n := len(rg.entries)
	var best *entry
	bestAt := 0
	for i := range n {
		k := (rg.next + i) % n
		e := rg.entries[k]
		if choosable(e, tried) && (best == nil || lighter(e, best)) {
			best, bestAt = e, k
		}
	}
	if best != nil {
		rg.next = (bestAt + 1) % n
	}
	return best
}

// twoChoices picks two distinct choosable servers at random, each in
// proportion to its weight, and returns the lighter; the first when they
// are level. Among equal weights it looks at a few servers, however many
// the policy has.
func (rg *ring) twoChoices(tried []*entry, rnd *rand.Rand) *entry {
	if n := len(rg.entries); rg.weighted == 0 {
		a, at := rg.from(rnd.IntN(n), tried, nil)
		if a == nil || n == 1 {
			return a
		}
		k := rnd.IntN(n - 1) // any index but a's
		if k >= at {
			k++
		}
		if b, _ := rg.from(k, tried, a); b != nil && lighter(b, a) {
			return b
		}
		return a
	}
	total := 0
	for _, e := range rg.entries {
		if choosable(e, tried) {
			total += e.weight
		}
	}
	if total == 0 {
		return nil
	}
	a := rg.atWeight(rnd.IntN(total), tried, nil)
	if total == a.weight {
		return a
	}
	b := rg.atWeight(rnd.IntN(total-a.weight), tried, a)
	if lighter(b, a) {
		return b
	}
	return a
}

// from returns the first choosable server other than skip at or after
// index k, going round, and its index; nil when there is none.
func (rg *ring) from(k int, tried []*entry, skip *entry) (*entry, int) {
	n := len(rg.entries)
	for i := range n {
		at := (k + i) % n
		if e := rg.entries[at]; e != skip && choosable(e, tried) {
			return e, at
		}
	}
	return nil, 0
}

// atWeight returns the choosable server, other than skip, at weight w when
// the choosable servers' weights are laid end to end.
func (rg *ring) atWeight(w int, tried []*entry, skip *entry) *entry {
	for _, e := range rg.entries {
		if e == skip || !choosable(e, tried) {
			continue
		}
		if w < e.weight {
			return e
		}
		w -= e.weight
	}
	panic("revproxy: weight beyond the ring's total")
}

// lighter reports whether a has fewer messages in flight than b for their
// weights.
func lighter(a, b *entry) bool {
	return int64(a.pending.Load())*int64(b.weight) < int64(b.pending.Load())*int64(a.weight)
}
