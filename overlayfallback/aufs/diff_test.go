package aufs

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/thinctl/thinctl/driver"
)

// layeredHome makes "base" and "upper" on it, with upper's diff directory
// shaped the way aufs leaves a branch after a container changed files:
// copied-up directories, whiteouts hard-linked to the whiteout base, an
// opaque directory, and aufs's own entries that must stay out of diffs.
func layeredHome(t *testing.T) *Driver {
	t.Helper()
	d, _ := newTestDriver(t)
	mustCreate(t, d, "base", "")
	mustCreate(t, d, "upper", "base")
	writeTree(t, d.diffPath("base"), map[string]string{
		"etc/passwd":             "root\n",
		"etc/shadow":             "secret\n",
		"home/user/notes":        "hello\n",
		"var/lib/apt/lists/pkgs": "old index\n",
		"var/lib/apt/lists/lock": "",
		"bin/sh->busybox":        "",
	})
	up := d.diffPath("upper")
	writeTree(t, up, map[string]string{
		"etc/passwd":                     "root\nuser\n",
		"var/lib/apt/lists/new":          "fresh\n",
		"var/lib/apt/lists/.wh..wh..opq": "",
		"opt/tool":                       "0123456789",
		".wh..wh.aufs":                   "",
		".wh..wh.plnk/1234.5":            "pseudo-link",
		".wh..wh.orph/":                  "",
		"home/.wh..wh.user.4f2a/notes":   "being removed",
	})
	// aufs makes whiteouts hard links to the whiteout base.
	for _, wh := range []string{"etc/.wh.shadow", "home/.wh.user"} {
		if err := os.Link(filepath.Join(up, ".wh..wh.aufs"), filepath.Join(up, wh)); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Link(filepath.Join(up, "opt/tool"), filepath.Join(up, "opt/tool-alias")); err != nil {
		t.Fatal(err)
	}
	return d
}

// tarEntry is what a test checks of one tar header.
type tarEntry struct {
	Name     string
	Type     byte
	Size     int64
	Linkname string
}

func readTar(t *testing.T, r io.Reader) []tarEntry {
	t.Helper()
	var out []tarEntry
	tr := tar.NewReader(r)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, tarEntry{hdr.Name, hdr.Typeflag, hdr.Size, hdr.Linkname})
	}
}

func TestDiffOfADiffDirEmitsOCIWhiteoutsAndSkipsAufsMetadata(t *testing.T) {
	d := layeredHome(t)
	rc, err := d.Diff(t.Context(), "upper", "base")
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	got := readTar(t, rc)
	reg, dir, link := byte(tar.TypeReg), byte(tar.TypeDir), byte(tar.TypeLink)
	want := []tarEntry{
		{"etc/", dir, 0, ""},
		{"etc/.wh.shadow", reg, 0, ""},
		{"etc/passwd", reg, 10, ""},
		{"home/", dir, 0, ""},
		{"home/.wh.user", reg, 0, ""},
		{"opt/", dir, 0, ""},
		{"opt/tool", reg, 10, ""},
		{"opt/tool-alias", link, 0, "opt/tool"},
		{"var/", dir, 0, ""},
		{"var/lib/", dir, 0, ""},
		{"var/lib/apt/", dir, 0, ""},
		{"var/lib/apt/lists/", dir, 0, ""},
		{"var/lib/apt/lists/.wh..wh..opq", reg, 0, ""},
		{"var/lib/apt/lists/new", reg, 6, ""},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Diff entries:\n got %v\nwant %v", got, want)
	}
}

func TestDiffSizeCountsContentOnceAndIgnoresAufsMetadata(t *testing.T) {
	d := layeredHome(t)
	size, err := d.DiffSize(t.Context(), "upper", "base")
	if err != nil {
		t.Fatal(err)
	}
	// etc/passwd (10) + opt/tool (10, its alias is the same inode) + new (6).
	if size != 26 {
		t.Fatalf("DiffSize = %d, want 26", size)
	}
}

