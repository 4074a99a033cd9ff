package thinpool

import (
	"context"
	"os"
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
	"github.com/thinctl/thinctl/thinpool/internal/store"
)

// Device is one registry entry as callers see it.
type Device struct {
	ID          string
	Parent      string // "" for snapshots of the base device
	DeviceID    uint32 // thin device id in the pool (24-bit)
	Size        uint64
	Initialized bool
	Deleted     bool
	Created     time.Time
	Active      bool
	Mounted     bool
	MountPath   string
	DevicePath  string // /dev/mapper/<name> when active
	// Used is the space the device has mapped in the pool, in bytes;
	// known only while the device is active (from its thin status).
	Used uint64
	// Labels are the caller's labels (CreateOptions.Labels, Pool.SetLabels).
	Labels map[string]string
}

// DeviceName returns the device-mapper name device id has when active.
func (p *Pool) DeviceName(id string) (string, error) {
	if err := ValidateID(id); err != nil {
		return "", err
	}
	if err := p.lk.Lock(); err != nil {
		return "", err
	}
	defer p.lk.Unlock()
	d, err := p.store.Get(id)
	if err != nil {
		return "", err
	}
	return dmname.Thin(p.cfg.Key, d.DeviceID), nil
}

// allocTx runs a create transaction with a freshly allocated device id,
// skipping ids the pool already has. build fills in the transaction for
// the id it is given. With prepare, the transaction shares its flush with
// concurrent ones (runTxShared), prepare runs just before its message and
// arrived once its begin frame is written.
func (p *Pool) allocTx(build func(devID uint32) (store.Tx, func() error), prepare func() error, arrived func()) (uint32, error) {
	for {
		devID, err := p.store.AllocID()
		if err != nil {
			return 0, err
		}
		t, commit := build(devID)
		if prepare != nil {
			err = p.runTxShared(t, prepare, commit, arrived)
		} else {
			err = p.runTx(t, commit)
		}
		if errors.Is(err, errIDTaken) {
			continue // id stays marked used: the pool has it
		}
		if err != nil {
			p.store.FreeID(devID) // (an open transaction keeps it)
			return 0, err
		}
		return devID, nil
	}
}

// createBase makes, formats and probes the base device during Init.
func (p *Pool) createBase(ctx context.Context) error {
	p.report("creating the base device", 0.2)
	devID, err := p.allocTx(func(devID uint32) (store.Tx, func() error) {
		return store.Tx{Op: store.OpCreateThin, DeviceID: devID}, nil
	}, nil, nil)
	if err != nil {
		return err
	}
	// Transaction id 1 marks the pool as thinctl's: Init refuses an
	// external pool whose id is not 0. Operations never advance it (each
	// message commits by itself; see runTx).
	if _, err := p.dm.Message(p.cfg.PoolName, 0, dm.ThinSetTransactionID(0, 1)); err != nil {
		return errors.Wrapf(err, "thin pool %s: set_transaction_id 0 1", p.cfg.PoolName)
	}
	p.cfg.BaseDeviceID = devID
	path, err := p.activateThin(ctx, devID, p.cfg.BaseSize)
	if err != nil {
		return err
	}
	failpoint.Inject(failpoint.InitAfterBase)
	p.report("formatting the base device ("+string(p.cfg.Filesystem)+")", 0.3)
	if err := fs.Mkfs(ctx, path, p.cfg.Filesystem, fs.MkfsOptions{ExtraArgs: p.cfg.MkfsArgs}); err != nil {
		_ = p.deactivateThin(ctx, devID, "")
		return errors.Wrapf(err, "format the base device %s", path)
	}
	p.report("reading the base filesystem", 0.9)
	pr, err := fs.Probe(path)
	if err != nil {
		_ = p.deactivateThin(ctx, devID, "")
		return errors.Wrapf(err, "probe the base device %s", path)
	}
	p.cfg.BaseUUID = pr.UUID
	return p.deactivateThin(ctx, devID, "")
}

