package main

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// treeEntry is everything a layer round trip must keep about one path.
type treeEntry struct {
	kind    string // dir, file, symlink, char, block, fifo
	mode    uint32 // permission and setuid/setgid/sticky bits
	uid     uint32
	gid     uint32
	size    int64
	mtime   int64 // ns
	target  string
	rdev    uint64
	sum     string // sha256 of a file's content
	xattrs  string // sorted name=value, overlay's own left out
	link    string // the first path of a hard-link group, "" when alone
	sparse  bool   // a file with fewer bytes allocated than half its size
	dirTime bool   // compare mtime (not for the tree's root)
}

// snapshotTree reads every path under root (root itself left out).
func snapshotTree(t *testing.T, root string) map[string]treeEntry {
	t.Helper()
	out := map[string]treeEntry{}
	inodes := map[uint64]string{}
	err := filepath.WalkDir(root, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if rel == "." {
			return nil
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		e := treeEntry{mode: st.Mode & 0o7777, uid: st.Uid, gid: st.Gid, mtime: st.Mtim.Nano()}
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFDIR:
			e.kind = "dir"
		case unix.S_IFREG:
			e.kind, e.size = "file", st.Size
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			e.sum = fmt.Sprintf("%x", sha256.Sum256(b))
			e.sparse = st.Blocks*512 < st.Size/2
			if st.Nlink > 1 {
				if first, ok := inodes[st.Ino]; ok {
					e.link = first
				} else {
					inodes[st.Ino] = rel
				}
			}
		case unix.S_IFLNK:
			e.kind = "symlink"
			e.target, _ = os.Readlink(p)
		case unix.S_IFCHR:
			e.kind, e.rdev = "char", st.Rdev
		case unix.S_IFBLK:
			e.kind, e.rdev = "block", st.Rdev
		case unix.S_IFIFO:
			e.kind = "fifo"
		}
		e.xattrs = xattrText(p)
		out[rel] = e
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// xattrText lists p's extended attributes but overlayfs's own.
func xattrText(p string) string {
	buf := make([]byte, 4096)
	n, err := unix.Llistxattr(p, buf)
	if err != nil || n == 0 {
		return ""
	}
	var kv []string
	for _, name := range strings.Split(strings.TrimRight(string(buf[:n]), "\x00"), "\x00") {
		if strings.HasPrefix(name, "trusted.overlay.") {
			continue
		}
		v := make([]byte, 4096)
		m, _ := unix.Lgetxattr(p, name, v)
		kv = append(kv, name+"="+string(v[:max(m, 0)]))
	}
	sort.Strings(kv)
	return strings.Join(kv, ",")
}

// diffTrees says how two snapshots differ, "" when they are equal.
func diffTrees(a, b map[string]treeEntry) string {
	var out []string
	for p, ea := range a {
		eb, ok := b[p]
		if !ok {
			out = append(out, "only in the first: "+p)
			continue
		}
		if ea != eb {
			out = append(out, fmt.Sprintf("%s:\n    %+v\n    %+v", p, ea, eb))
		}
	}
	for p := range b {
		if _, ok := a[p]; !ok {
			out = append(out, "only in the second: "+p)
		}
	}
	sort.Strings(out)
	return strings.Join(out, "\n")
}

// fillLayerTree writes one of each kind of entry under dir: owners,
// setuid and sticky modes, nanosecond times, a user xattr, a hard link, a
// symlink, device nodes, a fifo and a sparse file.
func fillLayerTree(t *testing.T, dir string) {
	t.Helper()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(dir, "etc/conf.d"), 0o755))
	must(os.WriteFile(filepath.Join(dir, "etc/hello"), []byte("hello\n"), 0o640))
	must(os.Lchown(filepath.Join(dir, "etc/hello"), 123, 456))
	must(os.Link(filepath.Join(dir, "etc/hello"), filepath.Join(dir, "etc/hello.hard")))
	must(os.Symlink("hello", filepath.Join(dir, "etc/hello.link")))
	must(os.WriteFile(filepath.Join(dir, "etc/conf.d/a"), []byte("a"), 0o644))
	must(os.WriteFile(filepath.Join(dir, "suid"), []byte("#!/bin/sh\n"), 0o755))
	must(unix.Chmod(filepath.Join(dir, "suid"), 0o4755))
	must(os.Mkdir(filepath.Join(dir, "tmp"), 0o755))
	must(unix.Chmod(filepath.Join(dir, "tmp"), 0o1777))
	must(unix.Mknod(filepath.Join(dir, "null"), unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))))
	must(unix.Mknod(filepath.Join(dir, "loop9"), unix.S_IFBLK|0o660, int(unix.Mkdev(7, 9))))
	must(unix.Mkfifo(filepath.Join(dir, "fifo"), 0o600))
	f, err := os.Create(filepath.Join(dir, "sparse"))
	must(err)
	_, err = f.WriteAt([]byte("end"), 8<<20)
	must(err)
	must(f.Close())
	if err := unix.Lsetxattr(filepath.Join(dir, "etc/hello"), "user.origin", []byte("layer test"), 0); err != nil {
		t.Logf("no user xattrs on this filesystem (%v): not compared", err)
	}
	when := time.Unix(1700000000, 123456789)
	for _, p := range []string{"etc/hello", "etc/conf.d/a", "suid", "sparse", "etc/conf.d", "etc", "tmp"} {
		must(os.Chtimes(filepath.Join(dir, p), when, when))
	}
}

