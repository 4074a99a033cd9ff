package aufs

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/thinctl/thinctl/driver"
)

func TestOpenLaysOutDiffLayersAndMnt(t *testing.T) {
	d, _ := newTestDriver(t)
	for _, sub := range []string{"diff", "layers", "mnt"} {
		fi, err := os.Stat(filepath.Join(d.Home(), sub))
		if err != nil || !fi.IsDir() {
			t.Fatalf("%s/ missing: %v", sub, err)
		}
	}
	if d.String() != "aufs" {
		t.Fatalf("String() = %q", d.String())
	}
}

func TestOpenRefusesHomesAufsCannotName(t *testing.T) {
	f := &fakeSys{mounts: map[string]bool{}}
	for _, bad := range []string{"a:b", "a,b", "a=b"} {
		if _, err := open(filepath.Join(t.TempDir(), bad), f.ops(), 4096); err == nil {
			t.Fatalf("open accepted home containing %q", bad)
		}
	}
}

func TestCreateWritesAncestorChainsNearestFirst(t *testing.T) {
	d, _ := newTestDriver(t)
	mustCreate(t, d, "base", "")
	mustCreate(t, d, "mid", "base")
	mustCreate(t, d, "top", "mid")
	if err := d.CreateReadWrite(t.Context(), "rw", "top", &driver.CreateOpts{MountLabel: "x"}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		id   string
		want string
	}{
		{"base", ""},
		{"mid", "base\n"},
		{"top", "mid\nbase\n"},
		{"rw", "top\nmid\nbase\n"},
	}
	for _, tt := range tests {
		b, err := os.ReadFile(filepath.Join(d.Home(), "layers", tt.id))
		if err != nil || string(b) != tt.want {
			t.Fatalf("layers/%s = %q, %v; want %q", tt.id, b, err, tt.want)
		}
		for _, sub := range []string{"diff", "mnt"} {
			if fi, err := os.Stat(filepath.Join(d.Home(), sub, tt.id)); err != nil || !fi.IsDir() || fi.Mode().Perm() != 0o755 {
				t.Fatalf("%s/%s: %v %v", sub, tt.id, fi, err)
			}
		}
		if !d.Exists(tt.id) {
			t.Fatalf("Exists(%q) = false after Create", tt.id)
		}
	}
	md, err := d.Metadata("rw")
	if err != nil {
		t.Fatal(err)
	}
	if md["parent"] != "top" || md["diff"] != filepath.Join(d.Home(), "diff", "rw") || md["mnt"] != filepath.Join(d.Home(), "mnt", "rw") {
		t.Fatalf("Metadata(rw) = %v", md)
	}
}

func TestCreateErrors(t *testing.T) {
	d, _ := newTestDriver(t)
	mustCreate(t, d, "base", "")
	tests := []struct {
		name   string
		id     string
		parent string
		opts   *driver.CreateOpts
		is     error // sentinel the error must wrap, nil for "any error"
	}{
		{"an existing id is refused with ErrExists", "base", "", nil, driver.ErrExists},
		{"a missing parent is refused with ErrNotFound", "x", "nope", nil, driver.ErrNotFound},
		{"a size option is refused with ErrNotSupported", "x", "base", &driver.CreateOpts{StorageOpt: map[string]string{"size": "10G"}}, driver.ErrNotSupported},
		{"an invalid id is refused", "a:b", "", nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := d.Create(t.Context(), tt.id, tt.parent, tt.opts)
			if err == nil || (tt.is != nil && !errors.Is(err, tt.is)) {
				t.Fatalf("Create(%q, %q) = %v, want an error wrapping %v", tt.id, tt.parent, err, tt.is)
			}
			if tt.id != "base" && d.Exists(tt.id) {
				t.Fatalf("failed Create left layer %q behind", tt.id)
			}
		})
	}
	if _, err := os.Stat(filepath.Join(d.Home(), "diff", "x")); !os.IsNotExist(err) {
		t.Fatalf("failed Create left diff/x: %v", err)
	}
}

