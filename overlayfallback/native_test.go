package overlayfallback

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/thinctl/thinctl/driver"
)

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root for whiteout devices and trusted xattrs")
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// layerSpec builds a layer directory from lines: "f path content",
// "d path", "w path" (whiteout), "o path" (opaque dir).
func buildLayer(t *testing.T, f Format, lines ...string) string {
	t.Helper()
	root := t.TempDir()
	for _, l := range lines {
		parts := strings.SplitN(l, " ", 3)
		p := filepath.Join(root, parts[1])
		must(t, os.MkdirAll(filepath.Dir(p), 0o755))
		switch parts[0] {
		case "f":
			must(t, os.WriteFile(p, []byte(parts[2]), 0o644))
		case "d":
			must(t, os.MkdirAll(p, 0o755))
		case "w":
			dir, err := os.Open(filepath.Dir(p))
			must(t, err)
			must(t, f.Whiteout(int(dir.Fd()), filepath.Base(p), parts[1]))
			dir.Close()
		case "o":
			must(t, os.MkdirAll(p, 0o755))
			dir, err := os.Open(p)
			must(t, err)
			must(t, f.Opaque(int(dir.Fd()), parts[1], nil))
			dir.Close()
		}
	}
	return root
}

// tarNames lists a stream's entry names (with a type letter for markers).
func tarNames(t *testing.T, r io.Reader) []string {
	t.Helper()
	var out []string
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		must(t, err)
		out = append(out, h.Name)
	}
}

var formats = []Format{Overlay, Aufs}

func TestWriteDiffEmitsOCIWhiteoutsForEachNativeForm(t *testing.T) {
	requireRoot(t)
	for _, f := range formats {
		t.Run(f.Name()+" whiteouts and opaque directories become .wh. entries", func(t *testing.T) {
			upper := buildLayer(t, f, "f etc/passwd x", "w etc/shadow", "o var/cache", "f var/cache/new n", "w gone")
			var buf bytes.Buffer
			must(t, WriteDiff(&buf, upper, f))
			names := tarNames(t, &buf)
			sort.Strings(names)
			got := strings.Join(names, " ")
			want := ".wh.gone etc/ etc/.wh.shadow etc/passwd var/ var/cache/ var/cache/.wh..wh..opq var/cache/new"
			if got != want {
				t.Errorf("stream entries:\n got %s\nwant %s", got, want)
			}
		})
	}
}

func TestApplyDiffWritesEachNativeForm(t *testing.T) {
	requireRoot(t)
	stream := func() io.Reader {
		var buf bytes.Buffer
		tw := tar.NewWriter(&buf)
		for _, h := range []tar.Header{
			{Name: "etc/", Typeflag: tar.TypeDir, Mode: 0o755},
			{Name: "etc/.wh.shadow", Typeflag: tar.TypeReg},
			{Name: "var/cache/", Typeflag: tar.TypeDir, Mode: 0o755},
			{Name: "var/cache/.wh..wh..opq", Typeflag: tar.TypeReg},
		} {
			must(t, tw.WriteHeader(&h))
		}
		must(t, tw.Close())
		return &buf
	}
	cases := []struct {
		f     Format
		check func(t *testing.T, root string)
	}{
		{Overlay, func(t *testing.T, root string) {
			var st unix.Stat_t
			must(t, unix.Lstat(filepath.Join(root, "etc/shadow"), &st))
			if st.Mode&unix.S_IFMT != unix.S_IFCHR || st.Rdev != 0 {
				t.Errorf("etc/shadow is mode %o rdev %d, want a 0/0 character device", st.Mode, st.Rdev)
			}
			buf := make([]byte, 4)
			n, err := unix.Lgetxattr(filepath.Join(root, "var/cache"), OverlayOpaqueXattr, buf)
			if err != nil || string(buf[:n]) != "y" {
				t.Errorf("var/cache opaque xattr = %q, %v; want y", buf[:n], err)
			}
		}},
		{Aufs, func(t *testing.T, root string) {
			for _, p := range []string{"etc/.wh.shadow", "var/cache/.wh..wh..opq"} {
				fi, err := os.Lstat(filepath.Join(root, p))
				if err != nil || !fi.Mode().IsRegular() {
					t.Errorf("%s: %v, want a regular marker file", p, err)
				}
			}
		}},
	}
	for _, c := range cases {
		t.Run(c.f.Name()+" form is written for OCI whiteouts", func(t *testing.T) {
			root := t.TempDir()
			_, err := ApplyDiff(root, stream(), c.f)
			must(t, err)
			c.check(t, root)
			// Reading the layer back yields the same OCI entries.
			var buf bytes.Buffer
			must(t, WriteDiff(&buf, root, c.f))
			if got := strings.Join(tarNames(t, &buf), " "); got != "etc/ etc/.wh.shadow var/ var/cache/ var/cache/.wh..wh..opq" {
				t.Errorf("round trip gives %s", got)
			}
		})
	}
}

