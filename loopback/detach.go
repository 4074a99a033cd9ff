package loopback

import (
	"context"
	"strings"
	"time"

	"github.com/thinctl/thinctl/internal/wait"

	"github.com/pkg/errors"
	"golang.org/x/sys/unix"
)

// How long Detach waits for a deferred detach to complete when nothing but
// a transient opener (udev's blkid probe, a backup tool) holds the device,
// polling every detachPoll.
var (
	detachWait = 10 * time.Second
	detachPoll = 20 * time.Millisecond
)

// Detach unbinds the loop device at devPath (LOOP_CLR_FD). An unbound device
// gives ErrNotFound.
//
// While the device is open elsewhere the kernel only marks it autoclear and
// detaches it on last close. Detach then returns an error wrapping ErrBusy
// at once when the device is mounted (in this mount namespace) or held by
// another block device such as a device-mapper table; otherwise it waits up
// to 10 seconds for the other opener to go. Either way the kernel finishes
// the detach by itself when the last opener closes the device. When ctx ends
// during that wait Detach returns its error; the device stays marked to
// detach on last close.
func Detach(ctx context.Context, devPath string) error {
	f, err := openDevice(devPath, "detach")
	if err != nil {
		return err
	}
	before, err := statusOf(f, "detach")
	if err != nil {
		f.Close()
		return err
	}
	err = clrFD(int(f.Fd()))
	f.Close() // on newer kernels the unbinding completes in this close
	switch err {
	case nil:
	case unix.ENXIO:
		return errors.Wrapf(ErrNotFound, "loopback: detach %s: device is not bound to a file", devPath)
	case unix.EBUSY:
		return errors.Wrapf(ErrBusy, "loopback: detach %s (backing %s): device is in use; unmount it or remove the table using it", devPath, before.BackingFile)
	default:
		return errors.Wrapf(err, "loopback: detach %s (backing %s): LOOP_CLR_FD", devPath, before.BackingFile)
	}

	deadline := time.Now().Add(detachWait)
	for {
		now, err := GetInfo(devPath)
		if errors.Is(err, ErrNotFound) || (err == nil && (now.BackingDev != before.BackingDev || now.BackingInode != before.BackingInode)) {
			return nil // unbound, or already bound again by someone else
		}
		if err != nil {
			return errors.Wrapf(err, "loopback: detach %s (backing %s): check the device was released", devPath, before.BackingFile)
		}
		if users := usersOf(before.Dev); len(users) > 0 {
			return errors.Wrapf(ErrBusy, "loopback: detach %s (backing %s): %s; the kernel detaches the device when that ends", devPath, before.BackingFile, strings.Join(users, ", "))
		}
		if time.Now().After(deadline) {
			return errors.Wrapf(ErrBusy, "loopback: detach %s (backing %s): device is still open elsewhere; the kernel detaches it on last close", devPath, before.BackingFile)
		}
		if err := wait.Sleep(ctx, detachPoll); err != nil {
			return errors.Wrapf(err, "loopback: detach %s (backing %s): device still open elsewhere; the kernel detaches it on last close", devPath, before.BackingFile)
		}
	}
}
