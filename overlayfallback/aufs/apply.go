package aufs

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

	"github.com/thinctl/thinctl/driver"
)

// ApplyDiff unpacks an OCI layer tar stream into layer id's diff directory
// and returns the bytes of regular file content it wrote. Whiteouts and
// opaque markers are stored as the aufs files of the same names (aufs reads
// the OCI spelling natively); aufs-reserved names in the stream are
// ignored. Applied over content already in the layer, the stream wins: a
// whiteout deletes the layer's own copy, an opaque marker drops the
// directory's earlier entries, and a file written where a whiteout stood
// replaces it. parent is not consulted: the layer's ancestors are fixed at
// Create.
func (d *Driver) ApplyDiff(id, parent string, diff io.Reader) (int64, error) {
	if !d.Exists(id) {
		return 0, errors.Wrapf(driver.ErrNotFound, "aufs: apply diff to %s", id)
	}
	n, err := applyTar(d.diffPath(id), diff)
	if err != nil {
		return n, errors.Wrapf(err, "aufs: apply diff to %s", id)
	}
	return n, nil
}

// applier unpacks one tar stream into one branch directory.
type applier struct {
	root    string
	written map[string]bool // relative paths this stream created
	dirs    []*tar.Header   // directory entries, whose times are set last
	size    int64
}

// applyTar unpacks the tar stream r into the branch at root.
func applyTar(root string, r io.Reader) (int64, error) {
	a := &applier{root: root, written: map[string]bool{}}
	tr := tar.NewReader(r)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return a.size, errors.Wrap(err, "read tar stream")
		}
		if err := a.entry(hdr, tr); err != nil {
			return a.size, errors.Wrapf(err, "tar entry %q", hdr.Name)
		}
	}
	// Creating entries touched their directories' mtimes: restore the
	// recorded ones, deepest first.
	for i := len(a.dirs) - 1; i >= 0; i-- {
		if err := setTimes(a.abs(a.dirs[i].Name), a.dirs[i]); err != nil {
			return a.size, err
		}
	}
	return a.size, nil
}

// cleanName turns a tar entry name into a slash-separated path relative to
// the layer root ("." for the root), refusing names that climb out of it.
func cleanName(name string) (string, error) {
	rel := path.Clean("/" + name)[1:]
	if rel == "" {
		return ".", nil
	}
	if strings.Contains(name, "\x00") {
		return "", errors.New("name contains a NUL byte")
	}
	for _, part := range strings.Split(strings.Trim(name, "/"), "/") {
		if part == ".." {
			return "", errors.New("name climbs out of the layer with ..")
		}
	}
	return rel, nil
}

func (a *applier) abs(rel string) string { return filepath.Join(a.root, filepath.FromSlash(rel)) }

