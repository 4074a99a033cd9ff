//go:build vm

package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/thinctl/thinctl/internal/testenv"
	"github.com/thinctl/thinctl/packaging/systemd"
)

// unitLine is one command line of a shipped unit, expanded for a root the
// way systemd expands it for the instance systemd-escape --path names.
type unitLine struct {
	unit, key string
	argv      []string
}

// unitCommand reads key (ExecStart, ExecStop) of unit's [Service] from the
// embedded unit file and expands it for root. The unit must have exactly
// one such line, run /usr/bin/thinctl, and use no quoting (the test splits
// at spaces, as systemd does for unquoted words).
func unitCommand(t *testing.T, unit, key, root string) unitLine {
	t.Helper()
	lines, err := systemd.Directives(unit, "Service", key)
	if err != nil || len(lines) != 1 {
		t.Fatalf("%s %s=: %q, %v; want one line", unit, key, lines, err)
	}
	line, err := systemd.Expand(lines[0], systemd.EscapePath(root))
	if err != nil {
		t.Fatal(err)
	}
	if strings.ContainsAny(line, `"'\`) {
		t.Fatalf("%s %s=%s: quoting is not supported by this test", unit, key, line)
	}
	argv := strings.Fields(line)
	if argv[0] != "/usr/bin/thinctl" {
		t.Fatalf("%s %s= runs %s, not /usr/bin/thinctl (what the packages install)", unit, key, argv[0])
	}
	return unitLine{unit: unit, key: key, argv: argv}
}

// run runs the line with this test binary standing in for
// /usr/bin/thinctl, with systemd's empty environment (no THINCTL_ROOT):
// the root comes only from the line.
func (l unitLine) run(t *testing.T) result {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, l.argv[1:]...)
	cmd.Env = []string{"THINCTL_TEST_MAIN=1", "PATH=" + os.Getenv("PATH")}
	if os.Getenv("DM_DISABLE_UDEV") != "" {
		cmd.Env = append(cmd.Env, "DM_DISABLE_UDEV="+os.Getenv("DM_DISABLE_UDEV"))
	}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err = cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("%s: %v", strings.Join(l.argv, " "), err)
	}
	t.Logf("%s %s=%s: exit %d\n%s%s", l.unit, l.key, strings.Join(l.argv, " "), code, out.String(), errb.String())
	return result{code: code, stdout: out.String(), stderr: errb.String()}
}

// dmNames lists the device-mapper devices whose names contain substr,
// from dmsetup (the oracle).
func dmNames(t *testing.T, substr string) []string {
	t.Helper()
	out, err := exec.Command("dmsetup", "ls").CombinedOutput()
	if err != nil && !strings.Contains(string(out), "No devices found") {
		t.Fatalf("dmsetup ls: %v\n%s", err, out)
	}
	var names []string
	for _, l := range strings.Split(string(out), "\n") {
		if f := strings.Fields(l); len(f) > 0 && strings.Contains(f[0], substr) {
			names = append(names, f[0])
		}
	}
	return names
}

// TestUnitCommandLinesTakeThePoolDownBringItUpAndCollect runs the exact
// ExecStart=/ExecStop= lines of thinctl-pool@.service and thinctl-gc@.service
// (the guest has no systemd) for a root whose escaped instance name needs
// an escape: the shutdown line refuses while a device is mounted and takes
// the pool down (no dm device, no loop device left) once it is not; the
// boot line brings it back with the data a device held; running the boot
// line on a pool that is up changes nothing; the gc line leaves a busy
// deferred deletion alone and finishes it once the holder is gone.
func TestUnitCommandLinesTakeThePoolDownBringItUpAndCollect(t *testing.T) {
	o := newOperator(t)
	o.root = filepath.Join(o.root, "pool-a") // instance ...-pool\x2da
	up := unitCommand(t, systemd.PoolService, "ExecStart", o.root)
	down := unitCommand(t, systemd.PoolService, "ExecStop", o.root)
	gc := unitCommand(t, systemd.GCService, "ExecStart", o.root)
	if !strings.Contains(systemd.EscapePath(o.root), `pool\x2da`) || up.argv[2] != o.root {
		t.Fatalf("instance %s expands to --root %s, want %s", systemd.EscapePath(o.root), up.argv[2], o.root)
	}

	o.must("pool", "init", "--data-size", "512M", "--metadata-size", "16M", "--base-size", "64M")
	o.must("create", "web")
	mnt := strings.TrimSpace(o.must("mount", "web"))
	if err := os.WriteFile(filepath.Join(mnt, "kept"), []byte("before the reboot\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	st := o.status()
	pool := st.PoolName

	// Shutdown while a device is still mounted: refused, the pool stays.
	if r := down.run(t); r.code != 1 || !strings.Contains(r.stderr, "mounted") {
		t.Fatalf("ExecStop with web mounted: exit %d, want 1 and a refusal naming the mount\n%s", r.code, r.stderr)
	}
	if len(dmNames(t, pool)) == 0 {
		t.Fatalf("the refused ExecStop took pool %s down", pool)
	}
	o.must("unmount", "web")

	// Shutdown once the mounts are gone: nothing of the pool stays.
	if r := down.run(t); r.code != 0 {
		t.Fatalf("ExecStop: exit %d\n%s", r.code, r.stderr)
	}
	if left := dmNames(t, pool); len(left) != 0 {
		t.Fatalf("after ExecStop, device-mapper still has %v", left)
	}
	if out, _ := exec.Command("losetup", "-a").CombinedOutput(); strings.Contains(string(out), o.root) {
		t.Fatalf("after ExecStop, loop devices still use the root's files:\n%s", out)
	}

	// Boot: the pool comes back with the device's data; a second run is
	// harmless.
	for i := 0; i < 2; i++ {
		if r := up.run(t); r.code != 0 || !strings.Contains(r.stdout, "Up:") {
			t.Fatalf("ExecStart (run %d): exit %d\n%s%s", i+1, r.code, r.stdout, r.stderr)
		}
	}
	if len(dmNames(t, pool)) == 0 {
		t.Fatalf("after ExecStart, no device-mapper device of pool %s", pool)
	}
	mnt = strings.TrimSpace(o.must("mount", "web"))
	if b, err := os.ReadFile(filepath.Join(mnt, "kept")); err != nil || string(b) != "before the reboot\n" {
		t.Fatalf("web after down and up: %q, %v", b, err)
	}
	o.must("unmount", "web")

	// gc: a deferred deletion stays while held and goes once free.
	o.must("create", "held")
	hmnt := strings.TrimSpace(o.must("mount", "held"))
	sleep := exec.Command("sleep", "600")
	sleep.Dir = hmnt
	if err := sleep.Start(); err != nil {
		t.Fatal(err)
	}
	defer sleep.Process.Kill()
	if r := o.run("remove", "held"); r.code != 0 || !strings.Contains(r.stdout, "Deferred") {
		t.Fatalf("remove held: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if r := gc.run(t); r.code != 0 || strings.Contains(r.stdout, "Removed") {
		t.Fatalf("gc while held: exit %d, stdout %q: it must leave the held device alone", r.code, r.stdout)
	}
	if !strings.Contains(o.must("list"), "held") {
		t.Fatalf("gc while held removed held from the list")
	}
	heldID := o.info("held").DeviceID
	sleep.Process.Kill()
	sleep.Wait()
	// The kernel finishes the deferred removal of the dm device on the
	// last close, a moment after the holder exits.
	deadline := time.Now().Add(10 * time.Second)
	for thinOf(t, pool, heldID) != "" && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	testenv.SettleUdev(t)
	// The gc line's store open already finishes free deferred deletions,
	// so it may print "Nothing to collect": what counts is that held is gone.
	if r := gc.run(t); r.code != 0 {
		t.Fatalf("gc once free: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if strings.Contains(o.must("list"), "held") || thinOf(t, pool, heldID) != "" {
		t.Fatalf("held is still listed or active after the gc line")
	}
}
