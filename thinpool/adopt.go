package thinpool

import (
	"context"
	"os"
	"path/filepath"
	"time"

	"github.com/pkg/errors"
	"golang.org/x/sys/unix"

	"github.com/thinctl/thinctl/dm"
	"github.com/thinctl/thinctl/fs"
	"github.com/thinctl/thinctl/internal/atomicfile"
	"github.com/thinctl/thinctl/thinpool/internal/dmname"
	"github.com/thinctl/thinctl/thinpool/internal/store"
)

// adoptStagingName is where Adopt builds the registry before it renames
// it to <root>/devicemapper in one step.
const adoptStagingName = stateDirName + ".adopting"

// AdoptDevice is one thin device a pool made by another program already
// holds, as Adopt records it.
type AdoptDevice struct {
	// ID is the registry id the device gets (ValidateID rules).
	ID string
	// DeviceID is its thin id in the pool.
	DeviceID uint32
	// Size is its size in bytes.
	Size uint64
	// Parent is the registry id of the device it is a snapshot of: another
	// of the adopted devices, or "" for the base device (or when its origin
	// is not adopted).
	Parent string
	// Labels are stored with the record (see Pool.SetLabels).
	Labels map[string]string
}

// AdoptOptions describes a thin pool another program made and the devices
// in it that Adopt takes over. Exactly one of DataFile (with MetadataFile)
// and ThinPoolDevice is set.
type AdoptOptions struct {
	// DataFile and MetadataFile are the absolute paths of the pool's
	// sparse files; thinctl binds them to loop devices and brings the
	// pool up under its own name, as for a pool it made itself. The files
	// stay where they are.
	DataFile, MetadataFile string
	// ThinPoolDevice is the device-mapper name of an active thin-pool the
	// pool is used through instead (as Options.ThinPoolDevice).
	ThinPoolDevice string
	// DataSize and MetadataSize are the pool's sizes in bytes; zero takes
	// the files' sizes (required for ThinPoolDevice).
	DataSize, MetadataSize uint64
	// BlockSize is the pool's data block size in bytes: what its metadata
	// records, which a table must repeat.
	BlockSize uint64
	// Filesystem is the filesystem of the base device and its snapshots.
	Filesystem fs.Type
	// MountOptions are added to every mount, as Options.MountOptions.
	MountOptions []string
	// BaseDeviceID, BaseSize and BaseUUID describe the device that
	// becomes the pool's base device (what Create snapshots when given no
	// parent): its thin id, size and filesystem UUID.
	BaseDeviceID uint32
	BaseSize     uint64
	BaseUUID     string
	// Devices are recorded in the registry; every thin id must be in the
	// pool (Check reports one that is not) and none may be the base's.
	Devices []AdoptDevice
	// Origin says where the pool came from (kept in pool.json as
	// adopted_from), e.g. "docker devicemapper store /var/lib/docker".
	Origin string
	// TransactionID is the pool's transaction id as the other program
	// left it. Adopt leaves the pool's id as it is (thinctl's own
	// operations never read or advance it) and keeps this value in
	// pool.json as foreign_transaction_id.
	TransactionID uint64
	// MinFreeSpace and NoMinFreeSpace are as in Options.
	MinFreeSpace   float64
	NoMinFreeSpace bool
	// Progress and DM are as in Options.
	Progress func(step string, fraction float64)
	DM       *dm.Client
}

// Adopt makes root the home of a thin pool another program made, in
// place: no data is copied, and neither the pool's metadata nor its files
// are written by Adopt itself. It writes a registry naming opts.Devices
// and opts' base device under <root>/devicemapper and then opens the
// pool as Open does (which brings a loop-file pool up under thinctl's
// name). The other program must not use the pool any more.
//
// The registry is built under <root>/devicemapper.adopting and renamed to
// <root>/devicemapper in one step once every record is durable, so an
// Adopt interrupted at any point leaves either no registry at root (a
// later Adopt removes the staging directory and starts over) or a
// complete one. ErrAlreadyInit when root already has a pool.
func Adopt(ctx context.Context, root string, opts AdoptOptions) (*Pool, error) {
	if err := ctx.Err(); err != nil {
		return nil, errors.Wrapf(err, "adopt into %s", root)
	}
	root, err := filepath.Abs(root)
	if err != nil {
		return nil, errors.Wrap(err, "root")
	}
	if err := adoptRegistry(root, opts); err != nil {
		return nil, err
	}
	return Open(ctx, root, OpenOptions{DM: opts.DM, Progress: opts.Progress})
}

