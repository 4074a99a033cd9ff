// Package overlay2 is thinctl's overlayfs backend, laid out on disk the way
// Docker's overlay2 graph driver lays it out, so its homes can be read by
// the same tools:
//
//	<home>/l/<26-char link>  → ../<id>/diff
//	<home>/<id>/diff/        the layer's files (overlay upperdir)
//	<home>/<id>/link         its link name
//	<home>/<id>/lower        "l/<parent>:l/<grandparent>:..."
//	<home>/<id>/work/        overlay workdir
//	<home>/<id>/merged/      mount point while mounted
//	<home>/<id>/committed    marks a read-only layer
//
// Mounts name lower layers through the short l/ links. When even those make
// the options longer than a page (chains of well over a hundred layers),
// the mount is made with paths relative to <home>, from an OS thread that
// has its own working directory (unshare(CLONE_FS)) and is discarded after
// the mount: no other goroutine's paths move, nothing is re-executed and a
// program installs no hook. Chains of 128 lower layers with 64-character
// ids mount this way.
//
// The backend requires overlay in the kernel and a backing filesystem with
// d_type (xfs needs ftype=1); it passes index=off when the kernel has that
// parameter. Whiteouts are 0/0 character devices and opaque directories
// carry trusted.overlay.opaque=y; diffs are read straight from diff/ unless
// the kernel uses redirect_dir or metacopy, in which case the generic
// mount-and-compare diff is used. The "size" storage option works on xfs
// mounted with prjquota and is refused with driver.ErrNotSupported elsewhere.
//
// Importing the package registers it with driver.Register as "overlay2"
// and does nothing else.
package overlay2
