//go:build vm

package thinpool

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/thinctl/thinctl/dm"
	"github.com/thinctl/thinctl/thinpool/internal/dmname"
)

// watchLink polls path for d and reports how often it was missing or did
// not resolve to block device dev, and when (CLOCK_MONOTONIC seconds, the
// clock udevadm monitor prints) it was first and last missing.
func watchLink(path string, dev uint64, d time.Duration) (misses int, first, last float64) {
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(time.Millisecond) {
		var st unix.Stat_t
		if err := unix.Stat(path, &st); err != nil || st.Rdev != dev {
			misses++
			var ts unix.Timespec
			_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
			last = float64(ts.Nano()) / 1e9
			if first == 0 {
				first = last
			}
		}
	}
	return misses, first, last
}

// compactMonitor turns udevadm monitor --property output into one line
// per event with the properties that tell events apart.
func compactMonitor(out string) string {
	var b strings.Builder
	for _, ev := range strings.Split(out, "\n\n") {
		lines := strings.Split(strings.TrimSpace(ev), "\n")
		if len(lines) == 0 || lines[0] == "" {
			continue
		}
		b.WriteString(lines[0])
		for _, l := range lines[1:] {
			for _, k := range []string{"SEQNUM=", "DM_NAME=", "DM_COOKIE=", "SYNTH_UUID=", "DM_UDEV_PRIMARY_SOURCE_FLAG=", "DM_SUSPENDED=", "DM_UDEV_DISABLE_DM_RULES_FLAG=", "DM_NOSCAN="} {
				if strings.HasPrefix(l, k) {
					b.WriteString(" " + l)
				}
			}
			if strings.HasPrefix(l, "DEVLINKS=") && strings.Contains(l, "/dev/mapper/") {
				b.WriteString(" +mapperlink")
			}
		}
		b.WriteString("\n")
	}
	return b.String()
}

// A device activated right after another device's discarding removal
// keeps its /dev/mapper link: the removal's discard must not leave udev
// an event that, handled after the device-mapper minor was reused, drops
// the new device's link (seen in containerd's conformance suite with
// udev running).
func TestActivateAfterADiscardingRemoveKeepsItsMapperLink(t *testing.T) {
	udevOnly(t)
	ctx := context.Background()
	p, _ := newVMPool(t, smallOptions())
	var mon *exec.Cmd
	logPath := t.TempDir() + "/udev.log"
	if lf, err := os.Create(logPath); err == nil {
		mon = exec.Command("udevadm", "monitor", "--udev", "--kernel", "--property", "--subsystem-match=block")
		mon.Stdout, mon.Stderr = lf, lf
		if mon.Start() == nil {
			t.Cleanup(func() { mon.Process.Kill(); mon.Wait(); lf.Close() })
		}
	}
	failures := 0
	for i := 0; i < 25; i++ {
		view, next := fmt.Sprintf("view%d", i), fmt.Sprintf("next%d", i)
		must(t, p.Create(ctx, view, "", CreateOptions{}))
		_, err := p.Activate(ctx, view)
		must(t, err)
		must(t, p.Remove(ctx, view))
		must(t, p.Create(ctx, next, "", CreateOptions{}))
		path, err := p.Activate(ctx, next)
		must(t, err)
		info, err := p.dm.Info(dmname.Thin(p.cfg.Key, mustDeviceID(t, p, next)))
		must(t, err)
		misses, first, last := watchLink(path, info.Dev, 300*time.Millisecond)
		exec.Command("udevadm", "settle").Run()
		var st unix.Stat_t
		gone := unix.Stat(path, &st) != nil
		if misses > 0 || gone {
			failures++
			t.Errorf("round %d: %s (%d:%d) missing in %d of the polls after Activate (from %.6f to %.6f); gone after settle: %v",
				i, path, unix.Major(info.Dev), unix.Minor(info.Dev), misses, first, last, gone)
		}
		must(t, p.Deactivate(ctx, next))
		must(t, p.Remove(ctx, next))
	}
	if failures > 0 {
		if out, err := os.ReadFile(logPath); err == nil {
			t.Logf("udevadm monitor:\n%s", compactMonitor(string(out)))
		}
	}
}

