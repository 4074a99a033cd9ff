package aufs

import (
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"github.com/pkg/errors"
	"golang.org/x/sys/unix"

	"github.com/thinctl/thinctl/driver"
)

// Changes lists the paths layer id adds, modifies or deletes relative to
// parent, which must be id's parent, sorted by path. Paths are absolute
// ("/etc/hosts"). An entry of diff/<id> is an addition when the parent's
// view lacks the path and a modification otherwise (directories that hold
// changes are modifications, as aufs copies them up); ".wh.<name>" is a
// deletion of <name>; an opaque directory deletes every entry of the
// parent's view it does not hold again.
func (d *Driver) Changes(id, parent string) ([]driver.Change, error) {
	if err := d.nativeParent("changes", id, parent); err != nil {
		return nil, err
	}
	chain, err := d.ancestors(id)
	if err != nil {
		return nil, err
	}
	lower := make(lowerView, len(chain))
	for i, a := range chain {
		lower[i] = d.diffPath(a)
	}
	changes, err := branchChanges(d.diffPath(id), lower)
	if err != nil {
		return nil, errors.Wrapf(err, "aufs: changes of %s", id)
	}
	return changes, nil
}

// branchChanges computes the changes one branch makes over lower.
func branchChanges(upper string, lower lowerView) ([]driver.Change, error) {
	byPath := map[string]driver.ChangeKind{}
	err := walkBranch(upper, func(rel string, fi fs.FileInfo, kind entryKind) error {
		dir, base := path.Split(rel)
		switch kind {
		case entryWhiteout:
			byPath["/"+dir+whiteoutTarget(base)] = driver.ChangeDelete
		case entryOpaque:
			gone, err := lower.hiddenBy(upper, strings.TrimSuffix(dir, "/"))
			if err != nil {
				return err
			}
			for _, p := range gone {
				byPath["/"+p] = driver.ChangeDelete
			}
		default:
			if _, ok := lower.lookup(rel); ok {
				byPath["/"+rel] = driver.ChangeModify
			} else {
				byPath["/"+rel] = driver.ChangeAdd
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	out := make([]driver.Change, 0, len(byPath))
	for p, k := range byPath {
		out = append(out, driver.Change{Path: p, Kind: k})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out, nil
}

// lowerView is the union of read-only branches, nearest first, as aufs
// would show it: a branch's whiteout hides the name in branches below, a
// non-directory hides whatever lies below its path, and an opaque
// directory hides everything below it in lower branches.
type lowerView []string

// probeResult says what one branch knows about a path.
type probeResult int

const (
	probeAbsent probeResult = iota // the branch says nothing; ask the next one
	probeFound                     // the branch holds the path
	probeHidden                    // the branch hides the path from the ones below
)

// probe looks the slash-separated path rel up in one branch.
func probe(branch, rel string) (fs.FileInfo, probeResult) {
	parts := strings.Split(rel, "/")
	dir := branch
	_, err := os.Lstat(filepath.Join(branch, OpaqueMarker))
	opaque := err == nil
	for i, part := range parts {
		p := filepath.Join(dir, part)
		fi, err := os.Lstat(p)
		if err == nil {
			if i == len(parts)-1 {
				return fi, probeFound
			}
			if !fi.IsDir() {
				return nil, probeHidden
			}
			dir = p
			if _, err := os.Lstat(filepath.Join(dir, OpaqueMarker)); err == nil {
				opaque = true
			}
			continue
		}
		if _, err := os.Lstat(filepath.Join(dir, whiteoutName(part))); err == nil || opaque {
			return nil, probeHidden
		}
		return nil, probeAbsent
	}
	return nil, probeAbsent
}

// lookup reports whether rel is visible in the view, and its lstat.
func (v lowerView) lookup(rel string) (fs.FileInfo, bool) {
	for _, br := range v {
		switch fi, res := probe(br, rel); res {
		case probeFound:
			return fi, true
		case probeHidden:
			return nil, false
		}
	}
	return nil, false
}

// hiddenBy lists the entries of directory dir visible in the view that
// the opaque copy of dir in upper does not hold itself: those the opaque
// marker deletes. dir is slash separated, "" for the root.
func (v lowerView) hiddenBy(upper, dir string) ([]string, error) {
	names := map[string]bool{}
	for _, br := range v {
		ents, err := os.ReadDir(filepath.Join(br, filepath.FromSlash(dir)))
		if err != nil && !os.IsNotExist(err) && !errors.Is(err, unix.ENOTDIR) {
			return nil, err
		}
		for _, e := range ents {
			if classify(e.Name()) == entryPlain {
				names[e.Name()] = true
			}
		}
	}
	var out []string
	for name := range names {
		rel := path.Join(dir, name)
		if _, err := os.Lstat(filepath.Join(upper, filepath.FromSlash(rel))); err == nil {
			continue // held again by the opaque directory: a modification
		}
		if _, ok := v.lookup(rel); ok {
			out = append(out, rel)
		}
	}
	sort.Strings(out)
	return out, nil
}
