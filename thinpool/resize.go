package thinpool

import (
	"context"

	"github.com/pkg/errors"

	"github.com/thinctl/thinctl/dm"
	"github.com/thinctl/thinctl/errdefs"
	"github.com/thinctl/thinctl/fs"
	"github.com/thinctl/thinctl/internal/failpoint"
	"github.com/thinctl/thinctl/internal/revert"
	"github.com/thinctl/thinctl/thinpool/internal/bytesize"
	"github.com/thinctl/thinctl/thinpool/internal/dmname"
	"github.com/thinctl/thinctl/thinpool/internal/dmthin"
	"github.com/thinctl/thinctl/thinpool/internal/store"
)

// ErrNotActive is GrowFS of a device that is not active.
var ErrNotActive = errdefs.New("device is not active", nil)

// Resizing one thin device. A thin device's size is only the length of its
// device-mapper table (the pool's metadata maps blocks, it keeps no size),
// so a device grows by a new record and, while it is active, a table of
// the new length. The record is written first and is what the device is:
// a device whose live table is shorter than its record (a crash between
// the two, or a failed reload) gets the longer table the next time it is
// activated, or when Resize is asked for the same size again.
//
// The filesystem on the device grows through the mark Create sets on a
// device made bigger than its parent (the record's grow-pending flag): the
// first activation grows an ext4, the pool's Mount an xfs. Resize of a
// device the pool itself has mounted grows it there at once; a device
// active but mounted elsewhere (a CSI staging path) keeps the mark and its
// caller grows it online with GrowFS.

// ResizeOptions tunes Resize.
type ResizeOptions struct {
	// Raw says the device holds no filesystem of the pool's (a raw block
	// volume, or bytes the caller manages): only the device grows, and no
	// filesystem grow is marked, so no activation or mount ever runs
	// resize2fs or xfs_growfs on it.
	Raw bool
}

// Resize grows device id to size bytes, which must be a multiple of 512
// and no smaller than the device (shrinking a thin device would cut its
// filesystem: ErrInvalidSize) nor larger than the pool's data space. Like
// Create it is refused while the pool is under its minimum free space
// (ErrLowSpace). The same size again is no change (and finishes a table
// an earlier Resize left short). An active device gets a table of the new
// length (suspend, load, resume; the old table is put back when a step
// fails); open files and mounts stay. See ResizeOptions.Raw and GrowFS
// for the filesystem.
func (p *Pool) Resize(ctx context.Context, id string, size uint64, opts ResizeOptions) error {
	if err := ctx.Err(); err != nil {
		return errors.Wrapf(err, "resize %q", id)
	}
	if size == 0 || size%512 != 0 {
		return errors.Wrapf(ErrInvalidSize, "resize %q to %d bytes: a size is a whole number of 512-byte sectors", id, size)
	}
	return p.withLiveDevice(id, func(d store.Device) error {
		if size < d.Size {
			return errors.Wrapf(ErrInvalidSize, "resize %q to %s: it has %s, and thin devices only grow", id, bytesize.Format(size), bytesize.Format(d.Size))
		}
		if size > d.Size {
			if err := p.checkSpace(id, size); err != nil {
				return errors.Wrapf(err, "resize %q", id)
			}
			d.Size = size
			d.GrowPending = d.GrowPending || !opts.Raw
			if err := p.store.Put(d); err != nil {
				return errors.Wrapf(err, "resize %q: write its record", id)
			}
		}
		if err := failpoint.InjectErr(failpoint.ResizeAfterRecord); err != nil {
			return errors.Wrapf(err, "resize %q", id)
		}

		name := dmname.Thin(p.cfg.Key, d.DeviceID)
		if err := p.fitTable(ctx, name, d.DeviceID, d.Size); err != nil {
			return errors.Wrapf(err, "resize %q: its record says %s, the device keeps its old length until the next activation or resize", id, bytesize.Format(d.Size))
		}
		if opts.Raw || !d.GrowPending {
			return nil
		}
		mp := p.MountPath(id)
		if mounted, _ := fs.IsMounted(mp); mounted {
			return p.growFSLocked(ctx, d, mp)
		}
		return nil
	})
}

