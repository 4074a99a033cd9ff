package main

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/pkg/errors"
	"github.com/thinctl/thinctl/tests/bench/benchwire"
)

// The containerd comparison: the core module cannot import containerd, so
// it is a test of the containerd module (TestBenchVsContainerdDevmapper in
// containerd/cmd/thinctl-snapshotter) that run.sh's peer stage
// containerd_devmapper runs in a guest boot of its own (without udev, like
// measurement 1); the test prints its BENCH lines and its record
// (benchwire.Ctrd in a benchwire.CtrdTag block), and the report reads both
// from the stage's log.

// ReadCtrdBench returns the last containerd comparison record in console
// text; nil when there is none.
func ReadCtrdBench(text string) (*benchwire.Ctrd, error) {
	if !benchwire.Has(text, benchwire.CtrdTag) {
		return nil, nil
	}
	data, err := benchwire.Read(text, benchwire.CtrdTag)
	if err != nil {
		return nil, errors.Wrap(err, "containerd comparison block")
	}
	var c benchwire.Ctrd
	if err := json.Unmarshal(data, &c); err != nil {
		return nil, errors.Wrap(err, "decode the containerd comparison")
	}
	return &c, nil
}

// ctrdSteps are the snapshotter's --debug figures the report shows, with
// what each is.
var ctrdSteps = []struct{ key, what string }{
	{"Prepare", "Prepare, all of it"},
	{"Prepare.create", "of which `Pool.Create` (registry intent, `create_snap`, device record)"},
	{"Prepare.activate", "of which activation (create, table, resume; with udev, the wait for the `/dev/mapper` link)"},
	{"Mounts", "Mounts (the device is already active)"},
	{"Remove", "Remove, all of it"},
	{"Remove.remove", "of which `Pool.Remove` (deactivate, discard, `delete` transaction)"},
	{"Cleanup", "Cleanup (after containerd's collection)"},
}

func renderContainerd(w writer, r *Results, fig map[string]float64) {
	c := r.Containerd
	w("\n## 8. Against containerd's devmapper snapshotter\n\n")
	if c == nil {
		w("Not measured in this run (the peer stage `containerd_devmapper` of tests/bench/run.sh runs it; see docs/containerd.md).\n")
		return
	}
	w("One containerd (Debian's 1.6.20, CRI off) in a guest boot of its own (udev running: %v) serves three\n", c.Udev)
	w("snapshotters: thinctl-snapshotter as a proxy plugin over a thinctl pool, its built-in devmapper snapshotter over a\n")
	w("pool made with dmsetup as its documentation does, and its overlayfs snapshotter, which shows what containerd itself\n")
	w("costs for the same calls. Both thin pools: %d MiB of data and %d MiB of metadata on loop files, %d KiB blocks,\n", c.PoolMiB, c.MetaMiB, c.BlockKiB)
	w("`skip_block_zeroing`, %d MiB ext4 snapshots, discards on (devmapper: `discard_blocks = true`, util-linux's\n", c.DeviceMiB)
	w("`blkdiscard` before each removal, `async_remove = false`; thinctl: the pool's default). Every call goes through\n")
	w("containerd's gRPC API, as the CRI plugin's would:\n\n")
	w("- **Prepare+Mounts**: `Prepare` of an active snapshot of a committed (inactive) parent, then `Mounts`, timed\n")
	w("  together; %d per round, %d rounds (the order rotating), after one unmeasured warm-up each. Median.\n", c.PerRound, c.Rounds)
	w("- **Remove**: the round's lease deleted with `sync`: containerd's garbage collection removes the %d snapshots\n", c.PerRound)
	w("  from the snapshotter and calls its Cleanup. Time / %d, median of the rounds.\n", c.PerRound)
	w("- **import**: `ctr images import --snapshotter NAME` of an OCI archive of %d layers of %d KiB.\n\n", c.Layers, c.LayerKiB)
	w("| | thinctl | devmapper | overlayfs (containerd's share) | devmapper / thinctl | goal |\n| --- | --- | --- | --- | --- | --- |\n")
	row := func(what, figName string, m map[string][]float64) {
		t := targetFor(figName)
		w("| %s | %s | %s | %s | %s | %s |\n", what, fmtMs(Median(m["thinctl"])), fmtMs(Median(m["devmapper"])),
			fmtMs(Median(m["overlayfs"])), t.Value(fig[figName]), t.Goal())
	}
	row("Prepare+Mounts", "prepare_vs_ctrd_devmapper", c.PrepareMs)
	row("Remove", "remove_vs_ctrd_devmapper", c.RemoveMs)
	t := targetFor("import_vs_ctrd_devmapper")
	w("| import of %d layers | %s | %s | | %s | %s |\n", c.Layers, fmtMs(c.ImportMs["thinctl"]), fmtMs(c.ImportMs["devmapper"]),
		t.Value(fig["import_vs_ctrd_devmapper"]), t.Goal())
	if len(c.ServerMs) > 0 {
		w("\nthinctl-snapshotter's own time (its `--debug` log; the rest of the client's time is containerd and gRPC):\n\n")
		w("| | median | requests |\n| --- | --- | --- |\n")
		for _, s := range ctrdSteps {
			if xs := c.ServerMs[s.key]; len(xs) > 0 {
				w("| %s | %s | %d |\n", s.what, fmtMs(Median(xs)), len(xs))
			}
		}
	}
	if len(c.IOErrors) > 0 {
		w("\nThe kernel logged buffer I/O errors during the run, by phase (each device named as it was when the line was\n")
		w("logged; docs/containerd.md explains them):\n\n| phase | lines | devices |\n| --- | --- | --- |\n")
		for _, e := range c.IOErrors {
			devs := e.Devices
			more := ""
			if len(devs) > 4 {
				devs, more = devs[:4], fmt.Sprintf(" and %d more", len(e.Devices)-4)
			}
			w("| %s | %d | %s%s |\n", e.Phase, e.Count, strings.Join(devs, ", "), more)
		}
	}
}
