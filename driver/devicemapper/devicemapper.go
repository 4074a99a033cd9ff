// Package devicemapper is the driver.Driver of thinctl's thin-pool engine
// (package thinpool): layers are thin snapshots in a device-mapper thin
// pool whose state lives under <root>/devicemapper.
//
// Importing the package registers the backend as "devicemapper" with
// driver.Register and does nothing else; driver.Choose, Open, Init and
// Select then find it. The driver implements driver.Driver, DiffDriver
// (by mounting and comparing, NaiveDiff), Lister, Mounter, PoolStatuser,
// Grower, Upper, Downer, Destroyer, Checker, Collector and Activator.
//
// Options.StorageOpt takes Docker's devicemapper option names:
//
//	dm.loopdatasize      size of the sparse data file (default 100G)
//	dm.loopmetadatasize  size of the sparse metadata file (default 2G)
//	dm.blocksize         the pool's allocation block, 64K to 1G in steps of 64K (default 64K)
//	dm.basesize, size    size of the base device every layer starts from (default 10G)
//	dm.fs                ext4 (default) or xfs
//	dm.mkfsarg           one mkfs argument; several separated by newlines
//	dm.mountopt          mount options for every layer, comma separated
//	dm.min_free_space    refuse new layers below this free percentage (default 10%; 0 for no minimum)
//	dm.datadev           a block device for data instead of a loop file (with dm.metadatadev)
//	dm.metadatadev       a block device for metadata
//	dm.thinpooldev       an existing, empty thin-pool device (never deactivated)
//	dm.blkdiscard        false: do not discard a removed layer's blocks
//
// Sizes are in the units package's grammar. The options are used by Init;
// Open reads the pool's own configuration.
package devicemapper

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/pkg/errors"
	"golang.org/x/sys/unix"

	"github.com/thinctl/thinctl/dm"
	"github.com/thinctl/thinctl/driver"
	"github.com/thinctl/thinctl/errdefs"
	"github.com/thinctl/thinctl/fs"
	"github.com/thinctl/thinctl/thinpool"
	"github.com/thinctl/thinctl/units"
)

// Name is the name the backend registers under.
const Name = "devicemapper"

func init() { driver.Register(Name, Backend{}) }

// Backend is the devicemapper driver.Backend.
type Backend struct{}

// Probe succeeds when the kernel has device-mapper and the thin-pool
// target is loaded or loadable. It creates nothing.
func (Backend) Probe(root string) (string, error) {
	if _, err := os.Stat("/dev/mapper/control"); err != nil && !procMiscHas("device-mapper") {
		return "", errors.Wrap(driver.ErrNotSupported, "device-mapper is not available (no /dev/mapper/control)")
	}
	c, err := dm.Open(dm.Options{})
	if err != nil {
		return "", errdefs.Wrapf(driver.ErrNotSupported, err, "device-mapper: %v", err)
	}
	tv, err := c.ListTargetVersions()
	c.Close()
	if err == nil {
		for _, t := range tv {
			if t.Name == "thin-pool" {
				return "the kernel has dm-thin-pool", nil
			}
		}
	}
	if thinModuleAvailable() {
		return "the kernel has dm-thin-pool", nil
	}
	return "", errors.Wrap(driver.ErrNotSupported, "device-mapper has no thin-pool target (module dm-thin-pool missing)")
}

func procMiscHas(name string) bool {
	b, err := os.ReadFile("/proc/misc")
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) == 2 && f[1] == name {
			return true
		}
	}
	return false
}

// thinModuleAvailable reports whether dm-thin-pool is loaded or installed
// as a module the kernel can load on first use.
func thinModuleAvailable() bool {
	if _, err := os.Stat("/sys/module/dm_thin_pool"); err == nil {
		return true
	}
	var u unix.Utsname
	if unix.Uname(&u) != nil {
		return false
	}
	release := unix.ByteSliceToString(u.Release[:])
	b, err := os.ReadFile(filepath.Join("/lib/modules", release, "modules.dep"))
	return err == nil && strings.Contains(string(b), "/dm-thin-pool.ko")
}

