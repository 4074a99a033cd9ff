package drivertest

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/thinctl/thinctl/driver"
)

// Outcome is how an import of a hostile archive must end.
type Outcome int

// The outcomes a HostileArchive may demand.
const (
	Refused  Outcome = iota // the import fails
	Accepted                // the import succeeds (and Check passes)
	Either                  // only "nothing outside changed" matters
)

// HostileArchive is one attack on a layer import: an archive written to
// reach outside the layer, replace its root, or never finish.
type HostileArchive struct {
	// Name says what the archive tries, as a sentence.
	Name string
	// Stream builds the archive aimed at outside, an absolute path to a
	// directory filled by MakeSentinel.
	Stream func(outside string) []byte
	// Want is how the import must end.
	Want Outcome
	// Check, when set, reads the layer root back after an accepted import.
	Check func(layer string) error
}

// readIs checks that the regular file rel in layer holds body.
func readIs(rel, body string) func(string) error {
	return func(layer string) error {
		p := filepath.Join(layer, rel)
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		if !fi.Mode().IsRegular() {
			return fmt.Errorf("%s is %v, want a regular file", rel, fi.Mode().Type())
		}
		b, err := os.ReadFile(p)
		if err != nil || string(b) != body {
			return fmt.Errorf("%s holds %q (%v), want %q", rel, b, err, body)
		}
		return nil
	}
}

// notSymlink checks that rel in layer is gone or, in a layer seen
// without its union (a base layer's own directory), a backend's whiteout
// rather than the symlink the archive made.
func notSymlink(rel string) func(string) error {
	return func(layer string) error {
		fi, err := os.Lstat(filepath.Join(layer, rel))
		if err == nil && fi.Mode()&os.ModeSymlink != 0 {
			return fmt.Errorf("%s is still a symlink", rel)
		}
		if err != nil && !os.IsNotExist(err) {
			return err
		}
		return nil
	}
}

func all(checks ...func(string) error) func(string) error {
	return func(layer string) error {
		for _, c := range checks {
			if err := c(layer); err != nil {
				return err
			}
		}
		return nil
	}
}

func node(name string, typ byte, major, minor int64) Entry {
	return Entry{Header: tar.Header{Name: name, Typeflag: typ, Devmajor: major, Devminor: minor, Mode: 0o600}}
}

// absentOnHost is a top-level name the accepted cases use for absolute
// and ".." symlinks: the layer has it, the host does not, so an applier
// that resolved them on the host would fail on a missing directory
// instead of writing into the host's own /usr or /. Every case aimed at
// something outside the layer aims at the sentinel only.
const absentOnHost = "thinctl-hostile-not-on-the-host"

