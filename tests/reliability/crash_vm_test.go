//go:build vm

package reliability

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/thinctl/thinctl/internal/failpoint"
)

// full is set by THINCTL_RELIABILITY_FULL=1: the whole crash matrix and
// the concurrency test at the issue's size instead of the subset `make
// test` runs.
// The VM rig does not pass the host's environment into the guest, so a
// file testdata/full (not committed; the rig copies testdata/ beside the
// test binary) does the same there.
var full = os.Getenv("THINCTL_RELIABILITY_FULL") == "1" || fileExists("testdata/full")

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// udevMode is the second boot of `make test` (systemd-udevd running).
var udevMode = os.Getenv("THINCTL_VM_MODE") == "udev"

// selected says whether a step of a subset runs in this boot: all with
// THINCTL_RELIABILITY_FULL=1, else the subset (or, under udev, the
// smaller udev subset).
func selected(subset, udev bool) bool {
	switch {
	case full:
		return true
	case udevMode:
		return udev
	default:
		return subset
	}
}

// world is the set of devices that exist before each crash, with the data
// each holds.
type world struct {
	data  map[string]string
	order []string
}

// makeWorld creates k1 (from the base device) and k2 (a snapshot of k1),
// each holding its own data.
func makeWorld(t *testing.T, r *rig) *world {
	t.Helper()
	w := &world{data: map[string]string{}}
	add := func(id, parent string) {
		args := []string{"create", id}
		if parent != "" {
			args = append(args, "--parent", parent)
		}
		r.must(args...)
		content := fmt.Sprintf("%s written at %s\n", id, time.Now().Format(time.RFC3339Nano))
		r.writeData(t, id, content)
		w.data[id] = content
		w.order = append(w.order, id)
	}
	add("k1", "")
	add("k2", "k1")
	return w
}

// crashStep is one command killed at one failpoint.
type crashStep struct {
	name    string
	point   string
	nth     int
	subset  bool                       // part of the `make test` subset (first boot, no udev)
	udev    bool                       // part of the smaller subset of the udev boot
	cut     bool                       // part of the power-cut subset
	fresh   bool                       // pool init: runs in a new root
	prepare func(t *testing.T, r *rig) // state the command needs
	// afterCrash runs once the process is dead, before thinctl runs again
	// (e.g. to end a process that held a device, as a reboot would).
	afterCrash func()
	args       func(r *rig) []string // the command
	// recoverArgs is the command run after the crash ("pool up" when nil):
	// what the operator is told to run again.
	recoverArgs []string
	newID       string                // a device the command may create or remove
	newData     func(w *world) string // what newID holds if it survives
}

func (c crashStep) spec(action string) string {
	s := c.point + "=" + action
	if c.nth > 0 {
		s += fmt.Sprintf("@%d", c.nth)
	}
	return s
}

func fixed(args ...string) func(*rig) []string { return func(*rig) []string { return args } }

// victim makes device "v" with data and mounts it, for the remove steps.
func victim(t *testing.T, r *rig) {
	r.must("create", "v")
	r.writeData(t, "v", "victim\n")
	r.must("mount", "v")
}

// journalFrames gives the registry's journal something to compact (the
// oracles take the pool down, which compacts it).
func journalFrames(t *testing.T, r *rig) {
	r.must("create", "j")
	r.must("remove", "j")
}

// growArgs asks for 256 MiB more data space than the pool has.
func growArgs(r *rig) []string {
	var st struct {
		DataTotal uint64 `json:"data_total_bytes"`
	}
	r.decode(&st, "pool", "status")
	return []string{"pool", "grow", "--data-size", fmt.Sprintf("%d", st.DataTotal+256<<20)}
}

