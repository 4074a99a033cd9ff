package driver_test

import (
	"archive/tar"
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/thinctl/thinctl/driver"
	"github.com/thinctl/thinctl/driver/drivertest"
)

// fuzzBase is where FuzzApplyTar makes its directories: a tmpfs when
// there is one, as thousands of them a second on a disk mounted with
// online discard stall in the removals' discards.
var fuzzBase = func() string {
	if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
		return "/dev/shm"
	}
	return ""
}()

// FuzzApplyTar feeds arbitrary streams to ApplyTar in a directory "root"
// beside a sentinel directory "sentinel" (drivertest.MakeSentinel) and
// fails when anything but root appears beside them, when the sentinel's
// snapshot changes in any byte, mode, owner, time or link count, or when
// root is no longer a real directory. The seeds are the hostile-archive
// catalogue aimed at "../sentinel", the path from root to the sentinel.
// Free space is capped at 4 MiB, so every size the fuzzer invents meets
// the bound without filling the disk.
func FuzzApplyTar(f *testing.F) {
	for _, c := range drivertest.HostileArchives() {
		f.Add(c.Stream("../sentinel"))
	}
	f.Add(drivertest.Tar(drivertest.Entry{Header: tar.Header{Name: "a/b", Typeflag: tar.TypeReg, Mode: 0o644}, Body: "data"}))
	*driver.LimitFreeSpace = 4 << 20
	f.Cleanup(func() { *driver.LimitFreeSpace = 0 })
	f.Fuzz(func(t *testing.T, stream []byte) {
		outer, err := os.MkdirTemp(fuzzBase, "fuzz-apply-")
		if err != nil {
			t.Fatal(err)
		}
		defer os.RemoveAll(outer)
		root, sentinel := filepath.Join(outer, "root"), filepath.Join(outer, "sentinel")
		for _, p := range []string{root, sentinel} {
			if err := os.Mkdir(p, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		if err := drivertest.MakeSentinel(sentinel); err != nil {
			if os.Geteuid() != 0 {
				t.Skip("the sentinel has a file owned by someone else: needs root")
			}
			t.Fatal(err)
		}
		before, err := drivertest.Snapshot(sentinel)
		if err != nil {
			t.Fatal(err)
		}
		driver.ApplyTar(root, bytes.NewReader(stream), nil)
		after, err := drivertest.Snapshot(sentinel)
		if err != nil {
			t.Fatalf("the sentinel beside the root is damaged: %v", err)
		}
		if d := drivertest.SnapshotDiff(before, after); d != "" {
			t.Fatalf("ApplyTar changed the sentinel beside its root:\n%s", d)
		}
		if err := drivertest.IsRealDir(root); err != nil {
			t.Fatalf("the root after ApplyTar: %v", err)
		}
		ents, err := os.ReadDir(outer)
		if err != nil {
			t.Fatal(err)
		}
		if len(ents) != 2 {
			t.Fatalf("ApplyTar wrote beside its root: %v", ents)
		}
	})
}
