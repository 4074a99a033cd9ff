package driver

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/pkg/errors"
	"golang.org/x/sys/unix"
)

// WhiteoutFormatter is implemented by a Driver whose mounted layer view
// needs something other than RemoveWhiteouts when NaiveDiff applies a
// stream into it.
type WhiteoutFormatter interface {
	WhiteoutFormat() WhiteoutFormat
}

// DiffOf returns d's own DiffDriver when it has one, otherwise NaiveDiff(d).
func DiffOf(d Driver) DiffDriver {
	if dd, ok := d.(DiffDriver); ok {
		return dd
	}
	return NaiveDiff(d)
}

// NaiveDiff gives any backend diff support by mounting layers with Get and
// comparing the complete trees: Diff and Changes walk the layer and its
// parent, ApplyDiff unpacks into the mounted layer (whiteouts delete paths
// unless d implements WhiteoutFormatter), DiffSize sums the sizes of the
// regular files Diff would carry.
func NaiveDiff(d Driver) DiffDriver { return naiveDiff{d} }

type naiveDiff struct{ d Driver }

// mountPair mounts id and, when given, parent; release undoes both.
func (n naiveDiff) mountPair(ctx context.Context, id, parent string) (layer, base string, release func(), err error) {
	layer, err = n.d.Get(ctx, id, "")
	if err != nil {
		return "", "", nil, errors.Wrapf(err, "mount layer %s", id)
	}
	if parent == "" {
		return layer, "", func() { n.d.Put(context.WithoutCancel(ctx), id) }, nil
	}
	base, err = n.d.Get(ctx, parent, "")
	if err != nil {
		n.d.Put(ctx, id)
		return "", "", nil, errors.Wrapf(err, "mount parent layer %s", parent)
	}
	return layer, base, func() { n.d.Put(context.WithoutCancel(ctx), parent); n.d.Put(context.WithoutCancel(ctx), id) }, nil
}

func (n naiveDiff) Changes(ctx context.Context, id, parent string) ([]Change, error) {
	layer, base, release, err := n.mountPair(ctx, id, parent)
	if err != nil {
		return nil, err
	}
	defer release()
	return ChangesDirs(layer, base)
}

func (n naiveDiff) Diff(ctx context.Context, id, parent string) (io.ReadCloser, error) {
	layer, base, release, err := n.mountPair(ctx, id, parent)
	if err != nil {
		return nil, err
	}
	changes, err := ChangesDirs(layer, base)
	if err != nil {
		release()
		return nil, err
	}
	pr, pw := io.Pipe()
	go func() {
		defer release()
		pw.CloseWithError(WriteChanges(pw, layer, changes))
	}()
	return pr, nil
}

func (n naiveDiff) ApplyDiff(ctx context.Context, id, parent string, diff io.Reader) (int64, error) {
	layer, err := n.d.Get(ctx, id, "")
	if err != nil {
		return 0, errors.Wrapf(err, "mount layer %s", id)
	}
	defer n.d.Put(context.WithoutCancel(ctx), id)
	wf := RemoveWhiteouts
	if f, ok := n.d.(WhiteoutFormatter); ok {
		wf = f.WhiteoutFormat()
	}
	size, err := ApplyTar(layer, ContextReader(ctx, diff), wf)
	return size, errors.Wrapf(err, "apply diff to layer %s", id)
}

func (n naiveDiff) DiffSize(ctx context.Context, id, parent string) (int64, error) {
	layer, base, release, err := n.mountPair(ctx, id, parent)
	if err != nil {
		return 0, err
	}
	defer release()
	changes, err := ChangesDirs(layer, base)
	if err != nil {
		return 0, err
	}
	return ChangesSize(layer, changes)
}

// ContextReader returns r as a reader that fails with ctx's error (wrapped)
// once ctx is done, so that applying a long layer stream stops when its
// context ends. What was applied before stays: an interrupted ApplyDiff
// leaves the layer partly written, to be removed or applied again.
func ContextReader(ctx context.Context, r io.Reader) io.Reader { return ctxReader{ctx, r} }

type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, errors.Wrap(err, "read the layer stream")
	}
	return c.r.Read(p)
}

// WriteChanges writes a layer stream holding changes (sorted, as from
// ChangesDirs) read from root: added and modified paths as entries,
// deleted ones as OCI whiteouts.
func WriteChanges(w io.Writer, root string, changes []Change) error {
	tw := NewTarWriter(w)
	for _, c := range changes {
		rel := strings.TrimPrefix(c.Path, "/")
		var err error
		if c.Kind == ChangeDelete {
			err = tw.AddWhiteout(rel)
		} else {
			err = tw.AddPath(root, rel)
		}
		if err != nil {
			return err
		}
	}
	return tw.Close()
}

// ChangesSize sums the sizes of the regular files that changes add or
// modify under root, counting a hard-linked inode once.
func ChangesSize(root string, changes []Change) (int64, error) {
	var size int64
	seen := map[[2]uint64]bool{}
	for _, c := range changes {
		if c.Kind == ChangeDelete {
			continue
		}
		var st unix.Stat_t
		p := filepath.Join(root, filepath.FromSlash(c.Path))
		if err := unix.Lstat(p, &st); err != nil {
			if os.IsNotExist(err) {
				continue
			}
			return 0, errors.Wrapf(err, "stat %s", p)
		}
		if st.Mode&unix.S_IFMT != unix.S_IFREG {
			continue
		}
		key := [2]uint64{st.Dev, st.Ino}
		if st.Nlink > 1 {
			if seen[key] {
				continue
			}
			seen[key] = true
		}
		size += st.Size
	}
	return size, nil
}
