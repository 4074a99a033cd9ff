//go:build vm

package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/thinctl/thinctl/dm"
	"github.com/thinctl/thinctl/internal/testenv"
	"github.com/thinctl/thinctl/loopback"
)

// The fault tests: the storage under a pool fills or fails, and the
// documented recovery (free the space, then the commands check's hints
// name: pool repair, fsck) brings back every byte written before.

// hostFS makes a small ext4 filesystem of size bytes in an image file,
// mounted in the guest, and returns its mount point.
func hostFS(t *testing.T, size int64) string {
	t.Helper()
	testenv.RequireTool(t, "mkfs.ext4")
	dir := t.TempDir()
	img, mnt := filepath.Join(dir, "host.img"), filepath.Join(dir, "host")
	if err := os.Mkdir(mnt, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(img, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(img, size); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mkfs.ext4", "-q", "-F", img).CombinedOutput(); err != nil {
		t.Fatalf("mkfs.ext4: %v\n%s", err, out)
	}
	li, err := loopback.Attach(context.Background(), img, loopback.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount(li.Path, mnt, "ext4", 0, ""); err != nil {
		_ = loopback.Detach(context.Background(), li.Path)
		t.Fatalf("mount %s: %v", li.Path, err)
	}
	t.Cleanup(func() {
		_ = unix.Unmount(mnt, unix.MNT_DETACH)
		_ = loopback.Detach(context.Background(), li.Path)
	})
	return mnt
}

// newOperatorAt is newOperator with the pool's root in dir. A pool a
// failed test left broken (pool destroy refuses a read-only pool with a
// mounted device) is torn down by force after destroy, so that the host
// filesystem can be unmounted and later tests see no device of it.
func newOperatorAt(t *testing.T, dir string) *operator {
	t.Helper()
	t.Cleanup(func() {
		var st unix.Stat_t
		if unix.Stat(dir, &st) != nil {
			return
		}
		prefix := fmt.Sprintf("thinctl-%d:%d-%d-", unix.Major(st.Dev), unix.Minor(st.Dev), st.Ino)
		for _, m := range []string{"mnt"} {
			ents, _ := os.ReadDir(filepath.Join(dir, m))
			for _, e := range ents {
				_ = unix.Unmount(filepath.Join(dir, m, e.Name()), unix.MNT_DETACH)
			}
		}
		var pools []string
		for name := range dmTable(t) {
			switch {
			case !strings.HasPrefix(name, prefix):
			case strings.HasSuffix(name, "-pool"):
				pools = append(pools, name)
			default:
				_ = exec.Command("dmsetup", "remove", "--force", name).Run()
			}
		}
		for _, name := range pools {
			t.Logf("removing %s, which the test left", name)
			_ = exec.Command("dmsetup", "remove", "--force", name).Run()
		}
		files, _ := filepath.Glob("/sys/block/loop*/loop/backing_file")
		for _, f := range files {
			if b, err := os.ReadFile(f); err == nil && strings.HasPrefix(strings.TrimSpace(string(b)), dir) {
				_ = loopback.Detach(context.Background(), "/dev/"+filepath.Base(filepath.Dir(filepath.Dir(f))))
			}
		}
	})
	o := newOperator(t)
	o.root = dir
	return o
}

// fillFS allocates every free block of the filesystem holding dir to a
// file and returns a function that removes it again.
func fillFS(t *testing.T, dir string) func() {
	t.Helper()
	path := filepath.Join(dir, "filler")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var off int64
	for chunk := int64(64 << 20); chunk >= 4096; {
		if err := unix.Fallocate(int(f.Fd()), 0, off, chunk); err != nil {
			chunk /= 2
			continue
		}
		off += chunk
	}
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	t.Logf("filled %s: %d MiB in the filler, %d blocks left", dir, off>>20, st.Bfree)
	return func() {
		if err := os.Remove(path); err != nil {
			t.Fatal(err)
		}
	}
}

// punchZeroBlocks deallocates every all-zero 4 KiB block of file: the
// content stays the same, but writing there needs new space from its
// filesystem again (a sparse metadata file, as pool init made before it
// allocated them fully).
func punchZeroBlocks(t *testing.T, file string) {
	t.Helper()
	f, err := os.OpenFile(file, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf, zero := make([]byte, 4096), make([]byte, 4096)
	for off := int64(0); ; off += 4096 {
		n, err := f.ReadAt(buf, off)
		if n < 4096 || err != nil {
			break
		}
		if bytes.Equal(buf, zero) {
			if err := unix.Fallocate(int(f.Fd()), unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, off, 4096); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// allocate allocates every block of file (its content unchanged).
func allocate(t *testing.T, file string) {
	t.Helper()
	f, err := os.OpenFile(file, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fi, _ := f.Stat()
	if err := unix.Fallocate(int(f.Fd()), 0, 0, fi.Size()); err != nil {
		t.Fatal(err)
	}
}

// writeBefore writes n random bytes to name under dir, synced, and
// returns them.
func writeBefore(t *testing.T, dir, name string, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(filepath.Join(dir, name))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	return b
}

// readBack asserts that file under dir holds want, byte for byte.
func readBack(t *testing.T, dir, name string, want []byte) {
	t.Helper()
	got, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		t.Fatalf("read back %s: %v", name, err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s read back %d bytes that differ from the %d written before the fault", name, len(got), len(want))
	}
}

// checkFails asserts check exits 1 naming kind and returns its hint.
func (o *operator) checkFails(kind string) string {
	o.t.Helper()
	r := o.run("check")
	if r.code != 1 || !strings.Contains(r.stdout, kind) {
		o.t.Fatalf("check: exit %d, want 1 naming %s\nstdout:\n%s\nstderr:\n%s", r.code, kind, r.stdout, r.stderr)
	}
	return r.stderr
}

// followHints runs check and, while it fails, the thinctl command its
// hint names (pool repair, fsck ID), as an operator following it would,
// until check exits 0; it returns the commands it ran.
func (o *operator) followHints(max int) []string {
	o.t.Helper()
	var ran []string
	cmdRE := regexp.MustCompile(`thinctl (pool repair|fsck [A-Za-z0-9_.-]+)`)
	for i := 0; ; i++ {
		r := o.run("check")
		if r.code == 0 {
			return ran
		}
		m := cmdRE.FindStringSubmatch(r.stderr)
		if m == nil || i == max {
			o.t.Fatalf("check: exit %d after %v; its hint names no command thinctl runs\nstdout:\n%s\nstderr:\n%s", r.code, ran, r.stdout, r.stderr)
		}
		o.must(strings.Fields(m[1])...)
		ran = append(ran, m[1])
	}
}

// thinDumpIDs runs thin_dump (the test's oracle, never the product's
// recovery) on the metadata of the pool while it is down.
func thinDumpIDs(t *testing.T, meta string) []uint32 {
	t.Helper()
	out, err := exec.Command("thin_dump", meta).CombinedOutput()
	if err != nil {
		t.Fatalf("thin_dump %s: %v\n%s", meta, err, out)
	}
	var ids []uint32
	for _, m := range regexp.MustCompile(`<device dev_id="(\d+)"`).FindAllStringSubmatch(string(out), -1) {
		n, _ := strconv.ParseUint(m[1], 10, 32)
		ids = append(ids, uint32(n))
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	return ids
}

// assertRegistryIsThePool takes the pool down, compares the registry's
// thin ids (and the base device's) with thin_dump of the metadata pool.json
// names, and brings it up again.
func (o *operator) assertRegistryIsThePool() {
	o.t.Helper()
	testenv.RequireTool(o.t, "thin_dump")
	var devs []deviceInfo
	o.decode(&devs, "list")
	var cfg struct {
		MetadataFile   string `json:"metadata_file"`
		MetadataDevice string `json:"metadata_device"`
		BaseDeviceID   uint32 `json:"base_device_id"`
	}
	b, err := os.ReadFile(filepath.Join(o.root, "devicemapper", "pool.json"))
	if err != nil || json.Unmarshal(b, &cfg) != nil {
		o.t.Fatalf("pool.json: %v\n%s", err, b)
	}
	want := []uint32{cfg.BaseDeviceID}
	for _, d := range devs {
		want = append(want, d.DeviceID)
	}
	sort.Slice(want, func(i, j int) bool { return want[i] < want[j] })
	for _, d := range devs {
		o.run("unmount", d.ID)
	}
	o.must("pool", "down")
	meta := cfg.MetadataDevice
	if cfg.MetadataFile != "" {
		meta = filepath.Join(o.root, "devicemapper", cfg.MetadataFile)
	}
	got := thinDumpIDs(o.t, meta)
	o.must("pool", "up")
	if fmt.Sprint(got) != fmt.Sprint(want) {
		o.t.Fatalf("thin_dump of %s has thin ids %v; the registry (and base) %v", meta, got, want)
	}
	o.must("check")
}

// TestACheckOfALoopPoolLargerThanItsHostFilesystemFails is the first
// thing a new user met: pool init promised 2 GiB on a filesystem with
// less free, and check said "consistent" and exited 0.
func TestACheckOfALoopPoolLargerThanItsHostFilesystemFails(t *testing.T) {
	host := hostFS(t, 128<<20)
	o := newOperatorAt(t, filepath.Join(host, "root"))
	o.must("pool", "init", "--data-size", "1G", "--metadata-size", "8M", "--base-size", "32M")
	hint := o.checkFails("host_filesystem_short")
	if !strings.Contains(hint, "free space on the filesystem") || strings.Contains(hint, "pool grow") {
		t.Fatalf("check's hint for a short host filesystem:\n%s", hint)
	}
	if st := o.must("pool", "status"); !strings.Contains(st, "Problem:") {
		t.Fatalf("pool status does not agree with check:\n%s", st)
	}
}

// TestAHostFilesystemFullUnderTheMetadataFileIsRepairedWithOneCommand
// fills the filesystem under a loop pool whose metadata file is sparse: a
// create's metadata commit fails, the kernel switches the pool to
// read-only with needs_check. The create fails (it returned success
// before), check says so and names the fixes in order, pool repair
// refuses while a device is mounted, and after the space is back pool
// repair (and what check names after it) brings back every byte.
func TestAHostFilesystemFullUnderTheMetadataFileIsRepairedWithOneCommand(t *testing.T) {
	testenv.RequireTool(t, "thin_check")
	host := hostFS(t, 160<<20)
	o := newOperatorAt(t, filepath.Join(host, "root"))
	o.must("pool", "init", "--data-size", "96M", "--metadata-size", "8M", "--base-size", "32M", "--min-free-space", "0")
	o.must("create", "web")
	mp := strings.TrimSpace(o.must("mount", "web"))
	before := writeBefore(t, mp, "before", 4<<20)
	o.must("check")

	dir := filepath.Join(o.root, "devicemapper")
	allocate(t, filepath.Join(dir, "data"))
	punchZeroBlocks(t, filepath.Join(dir, "metadata"))
	release := fillFS(t, host)

	r := o.run("create", "other")
	if r.code == 0 {
		t.Fatalf("create on a pool whose metadata commit cannot be written succeeded:\n%s", r.stdout)
	}
	if o.run("info", "other").code == 0 {
		t.Fatal("the registry records a device the pool did not keep")
	}
	hint := o.checkFails("pool_needs_check")
	if !strings.Contains(hint, "free space on the filesystem") || !strings.Contains(hint, "thinctl pool repair") ||
		strings.Contains(hint, "pool grow") || strings.Contains(hint, "thin_") {
		t.Fatalf("check's hint:\n%s", hint)
	}
	if st := o.status(); st.State != "ro" && st.State != "fail" {
		t.Fatalf("pool state %q, want ro or fail", st.State)
	}
	if st := o.must("pool", "status"); !regexp.MustCompile(`Needs check:\s+yes \(run thinctl pool repair\)`).MatchString(st) || !strings.Contains(st, "Problem:") {
		t.Fatalf("pool status does not agree with check:\n%s", st)
	}
	o.fails(1, "thinctl pool repair", "create", "third")

	o.fails(1, "web (mounted at", "pool", "repair")
	readBack(t, mp, "before", before)

	release()
	o.must("unmount", "web")
	ran := o.followHints(3)
	t.Logf("the recovery ran %v", ran)
	if len(ran) == 0 || ran[0] != "pool repair" {
		t.Fatalf("the recovery ran %v, want pool repair first", ran)
	}
	mp = strings.TrimSpace(o.must("mount", "web"))
	readBack(t, mp, "before", before)
	o.must("create", "after")
	o.assertRegistryIsThePool()
}

// TestAHostFilesystemFullUnderTheDataFileFailsTheWriterNotThePool fills
// the filesystem under a loop pool whose metadata file is allocated: a
// write that needs new blocks in the data file fails for its writer, check
// says the host filesystem is short (never "grow"), and after the space is
// back and the device unmounted, what check names and fsck bring back
// every byte written before.
func TestAHostFilesystemFullUnderTheDataFileFailsTheWriterNotThePool(t *testing.T) {
	host := hostFS(t, 160<<20)
	o := newOperatorAt(t, filepath.Join(host, "root"))
	o.must("pool", "init", "--data-size", "96M", "--metadata-size", "8M", "--base-size", "32M", "--min-free-space", "0")
	o.must("create", "web")
	mp := strings.TrimSpace(o.must("mount", "web"))
	before := writeBefore(t, mp, "before", 4<<20)
	o.must("check")
	allocate(t, filepath.Join(o.root, "devicemapper", "metadata"))
	release := fillFS(t, host)

	f, err := os.Create(filepath.Join(mp, "during"))
	if err == nil {
		_, err = f.Write(make([]byte, 16<<20))
		if err == nil {
			err = f.Sync()
		}
		f.Close()
	}
	if err == nil {
		t.Fatal("16 MiB written and synced with the host filesystem full")
	}
	hint := o.checkFails("host_filesystem_short")
	if !strings.Contains(hint, "free space on the filesystem") || strings.Contains(hint, "pool grow") {
		t.Fatalf("check's hint:\n%s", hint)
	}
	if st := o.status(); st.State != "rw" {
		t.Fatalf("the pool is %s after a data write failed under it", st.State)
	}

	release()
	o.must("unmount", "web")
	t.Logf("the recovery ran %v", o.followHints(3))
	t.Logf("fsck web: %s", o.must("fsck", "web"))
	mp = strings.TrimSpace(o.must("mount", "web"))
	readBack(t, mp, "before", before)
	o.assertRegistryIsThePool()
}

// faultyLinear is a device-mapper device over dev that a test switches
// between a linear table (working) and an error table (every I/O fails),
// written with the project's dm package.
type faultyLinear struct {
	t       *testing.T
	c       *dm.Client
	name    string
	under   string
	sectors uint64
}

func newFaultyLinear(t *testing.T, name, under string, size uint64) *faultyLinear {
	t.Helper()
	c, err := dm.Default()
	if err != nil {
		t.Fatal(err)
	}
	f := &faultyLinear{t: t, c: c, name: name, under: under, sectors: size / 512}
	if _, err := c.Create(name, dm.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Remove(context.Background(), name, dm.RemoveOptions{Retries: -1}) })
	f.set(true)
	return f
}

// set loads the linear (ok) or error table and makes it live.
func (f *faultyLinear) set(ok bool) {
	f.t.Helper()
	tgt := dm.Target{Start: 0, Length: f.sectors, Type: "error"}
	if ok {
		tgt = dm.Target{Start: 0, Length: f.sectors, Type: "linear", Params: f.under + " 0"}
	}
	if err := f.c.LoadTable(f.name, []dm.Target{tgt}, dm.LoadOptions{}); err != nil {
		f.t.Fatal(err)
	}
	if err := f.c.Resume(context.Background(), f.name); err != nil {
		f.t.Fatal(err)
	}
}

func (f *faultyLinear) path() string { return "/dev/mapper/" + f.name }

// loopDevice binds a new file of size bytes to a loop device.
func loopDevice(t *testing.T, size int64) string {
	t.Helper()
	file := filepath.Join(t.TempDir(), "backing")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(file, size); err != nil {
		t.Fatal(err)
	}
	li, err := loopback.Attach(context.Background(), file, loopback.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = loopback.Detach(context.Background(), li.Path) })
	return li.Path
}

// devicePool makes a pool on a data and a metadata device, each a
// faultyLinear over a loop device.
func devicePool(t *testing.T, o *operator, tag string) (data, meta *faultyLinear) {
	t.Helper()
	data = newFaultyLinear(t, "tcfault-"+tag+"-data", loopDevice(t, 128<<20), 128<<20)
	meta = newFaultyLinear(t, "tcfault-"+tag+"-meta", loopDevice(t, 8<<20), 8<<20)
	o.must("pool", "init", "--data-dev", data.path(), "--metadata-dev", meta.path(), "--base-size", "32M", "--min-free-space", "0")
	t.Cleanup(func() { o.run("pool", "destroy", "--force") }) // before the devices go
	return data, meta
}

// TestACreateWhileTheMetadataDeviceFailsIsNotReportedDone swaps dm-error
// under a pool's metadata device for a moment: a create during the fault
// returned success before (the kernel ignores the failed commit in the
// message's result). Now it fails, check names the failed pool and pool
// repair, which finds the metadata intact, only activates it again.
func TestACreateWhileTheMetadataDeviceFailsIsNotReportedDone(t *testing.T) {
	testenv.RequireTool(t, "thin_check")
	o := newOperator(t)
	_, meta := devicePool(t, o, "meta")
	o.must("create", "web")
	mp := strings.TrimSpace(o.must("mount", "web"))
	before := writeBefore(t, mp, "before", 2<<20)

	meta.set(false)
	r := o.run("create", "other")
	meta.set(true)
	if r.code == 0 {
		t.Fatalf("create while the metadata device failed reported success:\n%s", r.stdout)
	}
	if o.run("info", "other").code == 0 {
		t.Fatal("the registry records a device the pool did not keep")
	}
	hint := o.checkFails("pool_")
	if !strings.Contains(hint, "thinctl pool repair") || strings.Contains(hint, "thin_") {
		t.Fatalf("check's hint:\n%s", hint)
	}
	o.must("unmount", "web")
	out := o.must("pool", "repair")
	if !strings.Contains(out, "passed thin_check") {
		t.Fatalf("pool repair of intact metadata did more than a fresh activation:\n%s", out)
	}
	o.followHints(2)
	mp = strings.TrimSpace(o.must("mount", "web"))
	readBack(t, mp, "before", before)
	o.must("create", "after")
	o.assertRegistryIsThePool()
}

// TestDataDeviceErrorsForAWhileLoseNothingWrittenBefore swaps dm-error
// under a pool's data device while a device is mounted and written: the
// writer gets errors, and after the device is back fsck (and what check
// names) brings back what was written before.
func TestDataDeviceErrorsForAWhileLoseNothingWrittenBefore(t *testing.T) {
	o := newOperator(t)
	data, _ := devicePool(t, o, "data")
	o.must("create", "web")
	mp := strings.TrimSpace(o.must("mount", "web"))
	before := writeBefore(t, mp, "before", 2<<20)

	data.set(false)
	f, err := os.Create(filepath.Join(mp, "during"))
	if err == nil {
		_, _ = f.Write(make([]byte, 1<<20))
		err = f.Sync()
		f.Close()
	}
	if err == nil {
		t.Fatal("a write synced while the data device failed")
	}
	r := o.run("check")
	data.set(true)
	if r.code == 0 {
		t.Fatalf("check exited 0 while the data device failed under a written device:\n%s", r.stdout)
	}
	o.must("unmount", "web")
	o.must("fsck", "web")
	o.followHints(2)
	mp = strings.TrimSpace(o.must("mount", "web"))
	readBack(t, mp, "before", before)
	o.assertRegistryIsThePool()
}

// TestDamagedMetadataOnADeviceIsRepairedOntoASpare breaks the metadata of
// a pool on block devices (a space-map block thin_check rejects): pool
// repair without a spare refuses, says what to give it and leaves the pool
// up; with --spare-metadata-dev it writes the repaired metadata there,
// pool.json names the spare, the old device is untouched and the bytes
// read back.
func TestDamagedMetadataOnADeviceIsRepairedOntoASpare(t *testing.T) {
	testenv.RequireTool(t, "thin_check")
	testenv.RequireTool(t, "thin_repair")
	o := newOperator(t)
	_, meta := devicePool(t, o, "spare")
	spare := loopDevice(t, 8<<20)
	o.must("create", "web")
	mp := strings.TrimSpace(o.must("mount", "web"))
	before := writeBefore(t, mp, "before", 2<<20)
	o.must("unmount", "web")
	o.must("pool", "down")
	f, err := os.OpenFile(meta.path(), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	sb := make([]byte, 4096)
	if _, err := f.ReadAt(sb, 0); err != nil {
		t.Fatal(err)
	}
	// superblock: data_space_map_root at 64; its ref_count_root at +24.
	blk := int64(sb[64+24]) | int64(sb[64+25])<<8 | int64(sb[64+26])<<16
	if _, err := f.WriteAt(bytes.Repeat([]byte{0xa5}, 64), blk*4096+64); err != nil {
		t.Fatal(err)
	}
	f.Sync()
	f.Close()
	old, err := os.ReadFile(meta.path())
	if err != nil {
		t.Fatal(err)
	}
	o.must("pool", "up")

	o.fails(1, "--spare-metadata-dev DEV", "pool", "repair")
	if st := o.status(); st.State == "down" {
		t.Fatal("a refused repair left the pool down")
	}
	out := o.must("pool", "repair", "--spare-metadata-dev", spare)
	if !strings.Contains(out, "Repaired the metadata") {
		t.Fatalf("pool repair:\n%s", out)
	}
	if now, _ := os.ReadFile(meta.path()); !bytes.Equal(now, old) {
		t.Fatal("the old metadata device changed")
	}
	o.followHints(2)
	mp = strings.TrimSpace(o.must("mount", "web"))
	readBack(t, mp, "before", before)
	o.must("create", "after")
	o.assertRegistryIsThePool()
	b, _ := os.ReadFile(filepath.Join(o.root, "devicemapper", "pool.json"))
	if !strings.Contains(string(b), `"metadata_device":"`+spare+`"`) && !strings.Contains(string(b), `"metadata_device": "`+spare+`"`) {
		t.Fatalf("pool.json does not name the spare %s:\n%s", spare, b)
	}
}
