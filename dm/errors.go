package dm

import (
	"fmt"
	"syscall"

	"github.com/pkg/errors"
	"github.com/thinctl/thinctl/errdefs"
	"golang.org/x/sys/unix"
)

// Sentinel errors. Every error returned by this package wraps exactly one of
// them where the kernel's errno maps to one; test with errors.Is. Each also
// matches its errdefs class (ErrBusy matches errdefs.ErrBusy, ...).
var (
	ErrNotFound        = errdefs.New("no such device", errdefs.ErrNotFound)                            // ENXIO/ENODEV/ENOENT from the kernel
	ErrBusy            = errdefs.New("device or resource busy", errdefs.ErrBusy)                       // EBUSY
	ErrExists          = errdefs.New("already exists", errdefs.ErrExists)                              // EEXIST
	ErrNoData          = errdefs.New("no data", nil)                                                   // ENODATA (thin: delete of a missing id)
	ErrPermission      = errdefs.New("permission denied", nil)                                         // EPERM/EACCES
	ErrNotSupported    = errdefs.New("not supported by this kernel", errdefs.ErrNotSupported)          // ENOTTY/EOPNOTSUPP, missing control node or target
	ErrInvalidTable    = errdefs.New("kernel rejected the table", errdefs.ErrInvalidArgument)          // EINVAL (or ENODEV/ENOENT for a missing component) on TABLE_LOAD
	ErrInvalidName     = errdefs.New("invalid device-mapper name or uuid", errdefs.ErrInvalidArgument) // rejected before any ioctl
	ErrInvalidArgument = errdefs.New("invalid argument", errdefs.ErrInvalidArgument)                   // other EINVAL
)

// Error is the error of one failed kernel operation. errors.Is matches both
// its sentinel (ErrBusy, ...) and its errno (unix.EBUSY, ...).
type Error struct {
	Op     string        // the operation, e.g. "load table"
	Device string        // the device it acted on, empty for global operations
	Errno  syscall.Errno // what the ioctl returned
	Kernel string        // the kernel log lines explaining it, when found
	kind   error
}

// Error formats "dm: <op> <device>: <sentinel> (<errno>)[: kernel: <reason>]".
func (e *Error) Error() string {
	s := "dm: " + e.Op
	if e.Device != "" {
		s += " " + e.Device
	}
	if e.kind != nil {
		s += ": " + e.kind.Error() + " (" + e.Errno.Error() + ")"
	} else {
		s += ": " + e.Errno.Error()
	}
	if e.Kernel != "" {
		s += ": kernel: " + e.Kernel
	}
	return s
}

// Unwrap returns the sentinel and the errno.
func (e *Error) Unwrap() []error {
	if e.kind == nil {
		return []error{e.Errno}
	}
	return []error{e.kind, e.Errno}
}

// sentinelFor maps an errno to its sentinel. With table (TABLE_LOAD), the
// errors a target's constructor returns (EINVAL, and ENODEV or ENOENT when a
// device in the table cannot be found) mean ErrInvalidTable; ENXIO still
// means the mapped device itself is missing. With naming (create, rename),
// EBUSY is the kernel's answer to a name or uuid in use: ErrExists.
func sentinelFor(errno syscall.Errno, table, naming bool) error {
	if table {
		switch errno {
		case unix.EINVAL, unix.ENODEV, unix.ENOENT:
			return ErrInvalidTable
		}
	}
	switch errno {
	case unix.EBUSY:
		if naming {
			return ErrExists
		}
		return ErrBusy
	case unix.ENXIO, unix.ENODEV, unix.ENOENT:
		return ErrNotFound
	case unix.EEXIST:
		return ErrExists
	case unix.ENODATA:
		return ErrNoData
	case unix.EPERM, unix.EACCES:
		return ErrPermission
	case unix.ENOTTY, unix.EOPNOTSUPP:
		return ErrNotSupported
	case unix.EINVAL:
		return ErrInvalidArgument
	}
	return nil
}

// opError builds the Error for a failed operation.
func opError(op string, r ref, err error, table, naming bool) error {
	errno, ok := err.(syscall.Errno)
	if !ok {
		return errors.Wrapf(err, "dm: %s %s", op, r)
	}
	return &Error{Op: op, Device: r.String(), Errno: errno, kind: sentinelFor(errno, table, naming)}
}

func devString(dev uint64) string {
	return fmt.Sprintf("%d:%d", unix.Major(dev), unix.Minor(dev))
}
