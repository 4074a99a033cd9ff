package thinpool

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/pkg/errors"
	"golang.org/x/sys/unix"

	"github.com/thinctl/thinctl/dm"
	"github.com/thinctl/thinctl/internal/failpoint"
	"github.com/thinctl/thinctl/internal/thinmeta"
	"github.com/thinctl/thinctl/thinpool/internal/dmname"
	"github.com/thinctl/thinctl/thinpool/internal/dmthin"
	"github.com/thinctl/thinctl/thinpool/internal/hostfs"
	"github.com/thinctl/thinctl/thinpool/internal/poolmeta"
	"github.com/thinctl/thinctl/thinpool/internal/store"
)

// Returning the space of an inactive removed device without activating it.
//
// Activating a removed device only to discard it costs a table load, a
// resume and a DM_DEV_REMOVE (most of a remove's price under emulation),
// and the discard unmaps blocks the delete would free anyway. The pool's
// metadata says which data blocks the device alone maps: read through the
// held metadata root (the read-only copy reserve_metadata_snap makes the
// pool keep: withHeldRoot, thinmeta), its exclusive blocks are
// the blocks the delete frees. None (an unwritten snapshot, a device whose
// every block a snapshot still shares): the delete is all there is to do;
// the common case of all, a device whose very tree another device has (a
// snapshot neither wrote to), is seen in the live metadata without a held
// root (sharesRootLive). docs/thin-metadata.md has the whole story.
// Some, in a pool thinctl made over a loop file: holes are punched in the
// data file for them (what the pool's discard passdown to the loop device
// would do), then the device is deleted. Anything else — an external pool
// with exclusive blocks, another program holding the metadata root, a
// reader error, a walk over its node budget — takes the old way (activate,
// discard, take down, delete).
//
// Why punching before the delete is safe. A block exclusive to D in the
// held root stays D's alone until D is deleted: the pool maps a block to a
// second device only by a snapshot of a device that maps it (create_snap),
// and a block D maps is not free for another device to be given. D is no
// user record any more, so nothing in thinctl snapshots, activates or
// writes it; returnInactive runs under D's return claim and the root lock
// and first makes sure no device-mapper device maps D (thinctl's name for
// it or any table of another name: thinMappedElsewhere), so nothing reads
// or writes the punched blocks. Blocks shared in the held root are never
// punched, even if the sharer drops them later (they are freed by their
// last owner's return). The punch comes before the delete message: once
// D is deleted the pool may give its blocks to another device at once. A
// crash between the punch and the delete leaves the returning record; the
// next return reads a held root again, punches the same holes (punching a
// hole is idempotent) and deletes D.

// returnNodeBudget bounds the btree nodes read for one return (16 MiB of
// metadata); a bigger walk takes the discard way.
const returnNodeBudget = 4096

// Outcomes of returnInactive, for hookReturnPlan.
const (
	planActive   = "active"   // the device is active: the discard way, without an activation
	planSkip     = "skip"     // no exclusive block: deleted without a discard
	planPunch    = "punch"    // holes punched in the data file, then deleted
	planFallback = "fallback" // the discard way (the detail says why)
	planBusy     = "busy"     // another device maps it: left for later (ErrBusy)
)

// hookReturnPlan, set by tests only, is told how returnInactive returns
// thin device devID's space (plan*), and why for a fallback.
var hookReturnPlan func(devID uint32, plan, detail string)

// tellPlan logs how thin device devID's space is reclaimed (and tells the
// tests' hook).
func (p *Pool) tellPlan(devID uint32, plan, detail string) {
	p.log.Debug("space reclaim", "thin_id", devID, "way", plan, "detail", detail)
	if hookReturnPlan != nil {
		hookReturnPlan(devID, plan, detail)
	}
}

// returnInactive returns r's space without activating it when r's thin
// device is inactive and the held metadata root shows how (see above), and
// reports whether it did (r is then deleted). false with a nil error means
// the caller takes the discard way. The caller holds r's claim and the
// root lock.
func (p *Pool) returnInactive(ctx context.Context, r store.Device) (bool, error) {
	name := dmname.Thin(p.cfg.Key, r.DeviceID)
	if _, err := p.dm.Info(name); !errors.Is(err, dm.ErrNotFound) {
		p.tellPlan(r.DeviceID, planActive, "")
		return false, nil
	}
	pl, err := p.planInactiveReturn(r)
	if errors.Is(err, ErrBusy) {
		p.tellPlan(r.DeviceID, planBusy, err.Error())
		return true, err
	}
	if err != nil {
		p.tellPlan(r.DeviceID, planFallback, err.Error())
		return false, nil
	}
	if len(pl.runs) > 0 {
		p.report(fmt.Sprintf("returning the space of removed device %q (%d blocks)", r.RemovedID, pl.blocks), 0.9)
		if err := hostfs.PunchRuns(pl.dataFile, pl.runs, pl.blockBytes); err != nil {
			// Holes in blocks only D maps harm nobody; the discard way
			// gives back the rest.
			p.tellPlan(r.DeviceID, planFallback, err.Error())
			return false, nil
		}
		p.tellPlan(r.DeviceID, planPunch, "")
		if err := failpoint.InjectErr(failpoint.ReturnAfterPunch); err != nil {
			return true, err
		}
	} else {
		p.tellPlan(r.DeviceID, planSkip, "")
	}
	return true, p.finishReturn(ctx, r)
}

