package revproxy

import (
	"context"
	"fmt"
)

// WaitServers waits until at least n servers are registered for policy, and
// returns nil then, at once if they already are. It returns an error that
// matches ctx's error, saying how many there were, if ctx ends first. It is
// woken by registrations, not by polling, so a program can start a proxy
// and its servers together and send as soon as they are ready.
func (p *Proxy) WaitServers(ctx context.Context, policy string, n int) error {
	for {
		have, changed := p.table.watch(policy)
		if have >= n {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return fmt.Errorf("revproxy: waiting for %d servers of policy %s, %d registered: %w", n, policy, have, ctx.Err())
		}
	}
}

// watch returns how many servers policy has and a channel closed at the
// table's next change.
func (t *table) watch(policy string) (int, <-chan struct{}) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.changed == nil {
		t.changed = make(chan struct{})
	}
	n := 0
	if rg := t.policies[policy]; rg != nil {
		n = rg.up()
	}
	return n, t.changed
}

// notifyLocked wakes those waiting in watch; t.mu is held. No channel is
// made unless someone waits, so changes cost nothing otherwise.
func (t *table) notifyLocked() {
	if t.changed != nil {
		close(t.changed)
		t.changed = nil
	}
}
