package thinpool

import (
	"context"
	"encoding/binary"
	"io"
	"os"
	"sync"
	"time"

	"github.com/pkg/errors"
	"golang.org/x/sys/unix"
)

// rootLock serialises writers of one root: a mutex for goroutines of this
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
type rootLock struct {
	mu   sync.Mutex
	f    *os.File
	path string
	// holds counts the times the lock was taken; the registry reads the
	// counter once per hold.
	holds uint64
}

func openRootLock(path string) (*rootLock, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, errors.Wrapf(err, "open lock file %s", path)
	}
	return &rootLock{f: f, path: path}, nil
}

// lock takes the mutex, then the flock (waiting for other processes).
func (l *rootLock) lock() error {
	l.mu.Lock()
	if l.f == nil {
		l.mu.Unlock()
		return errors.New("thin pool is closed")
	}
	for {
		err := unix.Flock(int(l.f.Fd()), unix.LOCK_EX)
		if err == nil {
			l.holds++
			return nil
		}
		if err != unix.EINTR {
			l.mu.Unlock()
			return errors.Wrapf(err, "lock %s", l.path)
		}
	}
}

// unlock releases the flock and the mutex.
func (l *rootLock) unlock() {
	if l.f != nil {
		_ = unix.Flock(int(l.f.Fd()), unix.LOCK_UN)
	}
	l.mu.Unlock()
}

// close releases the lock file; later lock calls fail.
func (l *rootLock) close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.closeLocked()
}

// closeLocked is close for a caller holding the mutex.
func (l *rootLock) closeLocked() error {
	if l.f == nil {
		return nil
	}
	err := l.f.Close()
	l.f = nil
	return err
}

// state reads the change counter and the registry epoch (0, 0 for an
// empty lock file). The caller holds the lock.
func (l *rootLock) state() (gen, epoch uint64, err error) {
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
func (l *rootLock) bump(gen, epoch uint64) (uint64, error) {
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
func (l *rootLock) setEpoch(epoch uint64) error {
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

// returnClaim is a held claim on one device's space return.
type returnClaim struct{ f *os.File }

// tryClaimReturn claims the space return of thin device devID. It returns
// nil, nil when another returner holds the claim.
func (l *rootLock) tryClaimReturn(devID uint32) (*returnClaim, error) {
	f, err := os.OpenFile(l.path, os.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, errors.Wrapf(err, "open lock file %s", l.path)
	}
	lk := unix.Flock_t{Type: unix.F_WRLCK, Whence: io.SeekStart, Start: returnClaimBase + int64(devID), Len: 1}
	for {
		err = unix.FcntlFlock(f.Fd(), unix.F_OFD_SETLK, &lk)
		if err != unix.EINTR {
			break
		}
	}
	switch {
	case err == nil:
		return &returnClaim{f: f}, nil
	case err == unix.EAGAIN || err == unix.EACCES:
		f.Close()
		return nil, nil
	default:
		f.Close()
		return nil, errors.Wrapf(err, "claim the space return of thin device %d in %s", devID, l.path)
	}
}

// claimReturn is tryClaimReturn that waits while another returner holds
// the claim (it lets go when its discard ends), until ctx ends.
func (l *rootLock) claimReturn(ctx context.Context, devID uint32) (*returnClaim, error) {
	const poll = 10 * time.Millisecond
	for {
		c, err := l.tryClaimReturn(devID)
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

// release lets go of the claim.
func (c *returnClaim) release() {
	if c != nil {
		c.f.Close()
	}
}

// suspendMarkOffset is where the suspend mark lies in the lock file.
const suspendMarkOffset = 16

// setSuspendMark records (on) that the caller is about to suspend a thin
// device of the root, or (off) that no device is left suspended. The
// caller holds the lock.
func (l *rootLock) setSuspendMark(on bool) error {
	var b [8]byte
	if on {
		b[0] = 1
	}
	if _, err := l.f.WriteAt(b[:], suspendMarkOffset); err != nil {
		return errors.Wrapf(err, "record a suspension in %s", l.path)
	}
	return nil
}

// suspendMarked reports whether a process may have left a thin device of
// the root suspended; true when the mark cannot be read. The caller holds
// the lock.
func (l *rootLock) suspendMarked() bool {
	var b [8]byte
	n, err := l.f.ReadAt(b[:], suspendMarkOffset)
	if err != nil && !errors.Is(err, io.EOF) {
		return true
	}
	return n == len(b) && b != [8]byte{}
}