// changeLayerTree makes the second layer's changes: a deleted file, a
// replaced directory (opaque), a new file, a changed mode.
func changeLayerTree(t *testing.T, dir string) {
	t.Helper()
	for _, err := range []error{
		os.Remove(filepath.Join(dir, "etc/hello.link")),
		os.RemoveAll(filepath.Join(dir, "etc/conf.d")),
		os.Mkdir(filepath.Join(dir, "etc/conf.d"), 0o700),
		os.WriteFile(filepath.Join(dir, "etc/conf.d/b"), []byte("b"), 0o600),
		os.WriteFile(filepath.Join(dir, "new"), []byte("new\n"), 0o644),
		os.Chmod(filepath.Join(dir, "fifo"), 0o644),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
}

// runWithStdin runs thinctl under the harness root with stdin.
func (h *harness) runWithStdin(stdin io.Reader, args ...string) result {
	h.t.Helper()
	var out, errb bytes.Buffer
	a := h.app(&out, &errb)
	a.stdin = stdin
	code := a.run(append([]string{"--root", h.root, "--driver", "overlay2"}, args...))
	return result{code: code, stdout: out.String(), stderr: errb.String()}
}

// TestExportAndImportRoundTripALayerStackOnOverlay2 builds two layers,
// exports both (to a file and to stdout), imports them as a new stack
// (from a file and from stdin) and compares the mounted trees.
func TestExportAndImportRoundTripALayerStackOnOverlay2(t *testing.T) {
	requireRootForLayers(t)
	h := newHarness(t)
	h.ov("pool", "init")
	h.ov("create", "base")
	fillLayerTree(t, strings.TrimSpace(h.ov("mount", "base").stdout))
	h.ov("unmount", "base")
	h.ov("create", "app", "--parent", "base")
	changeLayerTree(t, strings.TrimSpace(h.ov("mount", "app").stdout))
	h.ov("unmount", "app")

	baseTar := filepath.Join(t.TempDir(), "base.tar")
	if r := h.ov("export", "base", "--file", baseTar); !strings.Contains(r.stdout, "Exported base, its changes against nothing") {
		t.Errorf("export base: %q", r.stdout)
	}
	appTar := h.ov("export", "app").stdout
	names := tarNames(t, appTar)
	for _, want := range []string{"etc/.wh.hello.link", "etc/conf.d/.wh..wh..opq", "etc/conf.d/b", "new", "fifo"} {
		if !names[want] {
			t.Errorf("app's archive has no %s: %v", want, names)
		}
	}
	if names["etc/hello"] || names["suid"] {
		t.Errorf("app's archive carries base's unchanged files: %v", names)
	}

	h.ov("import", "base2", "--file", baseTar)
	if r := h.runWithStdin(strings.NewReader(appTar), "import", "app2", "--parent", "base2"); r.code != 0 || !strings.Contains(r.stdout, "Imported app2 on base2") {
		t.Fatalf("import app2 from stdin: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	for _, pair := range [][2]string{{"base", "base2"}, {"app", "app2"}} {
		a := snapshotTree(t, strings.TrimSpace(h.ov("mount", pair[0]).stdout))
		b := snapshotTree(t, strings.TrimSpace(h.ov("mount", pair[1]).stdout))
		if d := diffTrees(a, b); d != "" {
			t.Errorf("%s and %s differ:\n%s", pair[0], pair[1], d)
		}
		if !b["sparse"].sparse || b["etc/hello.hard"].link != "etc/hello" || b["null"].rdev != unix.Mkdev(1, 3) || b["suid"].mode != 0o4755 {
			t.Errorf("%s lost a sparse file, a hard link, a device node or a setuid bit: %+v %+v %+v %+v",
				pair[1], b["sparse"], b["etc/hello.hard"], b["null"], b["suid"])
		}
		if x := a["etc/hello"].xattrs; x != "" && !strings.Contains(b["etc/hello"].xattrs, "user.origin=layer test") {
			t.Errorf("%s lost etc/hello's xattrs %q", pair[1], x)
		}
		h.ov("unmount", pair[0])
		h.ov("unmount", pair[1])
	}
}

func requireRootForLayers(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: overlay2 mounts, owners, device nodes")
	}
}

// tarNames lists an archive's entry names.
func tarNames(t *testing.T, archive string) map[string]bool {
	t.Helper()
	names := map[string]bool{}
	tr := tar.NewReader(strings.NewReader(archive))
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return names
		}
		if err != nil {
			t.Fatalf("read the archive: %v", err)
		}
		names[strings.TrimSuffix(hdr.Name, "/")] = true
	}
}