func TestChangesAgainstALowerStack(t *testing.T) {
	requireRoot(t)
	for _, f := range formats {
		t.Run(f.Name()+" layers", func(t *testing.T) {
			bottom := buildLayer(t, f, "f a/old1 1", "f a/old2 2", "f b/x x", "f c/y y", "f d/deep/z z")
			middle := buildLayer(t, f, "w b", "o c", "f c/fresh f", "f d/deep/more m")
			upper := buildLayer(t, f,
				"f a/old1 changed", // modifies a file from bottom
				"f b/x new",        // b was whited out in middle: added
				"w c/fresh",        // deletes middle's file
				"o d",              // opaque over a dir the stack shows
				"f d/kept k",       // added inside the opaque dir
				"f e/new e",        // added dir and file
			)
			got, err := Changes(upper, []string{middle, bottom}, f)
			must(t, err)
			want := "[M /a M /a/old1 A /b A /b/x M /c D /c/fresh M /d D /d/deep A /d/kept A /e A /e/new]"
			if s := fmt.Sprint(got); s != want {
				t.Errorf("Changes:\n got %s\nwant %s", s, want)
			}
		})
	}
}

func TestDiffSizeCountsContentOnce(t *testing.T) {
	requireRoot(t)
	for _, f := range formats {
		t.Run(f.Name()+" layer", func(t *testing.T) {
			upper := buildLayer(t, f, "f a 12345", "f b/c 123", "w gone", "o opq")
			must(t, os.Link(filepath.Join(upper, "a"), filepath.Join(upper, "a2")))
			n, err := DiffSize(upper, f)
			must(t, err)
			if n != 8 {
				t.Errorf("DiffSize = %d, want 8 (markers excluded, hard link once)", n)
			}
		})
	}
}

func TestClassify(t *testing.T) {
	requireRoot(t)
	dir := t.TempDir()
	must(t, unix.Mknod(filepath.Join(dir, "wo"), unix.S_IFCHR, 0))
	must(t, unix.Mknod(filepath.Join(dir, "null"), unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))))
	must(t, os.WriteFile(filepath.Join(dir, ".wh.x"), nil, 0o444))
	must(t, os.WriteFile(filepath.Join(dir, ".wh..wh..opq"), nil, 0o444))
	must(t, os.WriteFile(filepath.Join(dir, ".wh..wh.aufs"), nil, 0o444))
	must(t, os.WriteFile(filepath.Join(dir, "plain"), nil, 0o644))
	cases := []struct {
		f      Format
		name   string
		kind   driver.WhiteoutKind
		hidden string
	}{
		{Overlay, "wo", driver.Whiteout, "wo"},
		{Overlay, "null", driver.NotWhiteout, ""},
		{Overlay, ".wh.x", driver.NotWhiteout, ""},
		{Aufs, ".wh.x", driver.Whiteout, "x"},
		{Aufs, ".wh..wh..opq", driver.OpaqueMarker, ""},
		{Aufs, ".wh..wh.aufs", driver.WhiteoutMeta, ""},
		{Aufs, "plain", driver.NotWhiteout, ""},
		{Aufs, "wo", driver.NotWhiteout, ""},
	}
	for _, c := range cases {
		t.Run(fmt.Sprintf("%s classifies %s", c.f.Name(), c.name), func(t *testing.T) {
			fi, err := os.Lstat(filepath.Join(dir, c.name))
			must(t, err)
			kind, hidden := c.f.Classify(c.name, fi)
			if kind != c.kind || hidden != c.hidden {
				t.Errorf("Classify = %v %q, want %v %q", kind, hidden, c.kind, c.hidden)
			}
		})
	}
}

