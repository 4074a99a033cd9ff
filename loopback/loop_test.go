package loopback

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// These tests bind real loop devices: they run on any root host with
// /dev/loop-control, and again inside the VM rig.

func TestAttachedDeviceReportsItsBackingFile(t *testing.T) {
	requireLoop(t)
	eachPath(t, func(t *testing.T) {
		p := backingFile(t, "data.img", 8<<20)
		info := attach(t, p, Options{})
		st, node := statOf(t, p), statOf(t, info.Path)

		if want := devPath(info.Number); info.Path != want {
			t.Errorf("Path %q, want %q", info.Path, want)
		}
		if info.Dev != node.Rdev {
			t.Errorf("Dev %d, the node says %d", info.Dev, node.Rdev)
		}
		if unix.Major(info.Dev) != loopMajor {
			t.Errorf("major %d, want %d", unix.Major(info.Dev), loopMajor)
		}
		if info.BackingFile != truncateName(p) {
			t.Errorf("BackingFile %q, want %q", info.BackingFile, truncateName(p))
		}
		if info.BackingDev != st.Dev || info.BackingInode != st.Ino {
			t.Errorf("backing dev/inode %d/%d, the file is %d/%d", info.BackingDev, info.BackingInode, st.Dev, st.Ino)
		}
		if info.ReadOnly || info.Autoclear || info.DirectIO || info.Offset != 0 || info.SizeLimit != 0 {
			t.Errorf("unexpected flags or limits: %+v", info)
		}
		if got := sysAttr(t, info.Number, "loop/backing_file"); got != p {
			t.Errorf("sysfs backing_file %q, want %q", got, p)
		}
		got, err := GetInfo(info.Path)
		if err != nil {
			t.Fatal(err)
		}
		if got != info {
			t.Errorf("GetInfo %+v\nAttach  %+v", got, info)
		}
		if size := deviceSize(t, info.Path); size != 8<<20 {
			t.Errorf("device size %d, want %d", size, 8<<20)
		}
	})
}

func TestAttachOptionsReachTheKernel(t *testing.T) {
	requireLoop(t)
	tests := []struct {
		name string
		opts Options
	}{
		{"a read-write attach sets no flag", Options{}},
		{"a read-only attach sets the read-only flag", Options{ReadOnly: true}},
		{"a direct-I/O attach sets the direct-I/O flag", Options{DirectIO: true}},
		{"read-only and direct I/O combine", Options{ReadOnly: true, DirectIO: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			eachPath(t, func(t *testing.T) {
				p := backingFile(t, "f.img", 4<<20)
				info := attach(t, p, tt.opts)
				got, err := GetInfo(info.Path)
				if err != nil {
					t.Fatal(err)
				}
				if got.ReadOnly != tt.opts.ReadOnly || got.DirectIO != tt.opts.DirectIO || got.Autoclear {
					t.Errorf("flags ro=%v dio=%v autoclear=%v, want %+v", got.ReadOnly, got.DirectIO, got.Autoclear, tt.opts)
				}
				// sysfs, read independently of LOOP_GET_STATUS64.
				if ro := sysAttr(t, info.Number, "ro"); ro != boolDigit(tt.opts.ReadOnly) {
					t.Errorf("sysfs ro %q", ro)
				}
				if dio := sysAttr(t, info.Number, "loop/dio"); dio != boolDigit(tt.opts.DirectIO) {
					t.Errorf("sysfs loop/dio %q", dio)
				}
			})
		})
	}
}

func boolDigit(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

func TestAttachRefusesAutoclearButAttachOpenHoldsTheDevice(t *testing.T) {
	requireLoop(t)
	eachPath(t, func(t *testing.T) {
		p := backingFile(t, "auto.img", 4<<20)
		if _, err := Attach(context.Background(), p, Options{Autoclear: true}); err == nil || !strings.Contains(err.Error(), "AttachOpen") {
			t.Fatalf("Attach with Autoclear: %v, want a refusal pointing at AttachOpen", err)
		}
		if _, err := FindByBackingFile(p); !errors.Is(err, ErrNotFound) {
			t.Fatalf("the refused attach left a device: %v", err)
		}
		d, err := AttachOpen(context.Background(), p, Options{Autoclear: true})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { d.File().Close() })
		if !d.Autoclear {
			t.Errorf("Info.Autoclear false")
		}
		if got := sysAttr(t, d.Number, "loop/autoclear"); got != "1" {
			t.Errorf("sysfs loop/autoclear %q", got)
		}
		if got, err := GetInfo(d.Path); err != nil || !got.Autoclear {
			t.Fatalf("while held: %+v, %v", got, err)
		}
		if err := d.Close(); err != nil {
			t.Fatal(err)
		}
		eventuallyUnbound(t, d.Path, d.BackingInode, "after the last close (kernel autoclear)")
	})
}

