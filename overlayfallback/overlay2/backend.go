package overlay2

import (
	"context"
	"os"
	"path/filepath"

	"github.com/pkg/errors"

	"github.com/thinctl/thinctl/driver"
	"github.com/thinctl/thinctl/overlayfallback"
)

func init() { driver.Register(Name, Backend{}) }

// Backend is overlay2's driver.Backend, registered as "overlay2". Its home
// is <root>/overlay2.
type Backend struct{}

// Probe reports, creating nothing, whether overlay2 can run with its home
// under root: the kernel has overlay and root's filesystem can be an upper
// layer.
func (Backend) Probe(root string) (string, error) {
	if err := probe(filepath.Join(root, Name)); err != nil {
		return "", err
	}
	return "the kernel has overlay", nil
}

// Existing reports whether root holds an overlay2 home.
func (Backend) Existing(root string) (string, bool) { return overlayfallback.ExistingHome(root, Name) }

// Open opens the overlay2 home under root.
func (Backend) Open(_ context.Context, root string, opts driver.Options) (driver.Driver, error) {
	return New(filepath.Join(root, Name), opts)
}

// Init creates the overlay2 home under root (checking first that the
// kernel and the filesystem can run overlay2) and opens it.
func (Backend) Init(_ context.Context, root string, opts driver.Options) (driver.Driver, error) {
	if err := probe(root); err != nil {
		return nil, err
	}
	return New(filepath.Join(root, Name), opts)
}

var _ overlayfallback.Backend = (*Driver)(nil)

// Check reports layers whose parent is gone, layers whose lower chain names
// a link that resolves to no layer directory, what an interrupted create
// left (a staging directory; the layer itself was never published) and what
// an interrupted remove left that New could not delete (a ".removing-"
// directory; the layer itself is gone). Repair removes the last two; the
// others cannot be repaired without changing what a layer shows.
func (d *Driver) Check(ctx context.Context, opts driver.CheckOptions) (driver.CheckReport, error) {
	layers, err := d.List()
	if err != nil {
		return driver.CheckReport{}, err
	}
	problems := overlayfallback.CheckParents(layers)
	staged, err := d.checkStaging(opts.Repair)
	if err != nil {
		return driver.CheckReport{}, err
	}
	problems = append(problems, staged...)
	removed, err := d.checkRemoved(opts.Repair)
	if err != nil {
		return driver.CheckReport{}, err
	}
	problems = append(problems, removed...)
	for _, l := range layers {
		if err := ctx.Err(); err != nil {
			return driver.CheckReport{}, errors.Wrap(err, "check overlay2")
		}
		lower, err := d.readLower(l.ID)
		if err != nil {
			problems = append(problems, driver.Problem{Kind: "bad_lower", ID: l.ID, Detail: err.Error()})
			continue
		}
		for _, link := range lower {
			if _, err := os.Stat(filepath.Join(d.home, linkDir, link)); err != nil {
				problems = append(problems, driver.Problem{Kind: "broken_lower", ID: l.ID,
					Detail: "lower layer link " + linkDir + "/" + link + " resolves to no layer"})
				break
			}
		}
	}
	return overlayfallback.Report(problems), nil
}

// Mount is Get; overlay2 takes no per-mount options.
func (d *Driver) Mount(ctx context.Context, id string, opts driver.MountOptions) (string, error) {
	if err := overlayfallback.NoMountOptions(Name, opts); err != nil {
		return "", err
	}
	return d.Get(ctx, id, opts.MountLabel)
}

// Unmount is Put: it releases one reference this driver holds on layer
// id, and the last one (or a call holding none) unmounts the merged
// directory whoever mounted it.
func (d *Driver) Unmount(ctx context.Context, id string) error { return d.Put(ctx, id) }
