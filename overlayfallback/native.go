package overlayfallback

import (
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"syscall"

	"github.com/pkg/errors"
	"golang.org/x/sys/unix"

	"github.com/thinctl/thinctl/driver"
)

// entry is one item found while walking a layer directory.
type entry struct {
	rel    string // slash-separated path relative to the layer directory
	kind   driver.WhiteoutKind
	target string // for whiteouts: the slash-separated path deleted
	fi     fs.FileInfo
}

// walkLayer visits every entry of layer directory dir in lexical order
// (parents before children), classified by f. The root itself is skipped,
// and so is everything inside a directory that is not content: a reserved
// directory (aufs's .wh..wh.plnk, .wh..wh.orph, .wh..wh.<name>.<n>) is
// visited as WhiteoutMeta, a directory named like a whiteout as that
// whiteout, but their entries never are.
//
// dir must be a real directory (driver.CheckLayerRoot): WalkDir would
// visit a symlinked root as one entry and a reader would then open it.
func walkLayer(dir string, f Format, visit func(e entry) error) error {
	if err := driver.CheckLayerRoot(dir); err != nil {
		return err
	}
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return errors.Wrapf(err, "walk %s", p)
		}
		if p == dir {
			return nil
		}
		r, err := filepath.Rel(dir, p)
		if err != nil {
			return errors.Wrapf(err, "walk %s", p)
		}
		rel := filepath.ToSlash(r)
		fi, err := d.Info()
		if err != nil {
			return errors.Wrapf(err, "stat %s", p)
		}
		kind, hidden := f.Classify(d.Name(), fi)
		e := entry{rel: rel, kind: kind, fi: fi}
		if kind == driver.Whiteout {
			e.target = path.Join(path.Dir(rel), hidden)
		}
		if err := visit(e); err != nil || kind == driver.NotWhiteout || !d.IsDir() {
			return err
		}
		return filepath.SkipDir
	})
}

// WriteDiff writes layer directory upper as an OCI layer stream: content
// as is (sockets left out), native whiteouts as ".wh.<name>" entries, and
// an opaque marker first when upper itself is opaque and right after each
// opaque directory's own entry.
func WriteDiff(w io.Writer, upper string, f Format) error {
	if err := driver.CheckLayerRoot(upper); err != nil {
		return err
	}
	tw := driver.NewTarWriter(w)
	if opaque, err := f.IsOpaque(upper); err != nil {
		return err
	} else if opaque {
		if err := tw.AddOpaque("."); err != nil {
			return err
		}
	}
	err := walkLayer(upper, f, func(e entry) error {
		switch e.kind {
		case driver.WhiteoutMeta, driver.OpaqueMarker:
			return nil // opaque markers are written with their directory
		case driver.Whiteout:
			return tw.AddWhiteout(e.target)
		}
		if err := tw.AddPath(upper, e.rel); err != nil {
			return err
		}
		if !e.fi.IsDir() {
			return nil
		}
		opaque, err := f.IsOpaque(filepath.Join(upper, filepath.FromSlash(e.rel)))
		if err != nil || !opaque {
			return err
		}
		return tw.AddOpaque(e.rel)
	})
	if err != nil {
		return err
	}
	return tw.Close()
}

// DiffTar streams WriteDiff(upper, f) through a pipe; done, when not nil,
// runs once the stream is finished or abandoned (to release a mount or lock).
func DiffTar(upper string, f Format, done func()) io.ReadCloser {
	pr, pw := io.Pipe()
	go func() {
		if done != nil {
			defer done()
		}
		pw.CloseWithError(WriteDiff(pw, upper, f))
	}()
	return pr
}

// ApplyDiff unpacks the OCI layer stream r into layer directory upper,
// writing whiteouts in f's native form, and returns the content bytes written.
func ApplyDiff(upper string, r io.Reader, f Format) (int64, error) {
	return driver.ApplyTar(upper, r, f)
}

// DiffSize sums the sizes of the regular files in layer directory upper
// that are content (not whiteouts or markers), a hard-linked inode once.
func DiffSize(upper string, f Format) (int64, error) {
	var size int64
	seen := map[[2]uint64]bool{}
	err := walkLayer(upper, f, func(e entry) error {
		if e.kind != driver.NotWhiteout || !e.fi.Mode().IsRegular() {
			return nil
		}
		if st, ok := e.fi.Sys().(*syscall.Stat_t); ok && st.Nlink > 1 {
			key := [2]uint64{uint64(st.Dev), st.Ino}
			if seen[key] {
				return nil
			}
			seen[key] = true
		}
		size += e.fi.Size()
		return nil
	})
	return size, err
}