// Existing reports whether root holds a thin pool (<root>/devicemapper/
// pool.json), exactly where thinpool.Init puts it.
func (Backend) Existing(root string) (string, bool) {
	if !thinpool.Exists(root) {
		return "", false
	}
	return filepath.Join(root, Name) + " already holds a thin pool", true
}

// Open opens the pool under root, bringing it up after a reboot. The
// driver talks to device-mapper through a client of its own (dm.Open) that
// logs to opts.Debugf; Close and Cleanup close it.
func (Backend) Open(ctx context.Context, root string, opts driver.Options) (driver.Driver, error) {
	if err := ctx.Err(); err != nil {
		return nil, errors.Wrapf(err, "open the thin pool under %s", root)
	}
	c, err := dm.Open(dm.Options{Logger: opts.Debugf})
	if err != nil {
		return nil, err
	}
	p, err := thinpool.Open(ctx, root, thinpool.OpenOptions{Progress: opts.Progress, DM: c})
	if err != nil {
		c.Close()
		return nil, err
	}
	return newDriver(p, c), nil
}

// Init creates the pool under root from opts.StorageOpt and opens it. A
// kernel without device-mapper or the thin-pool target fails before
// anything is written.
func (Backend) Init(ctx context.Context, root string, opts driver.Options) (driver.Driver, error) {
	o, err := OptionsFromStorageOpt(opts.StorageOpt)
	if err != nil {
		return nil, err
	}
	o.Progress = opts.Progress
	if err := ctx.Err(); err != nil {
		return nil, errors.Wrapf(err, "initialise a thin pool under %s", root)
	}
	c, err := dm.Open(dm.Options{Logger: opts.Debugf})
	if err != nil {
		return nil, err
	}
	if o.ThinPoolDevice == "" {
		if _, err := (Backend{}).Probe(root); err != nil {
			c.Close()
			return nil, err
		}
	}
	o.DM = c
	p, err := thinpool.Init(ctx, root, o)
	if err != nil {
		c.Close()
		return nil, err
	}
	return newDriver(p, c), nil
}

// OptionsFromStorageOpt maps Docker-style dm.* storage options (see the
// package documentation) to thinpool.Options.
func OptionsFromStorageOpt(m map[string]string) (thinpool.Options, error) {
	var o thinpool.Options
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		v := m[k]
		var err error
		switch strings.ToLower(k) {
		case "dm.basesize", "size":
			o.BaseSize, err = units.ParseSize(v)
		case "dm.loopdatasize":
			o.DataSize, err = units.ParseSize(v)
		case "dm.loopmetadatasize":
			o.MetadataSize, err = units.ParseSize(v)
		case "dm.blocksize":
			o.BlockSize, err = units.ParseSize(v)
		case "dm.fs":
			o.Filesystem, err = fs.ParseType(v)
		case "dm.mkfsarg":
			o.MkfsArgs = append(o.MkfsArgs, strings.Split(v, "\n")...)
		case "dm.mountopt":
			o.MountOptions = append(o.MountOptions, strings.Split(v, ",")...)
		case "dm.min_free_space":
			o.MinFreeSpace, err = units.ParsePercent(v)
			// 0 is Docker's way of turning the check off.
			o.NoMinFreeSpace = err == nil && o.MinFreeSpace == 0
		case "dm.datadev":
			o.DataDevice = v
		case "dm.metadatadev":
			o.MetadataDevice = v
		case "dm.thinpooldev":
			o.ThinPoolDevice = strings.TrimPrefix(v, "/dev/mapper/")
		case "dm.blkdiscard":
			var b bool
			b, err = strconv.ParseBool(v)
			o.NoDiscard = !b
		default:
			return o, errors.Wrapf(driver.ErrInvalidArgument, "unknown devicemapper option %q", k)
		}
		if err != nil && errors.Is(err, driver.ErrInvalidArgument) {
			return o, errors.Wrapf(err, "devicemapper option %s=%s", k, v)
		}
		if err != nil {
			return o, errdefs.Wrapf(driver.ErrInvalidArgument, err, "devicemapper option %s=%s: %v", k, v, err)
		}
	}
	return o, nil
}

// Driver is the devicemapper backend over one open thinpool.Pool.
type Driver struct {
	pool   *thinpool.Pool
	dm     *dm.Client // the client the pool was opened with; nil when the caller owns it
	closed bool       // Close or Destroy closed the pool

	mu   sync.Mutex
	refs map[string]int // Get and Mount references taken through this driver
}

