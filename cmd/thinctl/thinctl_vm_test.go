//go:build vm

package main

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/thinctl/thinctl/internal/testenv"
)

// operator runs thinctl commands as separate processes (this test binary
// re-executed with THINCTL_TEST_MAIN=1), the way a person at a shell does.
type operator struct {
	t    *testing.T
	root string
	exe  string
}

func newOperator(t *testing.T) *operator {
	t.Helper()
	testenv.RequireDeviceMapper(t)
	testenv.RequireTool(t, "dmsetup")
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	o := &operator{t: t, root: t.TempDir(), exe: exe}
	t.Cleanup(func() {
		// Leave the kernel clean for the next test whatever happened.
		for _, id := range []string{"web", "snap", "dev3", "child", "held"} {
			o.run("unmount", id)
		}
		o.run("pool", "destroy", "--force")
	})
	return o
}

// run runs one thinctl command under the operator's root.
func (o *operator) run(args ...string) result {
	o.t.Helper()
	cmd := exec.Command(o.exe, args...)
	cmd.Env = append(os.Environ(), "THINCTL_TEST_MAIN=1", "THINCTL_ROOT="+o.root)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		o.t.Fatalf("thinctl %s: %v", strings.Join(args, " "), err)
	}
	return result{code: code, stdout: out.String(), stderr: errb.String()}
}

