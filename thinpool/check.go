package thinpool

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/pkg/errors"

	"github.com/thinctl/thinctl/dm"
	"github.com/thinctl/thinctl/fs"
	"github.com/thinctl/thinctl/thinpool/internal/dmname"
	"github.com/thinctl/thinctl/thinpool/internal/dmthin"
	"github.com/thinctl/thinctl/thinpool/internal/poolmeta"
	"github.com/thinctl/thinctl/thinpool/internal/store"
	"github.com/thinctl/thinctl/thinpool/internal/thintools"
)

// Problem kinds Check reports.
const (
	ProblemOrphanThin         = "orphan_thin"         // a thin id in the pool with no registry record
	ProblemLeakedID           = "leaked_id"           // an active dm device of this root with no registry record
	ProblemMissingDevice      = "missing_device"      // a registry record whose thin id the pool lacks
	ProblemStaleMount         = "stale_mount"         // a mount point without a mount, or a mount without a device
	ProblemPendingTransaction = "pending_transaction" // a transaction a crash left open in the journal
	ProblemDeletedPending     = "deleted_pending"     // a deferred deletion not finished yet
)

// Problem is one inconsistency Check found.
type Problem struct {
	Kind   string // "orphan_thin", "leaked_id", "missing_device", "stale_mount", "pending_transaction", "deleted_pending", ...
	ID     string
	Detail string
	Fixed  bool
	// Fix is what brings the pool back from a health problem ("" for
	// the others: Check with Repair fixes those, or a person does).
	Fix Fix
}

// Report is the result of Check.
type Report struct {
	Consistent bool
	Problems   []Problem
	// Notes says what could not be compared (e.g. thin_dump missing).
	Notes []string
}

// Check compares registry, pool metadata and live devices. With Repair it
// fixes what can be fixed without losing data: it finishes transactions
// and deferred deletions, deletes pool devices no record refers to,
// removes leaked dm devices nobody holds and empty stale mount points.
// Consistent is true when no problem is left unfixed.
func (p *Pool) Check(ctx context.Context, opts CheckOptions) (Report, error) {
	if err := ctx.Err(); err != nil {
		return Report{}, errors.Wrap(err, "check")
	}
	if err := p.lk.Lock(); err != nil {
		return Report{}, err
	}
	defer p.lk.Unlock()
	defer p.store.Invalidate()
	var r Report
	add := func(kind, id, detail string, fixed bool) {
		r.Problems = append(r.Problems, Problem{Kind: kind, ID: id, Detail: detail, Fixed: fixed})
	}

	if err := p.addHealth(&r); err != nil {
		return r, err
	}
	p.addFsErrors(&r)
	var pendingDevID uint32 // a transaction left pending owns its device id
	if t, err := p.store.LeftTx(); err != nil {
		return r, err
	} else if t != nil {
		fixed := false
		detail := fmt.Sprintf("%s of thin id %d started %s", t.Op, t.DeviceID, t.Started.Format("2006-01-02 15:04:05"))
		if opts.Repair {
			if err := p.recoverTx(*t); err != nil {
				detail += ": " + err.Error()
			} else {
				fixed = true
			}
		}
		if !fixed {
			pendingDevID = t.DeviceID
		}
		add(ProblemPendingTransaction, t.ID, detail, fixed)
	}
	p.store.Invalidate()
	if err := p.refreshIndex(); err != nil {
		return r, err
	}
	recs, err := p.store.List()
	if err != nil {
		return r, err
	}
	byDevID := map[uint32]store.Device{}
	for _, d := range recs {
		byDevID[d.DeviceID] = d
	}

	// Deferred deletions.
	for _, d := range recs {
		if !d.Deleted || d.ReturningSpace {
			continue // space being returned is not a problem (GC waits for it)
		}
		fixed := false
		detail := "marked deleted, waiting for its holders to let go"
		if opts.Repair && p.store.Children(d.ID) == 0 {
			if err := p.removeLocked(ctx, d); err == nil {
				fixed = true
				delete(byDevID, d.DeviceID)
			} else {
				detail = err.Error()
			}
		}
		add(ProblemDeletedPending, d.ID, detail, fixed)
	}

	// Pool metadata against the registry.
	poolIDs, notes, err := p.poolDeviceIDs(ctx)
	r.Notes = append(r.Notes, notes...)
	if err != nil {
		return r, err
	}
	if poolIDs != nil {
		inPool := map[uint32]bool{}
		for _, id := range poolIDs {
			inPool[id] = true
			if _, ok := byDevID[id]; ok || id == p.cfg.BaseDeviceID || id == pendingDevID {
				continue
			}
			fixed := false
			detail := fmt.Sprintf("thin id %d is in the pool but no registry record refers to it", id)
			if opts.Repair {
				if err := p.deleteOrphan(ctx, id); err == nil {
					fixed = true
				} else {
					detail += ": " + err.Error()
				}
			}
			add(ProblemOrphanThin, itoa(id), detail, fixed)
		}
		if !inPool[p.cfg.BaseDeviceID] {
			add(ProblemMissingDevice, "", fmt.Sprintf("the base device (thin id %d) is not in the pool; new devices cannot be created", p.cfg.BaseDeviceID), false)
		}
		for _, d := range recs {
			if _, ok := byDevID[d.DeviceID]; ok && !inPool[d.DeviceID] {
				add(ProblemMissingDevice, d.ID, fmt.Sprintf("thin id %d is not in the pool; its data is gone: remove the device", d.DeviceID), false)
			}
		}
	}

	// Live device-mapper devices against the registry.
	live, err := p.ourDevices()
	if err != nil {
		return r, err
	}
	for _, ld := range live {
		devID, _ := p.thinDevIDOf(ld)
		if _, ok := byDevID[devID]; ok || devID == p.cfg.BaseDeviceID {
			continue
		}
		fixed := false
		detail := fmt.Sprintf("%s (thin id %d) is active but no registry record refers to it", ld.Name, devID)
		if opts.Repair {
			if err := p.dm.Remove(ctx, ld.Name, dm.RemoveOptions{Retries: -1}); err == nil || errors.Is(err, dm.ErrNotFound) {
				fixed = true
			} else {
				detail += ": " + err.Error()
			}
		}
		add(ProblemLeakedID, itoa(devID), detail, fixed)
	}

	// Mount points.
	mnt := filepath.Join(p.root, mountDirName)
	entries, _ := os.ReadDir(mnt)
	for _, e := range entries {
		mp := filepath.Join(mnt, e.Name())
		mounted, _ := fs.IsMounted(mp)
		rec, rerr := p.store.Get(e.Name())
		known := rerr == nil
		switch {
		case !mounted:
			fixed := false
			if opts.Repair && os.Remove(mp) == nil {
				fixed = true
			}
			add(ProblemStaleMount, e.Name(), mp+" is a leftover mount point with nothing mounted", fixed)
		case !known:
			add(ProblemStaleMount, e.Name(), mp+" is mounted but no registry record refers to it; unmount it", false)
		default:
			if _, err := p.dm.Info(dmname.Thin(p.cfg.Key, rec.DeviceID)); err != nil {
				add(ProblemStaleMount, e.Name(), mp+" is mounted but its device is not active", false)
			}
		}
	}

	r.Consistent = true
	for _, pr := range r.Problems {
		if !pr.Fixed {
			r.Consistent = false
		}
	}
	return r, nil
}

