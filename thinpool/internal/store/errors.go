package store

import "github.com/thinctl/thinctl/errdefs"

// The store's sentinel errors; thinpool hands them on under its own names
// (ErrRegistryCorrupt, ErrNotInitialized, ErrDeviceNotFound, ErrInvalidID),
// so errors.Is works with either.
var (
	ErrNotInitialized = errdefs.New("no thin pool at this root", errdefs.ErrNotInitialized)
	ErrNotFound       = errdefs.New("device not found", errdefs.ErrNotFound)
	ErrInvalidID      = errdefs.New("invalid device id", errdefs.ErrInvalidArgument)
	ErrCorrupt        = errdefs.New("device registry is unreadable", errdefs.ErrCorrupt)
)
