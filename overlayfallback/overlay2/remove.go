package overlay2

import (
	"context"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/pkg/errors"
	"golang.org/x/sys/unix"

	"github.com/thinctl/thinctl/driver"
	"github.com/thinctl/thinctl/fs"
	"github.com/thinctl/thinctl/internal/atomicfile"
	"github.com/thinctl/thinctl/internal/failpoint"
	"github.com/thinctl/thinctl/overlayfallback"
)

// removingPrefix starts the name a removed layer's directory is renamed to
// before its files are deleted: removingPrefix + id + "-" + a random
// suffix. Layer ids never start with ".", so listings skip it; New deletes
// what a crash left under such a name.
const removingPrefix = ".removing-"

// maxUnmountPasses bounds unmountUnder: each pass unmounts every mount it
// read from /proc/self/mountinfo, so only mounts made as fast as they go
// (or ones unmount(2) cannot reach by their path) use the passes up.
const maxUnmountPasses = 32

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

// Remove deletes layer id; ErrHasChildren when layers build on it.
//
// Every mount on or under the layer's directory goes first, whoever made
// it: its merged/ mount (this driver's Get references are dropped), a
// second mount stacked on it, a bind mount into it. A busy one is not
// detached lazily — a detached mount lives on unseen and keeps the backing
// filesystem busy — so Remove fails with driver.ErrBusy naming it and the
// layer stays as it was. Then the layer's directory is renamed away and the
// rename made durable: a crash after it leaves no half-deleted layer, only
// a ".removing-" directory that New deletes. Then its l/ link goes, then
// its files.
func (d *Driver) Remove(ctx context.Context, id string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := overlayfallback.CheckRemovable(ctx, Name, id, d.Exists(id), d.children); err != nil {
		return err
	}
	err := unmountUnder(d.dir(id))
	if mounted, _ := fs.IsMounted(d.mergedDir(id)); !mounted {
		// Whatever this driver mounted is gone: a later Get must mount
		// again, not count a reference on an empty directory.
		delete(d.refs, id)
	}
	if err != nil {
		return errors.Wrapf(err, "overlay2: remove layer %s (the layer is kept)", id)
	}
	link, linkErr := d.readLink(id)
	suffix, err := newLinkName()
	if err != nil {
		return errors.Wrapf(err, "overlay2: remove layer %s", id)
	}
	away := filepath.Join(d.home, removingPrefix+id+"-"+suffix)
	if err := unix.Rename(d.dir(id), away); err != nil {
		return errors.Wrapf(err, "overlay2: remove layer %s: rename %s to %s", id, d.dir(id), away)
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
			return errors.Wrapf(err, "overlay2: remove layer %s: its link %s/%s", id, linkDir, link)
		}
	}
	if err := deleteRemoved(away); err != nil {
		return errors.Wrapf(err, "overlay2: remove layer %s: the layer is gone, its files are left in %s (the next start deletes them)", id, away)
	}
	return nil
}

// hookAfterRemoveRename, set by tests only, runs where the failpoint
// overlay2/remove/after-rename is; an error stops Remove there, as a crash
// would.
var hookAfterRemoveRename func() error

// deleteRemoved deletes dir, a layer directory renamed away, unmounting
// first what was mounted in it since (os.RemoveAll does not stop at a mount
// point: it would delete the files of whatever filesystem is mounted there).
func deleteRemoved(dir string) error {
	if err := unmountUnder(dir); err != nil {
		return err
	}
	return errors.Wrapf(os.RemoveAll(dir), "delete %s", dir)
}

