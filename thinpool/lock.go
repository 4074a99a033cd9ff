package thinpool

import (
	"os"
	"sync"

	"github.com/pkg/errors"
	"golang.org/x/sys/unix"
)

// rootLock serialises writers of one root: a mutex for goroutines of this
// process and an flock on <root>/devicemapper/lock for other processes.
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
