package aufs

import (
	"bufio"
	"bytes"
	"os"
	"path/filepath"
	"strings"

	"github.com/pkg/errors"
)

// The driver home holds three directories, one entry per layer in each:
//
//	diff/<id>    the files of the layer (its aufs branch)
//	layers/<id>  the layer's ancestors, one id per line, nearest first
//	mnt/<id>     where Get mounts the union of the layer and its ancestors
const (
	diffDir   = "diff"
	layersDir = "layers"
	mntDir    = "mnt"
	// removingSuffix marks a diff/ or mnt/ entry renamed away by Remove and
	// not yet deleted; New sweeps such leftovers.
	removingSuffix = "-removing"
)

func (d *Driver) diffPath(id string) string   { return filepath.Join(d.home, diffDir, id) }
func (d *Driver) layersPath(id string) string { return filepath.Join(d.home, layersDir, id) }
func (d *Driver) mntPath(id string) string    { return filepath.Join(d.home, mntDir, id) }

// validateID rejects ids that cannot name a directory entry, that start
// with a dot (reserved for temporary files and aufs names), that would
// break the "br:" option syntax (':' ',' '=' separate branches and
// options), that break the one-id-per-line layers file, or that collide
// with the names Remove uses for half-removed layers.
func validateID(id string) error {
	switch {
	case id == "":
		return errors.New("layer id is empty; pass a non-empty id")
	case strings.HasPrefix(id, "."):
		// Covers "." and "..", the ".wh." names aufs reserves, and the
		// dot-named temporary files the driver writes next to layers files.
		return errors.Errorf("layer id %q starts with a dot, which the driver reserves; pick another id", id)
	case strings.ContainsAny(id, "/:,=\n\r\x00"):
		return errors.Errorf("layer id %q contains one of / : , = or a line break, which aufs branch options cannot carry; pick another id", id)
	case strings.TrimSpace(id) != id:
		return errors.Errorf("layer id %q has leading or trailing white space; pick another id", id)
	case strings.HasSuffix(id, removingSuffix):
		return errors.Errorf("layer id %q ends in %q, which marks layers being removed; pick another id", id, removingSuffix)
	}
	return nil
}

// parseLayers reads a layers file: one ancestor id per line, nearest first.
// Blank lines and surrounding white space are ignored (files written by
// hand or by older tools sometimes end with an empty line); a line that is
// not a valid id, or an id listed twice, is an error naming the line.
func parseLayers(b []byte) ([]string, error) {
	var ids []string
	seen := map[string]int{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 0, 4096), len(b)+1)
	for n := 1; sc.Scan(); n++ {
		id := strings.TrimSpace(sc.Text())
		if id == "" {
			continue
		}
		if err := validateID(id); err != nil {
			return nil, errors.Wrapf(err, "line %d", n)
		}
		if prev, dup := seen[id]; dup {
			return nil, errors.Errorf("line %d: layer %q is already listed on line %d; an ancestor chain cannot contain a layer twice", n, id, prev)
		}
		seen[id] = n
		ids = append(ids, id)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return ids, nil
}

// formatLayers renders ids as a layers file, the inverse of parseLayers.
func formatLayers(ids []string) []byte {
	var b bytes.Buffer
	for _, id := range ids {
		b.WriteString(id)
		b.WriteByte('\n')
	}
	return b.Bytes()
}

// ancestors returns the chain below id, nearest first, from layers/<id>.
func (d *Driver) ancestors(id string) ([]string, error) {
	p := d.layersPath(id)
	b, err := os.ReadFile(p)
	if err != nil {
		return nil, errors.Wrapf(err, "aufs: read ancestors of layer %s", id)
	}
	ids, err := parseLayers(b)
	if err != nil {
		return nil, errors.Wrapf(err, "aufs: layers file %s is corrupt; restore it or remove the layer", p)
	}
	return ids, nil
}

// parentOf returns id's nearest ancestor, "" for a base layer.
func (d *Driver) parentOf(id string) (string, error) {
	chain, err := d.ancestors(id)
	if err != nil || len(chain) == 0 {
		return "", err
	}
	return chain[0], nil
}
