//go:build vm

package reliability

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/thinctl/thinctl/internal/failpoint"
)

// The power cut across two boots. The VM rig (tests/vm/run.sh --max-boots N)
// attaches a state disk that keeps its contents from one boot to the next
// and boots the guest again while the guest asks for it. Each boot runs
// TestReliabilityPowerCutReboot once: it verifies the step the boot before
// cut, then prepares the next step, freezes thinctl at its failpoint and asks
// the guest's init to cut the power (sysrq b: no sync, no unmount) once the
// test binary has printed its results. N steps take N+1 boots.

// stateMount is where the state disk is mounted in every boot: the thinctl
// root keeps its path across the reboot.
const stateMount = "/mnt/thinctl-powercut"

// rebootSubset is what `make test` cuts: a create between the kernel's
// commit and the registry write, a snapshot with its mounted origin
// suspended, and a remove between the registry change and the end of the
// transaction. testdata/full cuts every step but pool init.
var rebootSubset = []struct{ name, point string }{
	{"create", failpoint.TxAfterMessage},
	{"snapshot of a mounted device", failpoint.SnapAfterSuspend},
	{"remove", failpoint.TxAfterCommit},
}

// rebootSteps returns the steps this run cuts, in order.
func rebootSteps(t *testing.T) []crashStep {
	t.Helper()
	var out []crashStep
	all := crashSteps()
	if full {
		for _, c := range all {
			if !c.fresh {
				out = append(out, c)
			}
		}
		return out
	}
	for _, s := range rebootSubset {
		n := 0
		for _, c := range all {
			if c.name == s.name && c.point == s.point && c.nth == 0 {
				out = append(out, c)
				n++
			}
		}
		if n != 1 {
			t.Fatalf("the power-cut subset names %q at %s, which matches %d crash steps, not 1", s.name, s.point, n)
		}
	}
	return out
}

func stepKey(c crashStep) string { return c.name + " at " + c.spec("stop") }

// rebootPhase is what the state disk remembers between boots (fsynced
// before each cut, so it is never what the cut loses).
type rebootPhase struct {
	Steps     []string          `json:"steps"` // stepKey of every step of the run
	World     map[string]string `json:"world"`
	Order     []string          `json:"order"`
	Next      int               `json:"next"`     // the step cut, or the one to cut next
	CutBoot   int               `json:"cut_boot"` // the boot that cut step Next; 0: not cut yet
	StepStart time.Time         `json:"step_start"`
	Rows      []rebootRow       `json:"rows"`
}

// rebootRow is the result of one step.
type rebootRow struct {
	Step     int     `json:"step"`
	Reached  bool    `json:"reached"`
	Survived bool    `json:"survived"`
	Outcome  string  `json:"outcome"`
	Seconds  float64 `json:"seconds"`
}

const (
	phaseFile  = "powercut-phase.json"
	canaryFile = "unsynced-canary"
)

