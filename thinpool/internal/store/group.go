package store

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/pkg/errors"
)

// MaxGroupDelay bounds how long a leader holds its flush back for creates
// of its process that are about to write their begin frames (arriving).
// The root lock is busy meanwhile (those creates wait for it), so the
// leader's own transaction could not send its message sooner anyway.
var MaxGroupDelay = 10 * time.Millisecond

// flushGroup is group commit for one store's transactions: each writes
// its begin frame under the root lock, lets the lock go and waits here
// until a flush that started after its frame was written has completed.
// One waiter at a time flushes (the leader); the frames of every waiter
// registered before its flush started become durable with it, and those
// waiters return without a flush of their own. Meanwhile the root lock is
// free for the next transaction's begin frame or the last one's message,
// so the journal's flushes overlap the pool's metadata commits instead of
// adding to them.
type flushGroup struct {
	mu       sync.Mutex
	cond     *sync.Cond
	flushing bool
	started  uint64    // flushes started (each numbered by this count)
	finished uint64    // the last flush that ended (they end in order)
	batch    []*Ticket // registered since the last flush started
	// failed is the first flush that failed and err its error: the
	// journal's state on disk is unknown from there on, so every waiter
	// from it on fails (the next Open reads the journal again).
	failed uint64
	err    error
	// arriving counts this process's creates that will write a begin
	// frame soon (they are waiting for the root lock or hold it): a leader
	// waits for them, up to MaxGroupDelay, so that one flush covers them.
	arriving atomic.Int64
}

// Arrive counts a create that will write a begin frame; the function it
// returns uncounts it (once; later calls do nothing).
func (g *flushGroup) Arrive() func() {
	g.arriving.Add(1)
	var once sync.Once
	return func() { once.Do(func() { g.arriving.Add(-1) }) }
}

// register enrolls a waiter whose frame was just written and returns its
// ticket: the number of the first flush that starts after now. The
// caller holds the root lock, so tickets follow the frames' order.
func (g *flushGroup) register(tk *Ticket) uint64 {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.batch = append(g.batch, tk)
	return g.started + 1
}

// wait returns once flush number tk.ticket has ended, leading a flush
// itself when none is running. A leader skips the fdatasync when
// elsewhere reports that another process's flush already covers its
// whole batch, and calls publish with the batch's last waiter after a
// flush of its own.
func (g *flushGroup) wait(tk *Ticket, elsewhere func(batch []*Ticket) bool, publish func(last *Ticket)) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.cond == nil {
		g.cond = sync.NewCond(&g.mu)
	}
	for g.finished < tk.ticket {
		if g.flushing {
			g.cond.Wait()
			continue
		}
		g.flushing = true
		if g.arriving.Load() > 0 {
			g.mu.Unlock()
			for deadline := time.Now().Add(MaxGroupDelay); g.arriving.Load() > 0 && time.Now().Before(deadline); {
				time.Sleep(100 * time.Microsecond)
			}
			g.mu.Lock()
		}
		g.started++
		n, batch := g.started, g.batch
		g.batch = nil
		g.mu.Unlock()
		var err error
		if len(batch) > 0 && !elsewhere(batch) {
			if err = fdatasync(tk.f); err == nil {
				publish(batch[len(batch)-1])
			}
		}
		g.mu.Lock()
		g.flushing, g.finished = false, n
		if err != nil && g.err == nil {
			g.failed, g.err = n, errors.Wrapf(err, "registry: fdatasync %s", tk.f.Name())
		}
		g.cond.Broadcast()
	}
	if g.err != nil && tk.ticket >= g.failed {
		return g.err
	}
	return nil
}
