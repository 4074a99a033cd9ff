package loopback

import (
	"context"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/thinctl/thinctl/internal/wait"

	"github.com/pkg/errors"
	"github.com/thinctl/thinctl/errdefs"
	"golang.org/x/sys/unix"
)

// controlPath is the loop control device.
var controlPath = "/dev/loop-control"

// Bounds of the get-free/open/bind retry loop; variables so that tests can
// shrink them.
var (
	attachMaxTries = 30
	attachMaxWait  = 5 * time.Second
	attachMaxSleep = 50 * time.Millisecond
)

// getFree returns a free loop device index; tests replace it to stage races.
var getFree = ctlGetFree

// Binding attempts per path, for tests to see which path ran.
var boundWithConfigure, boundWithLegacy atomic.Int64

// attachMu serializes this process's attaches so that its own goroutines do
// not race each other for the device LOOP_CTL_GET_FREE hands out; other
// other processes using this package take turns through an flock on
// loop-control.
var attachMu sync.Mutex

// Device is a loop device bound by AttachOpen and held open by this process.
// The embedded Info is the state the kernel reported right after binding.
type Device struct {
	Info
	file *os.File
}

// File returns the open loop device, for ioctls or I/O on it.
func (d *Device) File() *os.File { return d.file }

// Close closes this process's descriptor on the device. It does not detach
// it, unless the device was attached with Autoclear and nothing else holds
// it open, in which case the kernel detaches it now.
func (d *Device) Close() error {
	if err := d.file.Close(); err != nil {
		return errors.Wrapf(err, "loopback: close %s (backing %s)", d.Path, d.BackingFile)
	}
	return nil
}

// Attach binds the file at path to a free loop device and returns the
// device's state as the kernel reports it. The device stays bound until
// Detach. Options.Autoclear is refused here, because Attach closes its
// descriptor before returning and the kernel would detach the device at
// once: use AttachOpen for autoclear devices.
func Attach(ctx context.Context, path string, opts Options) (Info, error) {
	if opts.Autoclear {
		return Info{}, errors.Errorf("loopback: attach %s: Autoclear would detach the device as soon as Attach returns; use AttachOpen and close the Device once a mount or table holds the loop device", path)
	}
	d, err := AttachOpen(ctx, path, opts)
	if err != nil {
		return Info{}, err
	}
	return d.Info, d.Close()
}

// AttachOpen binds the file at path to a free loop device like Attach and
// returns it still open. The backing file is opened with O_CLOEXEC and
// closed again once bound (the kernel keeps its own reference). Free devices
// are raced for by other processes: the LOOP_CTL_GET_FREE, open and bind
// sequence is retried on EBUSY, ENOENT and ENXIO with randomized backoff, up
// to 30 times or 5 seconds, before failing with ErrExhausted. When ctx ends
// during those retries AttachOpen returns its error and binds nothing.
func AttachOpen(ctx context.Context, path string, opts Options) (*Device, error) {
	if err := ctx.Err(); err != nil {
		return nil, errors.Wrapf(err, "loopback: attach %s", path)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, errors.Wrapf(err, "loopback: attach %s", path)
	}
	backing, err := openBacking(abs, opts)
	if err != nil {
		return nil, err
	}
	defer backing.Close()

	ctl, err := os.OpenFile(controlPath, os.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		if os.IsNotExist(err) || errnoOf(err) == unix.ENODEV || errnoOf(err) == unix.ENXIO {
			return nil, errors.Wrapf(ErrNotSupported, "loopback: attach %s: %s missing (is the loop module loaded?)", abs, controlPath)
		}
		return nil, errors.Wrapf(err, "loopback: attach %s: open %s (needs root)", abs, controlPath)
	}
	defer ctl.Close()

	attachMu.Lock()
	defer attachMu.Unlock()
	deadline := time.Now().Add(attachMaxWait)
	locked := lockControl(ctx, int(ctl.Fd()), deadline)
	if locked {
		defer unix.Flock(int(ctl.Fd()), unix.LOCK_UN)
	}

	var lastErr error
	start := time.Now()
	for try := 1; ; try++ {
		d, err := attachOnce(int(ctl.Fd()), backing, abs, opts)
		if err == nil {
			return d, nil
		}
		switch errnoOf(err) {
		case unix.EBUSY, unix.ENOENT, unix.ENXIO:
		default:
			return nil, err
		}
		lastErr = err
		if try >= attachMaxTries || time.Now().After(deadline) {
			return nil, errdefs.Wrapf(ErrExhausted, lastErr, "loopback: attach %s: other processes took every free loop device for %d tries over %s (last: %v); retry later or free loop devices",
				abs, try, time.Since(start).Round(time.Millisecond), lastErr)
		}
		if err := backoff(ctx, try); err != nil {
			return nil, errors.Wrapf(err, "loopback: attach %s: gave up waiting for a free loop device after %d tries (last: %v)", abs, try, lastErr)
		}
	}
}

