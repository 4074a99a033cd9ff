package overlay2

import (
	"os"
	"path/filepath"
	"strings"

	"github.com/pkg/errors"
)

// pageSize bounds the mount(2) data string: the kernel copies at most one
// page of it, including the terminating NUL.
var pageSize = os.Getpagesize()

// mountSpec is one overlay mount: either absolute, or relative to dir
// (then mountOverlay makes it from a thread whose working directory is dir).
type mountSpec struct {
	dir    string // working directory for a relative mount; "" when absolute
	target string
	data   string
}

// buildMountData returns the overlay options for a layer whose own
// directory is <home>/<id> and whose lower chain is lower (link names,
// nearest first). extra are appended options (index=off, context=...).
// It prefers absolute paths and falls back to paths relative to home when
// the absolute form does not fit in one page; when neither fits it says
// how long the chain is.
func buildMountData(home, id string, lower []string, extra []string) (mountSpec, error) {
	abs := overlayOptions(home, id, lower, extra)
	if len(abs) < pageSize {
		return mountSpec{target: filepath.Join(home, id, mergedDirName), data: abs}, nil
	}
	rel := overlayOptions("", id, lower, extra)
	if len(rel) < pageSize {
		return mountSpec{dir: home, target: filepath.Join(id, mergedDirName), data: rel}, nil
	}
	return mountSpec{}, errors.Errorf("a lower chain of %d layers needs %d bytes of mount options even with relative paths; the kernel accepts %d",
		len(lower), len(rel)+1, pageSize)
}

// overlayOptions formats lowerdir, upperdir and workdir under base ("" for
// paths relative to home).
func overlayOptions(base, id string, lower []string, extra []string) string {
	join := func(parts ...string) string {
		if base == "" {
			return filepath.Join(parts...)
		}
		return filepath.Join(append([]string{base}, parts...)...)
	}
	dirs := make([]string, len(lower))
	for i, l := range lower {
		dirs[i] = join(linkDir, l)
	}
	opts := []string{
		"lowerdir=" + strings.Join(dirs, ":"),
		"upperdir=" + join(id, diffDirName),
		"workdir=" + join(id, workDirName),
	}
	return strings.Join(append(opts, extra...), ",")
}
