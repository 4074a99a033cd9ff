package thinpool

import (
	"context"
	"fmt"
	"os"
	"sort"
	"unsafe"

	"github.com/pkg/errors"
	"golang.org/x/sys/unix"

	"github.com/thinctl/thinctl/dm"
	"github.com/thinctl/thinctl/internal/failpoint"
)

// Remove deletes device id. When it is busy, removal is deferred
// (errors.Is(err, ErrDeferred)) and finished by GC or the next Open.
func (p *Pool) Remove(ctx context.Context, id string) error {
	if err := ValidateID(id); err != nil {
		return err
	}
	if err := p.lk.lock(); err != nil {
		return err
	}
	defer p.lk.unlock()
	if err := p.ensureIndex(); err != nil {
		return err
	}
	d, err := p.reg.loadDevice(id)
	if err != nil {
		return err
	}
	if n := p.idx.children[id]; n > 0 {
		return errors.Wrapf(ErrHasChildren, "device %q has %d snapshots; remove them first", id, n)
	}
	if err := p.unmountAll(id); err != nil {
		return err
	}
	failpoint.Inject(failpoint.RemoveAfterUnmnt)
	return p.removeLocked(ctx, d)
}

// removeLocked deactivates, discards and deletes one device. When the
// device is held open it is marked deleted, its kernel removal deferred,
// and ErrDeferred names the holders.
func (p *Pool) removeLocked(ctx context.Context, d deviceRecord) error {
	name := thinName(p.cfg.Key, d.DeviceID)
	mp := p.MountPath(d.ID)
	info, ierr := p.dm.Info(name)
	if ierr != nil && !errors.Is(ierr, dm.ErrNotFound) {
		return errors.Wrapf(ierr, "%s", name)
	}
	active := ierr == nil
	if !p.cfg.NoDiscard && !(active && info.DeferredRemove) {
		// Mark the record deleted before the discard, the one destructive
		// step before the delete transaction: a crash from here on leaves
		// a record that GC or the next Open finishes, never a live record
		// whose blocks are gone. (Without discards nothing is lost before
		// the transaction, which recovers by itself.)
		if !d.Deleted {
			if err := p.markDeleted(d.ID); err != nil {
				return err
			}
			d.Deleted = true
		}
		path, err := p.activateThin(ctx, d.DeviceID, d.Size)
		if err != nil {
			return err
		}
		active = true
		p.report(fmt.Sprintf("discarding the blocks of %q", d.ID), 0.2)
		if err := discardAll(path); err != nil && !errors.Is(err, unix.EBUSY) {
			return errors.Wrapf(err, "discard the blocks of %q", d.ID)
		}
		if info, ierr = p.dm.Info(name); ierr != nil {
			return errors.Wrapf(ierr, "%s", name)
		}
	}
	if active {
		err := p.removeDM(ctx, name, info.Dev, mp)
		if errors.Is(err, dm.ErrBusy) {
			return p.deferRemoval(ctx, d, name, info.Dev, mp)
		}
		if err != nil && !errors.Is(err, dm.ErrNotFound) {
			return errors.Wrapf(err, "deactivate %s", name)
		}
		failpoint.Inject(failpoint.RemoveAfterDeact)
	}
	p.report(fmt.Sprintf("deleting %q from the pool", d.ID), 0.8)
	err := p.runTx(txRecord{Op: opDelete, DeviceID: d.DeviceID, ID: d.ID}, func() error {
		return p.reg.removeDevice(d.ID)
	})
	if errors.Is(err, dm.ErrBusy) {
		return p.deferRemoval(ctx, d, name, info.Dev, mp)
	}
	if err != nil {
		return errors.Wrapf(err, "delete %q", d.ID)
	}
	p.idx.remove(d)
	return nil
}

// deferRemoval asks the kernel to remove the device on its last close and
// marks the registry record deleted so GC and Open finish the job.
func (p *Pool) deferRemoval(ctx context.Context, d deviceRecord, name string, dev uint64, mp string) error {
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

// discardAll discards every block of the block device at path, so the
// pool frees them and passes the discards down (the data file shrinks).
// EBUSY when something else has the device open exclusively (a mount).
func discardAll(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR|unix.O_EXCL|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	size, err := blockDeviceSize(path)
	if err != nil || size == 0 {
		return err
	}
	r := [2]uint64{0, size}
	if _, _, e := unix.Syscall(unix.SYS_IOCTL, f.Fd(), unix.BLKDISCARD, uintptr(unsafe.Pointer(&r[0]))); e != 0 {
		if e == unix.EOPNOTSUPP {
			return nil
		}
		return errors.Wrapf(e, "BLKDISCARD %s", path)
	}
	return nil
}

// GC finishes deferred deletions and returns the ids it removed.
func (p *Pool) GC(ctx context.Context) ([]string, error) {
	if err := p.lk.lock(); err != nil {
		return nil, err
	}
	defer p.lk.unlock()
	if err := p.ensureIndex(); err != nil {
		return nil, err
	}
	return p.gcLocked(ctx)
}

// gcLocked retries the removal of every device marked deleted (the
// index knows which). Devices still busy stay marked; the first other
// error is returned after trying them all.
func (p *Pool) gcLocked(ctx context.Context) ([]string, error) {
	ids := make([]string, 0, len(p.idx.deleted))
	for id := range p.idx.deleted {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	var removed []string
	var firstErr error
	for _, id := range ids {
		d, err := p.reg.loadDevice(id)
		if errors.Is(err, ErrDeviceNotFound) {
			delete(p.idx.deleted, id)
			continue
		}
		if err != nil {
			if firstErr == nil {
				firstErr = err
			}
			continue
		}
		if !d.Deleted || p.idx.children[d.ID] > 0 {
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
	return removed, firstErr
}
