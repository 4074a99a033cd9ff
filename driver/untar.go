package driver

import (
	"archive/tar"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/pkg/errors"
	"golang.org/x/sys/unix"
)

// CleanEntryName turns a tar entry name into a cleaned slash-separated path
// relative to the layer root, refusing names that climb out of it.
// The root itself is ".".
func CleanEntryName(name string) (string, error) {
	if name == "" {
		return "", errors.New("tar entry with an empty name")
	}
	if strings.ContainsRune(name, 0) {
		return "", errors.Errorf("tar entry name %q contains a NUL byte", name)
	}
	for _, part := range strings.Split(name, "/") {
		if part == ".." {
			return "", errors.Errorf("tar entry %q climbs out of the layer with ..", name)
		}
	}
	c := path.Clean("/" + name)[1:]
	if c == "" {
		return ".", nil
	}
	return c, nil
}

// ApplyTar unpacks the layer stream r into root, converting OCI whiteouts
// through wf (RemoveWhiteouts when nil), and returns the number of content
// bytes written (the sum of regular file sizes, each hard-linked inode
// counted once). It keeps modes including setuid, setgid and sticky bits,
// owners, nanosecond mtimes, xattrs, symlinks, hard links and device nodes.
// Entries may not escape root, neither by .. nor through a symlink.
// Entries at or below a reserved ".wh..wh." name (see ParseWhiteout), and
// hard links to such entries, are left out.
func ApplyTar(root string, r io.Reader, wf WhiteoutFormat) (int64, error) {
	if wf == nil {
		wf = RemoveWhiteouts
	}
	a := &applier{root: root, wf: wf, written: map[string]bool{}}
	tr := tar.NewReader(r)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return a.size, errors.Wrap(err, "read layer stream")
		}
		if err := a.entry(hdr, tr); err != nil {
			return a.size, err
		}
	}
	// Directory times last: creating children changed them.
	for i := len(a.dirs) - 1; i >= 0; i-- {
		d := a.dirs[i]
		if err := setTimes(a.abs(d.rel), d.mtime); err != nil {
			return a.size, err
		}
	}
	return a.size, nil
}

type dirTime struct {
	rel   string
	mtime time.Time
}

type applier struct {
	root    string
	wf      WhiteoutFormat
	size    int64
	written map[string]bool
	dirs    []dirTime
}

func (a *applier) abs(rel string) string {
	return filepath.Join(a.root, filepath.FromSlash(rel))
}

// safeParent makes sure every directory above rel exists inside root and is
// a real directory, not a symlink that could lead elsewhere.
func (a *applier) safeParent(rel string) error {
	dir := path.Dir(rel)
	if dir == "." {
		return nil
	}
	cur := a.root
	for _, part := range strings.Split(dir, "/") {
		cur = filepath.Join(cur, part)
		fi, err := os.Lstat(cur)
		switch {
		case os.IsNotExist(err):
			if err := os.Mkdir(cur, 0o755); err != nil {
				return errors.Wrapf(err, "create parent directory of %s", rel)
			}
		case err != nil:
			return errors.Wrapf(err, "stat parent of %s", rel)
		case fi.Mode()&os.ModeSymlink != 0:
			return errors.Errorf("tar entry %s would be written through the symlink %s; refusing", rel, cur)
		case !fi.IsDir():
			return errors.Errorf("tar entry %s needs %s to be a directory, but it is a file", rel, cur)
		}
	}
	return nil
}

func (a *applier) entry(hdr *tar.Header, r io.Reader) error {
	rel, err := CleanEntryName(hdr.Name)
	if err != nil {
		return err
	}
	kind, target, err := ParseWhiteout(rel)
	if err != nil {
		return err
	}
	switch kind {
	case WhiteoutMeta:
		return nil
	case Whiteout:
		if err := a.safeParent(target); err != nil {
			return err
		}
		return a.wf.Whiteout(a.root, target)
	case OpaqueMarker:
		if target != "." {
			if err := a.safeParent(target + "/x"); err != nil {
				return err
			}
		}
		return a.wf.Opaque(a.root, target, func(child string) bool { return a.written[child] })
	}
	if hdr.Typeflag == tar.TypeLink && UnderMeta(path.Clean("/" + hdr.Linkname)[1:]) {
		return nil // its target is union-filesystem metadata, never unpacked
	}
	if rel != "." {
		if err := a.safeParent(rel); err != nil {
			return err
		}
	}
	p := a.abs(rel)
	if err := a.create(hdr, rel, p, r); err != nil {
		return err
	}
	// The stream wrote rel and, by implication, every directory above it:
	// an opaque marker that follows must keep them all.
	for d := rel; d != "." && !a.written[d]; d = path.Dir(d) {
		a.written[d] = true
	}
	return a.setMeta(hdr, rel, p)
}

