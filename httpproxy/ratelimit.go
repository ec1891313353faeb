package httpproxy

import (
	"math"
	"net/netip"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"golang.org/x/time/rate"
)

// maxRetryAfter bounds the Retry-After a client is told, in seconds
// (about 68 years), whatever the Rate.
const maxRetryAfter = math.MaxInt32

// buckets are the clients' token buckets, the most recently seen
// of them, up to a bound: a client not among them gets a full bucket.
type buckets struct {
	rate  rate.Limit
	burst int
	lru   *lru.Cache[netip.Addr, *rate.Limiter]
}

// newBuckets returns buckets filling at r, of size burst (default: r
// rounded up, at least 1), keeping at most clients of them.
func newBuckets(r rate.Limit, burst, clients int) *buckets {
	if burst <= 0 {
		burst = int(max(1, min(math.Ceil(float64(r)), math.MaxInt32)))
	}
	c, err := lru.New[netip.Addr, *rate.Limiter](clients)
	if err != nil { // only for clients <= 0, which the caller's default rules out
		panic(err)
	}
	return &buckets{rate: r, burst: burst, lru: c}
}

// take takes a token from client's bucket at now. When there is none, it
// takes nothing and returns how many seconds, rounded up, until there is
// one: the delay a reservation would have, computed from the tokens left
// rather than by reserving and cancelling, which loses tokens when
// refusals of one client overlap.
func (b *buckets) take(client netip.Addr, now time.Time) (ok bool, retry int64) {
	client = bucketKey(client)
	lim, found := b.lru.Get(client)
	if !found {
		lim = rate.NewLimiter(b.rate, b.burst)
		if prev, raced, _ := b.lru.PeekOrAdd(client, lim); raced {
			lim = prev
		}
	}
	if lim.AllowN(now, 1) {
		return true, 0
	}
	return false, retryAfter((1 - lim.TokensAt(now)) / float64(b.rate))
}

// retryAfter is wait, in seconds, as a Retry-After: whole seconds rounded
// up, from 1 to maxRetryAfter. Like a reservation's delay, the wait is
// first truncated to nanoseconds, so that float noise (3600.0000000000005)
// does not round up a whole second.
func retryAfter(wait float64) int64 {
	if wait >= maxRetryAfter {
		return maxRetryAfter
	}
	d := time.Duration(wait * float64(time.Second))
	return max(1, int64((d+time.Second-1)/time.Second))
}

// len is how many clients' buckets are kept.
func (b *buckets) len() int { return b.lru.Len() }

// bucketKey is the address whose bucket client takes from: its own for
// IPv4, its /64 for IPv6, which one host commonly holds whole and could
// otherwise walk through for a fresh bucket at each address (and push
// others' buckets out of the LRU).
func bucketKey(client netip.Addr) netip.Addr {
	if client.Is6() {
		p, _ := client.Prefix(64)
		return p.Addr()
	}
	return client
}