func TestFindByBackingFile(t *testing.T) {
	requireLoop(t)
	p := backingFile(t, "found.img", 4<<20)
	info := attach(t, p, Options{})
	link := filepath.Join(t.TempDir(), "hard-link.img")
	if err := os.Link(p, link); err != nil {
		t.Fatal(err)
	}
	deep := filepath.Join(t.TempDir(), strings.Repeat("long-directory-name/", 5))
	if err := os.MkdirAll(deep, 0o755); err != nil {
		t.Fatal(err)
	}
	longPath := backingFile(t, "x", 1<<20)
	longPath2 := filepath.Join(deep, "backing-file-with-a-long-name.img")
	if err := os.Rename(longPath, longPath2); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { detachAll(t, longPath2) })
	longInfo := attach(t, longPath2, Options{ReadOnly: true})

	t.Run("the attached file is found", func(t *testing.T) {
		got, err := FindByBackingFile(p)
		if err != nil || got.Path != info.Path {
			t.Errorf("got %+v, %v; want %s", got, err, info.Path)
		}
	})
	t.Run("a hard link to it is the same file", func(t *testing.T) {
		got, err := FindByBackingFile(link)
		if err != nil || got.Path != info.Path {
			t.Errorf("got %+v, %v; want %s", got, err, info.Path)
		}
	})
	t.Run("a path longer than lo_file_name is found by inode", func(t *testing.T) {
		if len(longPath2) <= 63 {
			t.Fatalf("test path only %d bytes", len(longPath2))
		}
		got, err := FindByBackingFile(longPath2)
		if err != nil || got.Path != longInfo.Path {
			t.Fatalf("got %+v, %v; want %s", got, err, longInfo.Path)
		}
		if got.BackingFile != longPath2[:63] {
			t.Errorf("lo_file_name %q, want the path's first 63 bytes", got.BackingFile)
		}
	})
	t.Run("an unattached file is not found", func(t *testing.T) {
		other := backingFile(t, "other.img", 1<<20)
		if got, err := FindByBackingFile(other); !errors.Is(err, ErrNotFound) {
			t.Errorf("got %+v, %v; want ErrNotFound", got, err)
		}
	})
	t.Run("a missing file is an error other than not found", func(t *testing.T) {
		_, err := FindByBackingFile(filepath.Join(t.TempDir(), "missing"))
		if err == nil || errors.Is(err, ErrNotFound) || !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("got %v", err)
		}
	})
}

func TestWritesThroughTheDeviceLandInTheFile(t *testing.T) {
	requireLoop(t)
	eachPath(t, func(t *testing.T) {
		p := backingFile(t, "rw.img", 4<<20)
		info := attach(t, p, Options{})
		want := bytes.Repeat([]byte("thinctl-loop-test"), 512)[:8192]
		dev, err := os.OpenFile(info.Path, os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := dev.WriteAt(want, 1<<20); err != nil {
			t.Fatal(err)
		}
		if err := dev.Sync(); err != nil {
			t.Fatal(err)
		}
		dev.Close()
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		got := make([]byte, len(want))
		if _, err := f.ReadAt(got, 1<<20); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("the file holds %q..., want %q...", got[:32], want[:32])
		}
	})
}

