package overlayfallback

import (
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"syscall"

	"github.com/pkg/errors"
	"golang.org/x/sys/unix"

	"github.com/thinctl/thinctl/driver"
)

// OverlayOpaqueXattr marks an overlayfs upper directory as opaque when set to "y".
const OverlayOpaqueXattr = "trusted.overlay.opaque"

// Format is a union filesystem's native whiteout form inside one layer
// directory. Its driver.WhiteoutFormat methods write whiteouts (used by
// ApplyDiff); the others read them (used by WriteDiff, Changes, DiffSize).
type Format interface {
	driver.WhiteoutFormat
	// Name is "overlay" or "aufs".
	Name() string
	// Classify says what the entry name, found in a layer directory with
	// lstat info fi, is: content (driver.NotWhiteout), a whiteout hiding
	// the sibling hidden, an opaque marker, or metadata to ignore.
	Classify(name string, fi fs.FileInfo) (kind driver.WhiteoutKind, hidden string)
	// WhiteoutPath is where, relative to a layer directory, the whiteout
	// for rel (slash-separated) would be.
	WhiteoutPath(rel string) string
	// IsOpaque reports whether the directory at dir (an absolute path in a
	// layer directory) hides what lower layers hold there.
	IsOpaque(dir string) (bool, error)
}

// Overlay is overlayfs's form: a whiteout is a character device 0/0 with
// the deleted name, an opaque directory has trusted.overlay.opaque=y.
var Overlay Format = overlayFormat{}

// Aufs is aufs's form: a whiteout is a file ".wh.<name>" beside the deleted
// name, an opaque directory holds a file ".wh..wh..opq", and other
// ".wh..wh." names are aufs metadata. It classifies by name alone, so its
// Classify accepts a nil fi.
var Aufs Format = aufsFormat{}

type overlayFormat struct{}

func (overlayFormat) Name() string { return "overlay" }

func (overlayFormat) Classify(name string, fi fs.FileInfo) (driver.WhiteoutKind, string) {
	if IsOverlayWhiteout(fi) {
		return driver.Whiteout, name
	}
	return driver.NotWhiteout, ""
}

func (overlayFormat) WhiteoutPath(rel string) string { return rel }

func (overlayFormat) IsOpaque(dir string) (bool, error) {
	buf := make([]byte, 8)
	n, err := unix.Lgetxattr(dir, OverlayOpaqueXattr, buf)
	switch {
	case errors.Is(err, unix.ENODATA), errors.Is(err, unix.ENOTSUP), errors.Is(err, unix.ERANGE):
		return false, nil
	case err != nil:
		return false, errors.Wrapf(err, "read %s of %s", OverlayOpaqueXattr, dir)
	}
	return n == 1 && buf[0] == 'y', nil
}

func (overlayFormat) Whiteout(dir int, name, rel string) error {
	if err := driver.RemoveAllAt(dir, name); err != nil {
		return errors.Wrapf(err, "replace %s with a whiteout", rel)
	}
	if err := unix.Mknodat(dir, name, unix.S_IFCHR, 0); err != nil {
		return errors.Wrapf(err, "create overlay whiteout %s", rel)
	}
	return nil
}

func (overlayFormat) Opaque(dir int, rel string, written func(string) bool) error {
	if err := driver.RemoveWhiteouts.Opaque(dir, rel, written); err != nil {
		return err
	}
	if err := unix.Fsetxattr(dir, OverlayOpaqueXattr, []byte("y"), 0); err != nil {
		return errors.Wrapf(err, "mark %s opaque", rel)
	}
	return nil
}

// IsOverlayWhiteout reports whether fi (from lstat) is an overlayfs
// whiteout: a character device with device number 0/0.
func IsOverlayWhiteout(fi fs.FileInfo) bool {
	if fi.Mode()&fs.ModeCharDevice == 0 || fi.Mode()&fs.ModeDevice == 0 {
		return false
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	return ok && st.Rdev == 0
}

type aufsFormat struct{}

func (aufsFormat) Name() string { return "aufs" }

func (aufsFormat) Classify(name string, _ fs.FileInfo) (driver.WhiteoutKind, string) {
	kind, target, err := driver.ParseWhiteout(name)
	if err != nil {
		return driver.WhiteoutMeta, "" // ".wh." alone: not content, not a whiteout
	}
	if kind == driver.Whiteout {
		return kind, target
	}
	return kind, ""
}

func (aufsFormat) WhiteoutPath(rel string) string { return driver.WhiteoutName(rel) }

func (aufsFormat) IsOpaque(dir string) (bool, error) {
	_, err := os.Lstat(filepath.Join(dir, driver.OpaqueWhiteout))
	switch {
	case err == nil:
		return true, nil
	case os.IsNotExist(err):
		return false, nil
	}
	return false, errors.Wrapf(err, "look for the opaque marker in %s", dir)
}

func (aufsFormat) Whiteout(dir int, name, rel string) error {
	if err := driver.RemoveAllAt(dir, name); err != nil {
		return errors.Wrapf(err, "replace %s with a whiteout", rel)
	}
	return createMarker(dir, driver.WhiteoutPrefix+name, driver.WhiteoutName(rel))
}

func (f aufsFormat) Opaque(dir int, rel string, written func(string) bool) error {
	// aufs's own entries (at the root: .wh..wh.aufs, .wh..wh.plnk,
	// .wh..wh.orph) are not the directory's content and stay.
	keep := func(child string) bool {
		if kind, _ := f.Classify(path.Base(child), nil); kind == driver.WhiteoutMeta {
			return true
		}
		return written != nil && written(child)
	}
	if err := driver.RemoveWhiteouts.Opaque(dir, rel, keep); err != nil {
		return err
	}
	return createMarker(dir, driver.OpaqueWhiteout, path.Join(rel, driver.OpaqueWhiteout))
}

// createMarker makes name in the directory open as dir an empty read-only
// file, replacing whatever is there (rel names it in messages).
func createMarker(dir int, name, rel string) error {
	if err := driver.RemoveAllAt(dir, name); err != nil {
		return errors.Wrapf(err, "replace %s", rel)
	}
	fd, err := unix.Openat(dir, name, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o444)
	if err != nil {
		return errors.Wrapf(err, "create whiteout %s", rel)
	}
	return errors.Wrapf(unix.Close(fd), "create whiteout %s", rel)
}