func TestLookupsOfMissingLayersReturnErrNotFound(t *testing.T) {
	d, _ := newTestDriver(t)
	calls := map[string]func() error{
		"Remove":   func() error { return d.Remove(t.Context(), "nope") },
		"Get":      func() error { _, err := d.Get(t.Context(), "nope", ""); return err },
		"Put":      func() error { return d.Put(t.Context(), "nope") },
		"Metadata": func() error { _, err := d.Metadata("nope"); return err },
		"Diff":     func() error { _, err := d.Diff(t.Context(), "nope", ""); return err },
		"Changes":  func() error { _, err := d.Changes(t.Context(), "nope", ""); return err },
		"DiffSize": func() error { _, err := d.DiffSize(t.Context(), "nope", ""); return err },
		"ApplyDiff": func() error {
			_, err := d.ApplyDiff(t.Context(), "nope", "", strings.NewReader(""))
			return err
		},
	}
	for name, call := range calls {
		if err := call(); !errors.Is(err, driver.ErrNotFound) {
			t.Errorf("%s of a missing layer = %v, want ErrNotFound", name, err)
		}
	}
	if d.Exists("nope") {
		t.Fatal("Exists of a missing layer")
	}
}

func TestStatusAndList(t *testing.T) {
	d, _ := newTestDriver(t)
	mustCreate(t, d, "b", "")
	mustCreate(t, d, "a", "b")
	st := d.Status()
	keys := []string{}
	vals := map[string]string{}
	for _, kv := range st {
		keys = append(keys, kv.Key)
		vals[kv.Key] = kv.Value
	}
	if !reflect.DeepEqual(keys, []string{"Root Dir", "Backing Filesystem", "Dirs", "Dirperm1 Supported"}) {
		t.Fatalf("Status keys = %q", keys)
	}
	if vals["Root Dir"] != d.Home() || vals["Dirs"] != "2" || vals["Backing Filesystem"] == "" {
		t.Fatalf("Status = %v", st)
	}
	list, err := d.List()
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0].ID != "a" || list[0].Parent != "b" || list[1].ID != "b" || list[1].Parent != "" {
		t.Fatalf("List = %+v", list)
	}
}

func TestRemove(t *testing.T) {
	d, _ := newTestDriver(t)
	mustCreate(t, d, "base", "")
	mustCreate(t, d, "child", "base")
	writeTree(t, d.diffPath("child"), map[string]string{"etc/hosts": "x", "etc/.wh.passwd": ""})

	if err := d.Remove(t.Context(), "base"); !errors.Is(err, driver.ErrHasChildren) || !strings.Contains(err.Error(), "child") {
		t.Fatalf("Remove of a parent = %v, want ErrHasChildren naming the child", err)
	}
	// A mounted layer is unmounted by Remove and its references go with it.
	if _, err := d.Get(t.Context(), "child", ""); err != nil {
		t.Fatal(err)
	}

	var during []string
	d.hookAfterRename = func() { during = listTree(t, d.Home()) }
	if err := d.Remove(t.Context(), "child"); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"diff/child-removing/", "mnt/child-removing/", "diff/child-removing/etc/hosts"} {
		if !contains(during, want) {
			t.Fatalf("after the renames the home held %q, want %q among them", during, want)
		}
	}
	if contains(during, "diff/child/") || contains(during, "mnt/child/") {
		t.Fatalf("after the renames the original names must be gone: %q", during)
	}
	if got := listTree(t, d.Home()); !reflect.DeepEqual(got, []string{"diff/", "diff/base/", "layers/", "layers/base", "mnt/", "mnt/base/"}) {
		t.Fatalf("after Remove the home holds %q", got)
	}
	if d.Exists("child") {
		t.Fatal("removed layer still exists")
	}
	if d.refs["child"] != 0 || d.sys.mounted(d.mntPath("child")) {
		t.Fatalf("the removed layer kept %d references or its mount", d.refs["child"])
	}
	if err := d.Remove(t.Context(), "base"); err != nil {
		t.Fatalf("Remove of the now childless base: %v", err)
	}
}

