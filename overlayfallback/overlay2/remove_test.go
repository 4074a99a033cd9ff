package overlay2

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pkg/errors"
	"golang.org/x/sys/unix"

	"github.com/thinctl/thinctl/driver"
	"github.com/thinctl/thinctl/fs"
)

// mountsBelow lists the mount points at or under dir (in any .removing-
// directory too when dir is a layer directory: a rename moves mounts).
func mountsBelow(t *testing.T, home, id string) []string {
	t.Helper()
	mounts, err := fs.Mounts()
	must(t, err)
	var out []string
	for _, m := range mounts {
		p := m.MountPoint
		if p == filepath.Join(home, id) || strings.HasPrefix(p, filepath.Join(home, id)+"/") ||
			strings.HasPrefix(p, filepath.Join(home, removingPrefix+id+"-")) {
			out = append(out, p)
		}
	}
	return out
}

// bind bind-mounts src on dst and unmounts it lazily at cleanup if it is
// still there.
func bind(t *testing.T, src, dst string) {
	t.Helper()
	must(t, os.MkdirAll(dst, 0o755))
	if err := unix.Mount(src, dst, "", unix.MS_BIND, ""); err != nil {
		t.Skipf("bind mount here: %v", err)
	}
	t.Cleanup(func() { unix.Unmount(dst, unix.MNT_DETACH) })
}

// writeIn writes name with content under dir.
func writeIn(t *testing.T, dir, name, content string) {
	t.Helper()
	must(t, os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644))
}

// readIn reads name under dir, "" with the error when it cannot.
func readIn(dir, name string) (string, error) {
	b, err := os.ReadFile(filepath.Join(dir, name))
	return string(b), err
}

// mountedTop makes layer top on base in a fresh driver, mounts it with Get
// and writes f ("layer data") in it; it returns the driver, top's link
// name and its merged directory.
func mountedTop(t *testing.T) (d *Driver, link, merged string) {
	t.Helper()
	d = newTestDriver(t)
	must(t, d.Create(t.Context(), "base", "", nil))
	must(t, d.CreateReadWrite(t.Context(), "top", "base", nil))
	link, err := d.readLink("top")
	must(t, err)
	merged, err = d.Get(t.Context(), "top", "")
	must(t, err)
	writeIn(t, merged, "f", "layer data")
	return d, link, merged
}

func TestRemoveUnmountsEveryMountUnderTheLayer(t *testing.T) {
	tests := []struct {
		name string
		// mounts is how many mounts the layer has before Remove, at least.
		mounts int
		// mount adds mounts to layer "top" (mounted by Get at merged) and
		// returns a directory outside the home whose file "keep" must
		// survive the Remove ("" for none).
		mount func(t *testing.T, d *Driver, merged string) string
	}{
		{"a layer got twice (one mount, two references) is unmounted and a new Get mounts again", 1, func(t *testing.T, d *Driver, merged string) string {
			_, err := d.Get(t.Context(), "top", "")
			must(t, err)
			return ""
		}},
		{"a second mount stacked on merged goes with the first", 2, func(t *testing.T, d *Driver, merged string) string {
			bind(t, merged, merged)
			return ""
		}},
		{"a bind mount inside the mounted merged goes first and its source keeps its files", 2, func(t *testing.T, d *Driver, merged string) string {
			src := t.TempDir()
			writeIn(t, src, "keep", "outside")
			bind(t, src, filepath.Join(merged, "inner"))
			return src
		}},
		{"a bind mount on the layer's diff directory goes and its source keeps its files", 2, func(t *testing.T, d *Driver, merged string) string {
			src := t.TempDir()
			writeIn(t, src, "keep", "outside")
			must(t, os.Mkdir(filepath.Join(d.diffDir("top"), "sub"), 0o755))
			bind(t, src, filepath.Join(d.diffDir("top"), "sub"))
			return src
		}},
		{"the same directory bound on the layer twice goes both times", 3, func(t *testing.T, d *Driver, merged string) string {
			src := t.TempDir()
			writeIn(t, src, "keep", "outside")
			bind(t, src, filepath.Join(d.dir("top"), "extra"))
			bind(t, src, filepath.Join(d.dir("top"), "extra"))
			return src
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, link, merged := mountedTop(t)
			outside := tt.mount(t, d, merged)
			before := mountsBelow(t, d.home, "top")
			if len(before) < tt.mounts {
				t.Fatalf("the layer has %d mounts (%v) before Remove; the case proves nothing", len(before), before)
			}

			must(t, d.Remove(t.Context(), "top"))
			if left := mountsBelow(t, d.home, "top"); len(left) > 0 {
				t.Fatalf("Remove left %v mounted (of %v)", left, before)
			}
			ents, err := os.ReadDir(d.home)
			must(t, err)
			for _, e := range ents {
				if e.Name() == "top" || strings.HasPrefix(e.Name(), removingPrefix) {
					t.Errorf("the home still holds %s", e.Name())
				}
			}
			if _, err := os.Lstat(filepath.Join(d.home, linkDir, link)); !os.IsNotExist(err) {
				t.Errorf("l/%s is still there: %v", link, err)
			}
			if d.Exists("top") || !d.Exists("base") {
				t.Errorf("after Remove: top exists %v, base exists %v", d.Exists("top"), d.Exists("base"))
			}
			if outside != "" {
				if got, err := readIn(outside, "keep"); got != "outside" {
					t.Errorf("the bound directory's file reads %q (%v): Remove deleted through a mount", got, err)
				}
			}
			// The id is free and a new layer mounts from scratch.
			must(t, d.CreateReadWrite(t.Context(), "top", "base", nil))
			p, err := d.Get(t.Context(), "top", "")
			must(t, err)
			if mounted, _ := fs.IsMounted(p); !mounted {
				t.Error("Get of the new layer returned an unmounted merged directory (a reference survived Remove)")
			}
			if _, err := readIn(p, "f"); !os.IsNotExist(err) {
				t.Errorf("the new layer sees the removed layer's file: %v", err)
			}
			must(t, d.Put(t.Context(), "top"))
		})
	}
}

