// Package errdefs holds the error classes every thinctl package shares, so
// that an embedder tests one set of sentinels with errors.Is whichever layer
// (dm, loopback, thinpool, a storage driver) returned the error.
//
// Packages keep their own, more precise sentinels (thinpool.ErrDeviceNotFound,
// dm.ErrBusy); each of those is made with New and so also matches its class
// here:
//
//	errors.Is(err, thinpool.ErrDeviceNotFound) // the precise cause
//	errors.Is(err, errdefs.ErrNotFound)        // the class, from any backend
//
// An error made of a class and a cause (a file that could not be read, a
// refused ioctl) keeps both with Wrapf, so that errors.Is finds either.
//
// The driver package re-exports these classes under the same names.
package errdefs

// The classes. Each says what happened in words a caller can act on; the
// message of an error that matches one says which object and why.
var (
	// ErrNotFound: the named layer, device or parent does not exist.
	ErrNotFound = class("not found")
	// ErrExists: something by that name already exists.
	ErrExists = class("already exists")
	// ErrBusy: the object is in use (mounted, held open, has active users).
	ErrBusy = class("busy")
	// ErrDeferred: a removal was accepted but postponed until the object's
	// last user lets go; a later garbage collection finishes it.
	ErrDeferred = class("removal deferred")
	// ErrHasChildren: other layers are built on this one.
	ErrHasChildren = class("has children")
	// ErrNotSupported: this host or kernel cannot do it.
	ErrNotSupported = class("not supported")
	// ErrNotInitialized: the storage under this root was never set up.
	ErrNotInitialized = class("not initialized")
	// ErrAlreadyInitialized: the storage under this root already exists.
	ErrAlreadyInitialized = class("already initialized")
	// ErrCorrupt: stored state cannot be read; it is left as it was.
	ErrCorrupt = class("corrupt")
	// ErrNoSpace: the pool or filesystem is (too nearly) full.
	ErrNoSpace = class("no space")
	// ErrInvalidArgument: the caller's input was rejected before anything changed.
	ErrInvalidArgument = class("invalid argument")
)

// classError is a class: its own identity, a short message.
type classError struct{ msg string }

func (e *classError) Error() string { return e.msg }

func class(msg string) error { return &classError{msg: msg} }

// kindError is a package's sentinel: its own identity and message, and a
// class it also matches.
type kindError struct {
	msg  string
	kind error
}

func (e *kindError) Error() string { return e.msg }
func (e *kindError) Unwrap() error { return e.kind }

// New returns a new sentinel error with message msg that matches kind (one
// of this package's classes, or nil for none) under errors.Is. Like
// errors.New, every call returns a distinct error.
func New(msg string, kind error) error {
	if kind == nil {
		return &classError{msg: msg}
	}
	return &kindError{msg: msg, kind: kind}
}