// HostileArchives is the catalogue every backend's import must survive.
func HostileArchives() []HostileArchive {
	a := func(name string, want Outcome, check func(string) error, stream func(out string) []Entry) HostileArchive {
		return HostileArchive{Name: name, Want: want, Check: check, Stream: func(out string) []byte { return Tar(stream(out)...) }}
	}
	raw := func(name string, stream func(out string) []byte) HostileArchive {
		return HostileArchive{Name: name, Want: Refused, Stream: stream}
	}
	return []HostileArchive{
		// The layer root.
		a("the root ./ as a symlink to the outside, then a file", Refused, nil, func(out string) []Entry {
			return []Entry{symlink("./", out), file("./x", "pwned")}
		}),
		a("the root ./ as a symlink to the outside, then an opaque marker", Refused, nil, func(out string) []Entry {
			return []Entry{symlink("./", out), file(".wh..wh..opq", "")}
		}),
		a("the root ./ as a regular file", Refused, nil, func(string) []Entry { return []Entry{file(".", "x")} }),
		a("the root ./ as a hard link to an outside file", Refused, nil, func(out string) []Entry {
			return []Entry{hardlink(".", out+"/file")}
		}),
		a("the root ./ as a FIFO", Refused, nil, func(string) []Entry { return []Entry{node(".", tar.TypeFifo, 0, 0)} }),
		a("the root ./ as a directory sets only the root's own metadata", Accepted, readIs("x", "in"), func(string) []Entry {
			return []Entry{{Header: tar.Header{Name: "./", Typeflag: tar.TypeDir, Mode: 0o711}}, file("x", "in")}
		}),
		// Directory times set at the end.
		a("directory times after a later entry turns a parent into a symlink to the outside", Either, nil, func(out string) []Entry {
			return []Entry{dir("a/"), dir("a/victim/"), dir("a/victim/sub/"), symlink("a", out)}
		}),
		// Symlinked parents.
		a("an absolute symlinked parent resolves inside the layer", Accepted, readIs(absentOnHost+"/lib/libc.so", "elf"), func(string) []Entry {
			return []Entry{dir(absentOnHost + "/lib/"), symlink("lib", "/"+absentOnHost+"/lib"), file("lib/libc.so", "elf")}
		}),
		a("a relative symlinked parent resolves inside the layer", Accepted, readIs("usr/lib/x", "y"), func(string) []Entry {
			return []Entry{dir("usr/lib/"), symlink("lib64", "usr/lib"), file("lib64/x", "y")}
		}),
		a("a .. symlink as a parent stops at the layer root", Accepted, readIs(absentOnHost+"/top", "t"), func(string) []Entry {
			return []Entry{dir(absentOnHost + "/"), dir("d/"), symlink("d/up", "../../../../"+absentOnHost), file("d/up/top", "t")}
		}),
		a("an absolute symlink to the outside as a parent", Either, nil, func(out string) []Entry {
			return []Entry{symlink("l", out), file("l/file", "pwned"), file("l/new", "pwned")}
		}),
		a("a relative .. chain to the outside as a parent", Either, nil, func(out string) []Entry {
			return []Entry{symlink("l", escapeUp(out)), file("l/file", "pwned"), dir("l/victim/"), file("l/victim/new", "pwned")}
		}),
		a("a chain of symlinks ending outside as a parent", Either, nil, func(out string) []Entry {
			return []Entry{symlink("a", "b"), symlink("b", "c/../d"), dir("c/"), symlink("d", out), file("a/file", "pwned")}
		}),
		a("a symlink loop as a parent", Refused, nil, func(string) []Entry {
			return []Entry{symlink("a", "b"), symlink("b", "a"), file("a/x", "")}
		}),
		a("a /proc magic link as a parent", Either, nil, func(out string) []Entry {
			return []Entry{symlink("p", "/proc/self/root"+out), file("p/file", "pwned")}
		}),
		// Hard links.
		a("a hard link to an absolute outside path", Refused, nil, func(out string) []Entry {
			return []Entry{hardlink("h", out+"/file")}
		}),
		a("a hard link through a symlinked parent to the outside", Refused, nil, func(out string) []Entry {
			return []Entry{symlink("l", out), hardlink("h", "l/file")}
		}),
		a("a hard link to a symlink to the outside, then a write to the link", Either, nil, func(out string) []Entry {
			return []Entry{symlink("s", out+"/file"), hardlink("h", "s"), file("h", "pwned")}
		}),
		a("a hard link to the host's /dev/null", Refused, nil, func(string) []Entry {
			return []Entry{hardlink("h", "/dev/null")}
		}),
		a("a hard link to a directory", Refused, nil, func(string) []Entry {
			return []Entry{dir("d/"), hardlink("h", "d")}
		}),
		// Whiteouts and opaque markers.
		a("a whiteout through a symlinked parent to the outside", Either, nil, func(out string) []Entry {
			return []Entry{symlink("l", out), file("l/.wh.file", ""), file("l/.wh.victim", "")}
		}),
		a("an opaque marker through a symlinked parent to the outside", Either, nil, func(out string) []Entry {
			return []Entry{symlink("l", out), file("l/.wh..wh..opq", "")}
		}),
		a("an opaque marker through a .. chain to the outside", Either, nil, func(out string) []Entry {
			return []Entry{symlink("l", escapeUp(out)+"/victim"), file("l/.wh..wh..opq", "")}
		}),
		a("a FIFO as a parent directory", Refused, nil, func(string) []Entry {
			return []Entry{node("p", tar.TypeFifo, 0, 0), file("p/x", "")}
		}),
		a("a whiteout of a symlink to the outside removes the symlink only", Accepted, notSymlink("l"), func(out string) []Entry {
			return []Entry{symlink("l", out), file(".wh.l", "")}
		}),
		a("an opaque marker at the root beside a symlink to the outside", Accepted, readIs("d/k", "k"), func(out string) []Entry {
			return []Entry{symlink("l", out), dir("d/"), file("d/k", "k"), file(".wh..wh..opq", "")}
		}),
		// Metadata through symlinks, and entries replacing each other.
		a("a directory entry over a symlink to an outside directory", Accepted, func(layer string) error { return IsRealDir(filepath.Join(layer, "v")) }, func(out string) []Entry {
			return []Entry{symlink("v", out+"/victim"), {Header: tar.Header{Name: "v/", Typeflag: tar.TypeDir, Mode: 0o777, Uid: 99}}}
		}),
		a("a file entry over a symlink to an outside file", Accepted, readIs("f", "pwned"), func(out string) []Entry {
			return []Entry{symlink("f", out+"/file"), {Header: tar.Header{Name: "f", Typeflag: tar.TypeReg, Mode: 0o4777, Uid: 99}, Body: "pwned"}}
		}),
		a("a directory replaced by a symlink to the outside mid-stream, then written through", Either, nil, func(out string) []Entry {
			return []Entry{dir("d/"), file("d/x", "1"), symlink("d", out), file("d/file", "pwned"), dir("d/victim/")}
		}),
		a("device nodes and a FIFO through a symlinked parent to the outside", Either, nil, func(out string) []Entry {
			return []Entry{symlink("l", out), node("l/null", tar.TypeChar, 1, 3), node("l/blk", tar.TypeBlock, 7, 0), node("l/fifo", tar.TypeFifo, 0, 0)}
		}),
		a("a symlink to an outside file with its own time and an xattr", Accepted, nil, func(out string) []Entry {
			h := tar.Header{Name: "t", Typeflag: tar.TypeSymlink, Linkname: out + "/file", ModTime: time.Unix(5, 0),
				PAXRecords: map[string]string{"SCHILY.xattr.user.x": "1"}}
			return []Entry{{Header: h}}
		}),
		a("every file type inside the layer", Accepted, func(layer string) error {
			for rel, want := range map[string]os.FileMode{"d": os.ModeDir, "s": os.ModeSymlink, "c": os.ModeDevice | os.ModeCharDevice, "b": os.ModeDevice, "p": os.ModeNamedPipe} {
				fi, err := os.Lstat(filepath.Join(layer, rel))
				if err != nil || fi.Mode().Type() != want {
					return fmt.Errorf("%s: %v %v, want type %v", rel, fi, err, want)
				}
			}
			return all(readIs("f", "f"), readIs("h", "f"))(layer)
		}, func(string) []Entry {
			return []Entry{dir("d/"), file("f", "f"), symlink("s", "f"), hardlink("h", "f"),
				node("c", tar.TypeChar, 1, 3), node("b", tar.TypeBlock, 7, 0), node("p", tar.TypeFifo, 0, 0)}
		}),
		// Names and formats.
		a("a GNU long name that climbs out with ..", Refused, nil, func(string) []Entry {
			e := file(strings.Repeat("long/", 30)+strings.Repeat("../", 32)+"x", "pwned")
			e.Header.Format = tar.FormatGNU
			return []Entry{e}
		}),
		a("a GNU long link name to an outside file", Refused, nil, func(out string) []Entry {
			e := hardlink("h", strings.Repeat("../", 40)+out+"/file")
			e.Header.Format = tar.FormatGNU
			return []Entry{e}
		}),
		a("a PAX global header naming an outside path", Accepted, readIs("x", "1"), func(out string) []Entry {
			g := Entry{Header: tar.Header{Typeflag: tar.TypeXGlobalHeader, PAXRecords: map[string]string{"path": out + "/file", "comment": "x"}}}
			return []Entry{g, file("x", "1")}
		}),
		a("a whiteout naming ..", Refused, nil, func(string) []Entry { return []Entry{file("d/.wh..", "")} }),
		// Sizes.
		raw("a regular file announcing 2^60 bytes", func(string) []byte { return HugeRegular("big", 1<<60) }),
		raw("a PAX GNU sparse 1.0 file of real size 2^60", func(string) []byte { return HugeSparsePAX("big", 1<<60) }),
		raw("an old GNU sparse file of real size 2^60", func(string) []byte { return HugeSparseOldGNU("big", 1<<60) }),
	}
}

