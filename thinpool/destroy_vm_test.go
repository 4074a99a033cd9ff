//go:build vm

package thinpool

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/thinctl/thinctl/internal/testenv"
	"github.com/thinctl/thinctl/thinpool/internal/vmtest"
)

func TestDestroyRemovesEveryDeviceThePoolAndTheState(t *testing.T) {
	p, root := newVMPool(t, smallOptions())
	must(t, p.Create(context.Background(), "a", "", CreateOptions{}))
	must(t, p.Create(context.Background(), "b", "a", CreateOptions{}))
	mustMount(t, p, "b")
	if err := p.Destroy(context.Background(), false); !isErr(err, ErrHasChildren) {
		t.Fatalf("Destroy without force = %v, want ErrHasChildren", err)
	}
	must(t, p.Destroy(context.Background(), true))
	if out := mustDmsetup(t, "ls"); strings.Contains(out, p.cfg.Key) {
		t.Fatalf("devices of the root survive Destroy:\n%s", out)
	}
	if exists(filepath.Join(root, "devicemapper")) || exists(filepath.Join(root, "mnt")) {
		t.Fatal("Destroy left state behind")
	}
	if _, err := Open(context.Background(), root, OpenOptions{}); !isErr(err, ErrNotInitialized) {
		t.Fatalf("Open after Destroy = %v, want ErrNotInitialized", err)
	}
}

func TestAnExternalThinPoolIsUsedButNeverTakenDown(t *testing.T) {
	testenv.RequireDeviceMapper(t)
	_, meta, dataDev, metaDev := rawDevices(t)
	name := fmt.Sprintf("ext-pool-%d", len(t.Name()))
	mustDmsetup(t, "create", name, "--table", fmt.Sprintf("0 %d thin-pool %s %s 128 32768 1 skip_block_zeroing", GiB/512, metaDev, dataDev))
	t.Cleanup(func() {
		dmsetup(t, "remove", name)
		thinCheck(t, meta)
	})

	root := t.TempDir()
	p, err := Init(context.Background(), root, Options{ThinPoolDevice: name, BaseSize: 256 * MiB})
	if err != nil {
		t.Fatalf("Init on an external pool: %v", err)
	}
	writeXAndDown(t, p, "external")
	if _, err := dmsetup(t, "info", name); err != nil {
		t.Fatal("Down took the external pool down")
	}
	p.Close()

	// A second root cannot adopt the pool: it is no longer empty.
	if _, err := Init(context.Background(), t.TempDir(), Options{ThinPoolDevice: name, BaseSize: 256 * MiB}); err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Fatalf("Init on a used external pool = %v", err)
	}

	p, err = Open(context.Background(), root, OpenOptions{})
	must(t, err)
	dir := mustMount(t, p, "x")
	if got := readFile(t, filepath.Join(dir, "f")); got != "external" {
		t.Fatalf("after Down/Open the device reads %q", got)
	}
	must(t, p.Destroy(context.Background(), true))
	st := strings.Fields(mustDmsetup(t, "status", name))
	if len(st) < 4 || st[3] != "0" {
		t.Fatalf("after Destroy the external pool's status is %v, want transaction id 0", st)
	}
}

// rawDevices makes a 1 GiB data and a 64 MiB metadata file and binds them
// to loop devices with losetup (not thinctl's loopback package: to thinctl
// they are someone else's block devices). They are detached when the test
// ends.
func rawDevices(t *testing.T) (data, meta, dataDev, metaDev string) { return vmtest.RawDevices(t) }

// boundTo returns the backing file losetup reports for a loop device, ""
// when it is not bound.
func boundTo(t *testing.T, dev string) string {
	t.Helper()
	out, err := exec.Command(testenv.RequireTool(t, "losetup"), "-n", "-O", "BACK-FILE", dev).Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
}

func TestRawDataAndMetadataDevicesBuildThePoolAndStayBound(t *testing.T) {
	testenv.RequireDeviceMapper(t)
	testenv.RequireTool(t, "mkfs.ext4")
	data, meta, dataDev, metaDev := rawDevices(t)
	root := t.TempDir()
	p, err := Init(context.Background(), root, Options{DataDevice: dataDev, MetadataDevice: metaDev, BaseSize: 256 * MiB})
	if err != nil {
		t.Fatalf("Init on raw devices: %v", err)
	}
	table := mustDmsetup(t, "table", p.Name())
	devNum := func(dev string) string {
		var st unix.Stat_t
		if err := unix.Stat(dev, &st); err != nil {
			t.Fatalf("stat %s: %v", dev, err)
		}
		return fmt.Sprintf("%d:%d", unix.Major(st.Rdev), unix.Minor(st.Rdev))
	}
	if f := strings.Fields(table); len(f) < 5 || f[3] != devNum(metaDev) || f[4] != devNum(dataDev) {
		t.Fatalf("pool table %q does not use metadata %s (%s) and data %s (%s)", table, metaDev, devNum(metaDev), dataDev, devNum(dataDev))
	}
	writeXAndDown(t, p, "raw")
	p.Close()
	if _, err := dmsetup(t, "info", p.Name()); err == nil {
		t.Fatal("Down left the pool device")
	}
	if boundTo(t, dataDev) != data || boundTo(t, metaDev) != meta {
		t.Fatalf("Down detached devices thinctl does not own: %s -> %q, %s -> %q", dataDev, boundTo(t, dataDev), metaDev, boundTo(t, metaDev))
	}
	thinCheck(t, meta)

	p, err = Open(context.Background(), root, OpenOptions{})
	must(t, err)
	dir := mustMount(t, p, "x")
	if got := readFile(t, filepath.Join(dir, "f")); got != "raw" {
		t.Fatalf("after Down and Open the device reads %q", got)
	}
	must(t, p.Destroy(context.Background(), true))
	if _, err := dmsetup(t, "info", p.Name()); err == nil {
		t.Fatal("Destroy left the pool device")
	}
	if boundTo(t, dataDev) != data || boundTo(t, metaDev) != meta {
		t.Fatal("Destroy detached devices thinctl does not own")
	}
	if !exists(data) || !exists(meta) {
		t.Fatal("Destroy removed the raw devices' backing files")
	}
	thinCheck(t, meta)
}

// writeXAndDown creates device x, writes content to its file f and takes
// the pool down.
func writeXAndDown(t *testing.T, p *Pool, content string) {
	t.Helper()
	must(t, p.Create(context.Background(), "x", "", CreateOptions{}))
	writeFile(t, filepath.Join(mustMount(t, p, "x"), "f"), content)
	must(t, p.Unmount(context.Background(), "x"))
	must(t, p.Down(context.Background()))
}
