package dockerdm

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"github.com/pkg/errors"
	"golang.org/x/sys/unix"

	"github.com/thinctl/thinctl/dm"
	"github.com/thinctl/thinctl/fs"
	"github.com/thinctl/thinctl/loopback"
)

// Session gives read-only access to the filesystems of a store's thin
// devices. A pool that is down is brought up read-only for the session
// (its loop devices bound read-only, the thin-pool table with the
// read_only feature), and taken down again by Close; each device is
// activated read-only under a name of the session's own and mounted
// without journal replay (ext4 noload, xfs norecovery,nouuid) and with
// nodev, nosuid and noexec. Nothing the session does writes the pool's
// metadata or Docker's files.
type Session struct {
	c       *dm.Client
	s       *Store
	pool    string // the pool's name (Docker's, or ours when we made it)
	fsType  fs.Type
	dir     string // mount points
	loops   []string
	ourPool bool
	devices []string
	mounts  []string
	mounted map[string]string // hash -> mount point
}

// OpenSession prepares read-only access; c may be nil (dm.Default). dir
// holds the mount points (created, and removed by Close).
func OpenSession(ctx context.Context, s *Store, c *dm.Client, dir string) (ss *Session, err error) {
	if c == nil {
		if c, err = dm.Default(); err != nil {
			return nil, errors.Wrap(err, "device-mapper")
		}
	}
	t := fs.Ext4
	if s.DeviceSet != nil && s.DeviceSet.BaseDeviceFilesystem == "xfs" {
		t = fs.XFS
	}
	ss = &Session{c: c, s: s, pool: s.PoolName, fsType: t, dir: dir}
	defer func() {
		if err != nil {
			ss.Close(context.WithoutCancel(ctx))
		}
	}()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return ss, errors.Wrap(err, "session directory")
	}
	if _, err := c.Info(s.PoolName); err == nil {
		return ss, nil // up already: used as it is
	} else if !errors.Is(err, dm.ErrNotFound) {
		return ss, errors.Wrapf(err, "look up pool %s", s.PoolName)
	}
	if s.MetadataFile == "" {
		return ss, errors.Errorf("pool %s is not active: bring up the pool's volume group first", s.PoolName)
	}
	b := make([]byte, 4096)
	f, err := openStoreFile(s.MetadataFile)
	if err != nil {
		return ss, errors.Wrap(err, "pool metadata")
	}
	_, err = f.ReadAt(b, 0)
	f.Close()
	if err != nil {
		return ss, errors.Wrapf(err, "read %s", s.MetadataFile)
	}
	sb, err := ParseSuperblock(b)
	if err != nil {
		return ss, errors.Wrapf(err, "pool metadata %s", s.MetadataFile)
	}
	var devs [2]uint64
	for i, file := range []string{s.MetadataFile, s.DataFile} {
		info, err := loopback.Attach(ctx, file, loopback.Options{ReadOnly: true})
		if err != nil {
			return ss, errors.Wrapf(err, "bind %s read-only", file)
		}
		ss.loops = append(ss.loops, info.Path)
		devs[i] = info.Dev
	}
	// The table's length is what the metadata says the data device
	// holds: a longer one would be a resize, which a read-only pool
	// cannot record.
	have, err := fs.DeviceSize(ss.loops[1])
	if err != nil {
		return ss, err
	}
	size := sb.DataBlocks * uint64(sb.DataBlockSize)
	if have/512 < size {
		return ss, errors.Wrapf(ErrPartial, "%s holds %d sectors, the pool's metadata says %d", s.DataFile, have/512, size)
	}
	ss.pool = "thinctl-ro-" + s.Prefix + "-pool"
	ss.ourPool = true
	params := fmt.Sprintf("%d:%d %d:%d %d 32768 2 read_only skip_block_zeroing", unix.Major(devs[0]), unix.Minor(devs[0]), unix.Major(devs[1]), unix.Minor(devs[1]), sb.DataBlockSize)
	if err := ss.activate(ctx, ss.pool, dm.Target{Length: size, Type: "thin-pool", Params: params}, false); err != nil {
		ss.ourPool = false
		return ss, err
	}
	return ss, nil
}

