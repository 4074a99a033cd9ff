package driver

import "github.com/thinctl/thinctl/errdefs"

// The errors every backend's failures match under errors.Is. They are the
// errdefs classes themselves, so an error from thinpool or dm matches them
// too. Messages carry the specifics (which layer, who holds it).
var (
	// ErrNotFound: the layer (or its parent) does not exist.
	ErrNotFound = errdefs.ErrNotFound
	// ErrExists: a layer by that id already exists.
	ErrExists = errdefs.ErrExists
	// ErrBusy: the layer or the backend is in use (mounted, held open).
	ErrBusy = errdefs.ErrBusy
	// ErrDeferred: Remove accepted the deletion but postponed it until the
	// layer's last user lets go; GC (or a later call) finishes it.
	ErrDeferred = errdefs.ErrDeferred
	// ErrHasChildren: other layers are built on this one.
	ErrHasChildren = errdefs.ErrHasChildren
	// ErrNotSupported: this host, kernel or backend cannot do it.
	ErrNotSupported = errdefs.ErrNotSupported
	// ErrNotInitialized: the backend's state does not exist under the root
	// (Init it first).
	ErrNotInitialized = errdefs.ErrNotInitialized
	// ErrAlreadyInitialized: Init found the backend's state already there.
	ErrAlreadyInitialized = errdefs.ErrAlreadyInitialized
	// ErrCorrupt: stored state cannot be read; it was left as it was.
	ErrCorrupt = errdefs.ErrCorrupt
	// ErrNoSpace: the pool or filesystem is (too nearly) full.
	ErrNoSpace = errdefs.ErrNoSpace
	// ErrInvalidArgument: an id, size or option was refused before
	// anything changed.
	ErrInvalidArgument = errdefs.ErrInvalidArgument
)

// ErrPrerequisitesMissing says the backend could run on this kernel but
// something around it is missing (privileges, a usable filesystem). It
// also matches ErrNotSupported.
var ErrPrerequisitesMissing = errdefs.New("driver prerequisites missing", errdefs.ErrNotSupported)
