package driver

import (
	"archive/tar"
	"io"
	"path"
	"strings"
	"time"

	"github.com/pkg/errors"
	"golang.org/x/sys/unix"

	"github.com/thinctl/thinctl/errdefs"
)

// ErrBadArchive is the class of a layer stream ApplyTar refuses: an entry
// that would reach outside the layer, replace its root, or that no
// filesystem could hold. It also matches ErrInvalidArgument.
var ErrBadArchive = errdefs.New("layer archive refused", errdefs.ErrInvalidArgument)

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

// ApplyOptions tunes ApplyTarWith; the zero value is ApplyTar's behaviour.
type ApplyOptions struct {
	// Whiteouts writes OCI whiteouts in the backend's form
	// (RemoveWhiteouts when nil).
	Whiteouts WhiteoutFormat
	// StrictXattrs makes an xattr the filesystem refuses for its file
	// (EPERM, ENOTSUP, EINVAL: user.* on a symlink, say) an error instead
	// of a SkippedXattr.
	StrictXattrs bool
}

// ApplyResult is what ApplyTarWith did.
type ApplyResult struct {
	// Size is the number of content bytes written: the sum of regular
	// file sizes, each hard-linked inode counted once.
	Size int64
	// SkippedXattrs lists the xattrs the filesystem refused and that
	// were left out (never with StrictXattrs).
	SkippedXattrs []SkippedXattr
}

// SkippedXattr is an extended attribute ApplyTarWith left out.
type SkippedXattr struct {
	Path string // the entry's cleaned name
	Name string // the attribute
	Err  error  // why the filesystem refused it
}

// ApplyTar is ApplyTarWith with the whiteout format wf and default
// options, returning only the content size.
func ApplyTar(root string, r io.Reader, wf WhiteoutFormat) (int64, error) {
	res, err := ApplyTarWith(root, r, ApplyOptions{Whiteouts: wf})
	return res.Size, err
}

// ApplyTarWith unpacks the layer stream r into the directory root.
//
// It keeps modes including setuid, setgid and sticky bits, owners,
// nanosecond mtimes, xattrs, symlinks, hard links and device nodes, and
// converts OCI whiteouts through o.Whiteouts. Whatever r holds, nothing
// outside root is created, changed, removed or has its metadata set, and
// root stays a real directory: root is opened once without following a
// symlink, every entry's parent is resolved from that descriptor with
// symlinks taken as if root were "/" (so an in-layer "lib -> /usr/lib"
// leads to root's usr/lib), and the entry itself is made and changed with
// calls that never follow a symlink at its last component. The "./" entry
// may only be a directory (it sets root's metadata). Hard links must name
// an existing non-directory inside root. A regular entry larger than the
// free space of root's filesystem is refused before it is written, and
// all the content written together never exceeds that free space.
// PAX global headers are skipped; GNU sparse files (old and PAX), long
// names and links are read. Entries at or below a reserved ".wh..wh."
// name (see ParseWhiteout), and hard links to such entries, are left out.
// A refused entry's error matches ErrBadArchive and names the entry.
// What was written before an error stays.
func ApplyTarWith(root string, r io.Reader, o ApplyOptions) (ApplyResult, error) {
	wf := o.Whiteouts
	if wf == nil {
		wf = RemoveWhiteouts
	}
	rootfd, err := openLayerRoot(root)
	if err != nil {
		return ApplyResult{}, errors.Wrap(ErrBadArchive, err.Error())
	}
	defer unix.Close(rootfd)
	var sfs unix.Statfs_t
	if err := unix.Fstatfs(rootfd, &sfs); err != nil {
		return ApplyResult{}, errors.Wrapf(err, "statfs %s", root)
	}
	a := &applier{root: rootfd, wf: wf, strict: o.StrictXattrs, written: map[string]bool{},
		free: int64(sfs.Bfree) * sfs.Bsize}
	if testFreeLimit > 0 && testFreeLimit < a.free {
		a.free = testFreeLimit
	}
	tr := tar.NewReader(r)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return a.result(), errors.Wrap(err, "read layer stream")
		}
		if err := a.entry(hdr, tr); err != nil {
			return a.result(), err
		}
	}
	// Directory times last: creating children changed them.
	for i := len(a.dirs) - 1; i >= 0; i-- {
		if err := a.setDirTimes(a.dirs[i]); err != nil {
			return a.result(), err
		}
	}
	return a.result(), nil
}