// activate makes device name with table t (loaded read-only when ro: the
// kernel refuses that flag for a thin-pool, whose read_only feature and
// read-only loop devices keep it from writing instead).
func (ss *Session) activate(ctx context.Context, name string, t dm.Target, ro bool) error {
	if _, err := ss.c.Create(name, dm.CreateOptions{}); err != nil {
		return errors.Wrapf(err, "create %s", name)
	}
	if err := ss.c.LoadTable(name, []dm.Target{t}, dm.LoadOptions{ReadOnly: ro}); err != nil {
		ss.c.Remove(ctx, name, dm.RemoveOptions{})
		return errors.Wrapf(err, "load %s", name)
	}
	if err := ss.c.Resume(ctx, name); err != nil {
		ss.c.Remove(ctx, name, dm.RemoveOptions{})
		return errors.Wrapf(err, "resume %s", name)
	}
	return nil
}

// Mount activates the device with this hash read-only and mounts its
// filesystem read-only; it returns the mount point (Docker's layers keep
// their tree under rootfs/ inside it). A device mounted already in the
// session is not mounted again.
func (ss *Session) Mount(ctx context.Context, hash string) (string, error) {
	if mp, ok := ss.mounted[hash]; ok {
		return mp, nil
	}
	rec, ok := ss.s.Records[hash]
	if !ok {
		return "", errors.Wrapf(ErrCorrupt, "device %s has no record", hash)
	}
	name := "thinctl-ro-" + ss.s.Prefix + "-" + strconv.FormatUint(uint64(rec.DeviceID), 10)
	pinfo, err := ss.c.Info(ss.pool)
	if err != nil {
		return "", errors.Wrapf(err, "pool %s", ss.pool)
	}
	t := dm.Target{Length: rec.Size / 512, Type: "thin", Params: fmt.Sprintf("%d:%d %d", unix.Major(pinfo.Dev), unix.Minor(pinfo.Dev), rec.DeviceID)}
	if err := ss.activate(ctx, name, t, true); err != nil {
		return "", err
	}
	ss.devices = append(ss.devices, name)
	mp := filepath.Join(ss.dir, strconv.FormatUint(uint64(rec.DeviceID), 10))
	// The store's filesystems are foreign: no device nodes, setuid bits or
	// programs of theirs take effect through this mount.
	opts := []string{"nodev", "nosuid", "noexec", "noload"}
	if ss.fsType == fs.XFS {
		opts = []string{"nodev", "nosuid", "noexec", "norecovery", "nouuid"}
	}
	if err := fs.Mount(dm.NodePath(name), mp, ss.fsType, fs.MountOptions{ReadOnly: true, Options: opts}); err != nil {
		return "", errors.Wrapf(err, "mount device %s (thin id %d) read-only", hash, rec.DeviceID)
	}
	ss.mounts = append(ss.mounts, mp)
	if ss.mounted == nil {
		ss.mounted = map[string]string{}
	}
	ss.mounted[hash] = mp
	return mp, nil
}

// Close unmounts and deactivates what the session made, in reverse, and
// returns the first error.
func (ss *Session) Close(ctx context.Context) error {
	var first error
	keep := func(err error) {
		if err != nil && first == nil {
			first = err
		}
	}
	for i := len(ss.mounts) - 1; i >= 0; i-- {
		keep(fs.Unmount(ss.mounts[i], fs.UnmountOptions{}))
		os.Remove(ss.mounts[i])
	}
	ss.mounts, ss.mounted = nil, nil
	for i := len(ss.devices) - 1; i >= 0; i-- {
		keep(ss.c.Remove(ctx, ss.devices[i], dm.RemoveOptions{}))
	}
	ss.devices = nil
	if ss.ourPool {
		keep(ss.c.Remove(ctx, ss.pool, dm.RemoveOptions{}))
		ss.ourPool = false
	}
	for i := len(ss.loops) - 1; i >= 0; i-- {
		keep(loopback.Detach(ctx, ss.loops[i]))
	}
	ss.loops = nil
	return first
}
