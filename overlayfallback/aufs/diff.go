package aufs

import (
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/pkg/errors"

	"github.com/thinctl/thinctl/driver"
)

// An aufs layer's diff directory already is its change set: new and
// changed files, ".wh.<name>" whiteouts for deletions and ".wh..wh..opq"
// markers for replaced directories, exactly the OCI layer spelling. So Diff,
// Changes and DiffSize read diff/<id> directly instead of comparing two
// mounted trees; they only have to leave out what aufs keeps for itself
// (.wh..wh.aufs, the .wh..wh.plnk and .wh..wh.orph directories, and the
// .wh..wh.<name>.<n> directories aufs renames removed ones to) together
// with everything inside those.

// native reports whether parent is the parent id was created on, the only
// base diff/<id> records changes against; other bases go through
// driver.NaiveDiff, which mounts both layers.
func (d *Driver) native(op, id, parent string) (bool, error) {
	if !d.Exists(id) {
		return false, errors.Wrapf(driver.ErrNotFound, "aufs: %s %s", op, id)
	}
	own, err := d.parentOf(id)
	return err == nil && parent == own, err
}

// Diff returns a tar stream of layer id's changes against parent: for
// id's own parent, the content of diff/<id> with whiteouts in OCI form and
// aufs's own entries left out; for any other parent, NaiveDiff's.
func (d *Driver) Diff(id, parent string) (io.ReadCloser, error) {
	ok, err := d.native("diff", id, parent)
	if err != nil {
		return nil, err
	}
	if !ok {
		return driver.NaiveDiff(d).Diff(id, parent)
	}
	pr, pw := io.Pipe()
	go func() {
		pw.CloseWithError(writeBranchTar(pw, d.diffPath(id)))
	}()
	return pr, nil
}

// DiffSize returns the bytes of regular file content layer id changes
// against parent (hard links counted once): what ApplyDiff of its Diff
// reports.
func (d *Driver) DiffSize(id, parent string) (int64, error) {
	ok, err := d.native("diff size", id, parent)
	if err != nil {
		return 0, err
	}
	if !ok {
		return driver.NaiveDiff(d).DiffSize(id, parent)
	}
	var size int64
	seen := map[[2]uint64]bool{}
	err = walkBranch(d.diffPath(id), func(rel string, fi fs.FileInfo, kind entryKind) error {
		if kind != entryPlain || !fi.Mode().IsRegular() {
			return nil
		}
		if st, ok := fi.Sys().(*syscall.Stat_t); ok && st.Nlink > 1 {
			k := [2]uint64{uint64(st.Dev), st.Ino}
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

// walkBranch visits every entry below root in lexical order, except aufs's
// reserved entries and whatever is inside them. fn gets the slash separated
// path relative to root, the lstat result and the entry's kind.
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
			return filepath.SkipDir // markers are files; never descend into a stray directory of that name
		}
		return nil
	})
}

// isOpaque reports whether directory dir holds the opaque marker.
func isOpaque(dir string) bool {
	_, err := os.Lstat(filepath.Join(dir, opaqueMarker))
	return err == nil
}

// writeBranchTar writes one branch as an OCI layer stream: content with
// owner, mode, times, xattrs and hard links; each whiteout as the empty
// ".wh." entry OCI expects (aufs makes them hard links to .wh..wh.aufs,
// which is not in the stream); an opaque directory's marker right after
// the directory's own entry; aufs's reserved entries left out.
func writeBranchTar(w io.Writer, root string) error {
	tw := driver.NewTarWriter(w)
	if isOpaque(root) {
		if err := tw.AddOpaque(""); err != nil {
			return err
		}
	}
	err := walkBranch(root, func(rel string, fi fs.FileInfo, kind entryKind) error {
		switch kind {
		case entryOpaque:
			return nil // written with its directory
		case entryWhiteout:
			dir, base := filepath.Split(rel)
			return tw.AddWhiteout(dir + whiteoutTarget(base))
		}
		if fi.Mode()&fs.ModeSocket != 0 {
			return nil // sockets do not belong in layers
		}
		if err := tw.AddPath(root, rel); err != nil {
			return err
		}
		if fi.IsDir() && isOpaque(filepath.Join(root, filepath.FromSlash(rel))) {
			return tw.AddOpaque(rel)
		}
		return nil
	})
	if err != nil {
		return errors.Wrapf(err, "tar of %s", root)
	}
	return tw.Close()
}
