package thinpool

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/pkg/errors"

	"github.com/thinctl/thinctl/errdefs"
	"github.com/thinctl/thinctl/fs"
	"github.com/thinctl/thinctl/internal/failpoint"
	"github.com/thinctl/thinctl/thinpool/internal/thintools"
)

// ErrToolMissing is returned when a program thinctl runs (thin_check,
// thin_repair, e2fsck, xfs_repair) is not installed.
var ErrToolMissing = thintools.ErrMissing

// ErrMetadataDamaged is returned by Repair when the pool's metadata fails
// thin_check and no spare metadata device was given for an external
// metadata device, or thin_repair could not rebuild it.
var ErrMetadataDamaged = thintools.ErrDamaged

// RepairOptions are Repair's options.
type RepairOptions struct {
	// SpareMetadataDevice is the block device thin_repair writes the
	// repaired metadata to for a pool on block devices (--metadata-dev);
	// a loop pool gets a new file next to the old one instead.
	SpareMetadataDevice string
}

// RepairResult says what Repair did.
type RepairResult struct {
	// Repaired is true when thin_repair rebuilt the metadata; false when
	// thin_check passed and the pool only needed a fresh activation.
	Repaired bool
	// ClearedNeedsCheck is true when the needs_check flag was set and
	// thin_check cleared it.
	ClearedNeedsCheck bool
	// OldMetadata and NewMetadata name the metadata before and after a
	// repair (the old one is kept untouched); equal when not repaired.
	OldMetadata, NewMetadata string
	// CheckOutput is what thin_check said about the old metadata.
	CheckOutput string
	// Lost lists the registry ids whose thin device the pool's metadata
	// no longer has; their records are kept (Check reports them) for a
	// person to remove.
	Lost []string
	// FilesystemErrors lists the devices whose filesystem recorded
	// errors (Check reports them until Fsck finds them clean).
	FilesystemErrors []string
	// Notes says what could not be compared.
	Notes []string
}

// Repair brings a pool that went read-only, failed or needs a check back
// to read-write, like lvconvert --repair: it refuses while a device of the
// pool is open (naming them), deactivates the thin devices and the pool,
// runs thin_check on the metadata and, when that passes, clears
// needs_check and activates the pool again (nothing else). When it fails,
// thin_repair writes fresh metadata (a new file next to the old one for a
// loop pool, opts.SpareMetadataDevice otherwise), pool.json is switched to
// it durably and the old metadata is left untouched. The pool then comes
// up read-write, interrupted transactions are finished from the repaired
// metadata, and the registry's devices the metadata lacks are listed in
// Lost, never dropped.
//
// A crash at any step leaves the pool on the metadata pool.json names
// (the old one until the switch): the next Repair starts again, a
// half-written new metadata file is removed.
func (p *Pool) Repair(ctx context.Context, opts RepairOptions) (RepairResult, error) {
	var res RepairResult
	if err := ctx.Err(); err != nil {
		return res, errors.Wrap(err, "repair")
	}
	if p.cfg.ExternalPool {
		return res, errors.Wrapf(errdefs.ErrNotSupported, "thin pool %s is not managed by thinctl: repair it with the tool that manages it (lvconvert --repair for LVM)", p.cfg.PoolName)
	}
	check, err := thintools.Find("thin_check")
	if err != nil {
		return res, err
	}
	p.stopReturning(false)
	if err := p.lk.Lock(); err != nil {
		return res, err
	}
	defer p.lk.Unlock()
	defer p.store.Invalidate()
	if err := p.refuseOpenDevices(); err != nil {
		return res, err
	}
	old := p.metadataSource()
	res.OldMetadata, res.NewMetadata = old, old
	if err := p.removePartials(); err != nil {
		return res, err
	}

	p.report("deactivating the thin devices and the pool", 0.1)
	if err := p.deactivateAll(ctx); err != nil {
		return res, err
	}
	if err := p.poolDown(ctx); err != nil {
		return res, err
	}
	failpoint.Inject(failpoint.RepairAfterDown)

	p.report("checking the pool's metadata (thin_check)", 0.3)
	out, cerr := thintools.Run(ctx, check, old)
	res.CheckOutput = out
	if cerr == nil {
		// Only a fresh activation is needed; the flag is cleared only
		// because the check passed.
		if out2, err := thintools.Run(ctx, check, "--clear-needs-check-flag", old); err != nil {
			return res, errors.Wrapf(err, "thin_check --clear-needs-check-flag %s: %s", old, out2)
		}
		res.ClearedNeedsCheck = true
	} else {
		if err := ctx.Err(); err != nil {
			return res, errors.Wrap(err, "thin_check stopped")
		}
		p.report("rebuilding the pool's metadata (thin_repair)", 0.5)
		newMeta, err := p.rebuildMetadata(ctx, old, opts)
		if err != nil {
			// Leave the pool as it was found: up on its old metadata.
			if uerr := p.poolUp(context.WithoutCancel(ctx)); uerr != nil {
				return res, errors.Wrapf(err, "and bringing the pool up again failed (%v)", uerr)
			}
			return res, err
		}
		res.Repaired, res.NewMetadata = true, newMeta
	}

	p.report("activating the pool", 0.7)
	if err := p.poolUp(ctx); err != nil {
		return res, err
	}
	st, err := p.rawStatus()
	if err != nil {
		return res, err
	}
	if st.Failed || st.Mode == "ro" || st.NeedsCheck {
		return res, errors.Wrapf(p.confirmKept(""), "after repair")
	}

	p.report("reconciling the registry with the pool's metadata", 0.85)
	if err := p.reconcileAfterRepair(ctx, &res); err != nil {
		return res, err
	}
	p.report("reading the devices' filesystem states", 0.9)
	res.FilesystemErrors = p.scanFsErrors(ctx)
	p.report("done", 1)
	return res, nil
}

