package thinpool

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/pkg/errors"
	"golang.org/x/sys/unix"

	"github.com/thinctl/thinctl/dm"
	"github.com/thinctl/thinctl/driver"
	"github.com/thinctl/thinctl/fs"
)

// DriverName is the name the devicemapper backend registers under.
const DriverName = "devicemapper"

func init() { driver.Register(DriverName, Backend{}) }

// Backend makes the devicemapper backend known to driver.Select.
type Backend struct{}

// Probe succeeds when the kernel has device-mapper and the thin-pool
// target is loaded or loadable.
func (Backend) Probe(root string) error {
	if _, err := os.Stat("/dev/mapper/control"); err != nil && !procMiscHas("device-mapper") {
		return errors.Wrap(driver.ErrNotSupported, "device-mapper is not available (no /dev/mapper/control)")
	}
	c, err := dm.Default()
	if err != nil {
		return errors.Wrapf(driver.ErrNotSupported, "device-mapper: %v", err)
	}
	if tv, err := c.ListTargetVersions(); err == nil {
		for _, t := range tv {
			if t.Name == "thin-pool" {
				return nil
			}
		}
	}
	if thinModuleAvailable() {
		return nil
	}
	return errors.Wrap(driver.ErrNotSupported, "device-mapper has no thin-pool target (module dm-thin-pool missing)")
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

// HasLayers reports whether home already holds a pool.
func (Backend) HasLayers(home string) bool { return Exists(home) }

// New opens the pool in home, creating it on first use. StorageOpt keys
// (Docker's names): dm.basesize, dm.loopdatasize, dm.loopmetadatasize,
// dm.blocksize, dm.fs, dm.mkfsarg, dm.mountopt, dm.min_free_space,
// dm.datadev, dm.metadatadev, dm.thinpooldev, dm.blkdiscard.
func (Backend) New(home string, opts driver.Options) (driver.Driver, error) {
	return NewDriver(home, opts.StorageOpt)
}

// Driver is the devicemapper backend: driver.Driver, driver.Lister and
// driver.DiffDriver over a Pool. Layers are thin snapshots; Get mounts.
type Driver struct {
	pool *Pool
	home string
}

var (
	_ driver.Driver     = (*Driver)(nil)
	_ driver.Lister     = (*Driver)(nil)
	_ driver.DiffDriver = (*Driver)(nil)
)

// NewDriver opens (or initializes, with storageOpt) the pool in home.
func NewDriver(home string, storageOpt map[string]string) (*Driver, error) {
	if Exists(home) {
		p, err := Open(context.TODO(), home, OpenOptions{})
		if err != nil {
			return nil, err
		}
		return &Driver{pool: p, home: home}, nil
	}
	o, err := optionsFromStorageOpt(storageOpt)
	if err != nil {
		return nil, err
	}
	p, err := Init(context.TODO(), home, o)
	if err != nil {
		return nil, err
	}
	return &Driver{pool: p, home: home}, nil
}

// optionsFromStorageOpt maps Docker-style dm.* options to Options.
func optionsFromStorageOpt(m map[string]string) (Options, error) {
	var o Options
	for k, v := range m {
		var err error
		switch strings.ToLower(k) {
		case "dm.basesize":
			o.BaseSize, err = ParseSize(v)
		case "dm.loopdatasize":
			o.DataSize, err = ParseSize(v)
		case "dm.loopmetadatasize":
			o.MetadataSize, err = ParseSize(v)
		case "dm.blocksize":
			o.BlockSize, err = ParseSize(v)
		case "dm.fs":
			o.Filesystem, err = fs.ParseType(v)
		case "dm.mkfsarg":
			o.MkfsArgs = append(o.MkfsArgs, v)
		case "dm.mountopt":
			o.MountOptions = append(o.MountOptions, strings.Split(v, ",")...)
		case "dm.min_free_space":
			o.MinFreeSpace, err = strconv.ParseFloat(strings.TrimSuffix(v, "%"), 64)
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
		case "size":
			o.BaseSize, err = ParseSize(v)
		default:
			return o, errors.Errorf("unknown devicemapper option %q", k)
		}
		if err != nil {
			return o, errors.Wrapf(err, "devicemapper option %s=%s", k, v)
		}
	}
	return o, nil
}

// ParseSize parses a byte count with an optional binary unit suffix
// ("10G", "512MiB", "64k", "1048576").
func ParseSize(s string) (uint64, error) {
	t := strings.TrimSpace(strings.ToLower(s))
	t = strings.TrimSuffix(strings.TrimSuffix(t, "b"), "i")
	mult := uint64(1)
	if n := len(t); n > 0 {
		if i := strings.IndexByte("kmgtp", t[n-1]); i >= 0 {
			mult = 1 << (10 * (i + 1))
			t = t[:n-1]
		}
	}
	n, err := strconv.ParseUint(t, 10, 64)
	if err != nil || n > (1<<64-1)/mult {
		return 0, errors.Wrapf(ErrInvalidSize, "%q is not a size (use bytes or a number with K, M, G, T)", s)
	}
	return n * mult, nil
}

// Pool returns the pool behind the driver.
func (d *Driver) Pool() *Pool { return d.pool }

// String names the backend.
func (d *Driver) String() string { return DriverName }

// driverErr adds the driver package's sentinel for a pool error.
func driverErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, ErrDeviceExists):
		return fmt.Errorf("%w: %w", driver.ErrExists, err)
	case errors.Is(err, ErrDeviceNotFound), errors.Is(err, ErrParentNotFound):
		return fmt.Errorf("%w: %w", driver.ErrNotFound, err)
	case errors.Is(err, ErrHasChildren):
		return fmt.Errorf("%w: %w", driver.ErrHasChildren, err)
	}
	return err
}

