package main

import (
	"os"
	"unsafe"

	"github.com/pkg/errors"
	"golang.org/x/sys/unix"
)

// statusNoFlush issues DM_TABLE_STATUS with DM_NOFLUSH_FLAG for name and
// returns the bytes the kernel wrote. The dm package's Status sends no
// flags, and a thin-pool commits its metadata on every status without this
// flag; the breakdown uses this probe to show what that commit costs.
func statusNoFlush(name string) (int, error) {
	f, err := os.OpenFile("/dev/mapper/control", os.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	buf := make([]byte, 16384)
	hdr := (*unix.DmIoctl)(unsafe.Pointer(&buf[0]))
	hdr.Version = [3]uint32{4, 0, 0}
	hdr.Data_size = uint32(len(buf))
	hdr.Data_start = uint32(unsafe.Sizeof(unix.DmIoctl{}))
	hdr.Flags = unix.DM_NOFLUSH_FLAG
	if len(name) >= len(hdr.Name) {
		return 0, errors.Errorf("dm name %q too long", name)
	}
	copy(hdr.Name[:], name)
	if _, _, e := unix.Syscall(unix.SYS_IOCTL, f.Fd(), uintptr(unix.DM_TABLE_STATUS), uintptr(unsafe.Pointer(&buf[0]))); e != 0 {
		return 0, errors.Wrapf(e, "DM_TABLE_STATUS (noflush) %s", name)
	}
	if hdr.Flags&unix.DM_BUFFER_FULL_FLAG != 0 {
		return 0, errors.Errorf("DM_TABLE_STATUS %s: buffer full", name)
	}
	return int(hdr.Data_size), nil
}
