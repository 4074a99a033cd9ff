package loopback

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"golang.org/x/sys/unix"
)

// busyDevice binds a file of its own and returns the device, standing for a
// device another process bound between our LOOP_CTL_GET_FREE and our bind.
func busyDevice(t *testing.T) (Info, unix.Stat_t) {
	t.Helper()
	p := backingFile(t, "someone-elses.img", 1<<20)
	return attach(t, p, Options{}), statOf(t, p)
}

// stillBound fails t unless dev is still bound to the file st describes.
func stillBound(t *testing.T, dev Info, st unix.Stat_t) {
	t.Helper()
	got, err := GetInfo(dev.Path)
	if err != nil || got.BackingDev != st.Dev || got.BackingInode != st.Ino {
		t.Errorf("the other process's device %s was disturbed: %+v, %v", dev.Path, got, err)
	}
}

func TestAttachRetriesWhenAnotherProcessBindsTheFreeDeviceFirst(t *testing.T) {
	requireLoop(t)
	eachPath(t, func(t *testing.T) {
		other, otherSt := busyDevice(t)
		calls := 0
		withGetFree(t, func(ctl int) (int, error) {
			calls++
			if calls <= 3 {
				return other.Number, nil // lost the race three times
			}
			return ctlGetFree(ctl)
		})
		p := backingFile(t, "mine.img", 1<<20)
		info := attach(t, p, Options{})
		if info.Path == other.Path {
			t.Fatalf("attached to the busy device %s", other.Path)
		}
		if calls != 4 {
			t.Errorf("LOOP_CTL_GET_FREE called %d times, want 4", calls)
		}
		if st := statOf(t, p); info.BackingInode != st.Ino {
			t.Errorf("attached device reports inode %d, want %d", info.BackingInode, st.Ino)
		}
		stillBound(t, other, otherSt)
	})
}

func TestAttachGivesUpWithErrExhaustedAndLeavesOthersAlone(t *testing.T) {
	requireLoop(t)
	eachPath(t, func(t *testing.T) {
		other, otherSt := busyDevice(t)
		withTries(t, 3)
		calls := 0
		withGetFree(t, func(int) (int, error) { calls++; return other.Number, nil })
		p := backingFile(t, "starved.img", 1<<20)
		_, err := Attach(context.Background(), p, Options{})
		if !errors.Is(err, ErrExhausted) {
			t.Fatalf("got %v, want ErrExhausted", err)
		}
		if msg := err.Error(); !strings.Contains(msg, p) || !strings.Contains(msg, "3 tries") || !strings.Contains(msg, "busy") {
			t.Errorf("message %q should name the file, the tries and the last error", msg)
		}
		if calls != 3 {
			t.Errorf("%d tries, want 3", calls)
		}
		stillBound(t, other, otherSt)
		if _, err := FindByBackingFile(p); !errors.Is(err, ErrNotFound) {
			t.Errorf("a device is bound to the starved file: %v", err)
		}
	})
}

func TestAttachDoesNotRetryRealErrors(t *testing.T) {
	requireLoop(t)
	calls := 0
	withGetFree(t, func(int) (int, error) { calls++; return 0, unix.EPERM })
	_, err := Attach(context.Background(), backingFile(t, "x.img", 1<<20), Options{})
	if !errors.Is(err, unix.EPERM) || calls != 1 {
		t.Errorf("got %v after %d calls; want EPERM after 1", err, calls)
	}
}

