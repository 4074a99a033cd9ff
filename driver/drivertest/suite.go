package drivertest

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"

	"github.com/pkg/errors"
	"golang.org/x/sys/unix"

	"github.com/thinctl/thinctl/driver"
	"github.com/thinctl/thinctl/fs"
)

// Config tunes the suite for a backend; zero fields take the defaults.
type Config struct {
	// ChainLength is the number of layers in the deep-chain case; the top
	// layer's lower chain holds ChainLength-1 layers. Default 129.
	ChainLength int
	// QuotaBytes is the "size" storage option the quota case asks for.
	// Default 64 MiB. Backends that cannot go below a base size should set
	// their base size here.
	QuotaBytes int64
}

func (c Config) withDefaults() Config {
	if c.ChainLength <= 0 {
		c.ChainLength = 129
	}
	if c.QuotaBytes <= 0 {
		c.QuotaBytes = 64 << 20
	}
	return c
}

// Run runs the conformance cases as subtests with the default Config.
// newDriver must return a fresh driver in an empty home each time and
// arrange its Cleanup with t.Cleanup.
func Run(t *testing.T, newDriver func(t *testing.T) driver.Driver) {
	RunWithConfig(t, Config{}, newDriver)
}

// RunWithConfig is Run with backend-specific tuning.
func RunWithConfig(t *testing.T, cfg Config, newDriver func(t *testing.T) driver.Driver) {
	cfg = cfg.withDefaults()
	if os.Geteuid() != 0 {
		t.Skip("the driver conformance suite needs root")
	}
	cases := []struct {
		name string
		run  func(t *testing.T, d driver.Driver, cfg Config)
	}{
		{"an empty layer is a root-owned 0755 directory with nothing in it", testEmptyLayer},
		{"a base layer keeps exact modes, owners and special bits across a remount", testBaseLayer},
		{"a snapshot sees its base with the same metadata", testSnapshot},
		{"the top of a deep chain reads a file from the bottom layer", testDeepChain},
		{"diff then apply into a fresh layer reproduces content and removals", testDiffApply},
		{"changes lists exactly the modified, added and deleted paths", testChanges},
		{"a layer with a size quota refuses writes beyond it", testQuota},
		{"a layer with children cannot be removed", testRemoveWithChildren},
		{"get and put are reference counted", testRefCount},
		{"creating an existing layer or using a missing one fails clearly", testErrors},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			c.run(t, newDriver(t), cfg)
		})
	}
}

// get mounts id and registers nothing; callers Put explicitly.
func get(t *testing.T, d driver.Driver, id string) string {
	t.Helper()
	p, err := d.Get(t.Context(), id, "")
	if err != nil {
		t.Fatalf("Get(%s): %v", id, err)
	}
	return p
}

func put(t *testing.T, d driver.Driver, id string) {
	t.Helper()
	if err := d.Put(t.Context(), id); err != nil {
		t.Fatalf("Put(%s): %v", id, err)
	}
}

