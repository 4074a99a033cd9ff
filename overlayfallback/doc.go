// Package overlayfallback holds what thinctl's file-level backends share:
// the native whiteout formats of overlayfs and aufs and the native diff
// helpers that read a layer's own directory (overlay2's diff/, aufs's
// diff/<id>) instead of mounting and comparing whole trees.
//
// The backends themselves live in the subpackages overlay2 and aufs; both
// register with package driver and run driver/drivertest.
//
// The three whiteout forms:
//
//	OCI tar stream   dir/.wh.name                  dir/.wh..wh..opq
//	overlayfs        dir/name as a 0/0 char device dir has trusted.overlay.opaque=y
//	aufs             dir/.wh.name (regular file)   dir/.wh..wh..opq (regular file)
//
// Overlay and Aufs implement Format for the last two; WriteDiff, Changes,
// DiffSize and ApplyDiff convert between them and the OCI form. Both forms
// treat an opaque marker in an applied stream alike: the directory hides
// what lower layers hold there, and the entries it already held in this
// layer that the stream did not write are dropped. Reserved ".wh..wh."
// entries (aufs's metadata) and everything inside them never reach a diff.
package overlayfallback
