package thinpool

import (
	"context"
	"fmt"
	"os"
	"sort"

	"github.com/pkg/errors"
	"golang.org/x/sys/unix"

	"github.com/thinctl/thinctl/dm"
	"github.com/thinctl/thinctl/fs"
	"github.com/thinctl/thinctl/internal/failpoint"
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

// removeLocked deactivates, discards and deletes one device, in that order.
// A device someone still holds open (a mount, a process, a virtual machine
// given the block device) keeps every byte until its last holder closes it:
// its kernel removal is deferred, its record marked deleted, and nothing is
// discarded; ErrDeferred names the holders. GC (or the next Open) finishes
// the job once the kernel has removed the device.
func (p *Pool) removeLocked(ctx context.Context, d deviceRecord) error {
	name := thinName(p.cfg.Key, d.DeviceID)
	mp := p.MountPath(d.ID)
	info, ierr := p.dm.Info(name)
	if ierr != nil && !errors.Is(ierr, dm.ErrNotFound) {
		return errors.Wrapf(ierr, "%s", name)
	}
	if ierr == nil {
		err := p.removeDM(ctx, name, info.Dev, mp)
		if errors.Is(err, dm.ErrBusy) {
			return p.deferRemoval(ctx, d, name, info.Dev, mp)
		}
		if err != nil && !errors.Is(err, dm.ErrNotFound) {
			return errors.Wrapf(err, "deactivate %s", name)
		}
	}
	if !p.cfg.NoDiscard {
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
		p.report(fmt.Sprintf("discarding the blocks of %q", d.ID), 0.2)
		if err := p.discardThin(ctx, d); err != nil {
			if errors.Is(err, ErrBusy) {
				return p.deferRemoval(ctx, d, name, 0, mp)
			}
			return errors.Wrapf(err, "discard the blocks of %q", d.ID)
		}
	}
	failpoint.Inject(failpoint.RemoveAfterDeact)
	p.report(fmt.Sprintf("deleting %q from the pool", d.ID), 0.8)
	err := p.runTx(txRecord{Op: opDelete, DeviceID: d.DeviceID, ID: d.ID}, func() error {
		return p.reg.removeDevice(d.ID)
	})
	if errors.Is(err, dm.ErrBusy) {
		// Activated by someone else since it was taken down.
		return p.deferRemoval(ctx, d, name, 0, mp)
	}
	if err != nil {
		return errors.Wrapf(err, "delete %q", d.ID)
	}
	p.idx.remove(d)
	return nil
}

// discardThin activates the inactive thin device of d, discards all of it so
// that the pool frees its blocks and passes the discards down (a loop data
// file gets its holes back), and deactivates it again. It runs only on a
// device that nothing held when it was taken down. ErrBusy when something
// opened it in between and still holds it.
func (p *Pool) discardThin(ctx context.Context, d deviceRecord) error {
	if _, err := p.activateThin(ctx, d.DeviceID, d.Size); err != nil {
		return err
	}
	name := thinName(p.cfg.Key, d.DeviceID)
	info, err := p.dm.Info(name)
	if err != nil {
		return errors.Wrapf(err, "%s", name)
	}
	if hookBeforeDiscardOpen != nil {
		hookBeforeDiscardOpen(dm.NodePath(name))
	}
	// The kernel's own node (devtmpfs makes /dev/dm-N at once), not the
	// /dev/mapper link, which udev may be remaking at this very moment.
	f, err := openKernelNode(info.Dev)
	if err != nil {
		_ = p.deactivateThin(context.WithoutCancel(ctx), d.DeviceID, "")
		return err
	}
	derr := fs.Discard(ctx, f, 0, 0)
	f.Close()
	if err := p.deactivateThin(context.WithoutCancel(ctx), d.DeviceID, ""); err != nil {
		return err
	}
	return derr
}

// hookBeforeDiscardOpen, set by tests only, runs with the device's
// /dev/mapper path just before discardThin opens the device.
var hookBeforeDiscardOpen func(mapperPath string)

// openKernelNode opens the block device dev through the node devtmpfs makes
// for it (/dev/dm-<minor> for device-mapper), exclusively, so that a mount
// that raced in is noticed (EBUSY) rather than discarded under.
func openKernelNode(dev uint64) (*os.File, error) {
	path := fmt.Sprintf("/dev/dm-%d", unix.Minor(dev))
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFBLK || st.Rdev != dev {
		return nil, errors.Errorf("%s is not the block device %d:%d (is devtmpfs mounted on /dev?)", path, unix.Major(dev), unix.Minor(dev))
	}
	f, err := os.OpenFile(path, os.O_RDWR|unix.O_EXCL|unix.O_CLOEXEC, 0)
	if errors.Is(err, unix.EBUSY) {
		return nil, errors.Wrapf(ErrBusy, "%s is open exclusively elsewhere", path)
	}
	return f, err
}

// deferRemoval asks the kernel to remove the device on its last close and
// marks the registry record deleted so GC and Open finish the job.
func (p *Pool) deferRemoval(ctx context.Context, d deviceRecord, name string, dev uint64, mp string) error {
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

// GC finishes deferred deletions and returns the ids it removed.
func (p *Pool) GC(ctx context.Context) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, errors.Wrap(err, "gc")
	}
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