// archiveOf builds a tar stream from entries (a file's body is its
// content) and returns its bytes.
func archiveOf(t *testing.T, entries ...tarEntry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := e.hdr
		if h.Typeflag == tar.TypeReg && h.Size == 0 {
			h.Size = int64(len(e.body))
		}
		if h.Mode == 0 {
			h.Mode = 0o644
		}
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatal(err)
		}
		io.WriteString(tw, e.body)
	}
	tw.Close()
	return buf.Bytes()
}

type tarEntry struct {
	hdr  tar.Header
	body string
}

// rawHeaderArchive is a stream whose one header announces size bytes and
// carries body: the tar package refuses to write such a stream.
func rawHeaderArchive(t *testing.T, size int64, body string) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	if err := tw.WriteHeader(&tar.Header{Name: "big", Typeflag: tar.TypeReg, Mode: 0o644, Size: size}); err != nil {
		t.Fatal(err)
	}
	return append(buf.Bytes(), body...)
}

// TestImportRefusesBadArchivesAndKeepsNothing feeds archives a layer must
// not take: each is refused with one line naming what is wrong, the layer
// is gone, the other layers and the directory outside the root are as
// they were.
func TestImportRefusesBadArchivesAndKeepsNothing(t *testing.T) {
	requireRootForLayers(t)
	outside := t.TempDir()
	good := archiveOf(t, tarEntry{hdr: tar.Header{Name: "a/", Typeflag: tar.TypeDir, Mode: 0o755}},
		tarEntry{hdr: tar.Header{Name: "a/file", Typeflag: tar.TypeReg}, body: strings.Repeat("x", 3000)})
	cases := []struct {
		name    string
		archive []byte
		want    string
	}{
		{"an archive cut inside a file", good[:1500], "the archive ends inside a/file"},
		{"an archive cut between entries", good[:512], "the archive is cut short after 1 entries"},
		{"an empty input", nil, "the archive is empty"},
		{"a name with ..", archiveOf(t, tarEntry{hdr: tar.Header{Name: "a/../../evil", Typeflag: tar.TypeReg}, body: "x"}),
			`entry "a/../../evil" climbs out of the layer with ..`},
		{"an absolute name", archiveOf(t, tarEntry{hdr: tar.Header{Name: outside + "/evil", Typeflag: tar.TypeReg}, body: "x"}),
			"is absolute"},
		{"a file written through a symlink", archiveOf(t,
			tarEntry{hdr: tar.Header{Name: "link", Typeflag: tar.TypeSymlink, Linkname: outside}},
			tarEntry{hdr: tar.Header{Name: "link/evil", Typeflag: tar.TypeReg}, body: "x"}),
			"would be written through the symlink"},
		{"a hard link to outside the layer", archiveOf(t,
			tarEntry{hdr: tar.Header{Name: "h", Typeflag: tar.TypeLink, Linkname: "../../../../etc/passwd"}}),
			"climbs out of the layer"},
		// Within any test filesystem's free space: a larger entry is
		// refused by the layer before the stream's end is reached.
		{"a 4 MiB header on a 1 KiB stream", rawHeaderArchive(t, 4<<20, strings.Repeat("y", 1024)),
			"the archive ends inside big: its header announces 4.0M, the stream holds 1.0K"},
	}
	h := newHarness(t)
	h.ov("pool", "init")
	h.ov("create", "keep")
	before := h.ov("list").stdout
	for _, tc := range cases {
		t.Run(tc.name+" is refused", func(t *testing.T) {
			r := h.runWithStdin(bytes.NewReader(tc.archive), "import", "bad")
			lines := strings.Split(strings.TrimSpace(r.stderr), "\n")
			if r.code != 1 || !strings.HasPrefix(lines[0], "thinctl: import bad: ") || !strings.Contains(lines[0], tc.want) {
				t.Errorf("exit %d, stderr:\n%s\nwant exit 1 and a first line with %q", r.code, r.stderr, tc.want)
			}
			if !strings.Contains(lines[0], "layer bad removed") {
				t.Errorf("the error does not say the layer was removed: %s", lines[0])
			}
			if got := h.ov("list").stdout; got != before {
				t.Errorf("the layers changed:\n%s\nwas:\n%s", got, before)
			}
			if ents, _ := os.ReadDir(outside); len(ents) != 0 {
				t.Errorf("the import wrote outside the layer: %v", ents)
			}
			if _, err := os.Stat(filepath.Join(h.root, "overlay2", "bad")); !os.IsNotExist(err) {
				t.Errorf("the half-imported layer's directory is still there (%v)", err)
			}
		})
	}
}