func create(t *testing.T, d driver.Driver, id, parent string, rw bool) {
	t.Helper()
	var err error
	if rw {
		err = d.CreateReadWrite(t.Context(), id, parent, nil)
	} else {
		err = d.Create(t.Context(), id, parent, nil)
	}
	if err != nil {
		t.Fatalf("create layer %s on %q: %v", id, parent, err)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// names lists a directory, leaving out lost+found.
func names(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	must(t, err)
	var out []string
	for _, e := range ents {
		if e.Name() != "lost+found" {
			out = append(out, e.Name())
		}
	}
	return out
}

func testEmptyLayer(t *testing.T, d driver.Driver, _ Config) {
	create(t, d, "empty", "", false)
	if !d.Exists("empty") {
		t.Fatal("Exists(empty) is false right after Create")
	}
	p := get(t, d, "empty")
	defer put(t, d, "empty")
	var st unix.Stat_t
	must(t, unix.Stat(p, &st))
	if st.Mode&unix.S_IFMT != unix.S_IFDIR || st.Mode&0o7777 != 0o755 {
		t.Errorf("layer root mode is %o, want a directory with 0755", st.Mode)
	}
	if st.Uid != 0 || st.Gid != 0 {
		t.Errorf("layer root owner is %d:%d, want 0:0", st.Uid, st.Gid)
	}
	if n := names(t, p); len(n) != 0 {
		t.Errorf("empty layer holds %v", n)
	}
}

// fileSpec is one path of the base tree with the metadata it must keep.
type fileSpec struct {
	path     string
	kind     uint32 // unix.S_IFDIR, S_IFREG, S_IFLNK, S_IFIFO, S_IFCHR
	mode     uint32 // permission and special bits
	uid, gid int
	content  string // file content or symlink target
}

var baseTree = []fileSpec{
	{path: "etc", kind: unix.S_IFDIR, mode: 0o755},
	{path: "etc/passwd", kind: unix.S_IFREG, mode: 0o644, content: "root:x:0:0::/root:/bin/sh\n"},
	{path: "etc/shadow", kind: unix.S_IFREG, mode: 0o640, gid: 42, content: "root:*::::::\n"},
	{path: "tmp", kind: unix.S_IFDIR, mode: 0o1777},
	{path: "usr", kind: unix.S_IFDIR, mode: 0o755},
	{path: "usr/bin", kind: unix.S_IFDIR, mode: 0o755},
	{path: "usr/bin/su", kind: unix.S_IFREG, mode: 0o4755, content: "#!/bin/true\n"},
	{path: "usr/bin/wall", kind: unix.S_IFREG, mode: 0o2755, gid: 5, content: "#!/bin/true\n"},
	{path: "usr/bin/sh", kind: unix.S_IFLNK, content: "../../bin/busybox", uid: 3, gid: 4},
	{path: "home", kind: unix.S_IFDIR, mode: 0o755},
	{path: "home/user", kind: unix.S_IFDIR, mode: 0o700, uid: 1000, gid: 1000},
	{path: "home/user/notes", kind: unix.S_IFREG, mode: 0o600, uid: 1000, gid: 1000, content: "hello\n"},
	{path: "srv", kind: unix.S_IFDIR, mode: 0o3770, uid: 7, gid: 8},
	{path: "run", kind: unix.S_IFDIR, mode: 0o755},
	{path: "run/fifo", kind: unix.S_IFIFO, mode: 0o620, uid: 1, gid: 2},
	{path: "run/null", kind: unix.S_IFCHR, mode: 0o666, content: "1:3"},
}

func writeTree(t *testing.T, root string, tree []fileSpec) {
	t.Helper()
	for _, f := range tree {
		p := filepath.Join(root, f.path)
		switch f.kind {
		case unix.S_IFDIR:
			must(t, os.Mkdir(p, 0o700))
		case unix.S_IFREG:
			must(t, os.WriteFile(p, []byte(f.content), 0o600))
		case unix.S_IFLNK:
			must(t, os.Symlink(f.content, p))
		case unix.S_IFIFO:
			must(t, unix.Mkfifo(p, 0o600))
		case unix.S_IFCHR:
			var maj, min uint32
			fmt.Sscanf(f.content, "%d:%d", &maj, &min)
			must(t, unix.Mknod(p, unix.S_IFCHR|0o600, int(unix.Mkdev(maj, min))))
		}
		must(t, os.Lchown(p, f.uid, f.gid))
		if f.kind != unix.S_IFLNK {
			must(t, unix.Chmod(p, f.mode))
		}
	}
}

func checkTree(t *testing.T, root string, tree []fileSpec) {
	t.Helper()
	for _, f := range tree {
		p := filepath.Join(root, f.path)
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			t.Errorf("%s: %v", f.path, err)
			continue
		}
		if st.Mode&unix.S_IFMT != f.kind {
			t.Errorf("%s: type %o, want %o", f.path, st.Mode&unix.S_IFMT, f.kind)
			continue
		}
		if f.kind != unix.S_IFLNK && st.Mode&0o7777 != f.mode {
			t.Errorf("%s: mode %04o, want %04o", f.path, st.Mode&0o7777, f.mode)
		}
		if int(st.Uid) != f.uid || int(st.Gid) != f.gid {
			t.Errorf("%s: owner %d:%d, want %d:%d", f.path, st.Uid, st.Gid, f.uid, f.gid)
		}
		switch f.kind {
		case unix.S_IFREG:
			b, err := os.ReadFile(p)
			if err != nil || string(b) != f.content {
				t.Errorf("%s: content %q (%v), want %q", f.path, b, err, f.content)
			}
		case unix.S_IFLNK:
			if l, err := os.Readlink(p); err != nil || l != f.content {
				t.Errorf("%s: symlink to %q (%v), want %q", f.path, l, err, f.content)
			}
		case unix.S_IFCHR:
			if got := fmt.Sprintf("%d:%d", unix.Major(st.Rdev), unix.Minor(st.Rdev)); got != f.content {
				t.Errorf("%s: device %s, want %s", f.path, got, f.content)
			}
		}
	}
}

func makeBase(t *testing.T, d driver.Driver, id string) {
	t.Helper()
	create(t, d, id, "", false)
	p := get(t, d, id)
	writeTree(t, p, baseTree)
	put(t, d, id)
}

func testBaseLayer(t *testing.T, d driver.Driver, _ Config) {
	makeBase(t, d, "base")
	p := get(t, d, "base")
	defer put(t, d, "base")
	checkTree(t, p, baseTree)
	want := []string{"etc", "home", "run", "srv", "tmp", "usr"}
	if got := names(t, p); !equal(got, want) {
		t.Errorf("base layer root holds %v, want %v", got, want)
	}
}

func testSnapshot(t *testing.T, d driver.Driver, _ Config) {
	makeBase(t, d, "base")
	create(t, d, "snap", "base", true)
	p := get(t, d, "snap")
	defer put(t, d, "snap")
	checkTree(t, p, baseTree)
	// Writing in the snapshot leaves the base alone.
	must(t, os.WriteFile(filepath.Join(p, "etc/passwd"), []byte("changed\n"), 0o644))
	must(t, os.Remove(filepath.Join(p, "etc/shadow")))
	b := get(t, d, "base")
	defer put(t, d, "base")
	checkTree(t, b, baseTree)
}

func testDeepChain(t *testing.T, d driver.Driver, cfg Config) {
	if testing.Short() && cfg.ChainLength > 16 {
		cfg.ChainLength = 16
	}
	parent := ""
	for i := 0; i < cfg.ChainLength; i++ {
		id := fmt.Sprintf("chain-%03d", i)
		create(t, d, id, parent, i == cfg.ChainLength-1)
		if i == 0 {
			p := get(t, d, id)
			must(t, os.WriteFile(filepath.Join(p, "bottom"), []byte("from the bottom layer\n"), 0o644))
			put(t, d, id)
		}
		parent = id
	}
	p := get(t, d, parent)
	defer put(t, d, parent)
	b, err := os.ReadFile(filepath.Join(p, "bottom"))
	if err != nil || string(b) != "from the bottom layer\n" {
		t.Fatalf("layer %d of %d reads bottom as %q (%v)", cfg.ChainLength, cfg.ChainLength, b, err)
	}
	must(t, os.WriteFile(filepath.Join(p, "top"), []byte("top\n"), 0o644))
}

// mutate applies the change set that testDiffApply and testChanges check.
func mutate(t *testing.T, root string) {
	t.Helper()
	must(t, os.WriteFile(filepath.Join(root, "etc/passwd"), []byte("root:x:0:0::/root:/bin/ash\nuser:x:1000:1000::/home/user:/bin/sh\n"), 0o644))
	must(t, os.Remove(filepath.Join(root, "etc/shadow")))
	must(t, os.RemoveAll(filepath.Join(root, "home/user")))
	must(t, os.Mkdir(filepath.Join(root, "opt"), 0o750))
	must(t, os.WriteFile(filepath.Join(root, "opt/tool"), bytes.Repeat([]byte("x"), 100000), 0o755))
	must(t, os.Link(filepath.Join(root, "opt/tool"), filepath.Join(root, "opt/tool-alias")))
	must(t, os.Symlink("/opt/tool", filepath.Join(root, "usr/bin/tool")))
	must(t, os.Chmod(filepath.Join(root, "srv"), 0o1775))
}

var wantChanges = []driver.Change{
	{Path: "/etc", Kind: driver.ChangeModify},
	{Path: "/etc/passwd", Kind: driver.ChangeModify},
	{Path: "/etc/shadow", Kind: driver.ChangeDelete},
	{Path: "/home", Kind: driver.ChangeModify},
	{Path: "/home/user", Kind: driver.ChangeDelete},
	{Path: "/opt", Kind: driver.ChangeAdd},
	{Path: "/opt/tool", Kind: driver.ChangeAdd},
	{Path: "/opt/tool-alias", Kind: driver.ChangeAdd},
	{Path: "/srv", Kind: driver.ChangeModify},
	{Path: "/usr", Kind: driver.ChangeModify},
	{Path: "/usr/bin", Kind: driver.ChangeModify},
	{Path: "/usr/bin/tool", Kind: driver.ChangeAdd},
}

func mutatedLayer(t *testing.T, d driver.Driver) {
	t.Helper()
	makeBase(t, d, "base")
	create(t, d, "upper", "base", true)
	p := get(t, d, "upper")
	mutate(t, p)
	put(t, d, "upper")
}

func testChanges(t *testing.T, d driver.Driver, _ Config) {
	mutatedLayer(t, d)
	got, err := driver.DiffOf(d).Changes(t.Context(), "upper", "base")
	must(t, err)
	if fmt.Sprint(got) != fmt.Sprint(wantChanges) {
		t.Errorf("Changes(upper, base):\n got %v\nwant %v", got, wantChanges)
	}
	base, err := driver.DiffOf(d).Changes(t.Context(), "base", "")
	must(t, err)
	if len(base) != len(baseTree) {
		t.Errorf("Changes(base, \"\") lists %d paths, want the %d of the base tree: %v", len(base), len(baseTree), base)
	}
	for _, c := range base {
		if c.Kind != driver.ChangeAdd {
			t.Errorf("Changes(base, \"\") has %v; every path of a parentless layer is added", c)
		}
	}
}

func testDiffApply(t *testing.T, d driver.Driver, _ Config) {
	mutatedLayer(t, d)
	dd := driver.DiffOf(d)
	rc, err := dd.Diff(t.Context(), "upper", "base")
	must(t, err)
	var stream bytes.Buffer
	_, err = stream.ReadFrom(rc)
	must(t, err)
	must(t, rc.Close())

	create(t, d, "applied", "base", false)
	applied, err := dd.ApplyDiff(t.Context(), "applied", "base", bytes.NewReader(stream.Bytes()))
	must(t, err)
	size, err := dd.DiffSize(t.Context(), "upper", "base")
	must(t, err)
	if size != applied || size != 100000+int64(len("root:x:0:0::/root:/bin/ash\nuser:x:1000:1000::/home/user:/bin/sh\n")) {
		t.Errorf("DiffSize is %d and ApplyDiff applied %d; both should count the changed file bytes once", size, applied)
	}

	want := get(t, d, "upper")
	defer put(t, d, "upper")
	got := get(t, d, "applied")
	defer put(t, d, "applied")
	wantList, gotList := describe(t, want), describe(t, got)
	if strings.Join(gotList, "\n") != strings.Join(wantList, "\n") {
		t.Errorf("applied layer differs from the original:\n got %s\nwant %s", strings.Join(gotList, "\n    "), strings.Join(wantList, "\n     "))
	}
	for _, gone := range []string{"etc/shadow", "home/user"} {
		if _, err := os.Lstat(filepath.Join(got, gone)); !os.IsNotExist(err) {
			t.Errorf("%s should be deleted in the applied layer (lstat: %v)", gone, err)
		}
	}
	var a, b unix.Stat_t
	must(t, unix.Lstat(filepath.Join(got, "opt/tool"), &a))
	must(t, unix.Lstat(filepath.Join(got, "opt/tool-alias"), &b))
	if a.Ino != b.Ino {
		t.Error("opt/tool and opt/tool-alias should still be one hard-linked inode")
	}
	changes, err := dd.Changes(t.Context(), "applied", "base")
	must(t, err)
	if fmt.Sprint(changes) != fmt.Sprint(wantChanges) {
		t.Errorf("Changes(applied, base):\n got %v\nwant %v", changes, wantChanges)
	}
}

// describe lists every path under root with type, mode, owner, size,
// mtime (files) and content hash or link target, for comparing trees.
func describe(t *testing.T, root string) []string {
	t.Helper()
	var out []string
	err := filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if rel == "lost+found" && fi.IsDir() {
			return filepath.SkipDir
		}
		st := fi.Sys().(*syscall.Stat_t)
		line := fmt.Sprintf("%s %o %d:%d", rel, st.Mode, st.Uid, st.Gid)
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFREG:
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			line += fmt.Sprintf(" size=%d mtime=%d sum=%x", len(b), st.Mtim.Nano(), checksum(b))
		case unix.S_IFLNK:
			l, _ := os.Readlink(p)
			line += " -> " + l
		case unix.S_IFCHR, unix.S_IFBLK:
			line += fmt.Sprintf(" dev=%d:%d", unix.Major(st.Rdev), unix.Minor(st.Rdev))
		}
		if rel != "." {
			out = append(out, line)
		}
		return nil
	})
	must(t, err)
	sort.Strings(out)
	return out
}