// testFreeLimit, when positive, caps the free space ApplyTarWith sees, so
// tests and fuzzing meet the size bounds without filling a filesystem.
var testFreeLimit int64

type dirTime struct {
	rel      string
	dev, ino uint64
	mtime    time.Time
}

type applier struct {
	root    int // the layer root, opened O_DIRECTORY|O_NOFOLLOW
	wf      WhiteoutFormat
	strict  bool
	size    int64
	free    int64 // bytes the filesystem may still take from this stream
	skipped []SkippedXattr
	written map[string]bool
	dirs    []dirTime
}

func (a *applier) result() ApplyResult {
	return ApplyResult{Size: a.size, SkippedXattrs: a.skipped}
}

// refuse is the one-line error for an entry the applier will not write.
func refuse(format string, args ...any) error {
	return errors.Wrap(ErrBadArchive, errors.Errorf(format, args...).Error())
}

func (a *applier) entry(hdr *tar.Header, r io.Reader) error {
	if hdr.Typeflag == tar.TypeXGlobalHeader {
		return nil // defaults for the entries after it; each carries its own
	}
	rel, err := CleanEntryName(hdr.Name)
	if err != nil {
		return errors.Wrap(ErrBadArchive, err.Error())
	}
	kind, target, err := ParseWhiteout(rel)
	if err != nil {
		return errors.Wrap(ErrBadArchive, err.Error())
	}
	switch kind {
	case WhiteoutMeta:
		return nil
	case Whiteout:
		dir, err := parentDir(a.root, target)
		if err != nil {
			return errors.Wrap(ErrBadArchive, err.Error())
		}
		defer unix.Close(dir)
		return a.wf.Whiteout(dir, path.Base(target), target)
	case OpaqueMarker:
		dir, err := parentDir(a.root, path.Join(target, "x"))
		if err != nil {
			return errors.Wrap(ErrBadArchive, err.Error())
		}
		defer unix.Close(dir)
		return a.wf.Opaque(dir, target, func(child string) bool { return a.written[child] })
	}
	if hdr.Typeflag == tar.TypeLink && UnderMeta(path.Clean("/" + hdr.Linkname)[1:]) {
		return nil // its target is union-filesystem metadata, never unpacked
	}
	if rel == "." {
		if hdr.Typeflag != tar.TypeDir {
			return refuse("tar entry %q is the layer root but not a directory (type %q); the root stays a directory", hdr.Name, hdr.Typeflag)
		}
		return a.setMeta(hdr, rel, a.root, "", a.root)
	}
	if err := a.fits(hdr, rel); err != nil {
		return err
	}
	dir, err := parentDir(a.root, rel)
	if err != nil {
		return errors.Wrap(ErrBadArchive, err.Error())
	}
	defer unix.Close(dir)
	fd, err := a.create(hdr, rel, dir, path.Base(rel), r)
	if err != nil {
		return err
	}
	if fd >= 0 {
		defer unix.Close(fd)
	}
	// The stream wrote rel and, by implication, every directory above it:
	// an opaque marker that follows must keep them all.
	for d := rel; d != "." && !a.written[d]; d = path.Dir(d) {
		a.written[d] = true
	}
	return a.setMeta(hdr, rel, dir, path.Base(rel), fd)
}

// isRegular reports whether typ is content read as a regular file: old
// GNU sparse ('S') and contiguous ('7') files are, to every reader.
func isRegular(typ byte) bool {
	return typ == tar.TypeReg || typ == tar.TypeRegA || typ == tar.TypeGNUSparse || typ == tar.TypeCont
}

