//go:build vm

package thinpool

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/thinctl/thinctl/fs"
	"github.com/thinctl/thinctl/thinpool/internal/store"
)

func TestRemoveGivesTheSpaceBackToTheDataFile(t *testing.T) {
	p, _ := newVMPool(t, smallOptions())
	data := p.dataFilePath()
	before := allocated(t, data)
	must(t, p.Create(context.Background(), "big", "", CreateOptions{}))
	dir := mustMount(t, p, "big")
	must(t, writeRandom(filepath.Join(dir, "blob"), 100*int64(MiB)))
	if d, err := p.Device("big"); err != nil || d.Used < 100*MiB {
		t.Fatalf("Device reports %d bytes used after writing 100 MiB (%v)", d.Used, err)
	}
	must(t, p.Unmount(context.Background(), "big"))
	grown := allocated(t, data)
	t.Logf("data file allocation: %d MiB before, %d MiB after writing 100 MiB", before>>20, grown>>20)
	if grown-before < 95*int64(MiB) || grown-before > 140*int64(MiB) {
		t.Fatalf("writing 100 MiB grew the data file by %d MiB", (grown-before)>>20)
	}
	must(t, p.Remove(context.Background(), "big"))
	// The space comes back in the background; Status says when.
	waitFor(t, "the space of big to be returned", func() bool {
		st, err := p.Status()
		return err == nil && st.ReturningDevices == 0
	})
	after := allocated(t, data)
	t.Logf("after Remove: %d MiB", after>>20)
	if after-before > 4*int64(p.cfg.BlockSize) {
		t.Fatalf("after Remove the data file holds %d KiB more than before", (after-before)>>10)
	}
	if _, err := p.Device("big"); !isErr(err, ErrDeviceNotFound) {
		t.Fatalf("Device after Remove = %v", err)
	}
}

// startHolder starts sleep in a private copy of our mount namespace
// (optionally with its working directory inside dir) and waits until the
// copy exists.
func startHolder(t *testing.T, dir string, cwdInside bool) *exec.Cmd {
	t.Helper()
	holder := exec.Command("sleep", "600")
	holder.SysProcAttr = &syscall.SysProcAttr{Unshareflags: syscall.CLONE_NEWNS}
	if cwdInside {
		holder.Dir = dir
	}
	must(t, holder.Start())
	t.Cleanup(func() { holder.Process.Kill(); holder.Wait() })
	waitFor(t, "the holder's namespace", func() bool {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/mountinfo", holder.Process.Pid))
		return strings.Contains(string(b), dir)
	})
	return holder
}

func TestRemoveDetachesMountsLeakedIntoOtherNamespaces(t *testing.T) {
	p, _ := newVMPool(t, smallOptions())
	must(t, p.Create(context.Background(), "leaked", "", CreateOptions{}))
	dir := mustMount(t, p, "leaked")
	holder := startHolder(t, dir, false)
	// Lazy unmount + rmdir detaches the copy in the holder's namespace, so
	// the device is free at once (Docker's "device is busy", moby #27381).
	must(t, p.Remove(context.Background(), "leaked"))
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/mountinfo", holder.Process.Pid))
	if strings.Contains(string(b), dir) {
		t.Fatal("the copy of the mount in the other namespace survived Remove")
	}
}