func TestOpenSweepsInterruptedRemovals(t *testing.T) {
	d, f := newTestDriver(t)
	mustCreate(t, d, "keep", "")
	mustCreate(t, d, "gone", "")
	mustCreate(t, d, "half", "")
	writeTree(t, d.diffPath("gone"), map[string]string{"big/file": "data"})
	// "gone": crashed after both renames, before the layers file went.
	for _, sub := range []string{"diff", "mnt"} {
		p := filepath.Join(d.Home(), sub, "gone")
		if err := os.Rename(p, p+removingSuffix); err != nil {
			t.Fatal(err)
		}
	}
	// "half": crashed after renaming mnt only; the layer is still whole
	// in diff/ and layers/, so it must survive with a fresh mount point.
	if err := os.Rename(d.mntPath("half"), d.mntPath("half")+removingSuffix); err != nil {
		t.Fatal(err)
	}
	// A leftover still mounted from the crashed process.
	f.mounts[d.mntPath("half")+removingSuffix] = true

	d2, err := open(d.Home(), f.ops(), 4096)
	if err != nil {
		t.Fatal(err)
	}
	got := listTree(t, d2.Home())
	for _, p := range got {
		if strings.Contains(p, removingSuffix) {
			t.Fatalf("sweep left %q (home: %q)", p, got)
		}
	}
	if contains(got, "layers/gone") || d2.Exists("gone") {
		t.Fatalf("sweep kept the layers file of a removed layer: %q", got)
	}
	if !d2.Exists("keep") || !d2.Exists("half") {
		t.Fatalf("sweep removed a live layer: %q", got)
	}
	if f.mounts[d.mntPath("half")+removingSuffix] {
		t.Fatal("sweep did not unmount a leftover mount before deleting it")
	}
	if _, err := d2.Get(t.Context(), "half", ""); err != nil {
		t.Fatalf("Get of a layer whose mount point was swept: %v", err)
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// TestReadsADockerAufsHome opens the home Docker's aufs driver left for an
// ubuntu:16.04 container (ids and layers files as shown by
// `tree /var/lib/docker/aufs` and `cat layers/<id>`) and checks the stack
// it would mount: a5 -> a5-init -> af -> 80 -> 14 -> 72.
func TestReadsADockerAufsHome(t *testing.T) {
	const (
		c         = "a5cad43027e71dcd8efaa9287a4c502a59631c108d22b5e861d9ca1878525227"
		initLayer = c + "-init"
		l4        = "aff7006186a6867de9cc7a75f1d31c90eb52753b9d96d6c85a3f66e78ccd465b"
		l3        = "8065b4da5339d297dfb53f4bd7edfeba97b5c0089eda635c412943c4d7e55e81"
		l2        = "1492027998d17f2f422a0d46ed6e41a9ef59911bb13357765aeb0dc9f150ea76"
		l1        = "72c62493358ebb6ae7d47717a491b7f3ff402fb338a34d9df8529c166223737a"
	)
	stack := []string{c, initLayer, l4, l3, l2, l1}
	d, f := newTestDriver(t)
	for i, id := range stack {
		mkdirAll(t, d.diffPath(id))
		mkdirAll(t, d.mntPath(id))
		if err := os.WriteFile(d.layersPath(id), formatLayers(stack[i+1:]), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// The container deleted /bin/zegrep, which lives in the bottom layer.
	writeTree(t, d.diffPath(l1), map[string]string{"bin/zegrep": "#!/bin/sh\n"})
	writeTree(t, d.diffPath(c), map[string]string{"bin/.wh.zegrep": ""})

	list, err := d.List()
	if err != nil || len(list) != len(stack) {
		t.Fatalf("List = %+v, %v", list, err)
	}
	if md, err := d.Metadata(c); err != nil || md["parent"] != initLayer {
		t.Fatalf("parent of the container layer = %q (%v), want its -init layer", md["parent"], err)
	}
	if _, err := d.Get(t.Context(), c, ""); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, b := range planBranches(mountPlan{First: f.layerCalls(d.mntPath(c))[0].data}) {
		got = append(got, filepath.Base(strings.TrimSuffix(strings.TrimSuffix(b, "=rw"), "=ro+wh")))
	}
	if !reflect.DeepEqual(got, stack) {
		t.Fatalf("mounted stack, top first:\n got %q\nwant %q", got, stack)
	}
	changes, err := d.Changes(t.Context(), c, initLayer)
	if err != nil || fmt.Sprint(changes) != "[M /bin D /bin/zegrep]" {
		t.Fatalf("Changes of the container = %v, %v", changes, err)
	}
}