// Create makes device id as a snapshot of parent ("" = the base device).
func (p *Pool) Create(ctx context.Context, id, parent string, opts CreateOptions) (err error) {
	if err := ctx.Err(); err != nil {
		return errors.Wrapf(err, "create %q", id)
	}
	if err := ValidateID(id); err != nil {
		return err
	}
	if err := validateLabels(opts.Labels); err != nil {
		return errors.Wrapf(err, "create %q", id)
	}
	if parent != "" {
		if err := ValidateID(parent); err != nil {
			return errors.Wrapf(ErrParentNotFound, "parent: %v", err)
		}
	}

	arrived := p.store.Arrive() // until its begin frame is written (runTxShared)
	defer arrived()
	if err := p.lk.Lock(); err != nil {
		return err
	}
	defer p.lk.Unlock()
	if err := p.ensureIndex(); err != nil {
		return err
	}

	if _, err := p.store.Get(id); err == nil {
		return errors.Wrapf(ErrDeviceExists, "device %q", id)
	} else if !errors.Is(err, ErrDeviceNotFound) {
		return err
	}
	if p.store.PendingCreate(id) {
		return errors.Wrapf(ErrDeviceExists, "device %q is being created", id)
	}

	originID, originSize, growPending := p.cfg.BaseDeviceID, p.cfg.BaseSize, false
	if parent != "" {
		pd, err := p.store.Get(parent)
		if errors.Is(err, ErrDeviceNotFound) || (err == nil && pd.Deleted) {
			return errors.Wrapf(ErrParentNotFound, "parent %q of %q", parent, id)
		}
		if err != nil {
			return err
		}
		originID, originSize, growPending = pd.DeviceID, pd.Size, pd.GrowPending
	}

	size := originSize
	if opts.Size != 0 {
		size = bytesize.RoundUp(opts.Size, 4*KiB)
		if size < originSize {
			return errors.Wrapf(ErrInvalidSize, "size %s of %q is smaller than its parent's %s; thin devices only grow",
				bytesize.Format(opts.Size), id, bytesize.Format(originSize))
		}
	}
	// Only an explicit size is checked against the pool: a snapshot that
	// keeps its parent's size is never refused for it.
	requested := uint64(0)
	if opts.Size != 0 {
		requested = size
	}
	if err := p.checkSpace(id, requested); err != nil {
		return err
	}

	// A snapshot of an active origin needs the origin suspended so that
	// no write is in flight while the pool shares its blocks: checked and
	// done just before the message (the root lock was let go while the
	// transaction's begin became durable), and undone on every path, even
	// when ctx ended: a suspended origin holds every I/O to it. (err is
	// Create's result here.)
	originName := dmname.Thin(p.cfg.Key, originID)
	var undo revert.Stack
	defer func() {
		if uerr := undo.Unwind(); uerr != nil {
			if err != nil {
				uerr = errors.Wrapf(uerr, "%v; and", err)
			}
			err = uerr
		}
	}()
	suspend := func() error {
		info, ierr := p.dm.Info(originName)
		if ierr != nil || !info.LiveTable || info.Suspended {
			return nil
		}
		// Marked first: if this process dies with the origin suspended,
		// the next Open resumes it.
		if merr := p.lk.SetSuspendMark(true); merr != nil {
			return errors.Wrapf(merr, "create %q", id)
		}
		if serr := p.dm.Suspend(originName, dm.SuspendOptions{}); serr != nil {
			return errors.Wrapf(serr, "suspend %s (the parent %q) for the snapshot", originName, parent)
		}
		undo.PushAlways(func() error {
			return errors.Wrapf(p.resumeOrigin(context.WithoutCancel(ctx), originName),
				"resume %s (the parent %q) after the snapshot; I/O to it waits until it is resumed", originName, parent)
		})
		failpoint.Inject(failpoint.SnapAfterSuspend)
		if cerr := ctx.Err(); cerr != nil {
			return errors.Wrapf(cerr, "create %q: stopped with its parent suspended (resumed again)", id)
		}
		return nil
	}

	var rec store.Device
	_, err = p.allocTx(func(devID uint32) (store.Tx, func() error) {
		rec = store.Device{Version: store.RecordVersion, ID: id, DeviceID: devID, Size: size, Initialized: true,
			Parent: parent, Created: time.Now().UTC(), GrowPending: growPending || size > originSize,
			Labels: copyLabels(opts.Labels)}
		t := store.Tx{Op: store.OpCreateSnap, DeviceID: devID, OriginDeviceID: originID, ID: id, Device: &rec}
		return t, func() error { return p.store.Put(rec) }
	}, suspend, arrived)
	if err != nil {
		return errors.Wrapf(err, "create %q", id)
	}
	return nil
}

// resumeOrigin resumes a snapshot's origin after create_snap and clears
// the suspend mark (left set when the resume fails: the next Open tries
// again).
func (p *Pool) resumeOrigin(ctx context.Context, name string) error {
	if err := failpoint.InjectErr(failpoint.SnapBeforeResume); err != nil {
		return err
	}
	if err := p.resumeThin(ctx, name); err != nil {
		return err
	}
	return p.lk.SetSuspendMark(false)
}

// anyDevice loads a device record, including one pending deletion.
func (p *Pool) anyDevice(id string) (store.Device, error) {
	if err := ValidateID(id); err != nil {
		return store.Device{}, err
	}
	return p.store.Get(id)
}

