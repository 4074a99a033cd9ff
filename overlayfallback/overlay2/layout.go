package overlay2

import (
	"crypto/rand"
	"encoding/base32"
	"os"
	"path/filepath"
	"strings"

	"github.com/pkg/errors"

	"github.com/thinctl/thinctl/internal/atomicfile"
)

// On-disk layout, as Docker's overlay2 keeps it:
//
//	<home>/l/<link>           symlink to ../<id>/diff
//	<home>/<id>/diff/         the layer's own files (overlay upperdir)
//	<home>/<id>/link          the layer's 26-character link name
//	<home>/<id>/lower         "l/<parent link>:l/<grandparent link>:..." (layers with a parent)
//	<home>/<id>/work/         overlay workdir (layers with a parent)
//	<home>/<id>/merged/       mount point while mounted
//	<home>/<id>/committed     present for read-only layers (Create, not CreateReadWrite)
const (
	linkDir       = "l"
	diffDirName   = "diff"
	linkFileName  = "link"
	lowerFileName = "lower"
	workDirName   = "work"
	mergedDirName = "merged"
	committedName = "committed"
	// linkLen is the length of a short link name: 16 random bytes in
	// unpadded base32.
	linkLen = 26
)

// newLinkName returns a fresh random link name: 26 characters of A-Z and 2-7.
func newLinkName() (string, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", errors.Wrap(err, "generate a layer link name")
	}
	return base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b), nil
}

// validLinkName reports whether s looks like a link name newLinkName makes.
func validLinkName(s string) bool {
	if len(s) != linkLen {
		return false
	}
	for _, c := range s {
		if !(c >= 'A' && c <= 'Z' || c >= '2' && c <= '7') {
			return false
		}
	}
	return true
}

// ParseLower parses the contents of a layer's lower file into its link
// names, nearest parent first ("l/ABC:l/DEF" → ["ABC", "DEF"]). Anything
// but a colon-separated list of "l/<link>" entries is an error; a trailing
// newline is tolerated.
func ParseLower(s string) ([]string, error) {
	s = strings.TrimSuffix(s, "\n")
	if s == "" {
		return nil, errors.New("lower file is empty")
	}
	parts := strings.Split(s, ":")
	out := make([]string, 0, len(parts))
	for i, p := range parts {
		name, ok := strings.CutPrefix(p, linkDir+"/")
		if !ok || !validLinkName(name) {
			return nil, errors.Errorf("lower file entry %d is %q, want l/ followed by a %d-character link name", i+1, p, linkLen)
		}
		out = append(out, name)
	}
	return out, nil
}

// FormatLower builds the lower file for a layer whose parent has link name
// parentLink and lower chain parentLower (nil for a parentless parent).
func FormatLower(parentLink string, parentLower []string) string {
	parts := make([]string, 0, len(parentLower)+1)
	parts = append(parts, linkDir+"/"+parentLink)
	for _, l := range parentLower {
		parts = append(parts, linkDir+"/"+l)
	}
	return strings.Join(parts, ":")
}

// validID refuses layer ids that would escape or collide with the layout.
func validID(id string) error {
	if id == "" || id == "." || id == ".." || id == linkDir || strings.ContainsAny(id, "/\x00:,") ||
		strings.HasPrefix(id, ".") || id == backingDevName {
		return errors.Errorf("invalid layer id %q: use a non-empty name without '/', ':' or ',' that does not start with '.'", id)
	}
	return nil
}

func (d *Driver) dir(id string) string       { return filepath.Join(d.home, id) }
func (d *Driver) diffDir(id string) string   { return filepath.Join(d.home, id, diffDirName) }
func (d *Driver) workDir(id string) string   { return filepath.Join(d.home, id, workDirName) }
func (d *Driver) mergedDir(id string) string { return filepath.Join(d.home, id, mergedDirName) }

// readLink returns id's link name.
func (d *Driver) readLink(id string) (string, error) {
	b, err := os.ReadFile(filepath.Join(d.dir(id), linkFileName))
	if err != nil {
		return "", errors.Wrapf(err, "read link name of layer %s", id)
	}
	s := strings.TrimSpace(string(b))
	if !validLinkName(s) {
		return "", errors.Errorf("layer %s has a malformed link file (%q)", id, s)
	}
	return s, nil
}

// readLower returns id's lower chain (nil for a layer without a parent).
func (d *Driver) readLower(id string) ([]string, error) {
	b, err := os.ReadFile(filepath.Join(d.dir(id), lowerFileName))
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, errors.Wrapf(err, "read lower file of layer %s", id)
	}
	l, err := ParseLower(string(b))
	return l, errors.Wrapf(err, "layer %s", id)
}

// layerIDs lists the layer directories in home.
func (d *Driver) layerIDs() ([]string, error) {
	ents, err := os.ReadDir(d.home)
	if err != nil {
		return nil, errors.Wrapf(err, "list %s", d.home)
	}
	var ids []string
	for _, e := range ents {
		if !e.IsDir() || validID(e.Name()) != nil {
			continue
		}
		if _, err := os.Stat(d.diffDir(e.Name())); err == nil {
			ids = append(ids, e.Name())
		}
	}
	return ids, nil
}

// repairLinks recreates missing or wrong l/<link> symlinks from each
// layer's link file, and gives a layer that lost its link file a new name
// when no other layer refers to it.
func (d *Driver) repairLinks() error {
	if err := os.MkdirAll(filepath.Join(d.home, linkDir), 0o700); err != nil {
		return errors.Wrapf(err, "create %s", filepath.Join(d.home, linkDir))
	}
	ids, err := d.layerIDs()
	if err != nil {
		return err
	}
	for _, id := range ids {
		link, err := d.readLink(id)
		if err != nil {
			if !errors.Is(err, os.ErrNotExist) {
				return err
			}
			if link, err = newLinkName(); err != nil {
				return err
			}
			if err := writeFile(filepath.Join(d.dir(id), linkFileName), link); err != nil {
				return err
			}
		}
		want := filepath.Join("..", id, diffDirName)
		lp := filepath.Join(d.home, linkDir, link)
		if got, err := os.Readlink(lp); err == nil && got == want {
			continue
		}
		os.Remove(lp)
		if err := os.Symlink(want, lp); err != nil {
			return errors.Wrapf(err, "recreate link %s for layer %s", lp, id)
		}
	}
	return nil
}

// writeFile replaces the small layout file p (link, lower, committed)
// with s, crash-safely (see internal/atomicfile).
func writeFile(p, s string) error {
	return atomicfile.Write(p, []byte(s), atomicfile.Options{Perm: 0o644})
}
