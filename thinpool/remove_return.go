package thinpool

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/pkg/errors"

	"github.com/thinctl/thinctl/dm"
	"github.com/thinctl/thinctl/fs"
	"github.com/thinctl/thinctl/internal/wait"
	"github.com/thinctl/thinctl/thinpool/internal/devnode"
	"github.com/thinctl/thinctl/thinpool/internal/dmname"
	"github.com/thinctl/thinctl/thinpool/internal/dmthin"
	"github.com/thinctl/thinctl/thinpool/internal/store"
)

// Reclaiming a removed device's space.
//
// With discards on, Remove does not discard on the caller's time. It hands
// the device over (handOver): one durable registry write records the thin
// device under store.ReturningKey(its thin id), marked ReturningSpace, and
// the user's record goes, so the id can be created again at once (the new
// device gets another thin id). Then a goroutine the Pool owns reclaims the
// space (reclaim, the one pipeline every path takes: reclaimOne for each
// device of a pass): an inactive device without activating it (see
// returnInactive, remove_inactive.go), an active one (or where that way is
// closed) by discarding it through a private node (openForDiscard); then
// it takes the device down and deletes it from the pool in a transaction
// (finishReturn). Close stops that goroutine and waits for it; whatever it
// had not finished — or a crash left — is finished by the next Open (in
// the background), GC or ReturnSpace (both wait for it). Status counts the
// devices still reclaiming space.

// handOver makes the removal of d durable and leaves its space to be
// returned: the record moves from d.ID to store.ReturningKey(d.DeviceID), both
// entries in one journal frame (one flush). The caller holds the lock.
func (p *Pool) handOver(d store.Device) error {
	p.report(fmt.Sprintf("deleting %q (its space is returned in the background)", d.ID), 0.8)
	r := d
	r.ID, r.ReturningSpace, r.RemovedID, r.Deleted = store.ReturningKey(d.DeviceID), true, d.ID, true
	r.Parent, r.Labels, r.GrowPending = "", nil, false
	if err := p.store.Move(d.ID, r); err != nil {
		return errors.Wrapf(err, "delete %q", d.ID)
	}
	p.kickReturn()
	return nil
}

// dropHandedOver removes a user record that still has r's thin id (a
// record written back by hand, or by a registry of an older layout); the
// id's device is gone. The caller holds the lock.
func (p *Pool) dropHandedOver(r store.Device) error {
	u, err := p.store.Get(r.RemovedID)
	if err != nil || u.DeviceID != r.DeviceID || u.ReturningSpace {
		return nil // gone, or the id was created again (another thin id)
	}
	return p.store.RemoveDuplicate(u.ID, r)
}

// prepareReturn makes sure r's thin device is active (left active by
// Remove when nothing held it) and returns its device number.
func (p *Pool) prepareReturn(ctx context.Context, r store.Device) (uint64, error) {
	name := dmname.Thin(p.cfg.Key, r.DeviceID)
	if _, err := p.activateThin(ctx, r.DeviceID, r.Size); err != nil {
		return 0, errors.Wrapf(err, "return the space of removed device %q", r.RemovedID)
	}
	info, err := p.dm.Info(name)
	if err != nil {
		return 0, errors.Wrapf(err, "%s", name)
	}
	return info.Dev, nil
}

// discardDevice discards r's active thin device so that the pool frees its
// blocks and passes the discards down (a loop data file gets its holes
// back): up to the end of its highest mapped block (the thin status says
// which; nothing at all when nothing is mapped), the whole device when the
// status cannot be read. It needs no lock, only the device's claim: no
// other returner can reach the device, and nobody deletes it meanwhile.
func (p *Pool) discardDevice(ctx context.Context, r store.Device, dev uint64) error {
	name := dmname.Thin(p.cfg.Key, r.DeviceID)
	if hookBeforeDiscardOpen != nil {
		hookBeforeDiscardOpen(dm.NodePath(name))
	}
	length := uint64(0) // the whole device
	if ts, err := p.dm.Status(name, dm.StatusOptions{NoFlush: true}); err == nil && len(ts) == 1 {
		if st, err := dmthin.ParseThinStatus(ts[0].Params); err == nil && !st.Failed {
			if !st.HasHighest {
				return nil // nothing mapped, nothing to give back
			}
			length = (st.HighestMapped + 1) * 512
		}
	}
	f, err := devnode.OpenForDiscard(p.dir, dev)
	if err != nil {
		return errors.Wrapf(err, "discard the blocks of removed device %q", r.RemovedID)
	}
	derr := fs.Discard(ctx, f, 0, length)
	if cerr := f.Close(); derr == nil {
		derr = cerr
	}
	return errors.Wrapf(derr, "discard the blocks of removed device %q", r.RemovedID)
}

// deleteBusyPause is the longest pause between two tries of a delete the
// pool refuses (EBUSY) while no device of the thin device's name exists;
// the pauses double from 1 ms, about 2 s in all.
const deleteBusyPause = 2 * time.Second