// Create makes layer id as a snapshot of parent (or of the base device).
func (d *Driver) Create(id, parent string, opts *driver.CreateOpts) error {
	var co CreateOptions
	if opts != nil && opts.StorageOpt["size"] != "" {
		n, err := ParseSize(opts.StorageOpt["size"])
		if err != nil {
			return err
		}
		co.Size = n
	}
	if opts != nil {
		for k := range opts.StorageOpt {
			if k != "size" {
				return errors.Errorf("unknown devicemapper layer option %q (only size)", k)
			}
		}
	}
	return driverErr(d.pool.Create(context.TODO(), id, parent, co))
}

// CreateReadWrite is Create: every thin snapshot is writable.
func (d *Driver) CreateReadWrite(id, parent string, opts *driver.CreateOpts) error {
	return d.Create(id, parent, opts)
}

// Remove deletes layer id; a busy device is removed later (deferred
// deletion) and Remove succeeds.
func (d *Driver) Remove(id string) error {
	err := d.pool.Remove(context.TODO(), id)
	if errors.Is(err, ErrDeferred) {
		return nil
	}
	return driverErr(err)
}

// layerDir is the directory inside a device's filesystem that holds the
// layer, so that the filesystem's own lost+found stays out of it (Docker
// did the same).
const layerDir = "rootfs"

// Get mounts layer id and returns the layer's directory inside the mount.
func (d *Driver) Get(id, mountLabel string) (string, error) {
	mp, err := d.pool.Mount(context.TODO(), id, MountOptions{MountLabel: mountLabel})
	if err != nil {
		return "", driverErr(err)
	}
	dir := filepath.Join(mp, layerDir)
	if err := os.Mkdir(dir, 0o755); err == nil {
		err = os.Chmod(dir, 0o755)
		if err != nil {
			d.pool.Unmount(context.TODO(), id)
			return "", errors.Wrapf(err, "chmod %s", dir)
		}
	} else if !os.IsExist(err) {
		d.pool.Unmount(context.TODO(), id)
		return "", errors.Wrapf(err, "create %s", dir)
	}
	return dir, nil
}

