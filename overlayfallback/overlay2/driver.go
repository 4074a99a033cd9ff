package overlay2

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"github.com/pkg/errors"
	"golang.org/x/sys/unix"

	"github.com/thinctl/thinctl/driver"
	"github.com/thinctl/thinctl/fs"
	"github.com/thinctl/thinctl/internal/atomicfile"
	"github.com/thinctl/thinctl/internal/failpoint"
	"github.com/thinctl/thinctl/overlayfallback"
	"github.com/thinctl/thinctl/units"
)

// Name is the name overlay2 registers under.
const Name = "overlay2"

// Driver is the overlay2 backend rooted at one home directory.
type Driver struct {
	// Pool gives the driver PoolStatus, GC, Up, Down and Destroy.
	overlayfallback.Pool

	home       string
	backingFS  string
	nativeDiff bool
	indexOff   bool
	quota      *quotaCtl // nil when sizes cannot be enforced
	quotaErr   error     // why quota is nil

	mu   sync.Mutex
	refs map[string]int // Get references per layer in this process
}

// New opens (creating when needed) an overlay2 home. It checks that the
// kernel has overlay, that the backing filesystem is usable and records
// file types in directory entries (d_type), deletes what interrupted
// removals left (see Remove), rebuilds lost l/ links, and
// finds out whether sizes can be enforced and whether diffs can be read
// natively. opts.StorageOpt is not used yet.
func New(home string, opts driver.Options) (*Driver, error) {
	if err := probe(home); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Join(home, linkDir), 0o700); err != nil {
		return nil, errors.Wrapf(err, "create overlay2 home %s", home)
	}
	abs, err := filepath.Abs(home)
	if err != nil {
		return nil, errors.Wrapf(err, "resolve %s", home)
	}
	fsName, err := backingFS(abs)
	if err != nil {
		return nil, err
	}
	ok, err := checkDType(abs)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, errNoDType(abs, fsName)
	}
	d := &Driver{home: abs, backingFS: fsName, refs: map[string]int{}}
	d.Pool = overlayfallback.NewPool(d, abs)
	_, d.indexOff = kernelParam("index")
	redirect, _ := kernelParam("redirect_dir")
	metacopy, _ := kernelParam("metacopy")
	d.nativeDiff = !redirect && !metacopy
	d.quota, d.quotaErr = newQuotaCtl(abs, fsName)
	if err := d.sweepRemoved(); err != nil {
		return nil, err
	}
	if err := d.repairLinks(); err != nil {
		return nil, err
	}
	return d, nil
}

// Home returns the driver's home directory.
func (d *Driver) Home() string { return d.home }

// String returns "overlay2".
func (d *Driver) String() string { return Name }

// Exists reports whether layer id exists.
func (d *Driver) Exists(id string) bool {
	if validID(id) != nil {
		return false
	}
	_, err := os.Stat(d.diffDir(id))
	return err == nil
}

// Create makes a read-only layer (it gets a committed marker).
func (d *Driver) Create(ctx context.Context, id, parent string, opts *driver.CreateOpts) error {
	return d.create(ctx, id, parent, opts, true)
}

// CreateReadWrite makes a writable layer.
func (d *Driver) CreateReadWrite(ctx context.Context, id, parent string, opts *driver.CreateOpts) error {
	return d.create(ctx, id, parent, opts, false)
}