var (
	_ driver.Driver       = (*Driver)(nil)
	_ driver.DiffDriver   = (*Driver)(nil)
	_ driver.Lister       = (*Driver)(nil)
	_ driver.Mounter      = (*Driver)(nil)
	_ driver.PoolStatuser = (*Driver)(nil)
	_ driver.Grower       = (*Driver)(nil)
	_ driver.Upper        = (*Driver)(nil)
	_ driver.Downer       = (*Driver)(nil)
	_ driver.Destroyer    = (*Driver)(nil)
	_ driver.Checker      = (*Driver)(nil)
	_ driver.Collector    = (*Driver)(nil)
	_ driver.Activator    = (*Driver)(nil)
	_ io.Closer           = (*Driver)(nil)
)

// New wraps a pool the caller opened (with a dm client of its own, say);
// the driver owns the pool from then on (Close and Cleanup close it), the
// caller keeps its client.
func New(p *thinpool.Pool) *Driver { return newDriver(p, nil) }

// newDriver wraps p and, when c is not nil, closes c with it.
func newDriver(p *thinpool.Pool, c *dm.Client) *Driver {
	return &Driver{pool: p, dm: c, refs: map[string]int{}}
}

// Pool returns the pool behind the driver.
func (d *Driver) Pool() *thinpool.Pool { return d.pool }

// String names the backend.
func (d *Driver) String() string { return Name }

// Create makes layer id as a snapshot of parent (or of the base device).
// The "size" option makes it larger than its parent.
func (d *Driver) Create(ctx context.Context, id, parent string, opts *driver.CreateOpts) error {
	var co thinpool.CreateOptions
	if opts != nil {
		for k, v := range opts.StorageOpt {
			if k != "size" {
				return errors.Wrapf(driver.ErrInvalidArgument, "unknown devicemapper layer option %q (only size)", k)
			}
			n, err := units.ParseSize(v)
			if err != nil {
				return errors.Wrapf(err, "layer %s", id)
			}
			co.Size = n
		}
	}
	if err := ctx.Err(); err != nil {
		return errors.Wrapf(err, "create %s", id)
	}
	return d.pool.Create(ctx, id, parent, co)
}

// CreateReadWrite is Create: every thin snapshot is writable.
func (d *Driver) CreateReadWrite(ctx context.Context, id, parent string, opts *driver.CreateOpts) error {
	return d.Create(ctx, id, parent, opts)
}

// Remove unmounts, deactivates and deletes layer id. When something still
// holds the device the deletion is recorded and deferred: the error
// matches driver.ErrDeferred and names the holders, and GC finishes it.
func (d *Driver) Remove(ctx context.Context, id string) error {
	if err := ctx.Err(); err != nil {
		return errors.Wrapf(err, "remove %s", id)
	}
	err := d.pool.Remove(ctx, id)
	if err == nil || errors.Is(err, thinpool.ErrDeferred) {
		d.mu.Lock()
		delete(d.refs, id)
		d.mu.Unlock()
	}
	return err
}

// layerDir is the directory inside a device's filesystem that holds the
// layer, so that the filesystem's own lost+found stays out of it (Docker
// did the same).
const layerDir = "rootfs"

// Get mounts layer id and returns the layer's directory inside the mount.
// A layer whose directory is a symlink or not a directory is refused
// (driver.ErrBadLayerRoot) and left mounted by nobody.
func (d *Driver) Get(ctx context.Context, id, mountLabel string) (string, error) {
	mp, err := d.Mount(ctx, id, driver.MountOptions{MountLabel: mountLabel})
	if err != nil {
		return "", err
	}
	dir := filepath.Join(mp, layerDir)
	if err := os.Mkdir(dir, 0o755); err == nil {
		err = os.Chmod(dir, 0o755)
		if err != nil {
			d.Unmount(context.WithoutCancel(ctx), id)
			return "", errors.Wrapf(err, "chmod %s", dir)
		}
	} else if !os.IsExist(err) {
		d.Unmount(context.WithoutCancel(ctx), id)
		return "", errors.Wrapf(err, "create %s", dir)
	}
	// What the device's filesystem holds is anyone's: a rootfs that is a
	// symlink (or no directory) would hand its target to every reader.
	if err := driver.CheckLayerRoot(dir); err != nil {
		d.Unmount(context.WithoutCancel(ctx), id)
		return "", errors.Wrapf(err, "layer %s", id)
	}
	return dir, nil
}

