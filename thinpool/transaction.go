package thinpool

import (
	"time"

	"github.com/pkg/errors"

	"github.com/thinctl/thinctl/dm"
	"github.com/thinctl/thinctl/internal/failpoint"
)

// The operations a transaction wraps.
const (
	opCreateThin = "create_thin"
	opCreateSnap = "create_snap"
	opDelete     = "delete"
)

// txRecord is transaction.json: the one pool message in flight. It is
// written (durably) before the message is sent and removed once the
// registry matches what the message did, so a crash anywhere in between
// leaves enough behind for Open to make registry and pool agree again.
//
// The kernel commits the pool's metadata after every message it accepts,
// so a message that returned is on disk; one that did not return may or
// may not have reached the pool. Recovery therefore never has to ask the
// pool which it was: a create whose device record was not yet written is
// undone with "delete <id>" (ENODATA means it never arrived), and a delete
// is simply sent again.
type txRecord struct {
	Version  int    `json:"version"`
	Op       string `json:"op"`
	DeviceID uint32 `json:"device_id"`
	// OriginDeviceID is the snapshot's origin (create_snap only).
	OriginDeviceID uint32 `json:"origin_device_id,omitempty"`
	// ID is the registry id; empty for the base device and for orphans.
	ID      string    `json:"id,omitempty"`
	Started time.Time `json:"started"`
}

func (t txRecord) validate() error {
	switch t.Op {
	case opCreateThin, opDelete:
	case opCreateSnap:
		if t.OriginDeviceID == 0 || t.OriginDeviceID > maxDeviceID {
			return errors.Errorf("create_snap with origin_device_id %d", t.OriginDeviceID)
		}
	default:
		return errors.Errorf("unknown op %q", t.Op)
	}
	if t.DeviceID == 0 || t.DeviceID > maxDeviceID {
		return errors.Errorf("device_id %d outside 1..%d", t.DeviceID, maxDeviceID)
	}
	if t.ID != "" {
		if err := ValidateID(t.ID); err != nil {
			return err
		}
	}
	return nil
}

// message is the pool message the transaction sends.
func (t txRecord) message() string {
	switch t.Op {
	case opCreateSnap:
		return dm.ThinCreateSnap(t.DeviceID, t.OriginDeviceID)
	case opCreateThin:
		return dm.ThinCreate(t.DeviceID)
	default:
		return dm.ThinDelete(t.DeviceID)
	}
}

// txAction is what recovery does with a pending transaction.
type txAction int

const (
	// txKeep: a create whose device record was written; the pool has the
	// device (the message returned before the record was written). Only
	// transaction.json is left to remove.
	txKeep txAction = iota
	// txUndo: a create without its record; "delete <id>" (ENODATA: the
	// message never arrived) and nothing else.
	txUndo
	// txFinish: a delete; "delete <id>" again (ENODATA: it was done) and
	// remove the record. A device still open somewhere is left to
	// deferred deletion instead.
	txFinish
)

func (a txAction) String() string {
	switch a {
	case txKeep:
		return "keep"
	case txUndo:
		return "undo"
	default:
		return "finish"
	}
}

// decideTx picks the recovery action for pending transaction t; recorded
// is the device id of t.ID's record in the registry, 0 when it has none.
func decideTx(t txRecord, recorded uint32) txAction {
	switch {
	case t.Op == opDelete:
		return txFinish
	case t.ID != "" && recorded == t.DeviceID:
		return txKeep
	default:
		return txUndo
	}
}

// errIDTaken is returned by runTx when the pool already has the device id
// (EEXIST); the caller marks it used and tries the next one.
var errIDTaken = errors.New("thin device id already exists in the pool")