// TestReliabilityPowerCutReboot cuts the power of the whole guest with
// thinctl frozen at a failpoint and checks, in the next boot on the same
// disk, the same conditions as the crash test.
func TestReliabilityPowerCutReboot(t *testing.T) {
	disk := os.Getenv("THINCTL_VM_STATE_DISK")
	if disk == "" {
		t.Skip("no state disk: this test runs under tests/vm/run.sh --max-boots N (make test-powercut), which keeps a disk across reboots")
	}
	requireVM(t)
	findThinctl(t)
	for _, tool := range []string{"mkfs.ext4", "e2fsck", "mount", "umount"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("no %s", tool)
		}
	}
	boot, _ := strconv.Atoi(os.Getenv("THINCTL_VM_BOOT"))
	maxBoots, _ := strconv.Atoi(os.Getenv("THINCTL_VM_MAX_BOOTS"))
	steps := rebootSteps(t)
	keys := make([]string, len(steps))
	for i, c := range steps {
		keys[i] = stepKey(c)
	}
	root := filepath.Join(stateMount, "root")
	var ph rebootPhase
	var r *rig
	var w *world
	if boot <= 1 {
		if need := len(steps) + 1; maxBoots < need {
			t.Fatalf("%d steps need %d boots; the rig allows %d (tests/vm/run.sh --max-boots)", len(steps), need, maxBoots)
		}
		mustRun(t, "mkfs.ext4", "-q", "-F", "-E", "nodiscard,lazy_itable_init=1,lazy_journal_init=1", disk)
		mountState(t, disk)
		if err := os.Mkdir(root, 0o700); err != nil {
			t.Fatal(err)
		}
		r = newRig(t, root)
		r.must(append([]string{"--driver", "devicemapper"}, smallPool...)...)
		requireFailpoints(t, r)
		w = makeWorld(t, r)
		ph = rebootPhase{Steps: keys, World: w.data, Order: w.order}
	} else {
		fsck := fsckState(t, disk)
		mountState(t, disk)
		ph = readPhase(t)
		if strings.Join(ph.Steps, "\n") != strings.Join(keys, "\n") {
			t.Fatalf("the state disk was cut by a run with other steps:\n%s\nthis run:\n%s", strings.Join(ph.Steps, "\n"), strings.Join(keys, "\n"))
		}
		if ph.CutBoot == 0 || ph.CutBoot != boot-1 || ph.Next >= len(steps) {
			t.Fatalf("boot %d: the state disk records no power cut of boot %d to verify (cut in boot %d, step %d of %d)", boot, boot-1, ph.CutBoot, ph.Next, len(steps))
		}
		r = newRig(t, root)
		w = &world{data: ph.World, order: ph.Order}
		ph.Rows = append(ph.Rows, verifyCut(t, r, w, &ph, steps[ph.Next], fsck))
		ph.Next, ph.CutBoot = ph.Next+1, 0
	}
	if cutNext(t, r, &ph, steps, boot) {
		return
	}
	// The last boot: every step is verified.
	t.Cleanup(func() {
		r.t = t
		r.destroy()
		exec.Command("umount", stateMount).Run()
	})
	rows := make([]crashRow, 0, len(ph.Rows))
	for _, row := range ph.Rows {
		rows = append(rows, crashRow{step: steps[row.Step], reached: row.Reached, survived: row.Survived,
			outcome: row.Outcome, took: time.Duration(row.Seconds * float64(time.Second))})
	}
	if len(rows) != len(steps) {
		t.Errorf("%d of %d steps have a result", len(rows), len(steps))
	}
	printMatrix(t, "power cut across reboots", rows)
}

// mountState mounts the state disk at stateMount.
func mountState(t *testing.T, disk string) {
	t.Helper()
	if err := os.MkdirAll(stateMount, 0o755); err != nil {
		t.Fatal(err)
	}
	mustRun(t, "mount", "-t", "ext4", disk, stateMount)
}

// fsckState checks the state disk after the cut the way a boot does
// (e2fsck -p: replay the journal, fix what is safe to fix, exit 4 on
// anything else; -f: check even a clean filesystem) and says what it did.
func fsckState(t *testing.T, disk string) string {
	t.Helper()
	out, err := exec.Command("e2fsck", "-f", "-p", disk).CombinedOutput()
	if ee, ok := err.(*exec.ExitError); err != nil && (!ok || ee.ExitCode() > 1) {
		t.Fatalf("e2fsck -f -p of the state disk after the power cut: %v\n%s", err, out)
	}
	notes := []string{"no journal to replay"}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		_, msg, _ := strings.Cut(line, ": ")
		switch {
		case msg == "recovering journal":
			notes[0] = "journal replayed"
		case msg == "" || strings.Contains(msg, " files (") || strings.HasPrefix(line, "e2fsck "):
			// the version banner and the closing summary
		default:
			notes = append(notes, "fsck: "+msg)
		}
	}
	t.Logf("e2fsck after the cut: %s\n%s", strings.Join(notes, ", "), out)
	return strings.Join(notes, ", ")
}

