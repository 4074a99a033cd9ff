//go:build vm

package thinpool

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"syscall"
	"testing"

	"github.com/thinctl/thinctl/internal/failpoint"
	"github.com/thinctl/thinctl/internal/testenv"
	"github.com/thinctl/thinctl/thinpool/internal/store"
)

// TestALiveVersion1RootIsMigratedByOpen makes a version 1 root with the
// release's own library (thinctl-v1gen: built from the commit before the
// journal with -tags failpoints, passed with tests/vm/run.sh --extra-bin),
// on a loop pool and on an external pool: labels, a grow pending, a
// deferred deletion pending (a device held while removed), and a create
// killed after its message (transaction.json left). Open converts it; every
// record, label and pending change survives and is finished; registry,
// pool and live devices agree.
func TestALiveVersion1RootIsMigratedByOpen(t *testing.T) {
	testenv.RequireDeviceMapper(t)
	gen, err := exec.LookPath("thinctl-v1gen")
	if err != nil {
		t.Skip("thinctl-v1gen is not on PATH: build cmd/thinctl-v1gen of the release before the journal " +
			"(see the commit that added this test) with -tags failpoints and pass it with tests/vm/run.sh --extra-bin")
	}
	for _, external := range []bool{false, true} {
		name := "a loop pool"
		if external {
			name = "an external pool"
		}
		t.Run(name+" made by the release opens as version 2 with everything in it", func(t *testing.T) {
			root := t.TempDir()
			args := []string{root}
			var meta string
			if external {
				var dataDev, metaDev string
				_, meta, dataDev, metaDev = rawDevices(t)
				pool := fmt.Sprintf("v1-ext-pool-%d", os.Getpid())
				mustDmsetup(t, "create", pool, "--table", fmt.Sprintf("0 %d thin-pool %s %s 128 32768 1 skip_block_zeroing", GiB/512, metaDev, dataDev))
				t.Cleanup(func() {
					dmsetup(t, "remove", pool)
					thinCheck(t, meta)
				})
				args = append(args, pool)
			}
			t.Cleanup(func() { tearDown(t, root) })
			out, err := exec.Command(gen, args...).Output()
			if err != nil {
				t.Fatalf("thinctl-v1gen %v: %v", args, err)
			}
			var v1Devs []Device
			if err := json.Unmarshal(out, &v1Devs); err != nil {
				t.Fatalf("thinctl-v1gen output: %v\n%s", err, out)
			}
			// A create killed after its message: transaction.json stays.
			crash := exec.Command(gen, root, "create", "crashed")
			crash.Env = append(os.Environ(), failpoint.Env+"="+failpoint.TxAfterMessage+"=kill")
			if err := crash.Run(); err == nil || crash.ProcessState.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
				t.Fatalf("the v1 create was not killed at its failpoint: %v", err)
			}
			dir := filepath.Join(root, stateDirName)
			if !exists(filepath.Join(dir, "transaction.json")) {
				t.Fatal("the killed v1 create left no transaction.json")
			}
			var held store.Device
			b, err := os.ReadFile(filepath.Join(dir, "devices", "held.json"))
			if err == nil {
				err = json.Unmarshal(b, &held)
			}
			if err != nil || !held.Deleted {
				t.Fatalf("the held device is not pending deletion in v1: %+v, %v", held, err)
			}

			p, err := Open(context.Background(), root, OpenOptions{})
			if err != nil {
				t.Fatalf("Open of the version 1 root: %v", err)
			}
			defer p.Close()
			cfg, err := p.store.LoadConfig()
			if err != nil || cfg.Version != store.Version {
				t.Fatalf("pool.json after Open: version %d, %v", cfg.Version, err)
			}
			for _, f := range []string{"devices", "transaction.json"} {
				if exists(filepath.Join(dir, f)) {
					t.Errorf("%s survives the migration", f)
				}
			}
			devs, err := p.Devices()
			must(t, err)
			got := map[string]Device{}
			for _, d := range devs {
				got[d.ID] = d
			}
			for _, want := range v1Devs {
				if want.ID == "held" {
					continue
				}
				d, ok := got[want.ID]
				if !ok || d.DeviceID != want.DeviceID || d.Parent != want.Parent || d.Size != want.Size || !reflect.DeepEqual(d.Labels, want.Labels) {
					t.Errorf("%s after migration: %+v, want %+v", want.ID, d, want)
				}
			}
			if _, ok := got["held"]; ok {
				t.Error("the deferred deletion was not finished by Open (its holder is gone)")
			}
			if _, ok := got["crashed"]; ok {
				t.Error("the killed v1 create (no record written) was kept")
			}
			if len(got) != len(v1Devs)-1 {
				t.Errorf("after migration %d devices, want %d", len(got), len(v1Devs)-1)
			}
			if d, err := p.store.Get("image-2"); err != nil || !d.GrowPending {
				t.Errorf("image-2's pending grow was lost: %+v, %v", d, err)
			}
			r, err := p.Check(context.Background(), CheckOptions{})
			must(t, err)
			if !r.Consistent || len(r.Problems) != 0 {
				t.Fatalf("Check after migration: %+v %v", r.Problems, r.Notes)
			}
			// The converted root works: a snapshot of a migrated device
			// holds its data.
			dirMnt := mustMount(t, p, "image-1")
			writeFile(t, filepath.Join(dirMnt, "f"), "from v1\n")
			must(t, p.Unmount(context.Background(), "image-1"))
			must(t, p.Create(context.Background(), "after", "image-1", CreateOptions{}))
			if got := readFile(t, filepath.Join(mustMount(t, p, "after"), "f")); got != "from v1\n" {
				t.Fatalf("a snapshot of a migrated device holds %q", got)
			}
			must(t, p.Unmount(context.Background(), "after"))
		})
	}
}
