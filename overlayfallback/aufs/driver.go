package aufs

import (
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"sync"

	"github.com/pkg/errors"
	"golang.org/x/sys/unix"

	"github.com/thinctl/thinctl/driver"
	"github.com/thinctl/thinctl/overlayfallback"
)

// Name is the backend's name in driver selection and Status.
const Name = "aufs"

// Driver is the aufs backend. Every layer is a directory under diff/; a
// layer's view is the aufs union of its directory (writable) over its
// ancestors' directories (read-only, whiteouts honoured). Diffs are
// computed from the diff/ directories directly, without mounting.
type Driver struct {
	// Pool gives the driver PoolStatus, GC, Up, Down and Destroy.
	overlayfallback.Pool

	home      string
	sys       sysOps
	pageSize  int
	dirperm1  bool
	backingFS string

	mu   sync.Mutex
	refs map[string]int // Get references per mounted layer
	// mntPrivate is set once mnt/ is a private mount; boundMnt while it
	// is a bind mount of itself that this driver made (see makeMntPrivate).
	mntPrivate, boundMnt bool

	// hookAfterRename, when set by a test, runs in Remove between the
	// renames and the deletion.
	hookAfterRename func()
}

// sysOps are the kernel calls that mount; tests replace them to record the
// calls a kernel without aufs could not serve.
type sysOps struct {
	mount   func(source, target, fstype string, flags uintptr, data string) error
	unmount func(target string, flags int) error
	// mounted reports whether target is an aufs mount point.
	mounted func(target string) bool
	// isMountPoint reports whether dir is the root of any mount.
	isMountPoint func(dir string) bool
}

// hostOps performs real mounts.
func hostOps() sysOps {
	return sysOps{
		mount:   unix.Mount,
		unmount: unix.Unmount,
		mounted: func(target string) bool {
			var st unix.Statfs_t
			return unix.Statfs(target, &st) == nil && int64(st.Type) == magicAufs
		},
		isMountPoint: isMountPoint,
	}
}

// isMountPoint compares the mount ids of dir and its parent (statx,
// Linux 5.8 and later); without mount ids it answers false, and the caller
// at worst stacks one more bind mount.
func isMountPoint(dir string) bool {
	id := func(p string) (uint64, bool) {
		var stx unix.Statx_t
		err := unix.Statx(unix.AT_FDCWD, p, unix.AT_SYMLINK_NOFOLLOW, unix.STATX_MNT_ID, &stx)
		return stx.Mnt_id, err == nil && stx.Mask&unix.STATX_MNT_ID != 0
	}
	a, okA := id(dir)
	b, okB := id(filepath.Dir(dir))
	return okA && okB && a != b
}

// New opens (creating if needed) an aufs driver home. It fails with an
// error wrapping driver.ErrNotSupported when the kernel cannot mount aufs,
// and with driver.ErrPrerequisitesMissing when the process is not root or
// home lies on a filesystem aufs cannot use. aufs takes no driver options;
// any in opts.StorageOpt is refused. Leftovers of interrupted removals are
// deleted.
func New(home string, opts driver.Options) (*Driver, error) {
	if k := firstKey(opts.StorageOpt); k != "" {
		return nil, errors.Errorf("aufs: unknown driver option %q: aufs takes no options (no size quota); drop it or choose devicemapper or overlay2", k)
	}
	if _, err := (backend{}).Probe(filepath.Dir(home)); err != nil {
		return nil, err
	}
	d, err := open(home, hostOps(), os.Getpagesize())
	if err != nil {
		return nil, err
	}
	d.dirperm1 = d.probeDirperm1()
	return d, nil
}

// open lays out home and sweeps leftovers; it needs no aufs.
func open(home string, sys sysOps, pageSize int) (*Driver, error) {
	if home == "" {
		return nil, errors.New("aufs: driver home is empty; pass a directory")
	}
	abs, err := filepath.Abs(home)
	if err != nil {
		return nil, errors.Wrapf(err, "aufs: driver home %s", home)
	}
	d := &Driver{home: abs, sys: sys, pageSize: pageSize, refs: map[string]int{}}
	d.Pool = overlayfallback.NewPool(d, abs)
	if err := os.MkdirAll(abs, 0o700); err != nil {
		return nil, errors.Wrapf(err, "aufs: create driver home %s", abs)
	}
	for _, sub := range []string{diffDir, layersDir, mntDir} {
		if err := os.MkdirAll(filepath.Join(abs, sub), 0o700); err != nil {
			return nil, errors.Wrapf(err, "aufs: create %s", filepath.Join(abs, sub))
		}
	}
	if _, err := planMount(d.diffPath("x"), nil, "", pageSize); err != nil {
		return nil, err
	}
	if d.backingFS, err = checkBackingFS(abs); err != nil {
		return nil, err
	}
	if err := d.sweep(); err != nil {
		return nil, err
	}
	return d, nil
}

