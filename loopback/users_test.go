package loopback

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

const sampleMountinfo = `22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw
98 22 7:3 / /mnt/pool\040data rw,relatime shared:50 - ext4 /dev/loop3 rw
99 22 7:3 /sub /srv/bind rw,relatime shared:50 - ext4 /dev/loop3 rw
100 22 7:30 / /mnt/other rw - xfs /dev/loop30 rw
`

func TestMountsOf(t *testing.T) {
	tests := []struct {
		name         string
		major, minor uint32
		want         []string
	}{
		{"a device mounted twice gives both points, quoted when they hold a space", 7, 3, []string{`"/mnt/pool data"`, "/srv/bind"}},
		{"a minor that prefixes another does not match it", 7, 30, []string{"/mnt/other"}},
		{"an unmounted device gives nothing", 7, 4, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := mountsOf(sampleMountinfo, tt.major, tt.minor); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestUsersOfNamesHoldersAndMounts(t *testing.T) {
	oldSys, oldMI := sysDevBlockDir, mountInfoPath
	t.Cleanup(func() { sysDevBlockDir, mountInfoPath = oldSys, oldMI })
	sysDevBlockDir = t.TempDir()
	if err := os.MkdirAll(filepath.Join(sysDevBlockDir, "7:3", "holders", "dm-2"), 0o755); err != nil {
		t.Fatal(err)
	}
	mountInfoPath = filepath.Join(t.TempDir(), "mountinfo")
	if err := os.WriteFile(mountInfoPath, []byte(sampleMountinfo), 0o644); err != nil {
		t.Fatal(err)
	}
	got := usersOf(unix.Mkdev(7, 3))
	want := []string{"held by dm-2", `mounted at "/mnt/pool data"`, "mounted at /srv/bind"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
	if got := usersOf(unix.Mkdev(7, 9)); got != nil {
		t.Errorf("an unused device has users %q", got)
	}
}

func FuzzMountsOf(f *testing.F) {
	f.Add(sampleMountinfo, uint32(7), uint32(3))
	f.Add("", uint32(0), uint32(0))
	f.Add("1 2 7:3 / \\", uint32(7), uint32(3))
	f.Fuzz(func(t *testing.T, text string, major, minor uint32) {
		for _, p := range mountsOf(text, major, minor) {
			if len(p) > len(text) {
				t.Fatalf("mount point %q longer than the input", p)
			}
		}
	})
}

func TestDetachOfAMountedDeviceIsBusyAtOnceAndFinishesOnUnmount(t *testing.T) {
	requireLoop(t)
	mkfs, err := exec.LookPath("mkfs.ext4")
	if err != nil {
		t.Skip("mkfs.ext4 not installed")
	}
	p := backingFile(t, "mounted.img", 8<<20)
	info := attach(t, p, Options{})
	if out, err := exec.Command(mkfs, "-q", "-F", info.Path).CombinedOutput(); err != nil {
		t.Fatalf("mkfs.ext4: %v\n%s", err, out)
	}
	mnt := t.TempDir()
	if err := unix.Mount(info.Path, mnt, "ext4", 0, ""); err != nil {
		t.Skipf("cannot mount ext4 here: %v", err)
	}
	mounted := true
	t.Cleanup(func() {
		if mounted {
			unix.Unmount(mnt, unix.MNT_DETACH)
		}
	})
	start := time.Now()
	err = Detach(context.Background(), info.Path)
	if !errors.Is(err, ErrBusy) || !strings.Contains(err.Error(), "mounted at "+mnt) {
		t.Fatalf("Detach of a mounted device: %v, want ErrBusy naming %s", err, mnt)
	}
	if waited := time.Since(start); waited > detachWait/2 {
		t.Errorf("Detach waited %v although the mount was visible", waited)
	}
	if err := unix.Unmount(mnt, 0); err != nil {
		t.Fatal(err)
	}
	mounted = false
	eventuallyUnbound(t, info.Path, info.BackingInode, "after unmount (the deferred detach)")
}
