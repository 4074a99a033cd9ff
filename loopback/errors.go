package loopback

import "github.com/pkg/errors"

// Sentinel errors; test with errors.Is.
var (
	// ErrNotFound: no loop device is bound to the file, or the device is unbound.
	ErrNotFound = errors.New("no loop device")
	// ErrBusy: the device is still open elsewhere (mounted, used by a table).
	ErrBusy = errors.New("loop device busy")
	// ErrExhausted: no free loop device could be bound within the retry bound.
	ErrExhausted = errors.New("no free loop device")
	// ErrNotSupported: no /dev/loop-control, no loop driver, or a feature
	// (such as direct I/O on the backing filesystem) the kernel refuses.
	ErrNotSupported = errors.New("not supported by this kernel or filesystem")
)
