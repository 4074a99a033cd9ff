package thinpool

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/pkg/errors"

	"github.com/thinctl/thinctl/dm"
	"github.com/thinctl/thinctl/fs"
	"github.com/thinctl/thinctl/internal/failpoint"
	"github.com/thinctl/thinctl/internal/revert"
	"github.com/thinctl/thinctl/thinpool/internal/bytesize"
	"github.com/thinctl/thinctl/thinpool/internal/devnode"
	"github.com/thinctl/thinctl/thinpool/internal/dmname"
	"github.com/thinctl/thinctl/thinpool/internal/dmthin"
	"github.com/thinctl/thinctl/thinpool/internal/hostfs"
	"github.com/thinctl/thinctl/thinpool/internal/store"
)

// Pool is an open thin pool rooted at a state directory. Its methods are
// safe for concurrent use; writers of one root are serialised across
// processes by a lock file.
type Pool struct {
	root string // absolute
	dir  string // <root>/devicemapper
	// store holds the device records, the journal and the transactions;
	// Pool reaches them only through its methods (package store).
	store *store.Store
	dm    *dm.Client
	lk    *store.Lock

	// Guarded by lk.
	cfg      store.Config
	mounts   map[string]int // Mount references taken by this process
	progress func(step string, fraction float64)
	// log is told the background decisions (Options.Logger; never nil).
	log *slog.Logger

	// ret runs the space return of removed devices in the background.
	ret returner

	// tuning is what a pool watcher set in the pool table (guarded by lk).
	tuning TableTuning
}

// Names under the root that are the pool's, not the store's (see
// docs/registry.md).
const (
	stateDirName = "devicemapper" // <root>/devicemapper: the store's files, the loop files
	dataFileName = "data"
	metaFileName = "metadata"
	mountDirName = "mnt" // <root>/mnt: a mount point per mounted device
)

func (p *Pool) report(step string, fraction float64) {
	if p.progress != nil {
		p.progress(step, fraction)
	}
}

// stateDir returns <root>/devicemapper for an absolute root.
func stateDir(root string) string { return filepath.Join(root, stateDirName) }

// isNotExist reports whether path is known not to exist.
func isNotExist(path string) bool {
	_, err := os.Stat(path)
	return os.IsNotExist(err)
}

// Exists reports whether root holds an initialized pool.
func Exists(root string) bool {
	_, err := os.Stat(filepath.Join(root, stateDirName, store.PoolFileName))
	return err == nil
}

// MountPath returns where Mount mounts device id.
func (p *Pool) MountPath(id string) string { return filepath.Join(p.root, mountDirName, id) }

// Root returns the pool's state directory.
func (p *Pool) Root() string { return p.root }

// Name returns the pool's device-mapper name.
func (p *Pool) Name() string {
	p.lk.LockProcess()
	defer p.lk.UnlockProcess()
	return p.cfg.PoolName
}

func makeDirs(root string) error {
	for _, d := range []string{root, stateDir(root), filepath.Join(root, mountDirName)} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return errors.Wrapf(err, "create directory %s", d)
		}
		if err := os.Chmod(d, 0o700); err != nil {
			return errors.Wrapf(err, "chmod %s", d)
		}
	}
	return nil
}

// removeEmptyState removes what makeDirs and the lock made under root
// when a first Init failed, so a refused Init leaves the root as it was.
// Directories that are not empty stay.
func removeEmptyState(root string) {
	dir := stateDir(root)
	os.Remove(filepath.Join(dir, store.LockFileName))
	store.RemoveFiles(dir)
	os.Remove(dir)
	os.Remove(filepath.Join(root, mountDirName))
}

