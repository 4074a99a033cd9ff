//go:build vm

package dm

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

func TestNodesAreMadeByUsWithoutUdevAndByUdevWithIt(t *testing.T) {
	c := vmClient(t)
	wantUdev := os.Getenv("THINCTL_UDEV") == "1"
	if os.Getenv("THINCTL_UDEV") == "" {
		_, err := os.Stat(udevControlPath)
		wantUdev = err == nil
	}
	if c.UdevRunning() != wantUdev {
		t.Fatalf("UdevRunning = %v, the rig says udev=%v", c.UdevRunning(), wantUdev)
	}
	name := devName(t)
	info := activate(t, c, name, []Target{{Start: 0, Length: 2048, Type: "zero"}}, LoadOptions{})
	wantNode(t, name, info.Dev)
	var st unix.Stat_t
	if err := unix.Lstat(NodePath(name), &st); err != nil {
		t.Fatal(err)
	}
	if wantUdev {
		if st.Mode&unix.S_IFMT != unix.S_IFLNK {
			t.Errorf("with udev %s has mode %o, want udev's symlink", NodePath(name), st.Mode)
		}
	} else if st.Mode&unix.S_IFMT != unix.S_IFBLK || st.Mode&0o777 != nodeMode {
		t.Errorf("without udev %s has mode %o, want a 0600 block node", NodePath(name), st.Mode)
	}
	if err := c.Remove(context.Background(), name, RemoveOptions{}); err != nil {
		t.Fatal(err)
	}
	wantNoNode(t, name)
}

func TestWithoutUdevAStaleNodeIsReplacedOnCreate(t *testing.T) {
	c := vmClient(t)
	if c.UdevRunning() {
		t.Skip("udev owns /dev/mapper in this mode")
	}
	name := devName(t)
	if err := os.WriteFile(NodePath(name), []byte("stale"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(NodePath(name)) })
	info := activate(t, c, name, []Target{{Start: 0, Length: 2048, Type: "zero"}}, LoadOptions{})
	wantNode(t, name, info.Dev)
}

func TestTheControlNodeIsMadeFromProcMiscWhenMissing(t *testing.T) {
	vmClient(t)
	p := filepath.Join(t.TempDir(), "mapper", "control")
	if err := ensureControl(p); err != nil {
		t.Fatal(err)
	}
	var got, real unix.Stat_t
	if err := unix.Stat(p, &got); err != nil {
		t.Fatal(err)
	}
	if err := unix.Stat(controlNode, &real); err != nil {
		t.Fatal(err)
	}
	if got.Mode&unix.S_IFMT != unix.S_IFCHR || got.Rdev != real.Rdev || unix.Major(got.Rdev) != miscMajor {
		t.Fatalf("made %s as mode %o dev %s; /dev/mapper/control is %s", p, got.Mode, majMin(got.Rdev), majMin(real.Rdev))
	}
	c, err := open(p)
	if err != nil {
		t.Fatalf("opening the made control node: %v", err)
	}
	c.Close()
}