func (d *Driver) create(ctx context.Context, id, parent string, opts *driver.CreateOpts, committed bool) (retErr error) {
	if err := validID(id); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return errors.Wrapf(err, "create overlay2 layer %s", id)
	}
	var size uint64
	if opts != nil {
		for k, v := range opts.StorageOpt {
			if k != "size" {
				return errors.Errorf("overlay2 does not know the storage option %q (known: size)", k)
			}
			s, err := units.ParseSize(v)
			if err != nil {
				return errors.Wrapf(err, "overlay2 layer %s", id)
			}
			size = s
		}
	}
	if size > 0 && d.quota == nil {
		return d.quotaErr
	}
	if _, err := os.Lstat(d.dir(id)); err == nil {
		return errors.Wrapf(driver.ErrExists, "overlay2 layer %s", id)
	}
	var lower string
	if parent != "" {
		if !d.Exists(parent) {
			return errors.Wrapf(driver.ErrNotFound, "parent layer %s of %s", parent, id)
		}
		plink, err := d.readLink(parent)
		if err != nil {
			return err
		}
		plower, err := d.readLower(parent)
		if err != nil {
			return err
		}
		lower = FormatLower(plink, plower)
	}
	// The layer is built in a staging directory and published with one
	// rename, so that a crash or power cut leaves either no layer or a
	// whole one — never a layer whose lower file is missing, which would
	// show its diff without its parents. A crash leaves the staging
	// directory (and a dangling l/ link), which Check with Repair removes.
	st, err := d.newStaging(id)
	if err != nil {
		return err
	}
	var link string
	defer func() {
		if retErr != nil {
			if link != "" {
				os.Remove(filepath.Join(d.home, linkDir, link))
			}
			os.RemoveAll(st.dir)
		}
		st.close()
	}()
	if size > 0 {
		if err := d.quota.setLimit(st.dir, size); err != nil {
			return err
		}
	}
	if err := os.Mkdir(filepath.Join(st.dir, diffDirName), 0o755); err != nil {
		return errors.Wrapf(err, "create diff directory for %s", id)
	}
	// The mode must be exact whatever the umask.
	if err := os.Chmod(filepath.Join(st.dir, diffDirName), 0o755); err != nil {
		return errors.Wrapf(err, "chmod diff directory of %s", id)
	}
	link, err = newLinkName()
	if err != nil {
		return err
	}
	if err := os.Symlink(filepath.Join("..", id, diffDirName), filepath.Join(d.home, linkDir, link)); err != nil {
		link = ""
		return errors.Wrapf(err, "create link for layer %s", id)
	}
	if err := writeFile(filepath.Join(st.dir, linkFileName), link); err != nil {
		return err
	}
	if lower != "" {
		if err := writeFile(filepath.Join(st.dir, lowerFileName), lower); err != nil {
			return err
		}
		if err := os.Mkdir(filepath.Join(st.dir, workDirName), 0o700); err != nil {
			return errors.Wrapf(err, "create work directory for %s", id)
		}
	}
	if committed {
		if err := writeFile(filepath.Join(st.dir, committedName), ""); err != nil {
			return err
		}
	}
	if err := atomicfile.SyncDir(st.dir); err != nil {
		return err
	}
	if err := atomicfile.SyncDir(filepath.Join(d.home, linkDir)); err != nil {
		return err
	}
	failpoint.Inject(failpoint.Overlay2BeforePublish)
	if hookBeforePublish != nil {
		hookBeforePublish(st.dir)
	}
	if err := os.Rename(st.dir, d.dir(id)); err != nil {
		if errors.Is(err, unix.EEXIST) || errors.Is(err, unix.ENOTEMPTY) {
			return errors.Wrapf(driver.ErrExists, "overlay2 layer %s", id)
		}
		return errors.Wrapf(err, "publish layer %s", id)
	}
	st.dir = d.dir(id) // published: the deferred cleanup must not touch it
	failpoint.Inject(failpoint.Overlay2AfterPublish)
	if err := atomicfile.SyncDir(d.home); err != nil {
		retErr = err
		os.RemoveAll(d.dir(id))
		return err
	}
	return nil
}

// hookBeforePublish, set by tests only, runs where the failpoint
// overlay2/create/before-publish is.
var hookBeforePublish func(staging string)