// openBacking opens and checks the backing file.
func openBacking(abs string, opts Options) (*os.File, error) {
	flag := os.O_RDWR
	if opts.ReadOnly {
		flag = os.O_RDONLY
	}
	if opts.DirectIO {
		// Opened with O_DIRECT, the kernel also sizes the loop device's
		// logical blocks to the backing disk's, which direct I/O needs.
		flag |= unix.O_DIRECT
	}
	// Refuse what cannot back a loop device before opening it: opening a
	// FIFO read-only would block.
	if fi, err := os.Stat(abs); err == nil {
		if err := checkBackingMode(abs, fi.Mode()); err != nil {
			return nil, err
		}
	}
	f, err := os.OpenFile(abs, flag|unix.O_CLOEXEC, 0)
	if err != nil {
		if opts.DirectIO && errnoOf(err) == unix.EINVAL {
			return nil, errors.Wrapf(ErrNotSupported, "loopback: attach %s: the filesystem holding it does not support direct I/O; attach without DirectIO or move the file", abs)
		}
		return nil, errors.Wrapf(err, "loopback: attach %s: open backing file", abs)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, errors.Wrapf(err, "loopback: attach %s: stat backing file", abs)
	}
	if err := checkBackingMode(abs, fi.Mode()); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// checkBackingMode accepts regular files and block devices.
func checkBackingMode(abs string, m os.FileMode) error {
	if !m.IsRegular() && (m&os.ModeDevice == 0 || m&os.ModeCharDevice != 0) {
		return errors.Errorf("loopback: attach %s: not a regular file or block device (mode %s)", abs, m)
	}
	return nil
}

// lockControl takes an exclusive flock on loop-control so that processes
// using this package (several thinctl commands, parallel test binaries) take
// turns instead of racing for the same free device. It gives up at the
// deadline: the retry loop is correct without the lock.
func lockControl(ctx context.Context, fd int, deadline time.Time) bool {
	for {
		err := unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			return true
		}
		if err != unix.EWOULDBLOCK || time.Now().Add(attachMaxSleep).After(deadline) {
			return false
		}
		if wait.Sleep(ctx, time.Duration(rand.Int64N(int64(attachMaxSleep)))+time.Millisecond) != nil {
			return false
		}
	}
}

// backoff sleeps a random time that grows with the try number, capped at
// attachMaxSleep, so that racing processes spread out; ctx's error when it
// ends first.
func backoff(ctx context.Context, try int) error {
	ceiling := time.Millisecond << min(try, 6)
	if ceiling > attachMaxSleep {
		ceiling = attachMaxSleep
	}
	return wait.Sleep(ctx, time.Duration(rand.Int64N(int64(ceiling)))+time.Millisecond/2)
}

