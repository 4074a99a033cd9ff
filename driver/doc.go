// Package driver holds the interface every thinctl storage backend
// implements (devicemapper, overlay2, aufs), the shared errors, backend
// registration and selection, and the generic diff support any backend gets.
//
// Backends register themselves from an init function:
//
//	func init() { driver.Register("overlay2", backend{}) }
//
// and a program picks one with Select. "auto" keeps using a backend whose
// home (<root>/<name>) already holds layers, so a host never silently
// switches backends; otherwise it takes the first usable of devicemapper,
// overlay2 and aufs. Choice.Reason says why, in one line.
//
// Layer streams are tar archives in the OCI layer format: a deleted path is
// a ".wh.<name>" entry beside it and an opaque directory holds
// ".wh..wh..opq". NaiveDiff computes them for any backend by mounting
// layers and comparing trees; ApplyTar unpacks them, handing whiteouts to a
// WhiteoutFormat that writes the backend's native form.
//
// The conformance suite every backend runs lives in driver/drivertest.
package driver
