//go:build vm

package reliability

import (
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// holder starts a process that keeps a device busy until the test kills it.
type holder struct {
	name  string
	start func(t *testing.T, r *rig, id string) *exec.Cmd
	how   string // what the message must say about it
	// detachable: removing the mount point detaches the holder's copy of
	// the mount (Linux 3.18+), so the removal may finish at once.
	detachable bool
}

func sleeper() *exec.Cmd { return exec.Command("sleep", "600") }

func holders() []holder {
	return []holder{
		{name: "a mount in another mount namespace", how: "namespace", detachable: true, start: func(t *testing.T, r *rig, id string) *exec.Cmd {
			r.must("mount", id)
			cmd := sleeper()
			cmd.SysProcAttr = &syscall.SysProcAttr{Unshareflags: syscall.CLONE_NEWNS}
			return cmd
		}},
		{name: "a process with the device open", how: "open", start: func(t *testing.T, r *rig, id string) *exec.Cmd {
			path := strings.TrimSpace(r.must("activate", id))
			f, err := os.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { f.Close() })
			cmd := sleeper()
			cmd.ExtraFiles = []*os.File{f}
			return cmd
		}},
		{name: "a process with its cwd inside the mount", how: "cwd", start: func(t *testing.T, r *rig, id string) *exec.Cmd {
			cmd := sleeper()
			cmd.Dir = strings.TrimSpace(r.must("mount", id))
			return cmd
		}},
	}
}

// TestReliabilityBusyDevices removes devices that something holds: the
// removal is deferred (exit 0, the holder named) or refused, never half
// done, and finishes once the holder is gone.
func TestReliabilityBusyDevices(t *testing.T) {
	r := newPoolRig(t, "")
	cfg, err := readPoolJSON(r.root)
	if err != nil {
		t.Fatal(err)
	}
	for i, h := range holders() {
		t.Run("remove while held by "+h.name, func(t *testing.T) {
			r.t = t
			id := "busy" + strconv.Itoa(i)
			r.must("create", id)
			r.writeData(t, id, "held\n")
			cmd := h.start(t, r, id)
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			pid := strconv.Itoa(cmd.Process.Pid)
			released := false
			release := func() {
				if !released {
					cmd.Process.Kill()
					cmd.Wait()
					released = true
				}
			}
			defer release()
			if h.how == "open" {
				// The sleeper holds the device; drop the test's own copy.
				cmd.ExtraFiles[0].Close()
			}
			var recBefore registryRecord
			for _, rec := range readRegistry(t, r.root) {
				if rec.ID == id {
					recBefore = rec
				}
			}
			// deactivate is refused outright, naming the holder.
			if h.how == "open" {
				res := r.run("deactivate", id)
				if res.code != 1 || !strings.Contains(res.stderr, pid) {
					t.Errorf("deactivate of a held device: want exit 1 naming pid %s, got %s", pid, res)
				}
			}
			mp := r.root + "/mnt/" + id
			res := r.run("remove", id)
			t.Logf("remove: %s", res)
			if res.code == 0 && h.detachable && !strings.Contains(res.stdout+res.stderr, "eferred") {
				// Done at once: the holder's copy of the mount must be gone
				// and nothing of the device left.
				mi, _ := os.ReadFile("/proc/" + pid + "/mountinfo")
				if strings.Contains(string(mi), " "+mp+" ") {
					t.Errorf("remove finished although %s is still mounted in pid %s's namespace", mp, pid)
				}
				for _, rec := range readRegistry(t, r.root) {
					if rec.ID == id {
						t.Errorf("remove reported success but the record remains: %+v", rec)
					}
				}
				r.assertConsistent(t)
				r.assertPoolMatchesRegistry(t)
				return
			}
			if !strings.Contains(res.stderr, pid) {
				t.Errorf("the message does not name the holder (pid %s): %s", pid, res)
			}
			switch res.code {
			case 0: // deferred: marked deleted, gone from the kernel once released
				if !strings.Contains(res.stdout+res.stderr, "eferred") {
					t.Errorf("exit 0 without saying the removal is deferred: %s", res)
				}
				found := false
				for _, rec := range readRegistry(t, r.root) {
					if rec.ID == id {
						found = true
						if !rec.Deleted {
							t.Errorf("after a deferred removal the record is not marked deleted: %+v", rec)
						}
					}
				}
				if !found {
					t.Errorf("the record of %s is gone while its thin device is still held", id)
				}
				// A parent being deleted is no parent.
				if res := r.run("create", id+"-child", "--parent", id); res.code != 1 || !strings.Contains(res.stderr, id) {
					t.Errorf("create --parent of a device pending deletion: want exit 1 naming it, got %s", res)
				}
				rep, _ := r.check()
				for _, p := range rep.Problems {
					if p.Kind != "deleted_pending" {
						t.Errorf("while the removal waits, check reports %+v", p)
					}
				}
			case 1: // refused: everything as it was
				for _, rec := range readRegistry(t, r.root) {
					if rec.ID == id && rec != recBefore {
						t.Errorf("a refused removal changed the record: %+v -> %+v", recBefore, rec)
					}
				}
			default:
				t.Fatalf("remove of a held device: exit %d, want 0 (deferred) or 1 (refused)", res.code)
			}
			release()
			deadline := time.Now().Add(60 * time.Second)
			for {
				if res.code == 0 {
					r.must("gc")
				} else {
					r.run("remove", id)
				}
				gone := true
				for _, d := range r.list() {
					if d.ID == id {
						gone = false
					}
				}
				if gone {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("%s is still listed 60 s after its holder exited", id)
				}
				time.Sleep(500 * time.Millisecond)
			}
			if left := dmNames(rootPrefix(cfg.Key)); len(left) > 1 {
				t.Errorf("device-mapper devices left after the removal finished: %v", left)
			}
			r.assertConsistent(t)
			r.assertPoolMatchesRegistry(t)
		})
	}
}
