//go:build vm

package thinpool

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"sort"
	"testing"
	"time"
)

// writeAndSync writes n bytes of b at off through path.
func writeAndSync(t *testing.T, path string, b byte, n int, off int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	must(t, err)
	if _, err := f.WriteAt(bytes.Repeat([]byte{b}, n), off); err != nil {
		t.Fatal(err)
	}
	must(t, f.Sync())
	must(t, f.Close())
}

// blockDiscard holds the background space return just before it opens a
// device, until the returned release is called (at most once).
func blockDiscard(t *testing.T) (reached <-chan struct{}, release func()) {
	at, gate := make(chan struct{}, 16), make(chan struct{})
	hookBeforeDiscardOpen = func(string) {
		at <- struct{}{}
		<-gate
	}
	var released bool
	release = func() {
		if !released {
			released = true
			close(gate)
		}
	}
	t.Cleanup(func() { release(); hookBeforeDiscardOpen = nil })
	return at, release
}

// The default Remove returns before the whole-device discard: the id is
// free at once (created again, it gets another thin id and its own data),
// Status counts the device still returning space, and once it says none
// is left the data file has its space back.
func TestRemoveReturnsTheSpaceAfterTheIDIsFree(t *testing.T) {
	ctx := context.Background()
	p, root := newVMPool(t, smallOptions())
	data := p.dataFilePath()
	path, _ := createActive(t, p, "a")
	writeAndSync(t, path, 0xa5, 8<<20, 64<<20)
	oldID := mustDeviceID(t, p, "a")
	before := allocated(t, data)

	reached, release := blockDiscard(t)
	must(t, p.Remove(ctx, "a"))
	<-reached // the background return is under way, and held here
	st, err := p.Status()
	must(t, err)
	if st.ReturningDevices != 1 || st.ReturningBytes < 8<<20 {
		t.Fatalf("Status while the space is returned: %d devices, %d bytes; want 1 and at least 8 MiB", st.ReturningDevices, st.ReturningBytes)
	}
	if _, err := p.Device("a"); !isErr(err, ErrDeviceNotFound) {
		t.Fatalf("Device(a) after Remove = %v, want ErrDeviceNotFound", err)
	}

	// The same id again, while the old device still returns its space.
	must(t, p.Create(ctx, "a", "", CreateOptions{}))
	if newID := mustDeviceID(t, p, "a"); newID == oldID {
		t.Fatalf("the new a has the thin id %d of the one still returning space", newID)
	}
	path, err = p.Activate(ctx, "a")
	must(t, err)
	writeAndSync(t, path, 0x5a, 1<<20, 64<<20)
	devs, err := p.Devices()
	must(t, err)
	var ids []string
	for _, d := range devs {
		ids = append(ids, d.ID)
	}
	if len(ids) != 1 || ids[0] != "a" {
		t.Fatalf("Devices while a removed device returns space = %v, want [a]", ids)
	}

	release()
	waitFor(t, "the space to be returned", func() bool {
		st, err := p.Status()
		return err == nil && st.ReturningDevices == 0
	})
	after := allocated(t, data)
	t.Logf("data file: %d KiB before Remove, %d KiB after the return (the new a wrote 1024 KiB)", before>>10, after>>10)
	if before-after < 7<<20-int64(p.cfg.BlockSize) {
		t.Fatalf("the data file gave back %d KiB, want about 7168 (8192 discarded, 1024 written by the new a)", (before-after)>>10)
	}
	got := make([]byte, 1<<20)
	f, err := os.Open(path)
	must(t, err)
	_, err = f.ReadAt(got, 64<<20)
	f.Close()
	must(t, err)
	if !bytes.Equal(got, bytes.Repeat([]byte{0x5a}, 1<<20)) {
		t.Fatal("the new a does not read back what was written to it")
	}
	ids2 := thinDumpIDsOf(t, p, root)
	for _, id := range ids2 {
		if id == oldID {
			t.Fatalf("thin id %d of the removed a is still in the pool: %v", oldID, ids2)
		}
	}
}

// thinDumpIDsOf takes the pool down and lists the thin ids in its metadata.
func thinDumpIDsOf(t *testing.T, p *Pool, root string) []uint32 {
	t.Helper()
	must(t, p.Down(context.Background()))
	ids := thinDumpIDs(t, p.metaFilePath())
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	q, err := Open(context.Background(), root, OpenOptions{})
	must(t, err)
	must(t, q.Close())
	return ids
}

