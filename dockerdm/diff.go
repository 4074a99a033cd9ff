package dockerdm

import (
	"io"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"github.com/pkg/errors"

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
		old, err := os.ReadDir(filepath.Join(oldRoot, dir))
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

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