// validateAdopt checks opts before anything is written.
func validateAdopt(o *AdoptOptions) error {
	if (o.DataFile == "") == (o.ThinPoolDevice == "") {
		return errors.New("adopt: give the pool's data and metadata files or its thin-pool device name, not both or neither")
	}
	if o.DataFile != "" && (!filepath.IsAbs(o.DataFile) || !filepath.IsAbs(o.MetadataFile)) {
		return errors.Errorf("adopt: data file %q and metadata file %q must both be absolute paths", o.DataFile, o.MetadataFile)
	}
	if err := validateBlockSize(o.BlockSize); err != nil {
		return errors.Wrap(err, "adopt")
	}
	if o.Filesystem != fs.Ext4 && o.Filesystem != fs.XFS {
		return errors.Wrapf(fs.ErrUnsupportedType, "adopt: filesystem %q: ext4 or xfs", o.Filesystem)
	}
	if o.BaseDeviceID == 0 || o.BaseDeviceID > store.MaxDeviceID || o.BaseSize == 0 {
		return errors.Errorf("adopt: base device thin id %d, size %d: both must be set (thin ids 1..%d)", o.BaseDeviceID, o.BaseSize, store.MaxDeviceID)
	}
	if o.NoMinFreeSpace && o.MinFreeSpace != 0 {
		return errors.Wrapf(ErrInvalidSize, "adopt: minimum free space %.1f%% given with NoMinFreeSpace; choose one", o.MinFreeSpace)
	}
	if o.MinFreeSpace == 0 && !o.NoMinFreeSpace {
		o.MinFreeSpace = DefaultMinFreeSpace
	}
	ids := map[string]bool{}
	thin := map[uint32]string{o.BaseDeviceID: "the base device"}
	for _, d := range o.Devices {
		if err := ValidateID(d.ID); err != nil {
			return errors.Wrap(err, "adopt")
		}
		if ids[d.ID] {
			return errors.Wrapf(ErrDeviceExists, "adopt: id %q is given twice", d.ID)
		}
		ids[d.ID] = true
		if d.DeviceID == 0 || d.DeviceID > store.MaxDeviceID {
			return errors.Errorf("adopt: device %q has thin id %d outside 1..%d", d.ID, d.DeviceID, store.MaxDeviceID)
		}
		if other, ok := thin[d.DeviceID]; ok {
			return errors.Errorf("adopt: device %q and %s both name thin id %d", d.ID, other, d.DeviceID)
		}
		thin[d.DeviceID] = "device " + d.ID
		if d.Size == 0 {
			return errors.Errorf("adopt: device %q has no size", d.ID)
		}
		if err := validateLabels(d.Labels); err != nil {
			return errors.Wrapf(err, "adopt: device %q", d.ID)
		}
	}
	for _, d := range o.Devices {
		if d.Parent != "" && !ids[d.Parent] {
			return errors.Wrapf(ErrParentNotFound, "adopt: device %q names parent %q, which is not adopted", d.ID, d.Parent)
		}
	}
	return nil
}