// newPool builds the in-memory Pool of an absolute root and takes its lock;
// c nil means dm.Default(), log nil logs nothing.
func newPool(root string, c *dm.Client, progress func(string, float64), log *slog.Logger) (*Pool, error) {
	// Mount points are compared with /proc/self/mountinfo, which shows
	// paths without symlinks.
	if real, err := filepath.EvalSymlinks(root); err == nil {
		root = real
	}
	dir := stateDir(root)
	lk, err := store.OpenLock(filepath.Join(dir, store.LockFileName))
	if err != nil {
		return nil, err
	}
	if c == nil {
		if c, err = dm.Default(); err != nil {
			lk.Close()
			return nil, errors.Wrap(err, "device-mapper")
		}
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Pool{root: root, dir: dir, store: store.New(dir, lk), dm: c, lk: lk,
		mounts: map[string]int{}, progress: progress, log: log}, nil
}

// Init creates a new pool under root/devicemapper and its base device.
func Init(ctx context.Context, root string, opts Options) (*Pool, error) {
	if err := ctx.Err(); err != nil {
		return nil, errors.Wrapf(err, "init %s", root)
	}
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	if root, err = filepath.Abs(root); err != nil {
		return nil, errors.Wrap(err, "root")
	}
	if Exists(root) {
		return nil, errors.Wrapf(ErrAlreadyInit, "%s", filepath.Join(stateDir(root), store.PoolFileName))
	}
	fresh := !dirExists(stateDir(root))
	if err := makeDirs(root); err != nil {
		return nil, err
	}
	p, err := newPool(root, o.DM, o.Progress, o.Logger)
	if err != nil {
		return nil, err
	}
	if err := p.lk.Lock(); err != nil {
		p.lk.Close()
		return nil, err
	}
	defer p.lk.Unlock()
	if Exists(root) { // another process won the race
		p.lk.CloseLocked()
		return nil, errors.Wrapf(ErrAlreadyInit, "%s", p.store.ConfigPath())
	}

	// From here a failure leaves the root as it was: undone even when ctx
	// ended (that is what stopped us), before the lock is let go.
	var undo revert.Stack
	defer undo.Unwind()
	if fresh {
		undo.Push(func() { removeEmptyState(root) })
	}
	undo.Push(func() { p.lk.CloseLocked() })
	undo.Push(func() { p.initCleanup(context.WithoutCancel(ctx), o) })
	if err := p.initLocked(ctx, o); err != nil {
		return nil, err
	}
	undo.Keep()
	return p, nil
}

func (p *Pool) initLocked(ctx context.Context, o Options) error {
	key, err := dmname.RootKey(p.root)
	if err != nil {
		return err
	}
	p.cfg = store.Config{
		Version: store.Version, Key: key, PoolName: dmname.Pool(key),
		BlockSize: o.BlockSize, NoDiscard: o.NoDiscard, MinFreeSpace: o.MinFreeSpace,
		Filesystem: o.Filesystem, MkfsArgs: o.MkfsArgs, MountOptions: o.MountOptions,
		BaseSize: o.BaseSize, Created: time.Now().UTC(),
	}
	switch {
	case o.ThinPoolDevice != "":
		if err := p.adoptExternalPool(o.ThinPoolDevice); err != nil {
			return err
		}
	case o.DataDevice != "":
		p.cfg.DataDevice, p.cfg.MetadataDevice = o.DataDevice, o.MetadataDevice
		if err := p.removeLeftoverPool(ctx); err != nil {
			return err
		}
		if err := hostfs.ZeroHead(o.MetadataDevice); err != nil {
			return err
		}
	default:
		p.cfg.DataFile, p.cfg.MetadataFile = dataFileName, metaFileName
		p.cfg.DataSize, p.cfg.MetadataSize = bytesize.RoundDown(o.DataSize, o.BlockSize), bytesize.RoundUp(o.MetadataSize, 4*KiB)
		if err := p.removeLeftoverPool(ctx); err != nil {
			return err
		}
		p.report("creating sparse data and metadata files", 0.05)
		if err := hostfs.CreateSparse(p.dataFilePath(), p.cfg.DataSize); err != nil {
			return err
		}
		if err := hostfs.CreateSparse(p.metaFilePath(), p.cfg.MetadataSize); err != nil {
			return err
		}
		if err := hostfs.ZeroHead(p.metaFilePath()); err != nil {
			return err
		}
		if err := hostfs.AllocateMetadata(p.metaFilePath()); err != nil {
			return err
		}
		failpoint.Inject(failpoint.InitAfterFiles)
	}
	p.report("creating the thin pool", 0.15)
	if err := p.poolUp(ctx); err != nil {
		return err
	}
	failpoint.Inject(failpoint.InitAfterPool)
	if !p.cfg.ExternalPool {
		data, meta, err := p.dataAndMeta(ctx)
		if err != nil {
			return err
		}
		p.cfg.DataSize, p.cfg.MetadataSize = data.Size, meta.Size
	}
	// A new, empty registry (replacing what an earlier, failed Init left).
	if err := p.store.Create(); err != nil {
		return err
	}
	if err := p.createBase(ctx); err != nil {
		return err
	}
	p.store.SetBase(p.cfg.BaseDeviceID)
	p.cfg.NextDeviceID = p.store.Hint()
	failpoint.Inject(failpoint.InitAfterMkfs)
	p.report("saving the registry", 0.98)
	if err := p.store.SaveConfig(p.cfg); err != nil {
		return err
	}
	p.report("done", 1)
	return nil
}

// adoptExternalPool checks that an existing thin-pool device is usable:
// active, and untouched (transaction id 0, no data used) on first use.
func (p *Pool) adoptExternalPool(name string) error {
	p.cfg.PoolName, p.cfg.ExternalPool = name, true
	ts, err := p.dm.Table(name, dm.TableOptions{})
	if err != nil {
		return errors.Wrapf(err, "thin-pool device %s", name)
	}
	if len(ts) != 1 || ts[0].Type != "thin-pool" {
		return errors.Errorf("device %s is not a thin pool", name)
	}
	f := strings.Fields(ts[0].Params)
	if len(f) >= 3 {
		var bs uint64
		if _, err := fmtSscan(f[2], &bs); err == nil {
			p.cfg.BlockSize = bs * 512
		}
	}
	p.cfg.DataSize = ts[0].Length * 512
	st, err := p.rawStatus()
	if err != nil {
		return err
	}
	if st.TransactionID != 0 || st.DataUsed != 0 {
		return errors.Errorf("thin pool %s is not empty (transaction id %d, %d data blocks used); use a new, empty pool", name, st.TransactionID, st.DataUsed)
	}
	p.cfg.MetadataSize = st.MetadataTotal * dmthin.MetadataBlockSize
	return nil
}

// removeLeftoverPool takes down a pool device and loop devices left by an
// Init that did not finish (pool.json was never written).
func (p *Pool) removeLeftoverPool(ctx context.Context) error {
	if _, err := p.dm.Info(p.cfg.PoolName); err == nil {
		if devs, err := p.ourDevices(); err == nil {
			for _, d := range devs {
				_ = p.dm.Remove(ctx, d.Name, dm.RemoveOptions{})
			}
		}
	}
	if p.cfg.DataFile != "" {
		if _, err := os.Stat(p.dataFilePath()); err != nil {
			return nil
		}
	}
	return p.poolDown(ctx)
}

// initCleanup undoes what a failed Init made.
func (p *Pool) initCleanup(ctx context.Context, o Options) {
	if devs, err := p.ourDevices(); err == nil {
		for _, d := range devs {
			_ = p.dm.Remove(ctx, d.Name, dm.RemoveOptions{Retries: -1})
		}
	}
	if p.cfg.ExternalPool {
		if p.cfg.BaseDeviceID != 0 {
			_, _ = p.dm.Message(p.cfg.PoolName, 0, dm.ThinDelete(p.cfg.BaseDeviceID))
		}
	} else if p.cfg.PoolName != "" {
		_ = p.poolDown(ctx)
	}
	if p.cfg.DataFile != "" {
		os.Remove(p.dataFilePath())
		os.Remove(p.metaFilePath())
	}
	p.store.Close()
	store.RemoveFiles(p.dir)
}

// Open opens an existing pool, bringing it up (loop devices, pool table)
// when it is down and finishing interrupted transactions and deferred
// deletions. ErrNotInitialized when root has no pool.
func Open(ctx context.Context, root string, opts OpenOptions) (*Pool, error) {
	if err := ctx.Err(); err != nil {
		return nil, errors.Wrapf(err, "open %s", root)
	}
	root, err := filepath.Abs(root)
	if err != nil {
		return nil, errors.Wrap(err, "root")
	}
	// A root without a pool is refused before the lock file is made;
	// pool.json itself is read once, under the lock.
	if path := filepath.Join(stateDir(root), store.PoolFileName); isNotExist(path) {
		return nil, errors.Wrapf(ErrNotInitialized, "%s does not exist", path)
	}
	p, err := newPool(root, opts.DM, opts.Progress, opts.Logger)
	if err != nil {
		return nil, err
	}
	if err := p.lk.Lock(); err != nil {
		p.lk.Close()
		return nil, err
	}
	err = p.openLocked(ctx)
	p.lk.Unlock()
	if err != nil {
		p.lk.Close()
		return nil, err
	}
	return p, nil
}

func (p *Pool) openLocked(ctx context.Context) error {
	cfg, err := p.store.LoadConfig()
	if err != nil {
		return err
	}
	p.cfg = cfg
	p.store.SetBase(cfg.BaseDeviceID)
	if cfg.Version == store.V1 {
		p.report("converting the registry to version 3", 0.05)
		if err := p.store.Migrate(cfg); err != nil {
			return err
		}
		p.cfg.Version = store.Version
	} else if err := p.store.RemoveV1Leftovers(); err != nil {
		return err
	}
	if cfg.Version == store.V2 {
		// Version 3 reads version 2's files as they are; pool.json says 3
		// from now on, so that an older release (which cannot read several
		// open transactions) refuses the root instead of misreading it.
		if err := p.store.SaveConfig(p.cfg); err != nil {
			return errors.Wrap(err, "upgrade the registry to version 3")
		}
		p.cfg.Version = store.Version
	}
	p.report("bringing up the thin pool", 0.1)
	if err := p.poolUp(ctx); err != nil {
		return err
	}
	failpoint.Inject(failpoint.OpenAfterPoolUp)
	if p.lk.SuspendMarked() && p.resumeSuspended(ctx) {
		_ = p.lk.SetSuspendMark(false) // left set, the next Open looks again
	}
	p.removeStaleMountPoints()
	p.report("reading the device registry", 0.4)
	if err := p.ensureIndex(); err != nil {
		return err
	}
	p.report("finishing deferred deletions", 0.8)
	_, _ = p.gcLocked(ctx)
	if p.store.ReturningCount() > 0 {
		p.kickReturn() // space a crash or an exit left to return
	}
	p.store.CompactLongReplay()
	p.report("done", 1)
	return nil
}

// resumeSuspended resumes the root's thin devices left suspended by a
// process that died while snapshotting them (I/O to them would hang) and
// reports whether none is left suspended. No operation keeps a device
// suspended once it has released the root lock, and the caller holds it;
// Open calls it only when the lock file's suspend mark says a process
// suspended a device and did not clear the mark after resuming it.
func (p *Pool) resumeSuspended(ctx context.Context) bool {
	devs, err := p.ourDevices()
	if err != nil {
		return false
	}
	ok := true
	for _, d := range devs {
		info, err := p.dm.Info(d.Name)
		if err != nil && !errors.Is(err, dm.ErrNotFound) {
			ok = false
			continue
		}
		if err == nil && info.Suspended && info.LiveTable && p.resumeThin(ctx, d.Name) != nil {
			ok = false
		}
	}
	return ok
}

// removeStaleMountPoints removes the empty directories under <root>/mnt
// that nothing is mounted on: a reboot or a crash between mkdir and mount
// leaves them, and Check would report each one. Mount creates them under
// the root lock, which the caller holds; a directory that is not empty is
// left for Check to report.
func (p *Pool) removeStaleMountPoints() {
	mnt := filepath.Join(p.root, mountDirName)
	entries, _ := os.ReadDir(mnt)
	for _, e := range entries {
		mp := filepath.Join(mnt, e.Name())
		if mounted, err := fs.IsMounted(mp); err == nil && !mounted && e.IsDir() {
			_ = os.Remove(mp)
		}
	}
}

// ensureIndex catches up with the registry on disk and finishes a
// transaction a crashed process left behind. The caller holds the lock.
func (p *Pool) ensureIndex() error {
	if err := p.refreshIndex(); err != nil {
		return err
	}
	return p.recoverPendingTx()
}

// refreshIndex catches up with what other processes changed (the registry
// reads only frames appended since it last looked, and nothing when the
// lock file's change counter did not move).
func (p *Pool) refreshIndex() error {
	if err := p.store.Refresh(); err != nil {
		return err
	}
	p.store.RaiseHint(max(p.cfg.NextDeviceID, p.cfg.BaseDeviceID+1))
	return nil
}

// Close stops the background return of space (what is left is finished by
// the next Open, GC or ReturnSpace) and releases the process's handles;
// devices stay as they are.
func (p *Pool) Close() error {
	p.stopReturning(true)
	p.lk.LockProcess()
	if p.store != nil {
		p.store.Close()
	}
	p.lk.UnlockProcess()
	return p.lk.Close()
}

// ourDevices lists the live thin devices of this root (not the pool).
func (p *Pool) ourDevices() ([]dm.Device, error) {
	all, err := p.dm.ListDevices()
	if err != nil {
		return nil, errors.Wrap(err, "list device-mapper devices")
	}
	var out []dm.Device
	for _, d := range all {
		if _, ok := p.thinDevIDOf(d); ok {
			out = append(out, d)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// thinDevIDOf returns the thin device id of a dm device of this root.
func (p *Pool) thinDevIDOf(d dm.Device) (uint32, bool) {
	if d.UUID != "" {
		return dmname.ParseThinUUID(p.cfg.Key, d.UUID)
	}
	return dmname.ParseThin(p.cfg.Key, d.Name)
}

// Down unmounts nothing: it deactivates every inactive-able device of the
// root and then the pool (unless it is an external thin-pool), and detaches
// the loop devices. Mounted devices make it fail with ErrBusy.
func (p *Pool) Down(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return errors.Wrap(err, "down")
	}
	p.stopReturning(false) // it needs the pool up; the next Open resumes it
	if err := p.lk.Lock(); err != nil {
		return err
	}
	defer p.lk.Unlock()
	if err := p.deactivateAll(ctx); err != nil {
		return err
	}
	if err := p.store.CompactNow(); err != nil {
		return err
	}
	if h := p.store.Hint(); h != 0 && h != p.cfg.NextDeviceID {
		p.cfg.NextDeviceID = h
		_ = p.store.SaveConfig(p.cfg)
	}
	p.store.Invalidate()
	return p.poolDown(ctx)
}

// deactivateAll removes every thin device of the root; busy ones make it
// fail with ErrBusy naming them.
func (p *Pool) deactivateAll(ctx context.Context) error {
	devs, err := p.ourDevices()
	if err != nil {
		return err
	}
	var busy []string
	for _, d := range devs {
		devID, ours := p.thinDevIDOf(d)
		id, known := p.store.IDOf(devID)
		var mp string
		if ours && known {
			mp = p.MountPath(id)
		}
		err := devnode.Remove(ctx, p.dm, d.Name, d.Dev, mp, false)
		if err == nil || errors.Is(err, dm.ErrNotFound) {
			continue
		}
		if !errors.Is(err, dm.ErrBusy) {
			return errors.Wrapf(err, "deactivate %s", d.Name)
		}
		label := d.Name
		switch {
		case ours && known:
			label = id
			if m, _ := fs.IsMounted(mp); m {
				label += " (mounted at " + mp + ")"
			}
		case ours && devID == p.cfg.BaseDeviceID:
			label = "the base device"
		}
		busy = append(busy, label)
	}
	if len(busy) > 0 {
		return errors.Wrapf(ErrBusy, "devices still in use: %s; unmount them first", strings.Join(busy, ", "))
	}
	return nil
}

// Destroy removes every device, the pool and the root's state. Without
// force it refuses when devices other than the base exist.
func (p *Pool) Destroy(ctx context.Context, force bool) error {
	if err := ctx.Err(); err != nil {
		return errors.Wrap(err, "destroy")
	}
	p.stopReturning(false)
	if err := p.lk.Lock(); err != nil {
		return err
	}
	err := p.destroyLocked(ctx, force)
	p.lk.Unlock()
	if err != nil {
		return err
	}
	return p.Close()
}

func (p *Pool) destroyLocked(ctx context.Context, force bool) error {
	recs, err := p.store.List()
	if err != nil {
		return err
	}
	n := 0
	for _, d := range recs {
		if !d.ReturningSpace {
			n++
		}
	}
	if n > 0 && !force {
		return errors.Wrapf(ErrHasChildren, "%d devices exist; remove them first or destroy with force", n)
	}
	for _, d := range recs {
		if err := p.unmountAll(d.ID); err != nil {
			return err
		}
	}
	if err := p.deactivateAll(ctx); err != nil {
		return err
	}
	ids := []uint32{p.cfg.BaseDeviceID}
	for _, d := range recs {
		ids = append(ids, d.DeviceID)
	}
	for _, devID := range ids {
		if _, err := p.dm.Message(p.cfg.PoolName, 0, dm.ThinDelete(devID)); err != nil && !errors.Is(err, dm.ErrNoData) {
			return errors.Wrapf(err, "delete thin device id %d", devID)
		}
	}
	if p.cfg.ExternalPool {
		// Leave the pool as thinctl found it: empty, transaction id 0.
		if cur, err := p.poolTransactionID(); err == nil && cur != 0 {
			_, _ = p.dm.Message(p.cfg.PoolName, 0, dm.ThinSetTransactionID(cur, 0))
		}
	}
	if err := p.poolDown(ctx); err != nil {
		return err
	}
	mnt := filepath.Join(p.root, mountDirName)
	if entries, err := os.ReadDir(mnt); err == nil {
		for _, e := range entries {
			os.Remove(filepath.Join(mnt, e.Name())) // empty mount points only
		}
	}
	os.Remove(mnt)
	if err := os.RemoveAll(p.dir); err != nil {
		return errors.Wrapf(err, "remove %s", p.dir)
	}
	return nil
}
