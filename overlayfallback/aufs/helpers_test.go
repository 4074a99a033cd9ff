package aufs

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// mountCall is one mount(2) or umount2(2) a fakeSys saw.
type mountCall struct {
	op     string // "mount" or "unmount"
	target string
	flags  uintptr
	data   string
}

// fakeSys stands in for the kernel: it records mounts and remembers what is
// mounted, so the driver's mount logic runs without aufs.
type fakeSys struct {
	// calls lists every call in order; mounts holds the mounted targets.
	calls  []mountCall
	mounts map[string]bool
	failOn func(c mountCall) error
}

func (f *fakeSys) ops() sysOps {
	return sysOps{
		mount: func(source, target, fstype string, flags uintptr, data string) error {
			c := mountCall{op: "mount", target: target, flags: flags, data: data}
			f.calls = append(f.calls, c)
			if f.failOn != nil {
				if err := f.failOn(c); err != nil {
					return err
				}
			}
			if flags&unix.MS_REMOUNT == 0 {
				f.mounts[target] = true
			}
			return nil
		},
		unmount: func(target string, flags int) error {
			c := mountCall{op: "unmount", target: target, flags: uintptr(flags)}
			f.calls = append(f.calls, c)
			if !f.mounts[target] {
				return unix.EINVAL
			}
			delete(f.mounts, target)
			return nil
		},
		mounted:      func(target string) bool { return f.mounts[target] },
		isMountPoint: func(dir string) bool { return f.mounts[dir] },
	}
}

// newTestDriver opens a driver on a fresh home with a fake kernel and
// 4 KiB pages.
func newTestDriver(t *testing.T) (*Driver, *fakeSys) {
	t.Helper()
	return newTestDriverPage(t, 4096)
}

// newTestDriverPage is newTestDriver with another page size.
func newTestDriverPage(t *testing.T, pageSize int) (*Driver, *fakeSys) {
	t.Helper()
	f := &fakeSys{mounts: map[string]bool{}}
	d, err := open(filepath.Join(fastTempDir(t), "aufs"), f.ops(), pageSize)
	if err != nil {
		t.Fatal(err)
	}
	return d, f
}

// mustCreate creates layer id on parent or fails the test.
func mustCreate(t *testing.T, d *Driver, id, parent string) {
	t.Helper()
	if err := d.Create(t.Context(), id, parent, nil); err != nil {
		t.Fatalf("Create(%q, %q): %v", id, parent, err)
	}
}

// writeTree populates root from a spec: "path" -> content for files,
// "path/" for directories, "path->target" keys for symbolic links.
func writeTree(t *testing.T, root string, spec map[string]string) {
	t.Helper()
	for k, v := range spec {
		if name, target, ok := strings.Cut(k, "->"); ok {
			p := filepath.Join(root, name)
			mkdirAll(t, filepath.Dir(p))
			if err := os.Symlink(target, p); err != nil {
				t.Fatal(err)
			}
			continue
		}
		p := filepath.Join(root, k)
		if strings.HasSuffix(k, "/") {
			mkdirAll(t, p)
			continue
		}
		mkdirAll(t, filepath.Dir(p))
		if err := os.WriteFile(p, []byte(v), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func mkdirAll(t *testing.T, p string) {
	t.Helper()
	if err := os.MkdirAll(p, 0o755); err != nil {
		t.Fatal(err)
	}
}

// listTree returns the relative paths under root, directories with a
// trailing slash, sorted.
func listTree(t *testing.T, root string) []string {
	t.Helper()
	var out []string
	err := filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if err != nil || p == root {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if fi.IsDir() {
			rel += "/"
		}
		out = append(out, filepath.ToSlash(rel))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// fastTempDir returns a fresh directory on tmpfs (/dev/shm) when there is
// one, else t.TempDir(): the tests create many small files and directories,
// which a slow disk makes the bulk of their run time.
func fastTempDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("/dev/shm", "aufs-test")
	if err != nil {
		return t.TempDir()
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// layerCalls returns the calls on target, leaving out the private bind
// mount of mnt/ that precedes a driver's first layer mount.
func (f *fakeSys) layerCalls(target string) []mountCall {
	var out []mountCall
	for _, c := range f.calls {
		if c.target == target {
			out = append(out, c)
		}
	}
	return out
}