// refuseOpenDevices fails with ErrBusy naming every open thin device of
// the pool (and where it is mounted) before anything is changed.
func (p *Pool) refuseOpenDevices() error {
	devs, err := p.ourDevices()
	if err != nil {
		return err
	}
	_ = p.refreshIndex()
	var busy []string
	for _, d := range devs {
		info, err := p.dm.Info(d.Name)
		if err != nil || info.OpenCount == 0 {
			continue
		}
		label := d.Name
		if devID, ok := p.thinDevIDOf(d); ok {
			if id, known := p.store.IDOf(devID); known {
				label = id
				if mounted, _ := fs.IsMounted(p.MountPath(id)); mounted {
					label += " (mounted at " + p.MountPath(id) + ")"
				}
			}
		}
		busy = append(busy, label)
	}
	if len(busy) > 0 {
		sort.Strings(busy)
		return errors.Wrapf(ErrBusy, "devices of thin pool %s are in use: %s; unmount them and stop what holds them", p.cfg.PoolName, strings.Join(busy, ", "))
	}
	return nil
}

// metadataSource is the file or device holding the pool's metadata.
func (p *Pool) metadataSource() string {
	if p.cfg.DataFile != "" {
		return p.metaFilePath()
	}
	return p.cfg.MetadataDevice
}

// reconcileAfterRepair finishes transactions left open (recovery now reads
// the repaired metadata) and lists the records whose thin device the pool
// no longer has.
func (p *Pool) reconcileAfterRepair(ctx context.Context, res *RepairResult) error {
	p.store.Invalidate()
	if err := p.ensureIndex(); err != nil {
		return errors.Wrap(err, "finish the transactions left open")
	}
	ids, notes, err := p.poolDeviceIDs(ctx)
	res.Notes = append(res.Notes, notes...)
	if err != nil || ids == nil {
		return err
	}
	in := map[uint32]bool{}
	for _, id := range ids {
		in[id] = true
	}
	recs, err := p.store.List()
	if err != nil {
		return err
	}
	for _, d := range recs {
		if !in[d.DeviceID] && !d.Deleted {
			res.Lost = append(res.Lost, d.ID)
		}
	}
	sort.Strings(res.Lost)
	if !in[p.cfg.BaseDeviceID] {
		res.Notes = append(res.Notes, fmt.Sprintf("the base device (thin id %d) is not in the repaired metadata; new devices cannot be created", p.cfg.BaseDeviceID))
	}
	return nil
}
