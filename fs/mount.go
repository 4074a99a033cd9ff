package fs

import (
	"os"
	"path/filepath"
	"strings"

	"github.com/pkg/errors"
	"golang.org/x/sys/unix"
)

// MountOptions tunes Mount.
type MountOptions struct {
	// Options are mount(8)-style options, e.g. "noatime", "discard". Flag
	// options (ro, nodev, nosuid, noexec, sync, dirsync, noatime, relatime,
	// ...) become mount flags; the rest is passed to the filesystem.
	Options  []string
	ReadOnly bool
	Label    string // SELinux context= label, optional
}

// mountFlag is the effect of one flag option: bits to set and bits to clear.
type mountFlag struct {
	set, clear uintptr
}

// atimeFlags are the mutually exclusive access-time modes.
const atimeFlags = unix.MS_NOATIME | unix.MS_RELATIME | unix.MS_STRICTATIME

// flagOptions maps mount(8) option names to mount(2) flags.
var flagOptions = map[string]mountFlag{
	"defaults":    {},
	"rw":          {clear: unix.MS_RDONLY},
	"ro":          {set: unix.MS_RDONLY},
	"nosuid":      {set: unix.MS_NOSUID},
	"suid":        {clear: unix.MS_NOSUID},
	"nodev":       {set: unix.MS_NODEV},
	"dev":         {clear: unix.MS_NODEV},
	"noexec":      {set: unix.MS_NOEXEC},
	"exec":        {clear: unix.MS_NOEXEC},
	"sync":        {set: unix.MS_SYNCHRONOUS},
	"async":       {clear: unix.MS_SYNCHRONOUS},
	"dirsync":     {set: unix.MS_DIRSYNC},
	"noatime":     {set: unix.MS_NOATIME, clear: atimeFlags},
	"relatime":    {set: unix.MS_RELATIME, clear: atimeFlags},
	"strictatime": {set: unix.MS_STRICTATIME, clear: atimeFlags},
	"atime":       {clear: unix.MS_NOATIME},
	"nodiratime":  {set: unix.MS_NODIRATIME},
	"diratime":    {clear: unix.MS_NODIRATIME},
	"lazytime":    {set: unix.MS_LAZYTIME},
	"nolazytime":  {clear: unix.MS_LAZYTIME},
	"silent":      {set: unix.MS_SILENT},
	"loud":        {clear: unix.MS_SILENT},
}

// mountArgs turns options into mount(2) flags and the filesystem's data string.
func mountArgs(t Type, opts MountOptions) (uintptr, string, error) {
	var flags uintptr
	var data []string
	hasNoUUID := false
	for _, o := range opts.Options {
		o = strings.TrimSpace(o)
		if o == "" {
			continue
		}
		if f, ok := flagOptions[o]; ok {
			flags = flags&^f.clear | f.set
			continue
		}
		if strings.HasPrefix(o, "context=") && opts.Label != "" {
			return 0, "", errors.Errorf("mount option %q conflicts with the SELinux label %q: give one of them", o, opts.Label)
		}
		if o == "nouuid" {
			hasNoUUID = true
		}
		data = append(data, o)
	}
	if opts.ReadOnly {
		flags |= unix.MS_RDONLY
	}
	if t == XFS && !hasNoUUID {
		// Snapshots of one xfs filesystem share its UUID; without nouuid
		// only one of them could be mounted at a time.
		data = append(data, "nouuid")
	}
	if opts.Label != "" {
		if strings.ContainsAny(opts.Label, "\"\n") {
			return 0, "", errors.Errorf("SELinux label %q contains a double quote or newline", opts.Label)
		}
		data = append(data, `context="`+opts.Label+`"`)
	}
	return flags, strings.Join(data, ","), nil
}

// Mount mounts dev of type t on target (created 0700 if missing); xfs always
// gets nouuid.
func Mount(dev, target string, t Type, opts MountOptions) error {
	if err := t.check(); err != nil {
		return err
	}
	flags, data, err := mountArgs(t, opts)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(target, 0o700); err != nil {
		return errors.Wrapf(err, "mount %s: create mount point", dev)
	}
	if err := unix.Mount(dev, target, string(t), flags, data); err != nil {
		hint := ""
		switch err {
		case unix.EINVAL:
			hint = " (no valid " + string(t) + " filesystem or a bad option; the kernel log says which)"
		case unix.EBUSY:
			hint = " (the device is already mounted or in use)"
		case unix.ENODEV:
			hint = " (the kernel has no " + string(t) + " support loaded)"
		}
		return errors.Wrapf(err, "mount %s on %s as %s with options %q%s", dev, target, t, data, hint)
	}
	return nil
}

// UnmountOptions tunes Unmount.
type UnmountOptions struct {
	Lazy      bool // MNT_DETACH
	RemoveDir bool // rmdir the mount point afterwards
}

// Unmount unmounts target (symlinks resolved first). Not mounted is
// ErrNotMounted unless RemoveDir is set, in which case it is fine and the
// directory is still removed. A busy mount (EBUSY) names the usual causes;
// Lazy detaches it instead. After a lazy unmount, removing the directory also
// detaches the copies of the mount that other mount namespaces hold.
func Unmount(target string, opts UnmountOptions) error {
	p, err := canonical(target)
	if err != nil {
		if !errors.Is(err, os.ErrNotExist) {
			return errors.Wrap(err, "unmount")
		}
		if !opts.RemoveDir {
			return errors.Wrapf(ErrNotMounted, "unmount %s: no such directory", target)
		}
		return nil
	}
	target = p
	flags := unix.UMOUNT_NOFOLLOW
	if opts.Lazy {
		flags |= unix.MNT_DETACH
	}
	err = unix.Unmount(target, flags)
	switch {
	case err == nil:
	case err == unix.EINVAL || err == unix.ENOENT:
		if !opts.RemoveDir {
			return errors.Wrapf(ErrNotMounted, "unmount %s", target)
		}
	case err == unix.EBUSY:
		return errors.Wrapf(err, "unmount %s: mount is busy (a process has a file open or its cwd inside; see Holders, or unmount lazily)", target)
	default:
		return errors.Wrapf(err, "unmount %s", target)
	}
	if opts.RemoveDir {
		if err := os.Remove(target); err != nil && !os.IsNotExist(err) {
			return errors.Wrapf(err, "remove mount point %s", target)
		}
	}
	return nil
}

// IsMounted reports whether target (after resolving symlinks) is a mount
// point in this mount namespace. A missing target is not mounted.
func IsMounted(target string) (bool, error) {
	p, err := canonical(target)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return false, nil
		}
		return false, err
	}
	mounts, err := readMountInfo("self")
	if err != nil {
		return false, err
	}
	for _, m := range mounts {
		if m.MountPoint == p {
			return true, nil
		}
	}
	return false, nil
}

// canonical returns the absolute, symlink-free form of p.
func canonical(p string) (string, error) {
	abs, err := filepath.Abs(p)
	if err != nil {
		return "", errors.Wrapf(err, "resolve %s", p)
	}
	r, err := filepath.EvalSymlinks(abs)
	if err != nil {
		return "", errors.Wrapf(err, "resolve %s", p)
	}
	return r, nil
}
