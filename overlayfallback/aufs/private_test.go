package aufs

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestIsMountPoint(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name string
		dir  string
		want bool
	}{
		{"/proc is a mount point", "/proc", true},
		{"a fresh temporary directory is not", dir, false},
		{"a missing directory is not", filepath.Join(dir, "missing"), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := isMountPoint(tt.dir); got != tt.want {
				t.Fatalf("isMountPoint(%s) = %v, want %v", tt.dir, got, tt.want)
			}
		})
	}
}

// mountinfoOptional returns the optional fields (propagation tags such as
// "shared:5") of the mount at dir in /proc/self/mountinfo, and whether
// there is one.
func mountinfoOptional(t *testing.T, dir string) (string, bool) {
	t.Helper()
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	found, opt := false, ""
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 7 || f[4] != dir {
			continue
		}
		found, opt = true, ""
		for _, x := range f[6:] {
			if x == "-" {
				break
			}
			opt += x + " "
		}
	}
	return strings.TrimSpace(opt), found
}

// TestMakeMntPrivateOnTheHostKernel runs the real bind and propagation
// calls (they need no aufs) and reads the result back from mountinfo.
func TestMakeMntPrivateOnTheHostKernel(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount")
	}
	// Put the home under a shared mount, as on a systemd host (where / is
	// shared), so that a bind of mnt/ would propagate unless made private.
	shared := t.TempDir()
	if err := unix.Mount(shared, shared, "", unix.MS_BIND, ""); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Unmount(shared, unix.MNT_DETACH) })
	if err := unix.Mount("", shared, "", unix.MS_SHARED, ""); err != nil {
		t.Fatal(err)
	}
	if opt, _ := mountinfoOptional(t, shared); !strings.Contains(opt, "shared:") {
		t.Fatalf("test setup: %s is not shared (%q)", shared, opt)
	}
	d, err := open(filepath.Join(shared, "aufs"), hostOps(), os.Getpagesize())
	if err != nil {
		t.Fatal(err)
	}
	mnt := filepath.Join(d.Home(), "mnt")
	if err := d.makeMntPrivate(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Cleanup(t.Context()) })
	opt, found := mountinfoOptional(t, mnt)
	if !found || !isMountPoint(mnt) {
		t.Fatalf("%s is not a mount point after makeMntPrivate", mnt)
	}
	if strings.Contains(opt, "shared:") || strings.Contains(opt, "master:") {
		t.Fatalf("%s still propagates: %q", mnt, opt)
	}
	if err := d.Cleanup(t.Context()); err != nil {
		t.Fatal(err)
	}
	if _, found := mountinfoOptional(t, mnt); found || isMountPoint(mnt) {
		t.Fatalf("%s is still mounted after Cleanup", mnt)
	}
}