// attachOnce runs one get-free, open, bind sequence. Errors carrying EBUSY,
// ENOENT or ENXIO mean another process got in the way and the caller may
// retry; the device is then left as that process made it.
func attachOnce(ctl int, backing *os.File, abs string, opts Options) (*Device, error) {
	n, err := getFree(ctl)
	if err != nil {
		if errnoOf(err) == unix.ENOSPC {
			return nil, errdefs.Wrapf(ErrExhausted, err, "loopback: attach %s: the kernel has no more loop devices (LOOP_CTL_GET_FREE: %v)", abs, err)
		}
		return nil, errors.Wrapf(err, "loopback: attach %s: LOOP_CTL_GET_FREE", abs)
	}
	flag := os.O_RDWR
	if opts.ReadOnly {
		flag = os.O_RDONLY
	}
	dev, err := openNode(n, flag)
	if err != nil {
		return nil, errors.Wrapf(err, "loopback: attach %s: open free device", abs)
	}
	path := dev.Name()
	fail := func(err error) (*Device, error) {
		dev.Close()
		return nil, err
	}
	fd := int(dev.Fd())
	if err := bind(fd, int(backing.Fd()), abs, opts); err != nil {
		return fail(errors.Wrapf(err, "loopback: attach %s to %s", abs, path))
	}

	// From here on the device is ours: undo the binding on any failure.
	undo := func(err error) (*Device, error) {
		_ = clrFD(fd)
		return fail(err)
	}
	li, err := getStatus64(fd)
	if err != nil {
		err = errors.Wrapf(noRetry(err), "loopback: attach %s to %s: read back status", abs, path)
		if errnoOf(err) == 0 {
			return fail(err) // unbound again already: nothing of ours to clear
		}
		return undo(err)
	}
	var bst unix.Stat_t
	if err := unix.Fstat(int(backing.Fd()), &bst); err != nil {
		return undo(errors.Wrapf(err, "loopback: attach %s to %s: stat backing file", abs, path))
	}
	if li.Device != bst.Dev || li.Inode != bst.Ino {
		return fail(errors.Errorf("loopback: attach %s to %s: the device reports backing file %q (dev %d inode %d), not ours; another program rebound it", abs, path, li.FileName, li.Device, li.Inode))
	}
	if opts.DirectIO && li.Flags&flagDirectIO == 0 {
		return undo(errors.Wrapf(ErrNotSupported, "loopback: attach %s to %s: the kernel refused direct I/O for this file (alignment or filesystem); attach without DirectIO", abs, path))
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return undo(errors.Wrapf(err, "loopback: attach %s to %s: stat device", abs, path))
	}
	return &Device{Info: li.toInfo(path, st.Rdev), file: dev}, nil
}

// bind attaches backingFD to the unbound loop device fd, with LOOP_CONFIGURE
// when the kernel has it, else LOOP_SET_FD + LOOP_SET_STATUS64 (+
// LOOP_SET_DIRECT_IO). EBUSY from the binding call means another process
// bound the device first; it is returned untouched. Only a binding this
// call made is ever cleared.
func bind(fd, backingFD int, abs string, opts Options) error {
	info := loopInfo64{FileName: abs}
	if opts.ReadOnly {
		info.Flags |= flagReadOnly
	}
	if opts.Autoclear {
		info.Flags |= flagAutoclear
	}
	if opts.DirectIO {
		info.Flags |= flagDirectIO
	}
	ok, err := useConfigure(fd)
	if err != nil {
		return err
	}
	if ok {
		boundWithConfigure.Add(1)
		err := configure(fd, uint32(backingFD), &info)
		if err == unix.EINVAL && opts.DirectIO {
			return errors.Wrap(ErrNotSupported, "LOOP_CONFIGURE refused direct I/O for this file (alignment or filesystem); attach without DirectIO")
		}
		return errors.Wrap(err, "LOOP_CONFIGURE")
	}

	boundWithLegacy.Add(1)
	if err := setFD(fd, backingFD); err != nil {
		return errors.Wrap(err, "LOOP_SET_FD")
	}
	// Read-only comes from the descriptors' modes with LOOP_SET_FD;
	// LOOP_SET_STATUS64 only takes the settable flags.
	info.Flags &= setStatusFlags
	if err := setStatus64(fd, &info); err != nil {
		_ = clrFD(fd)
		return errors.Wrap(noRetry(err), "LOOP_SET_STATUS64")
	}
	if opts.DirectIO {
		if err := setDirectIO(fd, true); err != nil {
			_ = clrFD(fd)
			if err == unix.EINVAL {
				return errors.Wrap(ErrNotSupported, "LOOP_SET_DIRECT_IO: the kernel refused direct I/O for this file (alignment or filesystem); attach without DirectIO")
			}
			return errors.Wrap(noRetry(err), "LOOP_SET_DIRECT_IO")
		}
	}
	return nil
}

// noRetry hides an errno the retry loop would otherwise take for a race:
// after our LOOP_SET_FD succeeded, nobody else can hold the device.
func noRetry(err error) error {
	switch err {
	case unix.EBUSY, unix.ENOENT, unix.ENXIO:
		return errors.New(err.Error())
	}
	return err
}
