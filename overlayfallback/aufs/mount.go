package aufs

import (
	"context"
	"os"
	"path/filepath"

	"github.com/pkg/errors"
	"golang.org/x/sys/unix"

	"github.com/thinctl/thinctl/driver"
)

// Get mounts layer id at mnt/<id>, the aufs union of diff/<id> (writable)
// over its ancestors' diff directories (read-only, whiteouts honoured), and
// returns that path. Calls are reference counted: only the first mounts.
func (d *Driver) Get(ctx context.Context, id, mountLabel string) (string, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.Exists(id) {
		return "", errors.Wrapf(driver.ErrNotFound, "aufs: get %s", id)
	}
	if err := ctx.Err(); err != nil {
		return "", errors.Wrapf(err, "aufs: get %s", id)
	}
	if err := driver.CheckLayerRoot(d.diffPath(id)); err != nil {
		return "", errors.Wrapf(err, "aufs: get %s", id)
	}
	target := d.mntPath(id)
	if d.refs[id] > 0 {
		d.refs[id]++
		return target, nil
	}
	if !d.sys.mounted(target) {
		if err := d.mountLayer(id, mountLabel); err != nil {
			return "", err
		}
	}
	d.refs[id] = 1
	return target, nil
}

// Put releases one reference taken by Get; the last one unmounts.
func (d *Driver) Put(ctx context.Context, id string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	n, held := d.refs[id]
	if !held {
		if !d.Exists(id) {
			return errors.Wrapf(driver.ErrNotFound, "aufs: put %s", id)
		}
		return errors.Errorf("aufs: put %s: layer is not mounted by this driver; call Get first", id)
	}
	if n > 1 {
		d.refs[id] = n - 1
		return nil
	}
	if err := d.unmount(d.mntPath(id)); err != nil {
		return errors.Wrapf(err, "aufs: put %s", id)
	}
	delete(d.refs, id)
	return nil
}

// Cleanup unmounts every layer this driver mounted, any aufs mount left
// under mnt/ by an earlier process, and the private bind mount of mnt/
// the driver made. The driver stays usable: the next Get mounts again.
func (d *Driver) Cleanup(ctx context.Context) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	ents, err := os.ReadDir(filepath.Join(d.home, mntDir))
	if err != nil {
		return errors.Wrap(err, "aufs: cleanup")
	}
	var first error
	for _, e := range ents {
		p := filepath.Join(d.home, mntDir, e.Name())
		if !d.sys.mounted(p) {
			delete(d.refs, e.Name())
			continue
		}
		if err := d.unmount(p); err != nil && first == nil {
			first = errors.Wrap(err, "aufs: cleanup")
			continue
		}
		delete(d.refs, e.Name())
	}
	if first == nil && d.boundMnt {
		if err := d.unmount(filepath.Join(d.home, mntDir)); err != nil {
			return errors.Wrap(err, "aufs: cleanup")
		}
		d.boundMnt, d.mntPrivate = false, false
	}
	return first
}

// makeMntPrivate makes mnt/ a private mount, bind-mounting it onto itself
// first unless it already is a mount point. Layer mounts then do not
// propagate into other mount namespaces (systemd makes / shared), where
// copies nobody unmounts would keep the branches busy and make removal
// fail.
func (d *Driver) makeMntPrivate() error {
	dir := filepath.Join(d.home, mntDir)
	if !d.sys.isMountPoint(dir) {
		if err := d.sys.mount(dir, dir, "", unix.MS_BIND, ""); err != nil {
			return errors.Wrapf(err, "aufs: bind-mount %s onto itself", dir)
		}
		d.boundMnt = true
	}
	if err := d.sys.mount("", dir, "", unix.MS_PRIVATE, ""); err != nil {
		return errors.Wrapf(err, "aufs: make %s a private mount", dir)
	}
	d.mntPrivate = true
	return nil
}

// mountLayer mounts id's branches following planMount: one mount, then
// remounts appending the branches that did not fit one page.
func (d *Driver) mountLayer(id, mountLabel string) error {
	chain, err := d.ancestors(id)
	if err != nil {
		return err
	}
	ro := make([]string, len(chain))
	for i, a := range chain {
		if !d.Exists(a) {
			return errors.Wrapf(driver.ErrNotFound, "aufs: get %s: ancestor %s is missing", id, a)
		}
		ro[i] = d.diffPath(a)
	}
	plan, err := planMount(d.diffPath(id), ro, branchOpts(d.dirperm1, mountLabel), d.pageSize)
	if err != nil {
		return errors.Wrapf(err, "aufs: get %s", id)
	}
	if !d.mntPrivate {
		if err := d.makeMntPrivate(); err != nil {
			return err
		}
	}
	target := d.mntPath(id)
	if err := os.MkdirAll(target, 0o755); err != nil { // swept or lost: recreate
		return errors.Wrapf(err, "aufs: get %s: mount point", id)
	}
	if err := d.sys.mount("none", target, "aufs", 0, plan.First); err != nil {
		return errors.Wrapf(err, "aufs: get %s: mount %d branches (is the home on a filesystem aufs accepts?)", id, len(planBranches(mountPlan{First: plan.First})))
	}
	for i, batch := range plan.Appends {
		if err := d.sys.mount("none", target, "aufs", unix.MS_REMOUNT, batch); err != nil {
			_ = d.unmount(target)
			return errors.Wrapf(err, "aufs: get %s: append branch batch %d of %d (%d layers in all; aufs built with CONFIG_AUFS_BRANCH_MAX_127 stops at 127 branches)",
				id, i+1, len(plan.Appends), len(chain)+1)
		}
	}
	return nil
}

// unmount detaches target, lazily when it is busy.
func (d *Driver) unmount(target string) error {
	err := d.sys.unmount(target, 0)
	if errors.Is(err, unix.EBUSY) {
		err = d.sys.unmount(target, unix.MNT_DETACH)
	}
	if err != nil && !errors.Is(err, unix.EINVAL) { // EINVAL: not a mount point
		return errors.Wrapf(err, "unmount %s", target)
	}
	return nil
}