// hostileTimeout is how long one hostile import may take before it
// counts as a hang.
const hostileTimeout = 60 * time.Second

// CheckHostile runs apply (an import of c's archive into layer, aimed at
// the sentinel directory outside) and fails t unless it ended as c.Want
// demands within a minute, outside's snapshot still equals before, and
// layer is still a real directory (it is not looked at when apply refused
// and reports layer as ""). It returns apply's error.
func CheckHostile(t *testing.T, c HostileArchive, outside string, apply func(stream []byte) (layer string, err error)) error {
	t.Helper()
	before, err := Snapshot(outside)
	if err != nil {
		t.Fatal(err)
	}
	type result struct {
		layer string
		err   error
	}
	done := make(chan result, 1)
	stream := c.Stream(outside)
	go func() {
		layer, err := apply(stream)
		done <- result{layer, err}
	}()
	var r result
	select {
	case r = <-done:
	case <-time.After(hostileTimeout):
		t.Fatalf("the import of %d bytes was still running after %v", len(stream), hostileTimeout)
	}
	after, err := Snapshot(outside)
	if err != nil {
		t.Fatalf("the sentinel outside the layer is damaged: %v", err)
	}
	if d := SnapshotDiff(before, after); d != "" {
		t.Errorf("the import (error %v) changed the sentinel directory outside the layer:\n%s", r.err, d)
	}
	switch {
	case c.Want == Refused && r.err == nil:
		t.Errorf("the import was accepted; want it refused")
	case c.Want == Accepted && r.err != nil:
		t.Errorf("the import was refused: %v", r.err)
	}
	if r.err != nil && strings.Contains(r.err.Error(), "\n") {
		t.Errorf("the refusal is not one line: %q", r.err)
	}
	if r.layer != "" {
		if err := IsRealDir(r.layer); err != nil {
			t.Errorf("the layer root: %v", err)
		} else if c.Check != nil && r.err == nil {
			if err := c.Check(r.layer); err != nil {
				t.Errorf("the layer after the import: %v", err)
			}
		}
	}
	return r.err
}