// retryBusy runs op again while it fails with dm.ErrBusy and passing says
// the refusal is a passing window rather than a holder, pausing from 1 ms
// and doubling up to deleteBusyPause. It returns op's last error, or ctx's
// when ctx ends during a pause.
func retryBusy(ctx context.Context, op func() error, passing func() bool) error {
	for pause := time.Millisecond; ; pause *= 2 {
		err := op()
		if err == nil || !errors.Is(err, dm.ErrBusy) || pause > deleteBusyPause || !passing() {
			return err
		}
		if err := wait.Sleep(ctx, pause); err != nil {
			return err
		}
	}
}

// finishReturn takes r's thin device down and deletes it from the pool and
// the registry in one transaction. The caller holds the lock.
func (p *Pool) finishReturn(ctx context.Context, r store.Device) error {
	name := dmname.Thin(p.cfg.Key, r.DeviceID)
	if info, err := p.dm.Info(name); err == nil {
		err := devnode.Remove(ctx, p.dm, name, info.Dev, "", true)
		if errors.Is(err, dm.ErrBusy) {
			return errors.Wrapf(ErrBusy, "removed device %q (%s) is in use%s; its space is returned once released", r.RemovedID, name, p.holdersText(info.Dev, ""))
		}
		if err != nil && !errors.Is(err, dm.ErrNotFound) {
			return errors.Wrapf(err, "deactivate %s", name)
		}
	} else if !errors.Is(err, dm.ErrNotFound) {
		return errors.Wrapf(err, "%s", name)
	}

	tx := store.Tx{Op: store.OpDelete, DeviceID: r.DeviceID, ID: r.ID}
	err := retryBusy(ctx, func() error {
		return p.runTx(tx, func() error { return p.store.Remove(r.ID) })
	}, func() bool {
		// The pool still counts the thin device open although no device
		// of this name exists: a device-mapper device being torn down
		// (a deferred removal, finished when its last holder let go)
		// loses its name before its table is destroyed, and the
		// destruction waits for every reference to it — udev's reads
		// of its sysfs attributes among them. It is a matter of
		// milliseconds; the delete is tried again meanwhile.
		_, ierr := p.dm.Info(name)
		return errors.Is(ierr, dm.ErrNotFound)
	})
	if ctx.Err() != nil && errors.Is(err, ctx.Err()) { // runTx never returns it: a pause ended
		return errors.Wrapf(err, "delete removed device %q from the pool (thin id %d still open in the pool)", r.RemovedID, r.DeviceID)
	}
	if err != nil {
		return errors.Wrapf(err, "delete removed device %q from the pool", r.RemovedID)
	}

	p.ret.mu.Lock()
	p.ret.returned++
	p.ret.mu.Unlock()
	return nil
}

// returner is the Pool's background space return: at most one goroutine,
// started when there is work (kickReturn) and ending after a pass.
type returner struct {
	mu       sync.Mutex
	closed   bool          // Close was called: never start again
	running  bool          // a goroutine runs
	wake     chan struct{} // more work (buffered, 1)
	cancel   context.CancelFunc
	done     chan struct{} // closed when the goroutine ends
	lastErr  error         // the last pass's first error, for Status
	returned int           // devices this Pool returned the space of, for Status
}

// kickReturn starts the background return, or tells the running one that
// there is more to do.
func (p *Pool) kickReturn() {
	r := &p.ret
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return
	}
	if r.wake == nil {
		r.wake = make(chan struct{}, 1)
	}
	if r.running {
		select {
		case r.wake <- struct{}{}:
		default:
		}
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	r.running, r.cancel, r.done = true, cancel, make(chan struct{})
	go p.returnLoop(ctx, r.done)
}

// stopReturning cancels the background return and waits for it to end;
// forever stops it for good (Close). What was not finished stays recorded.
func (p *Pool) stopReturning(forever bool) {
	r := &p.ret
	r.mu.Lock()
	r.closed = r.closed || forever
	running, cancel, done := r.running, r.cancel, r.done
	r.mu.Unlock()
	if running {
		cancel()
		<-done
	}
}

// returnLoop makes passes over the devices returning space while it is
// kicked, and ends after a pass that nobody kicked during (what failed,
// such as a device someone opened, is tried again at the next kick: the
// next Remove, Open, GC or ReturnSpace) or when ctx ends.
func (p *Pool) returnLoop(ctx context.Context, done chan struct{}) {
	r := &p.ret
	defer close(done)
	for {
		left, err := p.returnPass(ctx, false)
		p.log.Debug("space reclaim pass", "left", left, "error", err)
		r.mu.Lock()
		if ctx.Err() == nil {
			r.lastErr = err
			select {
			case <-r.wake: // kicked during the pass: go again
				r.mu.Unlock()
				continue
			default:
			}
		}
		r.running = false
		r.cancel()
		r.mu.Unlock()
		return
	}
}