// deleteOrphan deletes a thin id no registry record refers to.
func (p *Pool) deleteOrphan(ctx context.Context, devID uint32) error {
	if err := p.deactivateThin(ctx, devID, ""); err != nil {
		return err
	}
	err := p.runTx(store.Tx{Op: store.OpDelete, DeviceID: devID}, nil)
	if err == nil || errors.Is(err, dm.ErrNoData) {
		p.store.FreeID(devID)
		return nil
	}
	return err
}

// heldRootMarkerName is the file that says this root reserved the pool's
// held metadata root: written before reserve_metadata_snap, removed after
// release_metadata_snap, so that a holder killed in between (a check
// running thin_dump, a space return reading the held root) is known by the
// next one to have left the root held, and only ours is ever released.
// The file's name on disk predates the word and stays as it is.
const heldRootMarkerName = "metadata-snapshot"

// withHeldRoot holds the pool's metadata root while fn runs (see
// poolmeta.Hold), marked by heldRootMarkerName in the pool's directory.
func (p *Pool) withHeldRoot(fn func(dmthin.PoolStatus) error) ([]string, error) {
	return poolmeta.Hold(p.dm, p.cfg.PoolName, filepath.Join(p.dir, heldRootMarkerName), p.rawStatus, fn)
}

// poolDeviceIDs lists the thin ids in the pool's metadata through a held
// metadata root and thin_dump. It returns nil and a note when that is not
// possible (thin_dump missing, another program holds the root); notes also
// tell of a held root a killed holder left, released here. An error means
// the root this call reserved could not be released.
func (p *Pool) poolDeviceIDs(ctx context.Context) ([]uint32, []string, error) {
	tool, err := exec.LookPath("thin_dump")
	if err != nil {
		return nil, []string{"thin_dump is not installed: pool metadata was not compared (install thin-provisioning-tools)"}, nil
	}
	metaPath, err := p.metadataDevicePath()
	if err != nil {
		return nil, []string{"pool metadata was not compared: " + err.Error()}, nil
	}
	var out, stderr bytes.Buffer
	var runErr error
	notes, err := p.withHeldRoot(func(dmthin.PoolStatus) error {
		cmd := exec.CommandContext(ctx, tool, "-m", metaPath)
		cmd.Stdout, cmd.Stderr = &out, &stderr
		runErr = cmd.Run()
		return nil
	})
	var unavailable *poolmeta.UnavailableError
	if errors.As(err, &unavailable) {
		return nil, append(notes, "pool metadata was not compared: "+unavailable.Reason), nil
	}
	if err != nil {
		return nil, notes, err
	}
	if runErr != nil {
		if cerr := ctx.Err(); cerr != nil {
			return nil, notes, errors.Wrap(cerr, "thin_dump of the pool's held metadata root stopped")
		}
		return nil, append(notes, fmt.Sprintf("pool metadata was not compared: thin_dump -m %s: %v: %s", metaPath, runErr, strings.TrimSpace(stderr.String()))), nil
	}
	ids, err := thintools.ParseDumpDeviceIDs(&out)
	if err != nil {
		return nil, append(notes, "pool metadata was not compared: "+err.Error()), nil
	}
	return ids, notes, nil
}

// metadataDevicePath finds the pool's metadata device from its live table.
func (p *Pool) metadataDevicePath() (string, error) {
	meta, _, err := p.poolTableDevices()
	if err != nil {
		return "", err
	}
	return fs.DevicePath(meta)
}
