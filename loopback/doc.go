// Package loopback binds regular files to Linux loop block devices with the
// raw loop ioctls: no losetup, no cgo.
//
// Attach asks /dev/loop-control for a free device (LOOP_CTL_GET_FREE), opens
// /dev/loopN (creating the node when devtmpfs has not) and binds the file with
// LOOP_CONFIGURE. On kernels without LOOP_CONFIGURE it falls back to
// LOOP_SET_FD followed by LOOP_SET_STATUS64; which of the two the kernel
// supports is probed once per process, never read from the kernel version.
// Other processes may race for the same free device; the whole
// get-free/open/bind sequence is retried with randomized backoff, a bounded
// number of times, and a device this package did not bind is never cleared.
//
// The backing file's path is stored in lo_file_name (the kernel keeps at most
// 63 bytes of it), but FindByBackingFile matches devices by the backing file's
// device and inode numbers, so renamed files and long paths are still found.
//
// # Autoclear
//
// With Options.Autoclear the kernel detaches the loop device by itself when
// its last opener closes it. Attach closes its own descriptor before it
// returns, which would detach such a device at once, so Attach refuses
// Autoclear: use AttachOpen, keep the returned Device open until something
// else holds the loop device (a mount, a device-mapper table), then close it.
// Detach of a device that is still open elsewhere is deferred the same way by
// the kernel, and is reported as ErrBusy.
//
// Every function needs root (CAP_SYS_ADMIN) and a kernel with loop support;
// errors name the device and the backing file and wrap the sentinel errors
// of this package, to be tested with errors.Is.
package loopback
