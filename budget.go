package revproxy

import "sync/atomic"

// budget is memory that a Proxy's connections share for what they buffer:
// messages being read and messages queued to be written. No taker may push
// it past its bound; a nil budget bounds nothing.
type budget struct {
	max  int64
	used atomic.Int64
}

// take reserves n bytes, or reports false when they would exceed the bound.
func (b *budget) take(n int) bool {
	if b == nil {
		return true
	}
	return b.takeWithin(n, b.max)
}

// takeWithin reserves n bytes unless they would take the budget past limit.
func (b *budget) takeWithin(n int, limit int64) bool {
	if b.used.Add(int64(n)) > limit {
		b.used.Add(-int64(n))
		return false
	}
	return true
}

// force takes n bytes even past the bound, for the few bytes of a control
// message.
func (b *budget) force(n int) {
	if b != nil {
		b.used.Add(int64(n))
	}
}

// give returns n bytes taken before.
func (b *budget) give(n int) {
	if b != nil {
		b.used.Add(-int64(n))
	}
}

// Take lets a wire.Reader draw on the budget.
func (b *budget) Take(n int) bool { return b.take(n) }

// Give lets a wire.Reader give back what it took.
func (b *budget) Give(n int) { b.give(n) }

// clientShare is the part of a budget that reading clients' messages may
// take: the rest is kept for reading servers' answers, so that clients
// holding the budget with messages they never finish cannot starve the
// links that answer everyone else.
type clientShare struct{ b *budget }

// Take takes n bytes unless they would pass three quarters of the budget.
func (c clientShare) Take(n int) bool { return c.b.takeWithin(n, c.b.max/4*3) }

// Give gives back n bytes taken before.
func (c clientShare) Give(n int) { c.b.give(n) }
