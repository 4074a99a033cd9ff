package thinpool

import "github.com/pkg/errors"

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