// Changes lists what layer directory upper changes relative to the stack
// lowers (layer directories, nearest parent first), sorted by path: a path
// in upper is added when the stack does not show it and modified when it
// does; a whiteout is a deletion; an opaque directory (upper itself
// included) also deletes every name the stack shows in it that upper does
// not hold.
func Changes(upper string, lowers []string, f Format) ([]driver.Change, error) {
	for _, dir := range append([]string{upper}, lowers...) {
		if err := driver.CheckLayerRoot(dir); err != nil {
			return nil, err
		}
	}
	st := &stack{lowers: lowers, f: f, names: map[string]map[string]bool{}}
	var out []driver.Change
	// hidden adds a deletion for each name the stack shows in directory
	// rel that upper does not hold, when upper's rel is opaque.
	hidden := func(rel string) error {
		abs := filepath.Join(upper, filepath.FromSlash(rel))
		opaque, err := f.IsOpaque(abs)
		if err != nil || !opaque {
			return err
		}
		below, err := st.list(rel)
		if err != nil {
			return err
		}
		for _, n := range below {
			if _, err := os.Lstat(filepath.Join(abs, n)); os.IsNotExist(err) {
				out = append(out, driver.Change{Path: "/" + path.Join(rel, n), Kind: driver.ChangeDelete})
			}
		}
		return nil
	}
	if err := hidden("."); err != nil {
		return nil, err
	}
	err := walkLayer(upper, f, func(e entry) error {
		switch e.kind {
		case driver.WhiteoutMeta, driver.OpaqueMarker:
			return nil
		case driver.Whiteout:
			out = append(out, driver.Change{Path: "/" + e.target, Kind: driver.ChangeDelete})
			return nil
		}
		shown, err := st.has(e.rel)
		if err != nil {
			return err
		}
		kind := driver.ChangeAdd
		if shown {
			kind = driver.ChangeModify
		}
		out = append(out, driver.Change{Path: "/" + e.rel, Kind: kind})
		if !e.fi.IsDir() || !shown {
			return nil
		}
		return hidden(e.rel)
	})
	if err != nil {
		return nil, err
	}
	driver.SortChanges(out)
	return out, nil
}

// stack answers what a stack of layer directories shows, the way the union
// filesystem would: upper layers' whiteouts hide lower entries, an opaque
// directory hides the same directory in every layer below, and a
// non-directory hides whatever lower layers hold beneath its path.
type stack struct {
	lowers []string
	f      Format
	names  map[string]map[string]bool // directory rel → names shown
}

// has reports whether the stack shows rel.
func (s *stack) has(rel string) (bool, error) {
	names, err := s.shown(path.Dir(rel))
	return names[path.Base(rel)], err
}

// list returns the names the stack shows in directory rel, sorted.
func (s *stack) list(rel string) ([]string, error) {
	names, err := s.shown(rel)
	out := make([]string, 0, len(names))
	for n := range names {
		out = append(out, n)
	}
	sort.Strings(out)
	return out, err
}

func (s *stack) shown(dir string) (map[string]bool, error) {
	if m, ok := s.names[dir]; ok {
		return m, nil
	}
	shown, hidden := map[string]bool{}, map[string]bool{}
	for _, layer := range s.lowers {
		contributes, stop, err := s.reaches(layer, dir)
		if err != nil {
			return nil, err
		}
		if contributes {
			abs := filepath.Join(layer, filepath.FromSlash(dir))
			ents, err := readDirInLayer(layer, dir)
			if err != nil {
				return nil, errors.Wrapf(err, "list %s", abs)
			}
			for _, de := range ents {
				fi, err := de.Info()
				if err != nil {
					if os.IsNotExist(err) {
						continue
					}
					return nil, errors.Wrapf(err, "stat %s", filepath.Join(abs, de.Name()))
				}
				kind, h := s.f.Classify(de.Name(), fi)
				switch kind {
				case driver.Whiteout:
					hidden[h] = true
				case driver.NotWhiteout:
					if !hidden[de.Name()] {
						shown[de.Name()] = true
					}
				}
			}
		}
		if stop {
			break
		}
	}
	s.names[dir] = shown
	return shown, nil
}

// reaches walks dir and its ancestors in one layer and reports whether the
// layer holds directory dir, and whether the layers below it are hidden
// there (by a whiteout or a non-directory on the way, or an opaque
// directory). Layers are asked nearest first, so a hit stops the search.
func (s *stack) reaches(layer, dir string) (contributes, stop bool, err error) {
	if dir == "." {
		opaque, err := s.f.IsOpaque(layer)
		return true, opaque, err
	}
	cur := "."
	parts := splitPath(dir)
	for i, part := range parts {
		next := path.Join(cur, part)
		if wo, err := s.isWhiteout(layer, next); err != nil || wo {
			return false, true, err
		}
		fi, err := os.Lstat(filepath.Join(layer, filepath.FromSlash(next)))
		if os.IsNotExist(err) {
			return false, stop, nil
		}
		if err != nil {
			return false, false, errors.Wrapf(err, "stat %s in %s", next, layer)
		}
		if !fi.IsDir() {
			return false, true, nil
		}
		opaque, err := s.f.IsOpaque(filepath.Join(layer, filepath.FromSlash(next)))
		if err != nil {
			return false, false, err
		}
		if opaque {
			stop = true
		}
		if i == len(parts)-1 {
			return true, stop, nil
		}
		cur = next
	}
	return true, stop, nil
}

func (s *stack) isWhiteout(layer, rel string) (bool, error) {
	p := filepath.Join(layer, filepath.FromSlash(s.f.WhiteoutPath(rel)))
	fi, err := os.Lstat(p)
	if os.IsNotExist(err) {
		return false, nil
	}
	if err != nil {
		return false, errors.Wrapf(err, "stat %s", p)
	}
	kind, _ := s.f.Classify(filepath.Base(p), fi)
	return kind == driver.Whiteout, nil
}

func splitPath(rel string) []string {
	var parts []string
	for rel != "." && rel != "/" && rel != "" {
		parts = append([]string{path.Base(rel)}, parts...)
		rel = path.Dir(rel)
	}
	return parts
}

// readDirInLayer lists directory rel of layer directory layer, opened
// without following a symlink on the way (driver.OpenInRoot).
func readDirInLayer(layer, rel string) ([]fs.DirEntry, error) {
	d, err := driver.OpenInRoot(layer, rel, unix.O_DIRECTORY)
	if err != nil {
		return nil, err
	}
	defer d.Close()
	ents, err := d.ReadDir(-1)
	sort.Slice(ents, func(i, j int) bool { return ents[i].Name() < ents[j].Name() })
	return ents, err
}
