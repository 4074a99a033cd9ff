//go:build vm

package vm

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/thinctl/thinctl/internal/testenv"
)

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

func inVM(t *testing.T) {
	t.Helper()
	if os.Getenv("THINCTL_VM") != "1" {
		t.Skip("only meaningful inside the tests/vm guest (THINCTL_VM=1)")
	}
}

func TestTheDeviceMapperControlNodeIsACharacterDevice(t *testing.T) {
	testenv.RequireDeviceMapper(t)
	fi, err := os.Stat("/dev/mapper/control")
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode()&os.ModeCharDevice == 0 {
		t.Fatalf("/dev/mapper/control has mode %v, want a character device", fi.Mode())
	}
}

func TestTheKernelOffersTheThinPoolThinAndZeroTargets(t *testing.T) {
	testenv.RequireDeviceMapper(t)
	dmsetup := testenv.RequireTool(t, "dmsetup")
	out := run(t, dmsetup, "targets")
	for _, want := range []string{"thin-pool", "thin", "zero", "linear", "error"} {
		found := false
		for _, line := range strings.Split(out, "\n") {
			if f := strings.Fields(line); len(f) > 0 && f[0] == want {
				found = true
			}
		}
		if !found {
			t.Errorf("dmsetup targets does not list %q:\n%s", want, out)
		}
	}
}

func TestDmsetupCreatesReadsBackAndRemovesAZeroDevice(t *testing.T) {
	testenv.RequireDeviceMapper(t)
	dmsetup := testenv.RequireTool(t, "dmsetup")
	name := "thinctl-smoke-zero"
	run(t, dmsetup, "create", name, "--table", "0 2048 zero")
	defer exec.Command(dmsetup, "remove", name).Run()
	if got := strings.TrimSpace(run(t, dmsetup, "table", name)); got != "0 2048 zero" {
		t.Errorf("dmsetup table %s = %q, want %q", name, got, "0 2048 zero")
	}
	node := filepath.Join("/dev/mapper", name)
	if os.Getenv("THINCTL_VM") == "1" {
		// udev's 10-dm.rules make /dev/mapper/<name> a symlink to ../dm-N;
		// libdevmapper's own fallback makes a block device node instead.
		fi, err := os.Lstat(node)
		if err != nil {
			t.Fatalf("lstat %s: %v", node, err)
		}
		madeByUdev := fi.Mode()&os.ModeSymlink != 0
		if want := os.Getenv("THINCTL_UDEV") == "1"; madeByUdev != want {
			t.Errorf("%s is a symlink=%v (made by udev), want %v in this mode (mode %v)", node, madeByUdev, want, fi.Mode())
		}
	}
	f, err := os.Open(node)
	if err != nil {
		t.Fatalf("open %s: %v", node, err)
	}
	buf := make([]byte, 4096)
	if _, err := f.Read(buf); err != nil {
		t.Errorf("read %s: %v", node, err)
	}
	f.Close()
	if !bytes.Equal(buf, make([]byte, len(buf))) {
		t.Errorf("a zero target read back non-zero bytes")
	}
	run(t, dmsetup, "remove", name)
	if _, err := os.Stat(node); !os.IsNotExist(err) {
		t.Errorf("%s still exists after dmsetup remove (stat error %v)", node, err)
	}
}

func TestALoopDeviceReadsBackWhatWasWrittenToItsFile(t *testing.T) {
	testenv.RequireRoot(t)
	losetup := testenv.RequireTool(t, "losetup")
	backing := testenv.SparseFile(t, "loop.img", 64<<20)
	want := []byte("thinctl loop smoke test")
	if err := os.WriteFile(backing, append(want, make([]byte, 4096-len(want))...), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(backing, 64<<20); err != nil {
		t.Fatal(err)
	}
	dev := strings.TrimSpace(run(t, losetup, "--show", "-f", backing))
	defer exec.Command(losetup, "-d", dev).Run()
	got := make([]byte, len(want))
	f, err := os.Open(dev)
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.Read(got)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s read %q, want %q", dev, got, want)
	}
	run(t, losetup, "-d", dev)
}

func TestTheUdevModeMatchesWhatTheRigAnnounced(t *testing.T) {
	inVM(t)
	_, err := os.Stat("/run/udev/control")
	running := err == nil
	want := os.Getenv("THINCTL_UDEV") == "1"
	if running != want {
		t.Fatalf("/run/udev/control exists=%v, but THINCTL_UDEV=%q", running, os.Getenv("THINCTL_UDEV"))
	}
}

func TestTheScratchTmpdirIsARealExt4Filesystem(t *testing.T) {
	inVM(t)
	dir := os.TempDir()
	mounts, err := os.ReadFile("/proc/mounts")
	if err != nil {
		t.Fatal(err)
	}
	best, fstype := "", ""
	for _, line := range strings.Split(string(mounts), "\n") {
		f := strings.Fields(line)
		if len(f) < 3 {
			continue
		}
		if strings.HasPrefix(dir+"/", strings.TrimSuffix(f[1], "/")+"/") && len(f[1]) >= len(best) {
			best, fstype = f[1], f[2]
		}
	}
	if fstype != "ext4" {
		t.Errorf("TMPDIR %s is on %q mounted at %q, want ext4", dir, fstype, best)
	}
}

func TestTheOracleToolsAreOnPath(t *testing.T) {
	inVM(t)
	for _, tool := range []string{"dmsetup", "thin_check", "thin_dump", "thin_restore", "mkfs.ext4",
		"mkfs.xfs", "resize2fs", "e2fsck", "xfs_growfs", "xfs_repair", "blkid", "bash", "losetup"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Errorf("%s is not on PATH in the guest: %v", tool, err)
		}
	}
}

func TestTheKernelKnowsExt4XfsAndOverlay(t *testing.T) {
	inVM(t)
	b, err := os.ReadFile("/proc/filesystems")
	if err != nil {
		t.Fatal(err)
	}
	for _, fs := range []string{"ext4", "xfs", "overlay"} {
		found := false
		for _, line := range strings.Split(string(b), "\n") {
			if f := strings.Fields(line); len(f) > 0 && f[len(f)-1] == fs {
				found = true
			}
		}
		if !found {
			t.Errorf("/proc/filesystems does not list %s:\n%s", fs, b)
		}
	}
}
