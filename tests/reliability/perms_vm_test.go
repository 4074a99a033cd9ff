//go:build vm

package reliability

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestReliabilityPermissions checks the modes thinctl gives its state:
// directories 0700, registry and backing files 0600, and no world-writable
// mount point, mounted or not.
func TestReliabilityPermissions(t *testing.T) {
	// A root that does not exist yet: thinctl creates it.
	r := newPoolRig(t, filepath.Join(t.TempDir(), "new-root"))
	r.must("create", "p1")
	r.must("create", "p2")
	mp := strings.TrimSpace(r.must("mount", "p1"))
	state := filepath.Join(r.root, "devicemapper")
	checkMode := func(path string, want fs.FileMode) {
		t.Helper()
		st, err := os.Lstat(path)
		if err != nil {
			t.Errorf("%v", err)
			return
		}
		if got := st.Mode().Perm(); got != want {
			t.Errorf("%s has mode %04o, want %04o", path, got, want)
		}
	}
	checkMode(r.root, 0o700)
	checkMode(state, 0o700)
	checkMode(filepath.Join(r.root, "mnt"), 0o700)
	n := 0
	filepath.WalkDir(state, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			t.Errorf("walk %s: %v", path, err)
			return nil
		}
		switch {
		case d.IsDir():
			checkMode(path, 0o700)
		case d.Type().IsRegular():
			checkMode(path, 0o600)
			n++
		default:
			t.Errorf("%s is a %v, not a regular file or directory", path, d.Type())
		}
		return nil
	})
	if n < 6 { // pool.json, data, metadata, lock, registry, journal
		t.Errorf("only %d files under %s", n, state)
	}
	// Mount points: the directory of an unmounted device does not exist or
	// is not world-writable; the root of a mounted filesystem is not
	// world-writable either.
	for _, p := range []string{mp, filepath.Join(r.root, "mnt", "p2")} {
		if st, err := os.Stat(p); err == nil && st.Mode().Perm()&0o002 != 0 {
			t.Errorf("mount point %s is world-writable (%04o)", p, st.Mode().Perm())
		}
	}
	r.must("unmount", "p1")
	if st, err := os.Stat(mp); err == nil && st.Mode().Perm()&0o002 != 0 {
		t.Errorf("unmounted mount point %s is world-writable", mp)
	}
}
