package overlay2

import (
	"context"
	"io"

	"github.com/pkg/errors"

	"github.com/thinctl/thinctl/driver"
	"github.com/thinctl/thinctl/overlayfallback"
)

// native reports whether the diff of id against parent can be read from
// id's diff directory: parent must be id's own parent and the kernel must
// not be using redirect_dir or metacopy, which leave upper directories
// that do not describe the change on their own.
func (d *Driver) native(ctx context.Context, id, parent string) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, errors.Wrapf(err, "diff of overlay2 layer %s", id)
	}
	if !d.nativeDiff {
		return false, nil
	}
	if !d.Exists(id) {
		return false, errors.Wrapf(driver.ErrNotFound, "overlay2 layer %s", id)
	}
	lower, err := d.readLower(id)
	if err != nil {
		return false, err
	}
	if parent == "" {
		return len(lower) == 0, nil
	}
	if len(lower) == 0 || !d.Exists(parent) {
		return false, nil
	}
	plink, err := d.readLink(parent)
	if err != nil {
		return false, err
	}
	return lower[0] == plink, nil
}

// Diff returns id's changes against parent as an OCI layer stream.
func (d *Driver) Diff(ctx context.Context, id, parent string) (io.ReadCloser, error) {
	ok, err := d.native(ctx, id, parent)
	if err != nil || !ok {
		if err != nil {
			return nil, err
		}
		return driver.NaiveDiff(d).Diff(ctx, id, parent)
	}
	return overlayfallback.DiffTar(d.diffDir(id), overlayfallback.Overlay, nil), nil
}

// Changes lists id's changes against parent, sorted by path.
func (d *Driver) Changes(ctx context.Context, id, parent string) ([]driver.Change, error) {
	ok, err := d.native(ctx, id, parent)
	if err != nil || !ok {
		if err != nil {
			return nil, err
		}
		return driver.NaiveDiff(d).Changes(ctx, id, parent)
	}
	lower, err := d.readLower(id)
	if err != nil {
		return nil, err
	}
	dirs, err := d.lowerDirs(lower)
	if err != nil {
		return nil, err
	}
	return overlayfallback.Changes(d.diffDir(id), dirs, overlayfallback.Overlay)
}

// ApplyDiff unpacks an OCI layer stream into id's diff directory, turning
// whiteouts into overlay's native form, and returns the bytes applied.
// The layer must not be mounted by anyone while this runs.
func (d *Driver) ApplyDiff(ctx context.Context, id, parent string, diff io.Reader) (int64, error) {
	if !d.Exists(id) {
		return 0, errors.Wrapf(driver.ErrNotFound, "overlay2 layer %s", id)
	}
	size, err := overlayfallback.ApplyDiff(d.diffDir(id), driver.ContextReader(ctx, diff), overlayfallback.Overlay)
	return size, errors.Wrapf(err, "apply diff to overlay2 layer %s", id)
}

// DiffSize returns the bytes of regular file content id changes against parent.
func (d *Driver) DiffSize(ctx context.Context, id, parent string) (int64, error) {
	ok, err := d.native(ctx, id, parent)
	if err != nil || !ok {
		if err != nil {
			return 0, err
		}
		return driver.NaiveDiff(d).DiffSize(ctx, id, parent)
	}
	return overlayfallback.DiffSize(d.diffDir(id), overlayfallback.Overlay)
}
