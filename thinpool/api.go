package thinpool

// This file is the contract other packages (cmd/thinctl, the devicemapper
// driver) code against; bodies are placeholders until the thinpool/ work
// lands. Adding is fine; changing an existing signature means updating every
// caller in the repository.

import (
	"time"

	"github.com/pkg/errors"

	"github.com/thinctl/thinctl/fs"
)

// Sentinel errors; test with errors.Is.
var (
	ErrNotInitialized  = errors.New("no thin pool at this root")     // Open on an empty root
	ErrAlreadyInit     = errors.New("thin pool already initialized") // Init on a used root
	ErrDeviceNotFound  = errors.New("device not found")              // unknown or deleted id
	ErrDeviceExists    = errors.New("device already exists")
	ErrInvalidID       = errors.New("invalid device id")
	ErrParentNotFound  = errors.New("parent device not found")
	ErrHasChildren     = errors.New("device has snapshots")
	ErrBusy            = errors.New("device is busy")
	ErrLowSpace        = errors.New("thin pool is low on free space")
	ErrPoolReadOnly    = errors.New("thin pool is read-only or failed")
	ErrRegistryCorrupt = errors.New("device registry is unreadable")
	ErrDeferred        = errors.New("removal deferred until the device is released")
	ErrInvalidSize     = errors.New("invalid size")
)

// Options configures Init. Zero fields take the documented defaults.
type Options struct {
	DataSize       uint64  // default 100 GiB (sparse loop file)
	MetadataSize   uint64  // default 2 GiB
	BlockSize      uint64  // bytes; default 64 KiB; 64 KiB..1 GiB, multiple of 64 KiB
	BaseSize       uint64  // default 10 GiB
	Filesystem     fs.Type // default ext4
	MkfsArgs       []string
	MountOptions   []string
	MinFreeSpace   float64 // percent, default 10
	DataDevice     string  // raw block device instead of a loop file
	MetadataDevice string
	ThinPoolDevice string // existing thin-pool dm name; used, never deactivated
	NoDiscard      bool   // skip discards on remove
	// Progress, when set, is called with a short description and a
	// fraction in [0,1] during long work; it must not block.
	Progress func(step string, fraction float64)
}

// OpenOptions tunes Open.
type OpenOptions struct {
	Progress func(step string, fraction float64)
}

// CreateOptions tunes Create.
type CreateOptions struct {
	Size uint64 // bytes; 0 = the parent's size; otherwise at least the parent's
}

// MountOptions tunes Mount.
type MountOptions struct {
	Options    []string // added to the pool's configured mount options
	MountLabel string
}

// GrowOptions tunes Grow; a zero field leaves that size unchanged.
type GrowOptions struct {
	DataSize     uint64
	MetadataSize uint64
}

// CheckOptions tunes Check.
type CheckOptions struct {
	Repair bool
}

// Device is one registry entry as callers see it.
type Device struct {
	ID            string
	Parent        string // "" for snapshots of the base device
	DeviceID      uint32 // thin device id in the pool (24-bit)
	Size          uint64
	TransactionID uint64
	Initialized   bool
	Deleted       bool
	Created       time.Time
	Active        bool
	Mounted       bool
	MountPath     string
	DevicePath    string // /dev/mapper/<name> when active
}

// Status is the pool's state.
type Status struct {
	PoolName          string
	TransactionID     uint64
	DataUsed          uint64
	DataTotal         uint64
	MetadataUsed      uint64
	MetadataTotal     uint64
	DataAvailable     uint64 // capped by the free space of the filesystem holding a loop file
	MetadataAvailable uint64
	ReadOnly          bool
	OutOfDataSpace    bool
	NeedsCheck        bool
	Failed            bool
	State             string // "rw", "ro", "out_of_data_space", "fail", "down"
	Devices           int
	BlockSize         uint64
	Filesystem        fs.Type
	DataFile          string
	MetadataFile      string
}

// Problem is one inconsistency Check found.
type Problem struct {
	Kind   string // "orphan_thin", "leaked_id", "missing_device", "stale_mount", "pending_transaction", "deleted_pending", ...
	ID     string
	Detail string
	Fixed  bool
}

// Report is the result of Check.
type Report struct {
	Consistent bool
	Problems   []Problem
}

// Pool is an open thin pool rooted at a state directory.
type Pool struct {
	_ struct{}
}

// Init creates a new pool under root/devicemapper and its base device.
func Init(root string, opts Options) (*Pool, error) { panic("unimplemented") }

// Open opens an existing pool, bringing it up (loop devices, pool table)
// when it is down and finishing interrupted transactions and deferred
// deletions. ErrNotInitialized when root has no pool.
func Open(root string, opts OpenOptions) (*Pool, error) { panic("unimplemented") }

// Exists reports whether root holds an initialized pool.
func Exists(root string) bool { panic("unimplemented") }

// Close releases the process's handles; devices stay as they are.
func (p *Pool) Close() error { panic("unimplemented") }

// Down unmounts nothing: it deactivates every inactive-able device of the
// root and then the pool (unless it is an external thin-pool), and detaches
// the loop devices. Mounted devices make it fail with ErrBusy.
func (p *Pool) Down() error { panic("unimplemented") }

// Destroy removes every device, the pool and the root's state. Without
// force it refuses when devices other than the base exist.
func (p *Pool) Destroy(force bool) error { panic("unimplemented") }

// Status reports the pool's state.
func (p *Pool) Status() (Status, error) { panic("unimplemented") }

// Grow grows the data and/or metadata online.
func (p *Pool) Grow(opts GrowOptions) error { panic("unimplemented") }

// Create makes device id as a snapshot of parent ("" = the base device).
func (p *Pool) Create(id, parent string, opts CreateOptions) error { panic("unimplemented") }

// Activate activates device id and returns its /dev/mapper path.
func (p *Pool) Activate(id string) (string, error) { panic("unimplemented") }

// Deactivate deactivates device id (ErrBusy while mounted or open).
func (p *Pool) Deactivate(id string) error { panic("unimplemented") }

// Mount activates and mounts device id at root/mnt/<id> and returns the path.
func (p *Pool) Mount(id string, opts MountOptions) (string, error) { panic("unimplemented") }

// Unmount releases one Mount reference; the last one unmounts (lazily),
// removes the mount point and deactivates.
func (p *Pool) Unmount(id string) error { panic("unimplemented") }

// Remove deletes device id. When it is busy, removal is deferred
// (errors.Is(err, ErrDeferred)) and finished by GC or the next Open.
func (p *Pool) Remove(id string) error { panic("unimplemented") }

// Device returns one device; ErrDeviceNotFound when unknown.
func (p *Pool) Device(id string) (Device, error) { panic("unimplemented") }

// Devices lists every device (including ones pending deletion), sorted by id.
func (p *Pool) Devices() ([]Device, error) { panic("unimplemented") }

// Check compares registry, pool metadata and live devices.
func (p *Pool) Check(opts CheckOptions) (Report, error) { panic("unimplemented") }

// GC finishes deferred deletions and returns the ids it removed.
func (p *Pool) GC() ([]string, error) { panic("unimplemented") }

// ValidateID checks a device id: 1..128 of [A-Za-z0-9_.-], not starting
// with '.' or '-'.
func ValidateID(id string) error { panic("unimplemented") }
