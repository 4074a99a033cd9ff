package thinpool

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/pkg/errors"
	"golang.org/x/sys/unix"

	"github.com/thinctl/thinctl/dm"
	"github.com/thinctl/thinctl/errdefs"
	"github.com/thinctl/thinctl/fs"
	"github.com/thinctl/thinctl/loopback"
	"github.com/thinctl/thinctl/thinpool/internal/dmname"
	"github.com/thinctl/thinctl/thinpool/internal/dmthin"
)

// resumeThin resumes thin device name (a new table, or a suspended
// device). With udev running, its disk rules are skipped
// (dm.ResumeOptions.NoDiskRules): snapshots carry their origin's
// filesystem UUID, so by-uuid links would point at any one of them, and the
// blkid probe those rules run before udev links /dev/mapper/<name> was
// about half of Activate's wait for udev (the udev VM test
// TestActivatedThinDevicesSkipUdevsDiskRules). The /dev/mapper link and
// the flags that keep it through a later "add" event stay.
func (p *Pool) resumeThin(ctx context.Context, name string) error {
	return p.dm.ResumeWith(ctx, name, dm.ResumeOptions{NoDiskRules: true})
}

// blockDev is a data or metadata device of the pool.
type blockDev struct {
	Path string // /dev/loopN or the raw device
	Dev  uint64
	Size uint64
	Loop bool // we bound it to a file
}

// rawDevice describes a block device given by path.
func rawDevice(path string) (blockDev, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return blockDev{}, errors.Wrapf(err, "stat %s", path)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFBLK {
		return blockDev{}, errors.Errorf("%s is not a block device", path)
	}
	size, err := fs.DeviceSize(path)
	if err != nil {
		return blockDev{}, err
	}
	return blockDev{Path: path, Dev: uint64(st.Rdev), Size: size}, nil
}

// loopFor returns the loop device bound to file, binding one when none is.
func loopFor(ctx context.Context, file string) (blockDev, error) {
	info, err := loopback.FindByBackingFile(file)
	if err != nil && !errors.Is(err, loopback.ErrNotFound) {
		return blockDev{}, errors.Wrapf(err, "look for a loop device of %s", file)
	}
	if err != nil || info.ReadOnly {
		if info, err = loopback.Attach(ctx, file, loopback.Options{}); err != nil {
			return blockDev{}, errors.Wrapf(err, "attach %s to a loop device", file)
		}
	}
	size, err := fs.DeviceSize(info.Path)
	if err != nil {
		return blockDev{}, err
	}
	return blockDev{Path: info.Path, Dev: info.Dev, Size: size, Loop: true}, nil
}

// detachLoopFor unbinds the loop device of file, if any.
func detachLoopFor(ctx context.Context, file string) error {
	info, err := loopback.FindByBackingFile(file)
	if errors.Is(err, loopback.ErrNotFound) || errors.Is(err, os.ErrNotExist) {
		return nil // nothing bound, or the file is gone (its loop device went with the pool's table)
	}
	if err != nil {
		return errors.Wrapf(err, "look for a loop device of %s", file)
	}
	if err := loopback.Detach(ctx, info.Path); err != nil && !errors.Is(err, loopback.ErrNotFound) {
		return errors.Wrapf(err, "detach %s from %s", info.Path, file)
	}
	return nil
}

func (p *Pool) dataFilePath() string { return p.poolFilePath(p.cfg.DataFile) }

func (p *Pool) metaFilePath() string { return p.poolFilePath(p.cfg.MetadataFile) }

// poolFilePath resolves a pool file named in pool.json: relative to
// <root>/devicemapper, or absolute (a pool Adopt took over).
func (p *Pool) poolFilePath(name string) string {
	if name == "" || filepath.IsAbs(name) {
		return name
	}
	return filepath.Join(p.dir, name)
}

// dataAndMeta returns the pool's data and metadata block devices,
// binding loop devices to the files when needed.
func (p *Pool) dataAndMeta(ctx context.Context) (data, meta blockDev, err error) {
	if p.cfg.DataFile != "" {
		if err = p.finishPartialMetadata(); err != nil {
			return
		}
		if data, err = loopFor(ctx, p.dataFilePath()); err != nil {
			return
		}
		meta, err = loopFor(ctx, p.metaFilePath())
		return
	}
	if data, err = rawDevice(p.cfg.DataDevice); err != nil {
		return
	}
	meta, err = rawDevice(p.cfg.MetadataDevice)
	return
}

