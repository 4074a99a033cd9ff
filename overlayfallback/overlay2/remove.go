package overlay2

import (
	"context"
	"os"
	"path/filepath"
	"strings"

	"github.com/pkg/errors"
	"golang.org/x/sys/unix"

	"github.com/thinctl/thinctl/fs"
	"github.com/thinctl/thinctl/internal/atomicfile"
	"github.com/thinctl/thinctl/internal/failpoint"
	"github.com/thinctl/thinctl/overlayfallback"
)

// removingPrefix starts the name a removed layer's directory is renamed to
// before its files are deleted. Layer ids never start with ".", so listings
// skip it, and New deletes what a crash left under such a name.
const removingPrefix = ".removing-"

// children lists the layers whose nearest parent is id.
func (d *Driver) children(id string) ([]string, error) {
	link, err := d.readLink(id)
	if err != nil {
		return nil, err
	}
	ids, err := d.layerIDs()
	if err != nil {
		return nil, err
	}
	var out []string
	for _, other := range ids {
		if other == id {
			continue
		}
		lower, err := d.readLower(other)
		if err != nil {
			return nil, err
		}
		if len(lower) > 0 && lower[0] == link {
			out = append(out, other)
		}
	}
	return out, nil
}

// Remove deletes layer id, unmounting it first (whoever mounted it, and
// dropping this driver's Get references); ErrHasChildren when layers build
// on it. The layer's directory is first renamed away in one step (a crash
// after it leaves no half-deleted layer, only a ".removing-" directory that
// New deletes), then its l/ link goes, then its files.
func (d *Driver) Remove(ctx context.Context, id string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := overlayfallback.CheckRemovable(ctx, Name, id, d.Exists(id), d.children); err != nil {
		return err
	}
	delete(d.refs, id)
	if mounted, _ := fs.IsMounted(d.mergedDir(id)); mounted {
		if err := d.unmount(id); err != nil {
			return errors.Wrapf(err, "overlay2: remove layer %s", id)
		}
	}
	link, linkErr := d.readLink(id)
	// MkdirTemp picks a fresh name; rename(2) replaces the empty directory
	// (os.Rename refuses any existing directory).
	away, err := os.MkdirTemp(d.home, removingPrefix+id+"-")
	if err == nil {
		err = unix.Rename(d.dir(id), away)
	}
	if err != nil {
		if away != "" {
			os.Remove(away)
		}
		return errors.Wrapf(err, "overlay2: remove layer %s", id)
	}
	// The rename reaches the disk before the link goes: a power cut must
	// not leave the layer in place without its l/ link.
	if err := atomicfile.SyncDir(d.home); err != nil {
		return errors.Wrapf(err, "overlay2: remove layer %s", id)
	}
	failpoint.Inject(failpoint.Overlay2RemoveAfterRename)
	if hookAfterRemoveRename != nil {
		if err := hookAfterRemoveRename(); err != nil {
			return err
		}
	}
	if linkErr == nil {
		if err := os.Remove(filepath.Join(d.home, linkDir, link)); err != nil && !os.IsNotExist(err) {
			return errors.Wrapf(err, "overlay2: remove layer %s: its link", id)
		}
	}
	if err := os.RemoveAll(away); err != nil {
		return errors.Wrapf(err, "overlay2: remove layer %s: delete %s (the next start deletes it)", id, away)
	}
	return nil
}

// sweepRemoved deletes what removals a crash interrupted left: directories
// named removingPrefix+id+"-…", whose layers are already gone, and the l/
// link such a directory's link file names when it resolves to nothing.
func (d *Driver) sweepRemoved() error {
	ents, err := os.ReadDir(d.home)
	if err != nil {
		return errors.Wrapf(err, "list %s", d.home)
	}
	for _, e := range ents {
		if !e.IsDir() || !strings.HasPrefix(e.Name(), removingPrefix) {
			continue
		}
		p := filepath.Join(d.home, e.Name())
		if b, err := os.ReadFile(filepath.Join(p, linkFileName)); err == nil && validLinkName(strings.TrimSpace(string(b))) {
			lp := filepath.Join(d.home, linkDir, strings.TrimSpace(string(b)))
			if _, err := os.Stat(lp); os.IsNotExist(err) {
				os.Remove(lp)
			}
		}
		if err := os.RemoveAll(p); err != nil {
			return errors.Wrapf(err, "delete %s, left by an interrupted remove", p)
		}
	}
	return nil
}

// hookAfterRemoveRename, set by tests only, runs where the failpoint
// overlay2/remove/after-rename is; an error stops Remove there, as a crash
// would.
var hookAfterRemoveRename func() error
