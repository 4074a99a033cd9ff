package aufs

import (
	"archive/tar"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/pkg/errors"
	"golang.org/x/sys/unix"

	"github.com/thinctl/thinctl/driver"
)

// An aufs layer's diff directory already is its change set: new and
// changed files, ".wh.<name>" whiteouts for deletions and ".wh..wh..opq"
// markers for replaced directories, exactly the OCI layer spelling. So Diff,
// Changes and DiffSize read diff/<id> directly instead of comparing two
// mounted trees; they only have to leave out what aufs keeps for itself.

// nativeParent checks that parent is the parent the layer was created on:
// the diff directory holds changes against that layer only.
func (d *Driver) nativeParent(op, id, parent string) error {
	if !d.Exists(id) {
		return errors.Wrapf(driver.ErrNotFound, "aufs: %s %s", op, id)
	}
	real, err := d.parentOf(id)
	if err != nil {
		return err
	}
	if parent != real {
		return errors.Errorf("aufs: %s %s against %q: an aufs layer records changes against its own parent %q only; pass that parent", op, id, parent, real)
	}
	return nil
}

// Diff returns a tar stream of layer id's changes against parent, which
// must be id's parent: the content of diff/<id> with whiteouts in OCI form
// and aufs's own entries (.wh..wh.aufs, .wh..wh.plnk, .wh..wh.orph) left out.
func (d *Driver) Diff(id, parent string) (io.ReadCloser, error) {
	if err := d.nativeParent("diff", id, parent); err != nil {
		return nil, err
	}
	pr, pw := io.Pipe()
	go func() {
		pw.CloseWithError(writeLayerTar(pw, d.diffPath(id)))
	}()
	return pr, nil
}

// DiffSize returns the bytes of regular file content in layer id's diff
// directory (hard links counted once), which is what ApplyDiff of its Diff
// reports.
func (d *Driver) DiffSize(id, parent string) (int64, error) {
	if err := d.nativeParent("diff size", id, parent); err != nil {
		return 0, err
	}
	var size int64
	seen := map[devIno]bool{}
	err := walkBranch(d.diffPath(id), func(rel string, fi fs.FileInfo, kind entryKind) error {
		if kind != entryPlain || !fi.Mode().IsRegular() {
			return nil
		}
		st := fi.Sys().(*unix.Stat_t)
		if st.Nlink > 1 {
			k := devIno{uint64(st.Dev), st.Ino}
			if seen[k] {
				return nil
			}
			seen[k] = true
		}
		size += fi.Size()
		return nil
	})
	if err != nil {
		return 0, errors.Wrapf(err, "aufs: diff size %s", id)
	}
	return size, nil
}

type devIno struct{ dev, ino uint64 }