// adoptRegistry writes the registry of an adopted pool: every device
// record and pool.json in the staging directory, then one rename to
// <root>/devicemapper. It touches nothing outside root.
func adoptRegistry(root string, o AdoptOptions) error {
	if err := validateAdopt(&o); err != nil {
		return err
	}
	if Exists(root) {
		return errors.Wrapf(ErrAlreadyInit, "%s", filepath.Join(stateDir(root), store.PoolFileName))
	}
	if o.DataFile != "" && (o.DataSize == 0 || o.MetadataSize == 0) {
		for _, f := range []struct {
			path string
			size *uint64
		}{{o.DataFile, &o.DataSize}, {o.MetadataFile, &o.MetadataSize}} {
			st, err := os.Stat(f.path)
			if err != nil {
				return errors.Wrap(err, "adopt")
			}
			if *f.size == 0 {
				*f.size = uint64(st.Size())
			}
		}
	}
	if err := os.MkdirAll(root, 0o700); err != nil {
		return errors.Wrapf(err, "create directory %s", root)
	}
	// One adopt at a time per root: the flock is on the root directory,
	// which exists before and after (the registry's own lock file is
	// inside the directory being built).
	lk, err := os.Open(root)
	if err != nil {
		return errors.Wrapf(err, "open %s", root)
	}
	defer lk.Close()
	if err := unix.Flock(int(lk.Fd()), unix.LOCK_EX); err != nil {
		return errors.Wrapf(err, "lock %s", root)
	}
	if Exists(root) { // another adopt finished meanwhile
		return errors.Wrapf(ErrAlreadyInit, "%s", filepath.Join(stateDir(root), store.PoolFileName))
	}
	if ents, err := os.ReadDir(stateDir(root)); err == nil && len(ents) > 0 {
		return errors.Errorf("adopt: %s exists and holds no pool.json; it is not a registry adopt can replace: choose another root", stateDir(root))
	}
	staging := filepath.Join(root, adoptStagingName)
	// What an interrupted adopt left: only its own staging directory.
	if err := os.RemoveAll(staging); err != nil {
		return errors.Wrapf(err, "remove the staging directory %s an interrupted adopt left", staging)
	}
	for _, d := range []string{staging, filepath.Join(root, mountDirName)} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return errors.Wrapf(err, "create directory %s", d)
		}
	}
	key, err := dmname.RootKey(root)
	if err != nil {
		return err
	}
	now := time.Now().UTC()
	cfg := store.Config{
		Version: store.Version, Key: key, PoolName: dmname.Pool(key),
		DataFile: o.DataFile, MetadataFile: o.MetadataFile,
		DataSize: o.DataSize, MetadataSize: o.MetadataSize, BlockSize: o.BlockSize,
		MinFreeSpace: o.MinFreeSpace, Filesystem: o.Filesystem, MountOptions: o.MountOptions,
		BaseDeviceID: o.BaseDeviceID, BaseSize: o.BaseSize, BaseUUID: o.BaseUUID,
		Created: now, AdoptedFrom: o.Origin, ForeignTransactionID: o.TransactionID,
	}
	if o.ThinPoolDevice != "" {
		cfg.PoolName, cfg.ExternalPool = o.ThinPoolDevice, true
	}
	next := o.BaseDeviceID
	if o.Progress != nil {
		o.Progress("writing the registry", 0.1)
	}
	recs := make([]store.Device, 0, len(o.Devices))
	for _, d := range o.Devices {
		next = max(next, d.DeviceID)
		recs = append(recs, store.Device{ID: d.ID, DeviceID: d.DeviceID, Size: d.Size, Initialized: true,
			Parent: d.Parent, Created: now, Labels: copyLabels(d.Labels)})
	}
	cfg.NextDeviceID = min(next+1, store.MaxDeviceID)
	// The registry's two files, then pool.json, each written durably.
	reg := store.New(staging, nil)
	if err := reg.WriteFresh(recs, nil, cfg.NextDeviceID, nil); err != nil {
		return errors.Wrap(err, "adopt")
	}
	if err := reg.SaveConfig(cfg); err != nil {
		return err
	}
	if err := atomicfile.SyncDir(staging); err != nil {
		return errors.Wrap(err, "adopt")
	}
	if err := os.Rename(staging, stateDir(root)); err != nil {
		return errors.Wrapf(err, "adopt: rename %s to %s", staging, stateDir(root))
	}
	return errors.Wrap(atomicfile.SyncDir(root), "adopt")
}