// returnPass returns the space of every device recorded as returning it,
// taking the lock only around the kernel and registry steps (the discard
// runs without it). With wait it waits for a device another returner has
// (see claimReturn); without, it leaves it to that returner. It reports how
// many are left and the first error other than ErrBusy.
func (p *Pool) returnPass(ctx context.Context, wait bool) (int, error) {
	if err := p.lk.Lock(); err != nil {
		return 1, err
	}
	err := p.ensureIndex()
	keys := p.store.Returning()
	p.lk.Unlock()
	if err != nil {
		return 1, err
	}
	left := 0
	var first error
	for _, key := range keys {
		err := p.reclaimOne(ctx, key, wait)
		if err != nil {
			left++
		}
		// Busy: another returner has the device (it finishes it), or
		// someone opened it; it stays counted in Status.
		if err != nil && !errors.Is(err, ErrBusy) && first == nil {
			first = err
		}
		if ctx.Err() != nil {
			return left + 1, ctx.Err()
		}
	}
	return left, first
}

// reclaimOne reclaims the space of the device recorded under key; a
// record already gone (another returner finished it) is success. It claims
// the device first (waiting for the claim with wait; ErrBusy without) and
// holds the claim until the device is deleted, so that whoever reaches the
// device next finds it reclaimed or untouched. The order is always the
// claim, then the root lock: a holder of the lock only ever tries a claim.
func (p *Pool) reclaimOne(ctx context.Context, key string, wait bool) error {
	devID, ok := store.ReturningDevID(key)
	if !ok {
		return errors.Errorf("%q is not the key of a device returning space", key)
	}
	var c *store.Claim
	var err error
	if wait {
		c, err = p.lk.ClaimReturn(ctx, devID)
	} else {
		c, err = p.lk.TryClaimReturn(devID)
	}
	if err != nil {
		return err
	}
	if c == nil {
		return errors.Wrapf(ErrBusy, "thin device %d is being returned by another process", devID)
	}
	defer c.Release()

	if err := p.lk.Lock(); err != nil {
		return err
	}
	defer p.lk.Unlock()
	r, err := p.loadReturning(key)
	if err == nil {
		err = p.reclaim(ctx, r)
	}
	if errors.Is(err, ErrDeviceNotFound) {
		return nil // another returner (or GC) finished it
	}
	return err
}

// reclaim is the space reclaim of removed device r, in five steps: drop a
// user record a hand-over left behind, reclaim an inactive device without
// activating it (which ends here, see remove_inactive.go), activate it,
// discard it, take it down and delete it. The caller holds r's claim and
// the lock; the discard, which can take long, runs without the lock, and r
// is read again after it.
func (p *Pool) reclaim(ctx context.Context, r store.Device) error {
	if err := p.dropHandedOver(r); err != nil {
		return err
	}

	if done, err := p.returnInactive(ctx, r); done || err != nil {
		return err
	}

	dev, err := p.prepareReturn(ctx, r)
	if err != nil {
		return err
	}

	p.lk.Unlock()
	err = p.discardDevice(ctx, r, dev)
	if lerr := p.lk.Relock(); lerr != nil {
		return lerr
	}
	if err != nil {
		return err
	}

	if r, err = p.loadReturning(r.ID); err != nil {
		return err
	}
	return p.finishReturn(ctx, r)
}

// loadReturning catches up with the registry and reads the record of key.
func (p *Pool) loadReturning(key string) (store.Device, error) {
	if err := p.ensureIndex(); err != nil {
		return store.Device{}, err
	}
	return p.store.Get(key)
}

// ReturnSpace returns the space of every removed device still giving it
// back (see Remove) and waits for it: it lets the background return finish
// its work, then returns what is left itself, waiting for a device another
// Pool or process is returning at the same time. A device someone opened
// is left (still counted by Status, tried again at the next Remove, Open,
// GC or ReturnSpace); otherwise, when ReturnSpace returns nil, Status
// counts none. When ctx ends first, the background return goes on.
func (p *Pool) ReturnSpace(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return errors.Wrap(err, "return space")
	}
	p.kickReturn()
	r := &p.ret
	r.mu.Lock()
	running, done := r.running, r.done
	r.mu.Unlock()
	if running {
		select {
		case <-done:
		case <-ctx.Done():
			return errors.Wrap(ctx.Err(), "return space (it goes on in the background)")
		}
	}
	_, err := p.returnPass(ctx, true)
	return err
}

// returningStatus counts the devices returning space and the bytes those
// that are active still map (the one being discarded, or one Remove left
// active); the caller holds the lock and has an index.
func (p *Pool) returningStatus() (int, uint64) {
	var bytes uint64
	keys := p.store.Returning()
	for _, key := range keys {
		devID, ok := store.ReturningDevID(key)
		if !ok {
			continue
		}
		ts, err := p.dm.Status(dmname.Thin(p.cfg.Key, devID), dm.StatusOptions{NoFlush: true})
		if err != nil || len(ts) != 1 {
			continue
		}
		if st, err := dmthin.ParseThinStatus(ts[0].Params); err == nil {
			bytes += st.MappedSectors * 512
		}
	}
	return len(keys), bytes
}
