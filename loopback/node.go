package loopback

import (
	"os"
	"path/filepath"
	"strconv"

	"github.com/pkg/errors"
	"golang.org/x/sys/unix"
)

// devPath returns the node path of loop device n.
func devPath(n int) string {
	return filepath.Join(devDir, "loop"+strconv.Itoa(n))
}

// openNode opens loop device n. When the node is missing (no devtmpfs on
// /dev, or it has not caught up yet) it is created with the device number
// sysfs gives, and removed again if it cannot be opened after all.
func openNode(n int, flag int) (*os.File, error) {
	p := devPath(n)
	f, err := os.OpenFile(p, flag|unix.O_CLOEXEC, 0)
	if err == nil || !os.IsNotExist(err) {
		return f, err
	}
	major, minor := sysDevNumber(n)
	created := true
	if err := unix.Mknod(p, unix.S_IFBLK|0o660, int(unix.Mkdev(major, minor))); err != nil {
		if err != unix.EEXIST {
			return nil, &os.PathError{Op: "mknod", Path: p, Err: err}
		}
		created = false // someone else made it meanwhile
	}
	f, err = os.OpenFile(p, flag|unix.O_CLOEXEC, 0)
	if err != nil && created {
		_ = os.Remove(p)
	}
	return f, err
}

// errnoOf returns the errno inside err, or 0.
func errnoOf(err error) unix.Errno {
	var e unix.Errno
	if errors.As(err, &e) {
		return e
	}
	return 0
}