// poolUp makes sure the pool device exists with a live table: binding the
// loop devices and creating the pool after a reboot, resuming it when it
// was left suspended, and doing nothing when it is already up.
func (p *Pool) poolUp(ctx context.Context) error {
	name := p.cfg.PoolName
	info, err := p.dm.Info(name)
	if err != nil && !errors.Is(err, dm.ErrNotFound) {
		return errors.Wrapf(err, "thin pool %s", name)
	}
	if p.cfg.ExternalPool {
		if err != nil || !info.LiveTable {
			return errors.Errorf("thin-pool device %s is not active; it is not managed here: bring it up first", name)
		}
		if info.Suspended {
			return errors.Wrapf(p.dm.Resume(ctx, name), "resume thin pool %s", name)
		}
		return nil
	}
	if err == nil && info.LiveTable {
		if info.Suspended {
			return errors.Wrapf(p.dm.Resume(ctx, name), "resume thin pool %s", name)
		}
		return nil
	}
	data, meta, err2 := p.dataAndMeta(ctx)
	if err2 != nil {
		return err2
	}
	created := false
	if err != nil { // not found
		if _, err := p.dm.Create(name, dm.CreateOptions{UUID: dmname.PoolUUID(p.cfg.Key)}); err != nil {
			return errors.Wrapf(err, "create thin pool device %s", name)
		}
		created = true
	}
	t := dmthin.PoolTable{MetaDev: meta.Dev, DataDev: data.Dev, DataBytes: data.Size, BlockSize: p.cfg.BlockSize, NoDiscard: p.cfg.NoDiscard}.Target()
	if err := p.dm.LoadTable(name, []dm.Target{t}, dm.LoadOptions{}); err != nil {
		if created {
			_ = p.dm.Remove(ctx, name, dm.RemoveOptions{})
		}
		return errors.Wrapf(err, "load thin-pool table %q into %s", t.Params, name)
	}
	if err := p.dm.Resume(ctx, name); err != nil {
		if created {
			_ = p.dm.Remove(ctx, name, dm.RemoveOptions{})
		}
		return errors.Wrapf(err, "resume thin pool %s", name)
	}
	return nil
}

// poolDev returns the device number of the pool.
func (p *Pool) poolDev() (uint64, error) {
	info, err := p.dm.Info(p.cfg.PoolName)
	if err != nil {
		return 0, errors.Wrapf(err, "thin pool %s", p.cfg.PoolName)
	}
	return info.Dev, nil
}

// rawStatus reads and parses the pool's status line.
func (p *Pool) rawStatus() (dmthin.PoolStatus, error) {
	ts, err := p.dm.Status(p.cfg.PoolName, dm.StatusOptions{NoFlush: true})
	if err != nil {
		return dmthin.PoolStatus{}, errors.Wrapf(err, "status of thin pool %s", p.cfg.PoolName)
	}
	if len(ts) != 1 || ts[0].Type != "thin-pool" {
		return dmthin.PoolStatus{}, errors.Errorf("%s is not a thin-pool device (%d targets)", p.cfg.PoolName, len(ts))
	}
	return dmthin.ParsePoolStatus(ts[0].Params)
}

// poolTransactionID returns the pool's current transaction id.
func (p *Pool) poolTransactionID() (uint64, error) {
	st, err := p.rawStatus()
	if err != nil {
		return 0, err
	}
	if st.Failed {
		return 0, p.confirmKept("")
	}
	return st.TransactionID, nil
}

// poolDown removes the pool device (never an external one) and unbinds
// the loop devices of its files.
func (p *Pool) poolDown(ctx context.Context) error {
	if p.cfg.ExternalPool {
		return nil
	}
	// The loop devices the live table uses, read before the table goes:
	// a backing file deleted under the live pool can no longer be matched
	// by device and inode, but the loop device bound to it still holds it.
	loops := p.poolLoopDevices()
	if err := p.dm.Remove(ctx, p.cfg.PoolName, dm.RemoveOptions{}); err != nil && !errors.Is(err, dm.ErrNotFound) {
		if errors.Is(err, dm.ErrBusy) {
			return errdefs.Wrapf(ErrBusy, err, "thin pool %s is still in use: %v", p.cfg.PoolName, err)
		}
		return errors.Wrapf(err, "remove thin pool %s", p.cfg.PoolName)
	}
	if p.cfg.DataFile == "" {
		return nil
	}
	for _, l := range loops {
		if err := loopback.Detach(ctx, l); err != nil && !errors.Is(err, loopback.ErrNotFound) {
			return errors.Wrapf(err, "detach %s, a loop device of thin pool %s", l, p.cfg.PoolName)
		}
	}
	if err := detachLoopFor(ctx, p.dataFilePath()); err != nil {
		return err
	}
	return detachLoopFor(ctx, p.metaFilePath())
}

// poolLoopDevices returns the /dev/loopN paths the pool's live table
// depends on; none when the pool is not active.
func (p *Pool) poolLoopDevices() []string {
	deps, err := p.dm.Deps(p.cfg.PoolName)
	if err != nil {
		return nil
	}
	var out []string
	for _, d := range deps {
		target, err := os.Readlink(fmt.Sprintf("/sys/dev/block/%d:%d", unix.Major(d), unix.Minor(d)))
		if name := filepath.Base(target); err == nil && strings.HasPrefix(name, "loop") {
			out = append(out, "/dev/"+name)
		}
	}
	return out
}
