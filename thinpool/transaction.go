package thinpool

import (
	"time"

	"github.com/pkg/errors"

	"github.com/thinctl/thinctl/dm"
	"github.com/thinctl/thinctl/errdefs"
	"github.com/thinctl/thinctl/internal/failpoint"
	"github.com/thinctl/thinctl/thinpool/internal/store"
)

// txAction is what recovery does with a pending transaction.
type txAction int

const (
	// txKeep: the create happened; record the device (it carries its
	// record, or the record was written already) and end the transaction.
	txKeep txAction = iota
	// txUndo: a create that did not happen, or whose record is missing;
	// "delete <id>" (ENODATA: the message never arrived) and nothing else.
	txUndo
	// txFinish: a delete; "delete <id>" again (ENODATA: it was done) and
	// remove the record. A device still open somewhere is left to
	// deferred deletion instead.
	txFinish
	// txProbe: a create that carries its record: ask the pool whether the
	// id exists ("create_thin <id>": EEXIST means the create happened;
	// success means it never arrived, and the probe is deleted again).
	txProbe
)

func (a txAction) String() string {
	switch a {
	case txKeep:
		return "keep"
	case txUndo:
		return "undo"
	case txProbe:
		return "probe"
	default:
		return "finish"
	}
}

// decideTx picks the recovery action for pending transaction t; recorded
// is the device id of t.ID's record in the registry, 0 when it has none.
func decideTx(t store.Tx, recorded uint32) txAction {
	switch {
	case t.Op == store.OpDelete:
		return txFinish
	case t.Device != nil:
		return txProbe
	case t.ID != "" && recorded == t.DeviceID:
		return txKeep
	default:
		return txUndo
	}
}

// errIDTaken is returned by runTx when the pool already has the device id
// (EEXIST); the caller marks it used and tries the next one.
var errIDTaken = errors.New("thin device id already exists in the pool")

// runTx runs one pool message inside a transaction: make the transaction
// durable (the registry's one flush), send the message (the kernel
// commits it), apply commit (the record changes it makes join the
// transaction's end), end the transaction (not flushed: recovery can tell
// what the message did). Any failure after the message was sent is
// recovered on the spot (and, if that fails too, on the next Open). The
// caller holds the root lock throughout.
func (p *Pool) runTx(t store.Tx, commit func() error) error {
	t.Started = time.Now().UTC()
	if err := p.store.Begin(t); err != nil {
		return err
	}
	failpoint.Inject(failpoint.TxAfterSave)
	return p.sendTx(t, nil, commit)
}

// runTxShared is runTx with group commit: the begin frame is written
// without a flush, the root lock let go while the frame becomes durable
// (one flush for every transaction of the process waiting at the time,
// or none when another process's flush covered it; arrived, called once
// the begin is written, tells a flushing leader that this create's frame
// is in), then taken again for prepare (which runs just before the
// message, under the lock: a snapshot's origin is suspended there), the
// message, commit and the end.
// The transaction is claimed from before its begin entry until after its
// end, so nobody recovers it meanwhile. The caller holds the root lock
// before and after (on an error too); what it checked before may have
// changed in between, except what the open transaction reserves (its
// thin id, its registry id, its origin).
func (p *Pool) runTxShared(t store.Tx, prepare, commit func() error, arrived func()) error {
	t.Started = time.Now().UTC()
	tk, err := p.store.BeginShared(t)
	if arrived != nil {
		arrived()
	}
	if err != nil {
		return err
	}
	p.lk.Unlock()
	defer p.store.ReleaseShared(tk) // after the end, with the lock held again
	werr := p.store.AwaitDurable(tk)
	if werr == nil {
		p.injectUnlocked(failpoint.TxAfterSave) // in flight, without the lock
	}
	lerr := p.lk.Relock()
	switch {
	case lerr != nil:
		return errors.Wrapf(lerr, "%s of thin id %d (left to recovery: its message was not sent)", t.Op, t.DeviceID)
	case werr != nil:
		p.store.Invalidate()
		return errors.Wrapf(werr, "%s of thin id %d (left to recovery: its message was not sent)", t.Op, t.DeviceID)
	}
	if err := p.store.ResumeShared(tk); err != nil {
		return err
	}
	return p.sendTx(t, prepare, commit)
}

// injectUnlocked runs failpoint name while the root lock is let go; a
// panic there (a test's) takes the lock again first, so that the caller's
// deferred unlock stays paired.
func (p *Pool) injectUnlocked(name string) {
	defer func() {
		if v := recover(); v != nil {
			_ = p.lk.Relock()
			panic(v)
		}
	}()
	failpoint.Inject(name)
}

