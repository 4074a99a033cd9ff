package store

import (
	"encoding/json"
	"os"

	"github.com/pkg/errors"
	"golang.org/x/sys/unix"
)

// Transactions: the begin and end entries around one pool message, the
// group-committed begins of creates, and the transactions crashed
// processes left open.

// LeftTx returns an open transaction a crashed process left (the one of
// the lowest thin id); nil when there is none. Transactions whose owner is
// alive (this store's, or another's that holds its claim) are in
// flight, not left: it passes over them.
func (r *Store) LeftTx() (*Tx, error) {
	ts, err := r.LeftTxs()
	if err != nil || len(ts) == 0 {
		return nil, err
	}
	return &ts[0], nil
}

// LeftTxs returns the open transactions whose owner is gone, in thin id
// order. The caller holds the root lock, so an owner that is alive holds
// its claim (taken before its begin entry was written, let go after its
// end entry).
func (r *Store) LeftTxs() ([]Tx, error) {
	if err := r.Refresh(); err != nil {
		return nil, err
	}
	var out []Tx
	for _, t := range r.pending.sorted() {
		if r.owned[t.DeviceID] != nil {
			continue
		}
		if r.lk != nil {
			c, err := r.lk.tryClaimTx(t.DeviceID)
			if err != nil {
				return nil, err
			}
			if c == nil {
				continue // in flight in another process or Pool
			}
			c.Release()
		}
		out = append(out, t)
	}
	return out, nil
}

// PendingCreate reports whether an open transaction creates registry id
// id.
func (r *Store) PendingCreate(id string) bool {
	for _, t := range r.pending {
		if t.Op != OpDelete && t.ID == id {
			return true
		}
	}
	return false
}

// PendingChildren returns how many open transactions create a snapshot of
// registry id id.
func (r *Store) PendingChildren(id string) int {
	n := 0
	for _, t := range r.pending {
		if t.Device != nil && t.Device.Parent == id {
			n++
		}
	}
	return n
}

// encodeTx makes t's begin entry.
func encodeTx(t *Tx) ([]byte, error) {
	t.Version = RecordVersion
	if t.Device != nil {
		d := *t.Device
		d.Version = RecordVersion
		t.Device = &d
	}
	body, err := json.Marshal(t)
	if err != nil {
		return nil, errors.Wrap(err, "registry: encode the transaction")
	}
	return appendEntry(nil, entryBegin, body), nil
}

// Begin makes transaction t durable before its message is sent: a begin
// entry (carrying the new device's record for a create) in a frame of its
// own, flushed. Until End or Abort, Put and Remove add
// their entries to the transaction's end frame. The caller holds the root
// Lock from here to the end.
func (r *Store) Begin(t Tx) error {
	if err := r.beginTx(&t, true); err != nil {
		return err
	}
	r.enterTx(t.DeviceID)
	return nil
}

// beginTx writes t's begin frame (flushed when durable) and records t as
// open.
func (r *Store) beginTx(t *Tx, durable bool) error {
	if err := r.Refresh(); err != nil {
		return err
	}
	if o := r.pending[t.DeviceID]; o != nil {
		return errors.Errorf("registry: a transaction (%s of thin id %d) is still open", o.Op, o.DeviceID)
	}
	payload, err := encodeTx(t)
	if err != nil {
		return err
	}
	if err := r.appendFrame(payload, durable); err != nil {
		return err
	}
	r.idx.noteAllocated(t.DeviceID)
	r.pending[t.DeviceID] = t
	return nil
}

// Ticket is a transaction begun without a flush (BeginShared): what its
// owner waits for before it may send the message.
type Ticket struct {
	devID  uint32
	epoch  uint64 // of the journal the begin frame went to
	end    int64  // the journal offset after it
	f      *os.File
	claim  *Claim
	ticket uint64 // the flush group's ticket
}