// A process that exits (Close) while the space of a removed device is
// still being returned, or that crashed between the two writes of the
// hand-over (both records on disk), leaves it to the next Open, which
// finishes it in the background; the id stays free.
func TestTheNextOpenFinishesTheSpaceReturnAProcessLeft(t *testing.T) {
	ctx := context.Background()
	p, root := newVMPool(t, smallOptions())
	data := p.dataFilePath()
	path, _ := createActive(t, p, "gone")
	writeAndSync(t, path, 0x3c, 8<<20, 64<<20)
	before := allocated(t, data)
	user, err := p.store.Get("gone")
	must(t, err)

	reached, release := blockDiscard(t)
	must(t, p.Remove(ctx, "gone"))
	<-reached
	// The crash state between the hand-over's writes: both records.
	must(t, p.store.Put(user))
	closed := make(chan error, 1)
	go func() { closed <- p.Close() }()
	time.Sleep(100 * time.Millisecond)
	release() // the discard now sees the cancelled context
	must(t, <-closed)
	hookBeforeDiscardOpen = nil
	if got := allocated(t, data); got < before-int64(p.cfg.BlockSize) {
		t.Fatalf("the data file shrank by %d KiB although Close stopped the return first", (before-got)>>10)
	}

	q, err := Open(ctx, root, OpenOptions{})
	must(t, err)
	defer q.Close()
	if _, err := q.Device("gone"); !isErr(err, ErrDeviceNotFound) {
		t.Fatalf("Device(gone) after Open = %v, want ErrDeviceNotFound (the hand-over finished)", err)
	}
	waitFor(t, "the next Open's background return", func() bool {
		st, err := q.Status()
		return err == nil && st.ReturningDevices == 0
	})
	if after := allocated(t, data); before-after < 8<<20-int64(q.cfg.BlockSize) {
		t.Fatalf("the data file gave back %d KiB after the next Open, want about 8192", (before-after)>>10)
	}
	must(t, q.Create(ctx, "gone", "", CreateOptions{}))
}

// Remove's cost, logged for the report (the bench's figures come from
// make bench): per device, the Remove call alone and Remove until the
// space is back (ReturnSpace right after it, as the bench's settle waits),
// for devices left active by their user and for devices deactivated first,
// against a pool without discards (the floor: deactivate + delete).
func TestRemoveCostWithAndWithoutDiscards(t *testing.T) {
	ctx := context.Background()
	noDiscard := smallOptions()
	noDiscard.NoDiscard = true
	for _, tc := range []struct {
		name       string
		o          Options
		deactivate bool
	}{
		{"discard, active", smallOptions(), false},
		{"discard, deactivated first", smallOptions(), true},
		{"no discard, active", noDiscard, false},
		{"no discard, deactivated first", noDiscard, true},
	} {
		p, _ := newVMPool(t, tc.o)
		const n = 8
		var call, settled time.Duration
		for i := 0; i < n; i++ {
			id := fmt.Sprintf("r%d", i)
			must(t, p.Create(ctx, id, "", CreateOptions{}))
			path, err := p.Activate(ctx, id)
			must(t, err)
			writeAndSync(t, path, 0x11, 1<<20, 64<<20)
			start := time.Now()
			if tc.deactivate {
				must(t, p.Deactivate(ctx, id))
			}
			must(t, p.Remove(ctx, id))
			call += time.Since(start)
			must(t, p.ReturnSpace(ctx))
			settled += time.Since(start)
		}
		t.Logf("REMOVE_COST %-30s %6.1f ms per Remove call, %6.1f ms until the space is back",
			tc.name+":", float64(call.Microseconds())/1000/n, float64(settled.Microseconds())/1000/n)
	}
}

// Two Pools of one root (as two processes would be) can both reach a
// removed device's space return: here one's background return is in the
// middle of it when the other's GC runs. GC waits for it instead of
// failing on the device's exclusive open, and when GC returns the device
// is gone from the pool and the data file has its space back.
func TestGCWaitsForASpaceReturnAnotherHandleIsMaking(t *testing.T) {
	ctx := context.Background()
	p, root := newVMPool(t, smallOptions())
	data := p.dataFilePath()
	q, err := Open(ctx, root, OpenOptions{})
	must(t, err)
	defer q.Close()
	path, _ := createActive(t, q, "written")
	writeAndSync(t, path, 0x5a, 8<<20, 0)
	devID := mustDeviceID(t, q, "written")
	before := allocated(t, data)

	reached, release := blockDiscard(t)
	must(t, q.Remove(ctx, "written"))
	select {
	case <-reached:
	case <-time.After(30 * time.Second):
		t.Fatal("the other handle's background return never reached the discard")
	}
	done := make(chan error, 1)
	go func() {
		_, err := p.GC(ctx)
		done <- err
	}()
	select {
	case err := <-done:
		t.Fatalf("GC returned (%v) while the other handle was returning the device's space; want it to wait", err)
	case <-time.After(time.Second):
	}
	release()
	select {
	case err := <-done:
		must(t, err)
	case <-time.After(60 * time.Second):
		t.Fatal("GC still waits a minute after the other handle's return went on")
	}
	st, err := p.Status()
	must(t, err)
	if st.ReturningDevices != 0 {
		t.Fatalf("Status after GC counts %d devices returning space, want 0", st.ReturningDevices)
	}
	for _, id := range thinDumpIDs(t, p.metaFilePath()) {
		if id == devID {
			t.Fatalf("thin device %d is still in the pool's committed metadata after GC", devID)
		}
	}
	if after := allocated(t, data); before-after < 8<<20-int64(p.cfg.BlockSize) {
		t.Fatalf("the data file gave back %d KiB, want about 8192 KiB", (before-after)>>10)
	}
}
