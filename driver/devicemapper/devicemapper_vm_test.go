//go:build vm

package devicemapper

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/thinctl/thinctl/driver"
	"github.com/thinctl/thinctl/driver/drivertest"
	"github.com/thinctl/thinctl/internal/testenv"
	"github.com/thinctl/thinctl/thinpool"
)

// smallPool keeps the emulated guest fast: a 1 GiB sparse data file,
// 64 MiB of metadata and a 256 MiB base device.
var smallPool = map[string]string{"dm.loopdatasize": "1G", "dm.loopmetadatasize": "64M", "dm.basesize": "256M"}

// tearDown takes the pool under root down from a fresh Pool, unmounting
// whatever the test left mounted.
func tearDown(t *testing.T, root string) {
	t.Helper()
	if !thinpool.Exists(root) {
		return
	}
	ctx := context.Background()
	p, err := thinpool.Open(ctx, root, thinpool.OpenOptions{})
	if err != nil {
		t.Errorf("teardown Open: %v", err)
		return
	}
	defer p.Close()
	devs, err := p.Devices()
	if err != nil {
		t.Errorf("teardown Devices: %v", err)
	}
	for _, d := range devs {
		if d.Mounted {
			if err := p.Unmount(ctx, d.ID); err != nil {
				t.Errorf("teardown unmount %s: %v", d.ID, err)
			}
		}
	}
	if err := p.Destroy(ctx, true); err != nil {
		t.Errorf("teardown Destroy: %v", err)
	}
}

func TestDriverConformance(t *testing.T) {
	testenv.RequireDeviceMapper(t)
	if why, err := (Backend{}).Probe(t.TempDir()); err != nil || why != "the kernel has dm-thin-pool" {
		t.Fatalf("Probe on a kernel with dm-thin-pool: %q, %v", why, err)
	}
	cfg := drivertest.Config{ChainLength: 24, QuotaBytes: int64(256 << 20)}
	drivertest.RunWithConfig(t, cfg, func(t *testing.T) driver.Driver {
		root := t.TempDir()
		if _, ok := (Backend{}).Existing(root); ok {
			t.Fatal("Existing on an empty root")
		}
		d, err := (Backend{}).Init(t.Context(), root, driver.Options{StorageOpt: smallPool})
		if err != nil {
			t.Fatalf("Init: %v", err)
		}
		if desc, ok := (Backend{}).Existing(root); !ok || desc != filepath.Join(root, Name)+" already holds a thin pool" {
			t.Fatalf("Existing after Init = %q, %v", desc, ok)
		}
		t.Cleanup(func() {
			if err := d.Cleanup(context.Background()); err != nil {
				t.Errorf("Cleanup: %v", err)
			}
			tearDown(t, root)
		})
		return d
	})
}

// TestAPoolMadeByTheEngineIsTheOneSelectOpens makes a pool the way the
// command line does (thinpool.Init on the root) and checks that
// driver.Select sees exactly that pool: same name, same devices, and no
// second pool created inside it.
func TestAPoolMadeByTheEngineIsTheOneSelectOpens(t *testing.T) {
	testenv.RequireDeviceMapper(t)
	root := t.TempDir()
	ctx := t.Context()
	o, err := OptionsFromStorageOpt(smallPool)
	if err != nil {
		t.Fatal(err)
	}
	p, err := thinpool.Init(ctx, root, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tearDown(t, root) })
	if err := p.Create(ctx, "made-by-engine", "", thinpool.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	name := p.Name()
	p.Close()

	d, ch, err := driver.Select(ctx, root, "auto", driver.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Cleanup(context.Background())
	if ch.Name != Name || !ch.Initialized || ch.Reason != filepath.Join(root, Name)+" already holds a thin pool" {
		t.Fatalf("Select chose %+v", ch)
	}
	st, err := d.(driver.PoolStatuser).PoolStatus()
	if err != nil || st.PoolName != name || st.Devices != 1 {
		t.Fatalf("PoolStatus = %+v, %v; want pool %s with its one device", st, err, name)
	}
	if !d.Exists("made-by-engine") {
		t.Fatal("the engine's device is not a layer through the driver")
	}
	if _, err := os.Stat(filepath.Join(root, Name, Name)); !os.IsNotExist(err) {
		t.Fatalf("Select made a second pool inside the first (%v)", err)
	}
	if _, err := driver.Init(ctx, ch, driver.Options{StorageOpt: smallPool}); !errors.Is(err, driver.ErrAlreadyInitialized) {
		t.Fatalf("Init over the pool = %v, want ErrAlreadyInitialized", err)
	}
}

// TestRemovingAHeldLayerIsDeferredAndGCFinishesIt holds a layer's device
// open, removes it through the driver and checks the error class, then
// lets go and collects it.
func TestRemovingAHeldLayerIsDeferredAndGCFinishesIt(t *testing.T) {
	testenv.RequireDeviceMapper(t)
	root := t.TempDir()
	ctx := t.Context()
	d, _, err := driver.Select(ctx, root, Name, driver.Options{StorageOpt: smallPool})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Cleanup(context.Background()); tearDown(t, root) })
	if err := d.Create(ctx, "held", "", nil); err != nil {
		t.Fatal(err)
	}
	dev, err := d.(driver.Activator).Activate(ctx, "held")
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(dev)
	if err != nil {
		t.Fatal(err)
	}
	err = d.Remove(ctx, "held")
	if !errors.Is(err, driver.ErrDeferred) || !strings.Contains(err.Error(), "held") {
		f.Close()
		t.Fatalf("Remove of a held layer = %v, want ErrDeferred naming it", err)
	}
	if d.Exists("held") {
		t.Error("a layer whose removal is deferred still Exists")
	}
	f.Close()
	ids, err := d.(driver.Collector).GC(ctx)
	if err != nil || len(ids) != 1 || ids[0] != "held" {
		t.Fatalf("GC after the holder let go = %v, %v; want [held]", ids, err)
	}
}