// Put releases one Get.
func (d *Driver) Put(id string) error { return driverErr(d.pool.Unmount(context.TODO(), id)) }

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
		{Key: "Pool Blocksize", Value: formatBytes(s.BlockSize)},
		{Key: "Base Device Size", Value: formatBytes(s.BaseSize)},
		{Key: "Backing Filesystem", Value: string(s.Filesystem)},
		{Key: "State", Value: s.State},
	}
	if s.DataFile != "" {
		kv = append(kv, driver.KV{Key: "Data file", Value: s.DataFile}, driver.KV{Key: "Metadata file", Value: s.MetadataFile})
	}
	kv = append(kv,
		driver.KV{Key: "Data Space Used", Value: formatBytes(s.DataUsed)},
		driver.KV{Key: "Data Space Total", Value: formatBytes(s.DataTotal)},
		driver.KV{Key: "Data Space Available", Value: formatBytes(s.DataAvailable)},
		driver.KV{Key: "Metadata Space Used", Value: formatBytes(s.MetadataUsed)},
		driver.KV{Key: "Metadata Space Total", Value: formatBytes(s.MetadataTotal)},
		driver.KV{Key: "Metadata Space Available", Value: formatBytes(s.MetadataAvailable)},
		driver.KV{Key: "Thin Pool Minimum Free Space", Value: fmt.Sprintf("%.0f%%", s.MinFreeSpace)},
		driver.KV{Key: "Deferred Removal Enabled", Value: "true"},
		driver.KV{Key: "Deferred Deletion Enabled", Value: "true"},
		driver.KV{Key: "Number of Devices", Value: strconv.Itoa(s.Devices)},
	)
	return kv
}

// Metadata returns the thin device facts of layer id.
func (d *Driver) Metadata(id string) (map[string]string, error) {
	dev, err := d.pool.Device(id)
	if err != nil {
		return nil, driverErr(err)
	}
	name, _ := d.pool.DeviceName(id)
	return map[string]string{
		"DeviceId":   itoa(dev.DeviceID),
		"DeviceSize": utoa(dev.Size),
		"DeviceName": name,
	}, nil
}

// Cleanup unmounts every layer this process mounted and closes the pool.
// The pool itself stays up for the next user.
func (d *Driver) Cleanup() error {
	var first error
	for _, id := range d.pool.mountedIDs() {
		if err := d.pool.releaseAll(context.TODO(), id); err != nil && first == nil {
			first = err
		}
	}
	if err := d.pool.Close(); err != nil && first == nil {
		first = err
	}
	return first
}

// List enumerates the layers, sorted by id.
func (d *Driver) List() ([]driver.LayerInfo, error) {
	devs, err := d.pool.Devices()
	if err != nil {
		return nil, err
	}
	out := make([]driver.LayerInfo, 0, len(devs))
	for _, dev := range devs {
		out = append(out, driver.LayerInfo{
			ID: dev.ID, Parent: dev.Parent, SizeBytes: int64(dev.Size), Mounted: dev.Mounted,
			MountPath: layerPath(dev.MountPath), Deleted: dev.Deleted,
			Extra: map[string]string{"device_id": itoa(dev.DeviceID), "active": strconv.FormatBool(dev.Active)},
		})
	}
	return out, nil
}

// Diff returns a tar stream of id's changes against parent.
func (d *Driver) Diff(id, parent string) (io.ReadCloser, error) {
	return driver.NaiveDiff(d).Diff(id, parent)
}

// Changes lists the paths changed in id relative to parent.
func (d *Driver) Changes(id, parent string) ([]driver.Change, error) {
	return driver.NaiveDiff(d).Changes(id, parent)
}

// ApplyDiff unpacks a tar stream into id.
func (d *Driver) ApplyDiff(id, parent string, diff io.Reader) (int64, error) {
	return driver.NaiveDiff(d).ApplyDiff(id, parent, diff)
}

// DiffSize returns the size of id's changes against parent.
func (d *Driver) DiffSize(id, parent string) (int64, error) {
	return driver.NaiveDiff(d).DiffSize(id, parent)
}

func layerPath(mountPath string) string {
	if mountPath == "" {
		return ""
	}
	return filepath.Join(mountPath, layerDir)
}
