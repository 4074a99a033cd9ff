package dm

// This file is the contract other packages code against. The implementation
// lives in the other files of this package; bodies here are placeholders
// until the dm/ work lands. Adding to this API is fine; changing an existing
// signature means updating every caller in the repository.

import (
	"context"
	"time"

	"github.com/pkg/errors"
)

// Sentinel errors. Every error returned by this package wraps exactly one of
// them where the kernel's errno maps to one; test with errors.Is.
var (
	ErrNotFound        = errors.New("no such device")                     // ENXIO/ENODEV/ENOENT from the kernel
	ErrBusy            = errors.New("device or resource busy")            // EBUSY
	ErrExists          = errors.New("already exists")                     // EEXIST
	ErrNoData          = errors.New("no data")                            // ENODATA (thin: delete of a missing id)
	ErrPermission      = errors.New("permission denied")                  // EPERM/EACCES
	ErrNotSupported    = errors.New("not supported by this kernel")       // ENOTTY/EOPNOTSUPP, missing control node or target
	ErrInvalidTable    = errors.New("kernel rejected the table")          // EINVAL on TABLE_LOAD
	ErrInvalidName     = errors.New("invalid device-mapper name or uuid") // rejected before any ioctl
	ErrInvalidArgument = errors.New("invalid argument")                   // other EINVAL
)

// KernelVersion is the device-mapper ioctl interface version the kernel reports.
type KernelVersion struct{ Major, Minor, Patch uint32 }

// Target is one line of a device-mapper table: Start and Length in 512-byte
// sectors, the target Type ("thin-pool", "thin", "linear", ...) and its
// parameters. In Status results Params holds the status line instead.
type Target struct {
	Start  uint64
	Length uint64
	Type   string
	Params string
}

// Info describes one mapped device as DM_DEV_STATUS reports it.
type Info struct {
	Name           string
	UUID           string
	Dev            uint64 // unix.Mkdev(major, minor)
	OpenCount      int32
	EventNr        uint32
	TargetCount    uint32
	Suspended      bool
	ReadOnly       bool
	LiveTable      bool
	InactiveTable  bool
	DeferredRemove bool
}

// Device is one entry of ListDevices.
type Device struct {
	Name string
	UUID string // empty when the kernel does not report uuids in lists
	Dev  uint64
}

// TargetVersion is one entry of ListTargetVersions.
type TargetVersion struct {
	Name                string
	Major, Minor, Patch uint32
}

// CreateOptions tunes Create. The zero value creates a device with no uuid.
type CreateOptions struct {
	UUID string
}

// LoadOptions tunes LoadTable.
type LoadOptions struct {
	ReadOnly bool
}

// SuspendOptions tunes Suspend.
type SuspendOptions struct {
	NoFlush    bool
	SkipLockfs bool
}

// RemoveOptions tunes Remove. The zero value retries EBUSY a few times with
// backoff and then returns ErrBusy.
type RemoveOptions struct {
	// Deferred asks the kernel to remove the device on its last close when
	// it is busy now; Remove then succeeds and Info reports DeferredRemove.
	Deferred bool
	// Retries bounds the EBUSY retries (0 means the default, negative none).
	Retries int
}

// TableOptions tunes Table.
type TableOptions struct {
	Inactive bool // read the inactive (loaded, not yet resumed) table
}

// Client talks to /dev/mapper/control. One Client per process is enough;
// its methods are safe for concurrent use.
type Client struct {
	_ struct{}
}

// Default returns the process-wide Client, opening the control node (and
// creating /dev/mapper/control when it is missing) on first use.
func Default() (*Client, error) { return nil, errors.New("dm: not implemented") }

// Close releases the control fd.
func (c *Client) Close() error { return nil }

// Version returns the kernel's device-mapper ioctl version.
func (c *Client) Version() (KernelVersion, error) { panic("unimplemented") }

// Create makes a new mapped device with no table and makes sure
// /dev/mapper/<name> exists (mknod without udev, waits for udev otherwise).
func (c *Client) Create(name string, opts CreateOptions) (Info, error) { panic("unimplemented") }

// LoadTable loads targets into the device's inactive table.
func (c *Client) LoadTable(name string, targets []Target, opts LoadOptions) error {
	panic("unimplemented")
}

// ClearTable drops the device's inactive table.
func (c *Client) ClearTable(name string) error { panic("unimplemented") }

// Resume makes the inactive table live (or resumes a suspended device).
func (c *Client) Resume(name string) error { panic("unimplemented") }

// Suspend suspends the device.
func (c *Client) Suspend(name string, opts SuspendOptions) error { panic("unimplemented") }

// Remove removes the device and its node.
func (c *Client) Remove(name string, opts RemoveOptions) error { panic("unimplemented") }

// CancelDeferredRemove cancels a pending deferred removal.
func (c *Client) CancelDeferredRemove(name string) error { panic("unimplemented") }

// Rename renames the device (and its node).
func (c *Client) Rename(name, newName string) error { panic("unimplemented") }

// Info returns the device's state; ErrNotFound when it does not exist.
func (c *Client) Info(name string) (Info, error) { panic("unimplemented") }

// Table returns the live (or inactive) table.
func (c *Client) Table(name string, opts TableOptions) ([]Target, error) { panic("unimplemented") }

// Status returns each target's status line in Target.Params.
func (c *Client) Status(name string) ([]Target, error) { panic("unimplemented") }

// Deps returns the device numbers the device's live table depends on.
func (c *Client) Deps(name string) ([]uint64, error) { panic("unimplemented") }

// ListDevices lists every mapped device.
func (c *Client) ListDevices() ([]Device, error) { panic("unimplemented") }

// ListTargetVersions lists the target types the kernel has loaded.
func (c *Client) ListTargetVersions() ([]TargetVersion, error) { panic("unimplemented") }

// Message sends a target message (e.g. "create_thin 1" to a thin-pool at
// sector 0) and returns the kernel's reply, empty when it gives none.
func (c *Client) Message(name string, sector uint64, message string) (string, error) {
	panic("unimplemented")
}

// WaitEvent blocks until the device's event number differs from eventNr or
// ctx is done, and returns the new event number.
func (c *Client) WaitEvent(ctx context.Context, name string, eventNr uint32) (uint32, error) {
	panic("unimplemented")
}

// NodePath returns /dev/mapper/<name>.
func NodePath(name string) string { return "/dev/mapper/" + name }

// ValidateName reports whether name is usable as a device-mapper name
// (1..127 bytes, no '/', not "control", "." or "..").
func ValidateName(name string) error { panic("unimplemented") }

// ValidateUUID reports whether uuid is usable as a device-mapper uuid (<=128 bytes).
func ValidateUUID(uuid string) error { panic("unimplemented") }

var _ = time.Second
