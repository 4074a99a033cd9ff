package thinpool

import (
	"fmt"
	"strconv"
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
// written before the message is sent and removed after the pool's
// transaction id has been advanced, so a crash anywhere in between leaves
// enough behind for Open to make registry and pool agree again.
type txRecord struct {
	Version int    `json:"version"`
	Op      string `json:"op"`
	// PoolTransactionID is the pool transaction id this transaction
	// commits (the id before it plus one).
	PoolTransactionID uint64 `json:"pool_transaction_id"`
	DeviceID          uint32 `json:"device_id"`
	OriginDeviceID    uint32 `json:"origin_device_id,omitempty"`
	// ID is the registry id; empty for the base device and for orphans.
	ID string `json:"id,omitempty"`
	// Record is the device record a create writes (rolled forward from here).
	Record  *deviceRecord `json:"record,omitempty"`
	Started time.Time     `json:"started"`
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
	if t.PoolTransactionID == 0 {
		return errors.New("pool_transaction_id is 0")
	}
	if t.ID != "" {
		if err := ValidateID(t.ID); err != nil {
			return err
		}
	}
	if t.Record != nil && (t.Record.ID != t.ID || t.Record.DeviceID != t.DeviceID) {
		return errors.New("record does not match id and device_id")
	}
	return nil
}

// message is the pool message the transaction sends.
func (t txRecord) message() string {
	switch t.Op {
	case opCreateSnap:
		return fmt.Sprintf("create_snap %d %d", t.DeviceID, t.OriginDeviceID)
	default:
		return t.Op + " " + strconv.FormatUint(uint64(t.DeviceID), 10)
	}
}

// txAction is what recovery does with a pending transaction.
type txAction int

const (
	// txRollForward: the pool committed the transaction (its id advanced);
	// make the registry match (write or remove the device record).
	txRollForward txAction = iota
	// txRollBack: the pool's id did not advance, the message may or may
	// not have reached the kernel; undo a create (delete, ignoring
	// ENODATA, drop the record) or finish a delete (delete again,
	// ignoring ENODATA, drop the record).
	txRollBack
	// txConflict: the pool's id is neither the one before nor the one
	// after; something else changed the pool. Nothing is touched.
	txConflict
)

func (a txAction) String() string {
	switch a {
	case txRollForward:
		return "roll forward"
	case txRollBack:
		return "roll back"
	default:
		return "conflict"
	}
}

// decideTx picks the recovery action for pending transaction t given the
// pool's current transaction id.
func decideTx(t txRecord, poolTxID uint64) txAction {
	switch {
	case poolTxID == t.PoolTransactionID:
		return txRollForward
	case poolTxID+1 == t.PoolTransactionID:
		return txRollBack
	default:
		return txConflict
	}
}

// errIDTaken is returned by runTx when the pool already has the device id
// (EEXIST); the caller marks it used and tries the next one.
var errIDTaken = errors.New("thin device id already exists in the pool")

// runTx runs one pool message inside a transaction: persist the record,
// send the message, apply commit (write or remove the device record),
// advance the pool's transaction id, clear the record. Any failure after
// the message was sent rolls the transaction back on the spot (and, if
// that fails too, on the next Open). The caller holds the root lock.
func (p *Pool) runTx(t txRecord, commit func(txid uint64) error) error {
	cur, err := p.poolTransactionID()
	if err != nil {
		return err
	}
	t.PoolTransactionID = cur + 1
	t.Started = time.Now().UTC()
	if t.Record != nil {
		t.Record.TransactionID = t.PoolTransactionID
	}
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
	fail := func(err error) error {
		if rerr := p.recoverTx(t); rerr != nil {
			return errors.Wrapf(err, "and rolling back failed (%v); the next Open retries", rerr)
		}
		return err
	}
	if commit != nil {
		if err := commit(t.PoolTransactionID); err != nil {
			return fail(err)
		}
	}
	failpoint.Inject(failpoint.TxAfterCommit)
	msg := fmt.Sprintf("set_transaction_id %d %d", cur, cur+1)
	if _, err := p.dm.Message(p.cfg.PoolName, 0, msg); err != nil {
		return fail(errors.Wrapf(err, "thin pool %s: %s", p.cfg.PoolName, msg))
	}
	p.idx.txid = cur + 1
	failpoint.Inject(failpoint.TxAfterTxID)
	return p.reg.clearTx()
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

// recoverTx rolls t forward or back so that registry and pool agree.
func (p *Pool) recoverTx(t txRecord) error {
	cur, err := p.poolTransactionID()
	if err != nil {
		return err
	}
	switch decideTx(t, cur) {
	case txRollForward:
		switch {
		case t.Op == opDelete && t.ID != "":
			if err := p.reg.removeDevice(t.ID); err != nil {
				return err
			}
		case t.Record != nil:
			if _, err := p.reg.loadDevice(t.ID); errors.Is(err, ErrDeviceNotFound) {
				if err := p.reg.saveDevice(*t.Record); err != nil {
					return err
				}
			} else if err != nil {
				return err
			}
		}
	case txRollBack:
		_, err := p.dm.Message(p.cfg.PoolName, 0, opDelete+" "+strconv.FormatUint(uint64(t.DeviceID), 10))
		if err != nil && !errors.Is(err, dm.ErrNoData) {
			if t.Op == opDelete && t.ID != "" && errors.Is(err, dm.ErrBusy) {
				// Still open somewhere: leave it to deferred deletion.
				if err := p.markDeleted(t.ID); err != nil {
					return err
				}
				return p.reg.clearTx()
			}
			return errors.Wrapf(err, "roll back %s of device id %d (transaction %d)", t.Op, t.DeviceID, t.PoolTransactionID)
		}
		if t.ID != "" {
			if err := p.reg.removeDevice(t.ID); err != nil {
				return err
			}
		}
	default:
		return errors.Errorf("pending transaction in %s wants pool transaction id %d but the pool is at %d; "+
			"something else changed the pool: inspect it with `thinctl check` before removing that file",
			p.reg.txPath(), t.PoolTransactionID, cur)
	}
	if p.idx != nil {
		p.idx.invalidate()
	}
	return p.reg.clearTx()
}

// markDeleted flags a device record as pending deletion.
func (p *Pool) markDeleted(id string) error {
	d, err := p.reg.loadDevice(id)
	if err != nil {
		return err
	}
	if d.Deleted {
		return nil
	}
	d.Deleted = true
	return p.reg.saveDevice(d)
}