// Put releases one Get.
func (d *Driver) Put(ctx context.Context, id string) error { return d.Unmount(ctx, id) }

// Mount activates and mounts layer id at <root>/mnt/<id> with the pool's
// mount options plus opts.Options and returns that path.
func (d *Driver) Mount(ctx context.Context, id string, opts driver.MountOptions) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", errors.Wrapf(err, "mount %s", id)
	}
	mp, err := d.pool.Mount(ctx, id, thinpool.MountOptions{Options: opts.Options, MountLabel: opts.MountLabel})
	if err != nil {
		return "", err
	}
	d.mu.Lock()
	d.refs[id]++
	d.mu.Unlock()
	return mp, nil
}

// Unmount releases one reference; the last one (or one from a process
// that holds none) unmounts lazily, removes the mount point and
// deactivates the device.
func (d *Driver) Unmount(ctx context.Context, id string) error {
	if err := ctx.Err(); err != nil {
		return errors.Wrapf(err, "unmount %s", id)
	}
	if err := d.pool.Unmount(ctx, id); err != nil {
		return err
	}
	d.mu.Lock()
	if d.refs[id] > 1 {
		d.refs[id]--
	} else {
		delete(d.refs, id)
	}
	d.mu.Unlock()
	return nil
}

// Exists reports whether layer id exists and is not being deleted.
func (d *Driver) Exists(id string) bool {
	dev, err := d.pool.Device(id)
	return err == nil && !dev.Deleted
}

// Status describes the pool like Docker's `docker info` did.
func (d *Driver) Status() []driver.KV {
	s, err := d.pool.Status()
	if err != nil {
		return []driver.KV{{Key: "Error", Value: err.Error()}}
	}
	kv := []driver.KV{
		{Key: "Pool Name", Value: s.PoolName},
		{Key: "Pool Blocksize", Value: units.FormatSize(s.BlockSize)},
		{Key: "Base Device Size", Value: units.FormatSize(s.BaseSize)},
		{Key: "Backing Filesystem", Value: string(s.Filesystem)},
		{Key: "State", Value: s.State},
	}
	if s.DataFile != "" {
		kv = append(kv, driver.KV{Key: "Data file", Value: s.DataFile}, driver.KV{Key: "Metadata file", Value: s.MetadataFile})
	}
	kv = append(kv,
		driver.KV{Key: "Data Space Used", Value: units.FormatSize(s.DataUsed)},
		driver.KV{Key: "Data Space Total", Value: units.FormatSize(s.DataTotal)},
		driver.KV{Key: "Data Space Available", Value: units.FormatSize(s.DataAvailable)},
		driver.KV{Key: "Metadata Space Used", Value: units.FormatSize(s.MetadataUsed)},
		driver.KV{Key: "Metadata Space Total", Value: units.FormatSize(s.MetadataTotal)},
		driver.KV{Key: "Metadata Space Available", Value: units.FormatSize(s.MetadataAvailable)},
		driver.KV{Key: "Thin Pool Minimum Free Space", Value: fmt.Sprintf("%.0f%%", s.MinFreeSpace)},
		driver.KV{Key: "Deferred Removal Enabled", Value: "true"},
		driver.KV{Key: "Deferred Deletion Enabled", Value: "true"},
		driver.KV{Key: "Number of Devices", Value: strconv.Itoa(s.Devices)},
	)
	return kv
}