func TestAttachMakesTheDeviceNodeWhenDevHasNone(t *testing.T) {
	requireLoop(t)
	old := devDir
	devDir = t.TempDir() // a /dev without devtmpfs: no loop nodes at all
	t.Cleanup(func() { devDir = old })
	eachPath(t, func(t *testing.T) {
		p := backingFile(t, "nodes.img", 1<<20)
		info := attach(t, p, Options{})
		if filepath.Dir(info.Path) != devDir {
			t.Fatalf("device %s outside %s", info.Path, devDir)
		}
		node := statOf(t, info.Path)
		if node.Mode&unix.S_IFMT != unix.S_IFBLK || node.Rdev != info.Dev {
			t.Errorf("node mode %o rdev %d, want a block device %d", node.Mode, node.Rdev, info.Dev)
		}
		if want := sysAttr(t, info.Number, "dev"); want != "" && want != strconv.Itoa(int(unix.Major(node.Rdev)))+":"+strconv.Itoa(int(unix.Minor(node.Rdev))) {
			t.Errorf("node is %d:%d, sysfs says %s", unix.Major(node.Rdev), unix.Minor(node.Rdev), want)
		}
		found, err := FindByBackingFile(p)
		if err != nil || found.Path != info.Path {
			t.Errorf("FindByBackingFile: %+v, %v", found, err)
		}
	})
}

func TestProbeRecognizesLoopConfigureOnKernelsThatHaveIt(t *testing.T) {
	requireLoop(t)
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		t.Fatal(err)
	}
	release := unix.ByteSliceToString(u.Release[:])
	var major, minor int
	fields := strings.FieldsFunc(release, func(r rune) bool { return r < '0' || r > '9' })
	if len(fields) >= 2 {
		major, _ = strconv.Atoi(fields[0])
		minor, _ = strconv.Atoi(fields[1])
	}
	want := major > 5 || (major == 5 && minor >= 8) // LOOP_CONFIGURE came in Linux 5.8
	attach(t, backingFile(t, "probe.img", 1<<20), Options{})
	if got := configureState.Load() == configureSupported; got != want {
		t.Errorf("kernel %s: probe says LOOP_CONFIGURE=%v, want %v", release, got, want)
	}
}

func TestParallelAttachesGetDistinctDevices(t *testing.T) {
	requireLoop(t)
	parallelAttach(t, 8)
}

// parallelAttach attaches n files from n goroutines, checks every device is
// distinct and readable, detaches them all and returns the devices used.
func parallelAttach(t *testing.T, n int) []Info {
	t.Helper()
	paths := make([]string, n)
	for i := range paths {
		paths[i] = backingFile(t, "p"+strconv.Itoa(i)+".img", 1<<20)
		if err := os.WriteFile(paths[i], []byte("file "+strconv.Itoa(i)), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Truncate(paths[i], 1<<20); err != nil {
			t.Fatal(err)
		}
	}
	infos := make([]Info, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { infos[i], errs[i] = Attach(context.Background(), paths[i], Options{}) })
	}
	wg.Wait()
	seen := map[string]int{}
	for i := range n {
		if errs[i] != nil {
			t.Errorf("attach %d: %v", i, errs[i])
			continue
		}
		if j, dup := seen[infos[i].Path]; dup {
			t.Errorf("files %d and %d both got %s", j, i, infos[i].Path)
		}
		seen[infos[i].Path] = i
		b := make([]byte, 16)
		f, err := os.Open(infos[i].Path)
		if err == nil {
			_, err = f.ReadAt(b, 0)
			f.Close()
		}
		if want := "file " + strconv.Itoa(i); err != nil || !strings.HasPrefix(string(b), want) {
			t.Errorf("%s reads %q, %v; want %q", infos[i].Path, b, err, want)
		}
	}
	var dwg sync.WaitGroup
	for i := range n {
		if errs[i] == nil {
			dwg.Go(func() {
				if err := Detach(context.Background(), infos[i].Path); err != nil {
					t.Errorf("detach %s: %v", infos[i].Path, err)
				}
			})
		}
	}
	dwg.Wait()
	for i := range n {
		if _, err := FindByBackingFile(paths[i]); !errors.Is(err, ErrNotFound) {
			t.Errorf("file %d still bound after Detach: %v", i, err)
		}
	}
	return infos
}
