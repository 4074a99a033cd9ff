package loopback

// This file is the contract other packages code against; bodies are
// placeholders until the loopback/ work lands. Adding is fine; changing an
// existing signature means updating every caller in the repository.

import "github.com/pkg/errors"

// Sentinel errors; test with errors.Is.
var (
	ErrNotFound     = errors.New("no loop device")                  // FindByBackingFile found none; device unbound
	ErrBusy         = errors.New("loop device busy")                // still bound / in use
	ErrExhausted    = errors.New("no free loop device")             // attach retries exhausted
	ErrNotSupported = errors.New("loop devices not supported here") // no /dev/loop-control, no loop module
)

// Options tunes Attach. The zero value attaches read-write, without
// autoclear and with buffered I/O.
type Options struct {
	ReadOnly  bool
	Autoclear bool
	DirectIO  bool
}

// Info describes a bound loop device.
type Info struct {
	Path         string // /dev/loopN
	Number       int
	Dev          uint64 // device number of /dev/loopN (unix.Mkdev)
	BackingFile  string // from lo_file_name (may be truncated at 63 bytes by the kernel)
	BackingDev   uint64 // st_dev of the backing file
	BackingInode uint64 // st_ino of the backing file
	Offset       uint64
	SizeLimit    uint64
	ReadOnly     bool
	Autoclear    bool
	DirectIO     bool
}

// Attach binds path to a free loop device and returns it.
func Attach(path string, opts Options) (Info, error) { panic("unimplemented") }

// FindByBackingFile returns the loop device bound to path (matched by device
// and inode), or ErrNotFound.
func FindByBackingFile(path string) (Info, error) { panic("unimplemented") }

// GetInfo returns the state of the loop device at devPath.
func GetInfo(devPath string) (Info, error) { panic("unimplemented") }

// SetCapacity makes the loop device pick up its backing file's new size.
func SetCapacity(devPath string) error { panic("unimplemented") }

// Detach unbinds the loop device at devPath.
func Detach(devPath string) error { panic("unimplemented") }
