package aufs

import (
	"strings"

	"github.com/thinctl/thinctl/driver"
)

// aufs marks deletions with plain files whose names carry a prefix, the same
// spelling the OCI image layer format uses, so layer tar streams need no
// renaming in either direction. What does need care is the handful of names
// aufs keeps for itself at the top of each writable branch: they must never
// leak into a diff, and a foreign tar stream must never plant them.
const (
	// whiteoutPrefix starts the name of a file that hides <name> in the
	// branches below: ".wh.<name>".
	whiteoutPrefix = driver.WhiteoutPrefix
	// metaPrefix starts every name aufs reserves for its own use: the
	// whiteout base .wh..wh.aufs, the pseudo-link directory .wh..wh.plnk,
	// the orphan directory .wh..wh.orph and the .wh..wh.<name>.<n>
	// directories removed ones are renamed to.
	metaPrefix = driver.WhiteoutMetaPrefix
	// opaqueMarker, placed inside a directory, hides everything below that
	// directory in lower branches.
	opaqueMarker = driver.OpaqueWhiteout
)

// entryKind classifies one directory entry name of a branch.
type entryKind int

const (
	entryPlain    entryKind = iota // an ordinary file, directory, link, node
	entryWhiteout                  // ".wh.<name>": <name> is deleted
	entryOpaque                    // ".wh..wh..opq": the directory is opaque
	entryMeta                      // any other ".wh..wh." name: aufs-internal
)

// classify tells what a base name means inside an aufs branch.
func classify(base string) entryKind {
	switch {
	case base == opaqueMarker:
		return entryOpaque
	case strings.HasPrefix(base, metaPrefix):
		return entryMeta
	case strings.HasPrefix(base, whiteoutPrefix):
		switch whiteoutTarget(base) {
		case "", ".", "..":
			// Hides nothing; aufs never makes one, so like the reserved
			// names it is kept out of diffs.
			return entryMeta
		}
		return entryWhiteout
	}
	return entryPlain
}

// whiteoutTarget returns the name a whiteout hides (".wh.a" -> "a").
func whiteoutTarget(base string) string { return strings.TrimPrefix(base, whiteoutPrefix) }

// whiteoutName returns the whiteout that hides name ("a" -> ".wh.a").
func whiteoutName(name string) string { return whiteoutPrefix + name }