func (a *applier) create(hdr *tar.Header, rel, p string, r io.Reader) error {
	fi, err := os.Lstat(p)
	exists := err == nil
	if exists && !(fi.IsDir() && hdr.Typeflag == tar.TypeDir) {
		if err := os.RemoveAll(p); err != nil {
			return errors.Wrapf(err, "replace %s", rel)
		}
	}
	mode := uint32(hdr.Mode & 0o7777)
	switch hdr.Typeflag {
	case tar.TypeDir:
		if !(exists && fi.IsDir()) {
			if err := os.Mkdir(p, 0o700); err != nil {
				return errors.Wrapf(err, "create directory %s", rel)
			}
		}
	case tar.TypeReg, tar.TypeRegA:
		f, err := os.OpenFile(p, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
		if err != nil {
			return errors.Wrapf(err, "create %s", rel)
		}
		n, err := copySparse(f, r)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return errors.Wrapf(err, "write %s", rel)
		}
		a.size += n
	case tar.TypeSymlink:
		if err := os.Symlink(hdr.Linkname, p); err != nil {
			return errors.Wrapf(err, "create symlink %s", rel)
		}
	case tar.TypeLink:
		target, err := CleanEntryName(hdr.Linkname)
		if err != nil || target == "." {
			return errors.Errorf("hard link %s points at %q, outside the layer", rel, hdr.Linkname)
		}
		if err := a.safeParent(target); err != nil {
			return err
		}
		if err := os.Link(a.abs(target), p); err != nil {
			return errors.Wrapf(err, "create hard link %s to %s", rel, target)
		}
	case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
		kind := map[byte]uint32{tar.TypeChar: unix.S_IFCHR, tar.TypeBlock: unix.S_IFBLK, tar.TypeFifo: unix.S_IFIFO}[hdr.Typeflag]
		dev := unix.Mkdev(uint32(hdr.Devmajor), uint32(hdr.Devminor))
		if err := unix.Mknod(p, kind|mode&0o777, int(dev)); err != nil {
			return errors.Wrapf(err, "create device node %s", rel)
		}
	default:
		return errors.Errorf("tar entry %s has unsupported type %q", rel, hdr.Typeflag)
	}
	return nil
}

// setMeta applies owner, mode, xattrs and times; chown comes before chmod
// because chown clears the setuid and setgid bits.
func (a *applier) setMeta(hdr *tar.Header, rel, p string) error {
	if hdr.Typeflag == tar.TypeLink {
		return nil
	}
	if err := os.Lchown(p, hdr.Uid, hdr.Gid); err != nil {
		return errors.Wrapf(err, "chown %s to %d:%d", rel, hdr.Uid, hdr.Gid)
	}
	if hdr.Typeflag != tar.TypeSymlink {
		if err := os.Chmod(p, hdr.FileInfo().Mode()&(os.ModePerm|os.ModeSetuid|os.ModeSetgid|os.ModeSticky)); err != nil {
			return errors.Wrapf(err, "chmod %s", rel)
		}
	}
	for k, v := range hdr.PAXRecords {
		name, ok := strings.CutPrefix(k, xattrPAXPrefix)
		if !ok || SkipXattr(name) {
			continue
		}
		if err := unix.Lsetxattr(p, name, []byte(v), 0); err != nil {
			if errors.Is(err, unix.ENOTSUP) {
				continue
			}
			return errors.Wrapf(err, "set xattr %s on %s", name, rel)
		}
	}
	if hdr.Typeflag == tar.TypeDir {
		a.dirs = append(a.dirs, dirTime{rel: rel, mtime: hdr.ModTime})
		return nil
	}
	return setTimes(p, hdr.ModTime)
}

// setTimes sets atime and mtime of p to t without following a symlink.
func setTimes(p string, t time.Time) error {
	ts := unix.NsecToTimespec(t.UnixNano())
	if err := unix.UtimesNanoAt(unix.AT_FDCWD, p, []unix.Timespec{ts, ts}, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return errors.Wrapf(err, "set times of %s", p)
	}
	return nil
}

// sparseChunk is the unit copySparse leaves as a hole when it is all zeros.
const sparseChunk = 4096

// copySparse copies r to the new, empty file f, seeking over every
// all-zero sparseChunk instead of writing it, so a sparse file stays
// sparse through a tar round trip (tar streams carry the zeros; the
// filesystem gets holes). A file ending in a hole gets its size with
// Truncate. It returns the bytes copied.
func copySparse(f *os.File, r io.Reader) (int64, error) {
	buf := make([]byte, sparseChunk)
	var n int64
	hole := false
	for {
		// Fill the chunk; only io.EOF ends the file (a reader's
		// io.ErrUnexpectedEOF is a cut stream and is returned).
		k := 0
		var err error
		for k < len(buf) && err == nil {
			var m int
			m, err = r.Read(buf[k:])
			k += m
		}
		if k > 0 {
			chunk := buf[:k]
			if k == sparseChunk && allZero(chunk) {
				if _, err := f.Seek(int64(k), io.SeekCurrent); err != nil {
					return n, err
				}
				hole = true
			} else {
				if _, err := f.Write(chunk); err != nil {
					return n, err
				}
				hole = false
			}
			n += int64(k)
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return n, err
		}
	}
	if hole {
		return n, f.Truncate(n)
	}
	return n, nil
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}
