package testenv

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// SmallExt4 makes an ext4 filesystem of size bytes in an image file,
// mounts it on a loop device (mount -o loop) and returns its mount point:
// a host filesystem a test can fill. It is unmounted and its loop device
// detached when the test ends, after the cleanups registered later (a
// pool's on it among them).
func SmallExt4(t testing.TB, size int64) string {
	t.Helper()
	RequireTool(t, "mkfs.ext4")
	dir := t.TempDir()
	img, mnt := filepath.Join(dir, "host.img"), filepath.Join(dir, "mnt")
	if err := os.Mkdir(mnt, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(img, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(img, size); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mkfs.ext4", "-q", "-F", "-E", "nodiscard", img).CombinedOutput(); err != nil {
		t.Fatalf("mkfs.ext4: %v: %s", err, out)
	}
	if out, err := exec.Command("mount", "-o", "loop", img, mnt).CombinedOutput(); err != nil {
		t.Fatalf("mount: %v: %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", "-d", mnt).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", mnt, err, out)
		}
	})
	return mnt
}
