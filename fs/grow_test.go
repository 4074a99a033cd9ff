package fs

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pkg/errors"
	"golang.org/x/sys/unix"
)

// statfsSize is the size of the filesystem mounted at mnt as statfs reports it.
func statfsSize(t testing.TB, mnt string) uint64 {
	t.Helper()
	var s unix.Statfs_t
	if err := unix.Statfs(mnt, &s); err != nil {
		t.Fatal(err)
	}
	return s.Blocks * uint64(s.Bsize)
}

// growImage doubles the backing file of l and tells the loop device.
func growImage(t testing.TB, l *testLoop, img string) int64 {
	t.Helper()
	st, err := os.Stat(img)
	if err != nil {
		t.Fatal(err)
	}
	size := 2 * st.Size()
	if err := os.Truncate(img, size); err != nil {
		t.Fatal(err)
	}
	l.refreshCapacity(t)
	return size
}

func TestGrowWhileMounted(t *testing.T) {
	for _, typ := range []Type{Ext4, XFS} {
		t.Run(string(typ)+" grows online to fill the device", func(t *testing.T) {
			growTool := map[Type]string{Ext4: "resize2fs", XFS: "xfs_growfs"}[typ]
			requireTools(t, mkfsTools[typ], growTool)
			if typ == Ext4 && !hasCapability(unix.CAP_SYS_RESOURCE) {
				t.Skip("online ext4 resize needs CAP_SYS_RESOURCE, which this process lacks")
			}
			img := imageFile(t, typ)
			l := attachLoop(t, img)
			mnt := filepath.Join(t.TempDir(), "mnt")
			if err := Mount(l.Path, mnt, typ, MountOptions{}); err != nil {
				t.Fatalf("Mount: %v", err)
			}
			t.Cleanup(func() { _ = Unmount(mnt, UnmountOptions{Lazy: true, RemoveDir: true}) })
			before := statfsSize(t, mnt)
			size := growImage(t, l, img)
			if err := Grow(context.Background(), l.Path, mnt, typ); err != nil {
				t.Fatalf("Grow: %v", err)
			}
			after := statfsSize(t, mnt)
			if after < before+uint64(size)/3 {
				t.Fatalf("statfs size %d -> %d after doubling the device to %d", before, after, size)
			}
			// Unmount so that the superblock on disk is final, then read it.
			if err := Unmount(mnt, UnmountOptions{}); err != nil {
				t.Fatal(err)
			}
			if r, err := Probe(l.Path); err != nil || r.Size != uint64(size) {
				t.Fatalf("Probe after Grow = %+v, %v; want size %d", r, err, size)
			}
		})
	}
}

func TestGrowExt4Offline(t *testing.T) {
	requireTools(t, "mkfs.ext4", "resize2fs", "e2fsck")
	img := imageFile(t, Ext4)
	l := attachLoop(t, img)
	// Mount once so that resize2fs would demand a fresh check.
	mnt := filepath.Join(t.TempDir(), "mnt")
	if err := Mount(l.Path, mnt, Ext4, MountOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := Unmount(mnt, UnmountOptions{RemoveDir: true}); err != nil {
		t.Fatal(err)
	}
	size := growImage(t, l, img)
	if err := Grow(context.Background(), l.Path, "", Ext4); err != nil {
		t.Fatalf("Grow of an unmounted ext4: %v", err)
	}
	if r, err := Probe(l.Path); err != nil || r.Size != uint64(size) {
		t.Fatalf("Probe after Grow = %+v, %v; want size %d", r, err, size)
	}
}

func TestGrowRefuses(t *testing.T) {
	t.Run("an unmounted xfs is ErrNotMounted", func(t *testing.T) {
		img := imageFile(t, XFS)
		l := attachLoop(t, img)
		if err := Grow(context.Background(), l.Path, "", XFS); !errors.Is(err, ErrNotMounted) {
			t.Fatalf("Grow = %v, want ErrNotMounted", err)
		}
	})
	t.Run("a regular file is no block device", func(t *testing.T) {
		p := sparseFile(t, "f", 1<<20)
		if err := Grow(context.Background(), p, "", Ext4); err == nil {
			t.Fatal("Grow of a regular file succeeded")
		}
	})
	t.Run("an unknown type is ErrUnsupportedType", func(t *testing.T) {
		if err := Grow(context.Background(), "/dev/null", "", "zfs"); !errors.Is(err, ErrUnsupportedType) {
			t.Fatalf("Grow = %v, want ErrUnsupportedType", err)
		}
	})
}

func TestGrowExt4OnlineWithoutCapSysResourceSaysWhy(t *testing.T) {
	if hasCapability(unix.CAP_SYS_RESOURCE) {
		t.Skip("this process has CAP_SYS_RESOURCE: online resize works here")
	}
	requireTools(t, "mkfs.ext4", "resize2fs")
	img := imageFile(t, Ext4)
	l := attachLoop(t, img)
	mnt := filepath.Join(t.TempDir(), "mnt")
	if err := Mount(l.Path, mnt, Ext4, MountOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = Unmount(mnt, UnmountOptions{Lazy: true, RemoveDir: true}) })
	growImage(t, l, img)
	err := Grow(context.Background(), l.Path, mnt, Ext4)
	if err == nil || !strings.Contains(err.Error(), "CAP_SYS_RESOURCE") {
		t.Fatalf("Grow = %v, want an error naming CAP_SYS_RESOURCE", err)
	}
}
