package aufs

import (
	"context"
	"os"
	"path/filepath"
	"strings"

	"github.com/pkg/errors"
	"github.com/thinctl/thinctl/overlayfallback"
)

// Remove deletes layer id, unmounting it first (whoever mounted it; this
// driver's Get references go with it). A layer other layers build on is
// refused with driver.ErrHasChildren. mnt/<id> and diff/<id> are first renamed to
// <id>-removing, then the layers file goes, then the renamed trees are
// deleted: a crash at any point leaves either the whole layer or only
// -removing leftovers, which New sweeps.
func (d *Driver) Remove(ctx context.Context, id string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := overlayfallback.CheckRemovable(ctx, Name, id, d.Exists(id), d.children); err != nil {
		return err
	}
	if d.sys.mounted(d.mntPath(id)) {
		// Mounted by this driver (its references go with the layer) or
		// left mounted by an earlier process.
		if err := d.unmount(d.mntPath(id)); err != nil {
			return errors.Wrapf(err, "aufs: remove %s", id)
		}
	}
	delete(d.refs, id)
	// The mount point goes first: a crash right after it leaves a whole
	// layer whose mount point Get recreates.
	for _, p := range []string{d.mntPath(id), d.diffPath(id)} {
		if err := renameAway(p); err != nil {
			return errors.Wrapf(err, "aufs: remove %s", id)
		}
	}
	if d.hookAfterRename != nil {
		d.hookAfterRename()
	}
	if err := os.Remove(d.layersPath(id)); err != nil && !os.IsNotExist(err) {
		return errors.Wrapf(err, "aufs: remove %s: layers file", id)
	}
	for _, p := range []string{d.diffPath(id), d.mntPath(id)} {
		if err := os.RemoveAll(p + removingSuffix); err != nil {
			return errors.Wrapf(err, "aufs: remove %s: delete %s (it will be swept on the next start)", id, p+removingSuffix)
		}
	}
	return nil
}

// renameAway renames p to p-removing, replacing an older leftover of the
// same name; a missing p is fine.
func renameAway(p string) error {
	if _, err := os.Lstat(p); os.IsNotExist(err) {
		return nil
	}
	if err := os.RemoveAll(p + removingSuffix); err != nil {
		return err
	}
	return os.Rename(p, p+removingSuffix)
}

// children lists the layers whose ancestor chain contains id.
func (d *Driver) children(id string) ([]string, error) {
	ids, err := d.ids()
	if err != nil {
		return nil, err
	}
	var out []string
	for _, other := range ids {
		if other == id {
			continue
		}
		chain, err := d.ancestors(other)
		if err != nil {
			return nil, err
		}
		for _, a := range chain {
			if a == id {
				out = append(out, other)
				break
			}
		}
	}
	return out, nil
}

// sweep deletes what interrupted removals left: every <id>-removing entry
// under diff/ and mnt/, and the layers file of a layer whose diff directory
// was already renamed away.
func (d *Driver) sweep() error {
	for _, sub := range []string{diffDir, mntDir} {
		dir := filepath.Join(d.home, sub)
		ents, err := os.ReadDir(dir)
		if err != nil {
			return errors.Wrapf(err, "aufs: sweep %s", dir)
		}
		for _, e := range ents {
			name := e.Name()
			if !strings.HasSuffix(name, removingSuffix) {
				continue
			}
			p := filepath.Join(dir, name)
			if sub == mntDir && d.sys.mounted(p) {
				if err := d.unmount(p); err != nil {
					return errors.Wrapf(err, "aufs: sweep %s", p)
				}
			}
			if err := os.RemoveAll(p); err != nil {
				return errors.Wrapf(err, "aufs: sweep %s", p)
			}
			id := strings.TrimSuffix(name, removingSuffix)
			if sub == diffDir && validateID(id) == nil {
				if _, err := os.Stat(d.diffPath(id)); os.IsNotExist(err) {
					if d.hookAfterRename != nil {
						d.hookAfterRename()
					}
					if err := os.Remove(d.layersPath(id)); err != nil && !os.IsNotExist(err) {
						return errors.Wrapf(err, "aufs: sweep layers file of %s", id)
					}
				}
			}
		}
	}
	return nil
}
