//go:build vm

package main

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/thinctl/thinctl/internal/testenv"
)

// The fault tests: the storage under a pool fills or fails, and the
// documented recovery (free the space, then the commands check's hints
// name: pool repair, fsck) brings back every byte written before.

// TestACheckOfALoopPoolLargerThanItsHostFilesystemFails is the first
// thing a new user met: pool init promised 2 GiB on a filesystem with
// less free, and check said "consistent" and exited 0.
func TestACheckOfALoopPoolLargerThanItsHostFilesystemFails(t *testing.T) {
	host := testenv.SmallExt4(t, 128<<20)
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
	host := testenv.SmallExt4(t, 160<<20)
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
	host := testenv.SmallExt4(t, 160<<20)
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