// must runs a command that has to succeed and returns its stdout.
func (o *operator) must(args ...string) string {
	o.t.Helper()
	r := o.run(args...)
	if r.code != 0 {
		o.t.Fatalf("thinctl %s: exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	}
	return r.stdout
}

// fails runs a command that has to fail with code and says want on stderr.
func (o *operator) fails(code int, want string, args ...string) result {
	o.t.Helper()
	r := o.run(args...)
	if r.code != code || !strings.Contains(r.stderr, want) {
		o.t.Fatalf("thinctl %s: exit %d, want %d with %q on stderr\nstdout:\n%s\nstderr:\n%s",
			strings.Join(args, " "), r.code, code, want, r.stdout, r.stderr)
	}
	return r
}

// decode runs a -o json command and decodes its document into v.
func (o *operator) decode(v interface{}, args ...string) {
	o.t.Helper()
	out := o.must(append([]string{"-o", "json"}, args...)...)
	if err := json.Unmarshal([]byte(out), v); err != nil {
		o.t.Fatalf("thinctl -o json %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

func (o *operator) status() poolStatus {
	var st poolStatus
	o.decode(&st, "pool", "status")
	return st
}

func (o *operator) info(id string) deviceInfo {
	var d deviceInfo
	o.decode(&d, "info", id)
	return d
}

// dmTable returns `dmsetup table` as name -> table line, the kernel's
// view independent of thinctl.
func dmTable(t *testing.T) map[string]string {
	t.Helper()
	out, err := exec.Command("dmsetup", "table").CombinedOutput()
	if err != nil {
		t.Fatalf("dmsetup table: %v\n%s", err, out)
	}
	m := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if i := strings.Index(line, ": "); i > 0 {
			m[line[:i]] = line[i+2:]
		}
	}
	return m
}

// thinOf finds the active thin device of pool pool with thin id devID in
// the kernel's tables; "" when there is none.
func thinOf(t *testing.T, pool string, devID uint32) string {
	t.Helper()
	tables := dmTable(t)
	poolDev := ""
	if _, ok := tables[pool]; ok {
		out, err := exec.Command("dmsetup", "info", "-c", "--noheadings", "-o", "major,minor", pool).CombinedOutput()
		if err == nil {
			poolDev = strings.TrimSpace(string(out))
		}
	}
	for name, tbl := range tables {
		f := strings.Fields(tbl)
		// <start> <length> thin <pool major:minor> <dev id>
		if len(f) >= 5 && f[2] == "thin" && f[4] == strconv.FormatUint(uint64(devID), 10) && (poolDev == "" || f[3] == poolDev) {
			return name
		}
	}
	return ""
}

// poolLength returns the pool's table length in bytes (0 when it is not there).
func poolLength(t *testing.T, pool string) uint64 {
	t.Helper()
	tbl, ok := dmTable(t)[pool]
	if !ok {
		return 0
	}
	f := strings.Fields(tbl)
	if len(f) < 3 || f[2] != "thin-pool" {
		t.Fatalf("%s's table is not a thin-pool: %q", pool, tbl)
	}
	n, _ := strconv.ParseUint(f[1], 10, 64)
	return n * 512
}

// TestAnOperatorSessionAgainstDeviceMapper runs the whole command set as
// separate processes and checks every effect against dmsetup.
func TestAnOperatorSessionAgainstDeviceMapper(t *testing.T) {
	o := newOperator(t)

	out := o.must("pool", "init", "--data-size", "1G", "--metadata-size", "16M", "--base-size", "256M")
	if !strings.HasPrefix(out, "Initialized pool ") {
		t.Fatalf("pool init printed %q", out)
	}
	st := o.status()
	if st.Driver != "devicemapper" || st.DriverReason == "" {
		t.Fatalf("pool status: driver %q (%q), want devicemapper", st.Driver, st.DriverReason)
	}
	if st.DataTotalBytes != 1<<30 || st.MetadataTotalBytes != 16<<20 || st.State != "rw" {
		t.Fatalf("pool status: %+v, want 1G data, 16M metadata, rw", st)
	}
	if got := poolLength(t, st.PoolName); got != 1<<30 {
		t.Fatalf("dmsetup: pool %s is %d bytes long, want 1 GiB", st.PoolName, got)
	}
	text := o.must("pool", "status")
	for _, want := range []string{"Driver:", "devicemapper", "Data%:", "Meta%:", "[", "Transaction ID:"} {
		if !strings.Contains(text, want) {
			t.Errorf("pool status text lacks %q:\n%s", want, text)
		}
	}

	// create, mount, write
	o.must("create", "web")
	web := o.info("web")
	if web.Parent != "" || web.SizeBytes != 256<<20 || web.DeviceID == 0 || web.Active || web.Mounted {
		t.Fatalf("info web after create: %+v", web)
	}
	mnt := strings.TrimSpace(o.must("mount", "web"))
	if mnt != filepath.Join(o.root, "mnt", "web") {
		t.Fatalf("mount printed %q", mnt)
	}
	if err := os.WriteFile(filepath.Join(mnt, "hello"), []byte("from web\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	web = o.info("web")
	if !web.Active || !web.Mounted || web.MountPath != mnt {
		t.Fatalf("info web after mount: %+v", web)
	}
	if thinOf(t, st.PoolName, web.DeviceID) == "" {
		t.Fatalf("dmsetup shows no thin device with id %d after mount:\n%v", web.DeviceID, dmTable(t))
	}

	// snapshot of a mounted origin; isolation both ways
	o.must("create", "snap", "--parent", "web")
	smnt := strings.TrimSpace(o.must("mount", "snap"))
	if b, err := os.ReadFile(filepath.Join(smnt, "hello")); err != nil || string(b) != "from web\n" {
		t.Fatalf("the snapshot does not see its parent's file: %q, %v", b, err)
	}
	if err := os.WriteFile(filepath.Join(smnt, "only-in-snap"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(mnt, "hello"), []byte("changed in web\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(mnt, "only-in-snap")); !os.IsNotExist(err) {
		t.Fatalf("a file written in the snapshot shows in its parent (%v)", err)
	}
	if b, _ := os.ReadFile(filepath.Join(smnt, "hello")); string(b) != "from web\n" {
		t.Fatalf("a change in the parent shows in the snapshot: %q", b)
	}

	var list []deviceInfo
	o.decode(&list, "list")
	if len(list) != 2 || list[0].ID != "snap" || list[1].ID != "web" || list[0].Parent != "web" {
		t.Fatalf("list: %+v, want snap (parent web) and web", list)
	}
	if !strings.Contains(o.must("list"), "MOUNT_PATH") {
		t.Errorf("list text has no header")
	}

	// activate / deactivate without mounting
	o.must("create", "dev3", "--size", "512M")
	path := strings.TrimSpace(o.must("activate", "dev3"))
	if !strings.HasPrefix(path, "/dev/mapper/") {
		t.Fatalf("activate printed %q", path)
	}
	dev3 := o.info("dev3")
	if dev3.SizeBytes != 512<<20 || !dev3.Active || dev3.Mounted {
		t.Fatalf("info dev3 after activate: %+v", dev3)
	}
	if name := thinOf(t, st.PoolName, dev3.DeviceID); name != filepath.Base(path) {
		t.Fatalf("dmsetup: thin id %d is %q, activate printed %s", dev3.DeviceID, name, path)
	}
	o.must("deactivate", "dev3")
	if name := thinOf(t, st.PoolName, dev3.DeviceID); name != "" {
		t.Fatalf("dmsetup still shows %s after deactivate", name)
	}

	// grow online while web is mounted
	out = o.must("pool", "grow", "--data-size", "2G", "--metadata-size", "32M")
	if !strings.Contains(out, "1.0G -> 2.0G") {
		t.Errorf("pool grow printed %q", out)
	}
	if got := poolLength(t, st.PoolName); got != 2<<30 {
		t.Fatalf("dmsetup: pool is %d bytes after grow, want 2 GiB", got)
	}
	if st2 := o.status(); st2.DataTotalBytes != 2<<30 || st2.MetadataTotalBytes != 32<<20 {
		t.Fatalf("pool status after grow: %+v", st2)
	}
	if b, _ := os.ReadFile(filepath.Join(mnt, "hello")); string(b) != "changed in web\n" {
		t.Fatalf("web's file after grow: %q", b)
	}

	// failures keep their exit codes
	o.fails(1, "hint: choose another ID", "create", "web")
	o.fails(1, "list' shows the devices", "create", "orphan", "--parent", "nosuch")
	o.fails(1, "hint: remove its snapshots first", "remove", "web")
	o.fails(1, "hint:", "pool", "down")

	// remove the snapshot: its thin device goes away
	snap := o.info("snap")
	o.must("unmount", "snap")
	if !strings.HasPrefix(o.must("remove", "snap"), "Removed snap") {
		t.Fatal("remove did not say so")
	}
	if name := thinOf(t, st.PoolName, snap.DeviceID); name != "" {
		t.Fatalf("dmsetup still shows %s after remove", name)
	}
	o.fails(1, "list' shows the devices", "info", "snap")

	// --debug logs the kernel operations on stderr, the output stays clean
	r := o.run("--debug", "-o", "json", "info", "web")
	if r.code != 0 || !strings.Contains(r.stderr, "debug: ") || !strings.Contains(r.stderr, " dm: ") {
		t.Fatalf("--debug info: exit %d\nstderr:\n%s", r.code, r.stderr)
	}
	var dbg deviceInfo
	if err := json.Unmarshal([]byte(r.stdout), &dbg); err != nil || dbg.ID != "web" {
		t.Fatalf("--debug -o json info web printed %q (%v)", r.stdout, err)
	}

	var rep checkReport
	o.decode(&rep, "check")
	if !rep.Consistent || len(rep.Problems) != 0 {
		t.Fatalf("check after the session: %+v", rep)
	}
	if out := o.must("gc"); !strings.Contains(out, "Nothing to collect") {
		t.Errorf("gc printed %q", out)
	}

	// down and up: the pool leaves the kernel and comes back with the data
	o.must("unmount", "web")
	o.must("pool", "down")
	if _, ok := dmTable(t)[st.PoolName]; ok {
		t.Fatalf("dmsetup still shows pool %s after pool down", st.PoolName)
	}
	o.must("pool", "up")
	if got := poolLength(t, st.PoolName); got != 2<<30 {
		t.Fatalf("dmsetup: pool is %d bytes after pool up, want 2 GiB", got)
	}
	mnt = strings.TrimSpace(o.must("mount", "web"))
	if b, _ := os.ReadFile(filepath.Join(mnt, "hello")); string(b) != "changed in web\n" {
		t.Fatalf("web's file after down/up: %q", b)
	}
	o.must("unmount", "web")

	// destroy refuses without --force, then takes everything away
	o.fails(1, "pool destroy --force", "pool", "destroy")
	o.must("pool", "destroy", "--force")
	if _, ok := dmTable(t)[st.PoolName]; ok {
		t.Fatalf("dmsetup still shows pool %s after destroy", st.PoolName)
	}
	if _, err := os.Stat(filepath.Join(o.root, "devicemapper")); !os.IsNotExist(err) {
		t.Fatalf("destroy left %s/devicemapper (%v)", o.root, err)
	}
	o.fails(1, "pool init", "list")
}

// TestARemoveOfAHeldDeviceIsDeferredAndGCFinishesIt holds a device's
// filesystem with a process's working directory, removes it (deferred,
// exit 0, a note on stderr), then lets go and collects it.
func TestARemoveOfAHeldDeviceIsDeferredAndGCFinishesIt(t *testing.T) {
	o := newOperator(t)
	o.must("pool", "init", "--data-size", "1G", "--metadata-size", "16M", "--base-size", "128M")
	pool := o.status().PoolName
	o.must("create", "held")
	mnt := strings.TrimSpace(o.must("mount", "held"))
	devID := o.info("held").DeviceID
	sleep := exec.Command("sleep", "600")
	sleep.Dir = mnt
	if err := sleep.Start(); err != nil {
		t.Fatal(err)
	}
	defer sleep.Process.Kill()

	r := o.run("remove", "held")
	if r.code != 0 || !strings.Contains(r.stdout, "Deferred removal of held") || !strings.Contains(r.stderr, "thinctl gc") {
		t.Fatalf("remove of a held device: exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	var list []deviceInfo
	o.decode(&list, "list")
	if len(list) != 1 || !list[0].Deleted {
		t.Fatalf("list after a deferred remove: %+v, want held marked deleted", list)
	}

	sleep.Process.Kill()
	sleep.Wait()
	deadline := time.Now().Add(10 * time.Second)
	for thinOf(t, pool, devID) != "" && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	out := o.must("gc")
	list = nil
	o.decode(&list, "list")
	if len(list) != 0 {
		t.Fatalf("list after gc: %+v (gc printed %q)", list, out)
	}
	if name := thinOf(t, pool, devID); name != "" {
		t.Fatalf("dmsetup still shows %s after gc", name)
	}
}

// TestALowSpacePoolRefusesNewDevicesWithAGrowHint sets the free space
// floor above what a fresh pool has.
func TestALowSpacePoolRefusesNewDevicesWithAGrowHint(t *testing.T) {
	o := newOperator(t)
	o.must("pool", "init", "--data-size", "256M", "--metadata-size", "8M", "--base-size", "128M", "--min-free-space", "99.9%")
	o.fails(1, "hint: grow the pool: thinctl pool grow --data-size SIZE", "create", "more")
}

// TestAZeroMinFreeSpaceMeansNoMinimum gives --min-free-space 0 (Docker's
// dm.min_free_space=0%): the pool keeps no floor and creates go on.
func TestAZeroMinFreeSpaceMeansNoMinimum(t *testing.T) {
	o := newOperator(t)
	o.must("pool", "init", "--data-size", "256M", "--metadata-size", "8M", "--base-size", "64M", "--min-free-space", "0")
	if st := o.must("pool", "status"); !strings.Contains(st, "Min free space:  none") {
		t.Fatalf("pool status after --min-free-space 0:\n%s", st)
	}
	o.must("create", "more")
	var list []deviceInfo
	o.decode(&list, "list")
	if len(list) != 1 || list[0].ID != "more" {
		t.Fatalf("list after create: %+v", list)
	}
}

// TestTheAutoDriverPicksDeviceMapperHere checks auto's choice and reason
// on a kernel with dm-thin-pool.
func TestTheAutoDriverPicksDeviceMapperHere(t *testing.T) {
	o := newOperator(t)
	out := o.must("pool", "init", "--data-size", "256M", "--metadata-size", "8M", "--base-size", "64M")
	if !strings.Contains(out, "Driver: devicemapper (the kernel has dm-thin-pool)") {
		t.Fatalf("pool init on a fresh root printed:\n%s", out)
	}
	st := o.status()
	if st.Driver != "devicemapper" || st.DriverReason != filepath.Join(o.root, "devicemapper")+" already holds a thin pool" {
		t.Fatalf("auto chose %q because %q", st.Driver, st.DriverReason)
	}
	o.fails(1, "already", "pool", "init")
}

// TestPoolInitFlagsReachTheKernel makes an xfs pool with a custom block
// size and mount option and a device larger than the base, and reads the
// effects back from the kernel: the pool table's block size, the mount's
// options and the filesystem's size.
func TestPoolInitFlagsReachTheKernel(t *testing.T) {
	o := newOperator(t)
	testenv.RequireTool(t, "mkfs.xfs")
	o.must("pool", "init", "--data-size", "1G", "--metadata-size", "16M", "--base-size", "320M",
		"--block-size", "128K", "--fs", "xfs", "--mount-opt", "noatime", "--min-free-space", "5%")
	st := o.status()
	f := strings.Fields(dmTable(t)[st.PoolName])
	// 0 <len> thin-pool <meta> <data> <block sectors> ...
	if len(f) < 6 || f[5] != "256" {
		t.Fatalf("pool table %q: want a block size of 256 sectors (128K)", dmTable(t)[st.PoolName])
	}
	text := o.must("pool", "status")
	for _, want := range []string{"Filesystem:      xfs", "Block size:      128.0K", "Min free space:  5%", "Base device:     320.0M"} {
		if !strings.Contains(text, want) {
			t.Errorf("pool status lacks %q:\n%s", want, text)
		}
	}
	o.must("create", "big", "--size", "640M")
	if d := o.info("big"); d.SizeBytes != 640<<20 {
		t.Fatalf("info big: size %d, want 640M", d.SizeBytes)
	}
	mnt := strings.TrimSpace(o.must("mount", "big"))
	mounts, err := os.ReadFile("/proc/self/mounts")
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, line := range strings.Split(string(mounts), "\n") {
		if f := strings.Fields(line); len(f) >= 4 && f[1] == mnt {
			found = true
			if f[2] != "xfs" || !strings.Contains(","+f[3]+",", ",noatime,") {
				t.Errorf("%s is mounted as %s with %s, want xfs with noatime", mnt, f[2], f[3])
			}
		}
	}
	if !found {
		t.Fatalf("%s is not in /proc/self/mounts", mnt)
	}
	total, _, err := statfs(mnt)
	if err != nil {
		t.Fatal(err)
	}
	if total < 500<<20 { // xfs keeps its log out of f_blocks; the 320M base has under 300M
		t.Fatalf("the filesystem of big is %d bytes, want it grown to about 640M", total)
	}
	o.must("unmount", "big")
}

// statfs returns the size and the space available to unprivileged users
// of the filesystem holding path.
func statfs(path string) (total, free uint64, err error) {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return 0, 0, err
	}
	return st.Blocks * uint64(st.Bsize), st.Bavail * uint64(st.Bsize), nil
}

// TestTheCLIAndTheLibrarySeeOneThinPool: a pool made by thinctl opens
// through driver.Select (no second pool inside it) and the reverse.
func TestTheCLIAndTheLibrarySeeOneThinPool(t *testing.T) {
	testenv.RequireDeviceMapper(t)
	checkCLIAndLibrarySeeOneStore(t, devicemapper, "--data-size", "1G", "--metadata-size", "64M", "--base-size", "256M")
}

// childNamed returns the pid of a child of parent whose command starts
// with prefix, 0 when there is none.
func childNamed(parent int, prefix string) int {
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...
		s := string(b)
		open, close := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
		if open < 0 || close < open {
			continue
		}
		f := strings.Fields(s[close+1:])
		if len(f) > 1 && f[1] == strconv.Itoa(parent) && strings.HasPrefix(s[open+1:close], prefix) {
			return pid
		}
	}
	return 0
}

// TestAnInterruptedPoolInitSaysWhatItLeftAndLeavesNothing sends SIGINT to
// thinctl while mkfs formats the base device: thinctl stops mkfs, exits 1
// saying it was interrupted, and the root holds no pool, no loop device and
// no device-mapper device.
func TestAnInterruptedPoolInitSaysWhatItLeftAndLeavesNothing(t *testing.T) {
	o := newOperator(t)
	cmd := exec.Command(o.exe, "pool", "init", "--data-size", "8G", "--metadata-size", "64M", "--base-size", "4G")
	cmd.Env = append(os.Environ(), "THINCTL_TEST_MAIN=1", "THINCTL_ROOT="+o.root)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(2 * time.Minute)
	for childNamed(cmd.Process.Pid, "mk") == 0 {
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatal("thinctl never started mkfs")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	err := cmd.Wait()
	ee, ok := err.(*exec.ExitError)
	if !ok || ee.ExitCode() != 1 {
		t.Fatalf("pool init after SIGINT: %v\nstdout:\n%s\nstderr:\n%s", err, out.String(), errb.String())
	}
	t.Logf("stderr:\n%s", errb.String())
	if !strings.HasPrefix(errb.String(), "thinctl: pool init: ") || !strings.Contains(errb.String(), "context canceled") ||
		!strings.Contains(errb.String(), "hint: thinctl was interrupted") {
		t.Fatalf("pool init after SIGINT said:\n%s", errb.String())
	}
	if out.Len() != 0 {
		t.Fatalf("an interrupted pool init printed a result:\n%s", out.String())
	}
	if _, err := os.Stat(filepath.Join(o.root, "devicemapper", "pool.json")); !os.IsNotExist(err) {
		t.Fatalf("the interrupted init left a pool (%v)", err)
	}
	for name := range dmTable(t) {
		if strings.HasPrefix(name, "thinctl-") {
			t.Errorf("the interrupted init left device-mapper device %s", name)
		}
	}
	if b, err := exec.Command("losetup", "-a").CombinedOutput(); err == nil && strings.Contains(string(b), o.root) {
		t.Errorf("the interrupted init left a loop device on its files:\n%s", b)
	}
	o.fails(1, "hint: create it first", "list")
}

// TestCreateActivateIsOneStepThatPrintsAReadableDevice: `create --activate`
// snapshots, activates and prints the device's path in one process; the
// kernel shows the thin device and the snapshot's filesystem holds what
// the parent had.
func TestCreateActivateIsOneStepThatPrintsAReadableDevice(t *testing.T) {
	o := newOperator(t)
	o.must("pool", "init", "--data-size", "512M", "--metadata-size", "16M", "--base-size", "128M")
	pool := o.status().PoolName
	o.must("create", "web")
	mnt := strings.TrimSpace(o.must("mount", "web"))
	if err := os.WriteFile(filepath.Join(mnt, "hello"), []byte("from web\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	o.must("unmount", "web")

	dev := strings.TrimSpace(o.must("create", "snap", "--parent", "web", "--activate"))
	if !strings.HasPrefix(dev, "/dev/mapper/") || strings.Contains(dev, "\n") {
		t.Fatalf("create --activate printed %q, want one /dev/mapper path", dev)
	}
	snap := o.info("snap")
	if snap.Parent != "web" || !snap.Active || snap.Mounted {
		t.Fatalf("info snap after create --activate: %+v", snap)
	}
	name := thinOf(t, pool, snap.DeviceID)
	if name == "" || "/dev/mapper/"+name != dev {
		t.Fatalf("dmsetup's thin device with id %d is %q, create --activate printed %s", snap.DeviceID, name, dev)
	}
	dir := t.TempDir()
	if err := unix.Mount(dev, dir, "ext4", unix.MS_RDONLY, ""); err != nil {
		t.Fatalf("mount %s read-only: %v", dev, err)
	}
	defer unix.Unmount(dir, 0)
	if b, err := os.ReadFile(filepath.Join(dir, "hello")); err != nil || string(b) != "from web\n" {
		t.Fatalf("the activated snapshot reads %q, %v; want its parent's file", b, err)
	}
	unix.Unmount(dir, 0)
	o.fails(1, "already exists", "create", "snap", "--activate")
	if got := o.info("snap"); got.DeviceID != snap.DeviceID || !got.Active {
		t.Fatalf("info snap after a refused second create --activate: %+v, want the first one still active", got)
	}
}

// TestRemoveNoWaitLeavesTheSpaceToGCWhichSaysSo removes a written device
// with --no-wait: the command returns once the deletion is recorded, and
// the process's exit stops the background return. Whatever of it was left
// (the thin device stays in the kernel until its space is back: dmsetup
// tells), gc's output says what gc's process did: the space it returned,
// or nothing when the return had finished.
func TestRemoveNoWaitLeavesTheSpaceToGCWhichSaysSo(t *testing.T) {
	o := newOperator(t)
	o.must("pool", "init", "--data-size", "1G", "--metadata-size", "16M", "--base-size", "256M")
	pool := o.status().PoolName
	dev := strings.TrimSpace(o.must("create", "scratch", "--activate"))
	devID := o.info("scratch").DeviceID
	f, err := os.OpenFile(dev, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	chunk := bytes.Repeat([]byte{0xa5}, 1<<20)
	for off := int64(0); off < 192<<20; off += 1 << 20 {
		if _, err := f.WriteAt(chunk, off); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if out := o.must("remove", "scratch", "--no-wait"); !strings.Contains(out, "scratch") {
		t.Fatalf("remove --no-wait printed %q", out)
	}
	unfinished := thinOf(t, pool, devID) != ""
	out := o.must("gc")
	switch {
	case unfinished && out != "Returned the space of 1 removed device\n":
		t.Fatalf("gc with one device returning space printed %q", out)
	case !unfinished && out != "Nothing to collect\n":
		t.Fatalf("gc with nothing left to do printed %q", out)
	}
	t.Logf("the exit of remove --no-wait left the return unfinished: %v; gc printed %q", unfinished, out)
	if name := thinOf(t, pool, devID); name != "" {
		t.Fatalf("dmsetup still shows %s after gc", name)
	}
	var list []deviceInfo
	o.decode(&list, "list")
	if len(list) != 0 {
		t.Fatalf("list after gc: %+v, want nothing", list)
	}
	if st := o.must("pool", "status"); strings.Contains(st, "Space being returned:") {
		t.Fatalf("pool status after gc still says space is being returned:\n%s", st)
	}
	if out := o.must("gc"); out != "Nothing to collect\n" {
		t.Fatalf("a second gc printed %q, want Nothing to collect", out)
	}
}