// Remove looks at no /dev/mapper link again, so it does not wait for udev:
// with udev's event processing stopped it still returns at once (a wait
// for udev to drop the link would run into the 30 s udev timeout) — an
// active device left active for the space return, an inactive one, and,
// in a pool without discards, an active one it takes down. Activate,
// whose caller gets the /dev/mapper path, returns only once that path is
// the device.
func TestRemoveDoesNotWaitForUdevButActivateDoes(t *testing.T) {
	udevOnly(t)
	ctx := context.Background()
	noDiscard := smallOptions()
	noDiscard.NoDiscard = true
	p, _ := newVMPool(t, smallOptions())
	q, _ := newVMPool(t, noDiscard)
	activate := func(p *Pool, id string) {
		must(t, p.Create(ctx, id, "", CreateOptions{}))
		path, err := p.Activate(ctx, id)
		must(t, err)
		info, err := p.dm.Info(dmname.Thin(p.cfg.Key, mustDeviceID(t, p, id)))
		must(t, err)
		var st unix.Stat_t
		if err := unix.Stat(path, &st); err != nil || st.Rdev != info.Dev {
			t.Fatalf("Activate(%s) returned %s, which is not the device %d:%d yet (%v)", id, path, unix.Major(info.Dev), unix.Minor(info.Dev), err)
		}
	}
	activate(p, "active")
	activate(p, "inactive")
	activate(q, "taken-down")
	exec.Command("udevadm", "settle").Run()
	must(t, p.Deactivate(ctx, "inactive"))
	takenDown := dmname.Thin(q.cfg.Key, mustDeviceID(t, q, "taken-down"))

	if out, err := exec.Command("udevadm", "control", "--stop-exec-queue").CombinedOutput(); err != nil {
		t.Fatalf("udevadm control --stop-exec-queue: %v %s", err, out)
	}
	stopped := true
	startQueue := func() {
		if stopped {
			stopped = false
			exec.Command("udevadm", "control", "--start-exec-queue").Run()
			exec.Command("udevadm", "settle").Run()
		}
	}
	defer startQueue()
	for _, tc := range []struct {
		p  *Pool
		id string
	}{{p, "active"}, {p, "inactive"}, {q, "taken-down"}} {
		start := time.Now()
		must(t, tc.p.Remove(ctx, tc.id))
		took := time.Since(start)
		t.Logf("with udev's queue stopped: Remove(%s) took %v", tc.id, took)
		if took > 3*time.Second {
			t.Errorf("Remove(%s) took %v with udev stopped: it waited for udev", tc.id, took)
		}
	}
	if _, err := q.dm.Info(takenDown); !isErr(err, dm.ErrNotFound) {
		t.Fatalf("Info(%s) after Remove without discards = %v, want ErrNotFound (taken down)", takenDown, err)
	}
	startQueue()
	must(t, p.ReturnSpace(ctx))
	if st, err := p.Status(); err != nil || st.ReturningDevices != 0 {
		t.Fatalf("Status after ReturnSpace: %d devices returning space (%v), want 0", st.ReturningDevices, err)
	}
}

// udevProperties returns udev's database properties of the block device
// at path (udevadm info).
func udevProperties(t *testing.T, path string) map[string]string {
	t.Helper()
	out, err := exec.Command("udevadm", "info", "--query=property", "--name="+path).CombinedOutput()
	if err != nil {
		t.Fatalf("udevadm info %s: %v %s", path, err, out)
	}
	props := map[string]string{}
	for _, l := range strings.Split(string(out), "\n") {
		if k, v, ok := strings.Cut(l, "="); ok {
			props[k] = v
		}
	}
	return props
}

// wantLinkTo fails unless path resolves to block device dev.
func wantLinkTo(t *testing.T, path string, dev uint64, when string) {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil || st.Rdev != dev {
		t.Fatalf("%s: %s does not resolve to device %d:%d (%v, rdev %d:%d)", when, path,
			unix.Major(dev), unix.Minor(dev), err, unix.Major(st.Rdev), unix.Minor(st.Rdev))
	}
}

