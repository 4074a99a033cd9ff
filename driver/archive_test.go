package driver

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestParseWhiteout(t *testing.T) {
	cases := []struct {
		name, in string
		kind     WhiteoutKind
		target   string
		wantErr  bool
	}{
		{"a plain file is content", "etc/passwd", NotWhiteout, "", false},
		{"a whiteout names its sibling", "etc/.wh.shadow", Whiteout, "etc/shadow", false},
		{"a whiteout at the root", ".wh.boot", Whiteout, "boot", false},
		{"a leading ./ is ignored", "./usr/.wh.lib", Whiteout, "usr/lib", false},
		{"the opaque marker names its directory", "var/cache/.wh..wh..opq", OpaqueMarker, "var/cache", false},
		{"the opaque marker at the root", ".wh..wh..opq", OpaqueMarker, ".", false},
		{"aufs metadata directories are skipped", ".wh..wh.plnk/123.456", WhiteoutMeta, "", false},
		{"aufs metadata at the end is skipped", "a/.wh..wh.aufs", WhiteoutMeta, "", false},
		{"a file inside a nested aufs directory is skipped", "x/.wh..wh.foo.1/file", WhiteoutMeta, "", false},
		{"a whiteout inside a nested aufs directory is skipped", "x/.wh..wh.foo.1/.wh.bar", WhiteoutMeta, "", false},
		{"an opaque marker inside a nested aufs directory is skipped", "x/.wh..wh.foo.1/.wh..wh..opq", WhiteoutMeta, "", false},
		{"a nested aufs directory itself is skipped", "x/y/.wh..wh.foo.1/", WhiteoutMeta, "", false},
		{"anything below an opaque marker name is skipped", "a/.wh..wh..opq/b", WhiteoutMeta, "", false},
		{"a bare prefix is an error", "a/.wh.", NotWhiteout, "", true},
		{"a whiteout of .. is an error", "a/.wh...", NotWhiteout, "", true},
		{"a name merely containing .wh. is content", "a/b.wh.c", NotWhiteout, "", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			kind, target, err := ParseWhiteout(c.in)
			if (err != nil) != c.wantErr || kind != c.kind || target != c.target {
				t.Errorf("ParseWhiteout(%q) = %v, %q, %v; want %v, %q, error %v", c.in, kind, target, err, c.kind, c.target, c.wantErr)
			}
		})
	}
}

func TestWhiteoutNameIsTheInverseOfParseWhiteout(t *testing.T) {
	for _, p := range []string{"a", "a/b", "x/y/z", "/lead/slash"} {
		kind, target, err := ParseWhiteout(WhiteoutName(p))
		if err != nil || kind != Whiteout || target != strings.Trim(p, "/") {
			t.Errorf("ParseWhiteout(WhiteoutName(%q)) = %v %q %v", p, kind, target, err)
		}
	}
}

func TestCleanEntryName(t *testing.T) {
	cases := []struct {
		name, in, want string
		wantErr        bool
	}{
		{"a relative name stays", "usr/bin/sh", "usr/bin/sh", false},
		{"./ and trailing slashes go", "./usr/lib/", "usr/lib", false},
		{"an absolute name is made relative", "/etc/hosts", "etc/hosts", false},
		{"the root is a dot", "./", ".", false},
		{"a .. component is refused", "a/../../etc/passwd", "", true},
		{"a NUL byte is refused", "a\x00b", "", true},
		{"an empty name is refused", "", "", true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := CleanEntryName(c.in)
			if (err != nil) != c.wantErr || got != c.want {
				t.Errorf("CleanEntryName(%q) = %q, %v", c.in, got, err)
			}
		})
	}
}

// tarOf builds a stream from headers; regular files get body as content.
func tarOf(t *testing.T, entries ...tarEntry) *bytes.Buffer {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := e.hdr
		h.Size = int64(len(e.body))
		if h.ModTime.IsZero() {
			h.ModTime = time.Unix(1700000000, 0)
		}
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatal(err)
		}
		if _, err := io.WriteString(tw, e.body); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return &buf
}

type tarEntry struct {
	hdr  tar.Header
	body string
}

func requireRoot(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to set owners and device nodes")
	}
}