// PoolStatus reports the pool's state, space and device count, with the
// facts `docker info` showed as Details.
func (d *Driver) PoolStatus() (driver.PoolStatus, error) {
	st, err := d.pool.Status()
	if err != nil {
		return driver.PoolStatus{}, err
	}
	ps := driver.PoolStatus{
		Driver:        Name,
		State:         st.State,
		PoolName:      st.PoolName,
		TransactionID: st.TransactionID,
		DataUsed:      st.DataUsed,
		DataTotal:     st.DataTotal,
		MetadataUsed:  st.MetadataUsed,
		MetadataTotal: st.MetadataTotal,
		Devices:       st.Devices,
		NeedsCheck:    st.NeedsCheck,

		ReturnedLayers: st.ReturnedDevices,
	}
	add := func(k, v string) { ps.Details = append(ps.Details, driver.KV{Key: k, Value: v}) }
	if st.DataUsed <= st.DataTotal && st.DataAvailable < st.DataTotal-st.DataUsed {
		add("Data free", units.FormatSize(st.DataAvailable)+" (limited by the filesystem holding the data file)")
	}
	if st.BaseSize != 0 {
		add("Base device", units.FormatSize(st.BaseSize))
	}
	if st.MinFreeSpace != 0 {
		add("Min free space", strconv.FormatFloat(st.MinFreeSpace, 'f', -1, 64)+"% (create refuses below it)")
	} else {
		add("Min free space", "none (create refuses only when the pool is out of space)")
	}
	if st.ExternalPool {
		add("External pool", "yes (never deactivated by thinctl)")
	}
	if st.BlockSize != 0 {
		add("Block size", units.FormatSize(st.BlockSize))
	}
	if st.Filesystem != "" {
		add("Filesystem", string(st.Filesystem))
	}
	if st.DataFile != "" {
		add("Data file", st.DataFile)
	}
	if st.MetadataFile != "" {
		add("Metadata file", st.MetadataFile)
	}
	if st.ReturningDevices > 0 {
		v := fmt.Sprintf("%d removed device%s", st.ReturningDevices, map[bool]string{true: "s"}[st.ReturningDevices != 1])
		if st.ReturningBytes > 0 {
			v += ", " + units.FormatSize(st.ReturningBytes) + " still mapped"
		}
		v += " (finished in the background or by gc)"
		if st.ReturnError != "" {
			v += "; last attempt: " + st.ReturnError
		}
		add("Space being returned", v)
	}
	return ps, nil
}

// ReturnSpace waits until the space of every removed device is back in
// the pool's data (see thinpool.Pool.ReturnSpace).
func (d *Driver) ReturnSpace(ctx context.Context) error { return d.pool.ReturnSpace(ctx) }

// Metadata returns the thin device facts of layer id.
func (d *Driver) Metadata(id string) (map[string]string, error) {
	dev, err := d.pool.Device(id)
	if err != nil {
		return nil, err
	}
	name, _ := d.pool.DeviceName(id)
	return map[string]string{
		"DeviceId":   strconv.FormatUint(uint64(dev.DeviceID), 10),
		"DeviceSize": strconv.FormatUint(dev.Size, 10),
		"DeviceName": name,
	}, nil
}

// Cleanup releases every Get and Mount taken through this driver and
// closes the pool. The pool itself stays up for the next user.
func (d *Driver) Cleanup(ctx context.Context) error {
	d.mu.Lock()
	refs := d.refs
	d.refs = map[string]int{}
	d.mu.Unlock()
	ids := make([]string, 0, len(refs))
	for id := range refs {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	var first error
	for _, id := range ids {
		for n := refs[id]; n > 0; n-- {
			if err := d.pool.Unmount(ctx, id); err != nil {
				if first == nil {
					first = err
				}
				break
			}
		}
	}
	if err := d.Close(); err != nil && first == nil {
		first = err
	}
	return first
}

// Close releases the process's handles on the pool and leaves every mount
// and device as it is (a command-line tool's mounts outlive it). The
// driver is unusable afterwards.
func (d *Driver) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return nil
	}
	d.closed = true
	err := d.pool.Close()
	if d.dm != nil {
		if cerr := d.dm.Close(); err == nil {
			err = cerr
		}
	}
	return err
}

