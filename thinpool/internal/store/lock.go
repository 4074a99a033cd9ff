package store

import (
	"context"
	"encoding/binary"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pkg/errors"
	"golang.org/x/sys/unix"
)

// Lock serialises writers of one root: a mutex for goroutines of this
// process and an flock on <root>/devicemapper/lock for other processes.
// The lock file's first 8 bytes are the root's change counter and the
// next 8 the registry's epoch (both little-endian): a process advances the
// counter before every frame it appends to the journal, and one whose
// in-memory registry was read at another value reads the frames appended
// since (or everything again when the epoch moved: a compaction). They
// are a cache key, not state: never fsynced; a power cut ends every
// process, and each starts by reading the registry in full. Bytes 16-23
// are non-zero while a process may have a thin device of the root
// suspended (a snapshot's origin): Open looks for suspended devices to
// resume only then. Never fsynced either: a power cut resumes nothing
// that needs it.
type Lock struct {
	mu   sync.Mutex
	f    *os.File
	path string
	// holds counts the times the lock was taken; the store reads the
	// counter once per hold.
	holds uint64
	// mark is f for the durable mark, read and written without the mutex
	// (nil once closed).
	mark atomic.Pointer[os.File]
}

// OpenLock opens (creating it) the lock file at path; nothing is locked
// yet.
func OpenLock(path string) (*Lock, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, errors.Wrapf(err, "open lock file %s", path)
	}
	l := &Lock{f: f, path: path}
	l.mark.Store(f)
	return l, nil
}

// Lock takes the mutex, then the flock (waiting for other processes).
func (l *Lock) Lock() error {
	if err := l.Relock(); err != nil {
		l.mu.Unlock()
		return err
	}
	return nil
}

// Unlock releases the flock and the mutex.
func (l *Lock) Unlock() {
	if l.f != nil {
		_ = unix.Flock(int(l.f.Fd()), unix.LOCK_UN)
	}
	l.mu.Unlock()
}

// LockProcess takes the mutex alone, not the flock: for state that only
// this process changes (a Pool's configuration as it read it, its mount
// references).
func (l *Lock) LockProcess() { l.mu.Lock() }

// UnlockProcess releases what LockProcess took.
func (l *Lock) UnlockProcess() { l.mu.Unlock() }

// Close releases the lock file; later lock calls fail.
func (l *Lock) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.CloseLocked()
}

// CloseLocked is close for a caller holding the mutex.
func (l *Lock) CloseLocked() error {
	if l.f == nil {
		return nil
	}
	l.mark.Store(nil)
	err := l.f.Close()
	l.f = nil
	return err
}

// state reads the change counter and the registry epoch (0, 0 for an
// empty lock file). The caller holds the lock.
func (l *Lock) state() (gen, epoch uint64, err error) {
	var b [16]byte
	n, err := l.f.ReadAt(b[:], 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return 0, 0, errors.Wrapf(err, "read the change counter in %s", l.path)
	}
	if n >= 8 {
		gen = binary.LittleEndian.Uint64(b[:8])
	}
	if n == 16 {
		epoch = binary.LittleEndian.Uint64(b[8:])
	}
	return gen, epoch, nil
}

// bump advances the change counter from gen, the value the caller read
// under this hold, records the registry epoch the change belongs to and
// returns the new counter. The caller holds the lock.
func (l *Lock) bump(gen, epoch uint64) (uint64, error) {
	gen++
	var b [16]byte
	binary.LittleEndian.PutUint64(b[:8], gen)
	binary.LittleEndian.PutUint64(b[8:], epoch)
	if _, err := l.f.WriteAt(b[:], 0); err != nil {
		return 0, errors.Wrapf(err, "advance the change counter in %s", l.path)
	}
	return gen, nil
}

// setEpoch records the registry epoch without advancing the counter.
func (l *Lock) setEpoch(epoch uint64) error {
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], epoch)
	if _, err := l.f.WriteAt(b[:], 8); err != nil {
		return errors.Wrapf(err, "record the registry epoch in %s", l.path)
	}
	return nil
}

// Claims on space returns.
//
// A removed device's space is returned by whichever returner reaches it
// first: a Pool's background goroutine, GC or Check's repair, in this
// process or another. The discard runs without the root lock (it can take
// long), so two returners can reach one device at once, and the second's
// exclusive open then fails with EBUSY — which cannot tell a returner from
// someone who opened the device. So a returner claims the device before it
// discards: an open-file-description lock (F_OFD_SETLK) on one byte of the
// root's lock file, at returnClaimBase + the thin id, taken through an open
// of its own, so that two Pools of one process exclude each other too. The
// kernel drops it when its holder dies. Linux keeps flock (the root lock)
// and fcntl locks apart, so the claims and the root lock never interact.
const returnClaimBase = 1 << 40

// Claim is a held claim: a space return's or a transaction's (below).
// Letting go of it closes its open, which drops the lock.
type Claim struct{ f *os.File }

// Release lets go of the claim (nil: nothing to let go of).
func (c *Claim) Release() {
	if c != nil {
		c.f.Close()
	}
}

// TryClaimReturn claims the space return of thin device devID. It returns
// nil, nil when another returner holds the claim.
func (l *Lock) TryClaimReturn(devID uint32) (*Claim, error) {
	return l.tryClaimByte(returnClaimBase+int64(devID), "the space return of thin device", devID)
}

