// Package devnode opens and removes the device-mapper devices of a pool
// on hosts with and without udev: a removal waits out udev's workers (and
// only them) while they briefly hold a device, a device is opened for a
// discard through a private node whose close no udev watch sees, and a
// device is probed for I/O errors past the page cache.
package devnode

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/pkg/errors"
	"golang.org/x/sys/unix"

	"github.com/thinctl/thinctl/dm"
	"github.com/thinctl/thinctl/errdefs"
	"github.com/thinctl/thinctl/fs"
	"github.com/thinctl/thinctl/internal/wait"
)

// ErrBusy is the class of a device something else holds
// (thinpool.ErrBusy).
var ErrBusy = errdefs.New("device is busy", errdefs.ErrBusy)

// SettleWait bounds how long a removal waits for udev's workers to
// let go of a device.
const SettleWait = 8 * time.Second

// Remove removes device-mapper device name with c (dev is its device
// number and mountPath where it is mounted, 0 and "" when not known),
// waiting out transient holders. A busy device is retried briefly (the dm package's default). While udev
// runs, its workers open every device that was just closed (blkid probes)
// and hold it for a moment after an unmount: as long as nothing but udev's
// processes can be seen holding it, removal is retried for up to
// SettleWait. A device held by any other process is reported busy at
// once, so the caller can defer or refuse without a long wait. noNodeWait
// is for callers that never look at the name again (a removal): they do not
// wait for udev to drop /dev/mapper/<name>.
func Remove(ctx context.Context, c *dm.Client, name string, dev uint64, mountPath string, noNodeWait bool) error {
	err := c.Remove(ctx, name, dm.RemoveOptions{NoNodeWait: noNodeWait})
	if !errors.Is(err, dm.ErrBusy) || !UdevRunning() {
		return err
	}
	deadline := time.Now().Add(SettleWait)
	for time.Now().Before(deadline) {
		if dev != 0 {
			if hs, herr := fs.Holders(dev, mountPath); herr == nil && HeldBeyondUdev(hs) {
				return err
			}
		}
		if werr := wait.Sleep(ctx, 100*time.Millisecond); werr != nil {
			return errors.Wrapf(err, "gave up waiting for udev to let go (%v)", werr)
		}
		if err = c.Remove(ctx, name, dm.RemoveOptions{Retries: -1, NoNodeWait: noNodeWait}); !errors.Is(err, dm.ErrBusy) {
			return err
		}
	}
	return err
}

// UdevRunning reports whether udev is running (its control socket exists).
func UdevRunning() bool {
	_, err := os.Stat("/run/udev/control")
	return err == nil
}

// udevCommands are the process names udev's workers and the programs its
// rules start go by (systemd 252 names workers "(udev-worker)").
var udevCommands = map[string]bool{"systemd-udevd": true, "(udev-worker)": true, "udevd": true,
	"(spawn)": true, "blkid": true, "dmsetup": true}

// HeldBeyondUdev reports whether any holder is not one of udev's processes.
func HeldBeyondUdev(hs []fs.Holder) bool {
	for _, h := range hs {
		if !udevCommands[h.Command] {
			return true
		}
	}
	return false
}

// OpenForDiscard opens block device dev for writing, exclusively (a mount
// that raced in is noticed, EBUSY, rather than discarded under), through a
// private node: a block special file of the same number made in dir and
// unlinked at once. udev watches the nodes under /dev (inotify) and turns
// every close after a write into a synthetic "change" event; handled after
// the device is gone and its minor reused, that event named the new
// device, and the old device's last "remove" event then deleted the new
// device's /dev/mapper link (issue #13). A private node's close is seen by
// nobody. Where it cannot be made or opened (no CAP_MKNOD, a nodev
// filesystem) the kernel's node /dev/dm-<minor> is used.
func OpenForDiscard(dir string, dev uint64) (*os.File, error) {
	path := filepath.Join(dir, fmt.Sprintf(".discard-%d-%d-%d", os.Getpid(), unix.Major(dev), unix.Minor(dev)))
	_ = os.Remove(path) // left by a crash
	if err := unix.Mknod(path, unix.S_IFBLK|0o600, int(dev)); err == nil {
		f, err := os.OpenFile(path, os.O_RDWR|unix.O_EXCL|unix.O_CLOEXEC, 0)
		_ = os.Remove(path)
		switch {
		case err == nil:
			return f, nil
		case errors.Is(err, unix.EBUSY):
			return nil, errors.Wrapf(ErrBusy, "device %d:%d is open exclusively elsewhere", unix.Major(dev), unix.Minor(dev))
		}
	}
	return openKernelNode(dev)
}

// openKernelNode opens the block device dev through the node devtmpfs makes
// for it (/dev/dm-<minor> for device-mapper), exclusively.
func openKernelNode(dev uint64) (*os.File, error) {
	path := fmt.Sprintf("/dev/dm-%d", unix.Minor(dev))
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFBLK || st.Rdev != dev {
		return nil, errors.Errorf("%s is not the block device %d:%d (is devtmpfs mounted on /dev?)", path, unix.Major(dev), unix.Minor(dev))
	}
	f, err := os.OpenFile(path, os.O_RDWR|unix.O_EXCL|unix.O_CLOEXEC, 0)
	if errors.Is(err, unix.EBUSY) {
		return nil, errors.Wrapf(ErrBusy, "%s is open exclusively elsewhere", path)
	}
	return f, err
}

// ReadHead reads the first 4 KiB of the device at path with O_DIRECT,
// past the page cache, and returns the read's error: a device that fails
// with unix.EIO returns I/O errors.
func ReadHead(path string) error {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_DIRECT|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	buf, err := unix.Mmap(-1, 0, 4096, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_ANON|unix.MAP_PRIVATE)
	if err != nil {
		return err
	}
	defer unix.Munmap(buf)
	_, err = unix.Pread(fd, buf, 0)
	return err
}