// walkBranch visits every entry below root in lexical order, except aufs's
// reserved entries (and whatever is inside them). fn gets the slash
// separated path relative to root, the lstat result and the entry's kind.
func walkBranch(root string, fn func(rel string, fi fs.FileInfo, kind entryKind) error) error {
	return filepath.WalkDir(root, func(p string, de fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == root {
			return nil
		}
		kind := classify(de.Name())
		if kind == entryMeta {
			if de.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		fi, err := de.Info()
		if err != nil {
			return err
		}
		rel := filepath.ToSlash(strings.TrimPrefix(p, root+string(filepath.Separator)))
		if err := fn(rel, fi, kind); err != nil {
			return err
		}
		if kind != entryPlain && de.IsDir() {
			return filepath.SkipDir // a whiteout is a file; never descend into a stray directory of that name
		}
		return nil
	})
}

// writeLayerTar writes the tar stream of one branch: directories, files
// (hard links within the branch as link entries), symbolic links, device
// nodes and fifos with owner, mode, mtime and extended attributes;
// whiteouts and opaque markers as empty regular files; sockets and aufs's
// reserved entries are left out.
func writeLayerTar(w io.Writer, root string) error {
	tw := tar.NewWriter(w)
	links := map[devIno]string{}
	err := walkBranch(root, func(rel string, fi fs.FileInfo, kind entryKind) error {
		abs := filepath.Join(root, filepath.FromSlash(rel))
		st := fi.Sys().(*unix.Stat_t)
		hdr := &tar.Header{
			Name:    rel,
			Mode:    int64(st.Mode & 0o7777),
			Uid:     int(st.Uid),
			Gid:     int(st.Gid),
			ModTime: time.Unix(st.Mtim.Unix()),
			Format:  tar.FormatPAX,
		}
		if kind != entryPlain {
			// aufs makes whiteouts hard links to .wh..wh.aufs, which is
			// not in the stream: emit each as the empty file OCI expects.
			hdr.Typeflag = tar.TypeReg
			return tw.WriteHeader(hdr)
		}
		var body *os.File
		switch fi.Mode().Type() {
		case fs.ModeDir:
			hdr.Typeflag, hdr.Name = tar.TypeDir, rel+"/"
		case fs.ModeSymlink:
			target, err := os.Readlink(abs)
			if err != nil {
				return err
			}
			hdr.Typeflag, hdr.Linkname = tar.TypeSymlink, target
		case fs.ModeDevice | fs.ModeCharDevice, fs.ModeDevice:
			hdr.Typeflag = tar.TypeBlock
			if fi.Mode()&fs.ModeCharDevice != 0 {
				hdr.Typeflag = tar.TypeChar
			}
			hdr.Devmajor, hdr.Devminor = int64(unix.Major(st.Rdev)), int64(unix.Minor(st.Rdev))
		case fs.ModeNamedPipe:
			hdr.Typeflag = tar.TypeFifo
		case fs.ModeSocket:
			return nil
		case 0:
			k := devIno{uint64(st.Dev), st.Ino}
			if first, ok := links[k]; ok && st.Nlink > 1 {
				hdr.Typeflag, hdr.Linkname = tar.TypeLink, first
				break
			}
			if st.Nlink > 1 {
				links[k] = rel
			}
			f, err := os.Open(abs)
			if err != nil {
				return err
			}
			defer f.Close()
			hdr.Typeflag, hdr.Size, body = tar.TypeReg, fi.Size(), f
		default:
			return errors.Errorf("%s: unsupported file type %v", rel, fi.Mode().Type())
		}
		if err := addXattrs(hdr, abs); err != nil {
			return err
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if body != nil {
			if _, err := io.CopyN(tw, body, hdr.Size); err != nil {
				return errors.Wrapf(err, "%s: file changed while being read", rel)
			}
		}
		return nil
	})
	if err != nil {
		return errors.Wrapf(err, "tar of %s", root)
	}
	return tw.Close()
}

// paxXattr prefixes extended attributes in PAX records.
const paxXattr = "SCHILY.xattr."

// addXattrs copies abs's extended attributes into hdr, except overlayfs's
// trusted.overlay.* which mean nothing outside an overlay upper directory.
func addXattrs(hdr *tar.Header, abs string) error {
	names, err := listXattrs(abs)
	if err != nil {
		return err
	}
	for _, name := range names {
		if strings.HasPrefix(name, "trusted.overlay.") {
			continue
		}
		val, err := getXattr(abs, name)
		if err != nil {
			return err
		}
		if hdr.PAXRecords == nil {
			hdr.PAXRecords = map[string]string{}
		}
		hdr.PAXRecords[paxXattr+name] = string(val)
	}
	return nil
}

// listXattrs returns the names of abs's extended attributes (not following
// a symbolic link); a filesystem without xattrs has none.
func listXattrs(abs string) ([]string, error) {
	buf := make([]byte, 1024)
	for {
		n, err := unix.Llistxattr(abs, buf)
		switch {
		case errors.Is(err, unix.ERANGE):
			buf = make([]byte, 2*len(buf))
			continue
		case errors.Is(err, unix.ENOTSUP):
			return nil, nil
		case err != nil:
			return nil, errors.Wrapf(err, "list xattrs of %s", abs)
		}
		var names []string
		for _, s := range strings.Split(string(buf[:n]), "\x00") {
			if s != "" {
				names = append(names, s)
			}
		}
		return names, nil
	}
}

// getXattr returns one extended attribute of abs.
func getXattr(abs, name string) ([]byte, error) {
	buf := make([]byte, 256)
	for {
		n, err := unix.Lgetxattr(abs, name, buf)
		if errors.Is(err, unix.ERANGE) {
			buf = make([]byte, 2*len(buf))
			continue
		}
		if err != nil {
			return nil, errors.Wrapf(err, "read xattr %s of %s", name, abs)
		}
		return buf[:n], nil
	}
}
