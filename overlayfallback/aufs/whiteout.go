package aufs

import "strings"

// aufs marks deletions with plain files whose names carry a prefix, the same
// spelling the OCI image layer format uses, so layer tar streams need no
// renaming in either direction. What does need care is the handful of names
// aufs keeps for itself at the top of each writable branch: they must never
// leak into a diff, and a foreign tar stream must never plant them.
const (
	// WhiteoutPrefix starts the name of a file that hides <name> in the
	// branches below: ".wh.<name>".
	WhiteoutPrefix = ".wh."
	// WhiteoutMetaPrefix starts every name aufs reserves for its own use.
	WhiteoutMetaPrefix = WhiteoutPrefix + WhiteoutPrefix
	// OpaqueMarker, placed inside a directory, hides everything below that
	// directory in lower branches.
	OpaqueMarker = WhiteoutMetaPrefix + ".opq"
	// whiteoutBase is the file aufs hard-links whiteouts to.
	whiteoutBase = WhiteoutMetaPrefix + "aufs"
	// pseudoLinkDir holds aufs's pseudo-links (hard links across branches).
	pseudoLinkDir = WhiteoutMetaPrefix + "plnk"
	// orphanDir holds files removed while still open.
	orphanDir = WhiteoutMetaPrefix + "orph"
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
	case base == OpaqueMarker:
		return entryOpaque
	case strings.HasPrefix(base, WhiteoutMetaPrefix), base == WhiteoutPrefix:
		// A bare ".wh." hides nothing; aufs never creates one, so it is
		// treated like the reserved names and kept out of diffs.
		return entryMeta
	case strings.HasPrefix(base, WhiteoutPrefix):
		return entryWhiteout
	}
	return entryPlain
}

// whiteoutTarget returns the name a whiteout hides (".wh.a" -> "a").
func whiteoutTarget(base string) string { return strings.TrimPrefix(base, WhiteoutPrefix) }

// whiteoutName returns the whiteout that hides name ("a" -> ".wh.a").
func whiteoutName(name string) string { return WhiteoutPrefix + name }
