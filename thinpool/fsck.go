package thinpool

import (
	"context"
	"path/filepath"
	"sort"
	"strconv"

	"github.com/pkg/errors"

	"github.com/thinctl/thinctl/fs"
	"github.com/thinctl/thinctl/thinpool/internal/dmname"
	"github.com/thinctl/thinctl/thinpool/internal/fserrors"
)

// fsErrorsName is the file in the pool's directory that lists, one id a
// line, the devices whose filesystem recorded errors when Repair looked;
// Check reports them until Fsck finds the filesystem clean.
const fsErrorsName = "filesystem-errors"

// fsErrors is the pool's list of devices with filesystem errors.
func (p *Pool) fsErrors() fserrors.List { return fserrors.List(filepath.Join(p.dir, fsErrorsName)) }

// FsckResult says what Fsck did.
type FsckResult struct {
	fs.FsckResult
	// Activated is true when Fsck activated the device for the check (it
	// is deactivated again).
	Activated bool
}

// Fsck checks and repairs the filesystem of device id (e2fsck or
// xfs_repair), which must not be mounted or open; an inactive device is
// activated for the check and deactivated after.
func (p *Pool) Fsck(ctx context.Context, id string) (FsckResult, error) {
	var res FsckResult
	if err := ValidateID(id); err != nil {
		return res, err
	}
	if err := p.lk.Lock(); err != nil {
		return res, err
	}
	defer p.lk.Unlock()
	d, err := p.liveDevice(id)
	if err != nil {
		return res, err
	}
	if h, err := p.healthLocked(); err == nil {
		if herr := h.Refusal(); herr != nil {
			return res, herr
		}
	}
	mp := p.MountPath(id)
	if m, _ := fs.IsMounted(mp); m {
		return res, errors.Wrapf(ErrBusy, "device %q is mounted at %s; unmount it first", id, mp)
	}
	name := dmname.Thin(p.cfg.Key, d.DeviceID)
	if info, err := p.dm.Info(name); err == nil && info.OpenCount > 0 {
		return res, errors.Wrapf(ErrBusy, "device %q is open%s", id, p.holdersText(info.Dev, mp))
	} else if err != nil {
		res.Activated = true
	}
	path, err := p.activateThin(ctx, d.DeviceID, d.Size)
	if err != nil {
		return res, errors.Wrapf(err, "activate %q", id)
	}
	if res.Activated {
		defer func() { _ = p.deactivateThin(context.WithoutCancel(ctx), d.DeviceID, mp) }()
	}
	t := p.cfg.Filesystem
	if pr, err := fs.Probe(path); err == nil {
		t = pr.Type
	}
	r, err := fs.Fsck(ctx, path, t)
	res.FsckResult = r
	if err != nil {
		return res, errors.Wrapf(err, "check the filesystem of %q", id)
	}
	if r.Clean {
		_ = p.fsErrors().Set(id, false)
	}
	return res, nil
}

// scanFsErrors reads the superblock of every device (activating inactive
// ones for the read) and records those whose filesystem recorded errors;
// it returns their ids.
func (p *Pool) scanFsErrors(ctx context.Context) []string {
	recs, err := p.store.List()
	if err != nil {
		return nil
	}
	var bad []string
	for _, d := range recs {
		if d.Deleted || ctx.Err() != nil {
			continue
		}
		name := dmname.Thin(p.cfg.Key, d.DeviceID)
		_, ierr := p.dm.Info(name)
		path, err := p.activateThin(ctx, d.DeviceID, d.Size)
		if err != nil {
			continue
		}
		fe, err := fs.ReadFsErrors(path)
		if ierr != nil {
			_ = p.deactivateThin(ctx, d.DeviceID, p.MountPath(d.ID))
		}
		if err == nil && fe.HasErrors {
			bad = append(bad, d.ID)
			_ = p.fsErrors().Set(d.ID, true)
		}
	}
	return bad
}

// liveFsErrors reads, for every active device of the pool with a mounted
// ext4 filesystem, the error count the kernel keeps for it
// (/sys/fs/ext4/dm-N/errors_count) and returns the ids with errors.
func (p *Pool) liveFsErrors() map[string]uint64 {
	if err := p.refreshIndex(); err != nil {
		return nil
	}
	devs, err := p.ourDevices()
	if err != nil {
		return nil
	}
	out := map[string]uint64{}
	for _, d := range devs {
		devID, ok := p.thinDevIDOf(d)
		id, known := p.store.IDOf(devID)
		if !ok || !known {
			continue
		}
		if n := fserrors.LiveCount(d.Dev); n > 0 {
			out[id] = n
		}
	}
	return out
}

// addFsErrors reports the devices whose mounted filesystem counts errors
// and those Repair found with filesystem errors.
func (p *Pool) addFsErrors(r *Report) {
	live := p.liveFsErrors()
	ids := make([]string, 0, len(live))
	for id := range live {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		r.Problems = append(r.Problems, Problem{Kind: ProblemFilesystemErrors, ID: id, Fix: FixFilesystem,
			Detail: "the mounted filesystem counts " + strconv.FormatUint(live[id], 10) + " errors (the kernel's errors_count); unmount it"})
	}
	for _, id := range p.fsErrors().IDs() {
		if _, dup := live[id]; dup {
			continue
		}
		if _, err := p.store.Get(id); err != nil {
			_ = p.fsErrors().Set(id, false)
			continue
		}
		r.Problems = append(r.Problems, Problem{Kind: ProblemFilesystemErrors, ID: id, Fix: FixFilesystem,
			Detail: "the device's filesystem recorded errors (found after the pool's repair)"})
	}
}