func checksum(b []byte) uint64 {
	var h uint64 = 14695981039346656037
	for _, c := range b {
		h ^= uint64(c)
		h *= 1099511628211
	}
	return h
}

func testQuota(t *testing.T, d driver.Driver, cfg Config) {
	opts := &driver.CreateOpts{StorageOpt: map[string]string{"size": fmt.Sprint(cfg.QuotaBytes)}}
	err := d.CreateReadWrite(t.Context(), "quota", "", opts)
	if errors.Is(err, driver.ErrNotSupported) {
		t.Skipf("%s has no size quota here: %v", d, err)
	}
	must(t, err)
	p := get(t, d, "quota")
	defer put(t, d, "quota")
	f, err := os.Create(filepath.Join(p, "fill"))
	must(t, err)
	defer f.Close()
	chunk := bytes.Repeat([]byte{0xa5}, 1<<20)
	var written int64
	for written <= cfg.QuotaBytes+(16<<20) {
		n, err := f.Write(chunk)
		written += int64(n)
		if err != nil {
			if !errors.Is(err, unix.ENOSPC) && !errors.Is(err, unix.EDQUOT) {
				t.Fatalf("write failed with %v, want ENOSPC or EDQUOT", err)
			}
			if written > cfg.QuotaBytes {
				t.Errorf("wrote %d bytes into a layer limited to %d", written, cfg.QuotaBytes)
			}
			return
		}
	}
	if err := f.Sync(); err == nil {
		t.Errorf("wrote %d bytes into a layer limited to %d without an error", written, cfg.QuotaBytes)
	}
}

