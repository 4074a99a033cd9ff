package overlayfallback

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/pkg/errors"
	"golang.org/x/sys/unix"

	"github.com/thinctl/thinctl/driver"
)

// The pool-level operations of a file-level backend (driver.PoolStatuser,
// Collector, Upper, Downer, Destroyer) are the same for overlay2 and aufs:
// their "pool" is a home directory of layer directories on a host
// filesystem. The backends embed a Pool, which implements them with the
// functions below.

// Pool implements driver.PoolStatuser, Collector, Upper, Downer and
// Destroyer for the file-level backend it is made for.
type Pool struct {
	d    Layers
	home string
}

// NewPool returns the pool operations of backend d, whose home is home.
func NewPool(d Layers, home string) Pool { return Pool{d: d, home: home} }

// PoolStatus reports the layers and the space of the filesystem holding
// the home (see PoolStatus).
func (p Pool) PoolStatus() (driver.PoolStatus, error) { return PoolStatus(p.d, p.home) }

// GC has nothing to collect: a file-level backend never defers a deletion.
func (p Pool) GC(context.Context) ([]string, error) { return nil, nil }

// Up has nothing to bring up: opening the backend repaired what it could.
func (p Pool) Up(context.Context) error { return nil }

// Down refuses while layers are mounted and otherwise releases what the
// backend holds (see Down).
func (p Pool) Down(ctx context.Context) error { return Down(ctx, p.d) }

// Destroy removes every layer (with force) and the home (see Destroy).
func (p Pool) Destroy(ctx context.Context, force bool) error { return Destroy(ctx, p.d, p.home, force) }

// Layers is what the shared operations need from a file-level backend.
type Layers interface {
	driver.Driver
	driver.Lister
	driver.Mounter
}

// Backend is everything a file-level backend's driver implements: the
// Driver with native diffs, listing and mounting, and the pool-level
// optional interfaces (Pool's, and a Check of its own).
type Backend interface {
	Layers
	driver.DiffDriver
	driver.PoolStatuser
	driver.Checker
	driver.Collector
	driver.Upper
	driver.Downer
	driver.Destroyer
}

// PoolStatus reports a home's layers and the space of the filesystem
// holding it: State "rw", Data* from statfs, Devices the layer count, and
// Details "Home" followed by the backend's own Status.
func PoolStatus(d Layers, home string) (driver.PoolStatus, error) {
	layers, err := d.List()
	if err != nil {
		return driver.PoolStatus{}, err
	}
	st := driver.PoolStatus{Driver: d.String(), State: "rw", Devices: len(layers)}
	var fs unix.Statfs_t
	if err := unix.Statfs(home, &fs); err != nil {
		return st, errors.Wrapf(err, "statfs %s", home)
	}
	st.DataTotal = fs.Blocks * uint64(fs.Bsize)
	if free := fs.Bavail * uint64(fs.Bsize); free <= st.DataTotal {
		st.DataUsed = st.DataTotal - free
	}
	st.Details = append([]driver.KV{{Key: "Home", Value: home}}, d.Status()...)
	return st, nil
}

// CheckParents reports every layer whose recorded parent is not a layer
// (kind "missing_parent"). Nothing of it can be repaired without losing
// data: the layer's view would change.
func CheckParents(layers []driver.LayerInfo) []driver.Problem {
	have := make(map[string]bool, len(layers))
	for _, l := range layers {
		have[l.ID] = true
	}
	var out []driver.Problem
	for _, l := range layers {
		if l.Parent != "" && !have[l.Parent] {
			out = append(out, driver.Problem{Kind: "missing_parent", ID: l.ID,
				Detail: "parent " + l.Parent + " does not exist"})
		}
	}
	return out
}

// Report turns problems into a CheckReport (Problems never nil), consistent
// when every problem was fixed (as a thin pool's check reports it).
func Report(problems []driver.Problem) driver.CheckReport {
	if problems == nil {
		problems = []driver.Problem{}
	}
	consistent := true
	for _, p := range problems {
		consistent = consistent && p.Fixed
	}
	return driver.CheckReport{Consistent: consistent, Problems: problems}
}

// Down refuses with driver.ErrBusy while layers are mounted (naming them)
// and otherwise releases what d holds: a file-level backend has nothing
// else to take down.
func Down(ctx context.Context, d Layers) error {
	layers, err := d.List()
	if err != nil {
		return err
	}
	var mounted []string
	for _, l := range layers {
		if l.Mounted {
			mounted = append(mounted, l.ID+" (mounted at "+l.MountPath+")")
		}
	}
	if len(mounted) > 0 {
		return errors.Wrapf(driver.ErrBusy, "%s layers still mounted: %s; unmount them first", d.String(), strings.Join(mounted, ", "))
	}
	return d.Cleanup(ctx)
}

// Destroy removes every layer (children before parents) and the home.
// Without force it refuses with driver.ErrHasChildren while layers exist.
// A cancelled ctx stops it between layers; what is left is a consistent,
// smaller home.
func Destroy(ctx context.Context, d Layers, home string, force bool) error {
	if err := ctx.Err(); err != nil {
		return errors.Wrapf(err, "destroy %s", home)
	}
	layers, err := d.List()
	if err != nil {
		return err
	}
	if len(layers) > 0 && !force {
		ids := make([]string, len(layers))
		for i, l := range layers {
			ids[i] = l.ID
		}
		what := fmt.Sprintf("%d layers exist", len(layers))
		if len(layers) == 1 {
			what = "1 layer exists"
		}
		return errors.Wrapf(driver.ErrHasChildren, "%s (%s); remove them first or destroy with force", what, strings.Join(ids, ", "))
	}
	for _, id := range ChildrenFirst(layers) {
		if err := ctx.Err(); err != nil {
			return errors.Wrapf(err, "destroy %s", home)
		}
		if err := d.Remove(ctx, id); err != nil {
			return err
		}
	}
	if err := d.Cleanup(ctx); err != nil {
		return err
	}
	return errors.Wrapf(os.RemoveAll(home), "remove %s driver home %s", d.String(), home)
}

// ChildrenFirst orders the layers' ids so that every layer comes before
// its parent.
func ChildrenFirst(layers []driver.LayerInfo) []string {
	parent := map[string]string{}
	for _, l := range layers {
		parent[l.ID] = l.Parent
	}
	depth := func(id string) int {
		n := 0
		for p := parent[id]; p != "" && n <= len(layers); p = parent[p] {
			n++
		}
		return n
	}
	ids := make([]string, 0, len(layers))
	for _, l := range layers {
		ids = append(ids, l.ID)
	}
	sort.SliceStable(ids, func(i, j int) bool { return depth(ids[i]) > depth(ids[j]) })
	return ids
}

// ExistingHome is a file-level backend's driver.Backend.Existing: root
// holds its state when the home <root>/<name> is a directory.
func ExistingHome(root, name string) (string, bool) {
	home := filepath.Join(root, name)
	if st, err := os.Stat(home); err == nil && st.IsDir() {
		return home + " already exists", true
	}
	return "", false
}

// NoMountOptions refuses per-mount options, which file-level backends do
// not take.
func NoMountOptions(name string, opts driver.MountOptions) error {
	if len(opts.Options) > 0 {
		return errors.Wrapf(driver.ErrNotSupported, "%s takes no mount options (%s)", name, strings.Join(opts.Options, ","))
	}
	return nil
}
