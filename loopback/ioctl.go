package loopback

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// The loop ioctls, each a thin wrapper returning the raw errno so that
// callers can decide what it means. Request numbers come from
// include/uapi/linux/loop.h (mirrored in golang.org/x/sys/unix).

// ioctlPtr issues an ioctl whose argument points at buf.
func ioctlPtr(fd int, req uint, buf []byte) error {
	_, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), uintptr(req), uintptr(unsafe.Pointer(&buf[0])))
	if e != 0 {
		return e
	}
	return nil
}

// ioctlArg issues an ioctl whose argument is a plain integer and returns the
// ioctl's return value.
func ioctlArg(fd int, req uint, arg uintptr) (int, error) {
	r, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), uintptr(req), arg)
	if e != 0 {
		return -1, e
	}
	return int(r), nil
}

// ctlGetFree asks /dev/loop-control for an unbound loop device, creating one
// when none is free. The device's index is the ioctl's return value.
func ctlGetFree(ctlFD int) (int, error) {
	return ioctlArg(ctlFD, unix.LOOP_CTL_GET_FREE, 0)
}

// getStatus64 reads the device's struct loop_info64; ENXIO means unbound.
func getStatus64(fd int) (loopInfo64, error) {
	var buf [loopInfo64Size]byte
	if err := ioctlPtr(fd, unix.LOOP_GET_STATUS64, buf[:]); err != nil {
		return loopInfo64{}, err
	}
	return decodeLoopInfo64(buf[:])
}

// setStatus64 writes name, offset, size limit and the settable flags.
func setStatus64(fd int, info *loopInfo64) error {
	var buf [loopInfo64Size]byte
	encodeLoopInfo64(buf[:], info)
	return ioctlPtr(fd, unix.LOOP_SET_STATUS64, buf[:])
}

// configure binds backingFD and sets the status in one step (LOOP_CONFIGURE).
func configure(fd int, backingFD uint32, info *loopInfo64) error {
	var buf [loopConfigSize]byte
	encodeLoopConfig(buf[:], backingFD, info)
	return ioctlPtr(fd, unix.LOOP_CONFIGURE, buf[:])
}

// setFD binds backingFD without any status (LOOP_SET_FD).
func setFD(fd, backingFD int) error {
	_, err := ioctlArg(fd, unix.LOOP_SET_FD, uintptr(backingFD))
	return err
}

// clrFD unbinds the device (LOOP_CLR_FD). Call it only on a device this
// process bound.
func clrFD(fd int) error {
	_, err := ioctlArg(fd, unix.LOOP_CLR_FD, 0)
	return err
}

// setDirectIO switches direct I/O on or off (LOOP_SET_DIRECT_IO).
func setDirectIO(fd int, on bool) error {
	var arg uintptr
	if on {
		arg = 1
	}
	_, err := ioctlArg(fd, unix.LOOP_SET_DIRECT_IO, arg)
	return err
}

// setCapacity makes the device re-read its backing file's size.
func setCapacity(fd int) error {
	_, err := ioctlArg(fd, unix.LOOP_SET_CAPACITY, 0)
	return err
}