// TestACancelledContextStopsBeforeAnythingChanges cancels first and checks
// that Create leaves no layer.
func TestACancelledContextStopsBeforeAnythingChanges(t *testing.T) {
	testenv.RequireDeviceMapper(t)
	root := t.TempDir()
	d, _, err := driver.Select(t.Context(), root, Name, driver.Options{StorageOpt: smallPool})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Cleanup(context.Background()); tearDown(t, root) })
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := d.Create(ctx, "never", "", nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("Create with a cancelled context = %v, want context.Canceled", err)
	}
	if d.Exists("never") {
		t.Fatal("a cancelled Create made the layer")
	}
}

func TestGetAndExportRefuseALayerWhoseRootfsIsASymlink(t *testing.T) {
	testenv.RequireDeviceMapper(t)
	root := t.TempDir()
	ctx := t.Context()
	d, err := (Backend{}).Init(ctx, root, driver.Options{StorageOpt: smallPool})
	if err != nil {
		t.Fatalf("Init: %v", err)
	}
	t.Cleanup(func() { d.Cleanup(context.Background()); tearDown(t, root) })
	outside := t.TempDir()
	if err := os.WriteFile(filepath.Join(outside, "secret"), []byte("the host's secret"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := d.Create(ctx, "evil", "", nil); err != nil {
		t.Fatal(err)
	}
	// Whoever wrote the device's filesystem made rootfs a symlink.
	dd := d.(*Driver)
	mp, err := dd.Mount(ctx, "evil", driver.MountOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(mp, layerDir)); err != nil {
		t.Fatal(err)
	}
	if err := dd.Unmount(ctx, "evil"); err != nil {
		t.Fatal(err)
	}
	if p, err := d.Get(ctx, "evil", ""); !errors.Is(err, driver.ErrBadLayerRoot) || !strings.Contains(err.Error(), "is a symlink to") {
		t.Fatalf("Get = %q, %v; want ErrBadLayerRoot", p, err)
	}
	if dev, err := dd.Pool().Device("evil"); err != nil || dev.Mounted {
		t.Errorf("after the refused Get the layer is mounted=%v (%v); want unmounted", dev.Mounted, err)
	}
	rc, err := driver.DiffOf(d).Diff(ctx, "evil", "")
	if err == nil {
		b, _ := io.ReadAll(rc)
		rc.Close()
		t.Fatalf("Diff of the layer worked (%d bytes); it must be refused", len(b))
	}
	if !errors.Is(err, driver.ErrBadLayerRoot) {
		t.Errorf("Diff = %v, want ErrBadLayerRoot", err)
	}
	if _, err := driver.DiffOf(d).Changes(ctx, "evil", ""); !errors.Is(err, driver.ErrBadLayerRoot) {
		t.Errorf("Changes = %v, want ErrBadLayerRoot", err)
	}
	if b, err := os.ReadFile(filepath.Join(outside, "secret")); err != nil || string(b) != "the host's secret" {
		t.Errorf("the outside file now holds %q (%v)", b, err)
	}
}