// tryClaimByte takes an OFD write lock on byte off of the lock file
// through an open of its own, and returns it as a claim; nil, nil when
// someone else holds it. what and devID name the claim in errors.
func (l *Lock) tryClaimByte(off int64, what string, devID uint32) (*Claim, error) {
	f, err := os.OpenFile(l.path, os.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, errors.Wrapf(err, "open lock file %s", l.path)
	}
	lk := unix.Flock_t{Type: unix.F_WRLCK, Whence: io.SeekStart, Start: off, Len: 1}
	for {
		err = unix.FcntlFlock(f.Fd(), unix.F_OFD_SETLK, &lk)
		if err != unix.EINTR {
			break
		}
	}
	switch {
	case err == nil:
		return &Claim{f: f}, nil
	case err == unix.EAGAIN || err == unix.EACCES:
		f.Close()
		return nil, nil
	default:
		f.Close()
		return nil, errors.Wrapf(err, "claim %s %d in %s", what, devID, l.path)
	}
}

// ClaimReturn is tryClaimReturn that waits while another returner holds
// the claim (it lets go when its discard ends), until ctx ends.
func (l *Lock) ClaimReturn(ctx context.Context, devID uint32) (*Claim, error) {
	const poll = 10 * time.Millisecond
	for {
		c, err := l.TryClaimReturn(devID)
		if c != nil || err != nil {
			return c, err
		}
		select {
		case <-ctx.Done():
			return nil, errors.Wrapf(ctx.Err(), "wait for another process returning the space of thin device %d", devID)
		case <-time.After(poll):
		}
	}
}

// Release lets go of the claim.
// suspendMarkOffset is where the suspend mark lies in the lock file.
const suspendMarkOffset = 16

// SetSuspendMark records (on) that the caller is about to suspend a thin
// device of the root, or (off) that no device is left suspended. The
// caller holds the lock.
func (l *Lock) SetSuspendMark(on bool) error {
	var b [8]byte
	if on {
		b[0] = 1
	}
	if _, err := l.f.WriteAt(b[:], suspendMarkOffset); err != nil {
		return errors.Wrapf(err, "record a suspension in %s", l.path)
	}
	return nil
}

// SuspendMarked reports whether a process may have left a thin device of
// the root suspended; true when the mark cannot be read. The caller holds
// the lock.
func (l *Lock) SuspendMarked() bool {
	var b [8]byte
	n, err := l.f.ReadAt(b[:], suspendMarkOffset)
	if err != nil && !errors.Is(err, io.EOF) {
		return true
	}
	return n == len(b) && b != [8]byte{}
}

// Claims on transactions in flight.
//
// A transaction that waits for its begin frame to become durable without
// the root lock (Store.BeginShared) is open in the journal while its
// owner is away: whoever takes the lock meanwhile sees it pending and must
// not recover it. Its owner holds a claim on it from before its begin
// entry is written until after its end entry is: an OFD write lock on the
// byte at txClaimBase + the thin id, like the space-return claims. Under
// the root lock, a pending transaction whose claim can be taken has no
// owner left (it died, or gave the transaction up to recovery).
const txClaimBase = 1 << 41

// tryClaimTx claims the transaction of thin id devID; nil, nil when its
// owner holds the claim.
func (l *Lock) tryClaimTx(devID uint32) (*Claim, error) {
	return l.tryClaimByte(txClaimBase+int64(devID), "the transaction of thin id", devID)
}

// Relock takes the lock again after unlock, for a caller whose deferred
// Unlock is still to run: on return the mutex is held even when the lock
// could not be taken (a closed root), so that unlock stays paired.
func (l *Lock) Relock() error {
	l.mu.Lock()
	if l.f == nil {
		return errors.New("thin pool is closed")
	}
	for {
		err := unix.Flock(int(l.f.Fd()), unix.LOCK_EX)
		if err == nil {
			l.holds++
			return nil
		}
		if err != unix.EINTR {
			return errors.Wrapf(err, "lock %s", l.path)
		}
	}
}

// durableOffset is where the journal's durable mark lies in the lock file:
// the registry epoch (u64), a journal offset (u64) up to which a flush
// that completed made the journal durable, and a check word (their XOR
// with durableCheck). It is written and read without the root lock by
// processes waiting for their frames to be durable (a torn read fails the
// check and counts as nothing known); a racing write can only lower it,
// never claim more than some flush made durable. Never fsynced: a power
// cut ends every process that could trust it.
const (
	durableOffset = 24
	durableCheck  = 0x5448494e44555241 // "THINDURA"
)

// durable returns the durable mark (0, 0 when none can be read).
func (l *Lock) durable() (epoch uint64, pos int64) {
	f := l.mark.Load()
	if f == nil {
		return 0, 0
	}
	var b [24]byte
	if n, _ := f.ReadAt(b[:], durableOffset); n != len(b) {
		return 0, 0
	}
	e, p := binary.LittleEndian.Uint64(b[:8]), binary.LittleEndian.Uint64(b[8:16])
	if e^p^durableCheck != binary.LittleEndian.Uint64(b[16:]) {
		return 0, 0
	}
	return e, int64(p)
}

// setDurable records that the journal of epoch is durable up to pos.
func (l *Lock) setDurable(epoch uint64, pos int64) {
	f := l.mark.Load()
	if f == nil {
		return
	}
	var b [24]byte
	binary.LittleEndian.PutUint64(b[:8], epoch)
	binary.LittleEndian.PutUint64(b[8:16], uint64(pos))
	binary.LittleEndian.PutUint64(b[16:], epoch^uint64(pos)^durableCheck)
	_, _ = f.WriteAt(b[:], durableOffset)
}