func TestRemoveOfABusyLayerFailsNamingTheMountAndKeepsTheLayer(t *testing.T) {
	tests := []struct {
		name string
		// hold keeps merged busy and returns the function that lets go.
		hold func(t *testing.T, merged string) func()
	}{
		{"a file open in merged", func(t *testing.T, merged string) func() {
			f, err := os.Open(filepath.Join(merged, "f"))
			must(t, err)
			return func() { f.Close() }
		}},
		{"a process whose working directory is merged", func(t *testing.T, merged string) func() {
			cmd := exec.Command("sleep", "600")
			cmd.Dir = merged
			if err := cmd.Start(); err != nil {
				t.Skipf("start sleep: %v", err)
			}
			stop := func() { cmd.Process.Kill(); cmd.Wait() }
			t.Cleanup(stop)
			return stop
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, link, merged := mountedTop(t)
			release := tt.hold(t, merged)

			err := d.Remove(t.Context(), "top")
			if !errors.Is(err, driver.ErrBusy) || !strings.Contains(err.Error(), merged+" is busy") || !strings.Contains(err.Error(), "kept") {
				release()
				t.Fatalf("Remove of a busy layer = %v, want ErrBusy naming %s and saying the layer is kept", err, merged)
			}
			t.Logf("refused: %v", err)
			// The layer is as it was: listed, mounted, its file there, its link.
			layers, err := d.List()
			must(t, err)
			listed := false
			for _, l := range layers {
				listed = listed || l.ID == "top" && l.Mounted
			}
			if !listed {
				t.Errorf("after the refusal top is not listed as mounted: %+v", layers)
			}
			if got, err := readIn(merged, "f"); got != "layer data" {
				t.Errorf("merged/f reads %q (%v) after the refusal", got, err)
			}
			if got, err := readIn(d.diffDir("top"), "f"); got != "layer data" {
				t.Errorf("diff/f reads %q (%v) after the refusal", got, err)
			}
			if target, err := os.Readlink(filepath.Join(d.home, linkDir, link)); err != nil || target != "../top/diff" {
				t.Errorf("l/%s -> %q (%v) after the refusal", link, target, err)
			}
			if left, _ := d.removedLeftovers(); len(left) > 0 {
				t.Errorf("the refusal left %v", left)
			}

			release()
			must(t, d.Remove(t.Context(), "top"))
			if left := mountsBelow(t, d.home, "top"); len(left) > 0 || d.Exists("top") {
				t.Errorf("after letting go, Remove left mounts %v, layer exists %v", left, d.Exists("top"))
			}
		})
	}
}

