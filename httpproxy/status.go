package httpproxy

import (
	"strconv"

	"github.com/seed-c202d8a5/revproxy"
)

// StatusCards returns the front door's figures for revproxy.Admin's status
// page (its Cards field): requests by kind, errors and refusals, the
// cache, tunnels and upstream latency.
//
//	admin := &revproxy.Admin{Proxy: table, Metrics: front.AppendMetrics, Cards: front.StatusCards}
func (p *Proxy) StatusCards() []revproxy.StatusCard {
	c := &p.stats
	n := func(k kind) uint64 { return c.requests[k].Load() }
	var total, errors5, errors4, refused uint64
	for k := range numKinds {
		total += n(k)
		errors4 += c.statuses[k][4].Load()
		errors5 += c.statuses[k][5].Load()
	}
	for r := range numRefusals {
		refused += c.refusals[r].Load()
	}
	cards := []revproxy.StatusCard{
		{Title: "HTTP requests", Value: count(total),
			Detail: "forward " + count(n(kindForward)) + " · reverse " + count(n(kindReverse)) + " · gateway " + count(n(kindGateway)) + " · tunnels " + count(n(kindConnect))},
		{Title: "HTTP errors", Value: count(errors5),
			Detail: "5xx; 4xx " + count(errors4) + ", of which refused " + count(refused)},
		{Title: "Tunnels", Value: count(uint64(max(c.tunnelsOpen.Load(), 0))), Detail: count(c.tunnels.Load()) + " opened"},
	}
	if p.Cache != nil {
		hits := c.cache[cacheHit].Load() + c.cache[cacheRevalidated].Load()
		asked := hits + c.cache[cacheMiss].Load()
		ratio := "–"
		if asked > 0 {
			ratio = strconv.FormatUint(hits*100/asked, 10) + "%"
		}
		entries, size := p.Cache.usage()
		cards = append(cards, revproxy.StatusCard{Title: "Cache hits", Value: ratio,
			Detail: count(hits) + " of " + count(asked) + " · " + count(uint64(entries)) + " held, " + strconv.FormatInt(size>>10, 10) + " KiB"})
	}
	buckets, total2, _ := c.upstream.cumulative()
	cards = append(cards, revproxy.StatusCard{Title: "Upstream p99", Value: atMost(buckets, total2, 0.99),
		Detail: "p50 " + atMost(buckets, total2, 0.50) + " · " + count(total2) + " requests"})
	return cards
}

// atMost returns the bound the q-quantile of a histogram's counts is at or
// under, as "≤ 5ms"; "–" when it has counted nothing.
func atMost(cumulative []uint64, total uint64, q float64) string {
	if total == 0 {
		return "–"
	}
	rank := uint64(q*float64(total) + 0.5)
	for i, n := range cumulative {
		if n >= rank {
			return "≤ " + latencyBounds[i].String()
		}
	}
	return "> " + latencyBounds[len(latencyBounds)-1].String()
}

// count writes n with thousands separators: 12,345.
func count(n uint64) string {
	s := strconv.FormatUint(n, 10)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}