func TestStackListHonoursWhiteoutsAndOpaqueDirectories(t *testing.T) {
	requireRoot(t)
	top := buildLayer(t, Overlay, "w d/a", "f d/n n")
	mid := buildLayer(t, Overlay, "o d", "f d/m m")
	bottom := buildLayer(t, Overlay, "f d/a a", "f d/b b")
	s := &stack{lowers: []string{top, mid, bottom}, f: Overlay, names: map[string]map[string]bool{}}
	got, err := s.list("d")
	must(t, err)
	sort.Strings(got)
	if strings.Join(got, ",") != "m,n" {
		t.Errorf("stack shows %v in d, want [m n] (a whited out, b under an opaque dir)", got)
	}
}

func TestReservedAufsDirectoriesStayOutOfDiffs(t *testing.T) {
	requireRoot(t)
	upper := buildLayer(t, Aufs,
		"f keep 12",
		"f .wh..wh.aufs -",
		"f .wh..wh.plnk/1.2 pseudo-link",
		"f .wh..wh.orph/o orphan",
		"f dir/.wh..wh.name.1/f being-removed",
		"f dir/.wh..wh.name.1/sub/g being-removed",
		"f dir/x 1",
	)
	lower := buildLayer(t, Aufs, "f dir/y y")
	cases := []struct {
		name string
		got  func() (string, error)
		want string
	}{
		{"WriteDiff writes no entry from inside them", func() (string, error) {
			var buf bytes.Buffer
			err := WriteDiff(&buf, upper, Aufs)
			return strings.Join(tarNames(t, &buf), " "), err
		}, "dir/ dir/x keep"},
		{"Changes lists no path inside them", func() (string, error) {
			got, err := Changes(upper, []string{lower}, Aufs)
			return fmt.Sprint(got), err
		}, "[M /dir A /dir/x A /keep]"},
		{"DiffSize counts no file inside them", func() (string, error) {
			n, err := DiffSize(upper, Aufs)
			return fmt.Sprint(n), err
		}, "3"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := c.got()
			must(t, err)
			if got != c.want {
				t.Errorf("got %s, want %s", got, c.want)
			}
		})
	}
}

func TestWriteDiffLeavesOutSockets(t *testing.T) {
	requireRoot(t)
	for _, f := range formats {
		t.Run(f.Name()+" layer with a socket", func(t *testing.T) {
			upper := buildLayer(t, f, "f run/a 1")
			must(t, unix.Mknod(filepath.Join(upper, "run/sock"), unix.S_IFSOCK|0o600, 0))
			var buf bytes.Buffer
			must(t, WriteDiff(&buf, upper, f))
			if got := strings.Join(tarNames(t, &buf), " "); got != "run/ run/a" {
				t.Errorf("stream entries %s, want run/ run/a", got)
			}
		})
	}
}

// TestAnAppliedOpaqueMarkerReplacesTheDirectory checks both native forms
// agree: an opaque marker in a stream applied over a layer that already has
// content drops the directory's earlier entries (content and whiteouts) but
// keeps what the stream itself wrote there, and the layer then reads back
// as that stream, with the lower layers' entries deleted.
func TestAnAppliedOpaqueMarkerReplacesTheDirectory(t *testing.T) {
	requireRoot(t)
	cases := []struct {
		name        string
		before      []string
		stream      []tarEntryT
		wantDiff    string
		wantChanges string
	}{
		{
			name:        "a marker in a subdirectory",
			before:      []string{"f keep k", "f var/old o", "w var/gone", "f var/sub/deep d"},
			stream:      []tarEntryT{{"var/", ""}, {"var/a", "a"}, {"var/.wh..wh..opq", ""}, {"var/z", "z"}},
			wantDiff:    "keep var/ var/.wh..wh..opq var/a var/z",
			wantChanges: "[A /keep M /var A /var/a D /var/lower A /var/z]",
		},
		{
			name:        "a marker at the root",
			before:      []string{"f old o", "d dir"},
			stream:      []tarEntryT{{".wh..wh..opq", ""}, {"new", "n"}},
			wantDiff:    ".wh..wh..opq new",
			wantChanges: "[A /new D /var]",
		},
	}
	for _, f := range formats {
		for _, c := range cases {
			t.Run(f.Name()+" "+c.name, func(t *testing.T) {
				lower := buildLayer(t, f, "f var/lower l")
				upper := buildLayer(t, f, c.before...)
				_, err := ApplyDiff(upper, streamOf(t, c.stream), f)
				must(t, err)
				var buf bytes.Buffer
				must(t, WriteDiff(&buf, upper, f))
				if got := strings.Join(tarNames(t, &buf), " "); got != c.wantDiff {
					t.Errorf("layer reads back as\n %s\nwant %s", got, c.wantDiff)
				}
				got, err := Changes(upper, []string{lower}, f)
				must(t, err)
				if fmt.Sprint(got) != c.wantChanges {
					t.Errorf("Changes = %v, want %s", got, c.wantChanges)
				}
			})
		}
	}
}

