package plugin

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"unicode/utf8"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Device ids: a fixed prefix per kind and the SHA-256 of the CO's name, so
// that a retried CreateVolume or CreateSnapshot finds the device its first
// attempt made (the pool's registry is the only index) and no name, however
// hostile, reaches the pool as an id.
const (
	volumePrefix   = "csi-vol-"
	snapshotPrefix = "csi-snap-"
	hashHexLen     = 2 * sha256.Size
)

// maxNameLen bounds a volume or snapshot name (the CSI spec asks COs to keep
// names within 128 bytes; a plugin may refuse longer ones).
const maxNameLen = 128

// Labels kept with each device the plugin makes.
const (
	labelKind   = "csi.thinctl.io/kind"   // "volume" or "snapshot"
	labelName   = "csi.thinctl.io/name"   // the CO's name
	labelAccess = "csi.thinctl.io/access" // "block" or "mount"
	labelFS     = "csi.thinctl.io/fs"     // filesystem of a mount volume
	labelSource = "csi.thinctl.io/source" // "snapshot:<id>" or "volume:<id>" or ""
	labelParams = "csi.thinctl.io/params" // the parameters, canonical form
	labelState  = "csi.thinctl.io/state"  // "ready" once CreateVolume finished
	kindVolume  = "volume"
	kindSnap    = "snapshot"
	stateReady  = "ready"
	accessBlock = "block"
	accessMount = "mount"
)

// checkName refuses an empty, overlong or non-UTF-8 name, or one with
// control characters; what is named is the field (what the CO sent is
// quoted, cut short).
func checkName(field, name string) error {
	switch {
	case name == "":
		return status.Errorf(codes.InvalidArgument, "%s is empty: give a name", field)
	case len(name) > maxNameLen:
		return status.Errorf(codes.InvalidArgument, "%s is %d bytes long: the limit is %d", field, len(name), maxNameLen)
	case !utf8.ValidString(name):
		return status.Errorf(codes.InvalidArgument, "%s is not valid UTF-8", field)
	case strings.ContainsFunc(name, func(r rune) bool { return r < 0x20 || r == 0x7f }):
		return status.Errorf(codes.InvalidArgument, "%s %.40q contains a control character", field, name)
	}
	return nil
}

func hashName(name string) string {
	sum := sha256.Sum256([]byte(name))
	return hex.EncodeToString(sum[:])
}

// volumeID and snapshotID are the device ids for a CO name.
func volumeID(name string) string   { return volumePrefix + hashName(name) }
func snapshotID(name string) string { return snapshotPrefix + hashName(name) }

// isOurID reports whether id has the shape of an id this plugin hands out
// with prefix: anything else (another program's device, a path, garbage)
// is never looked up in the pool.
func isOurID(id, prefix string) bool {
	if !strings.HasPrefix(id, prefix) || len(id) != len(prefix)+hashHexLen {
		return false
	}
	for _, c := range id[len(prefix):] {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}
