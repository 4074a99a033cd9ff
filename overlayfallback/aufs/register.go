package aufs

import (
	"context"
	"os"
	"path/filepath"

	"github.com/pkg/errors"

	"github.com/thinctl/thinctl/driver"
	"github.com/thinctl/thinctl/overlayfallback"
)

func init() { driver.Register(Name, backend{}) }

// backend is aufs's driver.Backend, registered as "aufs". Its home is
// <root>/aufs.
type backend struct{}

// Probe reports whether aufs can run here: the kernel must list aufs in
// /proc/filesystems (after an attempt to load the module) and the process
// must be root to mount.
func (backend) Probe(root string) (string, error) {
	if err := Supported(); err != nil {
		return "", err
	}
	if os.Geteuid() != 0 {
		return "", errors.Wrap(driver.ErrPrerequisitesMissing, "aufs: mounting needs root (CAP_SYS_ADMIN)")
	}
	return "the kernel has aufs", nil
}

// Existing reports whether root holds an aufs home.
func (backend) Existing(root string) (string, bool) { return overlayfallback.ExistingHome(root, Name) }

// Open opens the aufs home under root.
func (backend) Open(_ context.Context, root string, opts driver.Options) (driver.Driver, error) {
	return New(filepath.Join(root, Name), opts)
}

// Init creates the aufs home under root and opens it; New checks first
// that the kernel can mount aufs.
func (backend) Init(_ context.Context, root string, opts driver.Options) (driver.Driver, error) {
	return New(filepath.Join(root, Name), opts)
}

var _ overlayfallback.Backend = (*Driver)(nil)

// Check reports layers whose parent is gone (their layers file names a
// layer that does not exist) and layers files that cannot be read. Neither
// can be repaired without changing what the layer shows, so Repair fixes
// nothing.
func (d *Driver) Check(ctx context.Context, _ driver.CheckOptions) (driver.CheckReport, error) {
	ids, err := d.ids()
	if err != nil {
		return driver.CheckReport{}, err
	}
	var problems []driver.Problem
	var layers []driver.LayerInfo
	for _, id := range ids {
		if err := ctx.Err(); err != nil {
			return driver.CheckReport{}, errors.Wrap(err, "aufs: check")
		}
		parent, err := d.parentOf(id)
		if err != nil {
			problems = append(problems, driver.Problem{Kind: "bad_layers_file", ID: id, Detail: err.Error()})
			continue
		}
		layers = append(layers, driver.LayerInfo{ID: id, Parent: parent})
	}
	return overlayfallback.Report(append(overlayfallback.CheckParents(layers), problems...)), nil
}

// Mount is Get; aufs takes no per-mount options.
func (d *Driver) Mount(ctx context.Context, id string, opts driver.MountOptions) (string, error) {
	if err := overlayfallback.NoMountOptions(Name, opts); err != nil {
		return "", err
	}
	return d.Get(ctx, id, opts.MountLabel)
}

// Unmount releases one reference this driver holds on layer id; the last
// one (or a call holding none) unmounts mnt/<id> whoever mounted it.
func (d *Driver) Unmount(ctx context.Context, id string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.Exists(id) {
		return errors.Wrapf(driver.ErrNotFound, "aufs: unmount %s", id)
	}
	if d.refs[id] > 1 {
		d.refs[id]--
		return nil
	}
	delete(d.refs, id)
	if !d.sys.mounted(d.mntPath(id)) {
		return nil
	}
	return errors.Wrapf(d.unmount(d.mntPath(id)), "aufs: unmount %s", id)
}