// RunHostile imports every HostileArchive into a fresh layer of one driver
// from newDriver, as thinctl import does (create, ApplyDiff, remove the
// layer when that fails), and checks each with CheckHostile: a sentinel
// outside is unchanged, the layer root stays a real directory, a refused
// import leaves no layer.
func RunHostile(t *testing.T, newDriver func(t *testing.T) driver.Driver) {
	if os.Geteuid() != 0 {
		t.Skip("the hostile-archive suite needs root")
	}
	d := newDriver(t)
	dd := driver.DiffOf(d)
	for i, c := range HostileArchives() {
		t.Run(c.Name, func(t *testing.T) {
			outside := filepath.Join(t.TempDir(), "sentinel")
			must(t, os.Mkdir(outside, 0o755))
			must(t, MakeSentinel(outside))
			id := fmt.Sprintf("hostile-%d", i)
			ctx := context.Background()
			mounted := false
			CheckHostile(t, c, outside, func(stream []byte) (string, error) {
				if err := d.CreateReadWrite(ctx, id, "", nil); err != nil {
					return "", fmt.Errorf("create the layer: %w", err)
				}
				// Mounted across ApplyDiff, so that it and the read-back
				// share one mount (ApplyDiff's own Get only counts).
				layer, err := d.Get(ctx, id, "")
				if err != nil {
					return "", fmt.Errorf("mount the new layer: %w", err)
				}
				mounted = true
				if _, err := dd.ApplyDiff(ctx, id, "", bytes.NewReader(stream)); err != nil {
					return "", err
				}
				return layer, nil
			})
			if mounted {
				must(t, d.Put(ctx, id))
			}
			before, _ := Snapshot(outside)
			if err := d.Remove(ctx, id); err != nil {
				t.Errorf("remove the layer: %v", err)
			}
			if d.Exists(id) {
				t.Errorf("layer %s still exists after its removal", id)
			}
			if after, _ := Snapshot(outside); SnapshotDiff(before, after) != "" {
				t.Errorf("removing the layer changed the sentinel:\n%s", SnapshotDiff(before, after))
			}
		})
	}
}