// unmountUnder unmounts every mount on dir or below it in this mount
// namespace, deepest first, and reads /proc/self/mountinfo again until it
// shows none there. A busy mount is an error wrapping driver.ErrBusy that
// names its mount point; it is left mounted, and so is every mount the
// pass had not reached yet.
func unmountUnder(dir string) error {
	real, err := filepath.EvalSymlinks(dir)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		return errors.Wrapf(err, "resolve %s", dir)
	}
	for pass := 0; ; pass++ {
		points, err := mountsUnder(real)
		if err != nil {
			return err
		}
		if len(points) == 0 {
			return nil
		}
		if pass == maxUnmountPasses {
			return errors.Errorf("%s still has mounts after %d passes of unmounting: %s", dir, pass, strings.Join(points, ", "))
		}
		for _, p := range points {
			err := unix.Unmount(p, unix.UMOUNT_NOFOLLOW)
			switch {
			case err == nil, errors.Is(err, unix.EINVAL), errors.Is(err, unix.ENOENT):
				// Unmounted, or gone or hidden already: the next pass sees.
			case errors.Is(err, unix.EBUSY):
				return errors.Wrapf(driver.ErrBusy, "%s is busy (a process has a file open or its working directory there); stop it and try again", p)
			default:
				return errors.Wrapf(err, "unmount %s", p)
			}
		}
	}
}

// mountsUnder lists the mount points at dir (symlink-free) or below it,
// deepest first; a point mounted over more than once is listed once per
// mount.
func mountsUnder(dir string) ([]string, error) {
	mounts, err := fs.Mounts()
	if err != nil {
		return nil, err
	}
	var out []string
	for _, m := range mounts {
		if m.MountPoint == dir || strings.HasPrefix(m.MountPoint, dir+"/") {
			out = append(out, m.MountPoint)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return strings.Count(out[i], "/") > strings.Count(out[j], "/") })
	return out, nil
}

// sweepRemoved deletes what removals a crash interrupted left: directories
// named removingPrefix+id+"-…", whose layers are already gone, and the l/
// link each one's link file names unless a layer still uses that name. A
// directory that cannot be deleted now (a busy mount in it) stays; Check
// reports it and its repair tries again.
func (d *Driver) sweepRemoved() error {
	left, err := d.removedLeftovers()
	if err != nil {
		return err
	}
	for _, p := range left {
		d.deleteLeftover(p)
	}
	return nil
}

// removedLeftovers lists the directories interrupted removals left in home.
func (d *Driver) removedLeftovers() ([]string, error) {
	ents, err := os.ReadDir(d.home)
	if err != nil {
		return nil, errors.Wrapf(err, "list %s", d.home)
	}
	var out []string
	for _, e := range ents {
		if e.IsDir() && strings.HasPrefix(e.Name(), removingPrefix) {
			out = append(out, filepath.Join(d.home, e.Name()))
		}
	}
	return out, nil
}

// deleteLeftover deletes p, a directory an interrupted removal left, and
// the l/ link its link file names unless that name is still a layer's.
func (d *Driver) deleteLeftover(p string) error {
	if b, err := os.ReadFile(filepath.Join(p, linkFileName)); err == nil {
		if link := strings.TrimSpace(string(b)); validLinkName(link) {
			lp := filepath.Join(d.home, linkDir, link)
			target, err := os.Readlink(lp)
			owner := filepath.Base(filepath.Dir(target))
			if err == nil && (validID(owner) != nil || !d.linkedAs(owner, link)) {
				os.Remove(lp)
			}
		}
	}
	return deleteRemoved(p)
}

// linkedAs reports whether layer id exists with link name link.
func (d *Driver) linkedAs(id, link string) bool {
	got, err := d.readLink(id)
	return err == nil && got == link && d.Exists(id)
}

// checkRemoved reports (and with repair deletes) the directories
// interrupted removals left that New could not delete.
func (d *Driver) checkRemoved(repair bool) ([]driver.Problem, error) {
	left, err := d.removedLeftovers()
	if err != nil {
		return nil, err
	}
	var problems []driver.Problem
	for _, p := range left {
		pr := driver.Problem{Kind: "interrupted_remove", ID: leftoverID(p, removingPrefix),
			Detail: p + " holds the files of the removed layer, not yet deleted"}
		if repair {
			if err := d.deleteLeftover(p); err != nil {
				pr.Detail += ": " + err.Error()
			} else {
				pr.Fixed = true
			}
		}
		problems = append(problems, pr)
	}
	return problems, nil
}
