package loopback

import (
	"sync/atomic"

	"github.com/pkg/errors"
	"golang.org/x/sys/unix"
)

// Whether the running kernel has LOOP_CONFIGURE, learnt once per process.
const (
	configureUnknown int32 = iota
	configureSupported
	configureMissing
)

var (
	configureState atomic.Int32
	forceLegacy    atomic.Bool
)

// ForceLegacyAttach makes Attach bind devices with LOOP_SET_FD followed by
// LOOP_SET_STATUS64 even where the kernel has LOOP_CONFIGURE, so that tests
// can exercise the fallback path on a new kernel. It returns the previous
// setting, to be restored when the test ends. Production code never needs it.
func ForceLegacyAttach(on bool) (previous bool) {
	return forceLegacy.Swap(on)
}

// useConfigure reports whether to bind with LOOP_CONFIGURE, probing the
// kernel through the loop device open at fd the first time it is asked.
//
// The probe passes a struct loop_config naming an invalid file descriptor:
// a kernel with LOOP_CONFIGURE looks the descriptor up first and fails with
// EBADF without touching the device; an older kernel rejects the unknown
// request with ENOTTY or EINVAL. The answer is remembered process-wide, and
// the kernel's version is never consulted.
func useConfigure(fd int) (bool, error) {
	if forceLegacy.Load() {
		return false, nil
	}
	switch configureState.Load() {
	case configureSupported:
		return true, nil
	case configureMissing:
		return false, nil
	}
	err := configure(fd, ^uint32(0), &loopInfo64{})
	switch err {
	case unix.EBADF:
		configureState.Store(configureSupported)
		return true, nil
	case unix.ENOTTY, unix.EINVAL:
		configureState.Store(configureMissing)
		return false, nil
	case nil:
		// No descriptor has number 2^32-1: this kernel speaks another ABI.
		return false, errors.New("LOOP_CONFIGURE probe with an invalid descriptor succeeded")
	default:
		return false, errors.Wrap(err, "probe LOOP_CONFIGURE")
	}
}
