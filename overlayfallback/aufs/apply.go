package aufs

import (
	"archive/tar"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/pkg/errors"

	"github.com/thinctl/thinctl/driver"
	"github.com/thinctl/thinctl/overlayfallback"
)

// ApplyDiff unpacks an OCI layer tar stream into layer id's diff directory
// and returns the bytes of regular file content it wrote. Whiteouts and
// opaque markers are stored as the aufs files of the same names (aufs reads
// the OCI spelling natively); aufs-reserved names in the stream are
// ignored. Over content already in the layer the stream wins: a whiteout
// deletes the layer's own copy and an opaque marker drops what the
// directory held before. parent is not consulted: a layer's ancestors are
// fixed when it is created.
func (d *Driver) ApplyDiff(id, parent string, diff io.Reader) (int64, error) {
	if !d.Exists(id) {
		return 0, errors.Wrapf(driver.ErrNotFound, "aufs: apply diff to %s", id)
	}
	n, err := driver.ApplyTar(d.diffPath(id), withoutMeta(diff), applyFormat{overlayfallback.Aufs})
	if err != nil {
		return n, errors.Wrapf(err, "aufs: apply diff to %s", id)
	}
	return n, nil
}

// applyFormat writes aufs whiteouts through the shared aufs format, and
// makes an opaque marker also drop the directory's earlier entries in this
// branch (the stream's own stay): they belonged to the tree the stream is
// applied on top of, which the marker hides.
type applyFormat struct{ overlayfallback.Format }

// Opaque drops dir's earlier entries, then writes the marker.
func (f applyFormat) Opaque(root, rel string, written func(string) bool) error {
	dir := filepath.Join(root, filepath.FromSlash(rel))
	ents, err := os.ReadDir(dir)
	if err != nil {
		return errors.Wrapf(err, "apply opaque marker in %s", rel)
	}
	for _, e := range ents {
		if classify(e.Name()) == entryMeta || written(path.Join(rel, e.Name())) {
			continue
		}
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
			return errors.Wrapf(err, "apply opaque marker in %s", rel)
		}
	}
	return f.Format.Opaque(root, rel, written)
}

// withoutMeta passes the tar stream r through, leaving out every entry at
// or below an aufs-reserved name (and hard links to one): a stream must not
// plant files in .wh..wh.plnk or .wh..wh.orph of a branch.
func withoutMeta(r io.Reader) io.Reader {
	pr, pw := io.Pipe()
	go func() {
		tr, tw := tar.NewReader(r), tar.NewWriter(pw)
		for {
			hdr, err := tr.Next()
			if err == io.EOF {
				pw.CloseWithError(tw.Close())
				return
			}
			if err != nil {
				pw.CloseWithError(err)
				return
			}
			if underMeta(hdr.Name) || (hdr.Typeflag == tar.TypeLink && underMeta(hdr.Linkname)) {
				continue
			}
			if err := tw.WriteHeader(hdr); err != nil {
				pw.CloseWithError(err)
				return
			}
			if _, err := io.Copy(tw, tr); err != nil {
				pw.CloseWithError(err)
				return
			}
		}
	}()
	return pr
}

// underMeta reports whether a slash-separated path has a component that is
// an aufs-reserved ".wh..wh." name (".wh..wh..opq" is not reserved).
func underMeta(p string) bool {
	for _, part := range strings.Split(p, "/") {
		if strings.HasPrefix(part, metaPrefix) && part != opaqueMarker {
			return true
		}
	}
	return false
}