func TestApplyTarRefusesEscapes(t *testing.T) {
	cases := []struct {
		name    string
		entries []tarEntry
	}{
		{"a .. entry", []tarEntry{{hdr: tar.Header{Name: "../evil", Typeflag: tar.TypeReg, Mode: 0o644}}}},
		{"a write through a symlink", []tarEntry{
			{hdr: tar.Header{Name: "link", Typeflag: tar.TypeSymlink, Linkname: "/tmp"}},
			{hdr: tar.Header{Name: "link/evil", Typeflag: tar.TypeReg, Mode: 0o644}, body: "x"},
		}},
		{"a hard link to outside", []tarEntry{{hdr: tar.Header{Name: "h", Typeflag: tar.TypeLink, Linkname: "../../etc/passwd"}}}},
		// A whiteout through a symlinked parent is no longer refused: the
		// parent resolves inside the layer (issue 21). The hostile-archive
		// catalogue in drivertest proves nothing outside is touched.
	}
	for _, c := range cases {
		t.Run(c.name+" is refused", func(t *testing.T) {
			root := t.TempDir()
			if _, err := ApplyTar(root, tarOf(t, c.entries...), nil); err == nil {
				t.Fatal("ApplyTar accepted it")
			}
		})
	}
}

// TestTarRoundTrip writes a tree with every kind of entry through
// WriteChanges and unpacks it elsewhere with ApplyTar.
func TestTarRoundTripKeepsEveryKindOfEntry(t *testing.T) {
	requireRoot(t)
	src, dst := t.TempDir(), t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.Mkdir(filepath.Join(src, "d"), 0o755))
	must(os.WriteFile(filepath.Join(src, "d/f"), []byte("content"), 0o644))
	must(os.Chown(filepath.Join(src, "d/f"), 12, 34))
	must(os.Link(filepath.Join(src, "d/f"), filepath.Join(src, "d/hard")))
	must(os.WriteFile(filepath.Join(src, "suid"), []byte("#!"), 0o755))
	must(unix.Chmod(filepath.Join(src, "suid"), 0o4755))
	must(os.Mkdir(filepath.Join(src, "sticky"), 0o755))
	must(unix.Chmod(filepath.Join(src, "sticky"), 0o1777))
	must(os.Symlink("d/f", filepath.Join(src, "sym")))
	must(os.Lchown(filepath.Join(src, "sym"), 5, 6))
	must(unix.Mknod(filepath.Join(src, "null"), unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))))
	must(unix.Mkfifo(filepath.Join(src, "fifo"), 0o600))
	xattrOK := unix.Lsetxattr(filepath.Join(src, "d/f"), "user.thinctl", []byte("v"), 0) == nil
	must(unix.Lsetxattr(filepath.Join(src, "d"), "trusted.overlay.opaque", []byte("y"), 0))
	mtime := time.Unix(1600000000, 123456789)
	must(os.Chtimes(filepath.Join(src, "d/f"), mtime, mtime))

	changes, err := ChangesDirs(src, "")
	must(err)
	var buf bytes.Buffer
	must(WriteChanges(&buf, src, changes))
	n, err := ApplyTar(dst, &buf, nil)
	must(err)
	if n != int64(len("content")+len("#!")) {
		t.Errorf("ApplyTar applied %d bytes, want %d (the hard link counted once)", n, len("content")+len("#!"))
	}
	after, err := ChangesDirs(dst, src)
	must(err)
	if len(after) != 0 {
		t.Errorf("unpacked tree differs from the source: %v", after)
	}
	var a, b unix.Stat_t
	must(unix.Lstat(filepath.Join(dst, "d/f"), &a))
	must(unix.Lstat(filepath.Join(dst, "d/hard"), &b))
	if a.Ino != b.Ino {
		t.Error("d/hard is not a hard link to d/f")
	}
	if a.Mtim.Nano() != mtime.UnixNano() {
		t.Errorf("mtime %d, want %d", a.Mtim.Nano(), mtime.UnixNano())
	}
	if xattrOK {
		if v, err := getXattr(filepath.Join(dst, "d/f"), "user.thinctl"); err != nil || string(v) != "v" {
			t.Errorf("user.thinctl = %q, %v", v, err)
		}
	}
	if _, err := getXattr(filepath.Join(dst, "d"), "trusted.overlay.opaque"); err == nil {
		t.Error("overlay's private xattr was copied into the stream")
	}
}

