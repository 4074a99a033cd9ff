package aufs

import (
	"context"
	"os"

	"github.com/pkg/errors"

	"github.com/thinctl/thinctl/driver"
	"github.com/thinctl/thinctl/internal/atomicfile"
)

// Create makes layer id on top of parent ("" for a base layer): an empty
// diff/<id>, the mount point mnt/<id> and layers/<id> listing parent and
// parent's ancestors. aufs has no per-layer options: a storage option is
// refused with an error wrapping driver.ErrNotSupported.
func (d *Driver) Create(ctx context.Context, id, parent string, opts *driver.CreateOpts) error {
	if err := validateID(id); err != nil {
		return errors.Wrap(err, "aufs: create")
	}
	if err := ctx.Err(); err != nil {
		return errors.Wrapf(err, "aufs: create %s", id)
	}
	if opts == nil {
		opts = &driver.CreateOpts{}
	}
	if k := firstKey(opts.StorageOpt); k != "" {
		return errors.Wrapf(driver.ErrNotSupported, "aufs: create %s: storage option %q: aufs has no per-layer options (no size quota); drop the option or use devicemapper or overlay2 on xfs", id, k)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.Exists(id) {
		return errors.Wrapf(driver.ErrExists, "aufs: create %s", id)
	}
	var chain []string
	if parent != "" {
		if !d.Exists(parent) {
			return errors.Wrapf(driver.ErrNotFound, "aufs: create %s: parent %s", id, parent)
		}
		up, err := d.ancestors(parent)
		if err != nil {
			return err
		}
		chain = append([]string{parent}, up...)
	}
	// A stale half-created or half-removed entry under the same id would
	// make the fresh layer inherit files; clear it first.
	for _, p := range []string{d.diffPath(id), d.mntPath(id), d.diffPath(id) + removingSuffix, d.mntPath(id) + removingSuffix} {
		if err := os.RemoveAll(p); err != nil {
			return errors.Wrapf(err, "aufs: create %s: clear stale %s", id, p)
		}
	}
	undo := func() {
		os.RemoveAll(d.diffPath(id))
		os.RemoveAll(d.mntPath(id))
	}
	if err := os.Mkdir(d.diffPath(id), 0o755); err != nil {
		return errors.Wrapf(err, "aufs: create %s", id)
	}
	if err := os.Mkdir(d.mntPath(id), 0o755); err != nil {
		undo()
		return errors.Wrapf(err, "aufs: create %s", id)
	}
	// The layers file goes last: it is what makes the layer exist.
	if err := atomicfile.Write(d.layersPath(id), formatLayers(chain), atomicfile.Options{Perm: 0o644}); err != nil {
		undo()
		return errors.Wrapf(err, "aufs: create %s: write layers file", id)
	}
	return nil
}

// CreateReadWrite makes a writable layer id on top of parent. Every aufs
// layer is mounted with its own branch writable, so this is Create.
func (d *Driver) CreateReadWrite(ctx context.Context, id, parent string, opts *driver.CreateOpts) error {
	return d.Create(ctx, id, parent, opts)
}