func TestRemoveOfADeviceHeldInAnotherNamespaceIsDeferred(t *testing.T) {
	p, _ := newVMPool(t, smallOptions())
	must(t, p.Create(context.Background(), "held", "", CreateOptions{}))
	dir := mustMount(t, p, "held")
	writeFile(t, filepath.Join(dir, "f"), "x")
	name, _ := p.DeviceName("held")
	// The holder has its working directory in the filesystem: that keeps
	// the filesystem (and the device) alive after every mount is detached.
	holder := startHolder(t, dir, true)

	err := p.Remove(context.Background(), "held")
	if !isErr(err, ErrDeferred) {
		t.Fatalf("Remove of a held device = %v, want ErrDeferred", err)
	}
	if !strings.Contains(err.Error(), fmt.Sprintf("pid %d", holder.Process.Pid)) {
		t.Errorf("the error does not name the holder pid %d: %v", holder.Process.Pid, err)
	}
	t.Logf("deferred: %v", err)
	d, err := p.Device("held")
	must(t, err)
	if !d.Deleted {
		t.Fatal("the registry does not mark the device deleted")
	}
	if exists(dir) {
		t.Error("the mount point is still there after Remove")
	}
	if out, err := dmsetup(t, "info", name); err != nil || !strings.Contains(out, "ACTIVE") {
		t.Fatalf("dmsetup info %s while held: %v %s", name, err, out)
	}
	if ids, err := p.GC(context.Background()); err != nil || len(ids) != 0 {
		t.Fatalf("GC while held = %v, %v; want nothing removed", ids, err)
	}

	holder.Process.Kill()
	holder.Wait()
	waitFor(t, "the kernel's deferred removal", func() bool {
		_, err := dmsetup(t, "info", name)
		return err != nil
	})
	ids, err := p.GC(context.Background())
	if err != nil || len(ids) != 1 || ids[0] != "held" {
		t.Fatalf("GC after release = %v, %v; want [held]", ids, err)
	}
	if _, err := p.Device("held"); !isErr(err, ErrDeviceNotFound) {
		t.Fatalf("Device after GC = %v", err)
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestDownThenOpenKeepsEveryDeviceAndItsData(t *testing.T) {
	p, root := newVMPool(t, smallOptions())
	for _, id := range []string{"one", "two"} {
		must(t, p.Create(context.Background(), id, "", CreateOptions{}))
		dir := mustMount(t, p, id)
		writeFile(t, filepath.Join(dir, "name"), id)
		must(t, p.Unmount(context.Background(), id))
	}
	must(t, p.Create(context.Background(), "three", "two", CreateOptions{}))
	mustMount(t, p, "three")
	if err := p.Down(context.Background()); !isErr(err, ErrBusy) || !strings.Contains(err.Error(), "three") {
		t.Fatalf("Down with a mounted device = %v, want ErrBusy naming it", err)
	}
	must(t, p.Unmount(context.Background(), "three"))
	must(t, p.Down(context.Background()))
	must(t, p.Close())
	if out := mustDmsetup(t, "ls"); strings.Contains(out, p.cfg.Key) {
		t.Fatalf("devices of the root survive Down:\n%s", out)
	}
	for _, f := range []string{p.dataFilePath(), p.metaFilePath()} {
		if out, _ := exec.Command("losetup", "-j", f).CombinedOutput(); strings.TrimSpace(string(out)) != "" {
			t.Fatalf("a loop device still backs %s: %s", f, out)
		}
	}

	p2, err := Open(context.Background(), root, OpenOptions{})
	must(t, err)
	defer p2.Close()
	p3, err := Open(context.Background(), root, OpenOptions{}) // a second Open of a running pool is harmless
	must(t, err)
	must(t, p3.Close())
	for id, want := range map[string]string{"one": "one", "two": "two", "three": "two"} {
		dir := mustMount(t, p2, id)
		if got := readFile(t, filepath.Join(dir, "name")); got != want {
			t.Errorf("after Down/Open %s reads %q, want %q", id, got, want)
		}
		must(t, p2.Unmount(context.Background(), id))
	}
	st, err := p2.Status()
	must(t, err)
	if st.Devices != 3 || st.State != "rw" {
		t.Fatalf("status after reopen: %+v", st)
	}
}

func TestGrowWhileMountedAndWriting(t *testing.T) {
	p, _ := newVMPool(t, smallOptions())
	must(t, p.Create(context.Background(), "busy", "", CreateOptions{}))
	dir := mustMount(t, p, "busy")

	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var writeErr error
	var written int
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ctx.Err() == nil; i++ {
			if err := writeRandom(filepath.Join(dir, fmt.Sprintf("f%d", i%8)), int64(MiB)); err != nil {
				writeErr = err
				return
			}
			written++
		}
	}()
	time.Sleep(time.Second)
	must(t, p.Grow(context.Background(), GrowOptions{DataSize: 2 * GiB, MetadataSize: 128 * MiB}))
	time.Sleep(time.Second)
	cancel()
	wg.Wait()
	if writeErr != nil {
		t.Fatalf("a write during the grow failed: %v", writeErr)
	}
	t.Logf("%d MiB written during the grow", written)
	st, err := p.Status()
	must(t, err)
	if st.DataTotal != 2*GiB || st.MetadataTotal != 128*MiB {
		t.Fatalf("status after grow: data %d, metadata %d", st.DataTotal, st.MetadataTotal)
	}
	if got := poolTableLength(t, p.Name()); got != "4194304" {
		t.Fatalf("dmsetup table length %s, want 4194304", got)
	}
	if m, _ := fs.IsMounted(dir); !m {
		t.Fatal("the device was unmounted by the grow")
	}
	if err := p.Grow(context.Background(), GrowOptions{DataSize: GiB}); !isErr(err, ErrInvalidSize) {
		t.Fatalf("shrinking Grow = %v, want ErrInvalidSize", err)
	}
}

func TestAFullPoolFailsWritesQuickly(t *testing.T) {
	o := smallOptions()
	o.DataSize = 96 * MiB
	o.MinFreeSpace = 0.01
	p, _ := newVMPool(t, o)
	must(t, p.Create(context.Background(), "fill", "", CreateOptions{}))
	dir := mustMount(t, p, "fill")
	done := make(chan error, 1)
	go func() {
		for i := 0; ; i++ {
			if err := writeRandom(filepath.Join(dir, fmt.Sprintf("f%d", i)), 8*int64(MiB)); err != nil {
				done <- err
				return
			}
		}
	}()
	select {
	case err := <-done:
		t.Logf("writes failed with: %v", err)
	case <-time.After(5 * time.Minute):
		t.Fatal("writes into a full pool still hang after 5 minutes")
	}
	st, err := p.Status()
	must(t, err)
	if !st.OutOfDataSpace {
		t.Fatalf("status of a full pool: %+v", st)
	}
	if err := p.Create(context.Background(), "more", "", CreateOptions{}); !isErr(err, ErrLowSpace) {
		t.Fatalf("Create in a full pool = %v, want ErrLowSpace", err)
	}
	must(t, p.Unmount(context.Background(), "fill"))
	must(t, p.Remove(context.Background(), "fill"))
}

func TestCreateRefusesWhenSpaceIsLow(t *testing.T) {
	o := smallOptions()
	o.MinFreeSpace = 99.9
	p, _ := newVMPool(t, o)
	err := p.Create(context.Background(), "x", "", CreateOptions{})
	if !isErr(err, ErrLowSpace) || !strings.Contains(err.Error(), "grow its data") {
		t.Fatalf("Create with 99.9%% minimum free = %v, want ErrLowSpace saying which space to grow", err)
	}
	if _, err := p.Device("x"); !isErr(err, ErrDeviceNotFound) {
		t.Fatalf("a refused Create left a record: %v", err)
	}
}

func TestCreateWithABiggerSizeGrowsTheFilesystem(t *testing.T) {
	for _, fsType := range []fs.Type{fs.Ext4, fs.XFS} {
		t.Run(string(fsType), func(t *testing.T) {
			o := smallOptions()
			o.Filesystem = fsType
			o.BaseSize = 320 * MiB
			p, _ := newVMPool(t, o)
			must(t, p.Create(context.Background(), "small", "", CreateOptions{}))
			must(t, p.Create(context.Background(), "large", "small", CreateOptions{Size: 640 * MiB}))
			if err := p.Create(context.Background(), "tiny", "small", CreateOptions{Size: 100 * MiB}); !isErr(err, ErrInvalidSize) {
				t.Fatalf("Create smaller than the parent = %v, want ErrInvalidSize", err)
			}
			dir := mustMount(t, p, "large")
			var sfs syscall.Statfs_t
			must(t, syscall.Statfs(dir, &sfs))
			if size := uint64(sfs.Blocks) * uint64(sfs.Bsize); size < 560*MiB {
				t.Fatalf("the filesystem of a 640 MiB device is %d MiB", size>>20)
			}
			d, err := p.store.Get("large")
			must(t, err)
			if d.GrowPending {
				t.Fatal("the registry still says the grow is pending")
			}
		})
	}
}

func TestRemoveRefusesADeviceWithSnapshots(t *testing.T) {
	p, _ := newVMPool(t, smallOptions())
	must(t, p.Create(context.Background(), "parent", "", CreateOptions{}))
	must(t, p.Create(context.Background(), "child", "parent", CreateOptions{}))
	if err := p.Remove(context.Background(), "parent"); !isErr(err, ErrHasChildren) {
		t.Fatalf("Remove(parent) = %v, want ErrHasChildren", err)
	}
	must(t, p.Remove(context.Background(), "child"))
	must(t, p.Remove(context.Background(), "parent"))
	for _, c := range []struct {
		name string
		err  error
		fn   func() error
	}{
		{"an existing id", ErrDeviceExists, func() error {
			must(t, p.Create(context.Background(), "dup", "", CreateOptions{}))
			return p.Create(context.Background(), "dup", "", CreateOptions{})
		}},
		{"a missing parent", ErrParentNotFound, func() error { return p.Create(context.Background(), "orphan", "nope", CreateOptions{}) }},
		{"an invalid id", ErrInvalidID, func() error { return p.Create(context.Background(), "../etc", "", CreateOptions{}) }},
		{"mounting a missing device", ErrDeviceNotFound, func() error { _, err := p.Mount(context.Background(), "nope", MountOptions{}); return err }},
	} {
		if err := c.fn(); !isErr(err, c.err) {
			t.Errorf("%s: %v, want %v", c.name, err, c.err)
		}
	}
}

func TestMountIsReferenceCountedAndSeenAcrossPoolValues(t *testing.T) {
	p, root := newVMPool(t, smallOptions())
	must(t, p.Create(context.Background(), "m", "", CreateOptions{}))
	dir := mustMount(t, p, "m")
	if again := mustMount(t, p, "m"); again != dir {
		t.Fatalf("second Mount returned %s, want %s", again, dir)
	}
	must(t, p.Unmount(context.Background(), "m"))
	if m, _ := fs.IsMounted(dir); !m {
		t.Fatal("one of two Unmounts unmounted")
	}
	// Another Pool value (as another process would) sees the mount.
	other, err := Open(context.Background(), root, OpenOptions{})
	must(t, err)
	defer other.Close()
	d, err := other.Device("m")
	must(t, err)
	if !d.Mounted || !d.Active {
		t.Fatalf("another Pool sees %+v", d)
	}
	if err := other.Deactivate(context.Background(), "m"); !isErr(err, ErrBusy) {
		t.Fatalf("Deactivate of a mounted device = %v, want ErrBusy", err)
	}
	must(t, p.Unmount(context.Background(), "m"))
	if exists(dir) {
		t.Fatal("the last Unmount left the mount point")
	}
	if d, _ := other.Device("m"); d.Active {
		t.Fatal("the last Unmount left the device active")
	}
}

func TestCheckFindsAndRepairsOrphansAndStaleMounts(t *testing.T) {
	p, root := newVMPool(t, smallOptions())
	must(t, p.Create(context.Background(), "kept", "", CreateOptions{}))
	// An orphan thin id (a crash after the message, transaction file lost).
	mustDmsetup(t, "message", p.Name(), "0", "create_thin 4242")
	// A stale mount point.
	must(t, os.MkdirAll(filepath.Join(root, "mnt", "ghost"), 0o700))

	r, err := p.Check(context.Background(), CheckOptions{})
	must(t, err)
	kinds := map[string]bool{}
	for _, pr := range r.Problems {
		kinds[pr.Kind+"/"+pr.ID] = true
	}
	if r.Consistent || !kinds["orphan_thin/4242"] || !kinds["stale_mount/ghost"] {
		t.Fatalf("Check found %+v (notes %v)", r.Problems, r.Notes)
	}
	r, err = p.Check(context.Background(), CheckOptions{Repair: true})
	must(t, err)
	if !r.Consistent {
		t.Fatalf("Check with repair left %+v", r.Problems)
	}
	r, err = p.Check(context.Background(), CheckOptions{})
	must(t, err)
	if !r.Consistent || len(r.Problems) != 0 {
		t.Fatalf("after repair Check finds %+v", r.Problems)
	}
	if _, err := p.Device("kept"); err != nil {
		t.Fatalf("repair lost a real device: %v", err)
	}
}

func TestOpenFinishesInterruptedTransactions(t *testing.T) {
	p, root := newVMPool(t, smallOptions())
	base := p.cfg.BaseDeviceID
	record := func(id string, devID uint32) store.Device {
		return store.Device{Version: store.RecordVersion, ID: id, DeviceID: devID, Size: p.cfg.BaseSize, Initialized: true}
	}
	create := func(id string, devID uint32) store.Tx {
		d := record(id, devID)
		return store.Tx{Op: store.OpCreateSnap, DeviceID: devID, OriginDeviceID: base, ID: id, Device: &d}
	}
	snap := func(devID uint32) {
		mustDmsetup(t, "message", p.Name(), "0", fmt.Sprintf("create_snap %d %d", devID, base))
	}
	reopen := func() {
		t.Helper()
		p.Close()
		var err error
		p, err = Open(context.Background(), root, OpenOptions{})
		must(t, err)
		if tx, err := p.store.LeftTx(); tx != nil || err != nil {
			t.Fatalf("a transaction survives Open: %+v, %v", tx, err)
		}
	}

	// A create interrupted after its message, before its end: the pool
	// has the id (the probe says EEXIST), so the record it carries is kept.
	must(t, p.store.Begin(create("found", 78)))
	snap(78)
	reopen()
	if _, err := p.Device("found"); err != nil {
		t.Fatalf("a create whose message reached the pool was not kept: %v", err)
	}

	// A create interrupted before its message reached the pool: undone
	// (the probe made the id; it is deleted again).
	must(t, p.store.Begin(create("never", 79)))
	reopen()
	if _, err := p.Device("never"); !isErr(err, ErrDeviceNotFound) {
		t.Fatalf("a create that never reached the pool left a record: %v", err)
	}

	// A version 1 transaction (no record inside) after its message, before
	// its record: undone, as version 1 did.
	must(t, p.store.Begin(store.Tx{Op: store.OpCreateSnap, DeviceID: 77, OriginDeviceID: base, ID: "lost"}))
	snap(77)
	reopen()
	if _, err := p.Device("lost"); !isErr(err, ErrDeviceNotFound) {
		t.Fatalf("an undone create left a record: %v", err)
	}

	// A delete interrupted after its message, before the record went: finished.
	snap(80)
	must(t, p.store.Put(record("gone", 80)))
	must(t, p.store.Begin(store.Tx{Op: store.OpDelete, DeviceID: 80, ID: "gone"}))
	mustDmsetup(t, "message", p.Name(), "0", "delete 80")
	reopen()
	if _, err := p.Device("gone"); !isErr(err, ErrDeviceNotFound) {
		t.Fatalf("a finished delete left its record: %v", err)
	}

	// A delete interrupted before its message: finished too.
	snap(81)
	must(t, p.store.Put(record("doomed", 81)))
	must(t, p.store.Begin(store.Tx{Op: store.OpDelete, DeviceID: 81, ID: "doomed"}))
	reopen()
	defer p.Close()
	if _, err := p.Device("doomed"); !isErr(err, ErrDeviceNotFound) {
		t.Fatalf("a finished delete left its record: %v", err)
	}

	dir := mustMount(t, p, "found")
	if !exists(filepath.Join(dir, "lost+found")) {
		t.Fatal("the kept device does not hold the base filesystem")
	}
	must(t, p.Unmount(context.Background(), "found"))
	must(t, p.Down(context.Background()))
	ids := thinDumpIDs(t, p.metaFilePath())
	if fmt.Sprint(ids) != fmt.Sprint([]uint32{base, 78}) {
		t.Fatalf("thin_dump lists %v, want base (%d) and 78", ids, base)
	}
}

// Two handles on one root stand for two processes: each sees what the
// other changed (the change counter in the lock file), so a parent that
// gained a snapshot through one handle cannot be removed through the other.
func TestHandlesSeeEachOthersChanges(t *testing.T) {
	p, root := newVMPool(t, smallOptions())
	must(t, p.Create(context.Background(), "parent", "", CreateOptions{}))
	q, err := Open(context.Background(), root, OpenOptions{})
	must(t, err)
	defer q.Close()
	must(t, q.Create(context.Background(), "child", "parent", CreateOptions{}))
	if err := p.Remove(context.Background(), "parent"); !isErr(err, ErrHasChildren) {
		t.Fatalf("Remove of a parent another handle snapshotted = %v, want ErrHasChildren", err)
	}
	must(t, p.Create(context.Background(), "sibling", "parent", CreateOptions{}))
	a, err := q.Device("sibling")
	must(t, err)
	b, err := p.Device("child")
	must(t, err)
	if a.DeviceID == b.DeviceID {
		t.Fatalf("both handles allocated thin device id %d", a.DeviceID)
	}
	must(t, q.Remove(context.Background(), "child"))
	must(t, q.Remove(context.Background(), "sibling"))
	must(t, p.Remove(context.Background(), "parent"))

	// A removal one handle had to defer is finished by the other's GC.
	must(t, p.Create(context.Background(), "held", "", CreateOptions{}))
	path, err := q.Activate(context.Background(), "held")
	must(t, err)
	f, err := os.Open(path)
	must(t, err)
	if err := q.Remove(context.Background(), "held"); !isErr(err, ErrDeferred) {
		f.Close()
		t.Fatalf("Remove of an open device = %v, want ErrDeferred", err)
	}
	f.Close()
	removed, err := p.GC(context.Background())
	must(t, err)
	if fmt.Sprint(removed) != "[held]" {
		t.Fatalf("GC through the other handle removed %v, want [held]", removed)
	}
}

// The kernel commits the pool's metadata after each message it accepts;
// transaction recovery relies on it. Read the committed metadata from the
// file under the live pool (thin_dump reads the on-disk superblock) right
// after Create and Remove return.
func TestCreateAndRemoveAreOnDiskWhenTheyReturn(t *testing.T) {
	p, _ := newVMPool(t, smallOptions())
	must(t, p.Create(context.Background(), "durable", "", CreateOptions{}))
	d, err := p.Device("durable")
	must(t, err)
	ids := thinDumpIDs(t, p.metaFilePath())
	if fmt.Sprint(ids) != fmt.Sprint([]uint32{p.cfg.BaseDeviceID, d.DeviceID}) {
		t.Fatalf("committed metadata lists %v right after Create, want base and %d", ids, d.DeviceID)
	}
	// The removal is durable at once (the registry records the device
	// as returning space); the thin device leaves the committed metadata
	// when its space is back.
	must(t, p.Remove(context.Background(), "durable"))
	if _, err := p.store.Get("durable"); !isErr(err, ErrDeviceNotFound) {
		t.Fatalf("the record of durable after Remove: %v, want ErrDeviceNotFound", err)
	}
	must(t, p.ReturnSpace(context.Background()))
	ids = thinDumpIDs(t, p.metaFilePath())
	if fmt.Sprint(ids) != fmt.Sprint([]uint32{p.cfg.BaseDeviceID}) {
		t.Fatalf("committed metadata lists %v right after ReturnSpace, want only the base", ids)
	}
	st, err := p.Status()
	must(t, err)
	if st.TransactionID != 1 {
		t.Fatalf("pool transaction id %d after a create and a remove, want 1 (set at Init, never advanced)", st.TransactionID)
	}
}
