package dockerdm

import (
	"io"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"github.com/pkg/errors"
	"golang.org/x/sys/unix"

	"github.com/thinctl/thinctl/driver"
)

// diffItem is one entry of a re-created layer tar.
type diffItem struct {
	rel  string // slash-separated, no leading slash
	kind int    // itemPath, itemWhiteout or itemOpaque
}

const (
	itemPath = iota
	itemWhiteout
	itemOpaque
)

// key orders the items as the tar holds them: by path, an opaque marker
// right after its directory and before what the layer puts in it.
func (d diffItem) key() string {
	if d.kind == itemOpaque {
		return d.rel + "/"
	}
	return d.rel
}

// WriteDiff writes the layer tar that turns the tree oldRoot into newRoot
// ("" for an empty tree): added and changed paths as entries (with their
// owners, modes, times, xattrs and hard links), a deleted path as a
// ".wh.<name>" whiteout, and a directory whose old entries are all gone as
// an opaque directory (".wh..wh..opq") instead of one whiteout per entry.
// It returns the bytes written.
func WriteDiff(w io.Writer, newRoot, oldRoot string) (int64, error) {
	changes, err := driver.ChangesDirs(newRoot, oldRoot)
	if err != nil {
		return 0, errors.Wrap(err, "compare the layer with its parent")
	}
	if changes, err = addRewritten(changes, newRoot, oldRoot); err != nil {
		return 0, err
	}
	deletedIn := map[string][]string{} // parent dir -> deleted paths
	for _, c := range changes {
		if c.Kind == driver.ChangeDelete {
			rel := strings.TrimPrefix(c.Path, "/")
			dir := path.Dir(rel)
			deletedIn[dir] = append(deletedIn[dir], rel)
		}
	}
	opaque := map[string]bool{}
	for dir, dels := range deletedIn {
		// Opaque only when the directory is still there, was a directory
		// before, and lost every entry it had.
		if dir != "." {
			if st, err := os.Lstat(filepath.Join(newRoot, dir)); err != nil || !st.IsDir() {
				continue
			}
		}
		old, err := readDirBeneath(oldRoot, dir)
		if err == nil && len(old) == len(dels) {
			opaque[dir] = true
		}
	}
	var items []diffItem
	for _, c := range changes {
		rel := strings.TrimPrefix(c.Path, "/")
		switch {
		case c.Kind != driver.ChangeDelete:
			items = append(items, diffItem{rel, itemPath})
		case !opaque[path.Dir(rel)]:
			items = append(items, diffItem{rel, itemWhiteout})
		}
	}
	for dir := range opaque {
		if dir == "." {
			dir = ""
		}
		items = append(items, diffItem{dir, itemOpaque})
	}
	sort.Slice(items, func(i, j int) bool { return items[i].key() < items[j].key() })
	cw := &countingWriter{w: w}
	tw := driver.NewTarWriter(cw)
	for _, it := range items {
		var err error
		switch it.kind {
		case itemPath:
			err = tw.AddPath(newRoot, it.rel)
		case itemWhiteout:
			err = tw.AddWhiteout(it.rel)
		default:
			err = tw.AddOpaque(it.rel)
		}
		if err != nil {
			return cw.n, err
		}
	}
	err = tw.Close()
	return cw.n, err
}

// addRewritten adds to changes the files of newRoot that a snapshot's
// writer replaced or rewrote although type, mode, owner, size and mtime
// are the parent's (a layer tar sets mtimes, and an edit can keep the
// size): newRoot is a thin snapshot of oldRoot, so a file nobody touched
// keeps its inode number and ctime, which no write can set back. Their
// directories are added as modified, as ChangesDirs lists them.
func addRewritten(changes []driver.Change, newRoot, oldRoot string) ([]driver.Change, error) {
	if oldRoot == "" {
		return changes, nil
	}
	listed := map[string]bool{}
	for _, c := range changes {
		listed[c.Path] = true
	}
	added := false
	err := filepath.WalkDir(newRoot, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(newRoot, p)
		key := "/" + filepath.ToSlash(rel)
		if d.IsDir() {
			if listed[key] && rel != "." {
				if _, err := os.Lstat(filepath.Join(oldRoot, rel)); err != nil {
					return filepath.SkipDir // added: everything below is listed
				}
			}
			return nil
		}
		if listed[key] {
			return nil
		}
		var ns, old unix.Stat_t
		if err := unix.Lstat(p, &ns); err != nil {
			return errors.Wrapf(err, "stat %s", p)
		}
		if err := unix.Lstat(filepath.Join(oldRoot, rel), &old); err != nil {
			return nil // not in the parent: ChangesDirs listed it or it came meanwhile
		}
		if ns.Ino == old.Ino && ns.Ctim == old.Ctim {
			return nil
		}
		changes = append(changes, driver.Change{Path: key, Kind: driver.ChangeModify})
		listed[key], added = true, true
		for dir := path.Dir(key); dir != "/" && !listed[dir]; dir = path.Dir(dir) {
			changes = append(changes, driver.Change{Path: dir, Kind: driver.ChangeModify})
			listed[dir] = true
		}
		return nil
	})
	if err != nil {
		return nil, errors.Wrap(err, "compare the layer with its parent")
	}
	if added {
		driver.SortChanges(changes)
	}
	return changes, nil
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// readDirBeneath lists directory rel of the tree at root without
// following a symlink on the way (driver.OpenInRoot).
func readDirBeneath(root, rel string) ([]string, error) {
	d, err := driver.OpenInRoot(root, rel, unix.O_DIRECTORY)
	if err != nil {
		return nil, err
	}
	defer d.Close()
	return d.Readdirnames(-1)
}