// liveDevice loads a device record that is not pending deletion.
func (p *Pool) liveDevice(id string) (store.Device, error) {
	d, err := p.anyDevice(id)
	if err != nil {
		return d, err
	}
	if d.Deleted {
		return d, errors.Wrapf(ErrDeviceNotFound, "device %q is being deleted", id)
	}
	return d, nil
}

// Activate activates device id and returns its /dev/mapper path.
func (p *Pool) Activate(ctx context.Context, id string) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", errors.Wrapf(err, "activate %q", id)
	}
	if err := p.lk.Lock(); err != nil {
		return "", err
	}
	defer p.lk.Unlock()
	d, err := p.liveDevice(id)
	if err != nil {
		return "", err
	}
	return p.activateDevice(ctx, d)
}

// activateDevice activates a registry device and, for ext4, grows its
// filesystem on the first activation after a Create with a bigger size.
func (p *Pool) activateDevice(ctx context.Context, d store.Device) (string, error) {
	path, err := p.activateThin(ctx, d.DeviceID, d.Size)
	if err != nil {
		return "", errors.Wrapf(err, "activate %q", d.ID)
	}
	if d.GrowPending && p.cfg.Filesystem == fs.Ext4 {
		if mounted, _ := fs.IsMounted(p.MountPath(d.ID)); !mounted {
			if err := fs.Grow(ctx, path, "", fs.Ext4); err != nil {
				return path, errors.Wrapf(err, "grow the filesystem of %q to %s", d.ID, bytesize.Format(d.Size))
			}
			d.GrowPending = false
			if err := p.store.Put(d); err != nil {
				return path, err
			}
		}
	}
	return path, nil
}

// activateThin makes sure thin device devID is active with size bytes and
// returns its /dev/mapper path, which exists when it returns (with udev
// running, Resume waits for udev to make it). Even a caller that opens the
// device by number (the space return) waits: udev must have handled the
// device's "change" before it is removed and its minor reused (see
// dm.RemoveOptions.NoNodeWait).
func (p *Pool) activateThin(ctx context.Context, devID uint32, size uint64) (string, error) {
	name := dmname.Thin(p.cfg.Key, devID)
	info, err := p.dm.Info(name)
	switch {
	case err == nil && info.LiveTable:
		if info.Suspended {
			if err := p.resumeThin(ctx, name); err != nil {
				return "", errors.Wrapf(err, "resume %s", name)
			}
		}
		// A Resize that stopped between its record and the table.
		return dm.NodePath(name), p.fitTable(ctx, name, devID, size)
	case err == nil:
		// A device without a table (an interrupted activation): load one.
	case errors.Is(err, dm.ErrNotFound):
		if _, err := p.dm.Create(name, dm.CreateOptions{UUID: dmname.ThinUUID(p.cfg.Key, devID)}); err != nil {
			return "", errors.Wrapf(err, "create %s", name)
		}
	default:
		return "", errors.Wrapf(err, "%s", name)
	}
	poolDev, err := p.poolDev()
	if err != nil {
		return "", err
	}
	t := dmthin.ThinTarget(poolDev, devID, size)
	if err := p.dm.LoadTable(name, []dm.Target{t}, dm.LoadOptions{}); err != nil {
		_ = p.dm.Remove(ctx, name, dm.RemoveOptions{Retries: -1})
		return "", errors.Wrapf(err, "load thin table %q into %s", t.Params, name)
	}
	failpoint.Inject(failpoint.ActivateAfterLoad)
	if err := p.resumeThin(ctx, name); err != nil {
		_ = p.dm.Remove(ctx, name, dm.RemoveOptions{Retries: -1})
		return "", errors.Wrapf(err, "resume %s", name)
	}
	return dm.NodePath(name), nil
}

// deactivateThin removes thin device devID; ErrBusy naming the holders
// when it is open (mountPath, if given, helps find them). No caller looks
// at /dev/mapper/<name> afterwards, so it does not wait for udev to drop
// the link (an Activate that follows waits for its own).
func (p *Pool) deactivateThin(ctx context.Context, devID uint32, mountPath string) error {
	name := dmname.Thin(p.cfg.Key, devID)
	info, ierr := p.dm.Info(name)
	if errors.Is(ierr, dm.ErrNotFound) {
		return nil
	}
	err := devnode.Remove(ctx, p.dm, name, info.Dev, mountPath, true)
	if err == nil || errors.Is(err, dm.ErrNotFound) {
		return nil
	}
	if errors.Is(err, dm.ErrBusy) {
		return errors.Wrapf(ErrBusy, "%s is in use%s", name, p.holdersText(info.Dev, mountPath))
	}
	return errors.Wrapf(err, "deactivate %s", name)
}