// fits refuses a regular entry bigger than what root's filesystem still
// has free for this stream.
func (a *applier) fits(hdr *tar.Header, rel string) error {
	if !isRegular(hdr.Typeflag) || hdr.Size <= a.free {
		return nil
	}
	return errors.Wrapf(errdefs.ErrNoSpace, "tar entry %s is %d bytes, more than the %d bytes the layer's filesystem has free; refusing it",
		rel, hdr.Size, a.free)
}

// create makes the entry name in the directory dir, replacing what is
// there unless both are directories. It returns a descriptor of the new
// file or directory (-1 for other types) for setMeta.
func (a *applier) create(hdr *tar.Header, rel string, dir int, name string, r io.Reader) (int, error) {
	var st unix.Stat_t
	err := unix.Fstatat(dir, name, &st, unix.AT_SYMLINK_NOFOLLOW)
	isDir := err == nil && st.Mode&unix.S_IFMT == unix.S_IFDIR
	if err == nil && !(isDir && hdr.Typeflag == tar.TypeDir) {
		if err := RemoveAllAt(dir, name); err != nil {
			return -1, errors.Wrapf(err, "replace %s", rel)
		}
	}
	mode := uint32(hdr.Mode & 0o7777)
	switch typ := hdr.Typeflag; {
	case typ == tar.TypeDir:
		if !isDir {
			if err := unix.Mkdirat(dir, name, 0o700); err != nil {
				return -1, errors.Wrapf(err, "create directory %s", rel)
			}
		}
		fd, err := unix.Openat(dir, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		return fd, errors.Wrapf(err, "open directory %s", rel)
	case isRegular(typ):
		fd, err := unix.Openat(dir, name, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
		if err != nil {
			return -1, errors.Wrapf(err, "create %s", rel)
		}
		n, err := copyHoles(fd, r, &a.free)
		a.size += n
		if err != nil {
			unix.Close(fd)
			return -1, errors.Wrapf(err, "write %s", rel)
		}
		return fd, nil
	case typ == tar.TypeSymlink:
		return -1, errors.Wrapf(unix.Symlinkat(hdr.Linkname, dir, name), "create symlink %s", rel)
	case typ == tar.TypeLink:
		return -1, a.link(hdr, rel, dir, name)
	case typ == tar.TypeChar, typ == tar.TypeBlock, typ == tar.TypeFifo:
		kind := map[byte]uint32{tar.TypeChar: unix.S_IFCHR, tar.TypeBlock: unix.S_IFBLK, tar.TypeFifo: unix.S_IFIFO}[typ]
		dev := unix.Mkdev(uint32(hdr.Devmajor), uint32(hdr.Devminor))
		return -1, errors.Wrapf(unix.Mknodat(dir, name, kind|mode&0o777, int(dev)), "create device node %s", rel)
	}
	return -1, refuse("tar entry %s has unsupported type %q", rel, hdr.Typeflag)
}

// link makes name in dir a hard link to the entry's Linkname, which must
// be an existing non-directory inside the layer; a symlink there is
// linked itself, never followed.
func (a *applier) link(hdr *tar.Header, rel string, dir int, name string) error {
	target, err := CleanEntryName(hdr.Linkname)
	if err != nil || target == "." {
		return refuse("hard link %s points at %q, outside the layer", rel, hdr.Linkname)
	}
	tdir, err := openInRoot(a.root, path.Dir(target), unix.O_RDONLY|unix.O_DIRECTORY)
	if err != nil {
		return refuse("hard link %s points at %s, which does not exist in the layer (%v)", rel, target, err)
	}
	defer unix.Close(tdir)
	var st unix.Stat_t
	if err := unix.Fstatat(tdir, path.Base(target), &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return refuse("hard link %s points at %s, which does not exist in the layer (%v)", rel, target, err)
	}
	if st.Mode&unix.S_IFMT == unix.S_IFDIR {
		return refuse("hard link %s points at the directory %s; directories cannot be hard linked", rel, target)
	}
	return errors.Wrapf(unix.Linkat(tdir, path.Base(target), dir, name, 0), "create hard link %s to %s", rel, target)
}
