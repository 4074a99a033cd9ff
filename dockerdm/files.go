package dockerdm

import (
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"

	"github.com/pkg/errors"
	"golang.org/x/sys/unix"

	"github.com/thinctl/thinctl/driver"
	"github.com/thinctl/thinctl/errdefs"
)

// A store is anyone's files: every file of it is opened without blocking
// (a FIFO would wait for a writer for ever, a device's open can act) and
// checked with fstat before one byte is read, and its own files are not
// followed through a symlink.

// openStoreFile opens the store file p for reading: without following a
// symlink at p itself, without blocking, and only when fstat says it is a
// regular file; anything else is ErrCorrupt naming its type. A missing
// file is an error os.IsNotExist recognises.
func openStoreFile(p string) (*os.File, error) {
	fd, err := unix.Open(p, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: p, Err: err}
	}
	f, err := reopenRegular(fd, p)
	unix.Close(fd)
	return f, err
}

// reopenRegular checks that the O_PATH descriptor fd (for p) is a regular
// file and opens it for reading through /proc/self/fd, so that nothing of
// another type is ever opened.
func reopenRegular(fd int, p string) (*os.File, error) {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, errors.Wrapf(err, "stat %s", p)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return nil, errors.Wrapf(ErrCorrupt, "%s is a %s, not a regular file", p, driver.TypeName(st.Mode))
	}
	rfd, err := unix.Open("/proc/self/fd/"+strconv.Itoa(fd), unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NOCTTY|unix.O_NONBLOCK, 0)
	if errors.Is(err, unix.ENOENT) { // no /proc: open it again, without blocking, and compare
		rfd, err = unix.Open(p, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC|unix.O_NOCTTY|unix.O_NONBLOCK, 0)
		if err == nil {
			var again unix.Stat_t
			if ferr := unix.Fstat(rfd, &again); ferr != nil || again.Dev != st.Dev || again.Ino != st.Ino {
				unix.Close(rfd)
				return nil, errors.Wrapf(ErrCorrupt, "%s was replaced while being opened", p)
			}
		}
	}
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: p, Err: err}
	}
	return os.NewFile(uintptr(rfd), p), nil
}

// readDir lists the store directory p, refusing (ENOTDIR) anything that is
// not a directory before opening it: a FIFO in a directory's place must
// not block the listing.
func readDir(p string) ([]fs.DirEntry, error) {
	fd, err := unix.Open(p, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: p, Err: err}
	}
	d := os.NewFile(uintptr(fd), p)
	defer d.Close()
	ents, err := d.ReadDir(-1)
	sort.Slice(ents, func(i, j int) bool { return ents[i].Name() < ents[j].Name() })
	return ents, err
}

// isRegularFile reports whether p exists as a regular file (not followed
// through a symlink).
func isRegularFile(p string) bool {
	fi, err := os.Lstat(p)
	return err == nil && fi.Mode().IsRegular()
}

// poolFile checks one of the pool's loop files (devicemapper/devicemapper/
// data or metadata). A symlink is resolved (people moved the files to
// another disk that way) and the resolution returned with a note to show;
// whatever it resolves to must be a regular file: a FIFO, device or
// socket there is ErrCorrupt, a missing file ErrPartial.
func poolFile(p string) (resolved, note string, err error) {
	fi, err := os.Lstat(p)
	if err != nil {
		if os.IsNotExist(err) {
			return "", "", errors.Wrapf(ErrPartial, "%s is missing (a store on an external pool needs the pool's name)", p)
		}
		return "", "", errors.Wrapf(err, "docker store: stat %s", p)
	}
	resolved = p
	if fi.Mode()&os.ModeSymlink != 0 {
		if resolved, err = filepath.EvalSymlinks(p); err != nil {
			if os.IsNotExist(err) {
				return "", "", errors.Wrapf(ErrPartial, "%s is a symlink to a missing file", p)
			}
			return "", "", errors.Wrapf(err, "docker store: resolve %s", p)
		}
		note = p + " is a symlink: thinctl uses " + resolved
	}
	var st unix.Stat_t
	if err := unix.Lstat(resolved, &st); err != nil {
		return "", "", errors.Wrapf(err, "docker store: stat %s", resolved)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return "", "", errors.Wrapf(ErrCorrupt, "%s is a %s, not the pool's loop file", resolved, driver.TypeName(st.Mode))
	}
	return resolved, note, nil
}

// readAtMost reads all of f, refusing more than limit bytes (the size
// fstat reports is checked first, so an oversized file is not read at all).
func readAtMost(f *os.File, limit int64) ([]byte, error) {
	if fi, err := f.Stat(); err == nil && fi.Size() > limit {
		return nil, errors.Wrapf(ErrCorrupt, "%s is %d bytes, more than the %d a store file may be", f.Name(), fi.Size(), limit)
	}
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, errors.Wrapf(err, "read %s", f.Name())
	}
	if int64(len(b)) > limit {
		return nil, errors.Wrapf(ErrCorrupt, "%s is larger than %d bytes", f.Name(), limit)
	}
	return b, nil
}

// ErrWorkSpace: a layer file does not fit in the export's work directory
// (it would take the filesystem's last 1/20 or 64 MiB).
var ErrWorkSpace = errdefs.New("no room for the layer file in the work directory", errdefs.ErrNoSpace)

// workRoom returns how many bytes the layer files may take in dir: its
// filesystem's free space less a reserve of 1/20 of its size, at least
// 64 MiB.
func workRoom(dir string) (int64, error) {
	var fs unix.Statfs_t
	if err := unix.Statfs(dir, &fs); err != nil {
		return 0, errors.Wrapf(err, "free space of %s", dir)
	}
	free := int64(fs.Bavail) * fs.Bsize
	reserve := max(int64(fs.Blocks)*fs.Bsize/20, 64<<20)
	return max(free-reserve, 0), nil
}

// boundedWriter passes at most left bytes to w and fails with
// ErrWorkSpace at the first byte beyond.
type boundedWriter struct {
	w    io.Writer
	left int64
	what string
}

func (b *boundedWriter) Write(p []byte) (int, error) {
	if int64(len(p)) > b.left {
		n, _ := b.w.Write(p[:b.left])
		b.left -= int64(n)
		return n, errors.Wrapf(ErrWorkSpace, "%s grew beyond the bytes set aside for it", b.what)
	}
	n, err := b.w.Write(p)
	b.left -= int64(n)
	return n, err
}
