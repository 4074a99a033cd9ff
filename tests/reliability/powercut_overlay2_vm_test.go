//go:build vm

package reliability

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/thinctl/thinctl/internal/failpoint"
)

// TestReliabilityPowerCutOverlay2 cuts the power (see stateDisk.cut) of
// the filesystem holding an overlay2 home while `thinctl create` is frozen
// around the rename that publishes the new layer, and checks the copy: the
// layer is whole or absent — never a layer without its parents — `check`
// says what an interrupted create left and `check --repair` clears it, and
// the layer can then be made again and shows its parent's files.
func TestReliabilityPowerCutOverlay2(t *testing.T) {
	requirePowerCut(t)
	for _, point := range []string{failpoint.Overlay2BeforePublish, failpoint.Overlay2AfterPublish} {
		t.Run(strings.TrimPrefix(point, "overlay2/create/"), func(t *testing.T) {
			r, cut := newOverlay2CutRig(t)
			cut(point, nil, ov("create", "child", "--parent", "base")...)

			var layers []device
			r.decode(&layers, ov("list")...)
			var ids []string
			for _, l := range layers {
				ids = append(ids, l.ID+"<"+l.Parent)
			}
			got := strings.Join(ids, " ")
			switch got {
			case "base<":
				// Not published (or the rename did not reach the disk).
				rep, res := r.check()
				if res.code != 1 || len(rep.Problems) != 1 || rep.Problems[0].Kind != "interrupted_create" || rep.Problems[0].ID != "child" {
					t.Fatalf("check after the cut: %+v\n%s", rep, res)
				}
				r.must(ov("check", "--repair")...)
				r.must(ov("create", "child", "--parent", "base")...)
				t.Logf("%s: the layer was absent after the cut; check --repair cleared what the create left", point)
			case "base< child<base":
				if rep, res := r.check(); res.code != 0 || !rep.Consistent {
					t.Fatalf("check after the cut with the layer published: %+v\n%s", rep, res)
				}
				t.Logf("%s: the layer was whole after the cut", point)
			default:
				t.Fatalf("layers after the cut at %s: %q; want base alone or base and child on base", point, got)
			}
			r.childSeesBase(t)
		})
	}
}

// TestReliabilityPowerCutOverlay2Remove cuts the power while `thinctl
// remove` of a mounted overlay2 layer is frozen right after the rename that
// takes the layer away: at the point nothing is mounted in the layer any
// more (Remove unmounted it before the rename) and its files are in the
// renamed directory; after the cut the layer is gone (the rename reached
// the disk before the point), the next start deletes what the remove left
// so that `check` finds nothing, and the id can be used again.
func TestReliabilityPowerCutOverlay2Remove(t *testing.T) {
	requirePowerCut(t)
	r, cut := newOverlay2CutRig(t)
	r.must(ov("create", "child", "--parent", "base")...)
	mp := strings.TrimSpace(r.must(ov("mount", "child")...))
	if err := os.WriteFile(filepath.Join(mp, "from-child"), []byte("doomed"), 0o644); err != nil {
		t.Fatal(err)
	}
	home := filepath.Join(r.root, "overlay2")
	cut(failpoint.Overlay2RemoveAfterRename, func() {
		b, err := os.ReadFile("/proc/self/mountinfo")
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(string(b), "\n") {
			if f := strings.Fields(line); len(f) > 4 && (strings.HasPrefix(f[4], filepath.Join(home, "child")) ||
				strings.HasPrefix(f[4], filepath.Join(home, ".removing-child-"))) {
				t.Errorf("mounted at the point, after the rename: %s", f[4])
			}
		}
		away, _ := filepath.Glob(filepath.Join(home, ".removing-child-*", "diff", "from-child"))
		if len(away) != 1 {
			t.Errorf("the removed layer's file in a .removing-child- directory at the point: %v", away)
		}
	}, ov("remove", "child")...)

	var layers []device
	r.decode(&layers, ov("list")...)
	if len(layers) != 1 || layers[0].ID != "base" {
		t.Fatalf("layers after the cut: %+v; want base alone", layers)
	}
	if rep, res := r.check(); res.code != 0 || !rep.Consistent {
		t.Fatalf("check after the cut: %+v\n%s", rep, res)
	}
	ents, err := os.ReadDir(filepath.Join(r.root, "overlay2"))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".") {
			t.Errorf("the home still holds %s after a start", e.Name())
		}
	}
	r.must(ov("create", "child", "--parent", "base")...)
	r.childSeesBase(t)
}

// ov prefixes a thinctl command line with the overlay2 driver.
func ov(args ...string) []string { return append([]string{"--driver", "overlay2"}, args...) }

// newOverlay2CutRig makes an overlay2 root on a disk whose power can be cut,
// with a layer base holding the file from-base, and returns the rig and a
// function that runs thinctl with args frozen at a failpoint, calls frozen
// (when not nil) while it is, cuts the power and waits for the process to
// die.
func newOverlay2CutRig(t *testing.T) (*rig, func(point string, frozen func(), args ...string)) {
	disk := newStateDisk(t)
	root := filepath.Join(disk.mnt, "root")
	if err := os.Mkdir(root, 0o700); err != nil {
		t.Fatal(err)
	}
	r := newRig(t, root)
	r.must(ov("pool", "init")...)
	r.must(ov("create", "base")...)
	mp := strings.TrimSpace(r.must(ov("mount", "base")...))
	if err := os.WriteFile(filepath.Join(mp, "from-base"), []byte("the parent's bytes"), 0o644); err != nil {
		t.Fatal(err)
	}
	r.must(ov("unmount", "base")...)
	mustRun(t, "sync")
	return r, func(point string, frozen func(), args ...string) {
		cmd, exited, err := freezeAt(t, r, crashStep{point: point, args: fixed(args...)})
		if err != nil {
			t.Fatalf("thinctl did not stop at %s (a build without -tags failpoints?): %v", point, err)
		}
		if frozen != nil {
			frozen()
		}
		disk.cut(cmd.Process.Pid, "", nil)
		<-exited
	}
}

// childSeesBase mounts the overlay2 layer child and checks that it shows
// its parent's file.
func (r *rig) childSeesBase(t *testing.T) {
	t.Helper()
	mp := strings.TrimSpace(r.must(ov("mount", "child")...))
	b, err := os.ReadFile(filepath.Join(mp, "from-base"))
	r.must(ov("unmount", "child")...)
	if err != nil || string(b) != "the parent's bytes" {
		t.Fatalf("child sees from-base as %q (%v)", b, err)
	}
}
