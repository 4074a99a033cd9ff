package thinpool

import (
	"context"
	"fmt"

	"github.com/pkg/errors"

	"github.com/thinctl/thinctl/dm"
	"github.com/thinctl/thinctl/internal/failpoint"
	"github.com/thinctl/thinctl/thinpool/internal/devnode"
	"github.com/thinctl/thinctl/thinpool/internal/dmname"
	"github.com/thinctl/thinctl/thinpool/internal/store"
)

// Remove deletes device id. When it is busy, removal is deferred
// (errors.Is(err, ErrDeferred)) and finished by GC or the next Open.
func (p *Pool) Remove(ctx context.Context, id string) error {
	if err := ctx.Err(); err != nil {
		return errors.Wrapf(err, "remove %q", id)
	}
	if err := ValidateID(id); err != nil {
		return err
	}
	if err := p.lk.Lock(); err != nil {
		return err
	}
	defer p.lk.Unlock()
	if err := p.ensureIndex(); err != nil {
		return err
	}
	d, err := p.store.Get(id)
	if err != nil {
		return err
	}
	if n := p.store.Children(id); n > 0 {
		return errors.Wrapf(ErrHasChildren, "device %q has %d snapshots; remove them first", id, n)
	}
	if n := p.store.PendingChildren(id); n > 0 {
		return errors.Wrapf(ErrHasChildren, "device %q has %d snapshots being created; remove them first", id, n)
	}
	if err := p.unmountAll(id); err != nil {
		return err
	}
	failpoint.Inject(failpoint.RemoveAfterUnmnt)
	return p.removeLocked(ctx, d)
}

// removeLocked removes one device. A device someone still holds open (a
// mount, a process, a virtual machine given the block device) keeps every
// byte until its last holder closes it: its kernel removal is deferred, its
// record marked deleted, and nothing is discarded; ErrDeferred names the
// holders. GC (or the next Open) finishes the job once the kernel has
// removed the device.
//
// Without discards the device is taken down and deleted from the pool in
// one transaction. With discards (the default) the removal is made durable
// first and the space returned after it (handOver): the caller does not
// wait for a whole-device discard. A device that is active and that nothing
// holds is left active for that discard, so it is not taken down and
// brought up again.
func (p *Pool) removeLocked(ctx context.Context, d store.Device) error {
	name := dmname.Thin(p.cfg.Key, d.DeviceID)
	mp := p.MountPath(d.ID)
	info, ierr := p.dm.Info(name)
	if ierr != nil && !errors.Is(ierr, dm.ErrNotFound) {
		return errors.Wrapf(ierr, "%s", name)
	}
	idle := ierr == nil && info.LiveTable && !info.Suspended && info.OpenCount == 0 && !info.DeferredRemove
	if ierr == nil && (p.cfg.NoDiscard || !idle) {
		err := devnode.Remove(ctx, p.dm, name, info.Dev, mp, true)
		if errors.Is(err, dm.ErrBusy) {
			return p.deferRemoval(ctx, d, name, info.Dev, mp)
		}
		if err != nil && !errors.Is(err, dm.ErrNotFound) {
			return errors.Wrapf(err, "deactivate %s", name)
		}
	}
	failpoint.Inject(failpoint.RemoveAfterDeact)
	if !p.cfg.NoDiscard {
		return p.handOver(d)
	}
	p.report(fmt.Sprintf("deleting %q from the pool", d.ID), 0.8)
	err := p.runTx(store.Tx{Op: store.OpDelete, DeviceID: d.DeviceID, ID: d.ID}, func() error {
		return p.store.Remove(d.ID)
	})
	if errors.Is(err, dm.ErrBusy) {
		// Activated by someone else since it was taken down.
		return p.deferRemoval(ctx, d, name, 0, mp)
	}
	if err != nil {
		return errors.Wrapf(err, "delete %q", d.ID)
	}
	return nil
}

// hookBeforeDiscardOpen, set by tests only, runs with the device's
// /dev/mapper path just before the space return opens the device.
var hookBeforeDiscardOpen func(mapperPath string)

// deferRemoval asks the kernel to remove the device on its last close and
// marks the registry record deleted so GC and Open finish the job.
func (p *Pool) deferRemoval(ctx context.Context, d store.Device, name string, dev uint64, mp string) error {
	if dev == 0 {
		if info, err := p.dm.Info(name); err == nil {
			dev = info.Dev
		}
	}
	holders := p.holdersText(dev, mp)
	if err := p.dm.Remove(ctx, name, dm.RemoveOptions{Deferred: true}); err != nil && !errors.Is(err, dm.ErrNotFound) {
		return errors.Wrapf(err, "deferred removal of %s", name)
	}
	if err := p.markDeleted(d.ID); err != nil {
		return err
	}
	failpoint.Inject(failpoint.RemoveAfterMark)
	return errors.Wrapf(ErrDeferred, "device %q is in use%s; it is deleted once released (GC finishes it)", d.ID, holders)
}

// GC finishes deferred deletions, returns the space of every removed device
// still giving it back (waiting for it, as ReturnSpace does), and returns
// the ids it removed.
func (p *Pool) GC(ctx context.Context) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, errors.Wrap(err, "gc")
	}
	p.stopReturning(false) // GC does that work itself, now
	if err := p.lk.Lock(); err != nil {
		return nil, err
	}
	err := p.ensureIndex()
	var removed []string
	if err == nil {
		removed, err = p.gcLocked(ctx)
	}
	p.lk.Unlock()
	if _, rerr := p.returnPass(ctx, true); err == nil {
		err = rerr
	}
	return removed, err
}

// gcLocked retries the removal of every device marked deleted (the
// index knows which). Devices still busy stay marked; the first other
// error is returned after trying them all. It drops the user records a
// crash in the middle of a hand-over left; the space of removed devices is
// returned by returnPass, without the lock.
func (p *Pool) gcLocked(ctx context.Context) ([]string, error) {
	ids := p.store.Deleted()
	var removed []string
	var firstErr error
	for _, id := range ids {
		d, err := p.store.Get(id)
		if errors.Is(err, ErrDeviceNotFound) {
			continue
		}
		if err != nil {
			if firstErr == nil {
				firstErr = err
			}
			continue
		}
		if !d.Deleted || p.store.Children(d.ID) > 0 {
			continue
		}
		err = p.removeLocked(ctx, d)
		switch {
		case err == nil:
			removed = append(removed, d.ID)
		case errors.Is(err, ErrDeferred):
		case firstErr == nil:
			firstErr = err
		}
	}
	keys := p.store.Returning()
	for _, key := range keys {
		r, err := p.store.Get(key)
		if err == nil {
			err = p.dropHandedOver(r)
		}
		if err != nil && !errors.Is(err, ErrDeviceNotFound) && firstErr == nil {
			firstErr = err
		}
	}
	return removed, firstErr
}
