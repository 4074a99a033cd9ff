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
			disk := newStateDisk(t)
			root := filepath.Join(disk.mnt, "root")
			if err := os.Mkdir(root, 0o700); err != nil {
				t.Fatal(err)
			}
			r := newRig(t, root)
			ov := func(args ...string) []string { return append([]string{"--driver", "overlay2"}, args...) }
			r.must(ov("pool", "init")...)
			r.must(ov("create", "base")...)
			mp := strings.TrimSpace(r.must(ov("mount", "base")...))
			if err := os.WriteFile(filepath.Join(mp, "from-base"), []byte("the parent's bytes"), 0o644); err != nil {
				t.Fatal(err)
			}
			r.must(ov("unmount", "base")...)
			mustRun(t, "sync")

			cmd := r.command([]string{failpoint.Env + "=" + point + "=stop"}, ov("create", "child", "--parent", "base")...)
			var out strings.Builder
			cmd.Stdout, cmd.Stderr = &out, &out
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			exited := make(chan struct{})
			go func() { cmd.Wait(); close(exited) }()
			if !waitStopped(cmd, exited) {
				t.Fatalf("thinctl create finished without stopping at %s (a build without -tags failpoints?):\n%s", point, out.String())
			}
			disk.cut(cmd.Process.Pid, "", nil)
			<-exited

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
			mp = strings.TrimSpace(r.must(ov("mount", "child")...))
			b, err := os.ReadFile(filepath.Join(mp, "from-base"))
			r.must(ov("unmount", "child")...)
			if err != nil || string(b) != "the parent's bytes" {
				t.Fatalf("child sees from-base as %q (%v)", b, err)
			}
		})
	}
}
