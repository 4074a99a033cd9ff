package fs

import (
	"strings"

	"github.com/pkg/errors"
)

// Sentinel errors; test with errors.Is.
var (
	// ErrUnknownFilesystem means Probe found no ext4 or xfs superblock.
	ErrUnknownFilesystem = errors.New("no known filesystem")
	// ErrToolMissing means a mkfs or grow program is not installed; the
	// wrapping message names the package that provides it.
	ErrToolMissing = errors.New("filesystem tool not installed")
	// ErrNotMounted means the target of Unmount or Grow is not a mount point.
	ErrNotMounted = errors.New("not mounted")
	// ErrUnsupportedType means a filesystem type other than ext4 or xfs.
	ErrUnsupportedType = errors.New("unsupported filesystem type")
)

// Type is a filesystem type thinctl can create.
type Type string

// The filesystem types thinctl formats devices with.
const (
	Ext4 Type = "ext4"
	XFS  Type = "xfs"
)

// ParseType accepts "ext4" or "xfs" (case and surrounding blanks ignored).
func ParseType(s string) (Type, error) {
	switch Type(strings.ToLower(strings.TrimSpace(s))) {
	case Ext4:
		return Ext4, nil
	case XFS:
		return XFS, nil
	}
	return "", errors.Wrapf(ErrUnsupportedType, "filesystem type %q: use ext4 or xfs", s)
}

// check returns an error unless t is one of the supported types.
func (t Type) check() error {
	if t == Ext4 || t == XFS {
		return nil
	}
	return errors.Wrapf(ErrUnsupportedType, "filesystem type %q: use ext4 or xfs", string(t))
}
