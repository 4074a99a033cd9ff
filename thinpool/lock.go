package thinpool

import (
	"encoding/binary"
	"io"
	"os"
	"sync"

	"github.com/pkg/errors"
	"golang.org/x/sys/unix"
)

// rootLock serialises writers of one root: a mutex for goroutines of this
// process and an flock on <root>/devicemapper/lock for other processes.
// The lock file's first 8 bytes are the root's change counter: every
// process that changes the set of devices advances it while holding the
// lock, and a process whose in-memory index was built at another value
// rebuilds it. The counter is a cache key, not state: it is never
// fsynced, and a lost update only costs a rebuild (a process starts
// without an index, and a crash mid-change leaves transaction.json, whose
// recovery advances the counter).
type rootLock struct {
	mu   sync.Mutex
	f    *os.File
	path string
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

// generation reads the change counter (0 for an empty lock file). The
// caller holds the lock.
func (l *rootLock) generation() (uint64, error) {
	var b [8]byte
	n, err := l.f.ReadAt(b[:], 0)
	if n == len(b) {
		return binary.LittleEndian.Uint64(b[:]), nil
	}
	if err != nil && !errors.Is(err, io.EOF) {
		return 0, errors.Wrapf(err, "read the change counter in %s", l.path)
	}
	return 0, nil
}

// bump advances the change counter and returns its new value. The caller
// holds the lock.
func (l *rootLock) bump() (uint64, error) {
	gen, err := l.generation()
	if err != nil {
		return 0, err
	}
	gen++
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], gen)
	if _, err := l.f.WriteAt(b[:], 0); err != nil {
		return 0, errors.Wrapf(err, "advance the change counter in %s", l.path)
	}
	return gen, nil
}