// GrowFS grows the filesystem of active device id to fill the device:
// online when it is mounted (at mountpoint, or anywhere when mountpoint is
// empty), an unmounted ext4 offline; an xfs must be mounted
// (fs.ErrNotMounted). It clears the grow mark Resize and Create leave. A
// device that is not active is ErrNotActive: its next activation or mount
// grows it.
func (p *Pool) GrowFS(ctx context.Context, id, mountpoint string) error {
	if err := ctx.Err(); err != nil {
		return errors.Wrapf(err, "grow the filesystem of %q", id)
	}
	return p.withLiveDevice(id, func(d store.Device) error {
		if info, err := p.dm.Info(dmname.Thin(p.cfg.Key, d.DeviceID)); err != nil || !info.LiveTable {
			return errors.Wrapf(ErrNotActive, "grow the filesystem of %q: it is not active", id)
		}
		return p.growFSLocked(ctx, d, mountpoint)
	})
}

// growFSLocked grows d's filesystem and clears its grow mark.
func (p *Pool) growFSLocked(ctx context.Context, d store.Device, mountpoint string) error {
	dev := dm.NodePath(dmname.Thin(p.cfg.Key, d.DeviceID))
	if err := fs.Grow(ctx, dev, mountpoint, p.cfg.Filesystem); err != nil {
		return errors.Wrapf(err, "grow the filesystem of %q to %s", d.ID, bytesize.Format(d.Size))
	}
	if !d.GrowPending {
		return nil
	}
	d.GrowPending = false
	return errors.Wrapf(p.store.Put(d), "grow the filesystem of %q: clear its grow mark", d.ID)
}

// fitTable gives active thin device name a table of size bytes when its
// live table is shorter; nothing for a device that is not active. The new
// table is loaded, the device suspended (its I/O flushed) and resumed into
// it; a failed step puts the old table back.
func (p *Pool) fitTable(ctx context.Context, name string, devID uint32, size uint64) (err error) {
	info, err := p.dm.Info(name)
	if errors.Is(err, dm.ErrNotFound) || err == nil && !info.LiveTable {
		return nil
	}
	if err != nil {
		return errors.Wrapf(err, "%s", name)
	}
	live, err := p.dm.Table(name, dm.TableOptions{})
	if err != nil {
		return errors.Wrapf(err, "read the table of %s", name)
	}
	if tableLength(live) >= size/512 {
		return nil
	}
	poolDev, err := p.poolDev()
	if err != nil {
		return err
	}
	t := dmthin.ThinTarget(poolDev, devID, size)
	if err := p.dm.LoadTable(name, []dm.Target{t}, dm.LoadOptions{}); err != nil {
		return errors.Wrapf(err, "load thin table %q into %s", t.Params, name)
	}
	var undo revert.Stack
	defer func() {
		if uerr := undo.Unwind(); uerr != nil {
			err = errors.Wrapf(uerr, "%v; and", err)
		}
	}()
	undo.Push(func() { _ = p.dm.ClearTable(name) })
	resumed := false
	if !info.Suspended {
		if err := p.dm.Suspend(name, dm.SuspendOptions{}); err != nil {
			return errors.Wrapf(err, "suspend %s", name)
		}
		// A suspended device holds every I/O to it: resumed on every
		// path, with its old table when the new one did not take.
		undo.PushAlways(func() error {
			if resumed {
				return nil
			}
			_ = p.dm.ClearTable(name)
			return errors.Wrapf(p.resumeThin(context.WithoutCancel(ctx), name), "resume %s with its old table", name)
		})
	}
	if err := p.resumeThin(ctx, name); err != nil {
		return errors.Wrapf(err, "resume %s with %d sectors", name, t.Length)
	}
	resumed = true
	undo.Keep()
	return nil
}

// tableLength is the number of sectors a table covers.
func tableLength(ts []dm.Target) uint64 {
	var n uint64
	for _, t := range ts {
		n = max(n, t.Start+t.Length)
	}
	return n
}