func TestARemoveCutShortAfterItsRenameLeavesNoLayerAndNewClearsTheRest(t *testing.T) {
	d := newTestDriver(t)
	must(t, d.Create(t.Context(), "base", "", nil))
	must(t, d.Create(t.Context(), "gone", "base", nil))
	p, err := d.Get(t.Context(), "gone", "")
	must(t, err)
	writeIn(t, p, "f", "doomed")
	link, err := d.readLink("gone")
	must(t, err)

	crash := errors.New("crash")
	hookAfterRemoveRename = func() error { return crash }
	err = d.Remove(t.Context(), "gone") // mounted: Remove unmounts it first
	hookAfterRemoveRename = nil
	if !errors.Is(err, crash) {
		t.Fatalf("Remove = %v, want it stopped after the rename", err)
	}
	// What the crash left: no layer, its files in one .removing- directory
	// with nothing mounted, and its link, dangling.
	if d.Exists("gone") {
		t.Fatal("the layer still exists after the rename")
	}
	layers, err := d.List()
	must(t, err)
	if len(layers) != 1 || layers[0].ID != "base" {
		t.Errorf("listed after the cut: %+v, want base alone", layers)
	}
	left, err := d.removedLeftovers()
	must(t, err)
	if len(left) != 1 || !strings.HasPrefix(filepath.Base(left[0]), removingPrefix+"gone-") {
		t.Fatalf("leftovers %v, want one %sgone-… directory", left, removingPrefix)
	}
	if got, err := readIn(filepath.Join(left[0], diffDirName), "f"); got != "doomed" {
		t.Errorf("the renamed directory's diff/f reads %q (%v)", got, err)
	}
	if m := mountsBelow(t, d.home, "gone"); len(m) > 0 {
		t.Errorf("mounted after the rename: %v", m)
	}
	if _, err := os.Lstat(filepath.Join(d.home, linkDir, link)); err != nil {
		t.Fatalf("the cut came after the link's removal; the test proves nothing: %v", err)
	}
	rep, err := d.Check(t.Context(), driver.CheckOptions{})
	must(t, err)
	if rep.Consistent || len(rep.Problems) != 1 || rep.Problems[0].Kind != "interrupted_remove" || rep.Problems[0].ID != "gone" {
		t.Errorf("check of the cut state: %+v, want one interrupted_remove of gone", rep)
	}

	d2, err := New(d.home, driver.Options{})
	must(t, err)
	if left, _ := d2.removedLeftovers(); len(left) > 0 {
		t.Errorf("New left %v", left)
	}
	if _, err := os.Lstat(filepath.Join(d.home, linkDir, link)); !os.IsNotExist(err) {
		t.Errorf("l/%s is still there after New: %v", link, err)
	}
	rep, err = d2.Check(t.Context(), driver.CheckOptions{})
	must(t, err)
	if !rep.Consistent || len(rep.Problems) != 0 {
		t.Errorf("check after New: %+v", rep)
	}
	// The id can be used again, and base is untouched.
	must(t, d2.Create(t.Context(), "gone", "base", nil))
	p, err = d2.Get(t.Context(), "gone", "")
	must(t, err)
	defer d2.Put(t.Context(), "gone")
	if _, err := readIn(p, "f"); !os.IsNotExist(err) {
		t.Errorf("the new layer sees the removed layer's file: %v", err)
	}
}

func TestALeftoverWithABusyMountStaysUntilCheckRepairsIt(t *testing.T) {
	d := newTestDriver(t)
	must(t, d.Create(t.Context(), "base", "", nil))
	// What a removal interrupted after its rename leaves, with a bind
	// mount made into it since and held open.
	away := filepath.Join(d.home, removingPrefix+"old-ABCDEFGHIJKLMNOPQRSTUVWXYZ")
	must(t, os.MkdirAll(filepath.Join(away, diffDirName), 0o755))
	writeIn(t, filepath.Join(away, diffDirName), "f", "old")
	src := t.TempDir()
	writeIn(t, src, "keep", "outside")
	bind(t, src, filepath.Join(away, "bound"))
	f, err := os.Open(filepath.Join(away, "bound", "keep"))
	must(t, err)
	defer f.Close()

	d2, err := New(d.home, driver.Options{})
	if err != nil {
		t.Fatalf("New with a busy leftover = %v; it must open and leave the leftover to Check", err)
	}
	if got, err := readIn(src, "keep"); got != "outside" {
		t.Fatalf("New deleted through the busy mount: keep reads %q (%v)", got, err)
	}
	rep, err := d2.Check(t.Context(), driver.CheckOptions{Repair: true})
	must(t, err)
	if rep.Consistent || len(rep.Problems) != 1 || rep.Problems[0].Kind != "interrupted_remove" || rep.Problems[0].Fixed ||
		!strings.Contains(rep.Problems[0].Detail, filepath.Join(away, "bound")+" is busy") {
		t.Fatalf("check while busy: %+v, want one unfixed interrupted_remove naming the busy mount", rep)
	}
	t.Logf("reported: %+v", rep.Problems[0])

	f.Close()
	rep, err = d2.Check(t.Context(), driver.CheckOptions{Repair: true})
	must(t, err)
	if !rep.Consistent || len(rep.Problems) != 1 || !rep.Problems[0].Fixed {
		t.Fatalf("check with repair after letting go: %+v", rep)
	}
	if _, err := os.Lstat(away); !os.IsNotExist(err) {
		t.Errorf("%s is still there: %v", away, err)
	}
	if got, err := readIn(src, "keep"); got != "outside" {
		t.Errorf("the repair deleted through the mount: keep reads %q (%v)", got, err)
	}
	if !d2.Exists("base") {
		t.Error("base is gone")
	}
}