// runTx runs one pool message inside a transaction: persist the
// transaction, send the message (the kernel commits it), apply commit
// (write or remove the device record), clear the transaction. Any failure
// after the message was sent is recovered on the spot (and, if that fails
// too, on the next Open). The caller holds the root lock.
func (p *Pool) runTx(t txRecord, commit func() error) error {
	t.Started = time.Now().UTC()
	if err := p.reg.saveTx(t); err != nil {
		return err
	}
	failpoint.Inject(failpoint.TxAfterSave)
	if _, err := p.dm.Message(p.cfg.PoolName, 0, t.message()); err != nil {
		// The kernel refused the message: nothing happened.
		cerr := p.reg.clearTx()
		if errors.Is(err, dm.ErrExists) {
			return errIDTaken
		}
		if cerr != nil {
			return cerr
		}
		return errors.Wrapf(p.poolMessageError(err), "thin pool %s: %s", p.cfg.PoolName, t.message())
	}
	failpoint.Inject(failpoint.TxAfterMessage)
	if commit != nil {
		if err := commit(); err != nil {
			if rerr := p.recoverTx(t); rerr != nil {
				return errors.Wrapf(err, "and recovering failed (%v); the next Open retries", rerr)
			}
			return err
		}
	}
	failpoint.Inject(failpoint.TxAfterCommit)
	p.changed()
	return p.reg.clearTx()
}

// changed advances the root's change counter after this process changed
// the set of devices, keeping its own index (which the caller updates in
// place) current when nobody else changed anything in between.
func (p *Pool) changed() {
	gen, err := p.lk.bump()
	if p.idx == nil {
		return
	}
	if err != nil {
		p.idx.invalidate()
		return
	}
	if p.idx.valid && p.idx.gen+1 == gen {
		p.idx.gen = gen
	} else {
		p.idx.invalidate()
	}
}

// poolMessageError maps a refused message to a friendlier error when the
// pool cannot take writes.
func (p *Pool) poolMessageError(err error) error {
	if st, serr := p.rawStatus(); serr == nil && (st.Failed || st.Mode == "ro" || st.NeedsCheck) {
		return errors.Wrapf(ErrPoolReadOnly, "%v (pool mode %s%s)", err, st.Mode, map[bool]string{true: ", needs_check", false: ""}[st.NeedsCheck])
	}
	return err
}

// recoverPendingTx finishes the transaction a crashed process left behind.
func (p *Pool) recoverPendingTx() error {
	t, err := p.reg.loadTx()
	if err != nil || t == nil {
		return err
	}
	return p.recoverTx(*t)
}

// recoverTx finishes or undoes t so that registry and pool agree.
func (p *Pool) recoverTx(t txRecord) error {
	var recorded uint32
	if t.ID != "" {
		d, err := p.reg.loadDevice(t.ID)
		switch {
		case err == nil:
			recorded = d.DeviceID
		case !errors.Is(err, ErrDeviceNotFound):
			return err
		}
	}
	action := decideTx(t, recorded)
	if action != txKeep {
		_, err := p.dm.Message(p.cfg.PoolName, 0, dm.ThinDelete(t.DeviceID))
		switch {
		case err == nil || errors.Is(err, dm.ErrNoData):
			if action == txFinish && recorded == t.DeviceID {
				if err := p.reg.removeDevice(t.ID); err != nil {
					return err
				}
			}
		case action == txFinish && recorded == t.DeviceID && errors.Is(err, dm.ErrBusy):
			// Still open somewhere: leave it to deferred deletion.
			if err := p.markDeleted(t.ID); err != nil {
				return err
			}
		default:
			return errors.Wrapf(err, "%s the interrupted %s of thin device id %d (%s)", action, t.Op, t.DeviceID, p.reg.txPath())
		}
	}
	p.changed()
	if p.idx != nil {
		p.idx.invalidate()
	}
	return p.reg.clearTx()
}

// markDeleted flags a device record as pending deletion. The index keeps
// the set of such records (GC walks it), so other processes are told
// through the change counter.
func (p *Pool) markDeleted(id string) error {
	d, err := p.reg.loadDevice(id)
	if err != nil {
		return err
	}
	if d.Deleted {
		return nil
	}
	d.Deleted = true
	if err := p.reg.saveDevice(d); err != nil {
		return err
	}
	if p.idx != nil && p.idx.deleted != nil {
		p.idx.deleted[id] = true
	}
	p.changed()
	return nil
}