func testRemoveWithChildren(t *testing.T, d driver.Driver, _ Config) {
	create(t, d, "parent", "", false)
	create(t, d, "child", "parent", false)
	if err := d.Remove(t.Context(), "parent"); !errors.Is(err, driver.ErrHasChildren) {
		t.Fatalf("Remove(parent) with a child = %v, want ErrHasChildren", err)
	}
	if !d.Exists("parent") || !d.Exists("child") {
		t.Fatal("a refused Remove must leave both layers in place")
	}
	must(t, d.Remove(t.Context(), "child"))
	must(t, d.Remove(t.Context(), "parent"))
	if d.Exists("parent") || d.Exists("child") {
		t.Fatal("removed layers still exist")
	}
}

// mountDepth counts the mounts at p or above it.
func mountDepth(t *testing.T, p string) int {
	t.Helper()
	mounts, err := fs.Mounts()
	must(t, err)
	n := 0
	for _, m := range mounts {
		if m.MountPoint == p || m.MountPoint == "/" || strings.HasPrefix(p, m.MountPoint+"/") {
			n++
		}
	}
	return n
}

func testRefCount(t *testing.T, d driver.Driver, _ Config) {
	create(t, d, "lower", "", false)
	create(t, d, "rw", "lower", true)
	p1 := get(t, d, "rw")
	p2 := get(t, d, "rw")
	if p1 != p2 {
		t.Fatalf("two Gets returned %s and %s", p1, p2)
	}
	mounted := mountDepth(t, p1)
	must(t, os.WriteFile(filepath.Join(p1, "f"), []byte("x"), 0o644))
	put(t, d, "rw")
	if got := mountDepth(t, p1); got != mounted {
		t.Fatalf("after one of two Puts the layer's mounts went from %d to %d", mounted, got)
	}
	if _, err := os.Stat(filepath.Join(p1, "f")); err != nil {
		t.Fatalf("after one of two Puts the layer content is gone: %v", err)
	}
	put(t, d, "rw")
	if after := mountDepth(t, p1); after >= mounted {
		t.Fatalf("after the last Put %s is still mounted (%d mounts cover it, %d while in use)", p1, after, mounted)
	}
	p3 := get(t, d, "rw")
	defer put(t, d, "rw")
	if b, err := os.ReadFile(filepath.Join(p3, "f")); err != nil || string(b) != "x" {
		t.Fatalf("after a remount f reads %q (%v)", b, err)
	}
}