// verifyCut checks the step the previous boot cut (recoverAndVerify) as a
// subtest and returns its row.
func verifyCut(t *testing.T, r *rig, w *world, ph *rebootPhase, c crashStep, fsck string) rebootRow {
	t.Helper()
	row := rebootRow{Step: ph.Next, Reached: true}
	canary := "lost"
	if b, err := os.ReadFile(filepath.Join(stateMount, canaryFile)); err == nil && string(b) == canaryText(ph.CutBoot) {
		canary = "on disk" // writeback or a journal commit got it out before the cut
	}
	os.Remove(filepath.Join(stateMount, canaryFile))
	row.Survived = t.Run(stepKey(c), func(t *testing.T) {
		if c.afterCrash != nil {
			c.afterCrash()
		}
		row.Outcome = recoverAndVerify(t, r, w, c)
	})
	r.t = t
	dirty = dirty || !row.Survived
	if row.Outcome == "" {
		row.Outcome = "(verification stopped)"
	}
	row.Outcome += " [" + fsck + ", unsynced canary " + canary + "]"
	row.Seconds = time.Since(ph.StepStart).Seconds()
	return row
}

func canaryText(boot int) string {
	return fmt.Sprintf("written unsynced in boot %d after the freeze\n", boot)
}

// cutNext prepares the next step, freezes thinctl at its failpoint and asks
// init for the power cut; it returns false when no step is left. A step
// whose failpoint is not reached fails and the next one is tried.
func cutNext(t *testing.T, r *rig, ph *rebootPhase, steps []crashStep, boot int) bool {
	t.Helper()
	request := os.Getenv("THINCTL_VM_POWERCUT")
	for ; ph.Next < len(steps); ph.Next++ {
		c := steps[ph.Next]
		r.t = t
		forget(r, c)
		ph.StepStart = time.Now()
		if c.prepare != nil {
			c.prepare(t, r)
		}
		if request == "" {
			t.Fatal("THINCTL_VM_POWERCUT is not set: the guest's init cannot cut the power")
		}
		// What the next boot needs reaches the disk before the command
		// starts: no fsync of the state filesystem happens after the freeze.
		ph.CutBoot = boot
		savePhase(t, ph)
		before, _ := exec.Command("dmsetup", "info", "-c").CombinedOutput()
		cmd, _, err := freezeAt(t, r, c)
		if err != nil {
			after, _ := exec.Command("dmsetup", "info", "-c").CombinedOutput()
			t.Errorf("%s: the failpoint was not reached: %v\ndevice-mapper devices before the command:\n%s\nafter it:\n%s", stepKey(c), err, before, after)
			if c.afterCrash != nil {
				c.afterCrash() // e.g. end the process that holds a device
				r.run("gc")    // and finish a deletion that waited for it
			}
			ph.Rows = append(ph.Rows, rebootRow{Step: ph.Next, Outcome: "not reached",
				Seconds: time.Since(ph.StepStart).Seconds()})
			ph.CutBoot = 0
			dirty = true
			continue
		}
		// A write that nothing syncs: the next boot reports whether the
		// cut lost it (it should, unless writeback was quicker).
		if err := os.WriteFile(filepath.Join(stateMount, canaryFile), []byte(canaryText(boot)), 0o644); err != nil {
			t.Fatal(err)
		}
		what := fmt.Sprintf("step %d of %d, %s, thinctl pid %d frozen", ph.Next+1, len(steps), stepKey(c), cmd.Process.Pid)
		if err := os.WriteFile(request, []byte(fmt.Sprintf("pid=%d\nwhat=%s\n", cmd.Process.Pid, what)), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("boot %d: %s; init cuts the power after this test binary", boot, what)
		return true
	}
	savePhase(t, ph)
	return false
}

// savePhase writes the phase file durably (temporary file, fsync, rename,
// fsync of the directory).
func savePhase(t *testing.T, ph *rebootPhase) {
	t.Helper()
	b, err := json.MarshalIndent(ph, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	tmp := filepath.Join(stateMount, "."+phaseFile)
	if err := writeSynced(tmp, string(b)); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(stateMount, phaseFile)); err != nil {
		t.Fatal(err)
	}
	d, err := os.Open(stateMount)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		t.Fatal(err)
	}
}

func readPhase(t *testing.T) rebootPhase {
	t.Helper()
	var ph rebootPhase
	b, err := os.ReadFile(filepath.Join(stateMount, phaseFile))
	if err != nil {
		t.Fatalf("the state disk has no phase file (was boot 1 cut before it wrote one?): %v", err)
	}
	if err := json.Unmarshal(b, &ph); err != nil {
		t.Fatalf("phase file: %v\n%s", err, b)
	}
	return ph
}
