// Package dm is a device-mapper client in pure Go: it speaks the DM_* ioctl
// interface on /dev/mapper/control directly (no libdevmapper, no cgo, no
// dmsetup) and knows nothing about what the devices are for.
//
// # Kernel interface
//
// Every request sends interface version 4.0.0 and reads the kernel's back;
// optional features are used only when the kernel's minor version has them
// (deferred removal 4.27, DM_DEV_ARM_POLL and richer device lists 4.37,
// uuids in device lists 4.45). Commands that return data start with a
// zero-filled 16 KiB buffer and double it while the kernel answers
// DM_BUFFER_FULL_FLAG. Names and uuids are checked before any ioctl because
// the kernel silently truncates them.
//
// # Errors
//
// A failed kernel operation returns an *Error naming the operation and the
// device; errors.Is matches it against both a sentinel (ErrNotFound,
// ErrBusy, ErrExists, ErrNoData, ErrPermission, ErrNotSupported,
// ErrInvalidTable, ErrInvalidArgument) and the errno. Tables the kernel
// rejects and failed target messages carry the kernel log's
// "device-mapper:" lines for them (read from /dev/kmsg, best effort).
//
// # Device nodes
//
// Without udev (no /run/udev/control), the client makes /dev/mapper/<name>
// itself: Create makes a block node (mode 0600) with the number the kernel
// returned, Resume repairs it if needed, Remove deletes it and Rename renames
// it; /dev/mapper/control is created from /proc/misc when missing.
//
// With udev running the client never calls mknod. Resume and Rename pass a
// udev cookie carrying DM_UDEV_PRIMARY_SOURCE_FLAG, so the device-mapper
// udev rules make the /dev/mapper/<name> symlink (udev drops it on the
// "remove" event of a Remove, which needs no cookie), and
// the client waits for that to happen (up to DefaultUdevTimeout, 30 s;
// see SetUdevTimeout). The rules make the node
// only when a table goes live, so in this mode it appears at the first
// Resume, not at Create.
//
// Either way /dev/mapper/<name> is usable when Create, LoadTable and Resume
// have returned, and gone when a non-deferred Remove has returned. After a
// deferred removal the node stays until the kernel removes the device; with
// udev, udev then drops it; without udev it stays behind until the next
// Create or Remove of that name replaces or deletes it.
//
// # Concurrency
//
// Default returns one Client per process holding one control fd; its methods
// may be called from many goroutines at once. WaitEvent opens a control fd of
// its own for as long as it waits.
package dm