// holdersText describes who holds a device, as ": held by ..." or "".
func (p *Pool) holdersText(dev uint64, mountPath string) string {
	if dev == 0 {
		return ""
	}
	hs, err := fs.Holders(dev, mountPath)
	if err != nil || len(hs) == 0 {
		return ""
	}
	return ": held by " + fs.FormatHolders(hs)
}

// Deactivate deactivates device id (ErrBusy while mounted or open).
func (p *Pool) Deactivate(ctx context.Context, id string) error {
	if err := ctx.Err(); err != nil {
		return errors.Wrapf(err, "deactivate %q", id)
	}
	return p.withDevice(id, func(d store.Device) error {
		mp := p.MountPath(id)
		if m, _ := fs.IsMounted(mp); m {
			return errors.Wrapf(ErrBusy, "device %q is mounted at %s; unmount it first", id, mp)
		}
		return p.deactivateThin(ctx, d.DeviceID, mp)
	})
}

// withDevice runs fn under the root lock with device id's record
// (including one pending deletion).
func (p *Pool) withDevice(id string, fn func(d store.Device) error) error {
	return p.withRecord(id, p.anyDevice, fn)
}

// withLiveDevice runs fn under the root lock with device id's record; a
// device pending deletion is ErrDeviceNotFound and fn does not run.
func (p *Pool) withLiveDevice(id string, fn func(d store.Device) error) error {
	return p.withRecord(id, p.liveDevice, fn)
}

// withRecord takes the root lock, loads id's record with get and runs fn
// with it.
func (p *Pool) withRecord(id string, get func(string) (store.Device, error), fn func(d store.Device) error) error {
	if err := p.lk.Lock(); err != nil {
		return err
	}
	defer p.lk.Unlock()
	d, err := get(id)
	if err != nil {
		return err
	}
	return fn(d)
}

// Device returns one device; ErrDeviceNotFound when unknown.
func (p *Pool) Device(id string) (Device, error) {
	if err := ValidateID(id); err != nil {
		return Device{}, err
	}
	if err := p.lk.Lock(); err != nil {
		return Device{}, err
	}
	d, err := p.store.Get(id)
	p.lk.Unlock()
	if err != nil {
		return Device{}, err
	}
	_, ierr := p.dm.Info(dmname.Thin(p.cfg.Key, d.DeviceID))
	return p.toDevice(d, ierr == nil), nil
}

// Devices lists every device (including ones pending deletion), sorted by id.
func (p *Pool) Devices() ([]Device, error) {
	if err := p.lk.Lock(); err != nil {
		return nil, err
	}
	recs, err := p.store.List()
	p.lk.Unlock()
	if err != nil {
		return nil, err
	}
	live, err := p.ourDevices()
	if err != nil {
		return nil, err
	}
	active := map[uint32]bool{}
	for _, d := range live {
		if devID, ok := p.thinDevIDOf(d); ok {
			active[devID] = true
		}
	}
	mounted := mountPoints()
	out := make([]Device, 0, len(recs))
	for _, d := range recs {
		if d.ReturningSpace {
			continue // no longer a device of the caller's (Status counts them)
		}
		out = append(out, p.toDeviceWith(d, active[d.DeviceID], mounted[p.MountPath(d.ID)]))
	}
	return out, nil
}

// mountPoints returns the mount points of this mount namespace.
func mountPoints() map[string]bool {
	entries, err := fs.Mounts()
	if err != nil {
		return nil
	}
	out := make(map[string]bool, len(entries))
	for _, e := range entries {
		out[e.MountPoint] = true
	}
	return out
}

func (p *Pool) toDevice(d store.Device, active bool) Device {
	m, _ := fs.IsMounted(p.MountPath(d.ID))
	return p.toDeviceWith(d, active, m)
}

func (p *Pool) toDeviceWith(d store.Device, active, mounted bool) Device {
	out := Device{ID: d.ID, Parent: d.Parent, DeviceID: d.DeviceID, Size: d.Size,
		Initialized: d.Initialized, Deleted: d.Deleted, Created: d.Created, Active: active,
		Labels: copyLabels(d.Labels)}
	if active {
		name := dmname.Thin(p.cfg.Key, d.DeviceID)
		out.DevicePath = dm.NodePath(name)
		if ts, err := p.dm.Status(name, dm.StatusOptions{NoFlush: true}); err == nil && len(ts) == 1 {
			if st, err := dmthin.ParseThinStatus(ts[0].Params); err == nil {
				out.Used = st.MappedSectors * 512
			}
		}
	}
	if mounted {
		out.Mounted, out.MountPath = true, p.MountPath(d.ID)
	}
	return out
}

// dirExists reports whether path is a directory.
func dirExists(path string) bool {
	st, err := os.Stat(path)
	return err == nil && st.IsDir()
}