// TestExportAndImportRefuseATerminalAndAnExistingLayer checks the refusals
// before any work: tar on a terminal, an existing ID, a missing layer.
func TestExportAndImportRefuseATerminalAndAnExistingLayer(t *testing.T) {
	requireRootForLayers(t)
	h := newHarness(t)
	h.ov("pool", "init")
	h.ov("create", "base")
	var out, errb bytes.Buffer
	a := h.app(&out, &errb)
	a.isTerminal = func(io.Writer) bool { return true }
	if code := a.run([]string{"--root", h.root, "--driver", "overlay2", "export", "base"}); code != 1 ||
		!strings.Contains(errb.String(), "a tar archive does not belong on a terminal: stdout is one") || out.Len() != 0 {
		t.Errorf("export to a terminal: exit %d, stdout %d bytes, stderr %q", code, out.Len(), errb.String())
	}
	h.ovFails(1, []string{"import", "base", "--file", "/dev/null"}, "layer base", "already exists")
	h.ovFails(1, []string{"export", "nosuch"}, "layer nosuch")
}

// TestImportAndExportReportProgressAsTheBytesGo checks what the progress
// bar is fed: the bytes so far in the label and the fraction of a known
// total, reaching 1 at the end; with no bar nothing is called.
func TestImportAndExportReportProgressAsTheBytesGo(t *testing.T) {
	var labels []string
	var fracs []float64
	r := &countingReader{r: strings.NewReader(strings.Repeat("x", 3000)), total: 3000, what: "importing app",
		progress: func(l string, f float64) { labels = append(labels, l); fracs = append(fracs, f) }}
	buf := make([]byte, 1000)
	for {
		if _, err := r.Read(buf); err == io.EOF {
			break
		}
	}
	if len(fracs) < 3 || fracs[0] <= 0 || fracs[len(fracs)-1] != 1 || labels[len(labels)-1] != "importing app: 2.9K" {
		t.Errorf("progress reports %q at %v", labels, fracs)
	}
	for i := 1; i < len(fracs); i++ {
		if fracs[i] < fracs[i-1] {
			t.Errorf("progress went back: %v", fracs)
		}
	}
	quiet := &countingReader{r: strings.NewReader("abc"), total: 3}
	if n, err := io.ReadAll(quiet); err != nil || string(n) != "abc" || quiet.n != 3 {
		t.Errorf("without a bar: %q, %v, counted %d", n, err, quiet.n)
	}
}