// Thin devices are activated with udev's disk rules skipped: udev links
// /dev/mapper/<name> but runs no blkid probe (no ID_FS_* properties, no
// /dev/disk/by-id or by-uuid links: every snapshot of the base carries its
// filesystem UUID) and does not watch the device. The event still says it
// comes from its activator, so a later "add" event (udevadm trigger
// --action=add, as at boot) and a "change" event keep the link.
func TestActivatedThinDevicesSkipUdevsDiskRules(t *testing.T) {
	udevOnly(t)
	p, _ := newVMPool(t, smallOptions())
	path, name := createActive(t, p, "snap")
	info, err := p.dm.Info(name)
	must(t, err)
	exec.Command("udevadm", "settle").Run()
	wantLinkTo(t, path, info.Dev, "after Activate")
	if out, err := exec.Command("blkid", "-p", "-o", "value", "-s", "TYPE", path).CombinedOutput(); err != nil || strings.TrimSpace(string(out)) != "ext4" {
		t.Fatalf("blkid -p %s = %q (%v), want ext4 (the test needs a filesystem udev could have probed)", path, out, err)
	}
	props := udevProperties(t, path)
	for k, want := range map[string]string{"DM_NAME": name, "DM_UDEV_PRIMARY_SOURCE_FLAG": "1",
		"DM_UDEV_DISABLE_DISK_RULES_FLAG": "1", "DM_UDEV_DISABLE_OTHER_RULES_FLAG": "", "ID_FS_TYPE": "", "ID_FS_UUID": ""} {
		if props[k] != want {
			t.Errorf("udev property %s = %q, want %q", k, props[k], want)
		}
	}
	for _, l := range []string{"/dev/disk/by-id/dm-name-" + name, "/dev/disk/by-id/dm-uuid-" + dmname.ThinUUID(p.cfg.Key, mustDeviceID(t, p, "snap"))} {
		if _, err := os.Lstat(l); err == nil {
			t.Errorf("%s exists: udev ran the disk rules", l)
		}
	}
	sys := fmt.Sprintf("/sys/dev/block/%d:%d", unix.Major(info.Dev), unix.Minor(info.Dev))
	for _, action := range []string{"add", "change"} {
		if out, err := exec.Command("udevadm", "trigger", "--action="+action, sys).CombinedOutput(); err != nil {
			t.Fatalf("udevadm trigger --action=%s %s: %v %s", action, sys, err, out)
		}
		exec.Command("udevadm", "settle").Run()
		wantLinkTo(t, path, info.Dev, "after udevadm trigger --action="+action)
	}
}

// Deactivate looks at no /dev/mapper link again, so it does not wait for
// udev to drop it: with udev's event processing stopped it returns at
// once. Activated again right after, the device gets its link, and keeps
// it once udev has handled the old device's late "remove".
func TestDeactivateDoesNotWaitForUdevAndTheNextActivateKeepsItsLink(t *testing.T) {
	udevOnly(t)
	ctx := context.Background()
	p, _ := newVMPool(t, smallOptions())
	createActive(t, p, "dev")
	exec.Command("udevadm", "settle").Run()
	if out, err := exec.Command("udevadm", "control", "--stop-exec-queue").CombinedOutput(); err != nil {
		t.Fatalf("udevadm control --stop-exec-queue: %v %s", err, out)
	}
	stopped := true
	defer func() {
		if stopped {
			exec.Command("udevadm", "control", "--start-exec-queue").Run()
		}
	}()
	start := time.Now()
	must(t, p.Deactivate(ctx, "dev"))
	took := time.Since(start)
	t.Logf("with udev's queue stopped: Deactivate took %v", took)
	if took > 3*time.Second {
		t.Errorf("Deactivate took %v with udev stopped: it waited for udev", took)
	}
	if out, err := exec.Command("udevadm", "control", "--start-exec-queue").CombinedOutput(); err != nil {
		t.Fatalf("udevadm control --start-exec-queue: %v %s", err, out)
	}
	stopped = false
	path, err := p.Activate(ctx, "dev")
	must(t, err)
	info, err := p.dm.Info(dmname.Thin(p.cfg.Key, mustDeviceID(t, p, "dev")))
	must(t, err)
	wantLinkTo(t, path, info.Dev, "after Activate")
	exec.Command("udevadm", "settle").Run()
	wantLinkTo(t, path, info.Dev, "after udev settled")
}
