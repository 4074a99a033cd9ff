//go:build vm

package snapshotter

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containerd/containerd/v2/core/snapshots"
	"github.com/containerd/errdefs"
	"golang.org/x/sys/unix"

	"github.com/thinctl/thinctl/internal/testenv"
)

func TestLabelsContainerdAcceptsAreAcceptedAndTheRestRefusedAsContainerdDoes(t *testing.T) {
	ctx := t.Context()
	sn := testSnapshotter(t)
	// containerd's limit is on key and value together: a 4000-byte key
	// with a 96-byte value is a valid label (thinpool once refused keys
	// over 1024 bytes).
	longKey := strings.Repeat("k", 4000)
	ok := map[string]string{longKey: strings.Repeat("v", 96), "short": strings.Repeat("v", 4091)}
	if _, err := sn.Prepare(ctx, "a", "", snapshots.WithLabels(ok)); err != nil {
		t.Fatalf("Prepare with labels containerd accepts: %v", err)
	}
	info, err := sn.Stat(ctx, "a")
	if err != nil || info.Labels[longKey] != ok[longKey] || info.Labels["short"] != ok["short"] {
		t.Fatalf("Stat after Prepare: %d labels, %v", len(info.Labels), err)
	}
	tooBig := map[string]string{longKey: strings.Repeat("v", 97)}
	if _, err := sn.Prepare(ctx, "b", "", snapshots.WithLabels(tooBig)); !errdefs.IsInvalidArgument(err) {
		t.Errorf("Prepare with a 4097-byte label = %v, want ErrInvalidArgument", err)
	}
	if _, err := sn.Stat(ctx, "b"); !errdefs.IsNotFound(err) {
		t.Errorf("the refused snapshot exists: %v", err)
	}
	info.Labels = tooBig
	if _, err := sn.Update(ctx, info, "labels."+longKey); !errdefs.IsInvalidArgument(err) {
		t.Errorf("Update to a 4097-byte label = %v, want ErrInvalidArgument", err)
	}
	if err := sn.Commit(ctx, "c", "a", snapshots.WithLabels(tooBig)); !errdefs.IsInvalidArgument(err) {
		t.Errorf("Commit with a 4097-byte label = %v, want ErrInvalidArgument", err)
	}
	if info, err := sn.Stat(ctx, "a"); err != nil || info.Labels[longKey] != ok[longKey] || info.Kind != snapshots.KindActive {
		t.Errorf("after the refusals a is %+v, %v; want it active with its labels", info.Kind, err)
	}
}

// TestTheSizeLabelsGrowTheDeviceAndItsFilesystem prepares snapshots with
// containerd's generic max-size label and with thinctl.size on a pool whose
// base size is 128 MiB, and reads back each device's size and its mounted
// filesystem's.
func TestTheSizeLabelsGrowTheDeviceAndItsFilesystem(t *testing.T) {
	ctx := t.Context()
	sn := testSnapshotter(t)
	const mib = 1 << 20
	// sizes mounts key's device and returns its size and its filesystem's.
	sizes := func(t *testing.T, key string) (dev, fsys uint64) {
		t.Helper()
		m, err := sn.Mounts(ctx, key)
		if err != nil || len(m) != 1 {
			t.Fatalf("Mounts %s: %v, %v", key, m, err)
		}
		f, err := os.Open(m[0].Source)
		if err != nil {
			t.Fatal(err)
		}
		n, err := unix.IoctlGetInt(int(f.Fd()), unix.BLKGETSIZE64)
		f.Close()
		if err != nil {
			t.Fatalf("BLKGETSIZE64 %s: %v", m[0].Source, err)
		}
		dir := filepath.Join(t.TempDir(), "mnt")
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := unix.Mount(m[0].Source, dir, m[0].Type, 0, ""); err != nil {
			t.Fatalf("mount %s: %v", m[0].Source, err)
		}
		defer unix.Unmount(dir, 0)
		var st unix.Statfs_t
		if err := unix.Statfs(dir, &st); err != nil {
			t.Fatal(err)
		}
		return uint64(n), st.Blocks * uint64(st.Bsize)
	}
	grown := func(t *testing.T, key string, want uint64) {
		t.Helper()
		dev, fsys := sizes(t, key)
		// ext4 keeps some of the device for its metadata: the filesystem
		// must have grown past the 128 MiB base all the same.
		if dev != want || fsys < want*9/10 || fsys > want {
			t.Fatalf("%s: device %d MiB, filesystem %d MiB; want a %d MiB device and a filesystem nearly as big", key, dev/mib, fsys/mib, want/mib)
		}
	}
	refused := func(t *testing.T, key, parent string, l map[string]string) {
		t.Helper()
		if _, err := sn.Prepare(ctx, key, parent, snapshots.WithLabels(l)); !errdefs.IsInvalidArgument(err) {
			t.Fatalf("Prepare %s with %v = %v, want ErrInvalidArgument", key, l, err)
		}
		if _, err := sn.Stat(ctx, key); !errdefs.IsNotFound(err) {
			t.Fatalf("the refused snapshot %s exists: %v", key, err)
		}
	}
	if _, err := sn.Prepare(ctx, "max", "", snapshots.WithLabels(map[string]string{MaxSizeLabel: "268435456"})); err != nil {
		t.Fatalf("Prepare with max-size: %v", err)
	}
	grown(t, "max", 256*mib)
	if err := sn.Commit(ctx, "max-c", "max"); err != nil {
		t.Fatal(err)
	}
	if _, err := sn.Prepare(ctx, "child", "max-c"); err != nil {
		t.Fatal(err)
	}
	grown(t, "child", 256*mib) // a child without a label has its parent's size
	if _, err := sn.Prepare(ctx, "tsize", "", snapshots.WithLabels(map[string]string{SizeLabel: "192M"})); err != nil {
		t.Fatalf("Prepare with thinctl.size: %v", err)
	}
	grown(t, "tsize", 192*mib)
	if _, err := sn.Prepare(ctx, "both", "", snapshots.WithLabels(map[string]string{SizeLabel: "320M", MaxSizeLabel: "335544320"})); err != nil {
		t.Fatalf("Prepare with both labels, one size: %v", err)
	}
	grown(t, "both", 320*mib)
	refused(t, "smaller", "max-c", map[string]string{MaxSizeLabel: "134217728"})
	refused(t, "conflict", "", map[string]string{SizeLabel: "320M", MaxSizeLabel: "268435456"})
	refused(t, "unit", "", map[string]string{MaxSizeLabel: "1G"})
	for _, k := range []string{"both", "tsize", "child", "max-c"} {
		if err := sn.Remove(ctx, k); err != nil {
			t.Fatalf("Remove %s: %v", k, err)
		}
	}
}

// testSnapshotter is a Snapshotter on a pool of its own (suitePool) for
// one test; when the test ends it is closed and the pool checked and taken
// down.
func testSnapshotter(t *testing.T) *Snapshotter {
	t.Helper()
	testenv.RequireDeviceMapper(t)
	testenv.RequireTool(t, "mkfs.ext4")
	sn, cleanup, err := newSuiteSnapshotter(context.Background(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := cleanup(); err != nil {
			t.Error(err)
		}
	})
	return sn
}
