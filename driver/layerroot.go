package driver

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/pkg/errors"
	"golang.org/x/sys/unix"

	"github.com/thinctl/thinctl/errdefs"
)

// Errors of the checks every reader of a layer tree makes. Both match
// ErrCorrupt: the tree on disk is not what a layer can be, and it was left
// as it was.
var (
	// ErrBadLayerRoot: a layer's root is a symlink or not a directory, so
	// reading it would read whatever it points at.
	ErrBadLayerRoot = errdefs.New("layer root is not a real directory", errdefs.ErrCorrupt)
	// ErrUnsafeEntry: a path inside a layer passes through a symlink, or
	// an entry is not of the type it had a moment before (another program
	// changed the tree while it was being read).
	ErrUnsafeEntry = errdefs.New("layer entry changed under the reader", errdefs.ErrCorrupt)
)

// CheckLayerRoot refuses a layer root dir that is not a real directory: a
// symlink (its target is named) or any other type of file. It does not
// follow dir's last component; the components above it are the caller's
// (a mount point, the backend's home).
func CheckLayerRoot(dir string) error {
	var st unix.Stat_t
	if err := unix.Lstat(dir, &st); err != nil {
		return errors.Wrapf(err, "layer root %s", dir)
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		return nil
	case unix.S_IFLNK:
		target, _ := os.Readlink(dir)
		return errors.Wrapf(ErrBadLayerRoot, "%s is a symlink to %s", dir, Quote(target))
	}
	return errors.Wrapf(ErrBadLayerRoot, "%s is a %s", dir, TypeName(st.Mode))
}

// TypeName names the file type in mode (a stat st_mode) in words.
func TypeName(mode uint32) string {
	switch mode & unix.S_IFMT {
	case unix.S_IFDIR:
		return "directory"
	case unix.S_IFREG:
		return "regular file"
	case unix.S_IFLNK:
		return "symlink"
	case unix.S_IFIFO:
		return "FIFO"
	case unix.S_IFSOCK:
		return "socket"
	case unix.S_IFCHR:
		return "character device"
	case unix.S_IFBLK:
		return "block device"
	}
	return "file of unknown type"
}

// Quote returns s in double quotes with control characters, invalid UTF-8
// and quotes escaped (Go syntax), so that a name taken from a hostile tree
// or store prints on one line and cannot drive a terminal.
func Quote(s string) string { return strconv.Quote(s) }

// OpenInRoot opens rel (slash-separated, relative to the layer root root)
// for reading without following any symlink, neither in rel's components
// nor its last one, and without blocking (a FIFO opens and reads as empty
// instead of waiting for a writer; a device is opened but the caller
// checks the type with Stat before reading). extra is or-ed into the open
// flags (unix.O_DIRECTORY to open a directory, unix.O_PATH for a handle
// that opens nothing, see OpenRegularInRoot). A symlink on the way is
// ErrUnsafeEntry; root itself must be a real directory (ErrBadLayerRoot).
func OpenInRoot(root, rel string, extra int) (*os.File, error) {
	rootFd, err := unix.Open(root, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		if errors.Is(err, unix.ENOTDIR) || errors.Is(err, unix.ELOOP) {
			return nil, CheckLayerRoot(root)
		}
		return nil, errors.Wrapf(err, "open layer root %s", root)
	}
	defer unix.Close(rootFd)
	rel = strings.Trim(filepath.ToSlash(rel), "/")
	if rel == "" {
		rel = "."
	}
	flags := unix.O_RDONLY | unix.O_NOFOLLOW | unix.O_NONBLOCK | unix.O_CLOEXEC | unix.O_NOCTTY | extra
	if extra&unix.O_PATH != 0 {
		flags = unix.O_PATH | unix.O_NOFOLLOW | unix.O_CLOEXEC | extra
	}
	how := &unix.OpenHow{Flags: uint64(flags), Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS}
	fd, err := openat2Or(rootFd, rel, how, openStepwise)
	if err != nil {
		p := filepath.Join(root, filepath.FromSlash(rel))
		if errors.Is(err, unix.ELOOP) || errors.Is(err, unix.EXDEV) {
			return nil, errors.Wrapf(ErrUnsafeEntry, "%s: a symlink on the way (%v)", p, err)
		}
		return nil, &os.PathError{Op: "open", Path: p, Err: err}
	}
	return os.NewFile(uintptr(fd), filepath.Join(root, filepath.FromSlash(rel))), nil
}

// openStepwise is OpenInRoot for kernels without openat2 (before 5.6):
// one openat per component, none following a symlink.
func openStepwise(rootFd int, rel string, flags int) (int, error) {
	parts := strings.Split(rel, "/")
	dir, err := unix.Openat(rootFd, ".", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	for i, part := range parts {
		if part == ".." {
			unix.Close(dir)
			return -1, unix.EXDEV
		}
		if i == len(parts)-1 {
			fd, err := unix.Openat(dir, part, flags, 0)
			unix.Close(dir)
			return fd, err
		}
		next, err := unix.Openat(dir, part, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		unix.Close(dir)
		if errors.Is(err, unix.ENOTDIR) {
			err = unix.ELOOP // a symlink (or a file) where a directory was
		}
		if err != nil {
			return -1, err
		}
		dir = next
	}
	return dir, nil
}

// OpenRegularInRoot opens rel under root like OpenInRoot and checks that
// it is a regular file; when want is not nil, also that it is the inode
// want describes (the caller's earlier Lstat), so that what is read is
// what was described. The file is first opened as a path only (O_PATH, no
// driver's open runs) and checked with fstat, then opened for reading
// through /proc/self/fd: a FIFO, device or socket is never opened.
func OpenRegularInRoot(root, rel string, want *unix.Stat_t) (*os.File, error) {
	pf, err := OpenInRoot(root, rel, unix.O_PATH)
	if err != nil {
		return nil, err
	}
	defer pf.Close()
	var st unix.Stat_t
	if err := unix.Fstat(int(pf.Fd()), &st); err != nil {
		return nil, errors.Wrapf(err, "stat %s", pf.Name())
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return nil, errors.Wrapf(ErrUnsafeEntry, "%s is a %s, not a regular file", pf.Name(), TypeName(st.Mode))
	}
	if want != nil && (st.Dev != want.Dev || st.Ino != want.Ino) {
		return nil, errors.Wrapf(ErrUnsafeEntry, "%s was replaced while being read", pf.Name())
	}
	fd, err := unix.Open("/proc/self/fd/"+strconv.Itoa(int(pf.Fd())), unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NOCTTY, 0)
	if errors.Is(err, unix.ENOENT) {
		// No /proc: open the path again without following a symlink, and
		// check that it is still the same regular file.
		f, err := OpenInRoot(root, rel, 0)
		if err != nil {
			return nil, err
		}
		var again unix.Stat_t
		if err := unix.Fstat(int(f.Fd()), &again); err != nil || again.Dev != st.Dev || again.Ino != st.Ino {
			f.Close()
			return nil, errors.Wrapf(ErrUnsafeEntry, "%s was replaced while being read", pf.Name())
		}
		return f, nil
	}
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: pf.Name(), Err: err}
	}
	return os.NewFile(uintptr(fd), pf.Name()), nil
}
