package loopback

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/thinctl/thinctl/internal/testenv"
	"golang.org/x/sys/unix"
)

// requireLoop skips t unless loop devices can be attached here.
func requireLoop(t testing.TB) {
	t.Helper()
	testenv.RequireRoot(t)
	if _, err := os.Stat(controlPath); err != nil {
		t.Skipf("no loop devices here: %v", err)
	}
}

// backingFile makes a sparse file and makes sure that, whatever happens in
// the test, no loop device stays bound to it afterwards.
func backingFile(t testing.TB, name string, size int64) string {
	t.Helper()
	p := testenv.SparseFile(t, name, size)
	t.Cleanup(func() { detachAll(t, p) })
	return p
}

// detachAll unbinds every loop device bound to path.
func detachAll(t testing.TB, path string) {
	for range 64 {
		info, err := FindByBackingFile(path)
		if err != nil {
			return
		}
		if err := Detach(context.Background(), info.Path); err != nil && !errors.Is(err, ErrNotFound) {
			t.Errorf("cleanup: %v", err)
			return
		}
	}
}

// attach attaches path, registering a Detach for the end of the test.
func attach(t testing.TB, path string, opts Options) Info {
	t.Helper()
	info, err := Attach(context.Background(), path, opts)
	if err != nil {
		t.Fatalf("Attach(%s, %+v): %v", path, opts, err)
	}
	t.Cleanup(func() {
		if err := Detach(context.Background(), info.Path); err != nil && !errors.Is(err, ErrNotFound) {
			t.Errorf("cleanup: %v", err)
		}
	})
	return info
}

// deviceSize asks the kernel for a block device's size (BLKGETSIZE64).
func deviceSize(t testing.TB, dev string) uint64 {
	t.Helper()
	f, err := os.Open(dev)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var size uint64
	if _, _, e := unix.Syscall(unix.SYS_IOCTL, f.Fd(), unix.BLKGETSIZE64, uintptr(unsafe.Pointer(&size))); e != 0 {
		t.Fatalf("BLKGETSIZE64 %s: %v", dev, e)
	}
	return size
}

// sysAttr reads /sys/block/loopN/<rel>, trimmed; "" when absent.
func sysAttr(t testing.TB, n int, rel string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("/sys/block", "loop"+strconv.Itoa(n), rel))
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// statOf returns the stat of path.
func statOf(t testing.TB, path string) unix.Stat_t {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	return st
}

// bound lists the loop devices bound right now, as the kernel tells through
// sysfs: device name to backing file.
func bound(t testing.TB) map[string]string {
	t.Helper()
	m := map[string]string{}
	idx, err := loopIndexes()
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range idx {
		if bf := sysAttr(t, n, "loop/backing_file"); bf != "" {
			m["loop"+strconv.Itoa(n)] = bf
		}
	}
	return m
}

// withTries shrinks the attach retry bound for the rest of the test.
func withTries(t testing.TB, tries int) {
	old := attachMaxTries
	attachMaxTries = tries
	t.Cleanup(func() { attachMaxTries = old })
}

// withGetFree replaces LOOP_CTL_GET_FREE for the rest of the test.
func withGetFree(t testing.TB, f func(ctl int) (int, error)) {
	old := getFree
	getFree = f
	t.Cleanup(func() { getFree = old })
}

// eachPath runs f once binding with LOOP_CONFIGURE (where the kernel has
// it) and once with the LOOP_SET_FD + LOOP_SET_STATUS64 fallback.
func eachPath(t *testing.T, f func(t *testing.T)) {
	t.Run("configure", f)
	t.Run("legacy", func(t *testing.T) {
		prev := ForceLegacyAttach(true)
		t.Cleanup(func() { ForceLegacyAttach(prev) })
		f(t)
	})
}

// eventuallyUnbound fails t unless the device at path stops being bound to
// the file with inode ino within 10 s: a deferred detach completes when the
// last opener goes, and with udev running its probe may be that opener.
func eventuallyUnbound(t testing.TB, path string, ino uint64, when string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		info, err := GetInfo(path)
		if errors.Is(err, ErrNotFound) || (err == nil && info.BackingInode != ino) {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("%s: %s still bound after 10 s (%+v, %v)", when, path, info, err)
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}