func TestAnAppliedRootOpaqueMarkerKeepsAufsMetadata(t *testing.T) {
	requireRoot(t)
	upper := buildLayer(t, Aufs, "f .wh..wh.aufs -", "f .wh..wh.plnk/1.2 p", "f old o")
	_, err := ApplyDiff(upper, streamOf(t, []tarEntryT{{".wh..wh..opq", ""}}), Aufs)
	must(t, err)
	for _, p := range []string{".wh..wh.aufs", ".wh..wh.plnk/1.2", ".wh..wh..opq"} {
		if _, err := os.Lstat(filepath.Join(upper, p)); err != nil {
			t.Errorf("%s: %v, want it kept", p, err)
		}
	}
	if _, err := os.Lstat(filepath.Join(upper, "old")); !os.IsNotExist(err) {
		t.Errorf("old: %v, want it dropped by the marker", err)
	}
}

// tarEntryT is a stream entry: a name ending in "/" is a directory, any
// other a regular file with the given body.
type tarEntryT struct{ name, body string }

func streamOf(t *testing.T, entries []tarEntryT) io.Reader {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(e.body))}
		if strings.HasSuffix(e.name, "/") {
			h.Typeflag, h.Mode, h.Size = tar.TypeDir, 0o755, 0
		}
		must(t, tw.WriteHeader(h))
		_, err := io.WriteString(tw, e.body)
		must(t, err)
	}
	must(t, tw.Close())
	return &buf
}

func TestAufsClassifiesByNameAlone(t *testing.T) {
	cases := []struct {
		name, base string
		kind       driver.WhiteoutKind
		hidden     string
	}{
		{"an ordinary name is content", "hosts", driver.NotWhiteout, ""},
		{"a dot file is content", ".bashrc", driver.NotWhiteout, ""},
		{"a .wh. name is a whiteout", ".wh.zegrep", driver.Whiteout, "zegrep"},
		{"a whiteout of a dot file is a whiteout", ".wh..bashrc", driver.Whiteout, ".bashrc"},
		{"the opaque marker is opaque", ".wh..wh..opq", driver.OpaqueMarker, ""},
		{"the whiteout base is metadata", ".wh..wh.aufs", driver.WhiteoutMeta, ""},
		{"the pseudo-link directory is metadata", ".wh..wh.plnk", driver.WhiteoutMeta, ""},
		{"the orphan directory is metadata", ".wh..wh.orph", driver.WhiteoutMeta, ""},
		{"a renamed-away directory is metadata", ".wh..wh.name.4f2a", driver.WhiteoutMeta, ""},
		{"a bare .wh. hides nothing and is metadata", ".wh.", driver.WhiteoutMeta, ""},
		{"a whiteout of dot hides nothing and is metadata", ".wh..", driver.WhiteoutMeta, ""},
		{"a whiteout of dot-dot hides nothing and is metadata", ".wh...", driver.WhiteoutMeta, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			kind, hidden := Aufs.Classify(c.base, nil)
			if kind != c.kind || hidden != c.hidden {
				t.Errorf("Classify(%q) = %v %q, want %v %q", c.base, kind, hidden, c.kind, c.hidden)
			}
		})
	}
}
