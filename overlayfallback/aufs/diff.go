package aufs

import (
	"context"
	"io"

	"github.com/pkg/errors"

	"github.com/thinctl/thinctl/driver"
	"github.com/thinctl/thinctl/overlayfallback"
)

// An aufs layer's diff directory already is its change set: new and
// changed files, ".wh.<name>" whiteouts for deletions and ".wh..wh..opq"
// markers for replaced directories, exactly the OCI layer spelling. So Diff,
// Changes, DiffSize and ApplyDiff work on diff/<id> directly through
// overlayfallback's shared code with its Aufs format, which leaves out
// what aufs keeps for itself (.wh..wh.aufs, the .wh..wh.plnk and
// .wh..wh.orph directories, the .wh..wh.<name>.<n> directories aufs renames
// removed ones to, and everything inside those).

// native reports whether parent is the parent id was created on, the only
// base diff/<id> records changes against; other bases go through
// driver.NaiveDiff, which mounts both layers.
func (d *Driver) native(ctx context.Context, op, id, parent string) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, errors.Wrapf(err, "aufs: %s %s", op, id)
	}
	if !d.Exists(id) {
		return false, errors.Wrapf(driver.ErrNotFound, "aufs: %s %s", op, id)
	}
	own, err := d.parentOf(id)
	return err == nil && parent == own, err
}

// Diff returns a tar stream of layer id's changes against parent: for
// id's own parent, the content of diff/<id> with whiteouts in OCI form and
// aufs's own entries left out; for any other parent, NaiveDiff's.
func (d *Driver) Diff(ctx context.Context, id, parent string) (io.ReadCloser, error) {
	ok, err := d.native(ctx, "diff", id, parent)
	if err != nil {
		return nil, err
	}
	if !ok {
		return driver.NaiveDiff(d).Diff(ctx, id, parent)
	}
	return overlayfallback.DiffTar(d.diffPath(id), overlayfallback.Aufs, nil), nil
}

// Changes lists the paths layer id adds, modifies or deletes relative to
// parent, sorted, each starting with "/". For id's own parent it reads
// diff/<id> against the ancestors' diff directories: an entry is added when
// the parent's view lacks the path and modified otherwise (directories
// holding changes count as modified, as aufs copies them up), ".wh.<name>"
// deletes <name>, and an opaque directory deletes every entry of the
// parent's view it does not hold again. Other parents go through
// driver.NaiveDiff.
func (d *Driver) Changes(ctx context.Context, id, parent string) ([]driver.Change, error) {
	ok, err := d.native(ctx, "changes", id, parent)
	if err != nil {
		return nil, err
	}
	if !ok {
		return driver.NaiveDiff(d).Changes(ctx, id, parent)
	}
	chain, err := d.ancestors(id)
	if err != nil {
		return nil, err
	}
	lowers := make([]string, len(chain))
	for i, a := range chain {
		lowers[i] = d.diffPath(a)
	}
	changes, err := overlayfallback.Changes(d.diffPath(id), lowers, overlayfallback.Aufs)
	return changes, errors.Wrapf(err, "aufs: changes of %s", id)
}

// DiffSize returns the bytes of regular file content layer id changes
// against parent (hard links counted once): what ApplyDiff of its Diff
// reports.
func (d *Driver) DiffSize(ctx context.Context, id, parent string) (int64, error) {
	ok, err := d.native(ctx, "diff size", id, parent)
	if err != nil {
		return 0, err
	}
	if !ok {
		return driver.NaiveDiff(d).DiffSize(ctx, id, parent)
	}
	size, err := overlayfallback.DiffSize(d.diffPath(id), overlayfallback.Aufs)
	return size, errors.Wrapf(err, "aufs: diff size %s", id)
}

// ApplyDiff unpacks an OCI layer tar stream into layer id's diff directory
// and returns the bytes of regular file content it wrote. Whiteouts and
// opaque markers are stored as the aufs files of the same names (aufs reads
// the OCI spelling natively); entries at or below aufs-reserved names in
// the stream are ignored. Over content already in the layer the stream
// wins: a whiteout deletes the layer's own copy and an opaque marker drops
// what the directory held before. parent is not consulted: a layer's
// ancestors are fixed when it is created.
func (d *Driver) ApplyDiff(ctx context.Context, id, parent string, diff io.Reader) (int64, error) {
	if !d.Exists(id) {
		return 0, errors.Wrapf(driver.ErrNotFound, "aufs: apply diff to %s", id)
	}
	n, err := overlayfallback.ApplyDiff(d.diffPath(id), driver.ContextReader(ctx, diff), overlayfallback.Aufs)
	return n, errors.Wrapf(err, "aufs: apply diff to %s", id)
}