// inactivePlan is what the held metadata root says about a device's space.
type inactivePlan struct {
	runs       []thinmeta.Run // exclusive data blocks, merged
	blocks     uint64         // how many
	blockBytes uint64         // the pool's data block size
	dataFile   string         // the data file to punch (when runs)
}

// planInactiveReturn reads r's exclusive blocks from a held metadata root
// and, when there are some, finds the data file to punch them in. An error
// says why the discard way must be taken.
func (p *Pool) planInactiveReturn(r store.Device) (inactivePlan, error) {
	var pl inactivePlan
	metaDev, dataDev, err := p.poolTableDevices()
	if err != nil {
		return pl, err
	}
	if shared, err := poolmeta.SharesRootLive(metaDev, r.DeviceID); err == nil && shared {
		return pl, nil // nothing to give back but the delete
	}
	if by, err := p.thinMappedBy(r.DeviceID); err != nil {
		return pl, err
	} else if by != "" {
		// The discard way would discard under it too.
		return pl, errors.Wrapf(ErrBusy, "removed device %q (thin id %d) is mapped by device-mapper device %s; its space is returned once that is gone", r.RemovedID, r.DeviceID, by)
	}
	var blocks []uint64
	var blockSectors uint32
	_, err = p.withHeldRoot(func(st dmthin.PoolStatus) error {
		var rerr error
		blocks, blockSectors, rerr = poolmeta.Exclusive(metaDev, r.DeviceID, st.DataTotal, returnNodeBudget)
		return rerr
	})
	if err != nil {
		return pl, err
	}
	pl.blockBytes = uint64(blockSectors) * 512
	if len(blocks) == 0 {
		return pl, nil
	}
	if pl.dataFile, err = p.punchableDataFile(dataDev); err != nil {
		return pl, err
	}
	pl.runs, pl.blocks = thinmeta.Runs(blocks), uint64(len(blocks))
	return pl, nil
}

// poolTableDevices returns the pool's metadata and data devices
// ("major:minor") from its live table.
func (p *Pool) poolTableDevices() (meta, data string, err error) {
	ts, err := p.dm.Table(p.cfg.PoolName, dm.TableOptions{})
	if err != nil {
		return "", "", errors.Wrapf(err, "table of %s", p.cfg.PoolName)
	}
	if len(ts) != 1 || ts[0].Type != "thin-pool" {
		return "", "", errors.Errorf("%s is not a thin pool", p.cfg.PoolName)
	}
	meta, data, ok := dmthin.PoolTableDevices(ts[0].Params)
	if !ok {
		return "", "", errors.Errorf("%s has a thin-pool table without its devices: %q", p.cfg.PoolName, ts[0].Params)
	}
	return meta, data, nil
}

// thinMappedBy names a device-mapper device that maps thin id devID of
// this pool ("" when none does). Every device with a table on the pool is a holder of
// the pool's block device (sysfs holders/); those named as thinctl names
// its own devices of other thin ids are left out (thinctl loads their
// tables with their own id), every other one's table is read.
func (p *Pool) thinMappedBy(devID uint32) (string, error) {
	poolDev, err := p.poolDev()
	if err != nil {
		return "", err
	}
	holdersDir := fmt.Sprintf("/sys/dev/block/%d:%d/holders", unix.Major(poolDev), unix.Minor(poolDev))
	holders, err := os.ReadDir(holdersDir)
	if err != nil {
		return "", errors.Wrap(err, "list the devices on the pool")
	}
	if len(holders) == 0 {
		return "", nil
	}
	all, err := p.dm.ListDevices()
	if err != nil {
		return "", errors.Wrap(err, "list device-mapper devices")
	}
	byKernelName := map[string]dm.Device{}
	for _, d := range all {
		byKernelName[fmt.Sprintf("dm-%d", unix.Minor(d.Dev))] = d
	}
	poolMajMin := fmt.Sprintf("%d:%d", unix.Major(poolDev), unix.Minor(poolDev))
	for _, h := range holders {
		d, ok := byKernelName[h.Name()]
		if !ok {
			return "", errors.Errorf("%s holds the pool and is no device-mapper device", h.Name())
		}
		if id, ours := p.thinDevIDOf(d); ours && id != devID {
			continue
		}
		ts, err := p.dm.Table(d.Name, dm.TableOptions{})
		if errors.Is(err, dm.ErrNotFound) {
			continue
		}
		if err != nil {
			return "", errors.Wrapf(err, "table of %s", d.Name)
		}
		for _, t := range ts {
			f := strings.Fields(t.Params)
			if t.Type == "thin" && len(f) >= 2 && f[0] == poolMajMin && f[1] == strconv.FormatUint(uint64(devID), 10) {
				return d.Name, nil
			}
		}
	}
	return "", nil
}

// punchableDataFile returns the data file of a pool thinctl runs over loop
// files, after making sure that the pool's data device (dataDev, from its
// live table) is the loop device of exactly that file, from its first
// byte; an error otherwise (an external pool, a pool over a raw device).
func (p *Pool) punchableDataFile(dataDev string) (string, error) {
	if p.cfg.ExternalPool || p.cfg.DataFile == "" {
		return "", errors.New("the pool's data device is not a loop file thinctl made")
	}
	file := p.dataFilePath()
	return file, hostfs.BoundWhole(dataDev, file)
}
