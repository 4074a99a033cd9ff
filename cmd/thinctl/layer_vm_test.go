//go:build vm

package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestALayerStackExportedFromDevicemapperImportsIntoOverlay2AndBack builds
// a two-layer stack on devicemapper, exports both layers, imports them as
// a stack under overlay2 and compares the mounted trees; then exports the
// overlay2 top layer and imports it back onto the devicemapper base, and
// compares again. A devicemapper layer's tree is the rootfs directory in
// its filesystem (driver/devicemapper keeps lost+found out of the layer).
func TestALayerStackExportedFromDevicemapperImportsIntoOverlay2AndBack(t *testing.T) {
	dm := newOperator(t)
	ov := &operator{t: t, root: filepath.Join(t.TempDir(), "ov"), exe: dm.exe}
	t.Cleanup(func() {
		for _, id := range []string{"base2", "app2"} {
			ov.run("--driver", "overlay2", "unmount", id)
		}
		ov.run("--driver", "overlay2", "pool", "destroy", "--force")
	})
	for _, id := range []string{"app3"} {
		id := id
		t.Cleanup(func() { dm.run("unmount", id) })
	}
	ovm := func(args ...string) string { return ov.must(append([]string{"--driver", "overlay2"}, args...)...) }
	dmLayer := func(id string) string { return filepath.Join(strings.TrimSpace(dm.must("mount", id)), "rootfs") }
	ovLayer := func(id string) string { return strings.TrimSpace(ovm("mount", id)) }
	mounted := func(layer func(string) string, unmount func(...string) string, id string) map[string]treeEntry {
		tree := snapshotTree(t, layer(id))
		unmount("unmount", id)
		return tree
	}
	files := t.TempDir()
	baseTar, appTar, app2Tar := filepath.Join(files, "base.tar"), filepath.Join(files, "app.tar"), filepath.Join(files, "app2.tar")

	dm.must("pool", "init", "--data-size", "1G", "--metadata-size", "16M", "--base-size", "128M")
	dm.must("create", "base")
	base := dmLayer("base")
	if err := os.MkdirAll(base, 0o755); err != nil {
		t.Fatal(err)
	}
	fillLayerTree(t, base)
	dm.must("unmount", "base")
	dm.must("create", "app", "--parent", "base")
	changeLayerTree(t, dmLayer("app"))
	dm.must("unmount", "app")
	dm.must("export", "base", "--parent", "", "--file", baseTar)
	dm.must("export", "app", "--file", appTar)

	ovm("pool", "init")
	ovm("import", "base2", "--file", baseTar)
	ovm("import", "app2", "--parent", "base2", "--file", appTar)
	dmApp := mounted(dmLayer, dm.must, "app")
	if d := diffTrees(dmApp, mounted(ovLayer, ovm, "app2")); d != "" {
		t.Errorf("devicemapper app and overlay2 app2 differ:\n%s", d)
	}
	if !dmApp["sparse"].sparse || dmApp["etc/hello.hard"].link != "etc/hello" {
		t.Errorf("the source tree lacks what it should prove: %+v %+v", dmApp["sparse"], dmApp["etc/hello.hard"])
	}

	ovm("export", "app2", "--file", app2Tar)
	dm.must("import", "app3", "--parent", "base", "--file", app2Tar)
	if d := diffTrees(dmApp, mounted(dmLayer, dm.must, "app3")); d != "" {
		t.Errorf("devicemapper app and app3 (imported back from overlay2) differ:\n%s", d)
	}
	if b, err := os.ReadFile(appTar); err != nil || len(b) == 0 {
		t.Fatalf("app.tar: %d bytes, %v", len(b), err)
	}
}
