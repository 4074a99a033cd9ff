package driver

import (
	"path"
	"strings"

	"github.com/pkg/errors"
)

// OCI whiteout names as they appear in layer tar streams.
const (
	// WhiteoutPrefix starts the name of an entry that deletes its sibling:
	// "dir/.wh.name" removes "dir/name" from the layers below.
	WhiteoutPrefix = ".wh."
	// WhiteoutMetaPrefix starts names reserved for union-filesystem metadata
	// (aufs's .wh..wh.plnk, .wh..wh.aufs); they are never content.
	WhiteoutMetaPrefix = WhiteoutPrefix + WhiteoutPrefix
	// OpaqueWhiteout, placed in a directory, hides everything the layers
	// below have in that directory.
	OpaqueWhiteout = WhiteoutMetaPrefix + ".opq"
)

// WhiteoutKind classifies a name in a tar stream.
type WhiteoutKind int

// The kinds ParseWhiteout reports.
const (
	NotWhiteout  WhiteoutKind = iota // ordinary content
	Whiteout                         // ".wh.<name>": deletes <name>
	OpaqueMarker                     // ".wh..wh..opq": the directory is opaque
	WhiteoutMeta                     // other ".wh..wh." names: metadata, skipped
)

// ParseWhiteout classifies the slash-separated tar entry name p. For a
// Whiteout, target is the cleaned path it deletes; for an OpaqueMarker,
// target is the cleaned directory that becomes opaque ("." for the root).
// Anything below a ".wh..wh." directory, at any depth (aufs's .wh..wh.plnk
// and .wh..wh.orph at the layer root, the .wh..wh.<name>.<n> directories it
// renames removed ones to), is WhiteoutMeta.
// A whiteout naming nothing (".wh.", ".wh..", ".wh...") is an error.
func ParseWhiteout(p string) (kind WhiteoutKind, target string, err error) {
	dir, base := path.Split(strings.TrimSuffix(p, "/"))
	dir = path.Clean("/" + dir)[1:]
	if dir == "" {
		dir = "."
	}
	if UnderMeta(dir) {
		return WhiteoutMeta, "", nil
	}
	switch {
	case !strings.HasPrefix(base, WhiteoutPrefix):
		return NotWhiteout, "", nil
	case base == OpaqueWhiteout:
		return OpaqueMarker, dir, nil
	case strings.HasPrefix(base, WhiteoutMetaPrefix):
		return WhiteoutMeta, "", nil
	}
	name := strings.TrimPrefix(base, WhiteoutPrefix)
	if name == "" || name == "." || name == ".." || strings.Contains(name, "/") {
		return NotWhiteout, "", errors.Errorf("whiteout entry %q names no file", p)
	}
	return Whiteout, path.Join(dir, name), nil
}

// UnderMeta reports whether the slash-separated path p has a component
// that is a reserved ".wh..wh." name, the opaque marker included: such a
// path is union-filesystem metadata, or lies inside it, and never content.
func UnderMeta(p string) bool {
	for _, part := range strings.Split(p, "/") {
		if strings.HasPrefix(part, WhiteoutMetaPrefix) {
			return true
		}
	}
	return false
}

// WhiteoutName returns the OCI whiteout entry name that deletes p
// ("a/b" → "a/.wh.b").
func WhiteoutName(p string) string {
	dir, base := path.Split(strings.Trim(p, "/"))
	return dir + WhiteoutPrefix + base
}

// WhiteoutFormat turns OCI whiteouts into a backend's native form while
// ApplyTar unpacks a layer stream. It is handed directories as open
// descriptors that ApplyTar resolved inside the layer, never paths, and
// must not follow a symlink at the names it changes (RemoveAllAt and the
// *at system calls with AT_SYMLINK_NOFOLLOW or O_NOFOLLOW do not). rel is
// the cleaned slash-separated path in the layer, for messages and for
// written.
type WhiteoutFormat interface {
	// Whiteout records that name, in the directory open as dir, is
	// deleted (rel is its path). Anything at name is removed first.
	Whiteout(dir int, name, rel string) error
	// Opaque records that the directory open as dir (at rel) hides
	// everything lower layers hold in it, and drops what it already held
	// that this same stream did not write. written reports whether a
	// child path was unpacked by the stream (itself, or something below
	// it) and must therefore stay; nil means nothing was.
	Opaque(dir int, rel string, written func(rel string) bool) error
}

// RemoveWhiteouts is the WhiteoutFormat for a layer seen as one complete
// tree (a block snapshot, or a mounted union view): a whiteout deletes the
// path and an opaque marker deletes the directory's children that the
// stream did not write itself.
var RemoveWhiteouts WhiteoutFormat = removeFormat{}

type removeFormat struct{}

func (removeFormat) Whiteout(dir int, name, rel string) error {
	return errors.Wrapf(RemoveAllAt(dir, name), "apply whiteout %s", rel)
}

func (removeFormat) Opaque(dir int, rel string, written func(string) bool) error {
	err := emptyDir(dir, func(name string) bool {
		return written != nil && written(path.Join(rel, name))
	})
	return errors.Wrapf(err, "apply opaque marker in %s", rel)
}
