package loopback

import (
	"github.com/pkg/errors"
	"golang.org/x/sys/unix"
)

// SetCapacity makes the loop device at devPath pick up its backing file's
// current size (LOOP_SET_CAPACITY), after the file was grown.
func SetCapacity(devPath string) error {
	f, err := openDevice(devPath, "set capacity of")
	if err != nil {
		return err
	}
	defer f.Close()
	if err := setCapacity(int(f.Fd())); err != nil {
		if err == unix.ENXIO {
			return errors.Wrapf(ErrNotFound, "loopback: set capacity of %s: device is not bound to a file", devPath)
		}
		return errors.Wrapf(err, "loopback: set capacity of %s: LOOP_SET_CAPACITY", devPath)
	}
	return nil
}