func TestChangesOfADiffDir(t *testing.T) {
	d := layeredHome(t)
	got, err := d.Changes(t.Context(), "upper", "base")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"M /etc", "M /etc/passwd", "D /etc/shadow",
		"M /home", "D /home/user",
		"A /opt", "A /opt/tool", "A /opt/tool-alias",
		"M /var", "M /var/lib", "M /var/lib/apt", "M /var/lib/apt/lists",
		"D /var/lib/apt/lists/lock", "A /var/lib/apt/lists/new", "D /var/lib/apt/lists/pkgs",
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("Changes:\n got %v\nwant %v", got, want)
	}
	base, err := d.Changes(t.Context(), "base", "")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range base {
		if c.Kind != driver.ChangeAdd {
			t.Fatalf("a parentless layer only adds; got %v", c)
		}
	}
	if len(base) != 14 {
		t.Fatalf("Changes(base) lists %d paths, want the 14 of the base layer: %v", len(base), base)
	}
}

// ociStream builds a layer tar stream from entries; names ending in "/" are
// directories, "name->target" symlinks, the rest files with the given body.
func ociStream(t *testing.T, entries [][2]string) *bytes.Buffer {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	mtime := time.Unix(1600000000, 0)
	for _, e := range entries {
		hdr := &tar.Header{Name: e[0], Mode: 0o644, ModTime: mtime, Typeflag: tar.TypeReg, Size: int64(len(e[1]))}
		if strings.HasSuffix(e[0], "/") {
			hdr.Typeflag, hdr.Mode, hdr.Size = tar.TypeDir, 0o755, 0
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if hdr.Size > 0 {
			if _, err := tw.Write([]byte(e[1])); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return &buf
}

func TestApplyDiffWritesAufsWhiteouts(t *testing.T) {
	tests := []struct {
		name    string
		before  map[string]string // diff dir content before the stream
		stream  [][2]string
		want    []string // diff dir afterwards
		wantErr string
	}{
		{
			name:   "an OCI whiteout becomes the aufs whiteout file",
			stream: [][2]string{{"etc/", ""}, {"etc/.wh.shadow", ""}},
			want:   []string{"etc/", "etc/.wh.shadow"},
		},
		{
			name:   "an OCI opaque marker becomes the aufs opaque file",
			stream: [][2]string{{"var/", ""}, {"var/.wh..wh..opq", ""}, {"var/new", "x"}},
			want:   []string{"var/", "var/.wh..wh..opq", "var/new"},
		},
		{
			name:   "aufs-reserved names in a stream are ignored",
			stream: [][2]string{{".wh..wh.plnk/1.2", "x"}, {".wh..wh.aufs", ""}, {"a", "x"}},
			want:   []string{"a"},
		},
		{
			name:   "a whiteout deletes the layer's own earlier copy",
			before: map[string]string{"etc/shadow": "old", "etc/passwd": "old"},
			stream: [][2]string{{"etc/.wh.shadow", ""}},
			want:   []string{"etc/", "etc/.wh.shadow", "etc/passwd"},
		},
		{
			name:   "an opaque marker drops the directory's earlier entries but keeps the stream's",
			before: map[string]string{"var/old": "x", "var/.wh.gone": ""},
			stream: [][2]string{{"var/a", "x"}, {"var/.wh..wh..opq", ""}, {"var/z", "x"}},
			want:   []string{"var/", "var/.wh..wh..opq", "var/a", "var/z"},
		},
		{
			name:    "a name climbing out of the layer is refused",
			stream:  [][2]string{{"../escape", "x"}},
			wantErr: "climbs out",
		},
		{
			name:    "a whiteout that names nothing is refused",
			stream:  [][2]string{{"etc/.wh..", ""}},
			wantErr: "names no file",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, _ := newTestDriver(t)
			mustCreate(t, d, "l", "")
			writeTree(t, d.diffPath("l"), tt.before)
			n, err := d.ApplyDiff(t.Context(), "l", "", ociStream(t, tt.stream))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ApplyDiff error = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := listTree(t, d.diffPath("l")); !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("diff dir after ApplyDiff:\n got %q\nwant %q", got, tt.want)
			}
			var want int64
			for _, e := range tt.stream {
				if kind, _, _ := driver.ParseWhiteout(e[0]); kind == driver.NotWhiteout {
					want += int64(len(e[1]))
				}
			}
			if n != want {
				t.Fatalf("ApplyDiff reported %d bytes, want %d", n, want)
			}
			for _, p := range tt.want {
				if k, _, _ := driver.ParseWhiteout(p); k == driver.Whiteout || k == driver.OpaqueMarker {
					fi, err := os.Lstat(filepath.Join(d.diffPath("l"), p))
					if err != nil || !fi.Mode().IsRegular() || fi.Size() != 0 {
						t.Fatalf("%s must be an empty regular file: %v %v", p, fi, err)
					}
				}
			}
		})
	}
}

func TestDiffThenApplyReproducesTheLayer(t *testing.T) {
	d := layeredHome(t)
	up := d.diffPath("upper")
	if err := os.Chmod(filepath.Join(up, "opt/tool"), 0o4755); err != nil {
		t.Fatal(err)
	}
	if err := os.Lchown(filepath.Join(up, "etc/passwd"), 1000, 42); err != nil && os.Geteuid() == 0 {
		t.Fatal(err)
	}
	if err := unix.Mkfifo(filepath.Join(up, "opt/fifo"), 0o620); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../opt/tool", filepath.Join(up, "etc/tool")); err != nil {
		t.Fatal(err)
	}
	rc, err := d.Diff(t.Context(), "upper", "base")
	if err != nil {
		t.Fatal(err)
	}
	mustCreate(t, d, "copy", "base")
	applied, err := d.ApplyDiff(t.Context(), "copy", "base", rc)
	rc.Close()
	if err != nil {
		t.Fatal(err)
	}
	size, err := d.DiffSize(t.Context(), "upper", "base")
	if err != nil || size != applied {
		t.Fatalf("DiffSize = %d (%v), ApplyDiff applied %d; they must agree", size, err, applied)
	}
	if got, want := describeBranch(t, d.diffPath("copy")), describeBranch(t, up); !reflect.DeepEqual(got, want) {
		t.Fatalf("applied layer differs:\n got %q\nwant %q", got, want)
	}
	a, err := d.Changes(t.Context(), "upper", "base")
	if err != nil {
		t.Fatal(err)
	}
	b, err := d.Changes(t.Context(), "copy", "base")
	if err != nil || fmt.Sprint(a) != fmt.Sprint(b) {
		t.Fatalf("Changes differ after the round trip:\n upper %v\n  copy %v (%v)", a, b, err)
	}
	var s1, s2 unix.Stat_t
	if unix.Lstat(filepath.Join(d.diffPath("copy"), "opt/tool"), &s1) != nil ||
		unix.Lstat(filepath.Join(d.diffPath("copy"), "opt/tool-alias"), &s2) != nil || s1.Ino != s2.Ino {
		t.Fatal("opt/tool and opt/tool-alias must stay one inode")
	}
}