func crashSteps() []crashStep {
	// heldVictim is victim with a process whose cwd is inside its mount,
	// so remove defers the deletion (and reaches after-mark-deleted).
	var holder *exec.Cmd
	heldVictim := func(t *testing.T, r *rig) {
		victim(t, r)
		holder = exec.Command("sleep", "600")
		holder.Dir = filepath.Join(r.root, "mnt", "v")
		if err := holder.Start(); err != nil {
			t.Fatal(err)
		}
	}
	release := func() {
		if holder != nil {
			holder.Process.Kill()
			holder.Wait()
			holder = nil
		}
	}
	mounted := func(id string) func(*testing.T, *rig) { return func(t *testing.T, r *rig) { r.must("mount", id) } }
	base := func(*world) string { return "" }
	ofK1 := func(w *world) string { return w.data["k1"] }
	ofV := func(*world) string { return "victim\n" }
	var steps []crashStep
	for _, p := range []string{failpoint.InitAfterFiles, failpoint.InitAfterPool, failpoint.InitAfterBase, failpoint.InitAfterMkfs} {
		steps = append(steps, crashStep{name: "pool init", point: p, fresh: true,
			args: fixed(append([]string{"--driver", "devicemapper"}, smallPool...)...)})
	}
	for _, p := range []string{failpoint.TxAfterSave, failpoint.TxAfterMessage, failpoint.TxAfterCommit} {
		steps = append(steps, crashStep{name: "create", point: p, subset: p == failpoint.TxAfterMessage,
			udev: p == failpoint.TxAfterMessage,
			args: fixed("create", "n"), newID: "n", newData: base})
	}
	// A create appends two frames to the registry's journal: the begin
	// (flushed) and the end (not flushed).
	for nth := 1; nth <= 2; nth++ {
		steps = append(steps, crashStep{name: fmt.Sprintf("create (journal frame %d)", nth), point: failpoint.JournalAfterWrite,
			nth: nth, subset: nth == 1, cut: true, args: fixed("create", "n"), newID: "n", newData: base})
	}
	steps = append(steps,
		crashStep{name: "snapshot of an unmounted device", point: failpoint.TxAfterMessage,
			args: fixed("create", "n", "--parent", "k1"), newID: "n", newData: ofK1},
		crashStep{name: "snapshot of a mounted device", point: failpoint.SnapAfterSuspend, subset: true, udev: true, cut: true, prepare: mounted("k1"),
			args: fixed("create", "n", "--parent", "k1"), newID: "n", newData: ofK1},
		crashStep{name: "snapshot of a mounted device", point: failpoint.TxAfterMessage, prepare: mounted("k1"),
			args: fixed("create", "n", "--parent", "k1"), newID: "n", newData: ofK1},
		crashStep{name: "snapshot of a mounted device", point: failpoint.SnapBeforeResume, subset: true, prepare: mounted("k1"),
			args: fixed("create", "n", "--parent", "k1"), newID: "n", newData: ofK1},
		crashStep{name: "check", point: failpoint.CheckAfterReserve, subset: true, args: fixed("check")},
		crashStep{name: "activate", point: failpoint.ActivateAfterLoad, args: fixed("activate", "k2")},
		crashStep{name: "mount", point: failpoint.ActivateAfterLoad, args: fixed("mount", "k2")},
		crashStep{name: "mount", point: failpoint.MountAfterMount, args: fixed("mount", "k2")},
		// The record says 96 MiB, the mounted device's table 64 MiB: the
		// next activation (the oracles') fits the table.
		crashStep{name: "resize of a mounted device", point: failpoint.ResizeAfterRecord, subset: true, prepare: mounted("k2"),
			args: fixed("resize", "k2", "--size", "96M")},
	)
	steps = append(steps, crashStep{name: "remove of a held device", point: failpoint.RemoveAfterMark, subset: true,
		prepare: heldVictim, afterCrash: release, args: fixed("remove", "v"), newID: "v", newData: ofV})
	for _, p := range []string{failpoint.RemoveAfterUnmnt, failpoint.RemoveAfterDeact,
		failpoint.TxAfterSave, failpoint.TxAfterMessage, failpoint.TxAfterCommit, failpoint.JournalAfterWrite} {
		steps = append(steps, crashStep{name: "remove", point: p,
			prepare: victim, args: fixed("remove", "v"), newID: "v", newData: ofV})
	}
	// A victim deactivated before the remove (one left active is
	// discarded instead) with blocks of its own: they are punched in the
	// data file before the delete.
	inactiveVictim := func(t *testing.T, r *rig) {
		r.must("create", "v")
		r.writeData(t, "v", "victim\n")
		r.must("deactivate", "v")
	}
	steps = append(steps, crashStep{name: "remove of an inactive device (space return)", point: failpoint.ReturnAfterPunch, subset: true,
		prepare: inactiveVictim, args: fixed("remove", "v"), newID: "v", newData: ofV})
	steps = append(steps,
		crashStep{name: "pool grow", point: failpoint.GrowAfterFiles, args: growArgs},
		crashStep{name: "pool grow", point: failpoint.GrowAfterReload, subset: true, args: growArgs},
		crashStep{name: "pool grow (pool.json write)", point: failpoint.RegistryBeforeRen, args: growArgs},
		crashStep{name: "pool grow (pool.json write)", point: failpoint.RegistryAfterRen, args: growArgs},
		crashStep{name: "pool down (registry compaction)", point: failpoint.CompactBeforeRen, prepare: journalFrames, args: fixed("pool", "down")},
		crashStep{name: "pool down (registry compaction)", point: failpoint.CompactAfterRen, subset: true, cut: true,
			prepare: journalFrames, args: fixed("pool", "down")},
		crashStep{name: "pool up after pool down", point: failpoint.OpenAfterPoolUp,
			prepare: func(t *testing.T, r *rig) { r.must("pool", "down") }, args: fixed("pool", "up")},
	)
	steps = append(steps, crashStep{name: "pool repair of a healthy pool", point: failpoint.RepairAfterDown,
		args: fixed("pool", "repair"), recoverArgs: []string{"pool", "repair"}})
	for _, p := range []string{failpoint.RepairAfterRepair, failpoint.RepairAfterSwap} {
		steps = append(steps, crashStep{name: "pool repair of damaged metadata", point: p, subset: p == failpoint.RepairAfterSwap,
			prepare: damagedMetadata, args: fixed("pool", "repair"), recoverArgs: []string{"pool", "repair"}})
	}
	for _, p := range []string{failpoint.MigrateAfterJrnl, failpoint.MigrateAfterSnap, failpoint.MigrateAfterPool} {
		steps = append(steps, crashStep{name: "pool up of a version 1 root (migration)", point: p,
			subset: p == failpoint.MigrateAfterSnap, cut: p == failpoint.MigrateAfterPool,
			prepare: downgradeToV1, args: fixed("pool", "up")})
	}
	return steps
}