// entry applies one tar header (and its content from r).
func (a *applier) entry(hdr *tar.Header, r io.Reader) error {
	rel, err := cleanName(hdr.Name)
	if err != nil {
		return err
	}
	if rel == "." {
		if hdr.Typeflag != tar.TypeDir {
			return errors.New("the layer root can only be a directory")
		}
		hdr.Name = "."
		a.dirs = append(a.dirs, hdr)
		return a.setMeta(a.root, hdr)
	}
	dir, base := path.Split(rel)
	dir = strings.TrimSuffix(dir, "/")
	if err := a.ensureDir(dir); err != nil {
		return err
	}
	dirAbs := a.abs(dir)
	switch classify(base) {
	case entryMeta:
		return nil
	case entryWhiteout:
		victim := filepath.Join(dirAbs, whiteoutTarget(base))
		if err := os.RemoveAll(victim); err != nil {
			return err
		}
		return a.marker(rel, hdr)
	case entryOpaque:
		if err := a.dropEarlier(dir); err != nil {
			return err
		}
		return a.marker(rel, hdr)
	}
	target := a.abs(rel)
	hadWhiteout := false
	wh := filepath.Join(dirAbs, whiteoutName(base))
	if _, err := os.Lstat(wh); err == nil {
		hadWhiteout = true
		if err := os.Remove(wh); err != nil {
			return err
		}
	}
	if fi, err := os.Lstat(target); err == nil && !(hdr.Typeflag == tar.TypeDir && fi.IsDir()) {
		if err := os.RemoveAll(target); err != nil {
			return err
		}
	}
	a.written[rel] = true
	mode := uint32(hdr.Mode & 0o7777)
	switch hdr.Typeflag {
	case tar.TypeDir:
		hdr.Name = rel
		a.dirs = append(a.dirs, hdr)
		if err := os.Mkdir(target, 0o700); err != nil && !os.IsExist(err) {
			return err
		}
		if hadWhiteout {
			// The layer had deleted this directory; what the stream puts
			// back must not let the lower branches' entries show through.
			if err := os.WriteFile(filepath.Join(target, OpaqueMarker), nil, 0o444); err != nil {
				return err
			}
		}
		return a.setMeta(target, hdr)
	case tar.TypeReg:
		f, err := os.OpenFile(target, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
		if err != nil {
			return err
		}
		n, err := io.Copy(f, r)
		a.size += n
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
	case tar.TypeLink:
		src, err := cleanName(hdr.Linkname)
		if err != nil {
			return errors.Wrapf(err, "hard link target %q", hdr.Linkname)
		}
		if classify(path.Base(src)) != entryPlain || src == "." {
			return errors.Errorf("hard link target %q is not a layer file", hdr.Linkname)
		}
		if err := a.ensureDir(path.Dir(src)); err != nil {
			return err
		}
		// A hard link shares the target's inode, owner and mode.
		return os.Link(a.abs(src), target)
	case tar.TypeSymlink:
		if err := os.Symlink(hdr.Linkname, target); err != nil {
			return err
		}
	case tar.TypeChar:
		err = unix.Mknod(target, unix.S_IFCHR|mode, int(unix.Mkdev(uint32(hdr.Devmajor), uint32(hdr.Devminor))))
	case tar.TypeBlock:
		err = unix.Mknod(target, unix.S_IFBLK|mode, int(unix.Mkdev(uint32(hdr.Devmajor), uint32(hdr.Devminor))))
	case tar.TypeFifo:
		err = unix.Mkfifo(target, mode)
	default:
		return errors.Errorf("unsupported tar entry type %q", string(hdr.Typeflag))
	}
	if err != nil {
		return err
	}
	if err := a.setMeta(target, hdr); err != nil {
		return err
	}
	return setTimes(target, hdr)
}

// marker writes a whiteout or opaque marker: an empty file with the
// entry's owner and mode.
func (a *applier) marker(rel string, hdr *tar.Header) error {
	target := a.abs(rel)
	if err := os.RemoveAll(target); err != nil {
		return err
	}
	if err := os.WriteFile(target, nil, 0o444); err != nil {
		return err
	}
	a.written[rel] = true
	if err := a.setMeta(target, hdr); err != nil {
		return err
	}
	return setTimes(target, hdr)
}

// dropEarlier removes what the layer held in dir before this stream: an
// opaque marker says the directory's previous content is gone.
func (a *applier) dropEarlier(dir string) error {
	ents, err := os.ReadDir(a.abs(dir))
	if err != nil {
		return err
	}
	for _, e := range ents {
		rel := path.Join(dir, e.Name())
		if a.written[rel] || classify(e.Name()) == entryMeta {
			continue
		}
		if err := os.RemoveAll(a.abs(rel)); err != nil {
			return err
		}
	}
	return nil
}

// ensureDir makes sure every component of the relative directory dir is a
// real directory inside the layer, creating missing ones (mode 0755, as a
// tar without directory entries implies). A symbolic link on the way is an
// error: following it could write outside the layer.
func (a *applier) ensureDir(dir string) error {
	if dir == "" || dir == "." {
		return nil
	}
	cur := a.root
	for _, part := range strings.Split(dir, "/") {
		cur = filepath.Join(cur, part)
		fi, err := os.Lstat(cur)
		switch {
		case os.IsNotExist(err):
			if err := os.Mkdir(cur, 0o755); err != nil {
				return err
			}
		case err != nil:
			return err
		case fi.Mode()&os.ModeSymlink != 0:
			return errors.Errorf("path goes through the symbolic link %s in the layer; refusing to follow it", strings.TrimPrefix(cur, a.root))
		case !fi.IsDir():
			return errors.Errorf("%s is not a directory in the layer", strings.TrimPrefix(cur, a.root))
		}
	}
	return nil
}

// setMeta applies owner, mode and extended attributes of hdr to target
// (owner first: chown clears the set-id bits).
func (a *applier) setMeta(target string, hdr *tar.Header) error {
	if err := os.Lchown(target, hdr.Uid, hdr.Gid); err != nil && (os.Geteuid() == 0 || !errors.Is(err, unix.EPERM)) {
		return err
	}
	if hdr.Typeflag != tar.TypeSymlink {
		if err := unix.Chmod(target, uint32(hdr.Mode&0o7777)); err != nil {
			return errors.Wrapf(err, "chmod %s", target)
		}
	}
	for k, v := range hdr.PAXRecords {
		name, ok := strings.CutPrefix(k, paxXattr)
		if !ok {
			continue
		}
		if err := unix.Lsetxattr(target, name, []byte(v), 0); err != nil {
			return errors.Wrapf(err, "set xattr %s on %s", name, target)
		}
	}
	return nil
}

// setTimes applies hdr's access and modification times to target without
// following a symbolic link.
func setTimes(target string, hdr *tar.Header) error {
	at := hdr.AccessTime
	if at.IsZero() {
		at = hdr.ModTime
	}
	ts := []unix.Timespec{timespec(at), timespec(hdr.ModTime)}
	if err := unix.UtimesNanoAt(unix.AT_FDCWD, target, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return errors.Wrapf(err, "set times of %s", target)
	}
	return nil
}

func timespec(t time.Time) unix.Timespec {
	if t.IsZero() {
		t = time.Unix(0, 0)
	}
	return unix.NsecToTimespec(t.UnixNano())
}
