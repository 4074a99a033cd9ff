package main

import (
	"archive/tar"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/pkg/errors"
	"golang.org/x/sys/unix"

	"github.com/thinctl/thinctl/driver"
)

// export and import move a layer's content as a tar stream with OCI
// whiteouts: export writes the layer's difference to its parent
// (driver.DiffDriver's Diff), import creates a layer and applies a stream
// to it (ApplyDiff). Every backend has both (natively or through
// driver.NaiveDiff), so a layer exported from one backend imports into
// another.

// errTerminal refuses binary data on a terminal.
var errTerminal = errors.New("a tar archive does not belong on a terminal")

// runExport writes layer ID's difference to --parent (default: its own
// parent) to --file or stdout.
func runExport(c *call) error {
	toStdout := c.opts.file == "" || c.opts.file == "-"
	if toStdout && c.app.isTerminal(c.app.stdout) {
		return &hintedError{msg: errTerminal.Error() + ": stdout is one",
			hint: "give --file FILE, or redirect stdout: thinctl export " + c.id() + " > " + c.id() + ".tar"}
	}
	if !toStdout {
		if err := checkOutputFile(c.opts.file); err != nil {
			return err
		}
	}
	return c.withDriver(func(d driver.Driver) error {
		id := c.id()
		if !d.Exists(id) {
			return errors.Wrapf(driver.ErrNotFound, "layer %s", id)
		}
		parent := c.opts.parent
		if !c.set["parent"] {
			if l, ok := d.(driver.Lister); ok {
				li, err := driver.Layer(l, id)
				if err != nil {
					return err
				}
				parent = li.Parent
			}
		}
		dd := driver.DiffOf(d)
		var total int64
		if prog := c.progress(); prog != nil {
			total, _ = dd.DiffSize(c.ctx(), id, parent)
		}
		rc, err := dd.Diff(c.ctx(), id, parent)
		if err != nil {
			return err
		}
		defer rc.Close()
		src := &countingReader{r: rc, total: total, what: "exporting " + id, progress: c.progress()}
		if toStdout {
			if _, err := io.Copy(c.app.stdout, src); err != nil {
				return errors.Wrap(err, "write the archive to stdout")
			}
			return rc.Close()
		}
		if err := writeFileAtomically(c.opts.file, src); err != nil {
			return err
		}
		if err := rc.Close(); err != nil {
			os.Remove(c.opts.file)
			return err
		}
		against := "its parent " + parent
		if parent == "" {
			against = "nothing (the whole tree)"
		}
		fmt.Fprintf(c.stdout(), "Exported %s, its changes against %s: %s of archive in %s\n",
			id, against, humanSize(uint64(src.n)), c.opts.file)
		return nil
	})
}

// checkOutputFile refuses an output path (--file) that exists as anything
// but a regular file: a symlink planted there must not redirect the
// archive (a layer carries secrets) nor be replaced, a device or FIFO must
// not be written to or replaced. It runs before any work; the write itself
// (writeFileAtomically) renames over the path, which never follows a
// symlink, so a symlink planted after this check is replaced, and what it
// pointed at is not touched.
func checkOutputFile(path string) error {
	fi, err := os.Lstat(path)
	if err != nil {
		return nil // absent (or unreadable: creating it will say why)
	}
	what := ""
	switch {
	case fi.Mode().IsRegular():
		return nil
	case fi.Mode()&os.ModeSymlink != 0:
		target, _ := os.Readlink(path)
		what = "a symlink to " + strconv.Quote(target)
	default:
		var st unix.Stat_t
		unix.Lstat(path, &st)
		what = "a " + driver.TypeName(st.Mode)
	}
	return &hintedError{msg: fmt.Sprintf("--file %s is %s: thinctl writes a new file there or replaces a regular one", path, what),
		hint: "give another --file, or remove " + path + " if it is yours"}
}