// requireFailpoints fails the test at once when the thinctl under test
// cannot arm failpoints (built without the failpoints tag, like the
// release binary): pool up with the open point armed to kill must die.
// Each step still fails on its own when its point is not reached.
func requireFailpoints(t *testing.T, r *rig) {
	t.Helper()
	res := r.runEnv([]string{failpoint.Env + "=" + failpoint.OpenAfterPoolUp + "=kill"}, "pool", "up")
	if res.signal != syscall.SIGKILL {
		t.Fatalf("thinctl (%s, from %s) has no failpoints: %s did not fire; build it with -tags failpoints "+
			"(tests/vm/run.sh and make test-native do) and do not put a release build first on PATH\n%s",
			r.tc.exe, r.tc.why, failpoint.OpenAfterPoolUp, res)
	}
}

// crashRow is one line of the summary table.
type crashRow struct {
	step     crashStep
	reached  bool
	survived bool
	outcome  string
	took     time.Duration
}

// TestReliabilityCrashAtEveryStep kills thinctl with SIGKILL at each
// failpoint, runs it again and checks that nothing was lost or leaked.
func TestReliabilityCrashAtEveryStep(t *testing.T) {
	requireVM(t)
	findThinctl(t)
	r := newPoolRig(t, "")
	w := makeWorld(t, r)
	covered := map[string]bool{}
	for _, c := range crashSteps() {
		covered[c.point] = true
	}
	for _, p := range failpoint.Points {
		// overlay2's points are cut by TestReliabilityPowerCutOverlay2.
		if !covered[p.Name] && !strings.HasPrefix(p.Name, "overlay2/") {
			t.Errorf("failpoint %s has no crash step", p.Name)
		}
	}
	requireFailpoints(t, r)
	keep := func(c crashStep) bool { return selected(c.subset, c.udev) }
	runCrashMatrix(t, "crash (SIGKILL)", "kill", r, w, keep, func(t *testing.T, target *rig, c crashStep) (bool, string) {
		res := target.runEnv([]string{failpoint.Env + "=" + c.spec("kill")}, c.args(target)...)
		if c.afterCrash != nil {
			c.afterCrash()
		}
		return res.signal == syscall.SIGKILL, res.String()
	})
}

// interruptFunc interrupts thinctl at step c's failpoint on target and
// reports whether the point was reached (and, if not, what happened).
type interruptFunc func(t *testing.T, target *rig, c crashStep) (reached bool, detail string)

// runCrashMatrix runs each step keep selects as a subtest: prepare it,
// interrupt thinctl at its failpoint, recover and verify; then it prints
// the matrix of points x survived. Steps marked fresh get a new root.
func runCrashMatrix(t *testing.T, kind, action string, r *rig, w *world, keep func(crashStep) bool, interrupt interruptFunc) {
	var rows []crashRow
	for _, c := range crashSteps() {
		if !keep(c) {
			continue
		}
		c := c
		t.Run(c.name+" at "+c.spec(action), func(t *testing.T) {
			start := time.Now()
			row := crashRow{step: c}
			defer func() {
				row.survived, row.took = !t.Failed(), time.Since(start)
				dirty = dirty || t.Failed()
				rows = append(rows, row)
			}()
			target := r
			if c.fresh {
				target = newRig(t, t.TempDir())
				t.Cleanup(func() { target.t = t; target.destroy() })
			}
			target.t = t
			forget(target, c)
			if c.prepare != nil {
				c.prepare(t, target)
			}
			var detail string
			if row.reached, detail = interrupt(t, target, c); !row.reached {
				t.Fatalf("the failpoint was not reached: %s", detail)
			}
			row.outcome = recoverAndVerify(t, target, w, c)
		})
	}
	printMatrix(t, kind, rows)
}

