package thinpool

import (
	"context"
	"os"

	"github.com/pkg/errors"

	"github.com/thinctl/thinctl/fs"
	"github.com/thinctl/thinctl/internal/failpoint"
	"github.com/thinctl/thinctl/thinpool/internal/bytesize"
	"github.com/thinctl/thinctl/thinpool/internal/store"
)

// Mount activates and mounts device id at root/mnt/<id> and returns the path.
//
// Mounts are reference counted within the process: a second Mount of a
// mounted device only takes another reference. A device some other process
// mounted is detected (the mount point is a mount) and joined the same way.
// Nothing about mounts is stored on disk.
func (p *Pool) Mount(ctx context.Context, id string, opts MountOptions) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", errors.Wrapf(err, "mount %q", id)
	}
	if err := p.lk.Lock(); err != nil {
		return "", err
	}
	defer p.lk.Unlock()
	d, err := p.liveDevice(id)
	if err != nil {
		return "", err
	}
	mp := p.MountPath(id)
	mounted, err := fs.IsMounted(mp)
	if err != nil {
		return "", errors.Wrapf(err, "is %s mounted", mp)
	}
	if mounted {
		p.mounts[id]++
		return mp, nil
	}
	delete(p.mounts, id) // unmounted behind our back
	dev, err := p.activateDevice(ctx, d)
	if err != nil {
		return "", err
	}
	mo := fs.MountOptions{Options: append(append([]string{}, p.cfg.MountOptions...), opts.Options...), Label: opts.MountLabel}
	if err := fs.Mount(dev, mp, p.cfg.Filesystem, mo); err != nil {
		_ = p.deactivateThin(ctx, d.DeviceID, "")
		os.Remove(mp)
		return "", errors.Wrapf(err, "mount %q (%s) at %s", id, dev, mp)
	}
	failpoint.Inject(failpoint.MountAfterMount)
	if d.GrowPending && p.cfg.Filesystem == fs.XFS {
		if err := fs.Grow(ctx, dev, mp, fs.XFS); err != nil {
			p.unmountAll(id)
			_ = p.deactivateThin(ctx, d.DeviceID, "")
			return "", errors.Wrapf(err, "grow the filesystem of %q to %s", id, bytesize.Format(d.Size))
		}
		d.GrowPending = false
		if err := p.store.Put(d); err != nil {
			return "", err
		}
	}
	p.mounts[id] = 1
	return mp, nil
}

// Unmount releases one Mount reference; the last one unmounts (lazily),
// removes the mount point and deactivates. A device still held open
// elsewhere (a mount leaked into another mount namespace) stays active;
// Remove defers its removal.
func (p *Pool) Unmount(ctx context.Context, id string) error {
	return p.withDevice(id, func(d store.Device) error {
		if p.mounts[id] > 1 {
			if m, _ := fs.IsMounted(p.MountPath(id)); m {
				p.mounts[id]--
				return nil
			}
		}
		return p.releaseLocked(ctx, d)
	})
}

// releaseLocked drops every reference on d, unmounts it and deactivates
// it unless something else still holds it.
func (p *Pool) releaseLocked(ctx context.Context, d store.Device) error {
	if err := p.unmountAll(d.ID); err != nil {
		return err
	}
	if err := p.deactivateThin(ctx, d.DeviceID, p.MountPath(d.ID)); err != nil && !errors.Is(err, ErrBusy) {
		return err
	}
	return nil
}

// unmountAll drops every reference and lazily unmounts id's mount point,
// removing the directory.
func (p *Pool) unmountAll(id string) error {
	delete(p.mounts, id)
	mp := p.MountPath(id)
	if err := fs.Unmount(mp, fs.UnmountOptions{Lazy: true, RemoveDir: true}); err != nil && !errors.Is(err, fs.ErrNotMounted) {
		return errors.Wrapf(err, "unmount %s", mp)
	}
	return nil
}

// mountedIDs lists the devices this process holds Mount references on.
func (p *Pool) mountedIDs() []string {
	p.lk.LockProcess()
	defer p.lk.UnlockProcess()
	ids := make([]string, 0, len(p.mounts))
	for id := range p.mounts {
		ids = append(ids, id)
	}
	return ids
}

// releaseAll drops every reference on id, unmounts and deactivates it.
func (p *Pool) releaseAll(ctx context.Context, id string) error {
	return p.withDevice(id, func(d store.Device) error { return p.releaseLocked(ctx, d) })
}