func TestReadOnlyDeviceRefusesWrites(t *testing.T) {
	requireLoop(t)
	eachPath(t, func(t *testing.T) {
		p := backingFile(t, "ro.img", 4<<20)
		if err := os.WriteFile(p, []byte("original"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Truncate(p, 4<<20); err != nil {
			t.Fatal(err)
		}
		info := attach(t, p, Options{ReadOnly: true})
		if !info.ReadOnly {
			t.Errorf("Info.ReadOnly false")
		}
		dev, err := os.OpenFile(info.Path, os.O_RDWR, 0)
		if err == nil {
			_, err = dev.WriteAt([]byte("scribble"), 0)
			if err == nil {
				err = dev.Sync()
			}
			dev.Close()
		}
		if err == nil {
			t.Error("writing to a read-only loop device succeeded")
		}
		got, _ := os.ReadFile(p)
		if !bytes.HasPrefix(got, []byte("original")) {
			t.Errorf("the file changed: %q", got[:8])
		}
	})
}

func TestSetCapacityPicksUpTheGrownFile(t *testing.T) {
	requireLoop(t)
	eachPath(t, func(t *testing.T) {
		p := backingFile(t, "grow.img", 4<<20)
		info := attach(t, p, Options{})
		if err := os.Truncate(p, 12<<20); err != nil {
			t.Fatal(err)
		}
		if got := deviceSize(t, info.Path); got != 4<<20 {
			t.Fatalf("before SetCapacity the kernel already saw %d bytes", got)
		}
		if err := SetCapacity(info.Path); err != nil {
			t.Fatal(err)
		}
		if got := deviceSize(t, info.Path); got != 12<<20 {
			t.Errorf("after SetCapacity: %d bytes, want %d", got, 12<<20)
		}
		if got := sysAttr(t, info.Number, "size"); got != strconv.Itoa(12<<20/512) {
			t.Errorf("sysfs size %s sectors, want %d", got, 12<<20/512)
		}
	})
}

func TestDetach(t *testing.T) {
	requireLoop(t)
	eachPath(t, func(t *testing.T) {
		p := backingFile(t, "detach.img", 4<<20)
		info := attach(t, p, Options{})
		if err := Detach(context.Background(), info.Path); err != nil {
			t.Fatal(err)
		}
		if _, err := GetInfo(info.Path); !errors.Is(err, ErrNotFound) {
			t.Errorf("GetInfo after Detach: %v, want ErrNotFound", err)
		}
		if _, err := FindByBackingFile(p); !errors.Is(err, ErrNotFound) {
			t.Errorf("FindByBackingFile after Detach: %v, want ErrNotFound", err)
		}
		if err := Detach(context.Background(), info.Path); !errors.Is(err, ErrNotFound) {
			t.Errorf("second Detach: %v, want ErrNotFound", err)
		}
		if err := SetCapacity(info.Path); !errors.Is(err, ErrNotFound) {
			t.Errorf("SetCapacity of an unbound device: %v, want ErrNotFound", err)
		}
	})
}

func TestDetachOfADeviceOpenElsewhereIsBusyUntilLastClose(t *testing.T) {
	requireLoop(t)
	old := detachWait
	detachWait = 100 * time.Millisecond
	t.Cleanup(func() { detachWait = old })

	p := backingFile(t, "busy.img", 4<<20)
	info := attach(t, p, Options{})
	holder, err := os.Open(info.Path)
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Close()
	err = Detach(context.Background(), info.Path)
	if !errors.Is(err, ErrBusy) || !strings.Contains(err.Error(), info.Path) {
		t.Fatalf("Detach of a held device: %v, want ErrBusy naming %s", err, info.Path)
	}
	if got, err := GetInfo(info.Path); err != nil || !got.Autoclear {
		t.Fatalf("while held: %+v, %v; want still bound, autoclear set", got, err)
	}
	holder.Close()
	eventuallyUnbound(t, info.Path, info.BackingInode, "after the holder closed")
}

func TestAttachFailures(t *testing.T) {
	requireLoop(t)
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := unix.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		path  string
		opts  Options
		is    error
		words string
	}{
		{"a missing file says it does not exist", filepath.Join(dir, "missing.img"), Options{}, fs.ErrNotExist, "missing.img"},
		{"a directory is refused", dir, Options{}, nil, "not a regular file"},
		{"a character device is refused", "/dev/zero", Options{ReadOnly: true}, nil, "not a regular file"},
		{"a FIFO is refused without blocking", fifo, Options{ReadOnly: true}, nil, "not a regular file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := bound(t)
			info, err := Attach(context.Background(), tt.path, tt.opts)
			if err == nil {
				Detach(context.Background(), info.Path)
				t.Fatal("attached")
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("%v is not %v", err, tt.is)
			}
			if !strings.Contains(err.Error(), tt.words) || strings.Count(err.Error(), "\n") > 0 {
				t.Errorf("error %q lacks %q or spans lines", err, tt.words)
			}
			for name, file := range bound(t) {
				if _, ok := before[name]; !ok && file == tt.path {
					t.Errorf("left %s bound to %s", name, file)
				}
			}
		})
	}
}

func TestDirectIOOnTmpfsIsEitherRealOrRefusedClearly(t *testing.T) {
	requireLoop(t)
	// tmpfs had no O_DIRECT before Linux 6.6; where it has, the attach must
	// really run with direct I/O. Either way the flag never silently drops.
	dir := t.TempDir()
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size=8m"); err != nil {
		t.Skipf("cannot mount a tmpfs: %v", err)
	}
	t.Cleanup(func() { unix.Unmount(dir, unix.MNT_DETACH) })
	p := filepath.Join(dir, "dio.img")
	if err := os.WriteFile(p, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(p, 4<<20); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { detachAll(t, p) })
	eachPath(t, func(t *testing.T) {
		info, err := Attach(context.Background(), p, Options{DirectIO: true})
		if err != nil {
			t.Logf("refused: %v", err)
			if !errors.Is(err, ErrNotSupported) || !strings.Contains(err.Error(), "direct I/O") {
				t.Errorf("refusal %v, want ErrNotSupported mentioning direct I/O", err)
			}
			if _, err := FindByBackingFile(p); !errors.Is(err, ErrNotFound) {
				t.Errorf("the refused attach left a device: %v", err)
			}
			return
		}
		defer Detach(context.Background(), info.Path)
		t.Logf("this kernel's tmpfs does direct I/O")
		if !info.DirectIO || sysAttr(t, info.Number, "loop/dio") != "1" {
			t.Errorf("attach succeeded without direct I/O: %+v", info)
		}
	})
}

func TestGetInfoOfThingsThatAreNotBoundLoopDevices(t *testing.T) {
	requireLoop(t)
	tests := []struct {
		name     string
		path     string
		notFound bool
	}{
		{"a missing node is not found", "/dev/loop-does-not-exist", true},
		{"a character device is refused", "/dev/null", false},
		{"the control device is refused", controlPath, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := GetInfo(tt.path)
			if err == nil || errors.Is(err, ErrNotFound) != tt.notFound || !strings.Contains(err.Error(), tt.path) {
				t.Errorf("GetInfo(%s): %v", tt.path, err)
			}
		})
	}
}