// dirty is set when a step failed and may have left things behind.
var dirty bool

// forget removes what an earlier, failed step may have left (its new
// device, mounts of the world's devices), so one failure does not cascade.
func forget(r *rig, c crashStep) {
	if c.fresh || !dirty {
		return
	}
	dirty = false
	if c.newID != "" {
		r.run("remove", c.newID)
	}
	for _, id := range []string{"k1", "k2"} {
		r.run("unmount", id)
	}
}

// recoverAndVerify runs thinctl again after a crash and asserts the
// issue's conditions; it returns what became of the step's device.
func recoverAndVerify(t *testing.T, r *rig, w *world, c crashStep) string {
	t.Helper()
	r.t = t
	if c.fresh {
		// Nothing was stored yet: a second pool init must succeed.
		r.must(c.args(r)...)
		r.assertConsistent(t)
		r.must("create", "fresh")
		r.writeData(t, "fresh", "fresh\n")
		if got := r.readData(t, "fresh", false); got != "fresh\n" {
			t.Errorf("fresh device holds %q", got)
		}
		r.assertPoolMatchesRegistry(t)
		return "init completed on the second run"
	}
	cfg, err := readPoolJSON(r.root)
	if err != nil {
		t.Fatal(err)
	}
	left := suspendedDevices(cfg.Key)
	again := []string{"pool", "up"}
	if c.recoverArgs != nil {
		again = c.recoverArgs
	}
	if res := r.run(again...); res.code != 0 {
		t.Fatalf("thinctl after the crash: %s", res)
	}
	if s := suspendedDevices(cfg.Key); len(s) > 0 {
		t.Errorf("devices still suspended after thinctl ran again (I/O to them hangs): %v", s)
		resumeAll(cfg.Key)
	} else if len(left) > 0 {
		t.Logf("the crash left %v suspended; thinctl resumed them", left)
	}
	r.assertConsistent(t)
	devs := map[string]device{}
	for _, d := range r.list() {
		devs[d.ID] = d
	}
	for _, id := range w.order {
		d, ok := devs[id]
		if !ok || d.Deleted {
			t.Errorf("device %s existed before the crash and is gone (%+v)", id, d)
			continue
		}
		if got := r.readData(t, id, true); got != w.data[id] {
			t.Errorf("device %s holds %q, want %q", id, got, w.data[id])
		}
	}
	outcome := "-"
	if c.newID != "" {
		d, ok := devs[c.newID]
		switch {
		case !ok:
			outcome = c.newID + " absent (rolled back)"
			if strings.HasPrefix(c.name, "remove") {
				outcome = c.newID + " removed (rolled forward)"
			}
		case d.Deleted:
			t.Errorf("device %s is still marked deleted after recovery", c.newID)
			outcome = c.newID + " stuck deleted"
		default:
			outcome = c.newID + " present (rolled forward)"
			if strings.HasPrefix(c.name, "remove") {
				outcome = c.newID + " kept (rolled back)"
			}
			if got := r.readData(t, c.newID, false); got != c.newData(w) {
				t.Errorf("device %s holds %q, want %q", c.newID, got, c.newData(w))
			}
			r.must("remove", c.newID)
		}
	}
	for _, id := range w.order {
		r.must("unmount", id)
	}
	r.assertPoolMatchesRegistry(t)
	return outcome
}

// printMatrix prints the points × survived table (copied into
// docs/RELIABILITY.md).
func printMatrix(t *testing.T, kind string, rows []crashRow) {
	var b bytes.Buffer
	survived := 0
	fmt.Fprintf(&b, "\n%s matrix (full=%v):\n", kind, full)
	fmt.Fprintf(&b, "| command | failpoint | reached | survived | outcome | time |\n|---|---|---|---|---|---|\n")
	for _, r := range rows {
		if r.survived {
			survived++
		}
		fmt.Fprintf(&b, "| %s | `%s%s` | %s | %s | %s | %.1fs |\n", r.step.name, r.step.point, suffix(r.step),
			yes(r.reached), yes(r.survived), r.outcome, r.took.Seconds())
	}
	fmt.Fprintf(&b, "%s: %d points, %d survived\n", kind, len(rows), survived)
	t.Log(b.String())
	fmt.Print(strings.ReplaceAll(b.String(), "\n|", "\nMATRIX |"))
}

func suffix(c crashStep) string {
	if c.nth > 0 {
		return fmt.Sprintf("@%d", c.nth)
	}
	return ""
}

func yes(b bool) string {
	if b {
		return "yes"
	}
	return "**no**"
}