// probeDirperm1 tells whether the loaded aufs module knows the dirperm1
// option (aufs 3.x and later; it checks permission of directories on the
// top branch only, which containers rely on) by mounting a scratch union
// with it.
func (d *Driver) probeDirperm1() bool {
	dir, err := os.MkdirTemp(d.home, ".dirperm1-probe")
	if err != nil {
		return false
	}
	defer os.RemoveAll(dir)
	br, mnt := filepath.Join(dir, "br"), filepath.Join(dir, "mnt")
	if os.Mkdir(br, 0o700) != nil || os.Mkdir(mnt, 0o700) != nil {
		return false
	}
	if err := d.sys.mount("none", mnt, "aufs", 0, "br:"+br+",dirperm1"); err != nil {
		return false
	}
	_ = d.sys.unmount(mnt, 0)
	return true
}

// Home returns the driver's home directory.
func (d *Driver) Home() string { return d.home }

// String returns "aufs".
func (d *Driver) String() string { return Name }

// Exists reports whether layer id exists: its layers file and its diff
// directory are both present.
func (d *Driver) Exists(id string) bool {
	if validateID(id) != nil {
		return false
	}
	if _, err := os.Stat(d.layersPath(id)); err != nil {
		return false
	}
	fi, err := os.Stat(d.diffPath(id))
	return err == nil && fi.IsDir()
}

// ids lists the layers, sorted.
func (d *Driver) ids() ([]string, error) {
	ents, err := os.ReadDir(filepath.Join(d.home, layersDir))
	if err != nil {
		return nil, errors.Wrap(err, "aufs: list layers")
	}
	var ids []string
	for _, e := range ents {
		if validateID(e.Name()) == nil && d.Exists(e.Name()) {
			ids = append(ids, e.Name())
		}
	}
	sort.Strings(ids)
	return ids, nil
}

// Status describes the driver: home, backing filesystem, layer count and
// whether dirperm1 is in use.
func (d *Driver) Status() []driver.KV {
	ids, _ := d.ids()
	return []driver.KV{
		{Key: "Root Dir", Value: d.home},
		{Key: "Backing Filesystem", Value: d.backingFS},
		{Key: "Dirs", Value: strconv.Itoa(len(ids))},
		{Key: "Dirperm1 Supported", Value: strconv.FormatBool(d.dirperm1)},
	}
}

// Metadata returns the paths of layer id (keys "diff", "mnt", "layers")
// and its parent ("parent", empty for a base layer).
func (d *Driver) Metadata(id string) (map[string]string, error) {
	if !d.Exists(id) {
		return nil, errors.Wrapf(driver.ErrNotFound, "aufs: layer %s", id)
	}
	parent, err := d.parentOf(id)
	if err != nil {
		return nil, err
	}
	return map[string]string{
		"diff":   d.diffPath(id),
		"mnt":    d.mntPath(id),
		"layers": d.layersPath(id),
		"parent": parent,
	}, nil
}

// List returns every layer sorted by id.
func (d *Driver) List() ([]driver.LayerInfo, error) {
	ids, err := d.ids()
	if err != nil {
		return nil, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]driver.LayerInfo, 0, len(ids))
	for _, id := range ids {
		parent, err := d.parentOf(id)
		if err != nil {
			return nil, err
		}
		info := driver.LayerInfo{ID: id, Parent: parent, Extra: map[string]string{"diff": d.diffPath(id)}}
		if d.refs[id] > 0 || d.sys.mounted(d.mntPath(id)) {
			info.Mounted, info.MountPath = true, d.mntPath(id)
		}
		info.Active = info.Mounted
		out = append(out, info)
	}
	return out, nil
}

// firstKey returns the alphabetically first key of m, "" when m is empty.
func firstKey(m map[string]string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	if len(keys) == 0 {
		return ""
	}
	return keys[0]
}
