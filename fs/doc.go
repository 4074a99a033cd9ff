// Package fs makes, inspects, mounts and grows the filesystems that thinctl
// puts on thin devices, and finds the processes that keep a device busy.
//
// Only ext4 and xfs are supported. Mkfs and Grow run the distribution's tools
// (mkfs.ext4, resize2fs and e2fsck from e2fsprogs; mkfs.xfs and xfs_growfs
// from xfsprogs); everything else is done in Go: Probe reads superblocks
// directly, Mount and Unmount call mount(2) and umount2(2), IsMounted and
// Holders read /proc.
//
// Two rules shape the defaults. A filesystem on a thin device must not write
// behind the caller's back, so ext4 is made with lazy initialisation off and
// nothing is discarded at mkfs time. Snapshots of one filesystem share its
// UUID, so xfs is always mounted with nouuid.
//
// Nothing here prints; every failure is an error with context, and the
// sentinels (ErrUnknownFilesystem, ErrToolMissing, ErrNotMounted,
// ErrUnsupportedType) can be tested with errors.Is.
package fs