// Get mounts layer id (a parentless layer needs no mount: its diff
// directory is returned) and returns the path of its tree. Calls are
// reference counted; a mount left by another process is adopted.
func (d *Driver) Get(ctx context.Context, id, mountLabel string) (string, error) {
	if !d.Exists(id) {
		return "", errors.Wrapf(driver.ErrNotFound, "overlay2 layer %s", id)
	}
	if err := ctx.Err(); err != nil {
		return "", errors.Wrapf(err, "mount overlay2 layer %s", id)
	}
	lower, err := d.readLower(id)
	if err != nil {
		return "", err
	}
	if err := d.checkLayerDirs(id, lower); err != nil {
		return "", err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(lower) == 0 {
		d.refs[id]++
		return d.diffDir(id), nil
	}
	merged := d.mergedDir(id)
	if d.refs[id] > 0 {
		d.refs[id]++
		return merged, nil
	}
	if err := os.MkdirAll(merged, 0o700); err != nil {
		return "", errors.Wrapf(err, "create mount point for %s", id)
	}
	if mounted, err := fs.IsMounted(merged); err != nil {
		return "", err
	} else if mounted {
		d.refs[id] = 1
		return merged, nil
	}
	spec, err := buildMountData(d.home, id, lower, d.extraOptions(mountLabel))
	if err != nil {
		return "", errors.Wrapf(err, "mount overlay2 layer %s", id)
	}
	if err := mountOverlay(spec); err != nil {
		return "", errors.Wrapf(err, "mount overlay2 layer %s", id)
	}
	d.refs[id] = 1
	return merged, nil
}

// checkLayerDirs refuses to hand the kernel (which follows symlinks in
// lowerdir and upperdir) or a reader a layer directory that is not a real
// directory: id's diff, and each lower's diff its l/ link leads to (the
// link itself is a symlink by design, to ../<id>/diff).
func (d *Driver) checkLayerDirs(id string, lower []string) error {
	if err := driver.CheckLayerRoot(d.diffDir(id)); err != nil {
		return errors.Wrapf(err, "overlay2 layer %s", id)
	}
	for _, l := range lower {
		target, err := os.Readlink(filepath.Join(d.home, linkDir, l))
		if err != nil {
			continue // a lost link: the mount says so (New rebuilds links)
		}
		rest, ok := strings.CutPrefix(target, "../")
		lid, ok2 := strings.CutSuffix(rest, "/"+diffDirName)
		if !ok || !ok2 || validID(lid) != nil {
			return errors.Wrapf(driver.ErrBadLayerRoot, "overlay2 layer %s: its lower link %s points at %s, not at a layer's diff directory", id, l, driver.Quote(target))
		}
		if err := driver.CheckLayerRoot(d.diffDir(lid)); err != nil {
			return errors.Wrapf(err, "overlay2 layer %s, lower layer %s", id, lid)
		}
	}
	return nil
}

func (d *Driver) extraOptions(mountLabel string) []string {
	var extra []string
	if d.indexOff {
		extra = append(extra, "index=off")
	}
	if mountLabel != "" {
		extra = append(extra, `context="`+mountLabel+`"`)
	}
	return extra
}

// Put releases one reference taken by Get; the last one unmounts. Putting
// a layer this process never got unmounts a mount left by another process.
func (d *Driver) Put(ctx context.Context, id string) error {
	if !d.Exists(id) {
		return errors.Wrapf(driver.ErrNotFound, "overlay2 layer %s", id)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.refs[id] > 1 {
		d.refs[id]--
		return nil
	}
	delete(d.refs, id)
	merged := d.mergedDir(id)
	mounted, err := fs.IsMounted(merged)
	if err != nil || !mounted {
		return err
	}
	return d.unmount(id)
}

func (d *Driver) unmount(id string) error {
	merged := d.mergedDir(id)
	if err := unix.Unmount(merged, 0); err != nil {
		if !errors.Is(err, unix.EBUSY) {
			return errors.Wrapf(err, "unmount overlay2 layer %s", id)
		}
		if err := unix.Unmount(merged, unix.MNT_DETACH); err != nil {
			return errors.Wrapf(err, "lazily unmount busy overlay2 layer %s", id)
		}
	}
	// An empty mount point left behind would leak into new mount namespaces.
	os.Remove(merged)
	return nil
}

// Status reports the backing filesystem, d_type support, whether diffs are
// read natively, size quota support and the layer count.
func (d *Driver) Status() []driver.KV {
	ids, _ := d.layerIDs()
	quota := "true"
	if d.quota == nil {
		quota = "false"
	}
	return []driver.KV{
		{Key: "Backing Filesystem", Value: d.backingFS},
		{Key: "Supports d_type", Value: "true"},
		{Key: "Native Overlay Diff", Value: strconv.FormatBool(d.nativeDiff)},
		{Key: "Size Quota", Value: quota},
		{Key: "Layers", Value: strconv.Itoa(len(ids))},
	}
}

// Metadata returns LowerDir (colon-separated diff directories, nearest
// first; absent for a parentless layer), UpperDir, WorkDir and MergedDir.
func (d *Driver) Metadata(id string) (map[string]string, error) {
	if !d.Exists(id) {
		return nil, errors.Wrapf(driver.ErrNotFound, "overlay2 layer %s", id)
	}
	lower, err := d.readLower(id)
	if err != nil {
		return nil, err
	}
	m := map[string]string{"UpperDir": d.diffDir(id)}
	if len(lower) == 0 {
		m["MergedDir"] = d.diffDir(id)
		return m, nil
	}
	dirs, err := d.lowerDirs(lower)
	if err != nil {
		return nil, err
	}
	m["LowerDir"] = strings.Join(dirs, ":")
	m["WorkDir"] = d.workDir(id)
	m["MergedDir"] = d.mergedDir(id)
	return m, nil
}

// lowerDirs resolves link names to absolute diff directories.
func (d *Driver) lowerDirs(lower []string) ([]string, error) {
	out := make([]string, len(lower))
	for i, l := range lower {
		target, err := os.Readlink(filepath.Join(d.home, linkDir, l))
		if err != nil {
			return nil, errors.Wrapf(err, "resolve lower layer link %s", l)
		}
		out[i] = filepath.Join(d.home, linkDir, target)
	}
	return out, nil
}

// Cleanup unmounts every layer this driver mounted and drops the references.
func (d *Driver) Cleanup(ctx context.Context) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	var first error
	for id := range d.refs {
		if mounted, _ := fs.IsMounted(d.mergedDir(id)); mounted {
			if err := d.unmount(id); err != nil && first == nil {
				first = err
			}
		}
	}
	d.refs = map[string]int{}
	return first
}
