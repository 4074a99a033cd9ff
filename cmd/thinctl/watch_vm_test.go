//go:build vm

package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/thinctl/thinctl/packaging/systemd"
)

func TestPoolInitWarnsWhenTheHostFilesystemCannotHoldThePool(t *testing.T) {
	o := newOperator(t)
	var sfs unix.Statfs_t
	if err := unix.Statfs(filepath.Dir(o.root), &sfs); err != nil {
		t.Fatal(err)
	}
	free := sfs.Bfree * uint64(sfs.Bsize)
	big := strconv.FormatUint(2*free>>20, 10) + "M"
	r := o.run("pool", "init", "--data-size", big, "--metadata-size", "16M", "--base-size", "64M")
	if r.code != 0 || !strings.Contains(r.stderr, "warning: the pool may still take") || !strings.Contains(r.stderr, "short") {
		t.Fatalf("pool init of %s on a filesystem with %s free: exit %d\n%s", big, humanSize(free), r.code, r.stderr)
	}
	t.Logf("pool init of %s on a filesystem with %s free:\n%s", big, humanSize(free), r.stderr)
	meta := filepath.Join(o.root, "devicemapper", "metadata")
	if allocated(t, meta) < 16<<20 {
		t.Fatalf("metadata file has %d bytes allocated after init, want all 16M", allocated(t, meta))
	}
	if strings.Contains(r.stderr, "metadata file is not fully allocated") {
		t.Fatalf("warned about metadata that is allocated:\n%s", r.stderr)
	}
	// Growing metadata allocates the new part too; the data warning stays.
	r = o.run("pool", "grow", "--metadata-size", "32M")
	if r.code != 0 || !strings.Contains(r.stderr, "warning: the pool may still take") || allocated(t, meta) < 32<<20 {
		t.Fatalf("pool grow --metadata-size 32M: exit %d, metadata allocated %d\n%s", r.code, allocated(t, meta), r.stderr)
	}
}

func TestPoolInitPreallocateAllocatesTheDataFileAndDoesNotWarn(t *testing.T) {
	o := newOperator(t)
	r := o.run("pool", "init", "--data-size", "64M", "--metadata-size", "8M", "--base-size", "32M", "--preallocate")
	if r.code != 0 || strings.Contains(r.stderr, "warning") {
		t.Fatalf("pool init --preallocate: exit %d\n%s", r.code, r.stderr)
	}
	if a := allocated(t, filepath.Join(o.root, "devicemapper", "data")); a < 64<<20 {
		t.Fatalf("data file has %d bytes allocated, want all 64M", a)
	}
}

func allocated(t *testing.T, path string) int64 {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	return st.Blocks * 512
}

// ddInto copies n MiB of file into the block device dev with O_DIRECT
// and an fsync at the end.
func ddInto(t *testing.T, file, dev string, n int) error {
	t.Helper()
	out, err := exec.Command("dd", "if="+file, "of="+dev, "bs=1M", "count="+strconv.Itoa(n), "oflag=direct", "conv=fsync,notrunc").CombinedOutput()
	if err != nil {
		return &ddError{err: err, out: string(out)}
	}
	return nil
}

type ddError struct {
	err error
	out string
}

func (e *ddError) Error() string { return e.err.Error() + ": " + strings.TrimSpace(e.out) }

// TestTheWatchUnitGrowsThePoolAheadOfAWriterAndStopsCleanlyOnSIGTERM runs
// thinctl-watch@.service's ExecStart= line with a policy in
// THINCTL_WATCH_ARGS (as a drop-in would set it): 32 MiB written into a
// 24 MiB pool get no error, the data file grows within the cap, SIGTERM
// ends the watcher with exit 0 and the pool table as pool up loads it,
// and check finds the pool consistent.
func TestTheWatchUnitGrowsThePoolAheadOfAWriterAndStopsCleanlyOnSIGTERM(t *testing.T) {
	o := newOperator(t)
	began := time.Now()
	o.must("pool", "init", "--data-size", "24M", "--metadata-size", "8M", "--base-size", "16M")
	devs := map[string]string{}
	for _, id := range []string{"web", "snap"} {
		o.must("create", id)
		devs[id] = strings.TrimSpace(o.must("activate", id))
	}
	metrics := filepath.Join(t.TempDir(), "thinctl.prom")
	line := unitCommand(t, systemd.WatchService, "ExecStart", o.root)
	var argv []string
	for _, a := range line.argv[1:] {
		if a == "$THINCTL_WATCH_ARGS" { // systemd splits an unbraced $VAR at spaces
			argv = append(argv, strings.Fields("--autoextend-threshold 60% --autoextend-step 50% --max-data-size 128M --interval 200ms --metrics-file "+metrics)...)
			continue
		}
		argv = append(argv, a)
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, argv...)
	cmd.Env = []string{"THINCTL_TEST_MAIN=1", "PATH=" + os.Getenv("PATH"), "DM_DISABLE_UDEV=" + os.Getenv("DM_DISABLE_UDEV")}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	// The watcher is up once it wrote its first metrics.
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if _, err := os.Stat(metrics); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no metrics file after 30 s; stderr:\n%s", stderr.String())
		}
	}

	t.Logf("%v: pool made, watcher up", time.Since(began))
	src := filepath.Join(t.TempDir(), "src")
	if out, err := exec.Command("dd", "if=/dev/urandom", "of="+src, "bs=1M", "count=16").CombinedOutput(); err != nil {
		t.Fatalf("dd: %v %s", err, out)
	}
	for id, dev := range devs {
		if err := ddInto(t, src, dev, 16); err != nil {
			t.Fatalf("writing 16 MiB into %s while pool watch runs: %v\nwatch:\n%s", id, err, stderr.String())
		}
	}
	t.Logf("%v: 32 MiB written", time.Since(began))
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	err = cmd.Wait()
	t.Logf("%v: pool watch stopped:\n%s", time.Since(began), stderr.String())
	if err != nil {
		t.Fatalf("pool watch after SIGTERM: %v", err)
	}
	if !strings.Contains(stderr.String(), "event=grow") || !strings.Contains(stderr.String(), "event=stop") {
		t.Error("the watcher's log lacks a grow or a stop")
	}
	fi, err := os.Stat(filepath.Join(o.root, "devicemapper", "data"))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Size() <= 24<<20 || fi.Size() > 128<<20 {
		t.Errorf("data file is %d bytes: want grown past 24M and within the 128M cap", fi.Size())
	}
	st := o.status()
	if st.DataTotalBytes != uint64(fi.Size()) || st.State != "rw" {
		t.Errorf("pool status after the watch: %s, data %d bytes (file %d)", st.State, st.DataTotalBytes, fi.Size())
	}
	table := dmTable(t)[st.PoolName]
	if f := strings.Fields(table); len(f) < 7 || f[6] != "32768" || !strings.Contains(table, "error_if_no_space") {
		t.Errorf("pool table after SIGTERM: %s", table)
	}
	m, err := os.ReadFile(metrics)
	if err != nil || !bytes.Contains(m, []byte("thinctl_pool_data_size_bytes{pool=")) {
		t.Errorf("metrics file: %v\n%s", err, m)
	}
	for id, dev := range devs {
		if out, err := exec.Command("cmp", "-n", "16777216", src, dev).CombinedOutput(); err != nil {
			t.Errorf("%s reads back changed: %v %s", id, err, out)
		}
		o.must("deactivate", id)
	}
	t.Logf("%v: read back, deactivated", time.Since(began))
	o.must("check")
	t.Logf("%v: checked", time.Since(began))
}