// describeBranch lists a branch's content entries (aufs metadata and
// whatever is inside it left out) with type, mode, owner, size, mtime of
// non-directories and link target.
func describeBranch(t *testing.T, root string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(root, func(p string, de fs.DirEntry, err error) error {
		if err != nil || p == root {
			return err
		}
		rel := strings.TrimPrefix(p, root+"/")
		kind, _, _ := driver.ParseWhiteout(rel)
		if kind == driver.WhiteoutMeta {
			if de.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		fi, err := de.Info()
		if err != nil {
			return err
		}
		st := fi.Sys().(*syscall.Stat_t)
		line := fmt.Sprintf("%s %o %d:%d", rel, st.Mode, st.Uid, st.Gid)
		switch {
		case kind != driver.NotWhiteout:
			line = fmt.Sprintf("%s marker size=%d", rel, fi.Size())
		case fi.Mode().IsRegular():
			b, _ := os.ReadFile(p)
			line += fmt.Sprintf(" %q mtime=%d", b, st.Mtim.Nano())
		case fi.Mode()&os.ModeSymlink != 0:
			l, _ := os.Readlink(p)
			line += " -> " + l
		}
		out = append(out, line)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestDiffAgainstAnotherLayerThanTheParentMountsBoth(t *testing.T) {
	d, f := newTestDriver(t)
	mustCreate(t, d, "a", "")
	mustCreate(t, d, "b", "a")
	f.failOn = func(c mountCall) error {
		if c.target == d.mntPath("b") {
			return unix.EPERM
		}
		return nil
	}
	_, err := d.Changes(t.Context(), "b", "")
	if !errors.Is(err, unix.EPERM) || !strings.Contains(err.Error(), "mount layer b") {
		t.Fatalf("Changes(b, \"\") = %v, want NaiveDiff's mount of b to be tried", err)
	}
	if len(f.layerCalls(d.mntPath("b"))) != 1 {
		t.Fatalf("mount calls: %+v", f.calls)
	}
}
