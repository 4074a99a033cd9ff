// Package driver is thinctl's storage API: the interface every backend
// implements (devicemapper, overlay2, aufs), the optional interfaces for
// what not every backend has, the errors every backend's failures match,
// backend registration and selection, and the generic diff support any
// backend gets. The thinctl command runs every command through it; a Go
// program uses it the same way.
//
// # Choosing and opening a backend
//
// A program imports the backends it wants; importing one registers it and
// does nothing else:
//
//	import (
//		"github.com/thinctl/thinctl/driver"
//		_ "github.com/thinctl/thinctl/driver/devicemapper"
//		_ "github.com/thinctl/thinctl/overlayfallback/overlay2"
//	)
//
// All state lives under one root directory, each backend's in its home
// <root>/<name> (the thin pool's registry at <root>/devicemapper/pool.json,
// overlay2's layers in <root>/overlay2/...), the same for the command line
// and a program: a root made by one opens with the other.
//
// Choose decides which backend runs under a root and changes nothing:
// "auto" keeps a backend whose state the root already holds, so a host never
// silently switches backends, and on a fresh root takes the first of
// devicemapper, overlay2 and aufs that can run here. The Choice says which,
// where, why (one line, what `thinctl pool status` prints) and whether its
// state exists. Open opens existing state, Init creates it; Select does
// Choose and then whichever of the two applies.
//
// # Using a driver
//
// Driver is modelled on Docker's graph driver. Every call that can block
// takes a context first; a cancelled or expired context makes it return the
// context's error, wrapped, without leaving half-done work. The optional
// interfaces (PoolStatuser, Grower, Upper, Downer, Destroyer, Checker,
// Collector, Activator, Mounter, Lister) are found with a type assertion.
// Errors match the classes declared here (ErrNotFound, ErrExists, ErrBusy,
// ErrDeferred, ErrHasChildren, ErrNotSupported, ErrNotInitialized,
// ErrAlreadyInitialized, ErrCorrupt, ErrNoSpace, ErrInvalidArgument)
// under errors.Is, whichever backend or layer below it failed. Sizes given
// as text use the units package's grammar.
//
// # Layer streams
//
// Layer streams are tar archives in the OCI layer format: a deleted path is
// a ".wh.<name>" entry beside it and an opaque directory holds
// ".wh..wh..opq". NaiveDiff computes them for any backend by mounting
// layers and comparing trees; ApplyTar unpacks them, handing whiteouts to a
// WhiteoutFormat that writes the backend's native form.
//
// ApplyTar treats every stream as hostile. It opens the layer root once
// without following a symlink and resolves each entry's parent from that
// descriptor with openat2(RESOLVE_IN_ROOT), so symlinks inside the layer
// ("lib -> /usr/lib", "up -> ../..") lead to paths inside it and never
// outside; kernels without openat2 get the same resolution done one
// component at a time in user space. The entry itself is made and changed
// with *at calls that never follow a symlink at its name. The root stays a
// directory ("./" may only set its metadata), hard links must name a
// non-directory inside the layer, directory times are set at the end on
// the same inodes that were created, and content is bounded by the free
// space of the layer's filesystem. drivertest.HostileArchives is the
// catalogue of attacks every backend is run against.
//
// # Writing a backend
//
// A backend implements Backend and registers it from an init function:
//
//	func init() { driver.Register("mybackend", Backend{}) }
//
// and passes the conformance suite in driver/drivertest.
package driver
