package fs

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"unsafe"

	"github.com/pkg/errors"
	"golang.org/x/sys/unix"
)

// DevicePath maps a block device's "major:minor" (as device-mapper tables
// name their devices) to /dev/<name> through sysfs.
func DevicePath(majMin string) (string, error) {
	b, err := os.ReadFile(filepath.Join("/sys/dev/block", majMin, "uevent"))
	if err != nil {
		return "", errors.Wrapf(err, "device %s", majMin)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if name, ok := strings.CutPrefix(line, "DEVNAME="); ok {
			return "/dev/" + name, nil
		}
	}
	return "", errors.Errorf("device %s has no DEVNAME in sysfs", majMin)
}

// DeviceSize returns the size in bytes of the block device at path
// (BLKGETSIZE64).
func DeviceSize(path string) (uint64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, errors.Wrapf(err, "open %s", path)
	}
	defer f.Close()
	return fileDeviceSize(f)
}

func fileDeviceSize(f *os.File) (uint64, error) {
	var n uint64
	if _, _, e := unix.Syscall(unix.SYS_IOCTL, f.Fd(), unix.BLKGETSIZE64, uintptr(unsafe.Pointer(&n))); e != 0 {
		return 0, errors.Wrapf(e, "BLKGETSIZE64 %s", f.Name())
	}
	return n, nil
}

// discardChunk is how much one BLKDISCARD covers: small enough that a
// cancelled context stops a whole-device discard within a fraction of a
// second, large enough that a big device needs few calls.
const discardChunk = 1 << 30

// Discard tells the block device open as f that its bytes [offset,
// offset+length) are no longer needed (BLKDISCARD), in chunks, checking ctx
// between them. A device without discard support (EOPNOTSUPP) is not an
// error: there is nothing to give back. length 0 means to the end of the
// device.
func Discard(ctx context.Context, f *os.File, offset, length uint64) error {
	if length == 0 {
		size, err := fileDeviceSize(f)
		if err != nil {
			return err
		}
		if offset >= size {
			return nil
		}
		length = size - offset
	}
	for done := uint64(0); done < length; {
		if err := ctx.Err(); err != nil {
			return errors.Wrapf(err, "discard %s: stopped after %d of %d bytes", f.Name(), done, length)
		}
		n := min(length-done, discardChunk)
		r := [2]uint64{offset + done, n}
		if _, _, e := unix.Syscall(unix.SYS_IOCTL, f.Fd(), unix.BLKDISCARD, uintptr(unsafe.Pointer(&r[0]))); e != 0 {
			if e == unix.EOPNOTSUPP {
				return nil
			}
			return errors.Wrapf(e, "BLKDISCARD %s at %d (+%d)", f.Name(), offset+done, n)
		}
		done += n
	}
	return nil
}