// BeginShared begins transaction t without flushing it: its begin frame is
// written and t's claim (taken here, before the frame) marks it in flight,
// so that nobody recovers it while its owner waits for the frame to be
// durable (AwaitDurable, without the root lock) and comes back for the
// message. The caller holds the root lock.
func (r *Store) BeginShared(t Tx) (*Ticket, error) {
	if err := r.Refresh(); err != nil {
		return nil, err
	}
	var held *Claim
	if r.lk != nil {
		c, err := r.lk.tryClaimTx(t.DeviceID)
		if err != nil {
			return nil, err
		}
		if c == nil {
			return nil, errors.Errorf("registry: thin id %d has a transaction in flight elsewhere", t.DeviceID)
		}
		held = c
	}
	if err := r.beginTx(&t, false); err != nil {
		held.Release()
		return nil, err
	}
	fd, err := unix.Dup(int(r.jf.Fd()))
	if err != nil {
		// The begin stays open: the next operation recovers it (the
		// message was never sent).
		held.Release()
		return nil, errors.Wrapf(err, "registry: dup the handle of %s", r.JournalPath())
	}
	unix.CloseOnExec(fd)
	if r.owned == nil {
		r.owned = map[uint32]*Claim{}
	}
	r.owned[t.DeviceID] = held
	tk := &Ticket{devID: t.DeviceID, epoch: r.st.epoch, end: r.st.pos, f: os.NewFile(uintptr(fd), r.JournalPath()), claim: held}
	tk.ticket = r.group.register(tk)
	return tk, nil
}

// AwaitDurable waits until tk's begin frame is durable: a flush that began
// after it was written, by this goroutine or another of the store's
// (one flush for every frame written before it started), or by another
// process (which says so in the lock file). It does not need the root
// Lock, and must be called without it.
func (r *Store) AwaitDurable(tk *Ticket) error {
	return r.group.wait(tk, func(batch []*Ticket) bool {
		if r.lk == nil {
			return false
		}
		e, pos := r.lk.durable()
		for _, w := range batch {
			if w.epoch != e || w.end > pos {
				return false
			}
		}
		return true
	}, func(covered *Ticket) {
		if r.lk != nil {
			r.lk.setDurable(covered.epoch, covered.end)
		}
	})
}

// ResumeShared takes up transaction tk again after AwaitDurable, under the
// root lock: it must still be open (its claim kept anyone from recovering
// it), and the entries this hold puts and removes join its end.
func (r *Store) ResumeShared(tk *Ticket) error {
	if err := r.Refresh(); err != nil {
		return err
	}
	if r.pending[tk.devID] == nil {
		return errors.Errorf("registry: the transaction of thin id %d is no longer open in %s", tk.devID, r.JournalPath())
	}
	if tk.epoch == r.st.epoch && tk.end <= r.st.pos {
		r.st.synced = max(r.st.synced, tk.end)
	}
	r.enterTx(tk.devID)
	return nil
}

// ReleaseShared lets go of tk's claim and handle: its transaction is over,
// or left open for recovery. The caller holds the root lock (or the
// registry is closed).
func (r *Store) ReleaseShared(tk *Ticket) {
	tk.f.Close()
	delete(r.owned, tk.devID)
	tk.claim.Release()
}

// enterTx makes this hold's puts and removes join transaction devID's end.
func (r *Store) enterTx(devID uint32) {
	r.inTx, r.txID, r.txBuf = true, devID, nil
}

// BeginRecovery opens pending transaction devID for recovery: the changes
// recovery makes go out with its end.
func (r *Store) BeginRecovery(devID uint32) {
	r.enterTx(devID)
}

// End ends the transaction of this hold: its collected entries and an
// end entry in one frame, not flushed. Nothing depends on that frame
// reaching the disk: if a power cut loses it, recovery finds the
// transaction open, asks the pool what the message did and records the
// same outcome.
func (r *Store) End() error {
	return r.endTx(endDone, false)
}

// Abort ends the transaction of this hold whose message the kernel
// refused (or that was never sent), durably: a create left open could
// otherwise be taken, after a power cut, for one that happened (recovery
// would find the id in the pool).
func (r *Store) Abort() error {
	return r.endTx(endRefused, true)
}

// EndRecovery ends the transaction of this hold that recovery decided
// (BeginRecovery), not flushed: recovery decides the same again after a
// power cut.
func (r *Store) EndRecovery() error {
	return r.endTx(endRecovered, false)
}

// endTx ends the transaction of this hold with outcome.
func (r *Store) endTx(outcome byte, durable bool) error {
	devID := r.txID
	if !r.loaded || !r.inTx {
		r.inTx, r.txBuf = false, nil
		return nil
	}
	payload := appendEntry(r.txBuf, entryEnd, endBody(outcome, devID))
	err := r.appendFrame(payload, durable)
	if r.pending != nil {
		delete(r.pending, devID)
	}
	r.inTx, r.txBuf = false, nil
	return err
}
