package overlay2

import (
	"runtime"

	"github.com/pkg/errors"
	"golang.org/x/sys/unix"
)

// A lower chain too long for one page of mount options with absolute paths
// is mounted with paths relative to <home>, which mount(2) resolves against
// the working directory. The working directory is the whole process's, and
// changing it would move every other goroutine's relative paths under them.
// So the mount runs on an OS thread of its own that first stops sharing
// its filesystem attributes (unshare(CLONE_FS): root, working directory,
// umask) with the rest of the process, changes directory there, mounts,
// and is then thrown away: its goroutine ends still locked to it, which
// makes the Go runtime terminate the thread instead of reusing it — except
// when that thread is the process's main thread, which Go never ends (it
// parks it for good). So before it ends, the thread changes back to the
// directory the process was in: a parked main thread left in <home> would
// keep the home's filesystem busy for the life of the process (seen as
// "umount: target is busy" on the VM's xfs after a deep chain). Nothing
// is re-executed and no program has to install a hook: importing this
// package does nothing at all beyond registering the backend.

// mountOverlay performs m, directly when absolute, from a private working
// directory when relative.
func mountOverlay(m mountSpec) error {
	if m.dir == "" {
		if err := unix.Mount("overlay", m.target, "overlay", 0, m.data); err != nil {
			return errors.Wrapf(err, "mount overlay on %s (options %d bytes)", m.target, len(m.data))
		}
		return nil
	}
	done := make(chan error, 1)
	go func() {
		// Never unlocked: the thread dies with this goroutine, taking its
		// private working directory with it.
		runtime.LockOSThread()
		done <- mountRelative(m)
	}()
	return <-done
}

// mountRelative runs on a locked thread that is discarded afterwards (or,
// the main thread, parked); it leaves the thread in the directory the
// process is in.
func mountRelative(m mountSpec) error {
	// Opened while the thread still shares the process's working directory.
	back, backErr := unix.Open(".", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if backErr == nil {
		defer unix.Close(back)
	}
	if err := unix.Unshare(unix.CLONE_FS); err != nil {
		return errors.Wrap(err, "relative overlay mount: unshare the working directory from the rest of the process")
	}
	defer func() {
		if backErr != nil || unix.Fchdir(back) != nil {
			unix.Chdir("/")
		}
	}()
	if err := unix.Chdir(m.dir); err != nil {
		return errors.Wrapf(err, "relative overlay mount: chdir %s", m.dir)
	}
	if err := unix.Mount("overlay", m.target, "overlay", 0, m.data); err != nil {
		return errors.Wrapf(err, "mount overlay on %s/%s with relative paths (options %d bytes)", m.dir, m.target, len(m.data))
	}
	return nil
}
