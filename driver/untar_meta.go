package driver

import (
	"archive/tar"
	"strings"

	"github.com/pkg/errors"
	"golang.org/x/sys/unix"
)

// setMeta applies owner, mode, xattrs and times to name in dir, or to the
// open file fd itself when name is "" or fd is open; chown comes before
// chmod because chown clears the setuid and setgid bits.
func (a *applier) setMeta(hdr *tar.Header, rel string, dir int, name string, fd int) error {
	if hdr.Typeflag == tar.TypeLink {
		return nil
	}
	mode := uint32(hdr.Mode & 0o7777) // tar's mode bits are the kernel's
	if fd >= 0 {
		if err := unix.Fchown(fd, hdr.Uid, hdr.Gid); err != nil {
			return errors.Wrapf(err, "chown %s to %d:%d", rel, hdr.Uid, hdr.Gid)
		}
		if err := unix.Fchmod(fd, mode); err != nil {
			return errors.Wrapf(err, "chmod %s", rel)
		}
	} else {
		if err := unix.Fchownat(dir, name, hdr.Uid, hdr.Gid, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return errors.Wrapf(err, "chown %s to %d:%d", rel, hdr.Uid, hdr.Gid)
		}
		// A device or FIFO just made by mknodat (opening it could block
		// or reach a driver); the stream is this directory's only writer.
		if hdr.Typeflag != tar.TypeSymlink {
			if err := unix.Fchmodat(dir, name, mode, 0); err != nil {
				return errors.Wrapf(err, "chmod %s", rel)
			}
		}
	}
	if err := a.setXattrs(hdr, rel, dir, name, fd); err != nil {
		return err
	}
	if hdr.Typeflag == tar.TypeDir {
		var st unix.Stat_t
		if err := unix.Fstat(fd, &st); err != nil {
			return errors.Wrapf(err, "stat %s", rel)
		}
		a.dirs = append(a.dirs, dirTime{rel: rel, dev: st.Dev, ino: st.Ino, mtime: hdr.ModTime})
		return nil
	}
	ts := unix.NsecToTimespec(hdr.ModTime.UnixNano())
	if fd >= 0 {
		return errors.Wrapf(futimens(fd, ts), "set times of %s", rel)
	}
	return errors.Wrapf(unix.UtimesNanoAt(dir, name, []unix.Timespec{ts, ts}, unix.AT_SYMLINK_NOFOLLOW), "set times of %s", rel)
}

// setXattrs sets the entry's SCHILY.xattr.* records: through fd when
// open, else on name in dir through /proc/self/fd without following it.
func (a *applier) setXattrs(hdr *tar.Header, rel string, dir int, name string, fd int) error {
	for k, v := range hdr.PAXRecords {
		attr, ok := strings.CutPrefix(k, xattrPAXPrefix)
		if !ok || SkipXattr(attr) {
			continue
		}
		var err error
		if fd >= 0 {
			err = unix.Fsetxattr(fd, attr, []byte(v), 0)
		} else {
			err = unix.Lsetxattr(fdPath(dir, name), attr, []byte(v), 0)
		}
		if err == nil {
			continue
		}
		if !a.strict && (errors.Is(err, unix.ENOTSUP) || errors.Is(err, unix.EPERM) || errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOENT)) {
			a.skipped = append(a.skipped, SkippedXattr{Path: rel, Name: attr, Err: err})
			continue
		}
		return errors.Wrapf(err, "set xattr %s on %s", attr, rel)
	}
	return nil
}

// setDirTimes sets a directory entry's times, looking it up again inside
// the root without following a symlink at its end; a directory that a
// later entry replaced (another inode there now) is left alone.
func (a *applier) setDirTimes(d dirTime) error {
	fd := a.root
	if d.rel != "." {
		var err error
		fd, err = openInRoot(a.root, d.rel, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW)
		if err != nil {
			return nil // gone, or no longer a directory: nothing of it to date
		}
		defer unix.Close(fd)
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return errors.Wrapf(err, "stat %s", d.rel)
	}
	if st.Dev != d.dev || st.Ino != d.ino {
		return nil
	}
	return errors.Wrapf(futimens(fd, unix.NsecToTimespec(d.mtime.UnixNano())), "set times of %s", d.rel)
}
