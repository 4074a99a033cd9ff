package thinpool

import "github.com/thinctl/thinctl/errdefs"

// Sentinel errors; test with errors.Is. Each also matches the errdefs class
// (the driver package's sentinels) named beside it, so a caller of any
// backend can test the class instead.
var (
	ErrNotInitialized  = errdefs.New("no thin pool at this root", errdefs.ErrNotInitialized)         // Open on an empty root
	ErrAlreadyInit     = errdefs.New("thin pool already initialized", errdefs.ErrAlreadyInitialized) // Init on a used root
	ErrDeviceNotFound  = errdefs.New("device not found", errdefs.ErrNotFound)                        // unknown or deleted id
	ErrDeviceExists    = errdefs.New("device already exists", errdefs.ErrExists)
	ErrInvalidID       = errdefs.New("invalid device id", errdefs.ErrInvalidArgument)
	ErrParentNotFound  = errdefs.New("parent device not found", errdefs.ErrNotFound)
	ErrHasChildren     = errdefs.New("device has snapshots", errdefs.ErrHasChildren)
	ErrBusy            = errdefs.New("device is busy", errdefs.ErrBusy)
	ErrLowSpace        = errdefs.New("thin pool is low on free space", errdefs.ErrNoSpace)
	ErrPoolReadOnly    = errdefs.New("thin pool is read-only or failed", nil)
	ErrRegistryCorrupt = errdefs.New("device registry is unreadable", errdefs.ErrCorrupt)
	ErrDeferred        = errdefs.New("removal deferred until the device is released", errdefs.ErrDeferred)
	ErrInvalidSize     = errdefs.New("invalid size", errdefs.ErrInvalidArgument)
	ErrInvalidLabel    = errdefs.New("invalid label", errdefs.ErrInvalidArgument)
)
