package thinpool

import (
	"github.com/thinctl/thinctl/errdefs"
	"github.com/thinctl/thinctl/thinpool/internal/devnode"
	"github.com/thinctl/thinctl/thinpool/internal/health"
	"github.com/thinctl/thinctl/thinpool/internal/store"
)

// Sentinel errors; test with errors.Is. Each also matches the errdefs class
// (the driver package's sentinels) named beside it, so a caller of any
// backend can test the class instead. Those the store returns are the
// store's own (package store), those of an unhealthy pool health's, handed
// on here.
var (
	ErrNotInitialized  = store.ErrNotInitialized                                                     // Open on an empty root
	ErrAlreadyInit     = errdefs.New("thin pool already initialized", errdefs.ErrAlreadyInitialized) // Init on a used root
	ErrDeviceNotFound  = store.ErrNotFound                                                           // unknown or deleted id
	ErrDeviceExists    = errdefs.New("device already exists", errdefs.ErrExists)
	ErrInvalidID       = store.ErrInvalidID
	ErrParentNotFound  = errdefs.New("parent device not found", errdefs.ErrNotFound)
	ErrHasChildren     = errdefs.New("device has snapshots", errdefs.ErrHasChildren)
	ErrBusy            = devnode.ErrBusy    // errdefs.ErrBusy
	ErrLowSpace        = health.ErrLowSpace // errdefs.ErrNoSpace
	ErrPoolReadOnly    = health.ErrPoolReadOnly
	ErrRegistryCorrupt = store.ErrCorrupt
	ErrDeferred        = errdefs.New("removal deferred until the device is released", errdefs.ErrDeferred)
	ErrInvalidSize     = errdefs.New("invalid size", errdefs.ErrInvalidArgument)
	ErrInvalidLabel    = errdefs.New("invalid label", errdefs.ErrInvalidArgument)
)