// writeFileAtomically writes r to a temporary file beside path and renames
// it into place, so a failed export leaves no partial archive. The file
// is owner-only (0600, as os.CreateTemp makes it, O_EXCL): a layer or an
// image carries whatever secrets its files hold.
func writeFileAtomically(path string, r io.Reader) error {
	if err := checkOutputFile(path); err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return errors.Wrapf(err, "create %s", path)
	}
	_, err = io.Copy(f, r)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		os.Remove(f.Name())
		return errors.Wrapf(err, "write %s", path)
	}
	return nil
}

// runImport creates layer ID on --parent and applies the archive from
// --file or stdin to it; a refused or failed archive removes the layer.
func runImport(c *call) error {
	in, total, closeIn, err := c.importSource()
	if err != nil {
		return err
	}
	defer closeIn()
	return c.withDriver(func(d driver.Driver) error {
		id, parent := c.id(), c.opts.parent
		if d.Exists(id) {
			return errors.Wrapf(driver.ErrExists, "layer %s", id)
		}
		if err := d.CreateReadWrite(c.ctx(), id, parent, nil); err != nil {
			return err
		}
		src := &countingReader{r: in, total: total, what: "importing " + id, progress: c.progress()}
		entries, n, err := applyChecked(c.ctx(), driver.DiffOf(d), id, parent, src)
		if err != nil {
			if rerr := d.Remove(context.WithoutCancel(c.ctx()), id); rerr != nil && !errors.Is(rerr, driver.ErrDeferred) {
				return errors.Wrapf(err, "and removing the half-imported layer %s failed too (%v)", id, rerr)
			}
			return errors.Wrapf(err, "nothing imported (layer %s removed)", id)
		}
		on := "on " + parent
		if parent == "" {
			on = "on nothing"
			if c.ch.Name == devicemapper {
				on = "on the base device"
			}
		}
		fmt.Fprintf(c.stdout(), "Imported %s %s: %d entries, %s of file content\n", id, on, entries, humanSize(uint64(n)))
		return nil
	})
}

// importSource opens --file, or stdin unless it is a terminal; total is the
// file's size when known (for the progress bar).
func (c *call) importSource() (in io.Reader, total int64, closeIn func(), err error) {
	if c.opts.file != "" && c.opts.file != "-" {
		f, err := os.Open(c.opts.file)
		if err != nil {
			return nil, 0, nil, errors.Wrapf(err, "open the archive")
		}
		if fi, err := f.Stat(); err == nil && fi.Mode().IsRegular() {
			total = fi.Size()
		}
		return f, total, func() { f.Close() }, nil
	}
	if w, ok := c.app.stdin.(io.Writer); ok && c.app.isTerminal(w) {
		return nil, 0, nil, &hintedError{msg: errTerminal.Error() + ": stdin is one",
			hint: "give --file FILE, or pipe an archive in: thinctl import " + c.id() + " < " + c.id() + ".tar"}
	}
	return c.app.stdin, 0, func() {}, nil
}

// applyChecked applies the archive in r to layer id through dd.ApplyDiff,
// passing every entry through checkArchive first: a bad archive stops with
// the check's one-line reason, whatever ApplyDiff made of the cut stream.
func applyChecked(ctx context.Context, dd driver.DiffDriver, id, parent string, r io.Reader) (entries int, n int64, err error) {
	pr, pw := io.Pipe()
	checked := make(chan error, 1)
	go func() {
		var err error
		entries, err = checkArchive(pw, r)
		pw.CloseWithError(err)
		checked <- err
	}()
	n, err = dd.ApplyDiff(ctx, id, parent, pr)
	pr.CloseWithError(errApplyStopped)
	// The check's reason wins, unless the check only stopped because
	// ApplyDiff had (a write through a symlink, say): then ApplyDiff's.
	if cerr := <-checked; cerr != nil && !errors.Is(cerr, errApplyStopped) {
		return entries, n, cerr
	}
	return entries, n, err
}

// errApplyStopped ends the check's writes once ApplyDiff has returned.
var errApplyStopped = errors.New("the layer stopped reading the archive")

