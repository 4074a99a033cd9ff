package loopback

import (
	"os"

	"github.com/pkg/errors"
	"golang.org/x/sys/unix"

	"github.com/thinctl/thinctl/errdefs"
)

// GetInfo returns the state of the loop device at devPath, read with
// LOOP_GET_STATUS64. An unbound device (or a missing node) gives ErrNotFound.
func GetInfo(devPath string) (Info, error) {
	f, err := openDevice(devPath, "get info")
	if err != nil {
		return Info{}, err
	}
	defer f.Close()
	return statusOf(f, "get info")
}

// openDevice opens a loop device node read-only (enough for every ioctl
// used on a bound device as root, and it spares udev a change event).
func openDevice(devPath, op string) (*os.File, error) {
	f, err := os.OpenFile(devPath, os.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		if os.IsNotExist(err) || errnoOf(err) == unix.ENXIO || errnoOf(err) == unix.ENODEV {
			return nil, errdefs.Wrapf(ErrNotFound, err, "loopback: %s %s: %v", op, devPath, err)
		}
		return nil, errors.Wrapf(err, "loopback: %s %s", op, devPath)
	}
	return f, nil
}

// statusOf reads the status of the open loop device f.
func statusOf(f *os.File, op string) (Info, error) {
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return Info{}, errors.Wrapf(err, "loopback: %s %s: stat", op, f.Name())
	}
	if st.Mode&unix.S_IFMT != unix.S_IFBLK {
		return Info{}, errors.Errorf("loopback: %s %s: not a block device", op, f.Name())
	}
	li, err := getStatus64(int(f.Fd()))
	if err != nil {
		switch err {
		case unix.ENXIO:
			return Info{}, errors.Wrapf(ErrNotFound, "loopback: %s %s: device is not bound to a file", op, f.Name())
		case unix.ENOTTY, unix.EINVAL:
			return Info{}, errors.Errorf("loopback: %s %s: not a loop device (%v)", op, f.Name(), err)
		}
		return Info{}, errors.Wrapf(err, "loopback: %s %s: LOOP_GET_STATUS64", op, f.Name())
	}
	return li.toInfo(f.Name(), st.Rdev), nil
}
