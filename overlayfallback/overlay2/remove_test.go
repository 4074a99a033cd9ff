package overlay2

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pkg/errors"

	"github.com/thinctl/thinctl/driver"
)

func TestARemoveCutShortAfterItsRenameLeavesNoLayerAndNewClearsTheRest(t *testing.T) {
	d := newTestDriver(t)
	must(t, d.Create(t.Context(), "base", "", nil))
	must(t, d.Create(t.Context(), "gone", "base", nil))
	p, err := d.Get(t.Context(), "gone", "")
	must(t, err)
	must(t, os.WriteFile(filepath.Join(p, "f"), []byte("doomed"), 0o644))
	must(t, d.Put(t.Context(), "gone"))
	link, err := d.readLink("gone")
	must(t, err)

	crash := errors.New("crash")
	hookAfterRemoveRename = func() error { return crash }
	err = d.Remove(t.Context(), "gone")
	hookAfterRemoveRename = nil
	if !errors.Is(err, crash) {
		t.Fatalf("Remove = %v, want it stopped after the rename", err)
	}
	// What the crash left: no layer, a .removing- directory, a dangling link.
	if d.Exists("gone") {
		t.Fatal("the layer still exists after the rename")
	}
	if _, err := os.Lstat(filepath.Join(d.home, linkDir, link)); err != nil {
		t.Fatalf("the cut came after the link's removal; the test proves nothing: %v", err)
	}

	d2, err := New(d.home, driver.Options{})
	must(t, err)
	ents, err := os.ReadDir(d.home)
	must(t, err)
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), removingPrefix) {
			t.Errorf("New left %s", e.Name())
		}
	}
	if _, err := os.Lstat(filepath.Join(d.home, linkDir, link)); !os.IsNotExist(err) {
		t.Errorf("l/%s is still there after New: %v", link, err)
	}
	rep, err := d2.Check(t.Context(), driver.CheckOptions{})
	must(t, err)
	if !rep.Consistent {
		t.Errorf("check after New: %+v", rep)
	}
	// The id can be used again, and base is untouched.
	must(t, d2.Create(t.Context(), "gone", "base", nil))
	p, err = d2.Get(t.Context(), "gone", "")
	must(t, err)
	defer d2.Put(t.Context(), "gone")
	if _, err := os.Stat(filepath.Join(p, "f")); !os.IsNotExist(err) {
		t.Errorf("the new layer sees the removed layer's file: %v", err)
	}
}