// checkArchive passes the tar stream r to w byte for byte while it reads
// the entries' headers, refusing what a layer archive must not hold:
// absolute names, names or hard links that climb out with "..", an entry
// whose content ends before its header's size, and a stream that ends
// without tar's end-of-archive blocks (cut short). It returns the number
// of entries. It never expands an entry: a sparse file's holes, however
// large, cost nothing here, and its sparse map reaches the applier intact.
func checkArchive(w io.Writer, r io.Reader) (int, error) {
	tail := &tailReader{r: r}
	tr := tar.NewReader(io.TeeReader(tail, w))
	n := 0
	var prev *tar.Header
	var prevStart int64 // the stream's offset where prev's content starts
	for {
		hdr, err := tr.Next()
		if err == io.ErrUnexpectedEOF && prev != nil && tail.total-prevStart < prev.Size {
			return n, errors.Errorf("the archive ends inside %s: its header announces %s, the stream holds %s",
				prev.Name, humanSize(uint64(prev.Size)), humanSize(uint64(tail.total-prevStart)))
		}
		if err == io.EOF {
			if !tail.endsWithZeroBlocks() {
				if tail.total == 0 {
					return n, errors.New("the archive is empty (no tar data on the input)")
				}
				return n, errors.Errorf("the archive is cut short after %d entries (%d bytes, no end-of-archive blocks)", n, tail.total)
			}
			break
		}
		if errors.Is(err, errApplyStopped) {
			return n, err // the layer's reason is the one to give
		}
		if err != nil {
			return n, errors.Errorf("the archive is damaged after %d entries (byte %d): %v", n, tail.total, err)
		}
		if hdr.Typeflag == tar.TypeXGlobalHeader {
			continue // defaults for the entries after it, not an entry
		}
		if err := checkEntryName(hdr); err != nil {
			return n, err
		}
		n++
		prev, prevStart = hdr, tail.total
	}
	// Pass on what follows the end-of-archive blocks (padding to the
	// record size), so that the applier reads the stream to its end.
	if _, err := io.Copy(w, tail); err != nil {
		return n, err
	}
	return n, nil
}

// checkEntryName refuses absolute names and "..", in the name and in a
// hard link's target.
func checkEntryName(hdr *tar.Header) error {
	check := func(what, name string) error {
		if strings.HasPrefix(name, "/") {
			return errors.Errorf("%s %q is absolute; a layer archive holds names relative to the layer", what, name)
		}
		for _, part := range strings.Split(name, "/") {
			if part == ".." {
				return errors.Errorf("%s %q climbs out of the layer with ..", what, name)
			}
		}
		return nil
	}
	if err := check("entry", hdr.Name); err != nil {
		return err
	}
	if hdr.Typeflag == tar.TypeLink {
		return check("hard link "+hdr.Name+" points at", hdr.Linkname)
	}
	return nil
}

// tailReader remembers how many bytes passed and the last 1024 of them.
type tailReader struct {
	r     io.Reader
	total int64
	last  [1024]byte
}

func (t *tailReader) Read(p []byte) (int, error) {
	n, err := t.r.Read(p)
	t.total += int64(n)
	if n >= len(t.last) {
		copy(t.last[:], p[n-len(t.last):n])
	} else if n > 0 {
		copy(t.last[:], t.last[n:])
		copy(t.last[len(t.last)-n:], p[:n])
	}
	return n, err
}

// endsWithZeroBlocks reports whether the stream ended with tar's two
// zero blocks.
func (t *tailReader) endsWithZeroBlocks() bool {
	if t.total < int64(len(t.last)) {
		return false
	}
	for _, b := range t.last {
		if b != 0 {
			return false
		}
	}
	return true
}

// countingReader counts bytes and draws the progress bar when there is
// one (total 0: the fraction stays unknown and the bar shows the work).
type countingReader struct {
	r        io.Reader
	n, total int64
	what     string
	progress func(string, float64)
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	if c.progress != nil {
		frac := 0.0
		if c.total > 0 {
			frac = float64(c.n) / float64(c.total)
		}
		c.progress(fmt.Sprintf("%s: %s", c.what, humanSize(uint64(c.n))), frac)
	}
	return n, err
}
