package driver

import (
	"bytes"
	"os"
	"path"
	"path/filepath"
	"sort"

	"github.com/pkg/errors"
	"golang.org/x/sys/unix"
)

// String returns "M", "A" or "D", like `docker diff`.
func (k ChangeKind) String() string {
	switch k {
	case ChangeModify:
		return "M"
	case ChangeAdd:
		return "A"
	case ChangeDelete:
		return "D"
	}
	return "?"
}

// String formats a change as "A /path".
func (c Change) String() string { return c.Kind.String() + " " + c.Path }

// SortChanges orders changes by path, the order Changes returns them in.
func SortChanges(cs []Change) {
	sort.Slice(cs, func(i, j int) bool { return cs[i].Path < cs[j].Path })
}

// ChangesDirs compares the complete trees newDir and oldDir (oldDir ""
// means an empty tree) and returns the paths added, deleted or modified in
// newDir, sorted, each starting with "/". A deleted directory is listed
// alone, an added one with everything below it; a directory counts as
// modified when its own metadata changed or anything below it did (its
// mtime and size alone do not count). Files count as modified when type,
// mode, owner, size, mtime, device number, symlink target or xattrs differ.
//
// Both roots must be real directories (CheckLayerRoot), and no directory
// is listed through a symlink: one planted by another program while the
// walk runs makes it fail with ErrUnsafeEntry instead of reading outside.
func ChangesDirs(newDir, oldDir string) ([]Change, error) {
	if err := CheckLayerRoot(newDir); err != nil {
		return nil, err
	}
	if oldDir != "" {
		if err := CheckLayerRoot(oldDir); err != nil {
			return nil, err
		}
	}
	var out []Change
	if _, err := compareDir(newDir, oldDir, ".", &out); err != nil {
		return nil, err
	}
	SortChanges(out)
	return out, nil
}

type entryStat struct {
	st   unix.Stat_t
	link string
}

func lstatEntry(p string) (*entryStat, error) {
	var e entryStat
	if err := unix.Lstat(p, &e.st); err != nil {
		if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR) {
			return nil, nil
		}
		return nil, errors.Wrapf(err, "stat %s", p)
	}
	if e.st.Mode&unix.S_IFMT == unix.S_IFLNK {
		l, err := os.Readlink(p)
		if err != nil {
			return nil, errors.Wrapf(err, "read symlink %s", p)
		}
		e.link = l
	}
	return &e, nil
}

func (e *entryStat) isDir() bool { return e.st.Mode&unix.S_IFMT == unix.S_IFDIR }

// readNames lists directory rel of the tree at root ("" for none: no
// names), opened without following a symlink anywhere below root.
func readNames(root, rel string) ([]string, error) {
	if root == "" {
		return nil, nil
	}
	f, err := OpenInRoot(root, rel, unix.O_DIRECTORY)
	if err != nil {
		if os.IsNotExist(err) {
			return nil, nil
		}
		return nil, errors.Wrapf(err, "open %s", join(root, rel))
	}
	defer f.Close()
	names, err := f.Readdirnames(-1)
	return names, errors.Wrapf(err, "list %s", f.Name())
}

func join(root, rel string) string {
	if root == "" {
		return ""
	}
	return filepath.Join(root, filepath.FromSlash(rel))
}

// compareDir compares directory rel in both trees and appends changes
// below it; it reports whether any were found.
func compareDir(newRoot, oldRoot, rel string, out *[]Change) (bool, error) {
	newNames, err := readNames(newRoot, rel)
	if err != nil {
		return false, err
	}
	oldNames, err := readNames(oldRoot, rel)
	if err != nil {
		return false, err
	}
	inNew := map[string]bool{}
	for _, n := range newNames {
		inNew[n] = true
	}
	changed := false
	for _, n := range oldNames {
		if !inNew[n] {
			*out = append(*out, Change{Path: "/" + path.Join(rel, n), Kind: ChangeDelete})
			changed = true
		}
	}
	for _, n := range newNames {
		child := path.Join(rel, n)
		ne, err := lstatEntry(join(newRoot, child))
		if err != nil {
			return false, err
		}
		if ne == nil {
			continue // vanished while we looked
		}
		var oe *entryStat
		if oldRoot != "" {
			if oe, err = lstatEntry(join(oldRoot, child)); err != nil {
				return false, err
			}
		}
		at := len(*out)
		switch {
		case oe == nil:
			*out = append(*out, Change{Path: "/" + child, Kind: ChangeAdd})
			if ne.isDir() {
				if _, err := compareDir(newRoot, "", child, out); err != nil {
					return false, err
				}
			}
		case ne.isDir() && oe.isDir():
			sub, err := compareDir(newRoot, oldRoot, child, out)
			if err != nil {
				return false, err
			}
			differs, err := entriesDiffer(join(newRoot, child), join(oldRoot, child), ne, oe)
			if err != nil {
				return false, err
			}
			if sub || differs {
				*out = append(*out, Change{Path: "/" + child, Kind: ChangeModify})
			}
		default:
			differs, err := entriesDiffer(join(newRoot, child), join(oldRoot, child), ne, oe)
			if err != nil {
				return false, err
			}
			if differs {
				*out = append(*out, Change{Path: "/" + child, Kind: ChangeModify})
				if ne.isDir() {
					if _, err := compareDir(newRoot, "", child, out); err != nil {
						return false, err
					}
				}
			}
		}
		if len(*out) > at {
			changed = true
		}
	}
	return changed, nil
}

func entriesDiffer(newPath, oldPath string, n, o *entryStat) (bool, error) {
	a, b := &n.st, &o.st
	if a.Mode != b.Mode || a.Uid != b.Uid || a.Gid != b.Gid || a.Rdev != b.Rdev || n.link != o.link {
		return true, nil
	}
	if !n.isDir() && (a.Size != b.Size || a.Mtim != b.Mtim) {
		return true, nil
	}
	nx, err := ReadXattrs(newPath)
	if err != nil {
		return false, err
	}
	ox, err := ReadXattrs(oldPath)
	if err != nil {
		return false, err
	}
	if len(nx) != len(ox) {
		return true, nil
	}
	for k, v := range nx {
		if w, ok := ox[k]; !ok || !bytes.Equal([]byte(v), []byte(w)) {
			return true, nil
		}
	}
	return false, nil
}