func TestApplyTarWhiteoutsAndOpaqueDirectories(t *testing.T) {
	root := t.TempDir()
	for _, p := range []string{"keep/a", "gone/x", "opq/old1", "opq/old2", "file"} {
		os.MkdirAll(filepath.Join(root, filepath.Dir(p)), 0o755)
		if err := os.WriteFile(filepath.Join(root, p), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	stream := tarOf(t,
		tarEntry{hdr: tar.Header{Name: ".wh.gone", Typeflag: tar.TypeReg}},
		tarEntry{hdr: tar.Header{Name: ".wh.file", Typeflag: tar.TypeReg}},
		tarEntry{hdr: tar.Header{Name: "opq/", Typeflag: tar.TypeDir, Mode: 0o755}},
		tarEntry{hdr: tar.Header{Name: "opq/new", Typeflag: tar.TypeReg, Mode: 0o644}, body: "n"},
		tarEntry{hdr: tar.Header{Name: "opq/.wh..wh..opq", Typeflag: tar.TypeReg}},
		tarEntry{hdr: tar.Header{Name: ".wh..wh.plnk/1.2", Typeflag: tar.TypeReg}},
	)
	if _, err := ApplyTar(root, stream, nil); err != nil {
		t.Fatal(err)
	}
	got, err := ChangesDirs(root, "")
	if err != nil {
		t.Fatal(err)
	}
	want := "[A /keep A /keep/a A /opq A /opq/new]"
	if sprint(got) != want {
		t.Errorf("tree after apply: %s, want %s", sprint(got), want)
	}
}

func TestApplyTarWritesNothingAtOrBelowReservedNames(t *testing.T) {
	cases := []struct {
		name    string
		entries []tarEntry
	}{
		{"a file in a nested aufs directory", []tarEntry{
			{hdr: tar.Header{Name: "x/", Typeflag: tar.TypeDir, Mode: 0o755}},
			{hdr: tar.Header{Name: "x/.wh..wh.foo.1/", Typeflag: tar.TypeDir, Mode: 0o755}},
			{hdr: tar.Header{Name: "x/.wh..wh.foo.1/file", Typeflag: tar.TypeReg, Mode: 0o644}, body: "leak"},
		}},
		{"a whiteout in a nested aufs directory", []tarEntry{
			{hdr: tar.Header{Name: "x/", Typeflag: tar.TypeDir, Mode: 0o755}},
			{hdr: tar.Header{Name: "x/.wh..wh.foo.1/.wh.bar", Typeflag: tar.TypeReg}},
		}},
		{"a hard link to a file in the pseudo-link directory", []tarEntry{
			{hdr: tar.Header{Name: "x/", Typeflag: tar.TypeDir, Mode: 0o755}},
			{hdr: tar.Header{Name: ".wh..wh.plnk/1.2", Typeflag: tar.TypeReg, Mode: 0o644}, body: "p"},
			{hdr: tar.Header{Name: "x/h", Typeflag: tar.TypeLink, Linkname: ".wh..wh.plnk/1.2"}},
		}},
	}
	for _, c := range cases {
		t.Run(c.name+" is left out", func(t *testing.T) {
			root := t.TempDir()
			n, err := ApplyTar(root, tarOf(t, c.entries...), nil)
			if err != nil {
				t.Fatal(err)
			}
			got, err := ChangesDirs(root, "")
			if err != nil {
				t.Fatal(err)
			}
			if sprint(got) != "[A /x]" || n != 0 {
				t.Errorf("tree after apply: %s (%d bytes), want [A /x] (0 bytes)", sprint(got), n)
			}
		})
	}
}

func sprint(cs []Change) string {
	parts := make([]string, len(cs))
	for i, c := range cs {
		parts[i] = c.String()
	}
	return "[" + strings.Join(parts, " ") + "]"
}

func TestChangesDirsReportsDeletionsOnceAndParentsAsModified(t *testing.T) {
	oldDir, newDir := t.TempDir(), t.TempDir()
	for _, d := range []string{oldDir, newDir} {
		for _, p := range []string{"a/b/c", "a/keep", "gone/deep/x"} {
			os.MkdirAll(filepath.Join(d, filepath.Dir(p)), 0o755)
			os.WriteFile(filepath.Join(d, p), []byte("same"), 0o644)
			os.Chtimes(filepath.Join(d, p), time.Unix(1, 0), time.Unix(1, 0))
		}
	}
	os.RemoveAll(filepath.Join(newDir, "gone"))
	os.WriteFile(filepath.Join(newDir, "a/b/c"), []byte("different"), 0o644)
	os.MkdirAll(filepath.Join(newDir, "n/m"), 0o755)
	got, err := ChangesDirs(newDir, oldDir)
	if err != nil {
		t.Fatal(err)
	}
	want := "[M /a M /a/b M /a/b/c D /gone A /n A /n/m]"
	if sprint(got) != want {
		t.Errorf("ChangesDirs = %s, want %s", sprint(got), want)
	}
}

func TestAnOpaqueMarkerKeepsWhatTheStreamWroteBelowIt(t *testing.T) {
	root := t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(root, "opq/sub"), 0o755))
	must(os.WriteFile(filepath.Join(root, "opq/sub/old"), nil, 0o644))
	must(os.WriteFile(filepath.Join(root, "opq/old"), nil, 0o644))
	// No entry for opq/sub itself: ApplyTar creates it as a parent.
	stream := tarOf(t,
		tarEntry{hdr: tar.Header{Name: "opq/sub/new", Typeflag: tar.TypeReg, Mode: 0o644}, body: "n"},
		tarEntry{hdr: tar.Header{Name: "opq/.wh..wh..opq", Typeflag: tar.TypeReg}},
	)
	_, err := ApplyTar(root, stream, nil)
	must(err)
	got, err := ChangesDirs(root, "")
	must(err)
	if want := "[A /opq A /opq/sub A /opq/sub/new A /opq/sub/old]"; sprint(got) != want {
		t.Errorf("tree after apply: %s, want %s", sprint(got), want)
	}
}

