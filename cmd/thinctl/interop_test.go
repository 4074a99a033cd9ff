package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/thinctl/thinctl/driver"
)

// checkCLIAndLibrarySeeOneStore makes a store with the command line and
// opens it with driver.Select, then makes one with driver.Select and uses
// it with the command line: both ways see the same backend, the same
// layers and the same files, and neither makes a second store inside the
// other's. name is the backend auto picks on this host; initArgs are the
// pool init flags that keep it small.
func checkCLIAndLibrarySeeOneStore(t *testing.T, name string, initArgs ...string) {
	ctx := context.Background()

	t.Run("a root made by the command line opens through driver.Select", func(t *testing.T) {
		h := newHarness(t)
		t.Cleanup(func() { h.rooted("pool", "destroy", "--force") })
		h.must(append([]string{"pool", "init"}, initArgs...)...)
		h.must("create", "base")
		h.must("create", "app", "--parent", "base")
		dir := strings.TrimSpace(h.must("mount", "app").stdout)
		if err := os.WriteFile(filepath.Join(dir, "from-cli"), []byte("cli\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		h.must("unmount", "app")

		d, ch, err := driver.Select(ctx, h.root, "auto", driver.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer d.Cleanup(ctx)
		if ch.Name != name || !ch.Initialized || ch.Home != filepath.Join(h.root, name) {
			t.Fatalf("Select chose %+v, want the CLI's %s store", ch, name)
		}
		layers, err := d.(driver.Lister).List()
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, l := range layers {
			ids = append(ids, l.ID+"<"+l.Parent)
		}
		if strings.Join(ids, " ") != "app<base base<" {
			t.Fatalf("the library lists %v, want the CLI's app (on base) and base", ids)
		}
		p, err := d.(driver.Mounter).Mount(ctx, "app", driver.MountOptions{})
		if err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(filepath.Join(p, "from-cli"))
		d.(driver.Mounter).Unmount(ctx, "app")
		if err != nil || string(b) != "cli\n" {
			t.Fatalf("the library reads the CLI's file as %q, %v", b, err)
		}
		if _, err := os.Stat(filepath.Join(h.root, name, name)); !os.IsNotExist(err) {
			t.Fatalf("Select made a second store inside the CLI's (%v)", err)
		}
	})

	t.Run("a root made by driver.Select is the command line's store", func(t *testing.T) {
		h := newHarness(t)
		t.Cleanup(func() { h.rooted("pool", "destroy", "--force") })
		opts := driver.Options{}
		if name == devicemapper {
			opts.StorageOpt = map[string]string{"dm.loopdatasize": "1G", "dm.loopmetadatasize": "64M", "dm.basesize": "256M"}
		}
		d, ch, err := driver.Select(ctx, h.root, "auto", opts)
		if err != nil {
			t.Fatal(err)
		}
		if ch.Name != name || ch.Initialized {
			t.Fatalf("Select on a fresh root chose %+v", ch)
		}
		if err := d.CreateReadWrite(ctx, "lib", "", nil); err != nil {
			t.Fatal(err)
		}
		p, err := d.(driver.Mounter).Mount(ctx, "lib", driver.MountOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(p, "from-lib"), []byte("lib\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := d.(driver.Mounter).Unmount(ctx, "lib"); err != nil {
			t.Fatal(err)
		}
		if err := d.Cleanup(ctx); err != nil {
			t.Fatal(err)
		}

		var st poolStatus
		if err := json.Unmarshal([]byte(h.must("-o", "json", "pool", "status").stdout), &st); err != nil {
			t.Fatal(err)
		}
		if st.Driver != name || st.Devices != 1 || !strings.HasPrefix(st.DriverReason, filepath.Join(h.root, name)+" already ") {
			t.Fatalf("the CLI's pool status of the library's store: %+v", st)
		}
		var info deviceInfo
		if err := json.Unmarshal([]byte(h.must("-o", "json", "info", "lib").stdout), &info); err != nil {
			t.Fatal(err)
		}
		if info.ID != "lib" || info.Parent != "" || info.Mounted {
			t.Fatalf("the CLI's info of the library's layer: %+v", info)
		}
		dir := strings.TrimSpace(h.must("mount", "lib").stdout)
		b, err := os.ReadFile(filepath.Join(dir, "from-lib"))
		if err != nil || string(b) != "lib\n" {
			t.Fatalf("the CLI reads the library's file as %q, %v", b, err)
		}
		h.must("unmount", "lib")
		h.must("remove", "lib")
		if r := h.rooted("pool", "init"); r.code != 1 || !strings.Contains(r.stderr, "already initialized") {
			t.Fatalf("pool init over the library's store: exit %d\n%s", r.code, r.stderr)
		}
	})
}

// TestTheCLIAndTheLibrarySeeOneOverlay2Store runs on the host, whose
// kernel has overlay and no device-mapper (auto picks overlay2).
func TestTheCLIAndTheLibrarySeeOneOverlay2Store(t *testing.T) {
	overlayHarness(t) // skips without root or overlay
	ch, err := driver.Choose(t.TempDir(), "auto")
	if err != nil || ch.Name != "overlay2" {
		t.Skipf("auto picks %q here (%v), not overlay2", ch.Name, err)
	}
	checkCLIAndLibrarySeeOneStore(t, "overlay2")
}
