package overlay2

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/thinctl/thinctl/driver"
)

// A create cut short before its rename (the state a crash or power cut
// leaves: everything written and fsynced in the staging directory, nothing
// published) must leave no layer — in particular not a parentless one whose
// diff would be shown without its parents' files — and Check with Repair
// must clear what it left.
func TestAnInterruptedCreateLeavesNoLayerAndCheckClearsIt(t *testing.T) {
	d := newTestDriver(t)
	must(t, d.Create(t.Context(), "base", "", nil))
	p, err := d.Get(t.Context(), "base", "")
	must(t, err)
	must(t, os.WriteFile(filepath.Join(p, "from-base"), []byte("base"), 0o644))
	must(t, d.Put(t.Context(), "base"))

	// Copy the home as it is at the rename: that is the disk after a cut.
	cut := filepath.Join(t.TempDir(), "home")
	hookBeforePublish = func(string) {
		if out, err := exec.Command("cp", "-a", d.home, cut).CombinedOutput(); err != nil {
			t.Fatalf("cp: %v\n%s", err, out)
		}
	}
	must(t, d.CreateReadWrite(t.Context(), "rw", "base", nil))
	hookBeforePublish = nil

	after, err := New(cut, driver.Options{})
	must(t, err)
	if after.Exists("rw") {
		t.Fatal("the interrupted layer exists after the cut")
	}
	layers, err := after.List()
	must(t, err)
	if len(layers) != 1 || layers[0].ID != "base" {
		t.Fatalf("layers after the cut: %+v, want base only", layers)
	}
	r, err := after.Check(t.Context(), driver.CheckOptions{})
	must(t, err)
	if r.Consistent || len(r.Problems) != 1 || r.Problems[0].Kind != "interrupted_create" || r.Problems[0].ID != "rw" {
		t.Fatalf("check after the cut: %+v, want one interrupted_create of rw", r)
	}
	r, err = after.Check(t.Context(), driver.CheckOptions{Repair: true})
	must(t, err)
	if !r.Consistent {
		t.Fatalf("check --repair left %+v", r)
	}
	ents, _ := os.ReadDir(cut)
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), stagingPrefix) {
			t.Fatalf("repair left %s", e.Name())
		}
	}
	links, _ := os.ReadDir(filepath.Join(cut, linkDir))
	if len(links) != 1 {
		t.Fatalf("l/ holds %d links after repair, want base's only", len(links))
	}
	// The id is free again and the new layer shows its parent's file.
	must(t, after.CreateReadWrite(t.Context(), "rw", "base", nil))
	q, err := after.Get(t.Context(), "rw", "")
	must(t, err)
	defer after.Put(t.Context(), "rw")
	if b, err := os.ReadFile(filepath.Join(q, "from-base")); err != nil || string(b) != "base" {
		t.Fatalf("the recreated layer sees from-base as %q (%v)", b, err)
	}
}

// A staging directory whose creator is still at work is not something a
// crash left: Check neither reports nor removes it.
func TestCheckLeavesACreateInProgressAlone(t *testing.T) {
	d := newTestDriver(t)
	st, err := d.newStaging("busy")
	must(t, err)
	defer func() { st.close(); os.RemoveAll(st.dir) }()
	r, err := d.Check(t.Context(), driver.CheckOptions{Repair: true})
	must(t, err)
	if !r.Consistent || len(r.Problems) != 0 {
		t.Fatalf("check with a create in progress: %+v", r)
	}
	if _, err := os.Stat(st.dir); err != nil {
		t.Fatalf("check removed a staging directory in use: %v", err)
	}
}