func testErrors(t *testing.T, d driver.Driver, _ Config) {
	create(t, d, "one", "", false)
	if err := d.Create(t.Context(), "one", "", nil); !errors.Is(err, driver.ErrExists) {
		t.Errorf("Create of an existing id = %v, want ErrExists", err)
	}
	if err := d.Create(t.Context(), "two", "missing", nil); !errors.Is(err, driver.ErrNotFound) {
		t.Errorf("Create on a missing parent = %v, want ErrNotFound", err)
	}
	if d.Exists("two") {
		t.Error("a failed Create left the layer behind")
	}
	if _, err := d.Get(t.Context(), "missing", ""); !errors.Is(err, driver.ErrNotFound) {
		t.Errorf("Get of a missing layer = %v, want ErrNotFound", err)
	}
	if err := d.Remove(t.Context(), "missing"); !errors.Is(err, driver.ErrNotFound) {
		t.Errorf("Remove of a missing layer = %v, want ErrNotFound", err)
	}
	if _, err := d.Metadata("missing"); !errors.Is(err, driver.ErrNotFound) {
		t.Errorf("Metadata of a missing layer = %v, want ErrNotFound", err)
	}
	if len(d.Status()) == 0 {
		t.Error("Status is empty")
	}
}

func equal(a, b []string) bool {
	return strings.Join(a, "\x00") == strings.Join(b, "\x00")
}