// sendTx sends the message of the transaction this hold has open (its
// begin durable), after prepare; then commit and the end, as runTx says.
func (p *Pool) sendTx(t store.Tx, prepare, commit func() error) error {
	if prepare != nil {
		if err := prepare(); err != nil {
			if cerr := p.store.Abort(); cerr != nil {
				return errors.Wrapf(err, "and ending the transaction failed (%v); the next Open recovers it", cerr)
			}
			return err
		}
	}
	if _, err := p.dm.Message(p.cfg.PoolName, 0, t.Message()); err != nil {
		// The kernel refused the message: nothing happened.
		cerr := p.store.Abort()
		if errors.Is(err, dm.ErrExists) && cerr == nil {
			return errIDTaken
		}
		if cerr != nil {
			return errors.Wrapf(cerr, "after thin pool %s refused %s (%v)", p.cfg.PoolName, t.Message(), err)
		}
		return errors.Wrapf(p.poolMessageError(err), "thin pool %s: %s", p.cfg.PoolName, t.Message())
	}
	if err := p.confirmKept(t.Message()); err != nil {
		// The transaction stays open: recovery decides from the
		// (repaired) metadata whether the message happened.
		p.store.Invalidate()
		return errors.Wrapf(err, "%s of thin id %d", t.Op, t.DeviceID)
	}
	failpoint.Inject(failpoint.TxAfterMessage)
	if commit != nil {
		if err := commit(); err != nil {
			p.store.Invalidate() // drop what commit collected: read the journal again
			if rerr := p.recoverOwnTx(t.DeviceID); rerr != nil {
				return errors.Wrapf(err, "and recovering failed (%v); the next Open retries", rerr)
			}
			return err
		}
	}
	failpoint.Inject(failpoint.TxAfterCommit)
	return p.store.End()
}

// poolMessageError maps a refused message to a friendlier error when the
// pool cannot take writes.
func (p *Pool) poolMessageError(err error) error {
	var he *HealthError
	if errors.As(p.confirmKept(""), &he) {
		return errdefs.Wrapf(he, err, "%v", err)
	}
	return err
}

// recoverPendingTx finishes the transactions crashed processes left
// behind (not those in flight: their owners hold their claims).
func (p *Pool) recoverPendingTx() error {
	ts, err := p.store.LeftTxs()
	if err != nil || len(ts) == 0 {
		return err
	}
	if st, err := p.rawStatus(); err == nil && (st.Failed || st.Mode == "ro" || st.NeedsCheck) {
		return nil // left for after the pool's repair: its metadata decides
	}
	for _, t := range ts {
		if err := p.recoverTx(t); err != nil {
			return err
		}
	}
	return nil
}

// recoverOwnTx recovers this hold's own transaction of thin id devID
// (its message was sent, its commit failed), if it is still open.
func (p *Pool) recoverOwnTx(devID uint32) error {
	if err := p.store.Refresh(); err != nil {
		return err
	}
	t, ok := p.store.Pending(devID)
	if !ok {
		return nil
	}
	return p.recoverTx(t)
}

// recoverTx finishes or undoes pending transaction t so that registry and
// pool agree, and ends it.
func (p *Pool) recoverTx(t store.Tx) error {
	var recorded uint32
	if t.ID != "" {
		d, err := p.store.Get(t.ID)
		switch {
		case err == nil:
			recorded = d.DeviceID
		case !errors.Is(err, ErrDeviceNotFound):
			return err
		}
	}
	action := decideTx(t, recorded)
	if action == txProbe {
		_, err := p.dm.Message(p.cfg.PoolName, 0, dm.ThinCreate(t.DeviceID))
		switch {
		case errors.Is(err, dm.ErrExists):
			action = txKeep
		case err == nil:
			action = txUndo // the probe made it: delete it again
		default:
			return errors.Wrapf(err, "ask thin pool %s whether the interrupted %s of thin id %d happened (%s)",
				p.cfg.PoolName, t.Op, t.DeviceID, p.store.JournalPath())
		}
	}
	p.log.Debug("recover transaction", "op", t.Op, "thin_id", t.DeviceID, "id", t.ID, "action", action.String())
	p.store.BeginRecovery(t.DeviceID)
	switch action {
	case txKeep:
		if t.Device != nil {
			if err := p.store.Put(*t.Device); err != nil {
				return err
			}
		}
	default:
		_, err := p.dm.Message(p.cfg.PoolName, 0, dm.ThinDelete(t.DeviceID))
		switch {
		case err == nil || errors.Is(err, dm.ErrNoData):
			if action == txFinish && recorded == t.DeviceID {
				if err := p.store.Remove(t.ID); err != nil {
					return err
				}
			}
		case action == txFinish && recorded == t.DeviceID && errors.Is(err, dm.ErrBusy):
			// Still open somewhere: leave it to deferred deletion.
			if err := p.markDeleted(t.ID); err != nil {
				return err
			}
		default:
			p.store.Invalidate() // the transaction stays open on disk
			return errors.Wrapf(err, "%s the interrupted %s of thin device id %d (%s)", action, t.Op, t.DeviceID, p.store.JournalPath())
		}
	}
	return p.store.EndRecovery()
}

// markDeleted flags a device record as pending deletion (the index keeps
// the set of such records: GC walks it).
func (p *Pool) markDeleted(id string) error {
	d, err := p.store.Get(id)
	if err != nil {
		return err
	}
	if d.Deleted {
		return nil
	}
	d.Deleted = true
	return p.store.Put(d)
}
