package revproxy

import (
	"context"
	"sync"
	"sync/atomic"
)

// pool runs handlers on at most max goroutines. Workers start as work
// arrives and stay until the pool closes, so a busy server reuses them and
// an idle one holds only as many as it once needed.
type pool struct {
	max     int32
	jobs    chan job
	running atomic.Int32
	workers sync.WaitGroup
}

// job is one message for a handler, and where to send the reply.
type job struct {
	run    *serverRun
	out    *outbox
	m      *Message
	quoted bool
}

func newPool(max int) *pool {
	return &pool{max: int32(max), jobs: make(chan job)}
}

// submit hands j to an idle worker, starts a worker if there are fewer than
// max, or waits for one. It reports false if ctx ended first.
func (p *pool) submit(ctx context.Context, j job) bool {
	select {
	case p.jobs <- j:
		return true
	default:
	}
	if p.running.Add(1) <= p.max {
		p.workers.Go(func() {
			j.serve(ctx)
			for j := range p.jobs {
				j.serve(ctx)
			}
		})
		return true
	}
	p.running.Add(-1)
	select {
	case p.jobs <- j:
		return true
	case <-ctx.Done():
		return false
	}
}

// close stops the workers once they finish their jobs; nothing may be
// submitted after it.
func (p *pool) close() {
	close(p.jobs)
	p.workers.Wait()
}

func (j job) serve(ctx context.Context) {
	reply := j.run.handle(ctx, j.m)
	reply.Seq = j.m.Seq
	j.run.sendAnswer(j.out, &reply, j.quoted)
	j.run.done()
}

// sendMessage queues m on out as one JSON line.
func sendMessage(out *outbox, m *Message, quoted bool) error {
	b := out.begin()
	return out.end(append(appendMessage(b, m, quoted), '\n'))
}
