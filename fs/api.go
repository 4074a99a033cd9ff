package fs

// This file is the contract other packages code against; bodies are
// placeholders until the fs/ work lands. Adding is fine; changing an existing
// signature means updating every caller in the repository.

import "github.com/pkg/errors"

// Sentinel errors; test with errors.Is.
var (
	ErrUnknownFilesystem = errors.New("no known filesystem") // Probe found no ext4/xfs superblock
	ErrToolMissing       = errors.New("filesystem tool not installed")
	ErrNotMounted        = errors.New("not mounted")
	ErrUnsupportedType   = errors.New("unsupported filesystem type")
)

// Type is a filesystem type thinctl can create.
type Type string

// The filesystem types thinctl formats devices with.
const (
	Ext4 Type = "ext4"
	XFS  Type = "xfs"
)

// ParseType accepts "ext4" or "xfs".
func ParseType(s string) (Type, error) { panic("unimplemented") }

// MkfsOptions tunes Mkfs.
type MkfsOptions struct {
	ExtraArgs []string // appended to the mkfs command line
	Label     string
}

// Mkfs formats dev. ext4 is made with lazy init off (no background writes
// after mkfs) and no discard at mkfs time.
func Mkfs(dev string, t Type, opts MkfsOptions) error { panic("unimplemented") }

// ProbeResult is what Probe reads from a superblock.
type ProbeResult struct {
	Type Type
	UUID string
	// Size of the filesystem in bytes as the superblock records it.
	Size uint64
}

// Probe reads the superblock of dev (a device or file) in Go.
func Probe(dev string) (ProbeResult, error) { panic("unimplemented") }

// MountOptions tunes Mount.
type MountOptions struct {
	Options  []string // e.g. "noatime", "discard"
	ReadOnly bool
	Label    string // SELinux context= label, optional
}

// Mount mounts dev of type t on target (created 0700 if missing); xfs always
// gets nouuid.
func Mount(dev, target string, t Type, opts MountOptions) error { panic("unimplemented") }

// UnmountOptions tunes Unmount.
type UnmountOptions struct {
	Lazy      bool // MNT_DETACH
	RemoveDir bool // rmdir the mount point afterwards
}

// Unmount unmounts target. Not mounted is not an error when RemoveDir is set.
func Unmount(target string, opts UnmountOptions) error { panic("unimplemented") }

// IsMounted reports whether target is a mount point in this mount namespace.
func IsMounted(target string) (bool, error) { panic("unimplemented") }

// Grow grows the filesystem on dev (mounted at mountpoint for xfs) to fill it.
func Grow(dev, mountpoint string, t Type) error { panic("unimplemented") }

// Holder is a process that keeps a device or mount busy.
type Holder struct {
	PID     int
	Command string
	Reason  string // "mount in another namespace", "open fd", "cwd"
}

// Holders lists processes holding the block device dev (device number) open,
// mounting it in any mount namespace, or with cwd/root under mountpoint.
func Holders(dev uint64, mountpoint string) ([]Holder, error) { panic("unimplemented") }
