package driver

import (
	"archive/tar"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/pkg/errors"
	"golang.org/x/sys/unix"
)

// xattrPAXPrefix is how PAX tar headers carry extended attributes.
const xattrPAXPrefix = "SCHILY.xattr."

// SkipXattr reports whether extended attribute name is private to a union
// filesystem (overlay's trusted.overlay.* and user.overlay.*) and so never
// copied into or out of a layer stream.
func SkipXattr(name string) bool {
	return strings.HasPrefix(name, "trusted.overlay.") || strings.HasPrefix(name, "user.overlay.")
}

// TarWriter writes file-tree entries into a layer tar stream: PAX headers
// carrying mode (with setuid, setgid and sticky bits), uid/gid, nanosecond
// mtime, xattrs, device numbers, symlink targets and hard links (a second
// path to an already written inode becomes a link entry).
type TarWriter struct {
	tw    *tar.Writer
	links map[[2]uint64]string // (dev, inode) → first name written
}

// NewTarWriter starts a layer stream on w.
func NewTarWriter(w io.Writer) *TarWriter {
	return &TarWriter{tw: tar.NewWriter(w), links: map[[2]uint64]string{}}
}

// AddPath writes the entry for rel (slash-separated, relative to root),
// reading its metadata and content from disk. A socket is left out: a
// layer stream cannot hold one, and it means nothing once its server is gone.
// Content is read only from the regular file the header describes, opened
// without following a symlink anywhere below root and without blocking:
// a FIFO or device is never read from, and an entry another program swaps
// for a symlink, FIFO or other file meanwhile fails with ErrUnsafeEntry.
func (t *TarWriter) AddPath(root, rel string) error {
	rel = strings.Trim(filepath.ToSlash(rel), "/")
	p := filepath.Join(root, filepath.FromSlash(rel))
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		return errors.Wrapf(err, "stat %s", p)
	}
	if st.Mode&unix.S_IFMT == unix.S_IFSOCK {
		return nil
	}
	hdr, err := FileHeader(p, rel)
	if err != nil {
		return err
	}
	if hdr.Typeflag == tar.TypeReg && st.Nlink > 1 {
		key := [2]uint64{st.Dev, st.Ino}
		if first, ok := t.links[key]; ok {
			hdr.Typeflag = tar.TypeLink
			hdr.Linkname = first
			hdr.Size = 0
		} else {
			t.links[key] = hdr.Name
		}
	}
	if err := t.tw.WriteHeader(hdr); err != nil {
		return errors.Wrapf(err, "write tar header for %s", rel)
	}
	if hdr.Typeflag != tar.TypeReg || hdr.Size == 0 {
		return nil
	}
	f, err := OpenRegularInRoot(root, rel, &st)
	if err != nil {
		return errors.Wrapf(err, "open %s", p)
	}
	defer f.Close()
	n, err := io.Copy(t.tw, io.LimitReader(f, hdr.Size))
	if err != nil {
		return errors.Wrapf(err, "copy %s into the layer stream", p)
	}
	if n != hdr.Size {
		return errors.Errorf("%s shrank from %d to %d bytes while being archived", p, hdr.Size, n)
	}
	return nil
}

// AddWhiteout writes the OCI whiteout entry that deletes rel.
func (t *TarWriter) AddWhiteout(rel string) error {
	return t.addMarker(WhiteoutName(rel))
}

// AddOpaque writes the OCI opaque marker for directory rel ("" or "." for the root).
func (t *TarWriter) AddOpaque(rel string) error {
	rel = strings.Trim(filepath.ToSlash(rel), "/")
	if rel == "" || rel == "." {
		return t.addMarker(OpaqueWhiteout)
	}
	return t.addMarker(rel + "/" + OpaqueWhiteout)
}

func (t *TarWriter) addMarker(name string) error {
	hdr := &tar.Header{
		Typeflag: tar.TypeReg,
		Name:     name,
		Mode:     0o644,
		ModTime:  time.Unix(0, 0),
		Format:   tar.FormatPAX,
	}
	return errors.Wrapf(t.tw.WriteHeader(hdr), "write tar header for %s", name)
}

// Close finishes the stream (it does not close the underlying writer).
func (t *TarWriter) Close() error {
	return errors.Wrap(t.tw.Close(), "finish layer stream")
}

// FileHeader builds the tar header for the file at p, to be stored as name.
// Directories get a trailing slash; uid/gid come from the inode; owner
// names are left empty so unpacking never consults a user database.
func FileHeader(p, name string) (*tar.Header, error) {
	fi, err := os.Lstat(p)
	if err != nil {
		return nil, errors.Wrapf(err, "stat %s", p)
	}
	link := ""
	if fi.Mode()&os.ModeSymlink != 0 {
		if link, err = os.Readlink(p); err != nil {
			return nil, errors.Wrapf(err, "read symlink %s", p)
		}
	}
	hdr, err := tar.FileInfoHeader(fi, link)
	if err != nil {
		return nil, errors.Wrapf(err, "tar header for %s", p)
	}
	hdr.Name = name
	if fi.IsDir() && !strings.HasSuffix(name, "/") {
		hdr.Name += "/"
	}
	hdr.Format = tar.FormatPAX
	hdr.Uname, hdr.Gname = "", ""
	hdr.AccessTime, hdr.ChangeTime = time.Time{}, time.Time{}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		hdr.Uid, hdr.Gid = int(st.Uid), int(st.Gid)
		if hdr.Typeflag == tar.TypeChar || hdr.Typeflag == tar.TypeBlock {
			hdr.Devmajor = int64(unix.Major(st.Rdev))
			hdr.Devminor = int64(unix.Minor(st.Rdev))
		}
	}
	xattrs, err := ReadXattrs(p)
	if err != nil {
		return nil, err
	}
	if len(xattrs) > 0 {
		hdr.PAXRecords = map[string]string{}
		for k, v := range xattrs {
			hdr.PAXRecords[xattrPAXPrefix+k] = v
		}
	}
	return hdr, nil
}

// ReadXattrs returns the extended attributes of p (not following a final
// symlink), leaving out union-filesystem private ones (see SkipXattr). A
// filesystem without xattr support yields none.
func ReadXattrs(p string) (map[string]string, error) {
	names, err := listXattrs(p)
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, n := range names {
		if SkipXattr(n) {
			continue
		}
		v, err := getXattr(p, n)
		if err != nil {
			if errors.Is(err, unix.ENODATA) {
				continue
			}
			return nil, errors.Wrapf(err, "read xattr %s of %s", n, p)
		}
		out[n] = string(v)
	}
	return out, nil
}

func listXattrs(p string) ([]string, error) {
	buf := make([]byte, 1024)
	for {
		n, err := unix.Llistxattr(p, buf)
		switch {
		case errors.Is(err, unix.ERANGE):
			buf = make([]byte, len(buf)*4)
			continue
		case errors.Is(err, unix.ENOTSUP):
			return nil, nil
		case err != nil:
			return nil, errors.Wrapf(err, "list xattrs of %s", p)
		}
		var names []string
		for _, s := range strings.Split(string(buf[:n]), "\x00") {
			if s != "" {
				names = append(names, s)
			}
		}
		sort.Strings(names)
		return names, nil
	}
}

func getXattr(p, name string) ([]byte, error) {
	buf := make([]byte, 256)
	for {
		n, err := unix.Lgetxattr(p, name, buf)
		if errors.Is(err, unix.ERANGE) {
			buf = make([]byte, len(buf)*8)
			continue
		}
		if err != nil {
			return nil, err
		}
		return buf[:n], nil
	}
}