// TestApplyTarKeepsSparseFilesSparse unpacks a 1 MiB file of zeros with
// 5 bytes of data in the middle: same content, size and blocks for the
// data only; a cut stream is still an error.
func TestApplyTarKeepsSparseFilesSparse(t *testing.T) {
	body := make([]byte, 1<<20)
	copy(body[600000:], "hello")
	root := t.TempDir()
	if _, err := ApplyTar(root, tarOf(t, tarEntry{hdr: tar.Header{Name: "sparse", Typeflag: tar.TypeReg, Mode: 0o644}, body: string(body)}), nil); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(root, "sparse")
	got, err := os.ReadFile(p)
	if err != nil || !bytes.Equal(got, body) {
		t.Fatalf("content differs (%d bytes read, %v)", len(got), err)
	}
	var st unix.Stat_t
	if err := unix.Stat(p, &st); err != nil {
		t.Fatal(err)
	}
	if st.Blocks*512 > 64<<10 {
		t.Errorf("the file has %d bytes allocated for 5 bytes of data: its zeros were written, not left as holes", st.Blocks*512)
	}

	cut := tarOf(t, tarEntry{hdr: tar.Header{Name: "cut", Typeflag: tar.TypeReg, Mode: 0o644}, body: string(body)})
	cut.Truncate(100000)
	if _, err := ApplyTar(t.TempDir(), cut, nil); err == nil {
		t.Error("ApplyTar accepted a stream cut inside a file")
	}
}

func TestAContextReaderStopsWhenItsContextEnds(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	r := ContextReader(ctx, strings.NewReader("abcdef"))
	buf := make([]byte, 3)
	if n, err := r.Read(buf); n != 3 || err != nil || string(buf) != "abc" {
		t.Fatalf("first read = %d %q %v", n, buf, err)
	}
	cancel()
	if n, err := r.Read(buf); n != 0 || !errors.Is(err, context.Canceled) {
		t.Fatalf("read after cancel = %d, %v; want 0 and context.Canceled", n, err)
	}
}

func TestApplyDiffStopsWithItsContext(t *testing.T) {
	requireRoot(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	n, err := ApplyTar(t.TempDir(), ContextReader(ctx, tarOf(t, tarEntry{hdr: tar.Header{Name: "f", Typeflag: tar.TypeReg, Mode: 0o644, Size: 1}, body: "x"})), nil)
	if !errors.Is(err, context.Canceled) || n != 0 {
		t.Fatalf("ApplyTar of a cancelled stream = %d, %v; want context.Canceled", n, err)
	}
}