// List enumerates the layers (devices), sorted by id; MountPath is the
// mount point Mount returns.
func (d *Driver) List() ([]driver.LayerInfo, error) {
	devs, err := d.pool.Devices()
	if err != nil {
		return nil, err
	}
	out := make([]driver.LayerInfo, 0, len(devs))
	for _, dev := range devs {
		out = append(out, driver.LayerInfo{
			ID: dev.ID, Parent: dev.Parent, SizeBytes: int64(dev.Size), DeviceID: dev.DeviceID,
			Active: dev.Active, DevicePath: dev.DevicePath, Mounted: dev.Mounted,
			MountPath: dev.MountPath, Deleted: dev.Deleted,
		})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// Grow grows the pool's data and/or metadata online.
func (d *Driver) Grow(ctx context.Context, opts driver.GrowOptions) error {
	if err := ctx.Err(); err != nil {
		return errors.Wrap(err, "grow the pool")
	}
	return d.pool.Grow(ctx, thinpool.GrowOptions{DataSize: opts.DataSize, MetadataSize: opts.MetadataSize})
}

// Up has nothing left to do: opening the pool brought it up (loop devices,
// pool table, interrupted transactions and deferred deletions).
func (d *Driver) Up(ctx context.Context) error { return ctx.Err() }

// Down deactivates every device and the pool and detaches the loop
// devices; mounted devices make it fail with an error matching
// driver.ErrBusy.
func (d *Driver) Down(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return errors.Wrap(err, "take the pool down")
	}
	return d.pool.Down(ctx)
}

// Destroy removes every device (with force), the pool and its state.
func (d *Driver) Destroy(ctx context.Context, force bool) error {
	if err := ctx.Err(); err != nil {
		return errors.Wrap(err, "destroy the pool")
	}
	err := d.pool.Destroy(ctx, force)
	if err == nil {
		d.Close() // the pool closed itself; the client goes too
	}
	return err
}

// Check compares the registry, the pool's metadata and the live devices.
func (d *Driver) Check(ctx context.Context, opts driver.CheckOptions) (driver.CheckReport, error) {
	if err := ctx.Err(); err != nil {
		return driver.CheckReport{}, errors.Wrap(err, "check the pool")
	}
	r, err := d.pool.Check(ctx, thinpool.CheckOptions{Repair: opts.Repair})
	if err != nil {
		return driver.CheckReport{}, err
	}
	out := driver.CheckReport{Consistent: r.Consistent, Problems: []driver.Problem{}, Notes: r.Notes}
	for _, p := range r.Problems {
		out.Problems = append(out.Problems, driver.Problem{Kind: p.Kind, ID: p.ID, Detail: p.Detail, Fixed: p.Fixed, Fix: string(p.Fix)})
	}
	return out, nil
}

// GC finishes deferred deletions whose devices are free now.
func (d *Driver) GC(ctx context.Context) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, errors.Wrap(err, "collect deferred deletions")
	}
	ids, err := d.pool.GC(ctx)
	return ids, err
}

// Activate activates layer id's device without mounting it and returns its
// path.
func (d *Driver) Activate(ctx context.Context, id string) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", errors.Wrapf(err, "activate %s", id)
	}
	p, err := d.pool.Activate(ctx, id)
	return p, err
}

// Resize grows layer id's device and its filesystem (thinpool.Pool.Resize).
func (d *Driver) Resize(ctx context.Context, id string, size uint64) error {
	return d.pool.Resize(ctx, id, size, thinpool.ResizeOptions{})
}

// Deactivate deactivates layer id's device; it refuses while the device is
// mounted or open.
func (d *Driver) Deactivate(ctx context.Context, id string) error {
	if err := ctx.Err(); err != nil {
		return errors.Wrapf(err, "deactivate %s", id)
	}
	return d.pool.Deactivate(ctx, id)
}

// Diff returns a tar stream of id's changes against parent.
func (d *Driver) Diff(ctx context.Context, id, parent string) (io.ReadCloser, error) {
	return driver.NaiveDiff(d).Diff(ctx, id, parent)
}

// Changes lists the paths changed in id relative to parent.
func (d *Driver) Changes(ctx context.Context, id, parent string) ([]driver.Change, error) {
	return driver.NaiveDiff(d).Changes(ctx, id, parent)
}

// ApplyDiff unpacks a tar stream into id.
func (d *Driver) ApplyDiff(ctx context.Context, id, parent string, diff io.Reader) (int64, error) {
	return driver.NaiveDiff(d).ApplyDiff(ctx, id, parent, diff)
}

// DiffSize returns the size of id's changes against parent.
func (d *Driver) DiffSize(ctx context.Context, id, parent string) (int64, error) {
	return driver.NaiveDiff(d).DiffSize(ctx, id, parent)
}
